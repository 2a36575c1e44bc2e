//! Pattern 2 (original event handling): the order table's own changes are the events. This is
//! the adapter a consumer of `OrderPlaced` gives the engine
//! (`Processor::process_changes` on the stream, `process_entities` in the sweeper): an order
//! item's image in, the `OrderPlaced` envelope out.
//!
//! **The coupling this pattern accepts.** Under the outbox a consumer reads a versioned event
//! the order service publishes on purpose; here it reads the order service's *storage*: the six
//! attributes of [`OrderImage`]. An attribute the order item gains is ignored (nothing changes).
//! An attribute the rewards consumer reads that is renamed or removed makes every new order
//! unreadable: the adapter answers `Err`, which the engine *reports* as a batch item failure
//! (it is not parked, because there is no event to keep: the order item itself, still carrying
//! its pending marker, is the durable copy). The stream retries it up to the retry cap and the
//! sweeper keeps finding it, until this adapter learns the new name; then the next sweep applies
//! it, once.

use dynamodb_outbox::{Envelope, TraceContext};
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};

use crate::domain::events::{order_placed_event_id, CHANNEL_API};
use crate::domain::OrderPlaced;
use crate::schema;

/// What the rewards consumer reads of an order item: exactly the attributes the
/// `OrderPlaced` event is built from. Other attributes are not looked at.
#[derive(Debug, Deserialize)]
pub struct OrderImage {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub total_cents: i64,
    pub points: i64,
    /// The event's `occurred_at`.
    pub created_at: String,
    #[serde(default)]
    pub trace_context: Option<TraceContext>,
}

/// The `OrderPlaced` event an order item's creation stands for: `None` for an item that is not an
/// order, or an order written under the outbox (it names its outbox event, which is its event);
/// `Err` for an order item the consumer cannot read (a renamed or missing attribute).
///
/// The event id is derived from the order id ([`order_placed_event_id`]) and the ordering key is
/// the customer, as under the outbox.
pub fn order_placed_from_image(image: &Item) -> Option<Result<Envelope<OrderPlaced>, String>> {
    let text = |name: &str| match image.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    };
    if text(schema::ENTITY) != Some(schema::ENTITY_ORDER)
        || text(schema::SK) != Some(schema::ORDER_SK)
    {
        return None;
    }
    if image.get(schema::EVENT_PK).is_some() {
        return None;
    }
    let order: OrderImage = match serde_dynamo::from_item(image.clone()) {
        Ok(order) => order,
        Err(e) => {
            return Some(Err(format!(
                "the order item does not read as an order: {e}"
            )))
        }
    };
    Some(Ok(envelope_of(order)))
}

fn envelope_of(image: OrderImage) -> Envelope<OrderPlaced> {
    let event_id = order_placed_event_id(&image.order_id);
    let customer_id = image.customer_id.clone();
    let mut event = Envelope::new(OrderPlaced {
        order_id: image.order_id,
        customer_id: image.customer_id,
        currency: image.currency,
        amount_cents: image.total_cents,
        points: image.points,
        channel: CHANNEL_API.to_owned(),
    })
    .with_ordering_key(customer_id)
    .with_trace(image.trace_context);
    event.event_id = event_id;
    event.occurred_at = image.created_at;
    event
}
