//! The scheduled outbox sweeper: redrives events the stream never delivered or gave up on.

use lambda_runtime::{Error, LambdaEvent};

use crate::service::{RewardsService, SweepReport};
use crate::store::{OutboxStore, RewardsStore};

/// Any scheduled event triggers one sweep; the report is the function's result.
pub async fn handle<R: RewardsStore, O: OutboxStore>(
    service: &RewardsService<R, O>,
    grace_seconds: i64,
    limit: usize,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, Error> {
    let report = service.sweep(grace_seconds, limit).await?;
    tracing::info!(
        found = report.found,
        applied = report.applied,
        already_applied = report.already_applied,
        failed = report.failed,
        "sweep done"
    );
    Ok(report)
}
