//! The DynamoDB Streams consumer: outbox records in (pattern 1), or the order table's own changes
//! (pattern 2, [`handle_order_changes`]), partial batch failures out. The engine does the work
//! (order, exactly once, hold-back, parking); this handler adds the logs and metrics of the batch.

use std::time::Instant;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use dynamodb_outbox::{BatchOutcome, ConsumerStore, Processor};
use lambda_runtime::{Error, LambdaEvent};
use order_service::changes::order_placed_from_image;
use service_runtime::{batch, metrics};

use crate::consumer::RewardsConsumer;

/// One stream batch.
pub async fn handle<S: ConsumerStore>(
    processor: &Processor<RewardsConsumer, S>,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let started = Instant::now();
    let trace_id = event.context.xray_trace_id.as_deref();
    let records = &event.payload.records;
    processor.invoked_as(&event.context.invoked_function_arn);
    let outcome = processor.process_stream(records).await;
    Ok(report(&outcome, records.len(), started, trace_id))
}

/// One batch of the orders table's stream under pattern 2: each order item's INSERT is read as
/// its `OrderPlaced` event by the order service's adapter
/// ([`order_service::changes::order_placed_from_image`]) and applied once by its event id.
pub async fn handle_order_changes<S: ConsumerStore>(
    processor: &Processor<RewardsConsumer, S>,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let started = Instant::now();
    let trace_id = event.context.xray_trace_id.as_deref();
    let records = &event.payload.records;
    processor.invoked_as(&event.context.invoked_function_arn);
    let outcome = processor
        .process_changes(records, order_placed_from_image)
        .await;
    Ok(report(&outcome, records.len(), started, trace_id))
}

/// Logs and metrics of a batch, and the answer Lambda reads.
fn report(
    outcome: &BatchOutcome,
    records: usize,
    started: Instant,
    trace_id: Option<&str>,
) -> DynamoDbEventResponse {
    batch::report(
        metrics::STREAM_CONSUMER,
        outcome,
        records,
        started,
        trace_id,
    );
    outcome.stream_response()
}
