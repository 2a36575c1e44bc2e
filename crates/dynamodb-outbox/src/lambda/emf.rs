//! CloudWatch's Embedded Metric Format (EMF): the metrics of one invocation as JSON lines in the
//! function's own log output, from which CloudWatch extracts them. No network call, no agent, no
//! extra latency: the lines leave with the logs Lambda already ships.
//!
//! Dimensions are `Service` and `Function`, plus `Reason` when a set has one: bounded sets. Ids
//! never become dimensions; trace ids travel as plain properties of the line.
//!
//! Written here rather than taken from `metrics_cloudwatch_embedded` (0.10, without its `lambda`
//! feature, which links `lambda_http`) behind the `metrics` facade, because measuring
//! stream-consumer on it said so (docs/benchmarks.md, "Kept crates, measured"; release profile,
//! x86_64):
//! - 112,816 bytes more per stripped binary (4,418,504 against 4,305,688), which the arm64
//!   order-writer, 108 KB under its 4 MB budget, cannot take;
//! - a distribution keeps at most 100 values between two flushes (a bounded channel: the 101st
//!   value is dropped with an error log), where a sweeper run's or a batch's `OutboxLag` has one
//!   value per event; here further values continue on further lines;
//! - a line has one dimension set, so a `Reason` label replaces the `[Service, Function]` total
//!   instead of adding to it (here both sets are declared on the line);
//! - one recorder per process (`metrics::set_global_recorder`), so a flush cannot tell one
//!   invocation's metrics from a concurrent one's: [`capture_metrics`](super::capture_metrics),
//!   which every metrics test reads, would see them all;
//! - counts of zero are left out unless asked for (`emit_zeros`), and no measurable cold-start
//!   difference (spawn to first `next`, median of 25 starts each: 3.92 ms with it, 4.10 ms
//!   without).

use serde_json::{json, Map, Value};

/// The environment variable naming the metric namespace.
pub(crate) const NAMESPACE_VARIABLE: &str = "METRICS_NAMESPACE";
/// The environment variable naming the `Service` dimension (the deployment).
pub(crate) const SERVICE_VARIABLE: &str = "METRICS_SERVICE";
/// The namespace when [`NAMESPACE_VARIABLE`] is unset or blank.
const DEFAULT_NAMESPACE: &str = "Outbox";
/// The `Service` dimension when [`SERVICE_VARIABLE`] is unset or blank.
const DEFAULT_SERVICE: &str = "outbox-local";
/// CloudWatch takes at most 100 values of one metric per line: longer distributions continue
/// on further lines.
const MAX_VALUES_PER_LINE: usize = 100;

/// The metrics of one invocation, written with [`MetricSet::emit`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    pub(super) function: &'static str,
    counts: Vec<(&'static str, usize)>,
    milliseconds: Vec<(&'static str, Vec<f64>)>,
    reason: Option<&'static str>,
    properties: Map<String, Value>,
}

impl MetricSet {
    /// An empty set whose `Function` dimension is `function`.
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            counts: Vec::new(),
            milliseconds: Vec::new(),
            reason: None,
            properties: Map::new(),
        }
    }

    /// Adds a count.
    pub fn count(mut self, name: &'static str, value: usize) -> Self {
        self.counts.push((name, value));
        self
    }

    /// Adds a distribution of durations.
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
    pub(crate) fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }

    /// The EMF lines: the counts, the properties and the first 100 values of
    /// each distribution on the first line; further values on lines of their own.
    pub(crate) fn to_lines(&self, dimensions: &Dimensions, timestamp_millis: u64) -> Vec<String> {
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

/// The namespace and the `Service` dimension of a function's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dimensions {
    /// The CloudWatch namespace.
    pub namespace: String,
    /// The `Service` dimension: which deployment emitted the metric.
    pub service: String,
}

impl Dimensions {
    /// From [`NAMESPACE_VARIABLE`] (default `Outbox`) and [`SERVICE_VARIABLE`] (default
    /// `outbox-local`), where set and not blank.
    pub(crate) fn from_env() -> Self {
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
        let set = MetricSet::new("stream-consumer")
            .count("Applied", 2)
            .count("Duplicates", 3)
            .milliseconds("OutboxLag", vec![12.5, 40.0])
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
        let set = MetricSet::new("outbox-sweeper")
            .count("Redriven", 250)
            .milliseconds("OutboxLag", values.clone());
        let lines: Vec<Value> = set
            .to_lines(&dimensions(), 0)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        let mut all = Vec::new();
        for line in &lines {
            let part = line["OutboxLag"].as_array().unwrap();
            assert!(part.len() <= MAX_VALUES_PER_LINE);
            all.extend(part.iter().map(|v| v.as_f64().unwrap()));
        }
        assert_eq!(all, values);
        assert_eq!(lines[0]["Redriven"], 250, "counts once, on the first line");
        assert!(lines[1].get("Redriven").is_none() && lines[2].get("Redriven").is_none());
    }

    #[test]
    fn a_reason_is_a_second_dimension_set_so_the_total_is_published_too() {
        let lines = MetricSet::new("writer")
            .count("Rejected", 1)
            .reason("invalid_currency")
            .to_lines(&dimensions(), 0);
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "Function"], ["Service", "Function", "Reason"]])
        );
        assert_eq!(line["Reason"], "invalid_currency");
    }
}
