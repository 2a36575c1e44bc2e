//! The persistence seam. The services are generic over these traits; [`dynamodb`] implements them
//! on DynamoDB, and tests wrap that implementation to inject faults between real writes.

use std::future::Future;

use crate::domain::{
    Applied, EventEnvelope, LedgerPage, NewOrder, Order, OrderView, Reward, StoreError, Timestamp,
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
    /// Marks an event processed and gives it its expiry time. Marking an event that is already
    /// processed, or already expired and deleted, succeeds without writing.
    fn mark_processed(
        &self,
        event: &EventEnvelope,
        processed_at: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Events still pending that occurred before `before`, oldest first within each index shard.
    fn pending_events(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Result<EventEnvelope, StoreError>>, StoreError>> + Send;
}

pub trait RewardsStore: Send + Sync {
    /// Records the reward in the ledger and adds it to the balance atomically; a reward whose
    /// ledger entry exists already changes nothing.
    fn apply_reward(
        &self,
        reward: &Reward,
        applied_at: Timestamp,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    fn ledger(
        &self,
        customer_id: &str,
        limit: usize,
        start_after: Option<&str>,
    ) -> impl Future<Output = Result<LedgerPage, StoreError>> + Send;
}
