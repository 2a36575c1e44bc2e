//! Each pattern's template's alarms and dashboard against the code and the runbook: every alarm
//! and dashboard line on our own metrics is one the functions emit, and every alarm has its
//! section in docs/operations.md, which its description points to.

use devkit::pattern::Pattern;
use serde_json::Value;

const PATTERNS: [Pattern; 4] = Pattern::DEPLOYMENTS;

fn template_text(pattern: Pattern) -> String {
    std::fs::read_to_string(pattern.template_path()).unwrap()
}

fn alarms(pattern: Pattern) -> Vec<(String, Value)> {
    let template = devkit::Template::load(&pattern.template_path()).unwrap();
    let alarms = template.resources_of_type("AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 7, "{pattern:?}: {alarms:?}");
    alarms
}

fn runbook() -> String {
    let path = devkit::template::default_path()
        .parent()
        .unwrap()
        .join("docs/operations.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_alarm_has_a_runbook_section_and_its_description_points_to_it() {
    let runbook = runbook();
    for (name, alarm) in PATTERNS.into_iter().flat_map(alarms) {
        let heading = format!("## {name}");
        assert!(
            runbook.contains(&heading),
            "docs/operations.md lacks {heading}"
        );
        let description = alarm["Properties"]["AlarmDescription"]
            .as_str()
            .unwrap_or_default();
        let anchor = format!("docs/operations.md#{}", name.to_ascii_lowercase());
        assert!(
            description.contains(&anchor),
            "{name}'s description lacks {anchor}"
        );
    }
}

/// The `Function` dimension and the metric name an alarm on our namespace watches, whether it
/// names one metric or a metric-math query over several.
fn watched(alarm: &Value) -> Vec<(String, String)> {
    let properties = &alarm["Properties"];
    let stats: Vec<&Value> = match properties["Metrics"].as_array() {
        Some(queries) => queries
            .iter()
            .filter_map(|q| q.get("MetricStat").map(|s| &s["Metric"]))
            .collect(),
        None => vec![properties],
    };
    stats
        .into_iter()
        .filter(|metric| {
            !metric["Namespace"]
                .as_str()
                .is_some_and(|n| n.starts_with("AWS/"))
        })
        .map(|metric| {
            let function = metric["Dimensions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["Name"] == "Function")
                .and_then(|d| d["Value"].as_str())
                .unwrap_or_default()
                .to_owned();
            (
                function,
                metric["MetricName"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_alarm_on_our_namespace_watches_a_metric_its_function_emits() {
    for pattern in PATTERNS {
        let mut ours = 0;
        for (name, alarm) in alarms(pattern) {
            for (function, metric) in watched(&alarm) {
                ours += 1;
                let emitted = service_runtime::metrics::EMITTED
                    .iter()
                    .find(|(f, _)| *f == function)
                    .is_some_and(|(_, metrics)| metrics.contains(&metric.as_str()));
                assert!(
                    emitted,
                    "{pattern:?}: {name} watches {function}/{metric}, which no function emits"
                );
            }
        }
        assert!(
            ours >= 4,
            "{pattern:?}: poison, parked, lag (and old pending events) are alarmed"
        );
    }
}

#[test]
fn the_alarms_cover_what_needs_a_human() {
    for pattern in PATTERNS {
        let alarms = alarms(pattern);
        let watched_metrics: Vec<String> = alarms
            .iter()
            .flat_map(|(_, a)| watched(a))
            .map(|(_, metric)| metric)
            .collect();
        let mut needed = vec![
            service_runtime::metrics::POISON,
            service_runtime::metrics::PARKED,
            service_runtime::metrics::OUTBOX_LAG,
        ];
        // Pattern 3 keeps no pending state: nothing for a sweeper to find.
        if pattern != Pattern::SelfRead {
            needed.push(service_runtime::metrics::OLD_PENDING_FOUND);
        }
        for metric in needed {
            assert!(
                watched_metrics.iter().any(|m| m == metric),
                "{pattern:?}: no alarm on {metric}"
            );
        }
        let text = template_text(pattern);
        let mut aws_metrics = vec![
            "ApproximateNumberOfMessagesVisible",
            "IteratorAge",
            "Errors",
            "Throttles",
        ];
        // The broker's inbox reads a queue: its lag is the age of the oldest message.
        if pattern == Pattern::Broker {
            aws_metrics.push("ApproximateAgeOfOldestMessage");
        }
        for aws_metric in aws_metrics {
            assert!(
                text.contains(&format!("MetricName: {aws_metric}")),
                "{pattern:?}: no alarm on {aws_metric}"
            );
        }
    }
}
#[test]
fn every_dashboard_metric_on_our_namespace_is_one_its_function_emits() {
    for pattern in PATTERNS {
        let template = devkit::Template::load(&pattern.template_path()).unwrap();
        let dashboards = template.resources_of_type("AWS::CloudWatch::Dashboard");
        assert_eq!(dashboards.len(), 1, "{pattern:?}: one dashboard");
        let body = &dashboards[0].1["Properties"]["DashboardBody"];
        let text = body
            .as_str()
            .or_else(|| body.get("!Sub").and_then(Value::as_str))
            .or_else(|| body.as_object().and_then(|o| o.values().next()?.as_str()))
            .unwrap_or_else(|| panic!("{pattern:?}: DashboardBody {body}"));
        // The body is a !Sub string: its ${...} become placeholders so it parses as JSON.
        let mut json_text = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            json_text.push_str(&rest[..start]);
            let end = rest[start..].find('}').unwrap() + start;
            let name = &rest[start + 2..end];
            // The alarm thresholds drawn as lines are numbers.
            json_text.push_str(
                if name.ends_with("AlarmMilliseconds") || name.ends_with("AlarmSeconds") {
                    "0"
                } else {
                    name
                },
            );
            rest = &rest[end + 1..];
        }
        json_text.push_str(rest);
        let dashboard: Value = serde_json::from_str(&json_text)
            .unwrap_or_else(|e| panic!("{pattern:?}: the dashboard is not JSON: {e}"));
        let mut ours = 0;
        for widget in dashboard["widgets"].as_array().unwrap() {
            let mut previous: Vec<Value> = Vec::new();
            for line in widget["properties"]["metrics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let line = line.as_array().unwrap();
                // "." repeats the previous line's field at its place; "..." the previous
                // line's fields up to those given after it, which replace its last ones.
                let mut fields: Vec<Value> = Vec::new();
                for (i, field) in line.iter().enumerate() {
                    match field.as_str() {
                        Some(".") => fields.push(previous.get(i).cloned().unwrap_or(Value::Null)),
                        Some("...") => {
                            let given = line[i + 1..].iter().filter(|f| !f.is_object()).count();
                            let kept = previous.len().saturating_sub(given);
                            fields.extend(previous[..kept].iter().cloned());
                        }
                        _ => fields.push(field.clone()),
                    }
                }
                previous = fields.iter().filter(|f| !f.is_object()).cloned().collect();
                if previous.first().and_then(Value::as_str) != Some("MetricsNamespace") {
                    continue;
                }
                let metric = previous[1].as_str().unwrap();
                let function = previous
                    .windows(2)
                    .find(|w| w[0] == "Function")
                    .and_then(|w| w[1].as_str())
                    .unwrap();
                ours += 1;
                let emitted = service_runtime::metrics::EMITTED
                    .iter()
                    .any(|(f, metrics)| *f == function && metrics.contains(&metric));
                assert!(
                    emitted,
                    "{pattern:?}: the dashboard shows {function}/{metric}, which no function emits"
                );
            }
        }
        assert!(
            ours >= 10,
            "{pattern:?}: {ours} of our metrics on the dashboard"
        );
    }
}
