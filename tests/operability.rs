//! Each pattern's template's alarms against the code and the runbook: every alarm on our own
//! metrics watches one the functions emit, and every alarm has its section in
//! docs/operations.md, which its description points to.

use devkit::pattern::Pattern;
use serde_json::Value;

const PATTERNS: [Pattern; 3] = [Pattern::Outbox, Pattern::Cdc, Pattern::SelfRead];

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
        for aws_metric in [
            "ApproximateNumberOfMessagesVisible",
            "IteratorAge",
            "Errors",
            "Throttles",
        ] {
            assert!(
                text.contains(&format!("MetricName: {aws_metric}")),
                "{pattern:?}: no alarm on {aws_metric}"
            );
        }
    }
}
