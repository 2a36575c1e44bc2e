//! The functions' metrics as CloudWatch would read them: parsed from the Embedded Metric Format
//! lines the handlers emitted (never recomputed from the data), summed and summarised, so the
//! runs that prove the guarantees (`make demo`, the chaos run) prove the metrics too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// One metric of one function, as CloudWatch would aggregate it over the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub unit: String,
    /// Every value emitted, in order: one per line for a count, many for a distribution.
    pub values: Vec<f64>,
}

impl Series {
    pub fn sum(&self) -> f64 {
        self.values.iter().sum()
    }

    /// The nearest-rank percentile `p` (0 to 100) of the values.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
    }
}

/// Which series: the `Function` dimension, the metric, and the `Reason` dimension if any.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub function: String,
    pub metric: String,
    pub reason: Option<String>,
}

/// The metrics found in a run's output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSummary {
    pub namespaces: Vec<String>,
    pub series: BTreeMap<SeriesKey, Series>,
    /// EMF lines read.
    pub lines: usize,
}

/// The `_aws` member of an EMF line: what CloudWatch reads to find the metrics.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Aws {
    /// Required: CloudWatch drops a line without it.
    #[serde(rename = "Timestamp")]
    _timestamp: u64,
    cloud_watch_metrics: Vec<Directive>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Directive {
    namespace: String,
    dimensions: Vec<Vec<String>>,
    metrics: Vec<Metric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    name: String,
    unit: Option<String>,
}

impl MetricsSummary {
    /// Reads the EMF lines among `lines` (log lines without `_aws` are skipped). A line that
    /// claims to be EMF but does not follow the format is an error naming it: CloudWatch would
    /// drop it, so a test must not pass over it.
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut summary = Self::default();
        for line in lines {
            let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let Some(aws) = fields.get("_aws") else {
                continue;
            };
            summary
                .read_line(&fields, aws)
                .with_context(|| format!("not a valid EMF line: {line}"))?;
        }
        Ok(summary)
    }

    fn read_line(&mut self, fields: &serde_json::Map<String, Value>, aws: &Value) -> Result<()> {
        let aws = Aws::deserialize(aws)?;
        let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
        self.lines += 1;
        for directive in aws.cloud_watch_metrics {
            if !self.namespaces.contains(&directive.namespace) {
                self.namespaces.push(directive.namespace);
            }
            let mut reasons = vec![None];
            for name in directive.dimensions.iter().flatten() {
                let value =
                    text(name).with_context(|| format!("dimension {name} has no text value"))?;
                if name == "Reason" && !reasons.contains(&Some(value.clone())) {
                    reasons.push(Some(value));
                }
            }
            let function = text("Function").context("no Function dimension")?;
            for metric in directive.metrics {
                let name = metric.name;
                let values: Vec<f64> = match fields.get(&name) {
                    Some(Value::Number(n)) => n.as_f64().into_iter().collect(),
                    Some(Value::Array(items)) => items.iter().filter_map(Value::as_f64).collect(),
                    _ => bail!("metric {name} is declared but has no number or list of numbers"),
                };
                for reason in &reasons {
                    let key = SeriesKey {
                        function: function.clone(),
                        metric: name.clone(),
                        reason: reason.clone(),
                    };
                    let series = self.series.entry(key).or_default();
                    series.unit = metric.unit.clone().unwrap_or_else(|| "None".to_owned());
                    series.values.extend(&values);
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, function: &str, metric: &str) -> Option<&Series> {
        self.series.get(&SeriesKey {
            function: function.to_owned(),
            metric: metric.to_owned(),
            reason: None,
        })
    }

    /// The sum of a count over the run; 0 when it was never emitted.
    pub fn count(&self, function: &str, metric: &str) -> f64 {
        self.get(function, metric).map_or(0.0, Series::sum)
    }

    /// A table: counts summed, distributions as p50 / p99 / max.
    pub fn render(&self) -> String {
        let mut out = format!(
            "metrics, read from {} EMF lines the functions wrote (namespace {}):\n",
            self.lines,
            self.namespaces.join(", ")
        );
        let _ = writeln!(out, "{:<16} {:<34} value", "function", "metric");
        for (key, series) in &self.series {
            let name = match &key.reason {
                Some(reason) => format!("{} (Reason={reason})", key.metric),
                None => key.metric.clone(),
            };
            let value = if series.unit == "Milliseconds" {
                let at = |p| series.percentile(p).unwrap_or(0.0);
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} values)",
                    at(50.0),
                    at(99.0),
                    at(100.0),
                    series.values.len()
                )
            } else {
                format!("{}", series.sum())
            };
            let _ = writeln!(out, "{:<16} {:<34} {value}", key.function, name);
        }
        out
    }
}

/// Collects every EMF line this process's handlers emit (the demo's and the chaos run's
/// `service_runtime::metrics` writer).
#[derive(Debug, Clone, Default)]
pub struct Collector {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    /// Installs the collector as the process's metrics writer; `None` if another writer was
    /// installed first (its lines go there).
    pub fn install() -> Self {
        let collector = Self::default();
        let lines = collector.lines.clone();
        service_runtime::metrics::init_to(move |line| {
            lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.to_owned());
        });
        collector
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn summary(&self) -> Result<MetricsSummary> {
        let lines = self.lines();
        MetricsSummary::from_lines(lines.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summed_distributions_kept_and_log_lines_skipped() {
        let lines = [
            r#"{"level":"INFO","fields":{"message":"batch done"}}"#,
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Outbox","Dimensions":[["Service","Function"]],"Metrics":[{"Name":"Duplicates","Unit":"Count"},{"Name":"OutboxLag","Unit":"Milliseconds"}]}]},"Service":"s","Function":"stream-consumer","Duplicates":2,"OutboxLag":[10,30]}"#,
            r#"{"_aws":{"Timestamp":2,"CloudWatchMetrics":[{"Namespace":"Outbox","Dimensions":[["Service","Function"]],"Metrics":[{"Name":"Duplicates","Unit":"Count"},{"Name":"OutboxLag","Unit":"Milliseconds"}]}]},"Service":"s","Function":"stream-consumer","Duplicates":1,"OutboxLag":[20]}"#,
            r#"{"_aws":{"Timestamp":3,"CloudWatchMetrics":[{"Namespace":"Outbox","Dimensions":[["Service","Function"],["Service","Function","Reason"]],"Metrics":[{"Name":"OrdersRejected","Unit":"Count"}]}]},"Service":"s","Function":"order-writer","Reason":"invalid_currency","OrdersRejected":1}"#,
        ];
        let summary = MetricsSummary::from_lines(lines).unwrap();
        assert_eq!(summary.lines, 3);
        assert_eq!(summary.count("stream-consumer", "Duplicates"), 3.0);
        let lag = summary.get("stream-consumer", "OutboxLag").unwrap();
        assert_eq!(lag.values, vec![10.0, 30.0, 20.0]);
        assert_eq!(lag.percentile(50.0), Some(20.0));
        assert_eq!(lag.percentile(99.0), Some(30.0));
        assert_eq!(summary.count("order-writer", "OrdersRejected"), 1.0);
        assert!(summary
            .render()
            .contains("OrdersRejected (Reason=invalid_currency)"));
    }

    #[test]
    fn a_line_that_claims_to_be_emf_but_is_not_is_an_error() {
        for bad in [
            r#"{"_aws":{}}"#,
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Function"]],"Metrics":[{"Name":"X"}]}]},"Function":"f"}"#,
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Service"]],"Metrics":[]}]},"Function":"f"}"#,
        ] {
            assert!(MetricsSummary::from_lines([bad]).is_err(), "{bad}");
        }
    }
}
