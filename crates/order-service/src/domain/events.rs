//! The events the order service publishes: its contract with every consumer.

use dynamodb_outbox::dynamodb::Routes;
use dynamodb_outbox::{BoxError, Envelope, Event, Takes, TraceContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_runtime::Timestamp;
use uuid::Uuid;

use super::Order;

/// The type of [`OrderPlaced`] events.
pub const ORDER_PLACED: &str = "OrderPlaced";
/// The aggregate the order service's events are about.
pub const AGGREGATE_ORDER: &str = "Order";
/// The version of [`OrderPlaced`] this code writes. Version 2 renamed `total_cents` to
/// `amount_cents` and added `channel`; version 1 events, written before, are upcast by their
/// consumers ([`order_placed_v1_to_v2`]).
pub const SCHEMA_VERSION: u32 = 2;
/// The version before [`SCHEMA_VERSION`]: `total_cents`, no `channel`.
pub const SCHEMA_VERSION_V1: u32 = 1;
/// The channel of an order placed through the order API: every order so far, and so every
/// order a version 1 event announced.
pub const CHANNEL_API: &str = "api";
/// The consumers of [`OrderPlaced`]: the rewards service.
pub const ORDER_PLACED_CONSUMERS: &[&str] = &["rewards"];
/// The outbox's one consumer when the order service publishes to an event bus (the broker
/// deployment): the relay, which knows the bus and none of its subscribers.
pub const ORDER_RELAY: &str = "order-relay";

/// What a consumer of [`OrderPlaced`] takes: the version this code writes, and version 1
/// brought up to it ([`order_placed_v1_to_v2`]). A relay given these publishes both versions as
/// they were written.
pub fn takes_order_placed() -> Vec<Takes> {
    vec![
        Takes::versions(ORDER_PLACED, SCHEMA_VERSION..=SCHEMA_VERSION)
            .upcast(SCHEMA_VERSION_V1, order_placed_v1_to_v2),
    ]
}

/// An `OrderPlaced` v1 payload as v2: `total_cents` renamed `amount_cents`, and the channel every
/// v1 order came through ([`CHANNEL_API`]). Other fields pass unchanged (pattern 3's payload is
/// the whole order). A payload without `total_cents` is refused: poison, with this reason.
pub fn order_placed_v1_to_v2(mut payload: Value) -> Result<Value, BoxError> {
    let fields = payload
        .as_object_mut()
        .ok_or("an OrderPlaced v1 payload is a JSON object")?;
    let total = fields
        .remove("total_cents")
        .ok_or("an OrderPlaced v1 payload carries total_cents, and this one has none")?;
    fields.insert("amount_cents".to_owned(), total);
    fields
        .entry("channel")
        .or_insert_with(|| Value::from(CHANNEL_API));
    Ok(payload)
}

/// An order was placed: what the rewards service credits (version [`SCHEMA_VERSION`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    /// The order's total, in minor units (`total_cents` in version 1).
    pub amount_cents: i64,
    pub points: i64,
    /// Where the order was placed ([`CHANNEL_API`]).
    pub channel: String,
}

impl Event for OrderPlaced {
    const EVENT_TYPE: &'static str = ORDER_PLACED;
    const SCHEMA_VERSION: u32 = SCHEMA_VERSION;
    const AGGREGATE_TYPE: &'static str = AGGREGATE_ORDER;
    fn aggregate_id(&self) -> String {
        self.order_id.clone()
    }
}

impl From<&Order> for OrderPlaced {
    fn from(order: &Order) -> Self {
        OrderPlaced {
            order_id: order.order_id.clone(),
            customer_id: order.customer_id.clone(),
            currency: order.currency.clone(),
            amount_cents: order.total_cents,
            points: order.points,
            channel: CHANNEL_API.to_owned(),
        }
    }
}

/// Why an `OrderPlaced` event can never be applied, whoever reads it: the rules every consumer
/// of the order service's events checks, so two consumers of one event (order-history and
/// rewards on the stream of pattern 3) refuse the same events for the same reason. `placed` is
/// what the event says of the order (its payload, or the part of it a consumer reads).
///
/// The event is about the order it carries (`aggregate_type` `Order`, `aggregate_id` its order
/// id), ordered by its customer, with ids, currency and amounts the order rules allow and the
/// points that follow from the total: an event claiming anything else was not written by the
/// order service's rules, whatever its source.
pub fn order_placed_violation<P>(event: &Envelope<P>, placed: &OrderPlaced) -> Option<String> {
    use super::order::{points_for, MAX_MONEY_CENTS};
    if event.aggregate_type != AGGREGATE_ORDER {
        return Some(format!(
            "the event is about a {:?}, not an {AGGREGATE_ORDER}",
            event.aggregate_type
        ));
    }
    for (field, id) in [
        ("customer_id", &placed.customer_id),
        ("order_id", &placed.order_id),
    ] {
        if let Err(invalid) = service_runtime::validate_id(field, id) {
            return Some(invalid.to_string());
        }
    }
    if event.aggregate_id != placed.order_id {
        return Some(format!(
            "the event is about order {:?} but carries order {:?}",
            event.aggregate_id, placed.order_id
        ));
    }
    if event.ordering_key != placed.customer_id {
        return Some(format!(
            "the event is ordered by {:?}, not by its customer {:?}",
            event.ordering_key, placed.customer_id
        ));
    }
    if placed.currency.len() != 3 || !placed.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(format!(
            "currency {:?} is not an ISO 4217 code",
            placed.currency
        ));
    }
    if placed.points < 0 || placed.amount_cents < 0 {
        return Some(format!("negative amount: {} points", placed.points));
    }
    if placed.amount_cents > MAX_MONEY_CENTS {
        return Some(format!(
            "total of {} minor units exceeds the order limit {MAX_MONEY_CENTS}",
            placed.amount_cents
        ));
    }
    if placed.points != points_for(placed.amount_cents) {
        return Some(format!(
            "{} points do not match a total of {} minor units ({} points)",
            placed.points,
            placed.amount_cents,
            points_for(placed.amount_cents)
        ));
    }
    None
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

/// The routing when the events go to an event bus: every event to the relay ([`ORDER_RELAY`]),
/// and the subscribers' rules take it from there.
pub fn relayed_routes() -> Routes {
    Routes::new().route(ORDER_PLACED, &[ORDER_RELAY])
}

/// The event announcing `order`. Its ordering key is the customer: one customer's rewards are
/// applied in the order the orders were placed, one at a time (never two transactions on one
/// balance at once), and consecutive ones commit together.
pub fn order_placed(
    order: &Order,
    now: Timestamp,
    trace: Option<TraceContext>,
) -> Envelope<OrderPlaced> {
    let mut event = Envelope::new(OrderPlaced::from(order))
        .with_ordering_key(&order.customer_id)
        .with_trace(trace);
    event.occurred_at = now.to_string();
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_v1_payload_reads_as_v2_with_its_total_and_the_api_channel() {
        let v1 = json!({"order_id": "o-1", "customer_id": "c-1", "currency": "USD",
                        "total_cents": 2_599, "points": 25});
        let v2: OrderPlaced = serde_json::from_value(order_placed_v1_to_v2(v1).unwrap()).unwrap();
        assert_eq!((v2.amount_cents, v2.points), (2_599, 25));
        assert_eq!(v2.channel, CHANNEL_API);
    }

    #[test]
    fn a_v1_payload_without_its_total_or_not_an_object_is_refused() {
        let without = json!({"order_id": "o-1", "amount_cents": 5});
        let why = order_placed_v1_to_v2(without).unwrap_err().to_string();
        assert!(why.contains("carries total_cents"), "{why}");
        assert!(order_placed_v1_to_v2(json!([1])).is_err());
    }
}
