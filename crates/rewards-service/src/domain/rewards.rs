//! What an order is worth to the rewards programme, and the rules an event must keep to earn it.

use dynamodb_outbox::Envelope;
use order_service::domain::events::order_placed_violation;
use order_service::domain::OrderPlaced;
use serde::{Deserialize, Serialize};

/// What an `OrderPlaced` event means to the rewards service: only an event that keeps the rules
/// every consumer of the order service checks ([`order_placed_violation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reward {
    pub customer_id: String,
    pub order_id: String,
    pub event_id: String,
    pub points: i64,
    pub occurred_at: String,
}

impl TryFrom<&Envelope<OrderPlaced>> for Reward {
    /// Why the event can never be applied, however often it is retried.
    type Error = String;

    fn try_from(e: &Envelope<OrderPlaced>) -> Result<Self, String> {
        if let Some(why) = order_placed_violation(e, &e.payload) {
            return Err(why);
        }
        let p = &e.payload;
        Ok(Self {
            customer_id: p.customer_id.clone(),
            order_id: p.order_id.clone(),
            event_id: e.event_id.clone(),
            points: p.points,
            occurred_at: e.occurred_at.clone(),
        })
    }
}

/// The largest balance a customer can hold: like money, it stays below 2^53 so every JSON
/// consumer reads it exactly, and far below `i64::MAX` so no sum of rewards can overflow what the
/// code reads back. A reward that would pass it is refused, and the balance stays as it was.
pub const MAX_BALANCE: i64 = (1 << 53) - 1;

/// One line of a customer's rewards ledger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerEntry {
    pub order_id: String,
    pub points: i64,
    pub event_id: String,
    pub occurred_at: String,
    pub applied_at: String,
}

/// A page of the ledger, newest first; `next` is an opaque cursor for the following page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPage {
    pub points: i64,
    pub entries: Vec<LedgerEntry>,
    pub next: Option<String>,
}
