//! The order service's business core: orders, their rules, and the events announcing them. No
//! AWS types here; persistence is reached through [`crate::store::OrderStore`].

pub mod events;
pub mod order;

pub use events::OrderPlaced;
pub use order::{NewOrder, Order, OrderRequest, OrderView};
pub use service_runtime::{StoreError, Timestamp, ValidationError};

/// Why an order could not be placed or read.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The Idempotency-Key was used before with another request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
