//! The persistence seam. The services are generic over these traits; [`dynamodb`] implements them
//! on DynamoDB, and tests wrap that implementation to inject faults between real writes.

use std::future::Future;

use serde::Serialize;

use crate::domain::{
    EventEnvelope, LedgerPage, NewOrder, Order, OrderView, Reward, RewardError, RewardWrite,
    StoreError, Timestamp,
};

pub mod dynamodb;

/// What writing a new order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The order and its outbox event were written together.
    Created,
    /// An order with this id was already there; nothing was written.
    Exists(Order),
}

pub trait OrderStore: Send + Sync {
    /// Writes the order and its outbox event atomically, or neither.
    fn put_order(
        &self,
        new: &NewOrder,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    fn get_order(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<OrderView>, StoreError>> + Send;
}

pub trait OutboxStore: Send + Sync {
    /// The table holding the outbox: the consumer accepts records from its stream only.
    fn table_name(&self) -> &str;

    /// Marks an event processed and gives it its expiry time. Marking an event that is already
    /// processed, or already expired and deleted, succeeds without writing.
    fn mark_processed(
        &self,
        event: &EventEnvelope,
        processed_at: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The oldest events still pending that occurred before `before`: up to `per_shard` from
    /// each shard of the pending index, so every shard makes progress on every run.
    fn pending_events(
        &self,
        before: Timestamp,
        per_shard: usize,
    ) -> impl Future<Output = Result<Vec<OutboxItem>, StoreError>> + Send;

    /// Takes a pending event out of the pending shards into the parked state, with the reason.
    /// An event processed in the meantime is left as it is.
    fn park(
        &self,
        key: &OutboxItemKey,
        reason: &str,
        parked_at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Parked events, oldest first.
    fn parked_events(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxItem>, StoreError>> + Send;

    /// Puts a parked event back in its pending shard, for the sweeper to redrive.
    fn unpark(&self, item: &OutboxItem) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The key of an outbox item: what names an event when nothing else in it is readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxItemKey {
    pub pk: String,
    pub sk: String,
}

impl std::fmt::Display for OutboxItemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pk, self.sk)
    }
}

/// An outbox item as the sweeper reads it from the pending index: its key, its event id when it
/// has one, and the envelope, or why it is poison (decoded with the consumer's own checks).
#[derive(Debug)]
pub struct OutboxItem {
    pub key: OutboxItemKey,
    pub event_id: Option<String>,
    pub event: Result<EventEnvelope, RewardError>,
    /// Why the item was parked, for a parked one.
    pub parked_reason: Option<String>,
}

impl OutboxItem {
    /// The event id, or the item key when even that is missing: what every report names.
    pub fn name(&self) -> String {
        self.event_id
            .clone()
            .unwrap_or_else(|| format!("item {}", self.key))
    }
}

pub trait RewardsStore: Send + Sync {
    /// Records the order's reward (the idempotency record, keyed by the order id), its ledger
    /// entry and the balance increase atomically, or nothing: an order rewarded before, or a
    /// balance that would pass [`crate::domain::MAX_BALANCE`], changes nothing and says which.
    fn apply_reward(
        &self,
        reward: &Reward,
        applied_at: Timestamp,
    ) -> impl Future<Output = Result<RewardWrite, StoreError>> + Send;

    fn ledger(
        &self,
        customer_id: &str,
        limit: usize,
        start_after: Option<&str>,
    ) -> impl Future<Output = Result<LedgerPage, StoreError>> + Send;
}
