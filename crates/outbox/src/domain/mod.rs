//! The business core: orders, the outbox event envelope and the rewards rules. No AWS types here;
//! persistence is reached through the traits in [`crate::store`].

pub mod error;
pub mod event;
pub mod order;
pub mod rewards;
mod time;

pub use error::{OrderError, RewardError, StoreError, ValidationError};
pub use event::{EventEnvelope, OrderPlaced, TraceContext, TraceLink};
pub use order::{NewOrder, Order, OrderRequest, OrderView};
pub use rewards::{Applied, LedgerEntry, LedgerPage, Reward, RewardWrite, MAX_BALANCE};
pub use time::Timestamp;
