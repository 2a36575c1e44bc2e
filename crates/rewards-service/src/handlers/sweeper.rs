//! The scheduled sweeper: redrives events the stream never delivered or gave up on, and, when an
//! operator asks, the events the consumers parked. Under pattern 3 (self-read) it only does the
//! latter, as the template's `ParkedRedriveFunction`. The engine runs and reports it
//! ([`ScheduledSweep`]); this module holds the choices: which pending items, which consumers.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::lambda::{OutboxSweep, ScheduledSweep, SweepAction, SweepJob};
use dynamodb_outbox::SourceKind;
use lambda_runtime::{Error, LambdaEvent, Service};
use order_service::self_read::history::{self, HistoryProcessor};
use serde_json::Value;
use service_runtime::config::{self, ConfigError, OutboxPattern};
use service_runtime::metrics;

use super::kinesis;
use crate::service::{self, RewardsProcessor, SweepReport};

/// The payload an operator sends to redrive parked events after a fix:
/// `aws lambda invoke --function-name <sweeper> --payload '{"action":"redrive-parked"}' out.json`.
pub use dynamodb_outbox::lambda::REDRIVE_PARKED;

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

impl SweepJob for Sweeper {
    /// Under pattern 3 a sweep is an error that says so: only the redrive has work there.
    async fn run(&self, action: SweepAction) -> Result<SweepReport, Error> {
        let limit = self.limit;
        // The setting is range-checked at start-up; a negative value set in code means no grace.
        let older_than = Duration::from_secs(u64::try_from(self.grace_seconds).unwrap_or(0));
        match (action, &self.pending) {
            (SweepAction::RedriveParked, _) => {
                let mut report = SweepReport::from(&self.processor.redrive_parked(limit).await);
                if let Some(order_history) = &self.order_history {
                    report.add(SweepReport::from(
                        &order_history.redrive_parked(limit).await,
                    ));
                }
                Ok(report)
            }
            (SweepAction::Sweep, Some(pending)) if self.pattern == OutboxPattern::Cdc => {
                let outcome =
                    service::sweep_order_changes(pending, &self.processor, older_than, limit)
                        .await?;
                Ok(SweepReport::from(&outcome))
            }
            (SweepAction::Sweep, Some(pending)) => {
                let processor = &self.processor;
                let sweep = OutboxSweep {
                    processor,
                    pending,
                    older_than,
                    limit,
                };
                sweep.run(action).await
            }
            (SweepAction::Sweep, None) => Err(format!(
                "OUTBOX_PATTERN is self-read: nothing is pending to sweep (the on-failure \
                 destination names what the Kinesis mappings gave up); invoke with \
                 {{\"action\":\"{REDRIVE_PARKED}\"}} to redrive parked events"
            )
            .into()),
        }
    }
}

/// A scheduled event (or any other payload) runs one sweep; `{"action": "redrive-parked"}` puts
/// the parked events back through the consumers. The report is the function's result; the run is
/// logged and measured as the `outbox-sweeper` function's.
pub async fn handle(sweeper: &Sweeper, event: LambdaEvent<Value>) -> Result<SweepReport, Error> {
    ScheduledSweep::new(sweeper, metrics::OUTBOX_SWEEPER)
        .call(event)
        .await
}
