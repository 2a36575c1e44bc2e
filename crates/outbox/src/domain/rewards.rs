use serde::{Deserialize, Serialize};

use super::event::{EventEnvelope, ORDER_PLACED, SCHEMA_VERSION};
use super::order::validate_id;
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

/// Whether applying a reward changed anything: a duplicate delivery finds the ledger entry there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Now,
    AlreadyApplied,
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
