//! The rewards consumer on a Kinesis stream (pattern 3, self-read): the same
//! [`RewardsConsumer`] as on the outbox stream, fed by `process_kinesis`. Exactly once by event
//! id through the engine's done record: the order's reward record carries `applied_at`, so it is
//! not a function of the event alone and cannot be named as the record; it stays a `put_new`,
//! which parks a second event claiming an order already rewarded.

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use aws_sdk_dynamodb::Client;
use dynamodb_outbox::lambda::KinesisStream;
use dynamodb_outbox::{ConsumerStore, Processor, Source};
use lambda_runtime::{Error, LambdaEvent};
use order_service::self_read::{stream_processor, stream_processor_from_env};
use service_runtime::config::{self, ConfigError};
use service_runtime::metrics;

use crate::consumer::RewardsConsumer;
use crate::service::RewardsProcessor;

/// The rewards processor reading the Kinesis stream `stream` (its name or its ARN), writing to
/// `rewards_table`.
pub fn processor(client: Client, rewards_table: &str, stream: Source) -> RewardsProcessor {
    stream_processor(
        RewardsConsumer::new(rewards_table),
        client,
        rewards_table,
        stream,
    )
}

/// The function's processor, from its settings: the rewards table and the stream.
pub fn processor_from_env(client: Client) -> Result<RewardsProcessor, ConfigError> {
    let rewards = config::required(config::REWARDS_TABLE)?;
    stream_processor_from_env(RewardsConsumer::new(&rewards), client, &rewards)
}

/// One Kinesis batch, as the function serves it: reported as the stream consumer's, so one set
/// of alarms serves every pattern.
pub async fn handle<S: ConsumerStore>(
    processor: &Processor<RewardsConsumer, S>,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    metrics::report_batch(
        metrics::STREAM_CONSUMER,
        KinesisStream::new(processor),
        event,
    )
    .await
}
