//! The scheduled outbox sweeper: redrives events the stream never delivered or gave up on, and,
//! when an operator asks, the events it parked.

use std::time::Instant;

use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

use crate::metrics::{self, MetricSet};
use crate::service::{RewardsService, SweepReport};
use crate::store::{OutboxStore, RewardsStore};

/// The payload an operator sends to redrive parked events after a fix:
/// `aws lambda invoke --function-name <sweeper> --payload '{"action":"redrive-parked"}' out.json`.
pub const REDRIVE_PARKED: &str = "redrive-parked";

/// A scheduled event (or any other payload) runs one sweep; `{"action": "redrive-parked"}` puts
/// the parked events back through the consumer's path. The report is the function's result.
pub async fn handle<R: RewardsStore, O: OutboxStore>(
    service: &RewardsService<R, O>,
    grace_seconds: i64,
    limit: usize,
    event: LambdaEvent<Value>,
) -> Result<SweepReport, Error> {
    let started = Instant::now();
    let redrive = event.payload.get("action").and_then(Value::as_str) == Some(REDRIVE_PARKED);
    let report = if redrive {
        service.redrive_parked(limit).await?
    } else {
        service.sweep(grace_seconds, limit).await?
    };
    tracing::info!(
        action = if redrive { REDRIVE_PARKED } else { "sweep" },
        found = report.found,
        applied = report.applied,
        already_applied = report.already_applied,
        parked = report.parked,
        failed = report.failed,
        "sweep done"
    );
    run_metrics(&report, redrive, started.elapsed().as_secs_f64() * 1000.0).emit();
    Ok(report)
}

/// A sweep counts the old pending events it found (the stream did not deliver them within the
/// grace period: alarmed); a redrive counts the parked events it took back instead.
pub fn run_metrics(report: &SweepReport, redrive: bool, duration_millis: f64) -> MetricSet {
    let found = if redrive {
        metrics::UNPARKED
    } else {
        metrics::OLD_PENDING_FOUND
    };
    MetricSet::new(metrics::OUTBOX_SWEEPER)
        .count(found, report.found)
        .count(metrics::REDRIVEN, report.applied)
        .count(metrics::DUPLICATES, report.already_applied)
        .count(metrics::PARKED, report.parked)
        .count(metrics::STILL_PENDING, report.failed)
        .milliseconds(metrics::BATCH_DURATION, vec![duration_millis])
        .milliseconds(metrics::OUTBOX_LAG, report.lag_millis.clone())
}
