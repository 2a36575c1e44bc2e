//! What a consumer function says about one batch, whatever its source (a DynamoDB stream, a
//! Kinesis stream): one `batch done` log line with the outcome, one `outbox event applied` line
//! per event applied with the link to the writer's trace, and the batch's metrics.

use std::time::Instant;

use dynamodb_outbox::BatchOutcome;

use crate::{metrics, trace};

/// Logs and emits the metrics of a batch of `records` records that `function` (its metrics'
/// `Function` dimension) started at `started`, in the invocation traced as `trace_id`.
pub fn report(
    function: &'static str,
    outcome: &BatchOutcome,
    records: usize,
    started: Instant,
    trace_id: Option<&str>,
) {
    tracing::info!(
        records,
        applied = outcome.applied,
        duplicates = outcome.duplicates,
        skipped = outcome.skipped,
        ignored = outcome.ignored,
        parked = outcome.parked,
        poison = outcome.poison,
        dropped = outcome.dropped,
        waiting = outcome.waiting,
        failed = outcome.failed,
        held_back = outcome.held_back,
        function,
        trace_id = trace_id.unwrap_or_default(),
        "batch done"
    );
    for event in &outcome.applied_events {
        let link = event.trace_context.as_ref().and_then(trace::link);
        tracing::info!(
            event_id = %event.event_id,
            order_id = %event.aggregate_id,
            trace_id = trace_id.unwrap_or_default(),
            link_trace_id = link.as_ref().map(|l| l.trace_id.as_str()).unwrap_or_default(),
            link_xray_trace_id = link.as_ref().map(|l| l.xray_trace_id.as_str()).unwrap_or_default(),
            link_span_id = link.as_ref().and_then(|l| l.span_id.as_deref()).unwrap_or_default(),
            "outbox event applied"
        );
    }
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    metrics::batch(function, outcome, millis, trace_id).emit();
}
