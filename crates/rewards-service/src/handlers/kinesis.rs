//! The rewards consumer on a Kinesis stream (pattern 3, self-read): the same
//! [`RewardsConsumer`] as on the outbox stream, fed by `process_kinesis`. Exactly once by event
//! id through the engine's done record: the order's reward record carries `applied_at`, so it is
//! not a function of the event alone and cannot be named as the record; it stays a `put_new`,
//! which parks a second event claiming an order already rewarded.

use std::time::Instant;

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::{ConsumerStore, Processor, Source, SourceKind};
use lambda_runtime::{Error, LambdaEvent};
use service_runtime::config::{self, ConfigError};
use service_runtime::{batch, metrics};

use crate::consumer::RewardsConsumer;
use crate::service::RewardsProcessor;

/// The rewards processor reading the Kinesis stream `stream` (its name or its ARN), writing to
/// `rewards_table`.
pub fn processor(client: Client, rewards_table: &str, stream: Source) -> RewardsProcessor {
    Processor::new(
        RewardsConsumer::new(rewards_table),
        DynamoConsumerStore::new(client, rewards_table, stream.name()),
        stream,
    )
}

/// The function's processor, from its settings: the rewards table and the stream.
pub fn processor_from_env(client: Client) -> Result<RewardsProcessor, ConfigError> {
    let rewards = config::required(config::REWARDS_TABLE)?;
    let stream = config::required_source(config::ORDER_EVENTS_STREAM, SourceKind::KinesisStream)?;
    let stream = config::source_from(
        config::ORDER_EVENTS_STREAM,
        SourceKind::KinesisStream,
        &stream,
    )?;
    Ok(processor(client, &rewards, stream).concurrency(config::CONSUMER_CONCURRENCY.read()?))
}

/// One Kinesis batch.
pub async fn handle<S: ConsumerStore>(
    processor: &Processor<RewardsConsumer, S>,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    let started = Instant::now();
    let trace_id = event.context.xray_trace_id.as_deref();
    let records = &event.payload.records;
    processor.invoked_as(&event.context.invoked_function_arn);
    let outcome = processor.process_kinesis(records).await;
    batch::report(
        metrics::STREAM_CONSUMER,
        &outcome,
        records.len(),
        started,
        trace_id,
    );
    Ok(outcome.kinesis_response())
}
