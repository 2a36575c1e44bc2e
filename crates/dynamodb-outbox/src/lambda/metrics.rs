//! The metrics a consumer function emits per batch and a sweeper per run: their names, and the
//! [`MetricSet`] each builds from what the engine did. Names are CloudWatch metric names, the
//! same whatever the consumer, so one set of alarms serves every consumer function.

use time::{OffsetDateTime, PrimitiveDateTime};

use super::emf::MetricSet;
use super::trace;
use crate::envelope::OCCURRED_AT;
use crate::BatchOutcome;

/// Events whose effect committed now.
pub const APPLIED: &str = "Applied";
/// Events this consumer had applied before.
pub const DUPLICATES: &str = "Duplicates";
/// Records carrying no event this consumer takes (filtered out on AWS, so a count here means the
/// mapping's filter changed).
pub const SKIPPED: &str = "Skipped";
/// Events that can never be applied as they are, reported for retry.
pub const POISON: &str = "Poison";
/// Poison events parked, out of their key's way.
pub const PARKED: &str = "Parked";
/// Events reported for retry: a transient failure, a predecessor not applied yet, an unmarked
/// outbox item.
pub const RETRIED: &str = "Retried";
/// Events held back behind a failed one of the same key.
pub const HELD_BACK: &str = "HeldBack";
/// Records dropped as neither an event nor naming one (see [`BatchOutcome::dropped`]).
pub const DROPPED: &str = "Dropped";
/// The sweeper: pending events older than the grace period (the stream did not deliver them in
/// time).
pub const OLD_PENDING_FOUND: &str = "OldPendingFound";
/// The sweeper: events it applied now.
pub const REDRIVEN: &str = "Redriven";
/// The sweeper: events left pending after a transient failure.
pub const STILL_PENDING: &str = "StillPending";
/// The sweeper's redrive of parked events: what it took out of the parked state.
pub const UNPARKED: &str = "Unparked";
/// One invocation's work (a batch, a sweeper run), in milliseconds.
pub const BATCH_DURATION: &str = "BatchDuration";
/// For every event applied now, the time its effect committed minus its `occurred_at`, in
/// milliseconds.
pub const OUTBOX_LAG: &str = "OutboxLag";

/// Every metric a consumer function emits per batch ([`BatchReport`](super::BatchReport)).
pub const CONSUMER_METRICS: &[&str] = &[
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

/// Every metric a sweeper function emits per run.
pub const SWEEPER_METRICS: &[&str] = &[
    OLD_PENDING_FOUND,
    REDRIVEN,
    DUPLICATES,
    PARKED,
    STILL_PENDING,
    UNPARKED,
    BATCH_DURATION,
    OUTBOX_LAG,
];

/// Trace links carried on one line: a default-sized batch's worth, so the line stays small.
const MAX_LINKS_PER_LINE: usize = 100;

/// A consumer function's metrics for one batch, with its own trace and the writers' traces it
/// served as properties of the line (never dimensions). An event's outbox lag runs from its
/// `occurred_at` to the end of the batch that applied it.
pub(crate) fn batch(
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
        .filter_map(|e| e.trace_context.as_ref().and_then(trace::link))
        .map(|l| l.trace_id)
        .take(MAX_LINKS_PER_LINE)
        .collect();
    if !links.is_empty() {
        set = set.property("links", links);
    }
    set
}

/// Each applied event's outbox lag, now; an `occurred_at` the engine did not write is left out.
pub(super) fn lag_millis(outcome: &BatchOutcome) -> Vec<f64> {
    let now = OffsetDateTime::now_utc();
    outcome
        .applied_events
        .iter()
        .filter_map(|e| PrimitiveDateTime::parse(&e.occurred_at, OCCURRED_AT).ok())
        .map(|occurred| (now - occurred.assume_utc()).whole_microseconds() as f64 / 1000.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppliedEvent, TraceContext};

    fn applied(occurred_at: &str, traceparent: Option<&str>) -> AppliedEvent {
        AppliedEvent {
            event_id: "e-1".into(),
            aggregate_id: "a-1".into(),
            occurred_at: occurred_at.into(),
            trace_context: traceparent.map(|t| TraceContext {
                traceparent: Some(t.into()),
                xray_trace_id: None,
            }),
        }
    }

    #[test]
    fn a_batch_counts_each_outcome_and_links_the_writers_traces() {
        let outcome = BatchOutcome {
            applied: 2,
            skipped: 1,
            ignored: 2,
            failed: 1,
            waiting: 1,
            unmarked: 1,
            applied_events: vec![
                applied(
                    "2020-01-01T00:00:00.000000Z",
                    Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                ),
                applied("not a time", None),
            ],
            ..BatchOutcome::default()
        };
        let dimensions = crate::lambda::emf::Dimensions::from_env();
        let lines = batch("consumer", &outcome, 5.0, Some("Root=1-x")).to_lines(&dimensions, 0);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (line[APPLIED].as_u64(), line[SKIPPED].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(
            line[RETRIED], 3,
            "failed, waiting and unmarked are all retried"
        );
        assert_eq!(
            line["links"],
            serde_json::json!(["4bf92f3577b34da6a3ce929d0e0e4736"])
        );
        assert_eq!(line["trace_id"], "Root=1-x");
        let lag = line[OUTBOX_LAG].as_array().unwrap();
        assert_eq!(lag.len(), 1, "an unreadable occurred_at has no lag");
        assert!(lag[0].as_f64().unwrap() > 1.5e11, "{lag:?}");
    }
}
