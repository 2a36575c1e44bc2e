//! The batch handlers: one Lambda invocation's records through a [`Processor`], the partial
//! batch response out. Each is a `tower::Service` over the event Lambda sends; the report of the
//! batch is a layer on top ([`BatchReport`](super::BatchReport)).

use std::task::{Context, Poll};

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::streams::{DynamoDbEventResponse, KinesisEventResponse};
use futures::future::BoxFuture;
use lambda_runtime::{Error, LambdaEvent, Service};
use serde::{Serialize, Serializer};
use serde_dynamo::Item;

use crate::{BatchOutcome, Consumer, ConsumerStore, Envelope, Processor};

/// What a batch handler answers: Lambda's partial batch response, with what the batch came to
/// for the report. Serializes as the response alone, so a handler also runs without the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed<R> {
    /// The records to retry, in the shape the event source mapping reads.
    pub response: R,
    /// What the engine did with the batch.
    pub outcome: BatchOutcome,
    /// Records in the batch.
    pub records: usize,
}

impl<R: Serialize> Serialize for Processed<R> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.response.serialize(serializer)
    }
}

/// A batch handler of one kind of event: its struct, constructor and `Service`, which differ
/// between the kinds by the event, the response, the processor's method and the outcome's
/// answer alone.
macro_rules! batch_handler {
    (
        $(#[$doc:meta])*
        $name:ident($event:ty) -> $response:ty,
        $process:ident,
        $respond:ident
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<'a, C, S>(&'a Processor<C, S>);

        impl<'a, C, S> $name<'a, C, S> {
            /// The handler of `processor`'s batches.
            pub fn new(processor: &'a Processor<C, S>) -> Self {
                Self(processor)
            }
        }

        impl<'a, C: Consumer, S: ConsumerStore> Service<LambdaEvent<$event>> for $name<'a, C, S> {
            type Response = Processed<$response>;
            type Error = Error;
            type Future = BoxFuture<'a, Result<Self::Response, Error>>;

            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, event: LambdaEvent<$event>) -> Self::Future {
                batch(
                    self.0,
                    event.context.invoked_function_arn,
                    event.payload.records,
                    |p, r| Box::pin(p.$process(r)),
                    BatchOutcome::$respond,
                )
            }
        }
    };
}

/// One invocation's `records` through `processor`, which first learns the function it runs as
/// (`function_arn`): `process` applies them, `respond` says which to retry.
fn batch<'a, C, S, T, R>(
    processor: &'a Processor<C, S>,
    function_arn: String,
    records: Vec<T>,
    // The processor behind a borrow of its own: `'b` is then shorter than `'a`, so `process`
    // may hold what lives for `'a` (an adapter).
    process: impl for<'b> FnOnce(&'b &'a Processor<C, S>, &'b [T]) -> BoxFuture<'b, BatchOutcome>
        + Send
        + 'a,
    respond: fn(&BatchOutcome) -> R,
) -> BoxFuture<'a, Result<Processed<R>, Error>>
where
    C: Consumer,
    S: ConsumerStore,
    T: Send + Sync + 'a,
    R: 'a,
{
    Box::pin(async move {
        processor.invoked_as(&function_arn);
        let outcome = process(&processor, &records).await;
        Ok(Processed {
            response: respond(&outcome),
            records: records.len(),
            outcome,
        })
    })
}

batch_handler!(
    /// Outbox items from a DynamoDB stream ([`Processor::process_stream`]).
    OutboxStream(Event) -> DynamoDbEventResponse,
    process_stream,
    stream_response
);

/// An entity table's own changes from its DynamoDB stream, read as events by `adapter`
/// ([`Processor::process_changes`]: the same adapter as the sweep's).
#[derive(Debug)]
pub struct EntityChanges<'a, C, S, F> {
    processor: &'a Processor<C, S>,
    adapter: F,
}

impl<'a, C, S, F> EntityChanges<'a, C, S, F> {
    /// The handler of `processor`'s batches, reading each item image with `adapter`.
    pub fn new(processor: &'a Processor<C, S>, adapter: F) -> Self {
        Self { processor, adapter }
    }
}

impl<'a, C, S, F> Service<LambdaEvent<Event>> for EntityChanges<'a, C, S, F>
where
    C: Consumer,
    C::Payload: Serialize,
    S: ConsumerStore,
    F: Fn(&Item) -> Option<Result<Envelope<C::Payload>, String>> + Clone + Send + 'a,
{
    type Response = Processed<DynamoDbEventResponse>;
    type Error = Error;
    type Future = BoxFuture<'a, Result<Self::Response, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<Event>) -> Self::Future {
        let adapter = self.adapter.clone();
        batch(
            self.processor,
            event.context.invoked_function_arn,
            event.payload.records,
            move |p, r| Box::pin(p.process_changes(r, adapter)),
            BatchOutcome::stream_response,
        )
    }
}

batch_handler!(
    /// Events from a Kinesis data stream ([`Processor::process_kinesis`]).
    KinesisStream(KinesisEvent) -> KinesisEventResponse,
    process_kinesis,
    kinesis_response
);

batch_handler!(
    /// Messages from an SQS queue, the inbox ([`Processor::process_sqs`]): the envelope sent
    /// directly, through an SNS topic or through an EventBridge rule.
    SqsQueue(SqsEvent) -> SqsBatchResponse,
    process_sqs,
    sqs_response
);
