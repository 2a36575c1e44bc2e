//! Metrics in CloudWatch's Embedded Metric Format (EMF): one JSON line per invocation, written to
//! the function's own log output, from which CloudWatch extracts the metrics. No network call,
//! no agent, no extra latency: the line leaves with the logs Lambda already ships.
//!
//! Nothing is written until a process installs a writer ([`init`] in the functions' `main`,
//! [`init_to`] in a local tool), so tests and tools that call the handlers stay quiet; a test
//! reads what one piece of work emitted with [`capture`].
//!
//! Dimensions are `Service` (a template parameter) and `Function` (the function's role, stable
//! across deployments), plus `Reason` on rejected orders: all bounded sets. Order, customer and
//! event ids never become dimensions; trace ids travel as plain properties of the line.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use dynamodb_outbox::BatchOutcome;
use serde_json::{json, Map, Value};

/// The metric namespace: `MetricsNamespace` in `template.yaml`.
pub const NAMESPACE_VARIABLE: &str = "METRICS_NAMESPACE";
/// The `Service` dimension: the stack's name for this deployment (`outbox-<stage>`).
pub const SERVICE_VARIABLE: &str = "METRICS_SERVICE";
pub const DEFAULT_NAMESPACE: &str = "Outbox";
pub const DEFAULT_SERVICE: &str = "outbox-local";

/// The `Function` dimension of each function.
pub const ORDER_WRITER: &str = "order-writer";
pub const STREAM_CONSUMER: &str = "stream-consumer";
pub const OUTBOX_SWEEPER: &str = "outbox-sweeper";
/// Pattern 3's order-history consumer (the rewards consumer is [`STREAM_CONSUMER`] whatever its
/// source, so one set of alarms serves every pattern).
pub const ORDER_HISTORY: &str = "order-history";

/// order-writer: orders written now; requests answered with an order written before (same
/// `Idempotency-Key`); requests that placed nothing, with the error code as `Reason`.
pub const ORDERS_PLACED: &str = "OrdersPlaced";
pub const ORDER_REPLAYS: &str = "OrderReplays";
pub const ORDERS_REJECTED: &str = "OrdersRejected";
/// stream-consumer: events whose reward committed now; events found already rewarded; records
/// that carry no event (filtered out on AWS, so a count here means the filter changed); events
/// that can never be applied as they are; events that failed for a transient reason and are
/// reported for retry; events held back behind a failed one of the same customer; records
/// dropped as neither an event nor naming one (Kinesis data without a usable `event_id`, or not
/// JSON: the mapping's filter lets none through, so a count here means it changed).
pub const APPLIED: &str = "Applied";
pub const DUPLICATES: &str = "Duplicates";
pub const SKIPPED: &str = "Skipped";
pub const POISON: &str = "Poison";
pub const RETRIED: &str = "Retried";
pub const HELD_BACK: &str = "HeldBack";
pub const DROPPED: &str = "Dropped";
/// outbox-sweeper: pending events older than the grace period (the stream did not deliver
/// them in time); of those, rewarded now by the sweeper; parked; left pending after a transient
/// failure. A redrive of parked events counts what it took out of the parked state instead.
pub const OLD_PENDING_FOUND: &str = "OldPendingFound";
pub const REDRIVEN: &str = "Redriven";
pub const PARKED: &str = "Parked";
pub const STILL_PENDING: &str = "StillPending";
pub const UNPARKED: &str = "Unparked";
/// Distributions, in milliseconds: one invocation's work (consumer batch, sweeper run), and
/// for every event rewarded now, the time its reward committed minus its `occurred_at`.
pub const BATCH_DURATION: &str = "BatchDuration";
pub const OUTBOX_LAG: &str = "OutboxLag";

/// What a consumer function emits per batch ([`batch`]).
const CONSUMER_METRICS: &[&str] = &[
    APPLIED,
    DUPLICATES,
    SKIPPED,
    POISON,
    PARKED,
    RETRIED,
    HELD_BACK,
    DROPPED,
    BATCH_DURATION,
    OUTBOX_LAG,
];

/// Every metric each function emits, by `Function` dimension: what the template's alarms and
/// dashboard may name (a test checks them against this list).
pub const EMITTED: &[(&str, &[&str])] = &[
    (
        ORDER_WRITER,
        &[ORDERS_PLACED, ORDER_REPLAYS, ORDERS_REJECTED],
    ),
    (STREAM_CONSUMER, CONSUMER_METRICS),
    (ORDER_HISTORY, CONSUMER_METRICS),
    (
        OUTBOX_SWEEPER,
        &[
            OLD_PENDING_FOUND,
            REDRIVEN,
            DUPLICATES,
            PARKED,
            STILL_PENDING,
            UNPARKED,
            BATCH_DURATION,
            OUTBOX_LAG,
        ],
    ),
];

/// A consumer function's metrics for one batch, with its own trace and the writers' traces it served as
/// properties of the line (never dimensions). An event's outbox lag runs from its `occurred_at`
/// to the end of the batch that applied it.
pub fn batch(
    function: &'static str,
    outcome: &BatchOutcome,
    duration_millis: f64,
    trace_id: Option<&str>,
) -> MetricSet {
    let mut set = MetricSet::new(function)
        .count(APPLIED, outcome.applied)
        .count(DUPLICATES, outcome.duplicates)
        .count(SKIPPED, outcome.skipped + outcome.ignored)
        .count(POISON, outcome.poison)
        .count(PARKED, outcome.parked)
        .count(RETRIED, outcome.failed + outcome.waiting + outcome.unmarked)
        .count(HELD_BACK, outcome.held_back)
        .count(DROPPED, outcome.dropped)
        .milliseconds(BATCH_DURATION, vec![duration_millis])
        .milliseconds(OUTBOX_LAG, lag_millis(outcome));
    if let Some(trace_id) = trace_id {
        set = set.property("trace_id", trace_id);
    }
    let links: Vec<String> = outcome
        .applied_events
        .iter()
        .filter_map(|e| e.trace_context.as_ref().and_then(crate::trace::link))
        .map(|l| l.trace_id)
        .take(MAX_LINKS_PER_LINE)
        .collect();
    if !links.is_empty() {
        set = set.property("links", links);
    }
    set
}

/// Each applied event's outbox lag, now; an `occurred_at` this code did not write is left out.
pub fn lag_millis(outcome: &BatchOutcome) -> Vec<f64> {
    let now = crate::Timestamp::now();
    outcome
        .applied_events
        .iter()
        .filter_map(|e| crate::Timestamp::parse(&e.occurred_at))
        .map(|occurred| now.millis_since(occurred))
        .collect()
}

/// CloudWatch takes at most 100 values of one metric per line: longer distributions continue
/// on further lines.
pub const MAX_VALUES_PER_LINE: usize = 100;
/// Trace links carried on one line: a default-sized batch's worth, so the line stays small.
pub const MAX_LINKS_PER_LINE: usize = 100;

/// The metrics of one invocation, emitted with [`MetricSet::emit`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    function: &'static str,
    counts: Vec<(&'static str, usize)>,
    milliseconds: Vec<(&'static str, Vec<f64>)>,
    reason: Option<&'static str>,
    properties: Map<String, Value>,
}

impl MetricSet {
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            counts: Vec::new(),
            milliseconds: Vec::new(),
            reason: None,
            properties: Map::new(),
        }
    }

    pub fn count(mut self, name: &'static str, value: usize) -> Self {
        self.counts.push((name, value));
        self
    }

    pub fn milliseconds(mut self, name: &'static str, values: Vec<f64>) -> Self {
        self.milliseconds.push((name, values));
        self
    }

    /// Adds the `Reason` dimension: the metrics are published per reason and in total.
    pub fn reason(mut self, code: &'static str) -> Self {
        self.reason = Some(code);
        self
    }

    /// A value kept on the line for log queries (a trace id), not turned into a metric.
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }

    /// Writes the set to the task's capture or the process's writer; without either, nothing is
    /// built.
    pub fn emit(&self) {
        if CAPTURE
            .try_with(|captured| {
                let lines = self.to_lines(&Dimensions::from_env(), now_millis());
                captured
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(lines);
            })
            .is_ok()
        {
            return;
        }
        if let Some(sink) = PROCESS_SINK.get() {
            for line in self.to_lines(&sink.dimensions, now_millis()) {
                (sink.write)(&line);
            }
        }
    }

    /// The EMF lines: the counts, the properties and the first [`MAX_VALUES_PER_LINE`] values of
    /// each distribution on the first line; further values on lines of their own.
    pub fn to_lines(&self, dimensions: &Dimensions, timestamp_millis: u64) -> Vec<String> {
        let chunks = self
            .milliseconds
            .iter()
            .map(|(_, values)| values.len().div_ceil(MAX_VALUES_PER_LINE))
            .max()
            .unwrap_or(0)
            .max(1);
        (0..chunks)
            .map(|chunk| {
                let mut line = Map::new();
                let mut declared = Vec::new();
                if chunk == 0 {
                    line.extend(self.properties.clone());
                    for (name, value) in &self.counts {
                        declared.push(json!({"Name": name, "Unit": "Count"}));
                        line.insert((*name).to_owned(), json!(value));
                    }
                }
                for (name, values) in &self.milliseconds {
                    let start = chunk * MAX_VALUES_PER_LINE;
                    let part = values
                        .get(start..values.len().min(start + MAX_VALUES_PER_LINE))
                        .unwrap_or_default();
                    if !part.is_empty() {
                        declared.push(json!({"Name": name, "Unit": "Milliseconds"}));
                        line.insert((*name).to_owned(), json!(part));
                    }
                }
                let mut dimension_sets = vec![json!(["Service", "Function"])];
                if let Some(reason) = self.reason {
                    dimension_sets.push(json!(["Service", "Function", "Reason"]));
                    line.insert("Reason".into(), json!(reason));
                }
                line.insert("Service".into(), json!(dimensions.service));
                line.insert("Function".into(), json!(self.function));
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_millis,
                        "CloudWatchMetrics": [{
                            "Namespace": dimensions.namespace,
                            "Dimensions": dimension_sets,
                            "Metrics": declared,
                        }],
                    }),
                );
                Value::Object(line).to_string()
            })
            .collect()
    }
}

/// The namespace and the `Service` dimension, from the environment the template sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimensions {
    pub namespace: String,
    pub service: String,
}

impl Dimensions {
    pub fn from_env() -> Self {
        let read = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            namespace: read(NAMESPACE_VARIABLE, DEFAULT_NAMESPACE),
            service: read(SERVICE_VARIABLE, DEFAULT_SERVICE),
        }
    }
}

type WriteLine = Box<dyn Fn(&str) + Send + Sync>;

struct Sink {
    dimensions: Dimensions,
    write: WriteLine,
}

static PROCESS_SINK: OnceLock<Sink> = OnceLock::new();

tokio::task_local! {
    static CAPTURE: Arc<Mutex<Vec<String>>>;
}

/// The functions' metrics: EMF lines on stdout, beside the JSON logs, in the same log stream.
pub fn init() {
    init_to(|line| {
        // A lost metric line must not fail the invocation that produced it.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    });
}

/// Every EMF line this process emits goes to `write` (a local tool collects them). The first
/// writer installed stays.
pub fn init_to(write: impl Fn(&str) + Send + Sync + 'static) {
    let _ = PROCESS_SINK.set(Sink {
        dimensions: Dimensions::from_env(),
        write: Box::new(write),
    });
}

/// Runs `work` and returns, with its output, the EMF lines it emitted, whatever the process's
/// writer: concurrent tests each see their own lines.
pub async fn capture<F: Future>(work: F) -> (F::Output, Vec<String>) {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let output = CAPTURE.scope(captured.clone(), work).await;
    let lines = std::mem::take(&mut *captured.lock().unwrap_or_else(|p| p.into_inner()));
    (output, lines)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dimensions() -> Dimensions {
        Dimensions {
            namespace: "Outbox".into(),
            service: "outbox-dev".into(),
        }
    }

    #[test]
    fn a_set_is_one_emf_line_with_its_metrics_declared_under_the_namespace_and_dimensions() {
        let set = MetricSet::new(STREAM_CONSUMER)
            .count(APPLIED, 2)
            .count(DUPLICATES, 3)
            .milliseconds(OUTBOX_LAG, vec![12.5, 40.0])
            .property("links", json!(["4bf92f3577b34da6a3ce929d0e0e4736"]));
        let lines = set.to_lines(&dimensions(), 1_700_000_000_000);
        assert_eq!(lines.len(), 1);
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            line,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{
                    "Namespace": "Outbox",
                    "Dimensions": [["Service", "Function"]],
                    "Metrics": [
                        {"Name": "Applied", "Unit": "Count"},
                        {"Name": "Duplicates", "Unit": "Count"},
                        {"Name": "OutboxLag", "Unit": "Milliseconds"},
                    ],
                }]},
                "Service": "outbox-dev", "Function": "stream-consumer",
                "Applied": 2, "Duplicates": 3, "OutboxLag": [12.5, 40.0],
                "links": ["4bf92f3577b34da6a3ce929d0e0e4736"],
            })
        );
    }

    #[test]
    fn long_distributions_continue_on_further_lines_of_at_most_100_values() {
        let values: Vec<f64> = (0..250).map(f64::from).collect();
        let set = MetricSet::new(OUTBOX_SWEEPER)
            .count(REDRIVEN, 250)
            .milliseconds(OUTBOX_LAG, values.clone());
        let lines: Vec<Value> = set
            .to_lines(&dimensions(), 0)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        let mut all = Vec::new();
        for line in &lines {
            let part = line[OUTBOX_LAG].as_array().unwrap();
            assert!(part.len() <= MAX_VALUES_PER_LINE);
            all.extend(part.iter().map(|v| v.as_f64().unwrap()));
        }
        assert_eq!(all, values);
        assert_eq!(lines[0][REDRIVEN], 250, "counts once, on the first line");
        assert!(lines[1].get(REDRIVEN).is_none() && lines[2].get(REDRIVEN).is_none());
    }

    #[test]
    fn a_reason_is_a_second_dimension_set_so_the_total_is_published_too() {
        let lines = MetricSet::new(ORDER_WRITER)
            .count(ORDERS_REJECTED, 1)
            .reason("invalid_currency")
            .to_lines(&dimensions(), 0);
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "Function"], ["Service", "Function", "Reason"]])
        );
        assert_eq!(line["Reason"], "invalid_currency");
    }

    #[tokio::test]
    async fn a_capture_sees_the_lines_of_its_own_work_only() {
        let ((), lines) = capture(async {
            MetricSet::new(ORDER_WRITER).count(ORDERS_PLACED, 1).emit();
        })
        .await;
        assert_eq!(lines.len(), 1);
        let ((), outside) = capture(async {}).await;
        assert!(outside.is_empty());
    }
}
