//! The order service's persistence seam; [`dynamodb`] implements it on DynamoDB with the outbox
//! engine (pattern 1), [`cdc`] with the order item alone (pattern 2), and tests wrap those
//! implementations to inject faults between real writes.

use std::future::Future;

use crate::domain::{NewOrder, Order, OrderView, StoreError};

pub mod cdc;
pub mod dynamodb;

/// What writing a new order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The order and its event were written together.
    Created,
    /// An order with this id was already there; nothing was written.
    Exists(Order),
}

/// Where orders live.
pub trait OrderStore: Send + Sync {
    /// Writes the order and its event atomically, or neither.
    fn put_order(
        &self,
        new: &NewOrder,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// The order, and whether its event still waits for a consumer.
    fn get_order(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<OrderView>, StoreError>> + Send;
}
