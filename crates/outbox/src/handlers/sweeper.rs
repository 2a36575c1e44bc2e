//! The scheduled outbox sweeper: redrives events the stream never delivered or gave up on, and,
//! when an operator asks, the events it parked.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

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
    Ok(report)
}
