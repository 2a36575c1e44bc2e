//! A fault-injecting HTTP proxy between the functions and a local server: DynamoDB, Kinesis, or
//! moto's SQS, SNS and EventBridge (their JSON protocols).
//!
//! Local servers never throttle, conflict or lose a response; this proxy makes them, by seed, so
//! a run can be repeated: it fails requests before forwarding them (5xx, throttling, transaction
//! conflicts), forwards a request and then drops the connection instead of answering (the write
//! committed, the caller saw a failure), fails one entry of a broker's batch call as the broker
//! reports it, delays requests, and can strip the `ClientRequestToken` that lets AWS and dynoxide
//! deduplicate a retried transaction (other emulators ignore it). It also counts requests per
//! operation, which the benchmarks read, and records the IAM actions they need ([`crate::iam`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

use crate::serve::{serve, Serving};

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
    /// Only a broker's batch calls (`PutEvents`, `SendMessageBatch`): one entry, chosen at
    /// random, is held back and answered as failed, the others forwarded and answered as the
    /// broker answered them: the partial failure a broker reports entry by entry.
    pub partial_failure: f64,
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
    PartialFailure,
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
    /// Adds another proxy's counts to these.
    pub fn add(&mut self, other: ProxyStats) {
        for (operation, count) in other.requests {
            *self.requests.entry(operation).or_default() += count;
        }
        for (fault, count) in other.faults {
            *self.faults.entry(fault).or_default() += count;
        }
        self.tokens_stripped += other.tokens_stripped;
        self.accesses.extend(other.accesses);
    }
    pub fn fault(&self, f: Fault) -> u64 {
        self.faults.get(&f).copied().unwrap_or(0)
    }
    pub fn summary(&self) -> String {
        let faults = [
            (Fault::ServerError, "5xx"),
            (Fault::Throttling, "throttling"),
            (Fault::ProvisionedThroughput, "provisioned-throughput"),
            (Fault::TransactionConflict, "transaction conflicts"),
            (Fault::LostResponse, "lost responses"),
            (Fault::PartialFailure, "partial failures"),
        ];
        let counts = faults.map(|(fault, name)| format!("{} {name}", self.fault(fault)));
        format!(
            "{} requests; faults injected: {}",
            self.total_requests(),
            counts.join(", ")
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
    _server: Serving,
}

impl FaultProxy {
    pub async fn start(upstream: &str, plan: FaultPlan) -> Result<Self> {
        let state = Arc::new(Mutex::new(State {
            rng: SmallRng::seed_from_u64(plan.seed),
            plan,
            stats: ProxyStats::default(),
        }));
        let upstream: http::Uri = upstream.parse().context("upstream endpoint")?;
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let shared = state.clone();
        let (address, server) =
            serve(move |req| forward(req, shared.clone(), client.clone(), upstream.clone()))
                .await?;
        Ok(Self {
            endpoint: format!("http://{address}"),
            state,
            _server: server,
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

/// Why the connection is dropped: hyper closes it without a response when the service fails.
#[derive(Debug, thiserror::Error)]
#[error("response dropped by the fault proxy")]
struct DropConnection;

enum Decision {
    Forward {
        lose_response: bool,
    },
    Fail(Fault),
    /// Forward all but the entry at this position, which is answered as failed.
    FailEntry(usize),
}

/// The broker calls that take a batch of entries and answer entry by entry, and where their
/// entries are.
fn batch_entries(operation: &str) -> Option<&'static str> {
    match operation {
        "PutEvents" | "SendMessageBatch" => Some("Entries"),
        _ => None,
    }
}

impl State {
    /// Counts the request and rolls what happens to it: a fault, or forwarded (and whether its
    /// response is lost).
    fn decide(&mut self, target: &str, operation: &str, body: &[u8]) -> Decision {
        *self.stats.requests.entry(operation.to_owned()).or_default() += 1;
        self.stats
            .accesses
            .extend(crate::iam::accesses(target, body));
        let injected_so_far = self.stats.total_faults();
        let Self { plan, rng, .. } = self;
        let applies = (plan.operations.is_empty()
            || plan.operations.iter().any(|o| o == operation))
            && plan.max_faults.is_none_or(|max| injected_so_far < max);
        let mut roll = |p: f64| applies && p > 0.0 && rng.random_bool(p.min(1.0));
        let transaction = operation == "TransactWriteItems";
        let fault = [
            (Fault::ServerError, plan.server_error),
            (Fault::Throttling, plan.throttling),
            (Fault::ProvisionedThroughput, plan.provisioned_throughput),
            (
                Fault::TransactionConflict,
                if transaction {
                    plan.transaction_conflict
                } else {
                    0.0
                },
            ),
        ]
        .into_iter()
        .find(|(_, p)| roll(*p));
        let entries = batch_entries(operation)
            .and_then(|field| {
                serde_json::from_slice::<Json>(body).ok()?[field]
                    .as_array()
                    .map(Vec::len)
            })
            .unwrap_or(0);
        let decision = match fault {
            Some((fault, _)) => Decision::Fail(fault),
            None if entries > 1 && roll(plan.partial_failure) => {
                Decision::FailEntry(rng.random_range(0..entries))
            }
            None => Decision::Forward {
                lose_response: roll(plan.lose_response),
            },
        };
        let counted = match decision {
            Decision::Fail(fault) => Some(fault),
            Decision::FailEntry(_) => Some(Fault::PartialFailure),
            Decision::Forward { lose_response } => lose_response.then_some(Fault::LostResponse),
        };
        if let Some(fault) = counted {
            *self.stats.faults.entry(fault).or_default() += 1;
        }
        decision
    }
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
        .and_then(|v| v.to_str().ok());
    let target = target.unwrap_or_default().to_owned();
    let operation = target.split('.').nth(1).unwrap_or("unknown").to_owned();
    let (decision, latency, strip) = {
        let mut s = state.lock().expect("proxy state");
        let decision = s.decide(&target, &operation, &body);
        let strip = s.plan.strip_client_request_token && operation == "TransactWriteItems";
        (decision, s.plan.latency, strip)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (lose_response, failed_entry) = match decision {
        Decision::Fail(fault) => return Ok(injected(fault, &body)),
        Decision::FailEntry(position) => {
            let (rest, entry) = without_entry(&operation, &body, position).ok_or(DropConnection)?;
            body = rest;
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, body.len().into());
            (false, Some((position, entry)))
        }
        Decision::Forward { lose_response } => (lose_response, None),
    };
    if let Some(stripped) = strip.then(|| without_token(&body)).flatten() {
        body = stripped;
        let length = body.len().into();
        parts.headers.insert(http::header::CONTENT_LENGTH, length);
        state.lock().expect("proxy state").stats.tokens_stripped += 1;
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let scheme = upstream
        .scheme()
        .cloned()
        .unwrap_or(http::uri::Scheme::HTTP);
    let authority = upstream.authority().cloned().ok_or(DropConnection)?;
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path);
    parts.uri = uri.build().map_err(|_| DropConnection)?;
    parts.headers.remove(http::header::HOST);
    let request = Request::from_parts(parts, Full::new(body));
    let response = client.request(request).await.map_err(|_| DropConnection)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    if lose_response {
        return Err(DropConnection);
    }
    let body = match failed_entry {
        Some((position, entry)) if parts.status.is_success() => {
            with_failed_entry(&operation, &body, position, &entry).ok_or(DropConnection)?
        }
        _ => body,
    };
    let mut response = Response::from_parts(parts, Full::new(body));
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    Ok(response)
}

/// The batch request without its entry at `position`, and that entry.
fn without_entry(operation: &str, body: &[u8], position: usize) -> Option<(Bytes, Json)> {
    let mut request = serde_json::from_slice::<Json>(body).ok()?;
    let entries = request[batch_entries(operation)?].as_array_mut()?;
    let entry = entries.remove(position);
    Some((Bytes::from(serde_json::to_vec(&request).ok()?), entry))
}

/// The broker's answer to the rest of the batch, with `entry` (held back at `position`) in it
/// as failed, as the broker itself reports an entry it could not take.
fn with_failed_entry(operation: &str, body: &[u8], position: usize, entry: &Json) -> Option<Bytes> {
    let mut response = serde_json::from_slice::<Json>(body).ok()?;
    match operation {
        "PutEvents" => {
            let failed =
                json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected: entry failed"});
            let entries = response["Entries"].as_array_mut()?;
            entries.insert(position.min(entries.len()), failed);
            let count = response["FailedEntryCount"].as_u64().unwrap_or(0) + 1;
            response["FailedEntryCount"] = json!(count);
        }
        _ => {
            let failed = json!({"Id": entry["Id"], "SenderFault": false, "Code": "InternalError", "Message": "injected: entry failed"});
            let object = response.as_object_mut()?;
            let list = object.entry("Failed").or_insert_with(|| json!([]));
            list.as_array_mut()?.push(failed);
        }
    }
    Some(Bytes::from(serde_json::to_vec(&response).ok()?))
}

/// The request without its `ClientRequestToken`, if it had one.
fn without_token(body: &[u8]) -> Option<Bytes> {
    let mut value = serde_json::from_slice::<Json>(body).ok()?;
    value.as_object_mut()?.remove("ClientRequestToken")?;
    Some(Bytes::from(serde_json::to_vec(&value).ok()?))
}

/// The error DynamoDB itself would return for the fault.
fn injected(fault: Fault, request: &[u8]) -> Response<Full<Bytes>> {
    let (status, kind, message) = match fault {
        Fault::ServerError => (500, "InternalServerError", "injected internal server error"),
        Fault::Throttling => (400, "ThrottlingException", "injected throttling"),
        Fault::ProvisionedThroughput => (
            400,
            "ProvisionedThroughputExceededException",
            "injected: throughput exceeded",
        ),
        Fault::TransactionConflict => (
            400,
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
        ),
        Fault::LostResponse | Fault::PartialFailure => {
            unreachable!("a lost response or a partial failure is forwarded first")
        }
    };
    let mut body =
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message});
    if fault == Fault::TransactionConflict {
        let items = serde_json::from_slice::<Json>(request).ok();
        let items = items.and_then(|v| v["TransactItems"].as_array().map(Vec::len));
        let conflict = json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"});
        let mut reasons = vec![json!({"Code": "None"}); items.unwrap_or(1)];
        reasons[0] = conflict;
        body["CancellationReasons"] = json!(reasons);
    }
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static response")
}
