//! The DynamoDB Streams consumer: outbox records in (pattern 1), or the order table's own changes
//! (pattern 2, [`handle_order_changes`]), partial batch failures out. The engine does the work
//! (order, exactly once, hold-back, parking) and reports the batch; this module only picks the
//! consumer, the adapter and the function's metrics.

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use dynamodb_outbox::lambda::{EntityChanges, OutboxStream};
use dynamodb_outbox::{ConsumerStore, Processor};
use lambda_runtime::{Error, LambdaEvent};
use order_service::changes::order_placed_from_image;
use service_runtime::metrics;

use crate::consumer::RewardsConsumer;

/// One stream batch of outbox records, as the function serves it: its logs and its
/// `stream-consumer` metrics.
pub async fn handle<S: ConsumerStore>(
    processor: &Processor<RewardsConsumer, S>,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    metrics::report_batch(
        metrics::STREAM_CONSUMER,
        OutboxStream::new(processor),
        event,
    )
    .await
}

/// One batch of the orders table's stream under pattern 2: each order item's INSERT is read as
/// its `OrderPlaced` event by the order service's adapter
/// ([`order_service::changes::order_placed_from_image`]) and applied once by its event id.
pub async fn handle_order_changes<S: ConsumerStore>(
    processor: &Processor<RewardsConsumer, S>,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let changes = EntityChanges::new(processor, order_placed_from_image);
    metrics::report_batch(metrics::STREAM_CONSUMER, changes, event).await
}
