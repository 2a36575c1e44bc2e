//! The rewards service's business core: what an order earns and how a ledger reads. No AWS
//! types here.

pub mod rewards;

pub use rewards::{LedgerEntry, LedgerPage, Reward, MAX_BALANCE};
pub use service_runtime::{StoreError, Timestamp, ValidationError};
