//! A fault-injecting HTTP proxy between the functions and the local DynamoDB.
//!
//! Local servers never throttle, conflict or lose a response; this proxy makes them, by seed, so
//! a run can be repeated: it fails requests before forwarding them (5xx, throttling, transaction
//! conflicts), forwards a request and then drops the connection instead of answering (the write
//! committed, the caller saw a failure), delays requests, and can strip the `ClientRequestToken`
//! that lets AWS and dynoxide deduplicate a retried transaction (other emulators ignore it). It
//! also counts requests per operation, which the benchmarks read, and records the IAM actions
//! they need ([`crate::iam`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

/// What to inject, as probabilities per request (0.0 to 1.0).
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    pub seed: u64,
    pub server_error: f64,
    pub throttling: f64,
    pub provisioned_throughput: f64,
    /// Only `TransactWriteItems`: cancelled with a `TransactionConflict` reason.
    pub transaction_conflict: f64,
    /// Forward, let the write commit, then close the connection without the response.
    pub lose_response: f64,
    pub latency: Duration,
    pub strip_client_request_token: bool,
    /// Operations the faults apply to (all when empty); latency and counting apply to all.
    pub operations: Vec<String>,
    /// Stop injecting after this many faults (`None`: never stop).
    pub max_faults: Option<u64>,
}

impl FaultPlan {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }
}

/// The kinds of fault, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    ServerError,
    Throttling,
    ProvisionedThroughput,
    TransactionConflict,
    LostResponse,
}

#[derive(Debug, Default, Clone)]
pub struct ProxyStats {
    pub requests: BTreeMap<String, u64>,
    pub faults: BTreeMap<Fault, u64>,
    pub tokens_stripped: u64,
    /// Every action on a table the requests needed.
    pub accesses: BTreeSet<crate::iam::Access>,
}

impl ProxyStats {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
    pub fn fault(&self, f: Fault) -> u64 {
        self.faults.get(&f).copied().unwrap_or(0)
    }
    pub fn summary(&self) -> String {
        format!(
            "{} requests; faults injected: {} 5xx, {} throttling, {} provisioned-throughput, {} transaction conflicts, {} lost responses",
            self.total_requests(),
            self.fault(Fault::ServerError),
            self.fault(Fault::Throttling),
            self.fault(Fault::ProvisionedThroughput),
            self.fault(Fault::TransactionConflict),
            self.fault(Fault::LostResponse),
        )
    }
}

struct State {
    plan: FaultPlan,
    rng: SmallRng,
    stats: ProxyStats,
}

/// A running proxy; requests to `endpoint` go to the upstream server.
pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: &str, plan: FaultPlan) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            rng: SmallRng::seed_from_u64(plan.seed),
            plan,
            stats: ProxyStats::default(),
        }));
        let upstream: http::Uri = upstream.parse().context("upstream endpoint")?;
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        forward(req, state.clone(), client.clone(), upstream.clone())
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            endpoint,
            state,
            task,
        })
    }

    /// Changes what is injected from the next request on (the random sequence goes on).
    pub fn set_plan(&self, plan: FaultPlan) {
        self.state.lock().expect("proxy state").plan = plan;
    }

    pub fn stats(&self) -> ProxyStats {
        self.state.lock().expect("proxy state").stats.clone()
    }

    pub fn reset_stats(&self) {
        self.state.lock().expect("proxy state").stats = ProxyStats::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the connection is dropped: hyper closes it without a response when the service fails.
#[derive(Debug)]
struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response dropped by the fault proxy")
    }
}
impl std::error::Error for DropConnection {}

enum Decision {
    Forward { lose_response: bool },
    Fail(Fault),
}

async fn forward(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: http::Uri,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (mut parts, body) = req.into_parts();
    let mut body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let operation = target.split('.').nth(1).unwrap_or("unknown").to_owned();

    let (decision, latency, strip) = {
        let mut s = state.lock().expect("proxy state");
        *s.stats.requests.entry(operation.clone()).or_default() += 1;
        s.stats
            .accesses
            .extend(crate::iam::accesses(&target, &body));
        let injected_so_far = s.stats.total_faults();
        let State { plan, rng, .. } = &mut *s;
        let applies = (plan.operations.is_empty()
            || plan.operations.iter().any(|o| o == &operation))
            && plan.max_faults.is_none_or(|max| injected_so_far < max);
        let mut roll = |p: f64| applies && p > 0.0 && rng.random_bool(p.min(1.0));
        let decision = if roll(plan.server_error) {
            Decision::Fail(Fault::ServerError)
        } else if roll(plan.throttling) {
            Decision::Fail(Fault::Throttling)
        } else if roll(plan.provisioned_throughput) {
            Decision::Fail(Fault::ProvisionedThroughput)
        } else if operation == "TransactWriteItems" && roll(plan.transaction_conflict) {
            Decision::Fail(Fault::TransactionConflict)
        } else {
            Decision::Forward {
                lose_response: roll(plan.lose_response),
            }
        };
        match &decision {
            Decision::Fail(f) => *s.stats.faults.entry(*f).or_default() += 1,
            Decision::Forward {
                lose_response: true,
            } => *s.stats.faults.entry(Fault::LostResponse).or_default() += 1,
            _ => {}
        }
        let strip = s.plan.strip_client_request_token && operation == "TransactWriteItems";
        (decision, s.plan.latency, strip)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let lose_response = match decision {
        Decision::Fail(fault) => return Ok(injected(fault, &body)),
        Decision::Forward { lose_response } => lose_response,
    };
    if strip {
        if let Ok(mut value) = serde_json::from_slice::<Json>(&body) {
            if value
                .as_object_mut()
                .and_then(|o| o.remove("ClientRequestToken"))
                .is_some()
            {
                body = Bytes::from(serde_json::to_vec(&value).map_err(|_| DropConnection)?);
                parts
                    .headers
                    .insert(http::header::CONTENT_LENGTH, body.len().into());
                state.lock().expect("proxy state").stats.tokens_stripped += 1;
            }
        }
    }
    let mut uri = http::Uri::builder()
        .scheme(
            upstream
                .scheme()
                .cloned()
                .unwrap_or(http::uri::Scheme::HTTP),
        )
        .authority(upstream.authority().cloned().ok_or(DropConnection)?);
    uri = uri.path_and_query(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
    );
    parts.uri = uri.build().map_err(|_| DropConnection)?;
    parts.headers.remove(http::header::HOST);
    let response = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|_| DropConnection)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    if lose_response {
        return Err(DropConnection);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The error DynamoDB itself would return for the fault.
fn injected(fault: Fault, request: &[u8]) -> Response<Full<Bytes>> {
    let prefix = "com.amazonaws.dynamodb.v20120810#";
    let (status, body) = match fault {
        Fault::ServerError => (
            500,
            json!({"__type": format!("{prefix}InternalServerError"), "message": "injected internal server error"}),
        ),
        Fault::Throttling => (
            400,
            json!({"__type": format!("{prefix}ThrottlingException"), "message": "injected throttling"}),
        ),
        Fault::ProvisionedThroughput => (
            400,
            json!({"__type": format!("{prefix}ProvisionedThroughputExceededException"), "message": "injected: throughput exceeded"}),
        ),
        Fault::TransactionConflict => {
            let items = serde_json::from_slice::<Json>(request)
                .ok()
                .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1);
            let reasons: Vec<Json> = (0..items)
                .map(|i| if i == 0 {
                    json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
                } else {
                    json!({"Code": "None"})
                })
                .collect();
            (
                400,
                json!({
                    "__type": format!("{prefix}TransactionCanceledException"),
                    "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                    "CancellationReasons": reasons
                }),
            )
        }
        Fault::LostResponse => unreachable!("a lost response is forwarded first"),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static response")
}
