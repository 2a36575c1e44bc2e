//! The events the order service publishes: its contract with every consumer.

use dynamodb_outbox::dynamodb::Routes;
use dynamodb_outbox::{Envelope, Event, TraceContext};
use serde::{Deserialize, Serialize};
use service_runtime::Timestamp;
use uuid::Uuid;

use super::Order;

/// The type of [`OrderPlaced`] events.
pub const ORDER_PLACED: &str = "OrderPlaced";
/// The aggregate the order service's events are about.
pub const AGGREGATE_ORDER: &str = "Order";
/// The version of [`OrderPlaced`] this code writes.
pub const SCHEMA_VERSION: u32 = 1;
/// The consumers of [`OrderPlaced`]: the rewards service.
pub const ORDER_PLACED_CONSUMERS: &[&str] = &["rewards"];

/// An order was placed: what the rewards service credits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub total_cents: i64,
    pub points: i64,
}

impl Event for OrderPlaced {
    const EVENT_TYPE: &'static str = ORDER_PLACED;
    const SCHEMA_VERSION: u32 = SCHEMA_VERSION;
    const AGGREGATE_TYPE: &'static str = AGGREGATE_ORDER;
    fn aggregate_id(&self) -> String {
        self.order_id.clone()
    }
}

/// Namespace of the event ids derived from order ids (UUID v5).
const ORDER_PLACED_EVENT_NS: Uuid = Uuid::from_u128(0x6f75_7462_6f78_4f72_8465_7273_0000_0002);

/// The id of the `OrderPlaced` event of `order_id` when the event is read from the order item
/// itself (pattern 2, CDC): a function of the order, so every delivery of the order's creation,
/// from the stream or the sweeper, carries the same id and the consumer recognises it.
pub fn order_placed_event_id(order_id: &str) -> String {
    Uuid::new_v5(&ORDER_PLACED_EVENT_NS, order_id.as_bytes()).to_string()
}

/// Who takes which of the order service's events: the routing its outbox writes on each event.
pub fn routes() -> Routes {
    Routes::new().route(ORDER_PLACED, ORDER_PLACED_CONSUMERS)
}

/// The event announcing `order`. Its ordering key is the customer: one customer's rewards are
/// applied in the order the orders were placed, one at a time (never two transactions on one
/// balance at once), and consecutive ones commit together.
pub fn order_placed(
    order: &Order,
    now: Timestamp,
    trace: Option<TraceContext>,
) -> Envelope<OrderPlaced> {
    let mut event = Envelope::new(OrderPlaced {
        order_id: order.order_id.clone(),
        customer_id: order.customer_id.clone(),
        currency: order.currency.clone(),
        total_cents: order.total_cents,
        points: order.points,
    })
    .with_ordering_key(&order.customer_id)
    .with_trace(trace);
    event.occurred_at = now.to_string();
    event
}
