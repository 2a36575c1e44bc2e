//! The scheduled sweeper: redrives events the stream never delivered or gave up on, and, when an
//! operator asks, the events the consumer parked.

use std::time::Instant;

use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::PendingEvents;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use service_runtime::config::{self, ConfigError, OutboxPattern};
use service_runtime::metrics::{self, MetricSet};

use crate::service::{self, RewardsProcessor, SweepReport};

/// The payload an operator sends to redrive parked events after a fix:
/// `aws lambda invoke --function-name <sweeper> --payload '{"action":"redrive-parked"}' out.json`.
pub const REDRIVE_PARKED: &str = "redrive-parked";

/// What one sweeper function needs.
pub struct Sweeper {
    /// The outbox's pending index.
    pub pending: PendingEvents,
    /// The rewards consumer on DynamoDB.
    pub processor: RewardsProcessor,
    /// Age after which a pending event is redriven.
    pub grace_seconds: i64,
    /// Events read per run.
    pub limit: usize,
    /// Where the pending events are: outbox items (pattern 1) or order items (pattern 2).
    pub pattern: OutboxPattern,
}

impl Sweeper {
    /// The sweeper of a function, from its settings (read once, at start-up).
    pub fn from_env(client: Client) -> Result<Self, ConfigError> {
        Ok(Self {
            pending: PendingEvents::new(client.clone(), config::required(config::ORDERS_TABLE)?),
            processor: service::processor_from_env(client)?,
            grace_seconds: config::SWEEPER_GRACE_SECONDS.read()?,
            limit: config::SWEEPER_BATCH_LIMIT.read()?,
            pattern: OutboxPattern::read()?,
        })
    }
}

/// A scheduled event (or any other payload) runs one sweep; `{"action": "redrive-parked"}` puts
/// the parked events back through the consumer. The report is the function's result.
pub async fn handle(sweeper: &Sweeper, event: LambdaEvent<Value>) -> Result<SweepReport, Error> {
    let started = Instant::now();
    let redrive = event.payload.get("action").and_then(Value::as_str) == Some(REDRIVE_PARKED);
    let outcome = if redrive {
        sweeper.processor.redrive_parked(sweeper.limit).await
    } else if sweeper.pattern == OutboxPattern::Cdc {
        service::sweep_order_changes(
            &sweeper.pending,
            &sweeper.processor,
            sweeper.grace_seconds,
            sweeper.limit,
        )
        .await?
    } else {
        service::sweep(
            &sweeper.pending,
            &sweeper.processor,
            sweeper.grace_seconds,
            sweeper.limit,
        )
        .await?
    };
    let report = SweepReport::from(&outcome);
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
