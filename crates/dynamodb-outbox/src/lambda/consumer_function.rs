//! One consumer, one function: the stream mapping's batches and the schedule's sweeps (or an
//! operator's redrive) reach the same function, which tells them apart by their payload.

use std::task::{Context, Poll};
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use futures::future::BoxFuture;
use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, Service};
use serde_json::Value;

use super::batch_or_action::BatchOrAction;
use super::{BatchReport, OutboxStream, Reported, ScheduledSweep, SweepJob};
use crate::dynamodb::{DynamoConsumerStore, PendingEvents};
use crate::lambda::OutboxSweep;
use crate::{Consumer, ConsumerStore, Processor, Source};

/// Events a sweep reads per run.
const SWEEP_LIMIT: usize = 1000;

/// The grace period of [`OutboxConsumer`] unless set: a stream delivers within seconds, so
/// an event still pending after it was missed.
const SWEEP_AFTER: Duration = Duration::from_secs(900);

/// A consumer function of an outbox table, its progress in a DynamoDB table of its own: the
/// [`Processor`] over a [`DynamoConsumerStore`], served as a [`ConsumerFunction`] whose sweep
/// reads the outbox's pending index (up to 1000 events a run).
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
///     let outbox = Source::table(&lambda::env_var::<String>("OUTBOX_TABLE")?)?;
///     let function = lambda::OutboxConsumer::new(client, "audit-progress", outbox);
///     function.run(Audit).await
/// }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxConsumer {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Source,
    sweep_after: Duration,
}

impl OutboxConsumer {
    /// The function of a consumer of `outbox` keeping its progress, effects and parked events
    /// in `table`; its sweep takes the events still pending after 15 minutes.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, outbox: Source) -> Self {
        Self {
            client,
            table: table.into(),
            outbox,
            sweep_after: SWEEP_AFTER,
        }
    }

    /// Sweeps the events still pending after `grace` instead.
    pub fn sweep_after(mut self, grace: Duration) -> Self {
        self.sweep_after = grace;
        self
    }

    /// Serves `consumer` until the runtime stops: its batches, its sweeps, its redrives.
    pub async fn run<C: Consumer>(self, consumer: C) -> Result<(), Error> {
        let outbox = self.outbox.name().to_owned();
        let store = DynamoConsumerStore::new(self.client.clone(), self.table, &outbox);
        let pending = PendingEvents::new(self.client, outbox);
        let processor = Processor::new(consumer, store, self.outbox);
        run_consumer(&processor, &pending, self.sweep_after).await
    }
}

/// A consumer's function for both of its triggers: a DynamoDB stream batch (a payload with
/// `Records`) goes through [`OutboxStream`] under the [`BatchReport`] layer and answers the
/// partial batch response; any other payload is a sweep or a redrive ([`ScheduledSweep`]) and
/// answers its [`SweepReport`](super::SweepReport).
#[derive(Debug)]
pub struct ConsumerFunction<'a, C, S, J>(
    BatchOrAction<'a, Event, Reported<OutboxStream<'a, C, S>>, ScheduledSweep<'a, J>>,
);

impl<'a, C, S, J> ConsumerFunction<'a, C, S, J> {
    /// The function of `processor`, its batches reported by `report`, its sweeps run by `job`
    /// under the same `Function` metric dimension.
    pub fn new(report: BatchReport, processor: &'a Processor<C, S>, job: &'a J) -> Self {
        let function = report.function();
        Self(BatchOrAction::new(
            report.layer(OutboxStream::new(processor)),
            ScheduledSweep::new(job, function),
        ))
    }
}

impl<'a, C, S, J> Service<LambdaEvent<Value>> for ConsumerFunction<'a, C, S, J>
where
    C: Consumer,
    S: ConsumerStore,
    J: SweepJob,
{
    type Response = Value;
    type Error = Error;
    type Future = BoxFuture<'a, Result<Value, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<Value>) -> Self::Future {
        self.0.call(event)
    }
}

/// Serves one consumer of an outbox as one function with two triggers: its stream mapping,
/// and a schedule that applies its events still pending after `older_than` (up to 1000 a run;
/// `{"action": "redrive-parked"}` redrives its parked events instead). Its metrics carry the
/// consumer's name as their `Function` dimension.
pub(crate) async fn run_consumer<C: Consumer, S: ConsumerStore>(
    processor: &Processor<C, S>,
    pending: &PendingEvents,
    older_than: Duration,
) -> Result<(), Error> {
    // The report wants its dimension for the life of the process: one name, leaked once.
    let function: &'static str = processor.consumer().name().to_owned().leak();
    let sweep = OutboxSweep {
        processor,
        pending,
        older_than,
        limit: SWEEP_LIMIT,
    };
    let report = BatchReport::new(function);
    lambda_runtime::run(ConsumerFunction::new(report, processor, &sweep)).await
}
