//! The scheduled sweeper: redrives events the stream never delivered or gave up on, and, when an
//! operator asks, the events the consumers parked. Under pattern 3 (self-read) it only does the
//! latter, as the template's `ParkedRedriveFunction`.

use std::time::Instant;

use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::SourceKind;
use lambda_runtime::{Error, LambdaEvent};
use order_service::self_read::history::{self, HistoryProcessor};
use serde_json::Value;
use service_runtime::config::{self, ConfigError, OutboxPattern};
use service_runtime::metrics::{self, MetricSet};

use super::kinesis;
use crate::service::{self, RewardsProcessor, SweepReport};

/// The payload an operator sends to redrive parked events after a fix:
/// `aws lambda invoke --function-name <sweeper> --payload '{"action":"redrive-parked"}' out.json`.
pub const REDRIVE_PARKED: &str = "redrive-parked";

/// What one sweeper function needs.
pub struct Sweeper {
    /// The pending index: outbox items (pattern 1) or order items (pattern 2). None under
    /// pattern 3, which has no pending state to sweep (the Kinesis stream keeps the records, and
    /// the mappings' on-failure destination names the ranges they gave up): there the function
    /// only redrives parked events.
    pub pending: Option<PendingEvents>,
    /// The rewards consumer on DynamoDB.
    pub processor: RewardsProcessor,
    /// Pattern 3's other consumer, whose parked events a redrive takes back too.
    pub order_history: Option<HistoryProcessor>,
    /// Age after which a pending event is redriven.
    pub grace_seconds: i64,
    /// Events read per run.
    pub limit: usize,
    /// The pattern served: where pending events are (outbox items or order items), or none.
    pub pattern: OutboxPattern,
}

impl Sweeper {
    /// The sweeper of a function, from its settings (read once, at start-up). Under pattern 3
    /// (`OUTBOX_PATTERN=self-read`) it redrives the parked events of both of the stream's
    /// consumers, rewards and order-history, and needs the stream's name.
    pub fn from_env(client: Client) -> Result<Self, ConfigError> {
        let pattern = OutboxPattern::read()?;
        let (pending, processor, order_history) = if pattern == OutboxPattern::SelfRead {
            (
                None,
                kinesis::processor_from_env(client.clone())?,
                Some(history::processor_from_env(client)?),
            )
        } else {
            let orders = config::required_name(config::ORDERS_TABLE, SourceKind::Table)?;
            (
                Some(PendingEvents::new(client.clone(), orders)),
                service::processor_from_env(client)?,
                None,
            )
        };
        Ok(Self {
            pending,
            processor,
            order_history,
            grace_seconds: config::SWEEPER_GRACE_SECONDS.read()?,
            limit: config::SWEEPER_BATCH_LIMIT.read()?,
            pattern,
        })
    }
}

/// A scheduled event (or any other payload) runs one sweep; `{"action": "redrive-parked"}` puts
/// the parked events back through the consumer. The report is the function's result. Under
/// pattern 3 a sweep is an error that says so: only the redrive has work there.
pub async fn handle(sweeper: &Sweeper, event: LambdaEvent<Value>) -> Result<SweepReport, Error> {
    let started = Instant::now();
    let redrive = event.payload.get("action").and_then(Value::as_str) == Some(REDRIVE_PARKED);
    let report = if redrive {
        let mut report = SweepReport::from(&sweeper.processor.redrive_parked(sweeper.limit).await);
        if let Some(order_history) = &sweeper.order_history {
            report.add(SweepReport::from(
                &order_history.redrive_parked(sweeper.limit).await,
            ));
        }
        report
    } else if let Some(pending) = &sweeper.pending {
        SweepReport::from(&sweep(sweeper, pending).await?)
    } else {
        return Err(format!(
            "OUTBOX_PATTERN is self-read: nothing is pending to sweep (the on-failure destination \
             names what the Kinesis mappings gave up); invoke with {{\"action\":\"{REDRIVE_PARKED}\"}} \
             to redrive parked events"
        )
        .into());
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

/// One sweep of the pending events older than the grace period, where the pattern keeps them.
async fn sweep(
    sweeper: &Sweeper,
    pending: &PendingEvents,
) -> Result<dynamodb_outbox::BatchOutcome, Error> {
    let (processor, limit) = (&sweeper.processor, sweeper.limit);
    // The setting is range-checked at start-up; a negative value set in code means no grace.
    let grace = std::time::Duration::from_secs(u64::try_from(sweeper.grace_seconds).unwrap_or(0));
    Ok(if sweeper.pattern == OutboxPattern::Cdc {
        service::sweep_order_changes(pending, processor, grace, limit).await?
    } else {
        service::sweep(pending, processor, grace, limit).await?
    })
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
