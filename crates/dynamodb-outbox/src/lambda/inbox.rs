//! One consumer of an SQS queue, one function: the queue's batches through the inbox, and an
//! operator's redrive of its parked events. There is nothing to sweep: a message the function
//! did not finish stays in the queue, which delivers it again (or moves it to its dead-letter
//! queue), so no schedule is needed.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::tower::Layer;
use lambda_runtime::Error;

use super::batch_or_action::BatchOrAction;
use super::{BatchReport, ScheduledSweep, SqsQueue, SweepAction, SweepJob, SweepReport};
use crate::dynamodb::DynamoConsumerStore;
use crate::{Consumer, ConsumerStore, Processor, Source};

/// Parked events a redrive takes per run.
const REDRIVE_LIMIT: usize = 1000;

/// A consumer function of an SQS queue (the inbox), its progress, effects and parked events in
/// a DynamoDB table of its own: the [`Processor`] over a [`DynamoConsumerStore`], serving the
/// queue's batches ([`SqsQueue`] under [`BatchReport`], its metrics under the consumer's name)
/// and `{"action": "redrive-parked"}`, which puts its parked events back through the consumer.
/// Its event source mapping needs `FunctionResponseTypes: [ReportBatchItemFailures]`.
///
/// ```no_run
/// use dynamodb_outbox::{lambda, Source};
/// # use dynamodb_outbox::{Consumer, Effect, Envelope, HandlerError, Takes};
/// # struct Audit;
/// # impl Consumer for Audit {
/// #     type Payload = serde_json::Value;
/// #     fn name(&self) -> &str { "audit" }
/// #     fn takes(&self) -> Vec<Takes> { vec![Takes::versions("Paid", 1..=1)] }
/// #     async fn effect(&self, _: &Envelope<serde_json::Value>) -> Result<Effect, HandlerError> {
/// #         Ok(Effect::new())
/// #     }
/// # }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), lambda_runtime::Error> {
///     lambda::init_metrics();
///     let client = lambda::dynamodb_client().await;
///     let queue = Source::sqs_queue(&lambda::env_var::<String>("INBOX_QUEUE")?)?;
///     lambda::InboxConsumer::new(client, "audit-progress", queue).run(Audit).await
/// }
/// ```
#[derive(Debug, Clone)]
pub struct InboxConsumer {
    client: aws_sdk_dynamodb::Client,
    table: String,
    queue: Source,
    names: Option<(&'static str, &'static str)>,
}

impl InboxConsumer {
    /// The function of a consumer of `queue` (its name or ARN, [`Source::sqs_queue`]) keeping
    /// its progress, effects and parked events in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, queue: Source) -> Self {
        Self {
            client,
            table: table.into(),
            queue,
            names: None,
        }
    }

    /// Reports the queue's batches under the `Function` dimension `batches` and the redrives
    /// under `redrives` (default: the consumer's name for both), so an application whose
    /// alarms read a consumer's metrics by one function name keeps them when the same consumer
    /// reads a queue.
    pub fn reporting_as(mut self, batches: &'static str, redrives: &'static str) -> Self {
        self.names = Some((batches, redrives));
        self
    }

    /// Serves `consumer` until the runtime stops: its batches and its redrives.
    pub async fn run<C: Consumer>(self, consumer: C) -> Result<(), Error> {
        // No outbox items to mark: the store's outbox is its own table, never written as one.
        let store = DynamoConsumerStore::new(self.client, &self.table, &self.table);
        let processor = Processor::new(consumer, store, self.queue);
        // The report wants its dimension for the life of the process: one name, leaked once.
        let (batches, redrives) = self.names.unwrap_or_else(|| {
            let name: &'static str = processor.consumer().name().to_owned().leak();
            (name, name)
        });
        let redrive = Redrive(&processor);
        let report = BatchReport::new(batches);
        lambda_runtime::run(BatchOrAction::<SqsEvent, _, _>::new(
            report.layer(SqsQueue::new(&processor)),
            ScheduledSweep::new(&redrive, redrives),
        ))
        .await
    }
}

/// The inbox's one action besides its batches: a redrive of its parked events.
struct Redrive<'a, C, S>(&'a Processor<C, S>);

impl<C: Consumer, S: ConsumerStore> SweepJob for Redrive<'_, C, S> {
    async fn run(&self, action: SweepAction) -> Result<SweepReport, Error> {
        match action {
            SweepAction::RedriveParked => Ok(SweepReport::from(
                &self.0.redrive_parked(REDRIVE_LIMIT).await,
            )),
            SweepAction::Sweep => Err(
                "an inbox function takes SQS batches and {\"action\": \"redrive-parked\"}; \
                 there is nothing to sweep (the queue keeps what was not applied)"
                    .into(),
            ),
        }
    }
}
