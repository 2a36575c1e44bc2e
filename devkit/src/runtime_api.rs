//! A local stand-in for the Lambda Runtime API: enough of it to start a real function binary
//! (`make bench` on this machine's build, `make smoke-arm64` on the arm64 bootstraps under
//! qemu), hand it events and collect its answers.
//!
//! `GET /2018-06-01/runtime/invocation/next` answers the next event (with the headers the
//! runtime client requires) until `invocations` have been handed out, then keeps the request
//! open, as Lambda does while it has nothing to deliver. Responses and errors are counted and
//! kept.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::Notify;

use crate::serve::{serve, Serving};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

/// The variables Lambda itself sets in a function's process, the Runtime API's address among
/// them (the function's own configuration and credentials come on top).
pub fn lambda_environment(runtime_api: &str, function_name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        ("TZ", ":UTC".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Bytes),
    /// The body of `/error`: the runtime's error type and message.
    Error(Bytes),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct StubCounts {
    pub handed_out: usize,
    pub responses: usize,
    /// Responses of a batch function that reported records as failed (`batchItemFailures`).
    pub item_failures: usize,
    pub errors: usize,
    pub init_errors: usize,
}

struct State {
    events: Vec<Bytes>,
    invocations: usize,
    counts: StubCounts,
    first_next: Option<Instant>,
    /// When each handed-out request id was handed out, to time invocations.
    started: VecDeque<(String, Instant)>,
    busy: Duration,
    /// By request id, which orders them as they were handed out.
    answers: BTreeMap<String, Answer>,
}

pub struct RuntimeStub {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    /// Dropped, it also ends the `next` requests held open.
    _server: Serving,
}

impl RuntimeStub {
    /// Serves `invocations` events, cycling through `events`.
    pub async fn start(events: Vec<Bytes>, invocations: usize) -> Result<Self> {
        let state = Arc::new(Mutex::new(State {
            events,
            invocations,
            counts: StubCounts::default(),
            first_next: None,
            started: VecDeque::new(),
            busy: Duration::ZERO,
            answers: BTreeMap::new(),
        }));
        let changed = Arc::new(Notify::new());
        let (s, n) = (state.clone(), changed.clone());
        let (addr, server) = serve(move |req| handle(req, s.clone(), n.clone())).await?;
        Ok(Self {
            addr,
            state,
            changed,
            _server: server,
        })
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` takes it.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    pub fn counts(&self) -> StubCounts {
        self.state.lock().expect("stub state").counts
    }

    /// The answers so far, in the order their events were handed out.
    pub fn answers(&self) -> Vec<Answer> {
        let s = self.state.lock().expect("stub state");
        s.answers.values().cloned().collect()
    }

    /// Mean time from handing an event out to receiving its answer.
    pub fn mean_invocation(&self) -> Duration {
        let s = self.state.lock().expect("stub state");
        let answered = (s.counts.responses + s.counts.errors).max(1);
        s.busy / answered as u32
    }

    /// Waits for the function's first `next` poll and returns when it arrived.
    pub async fn first_next(&self, timeout: Duration) -> Result<Instant> {
        self.wait(timeout, |s| s.first_next)
            .await
            .map_err(|_| anyhow!("no `next` poll within {timeout:?}"))
    }

    /// Waits until every invocation has been answered (or the function reported an init error).
    pub async fn all_answered(&self, timeout: Duration) -> Result<StubCounts> {
        self.wait(timeout, |s| {
            let c = s.counts;
            (c.responses + c.errors >= s.invocations || c.init_errors > 0).then_some(c)
        })
        .await
        .map_err(|c| anyhow!("not all invocations answered within {timeout:?}: {c:?}"))
    }

    async fn wait<T>(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> Option<T>,
    ) -> Result<T, StubCounts> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(t) = done(&self.state.lock().expect("stub state")) {
                return Ok(t);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(self.counts());
            }
        }
    }
}

impl State {
    /// The next event to hand out, with its request id; `None` once all have been.
    fn next(&mut self) -> Option<(String, Bytes)> {
        self.first_next.get_or_insert_with(Instant::now);
        let n = self.counts.handed_out;
        if n >= self.invocations {
            return None;
        }
        self.counts.handed_out += 1;
        let id = format!("invocation-{n:06}");
        self.started.push_back((id.clone(), Instant::now()));
        Some((id, self.events[n % self.events.len()].clone()))
    }

    /// Counts and keeps what the runtime posted to `path` (a response, an error).
    fn answer(&mut self, path: &str, body: Bytes) {
        let rest = path.strip_prefix("/2018-06-01/runtime/invocation/");
        let id = rest
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        let answer = if path.ends_with("/response") {
            self.counts.responses += 1;
            self.counts.item_failures += usize::from(reports_item_failures(&body));
            Some(Answer::Response(body))
        } else if path.ends_with("/init/error") {
            self.counts.init_errors += 1;
            None
        } else if path.ends_with("/error") {
            self.counts.errors += 1;
            Some(Answer::Error(body))
        } else {
            None
        };
        let Some(id) = id else { return };
        if let Some(answer) = answer {
            self.answers.insert(id.clone(), answer);
        }
        if let Some(pos) = self.started.iter().position(|(i, _)| *i == id) {
            let (_, at) = self.started.remove(pos).expect("position is in range");
            self.busy += at.elapsed();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == NEXT {
        let next = state.lock().expect("stub state").next();
        changed.notify_waiters();
        let Some((id, event)) = next else {
            // Nothing to deliver: hold the poll open until the stub goes away.
            return std::future::pending().await;
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + Duration::from_secs(30);
        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
        let response = Response::builder()
            .header("lambda-runtime-aws-request-id", &id)
            .header(
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            )
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:local",
            )
            .header("lambda-runtime-trace-id", trace)
            .header("content-type", "application/json")
            .body(Full::new(event))
            .expect("a valid response");
        return Ok(response);
    }
    // Read the body before counting, as the runtime's request is only complete then.
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    state
        .lock()
        .expect("stub state")
        .answer(&path, body.unwrap_or_default());
    changed.notify_waiters();
    let ok = Full::new(Bytes::from_static(b"{\"status\":\"OK\"}"));
    Ok(Response::builder()
        .status(202)
        .body(ok)
        .expect("a valid response"))
}

/// Whether a batch function's response names failed records.
fn reports_item_failures(body: &[u8]) -> bool {
    let response = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    response["batchItemFailures"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}
