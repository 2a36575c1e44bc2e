//! The rewards service's read side; [`dynamodb`] implements it. (The write side is the
//! consumer's effect, committed by the outbox engine.)

use std::future::Future;

use crate::domain::{LedgerPage, StoreError};

pub mod dynamodb;

/// Where balances and ledgers are read.
pub trait RewardsStore: Send + Sync {
    /// A page of a customer's ledger, newest first, after the ledger sort key `start_after`.
    fn ledger(
        &self,
        customer_id: &str,
        limit: usize,
        start_after: Option<&str>,
    ) -> impl Future<Output = Result<LedgerPage, StoreError>> + Send;
}
