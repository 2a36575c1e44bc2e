use serde::{Deserialize, Serialize};

use super::event::{EventEnvelope, ORDER_PLACED, SCHEMA_VERSION};
use super::order::{points_for, validate_id, MAX_MONEY_CENTS};
use super::RewardError;

/// What an `OrderPlaced` event means to the rewards service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reward {
    pub customer_id: String,
    pub order_id: String,
    pub event_id: String,
    pub points: i64,
    pub occurred_at: String,
}

impl TryFrom<&EventEnvelope> for Reward {
    type Error = RewardError;

    /// An event that breaks the rules can never be applied, however often it is retried.
    fn try_from(e: &EventEnvelope) -> Result<Self, RewardError> {
        let poison = |why: String| Err(RewardError::Poison(why));
        if e.event_type != ORDER_PLACED || e.schema_version != SCHEMA_VERSION {
            return poison(format!(
                "unsupported event {} v{}",
                e.event_type, e.schema_version
            ));
        }
        let p = &e.payload;
        if p.points < 0 || p.total_cents < 0 {
            return poison(format!("negative amount: {} points", p.points));
        }
        // The order rules bound the total, and the points follow from it: an event claiming
        // anything else was not written by the order service's rules, whatever its source.
        if p.total_cents > MAX_MONEY_CENTS {
            return poison(format!(
                "total of {} minor units exceeds the order limit {MAX_MONEY_CENTS}",
                p.total_cents
            ));
        }
        if p.points != points_for(p.total_cents) {
            return poison(format!(
                "{} points do not match a total of {} minor units ({} points)",
                p.points,
                p.total_cents,
                points_for(p.total_cents)
            ));
        }
        for (field, id) in [("customer_id", &p.customer_id), ("order_id", &p.order_id)] {
            validate_id(field, id).map_err(|v| RewardError::Poison(v.to_string()))?;
        }
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

/// Whether applying a reward changed anything: a duplicate delivery finds the order's reward
/// already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Now,
    AlreadyApplied,
}

/// What the rewards store found when it tried to record a reward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewardWrite {
    /// Recorded now: the order's reward record, the ledger entry and the balance, together.
    Recorded,
    /// This order's reward was recorded before, for this customer: nothing changed.
    AlreadyRecorded,
    /// This order's reward was recorded before for another customer: nothing changed.
    OrderRewardedToAnotherCustomer(String),
    /// Adding the points would take the balance past [`MAX_BALANCE`]: nothing changed.
    BalanceLimitReached,
}

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
