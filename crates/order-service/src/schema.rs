//! How the order service lays out its items in the orders table, beside the outbox engine's
//! (`dynamodb_outbox::table`): key shapes and attribute names here and nowhere else.

pub use dynamodb_outbox::table::{ENTITY, PK, SK};

/// Partition of an order.
pub fn order_pk(order_id: &str) -> String {
    format!("ORDER#{order_id}")
}
/// Sort key of an order.
pub const ORDER_SK: &str = "ORDER";
/// Value of [`ENTITY`] on order items.
pub const ENTITY_ORDER: &str = "Order";
/// On an order: the key of the outbox item announcing it, so a read can tell whether the
/// event still waits for a consumer.
pub const EVENT_PK: &str = "event_pk";
/// See [`EVENT_PK`].
pub const EVENT_SK: &str = "event_sk";
/// On an order written under pattern 2 (CDC): the trace context of the request that placed it,
/// which the order table's change carries to the rewards consumer.
pub const ORDER_TRACE: &str = "trace_context";
