//! The order-history consumer of pattern 3: writes each published order's item into the orders
//! table, once, so `GET /orders/{id}` finds it. The same item as the outbox pattern writes
//! ([`order_item`]), conditional on not existing.
//!
//! Exactly once by event id through the engine's done record, not by naming the order item as
//! the record: the item carries `created_at`, the time of the publish, and a keyed retry of the
//! same request publishes again with a later time under the same event id. Named as the record,
//! that redelivery would differ in content and be parked as a collision; with the done record it
//! is a duplicate. The order item's own condition then catches what the done record cannot: the
//! same order id under another event id (an Idempotency-Key reused with another request) fails
//! it and is parked.

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::lambda::KinesisStream;
use dynamodb_outbox::{
    Consumer, ConsumerStore, Effect, Envelope, HandlerError, PoisonPolicy, Processor, Source,
    SourceKind, Takes,
};
use lambda_runtime::{Error, LambdaEvent};
use service_runtime::config::{self, ConfigError};
use service_runtime::metrics;

use crate::domain::events::{order_placed_violation, OrderPlaced, ORDER_PLACED, SCHEMA_VERSION_V1};
use crate::domain::Order;
use crate::store::dynamodb::order_item;

/// The consumer's name: its done records and parked events.
pub const NAME: &str = "order-history";

/// Writes each placed order into the orders table `table`.
#[derive(Debug, Clone)]
pub struct OrderHistoryConsumer {
    table: String,
}

impl OrderHistoryConsumer {
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
        }
    }
}

impl Consumer for OrderHistoryConsumer {
    type Payload = Order;

    fn name(&self) -> &str {
        NAME
    }

    /// The order itself, which pattern 3 publishes as `OrderPlaced` v1 (see [`super`]).
    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions(
            ORDER_PLACED,
            SCHEMA_VERSION_V1..=SCHEMA_VERSION_V1,
        )]
    }

    /// An order that cannot be written (it does not encode, or its id is taken by another
    /// request) must not hold back the customer's later orders: parked, for an operator.
    fn on_poison(&self) -> PoisonPolicy {
        PoisonPolicy::Park
    }

    async fn effect(&self, event: &Envelope<Order>) -> Result<Effect, HandlerError> {
        let order = &event.payload;
        // The rules the rewards consumer of the same stream checks too: the two never disagree
        // on whether an event is an order.
        if let Some(why) = order_placed_violation(event, &OrderPlaced::from(order)) {
            return Err(HandlerError::poison(why));
        }
        let item = order_item(order, None)
            .map_err(|e| HandlerError::poison(format!("the order does not encode: {e}")))?;
        Ok(Effect::new().put_new(&self.table, item.into()))
    }
}

/// The order-history consumer on DynamoDB: its done records and parked events in the orders table.
pub type HistoryProcessor = Processor<OrderHistoryConsumer, DynamoConsumerStore>;

/// The order-history processor writing to `orders_table`, reading the Kinesis stream `stream`
/// (its name or its ARN).
pub fn processor(client: Client, orders_table: &str, stream: Source) -> HistoryProcessor {
    super::stream_processor(
        OrderHistoryConsumer::new(orders_table),
        client,
        orders_table,
        stream,
    )
}

/// The function's processor, from its settings: the orders table and the stream.
pub fn processor_from_env(client: Client) -> Result<HistoryProcessor, ConfigError> {
    let orders = config::required_name(config::ORDERS_TABLE, SourceKind::Table)?;
    super::stream_processor_from_env(OrderHistoryConsumer::new(&orders), client, &orders)
}

/// One Kinesis batch through the order-history consumer, as the function serves it: its logs
/// and its `order-history` metrics.
pub async fn handle<S: ConsumerStore>(
    processor: &Processor<OrderHistoryConsumer, S>,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    metrics::report_batch(metrics::ORDER_HISTORY, KinesisStream::new(processor), event).await
}
