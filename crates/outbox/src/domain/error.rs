use serde::Serialize;

/// A request that breaks a rule: which field, which rule, and a sentence for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub code: &'static str,
    pub message: String,
    pub field: String,
}

impl ValidationError {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What can go wrong talking to the database, already sorted by what the caller should do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Throttling, 5xx, transaction conflicts, timeouts: the SDK already retried; try again later.
    #[error("the database is temporarily unavailable: {0}")]
    Unavailable(String),
    /// Anything else the database refused (a bug, a missing table, missing permissions).
    #[error("database request failed: {0}")]
    Failed(String),
    /// An item exists but does not decode: data written by something else, or a schema drift.
    #[error("stored item is not readable: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    #[error("order not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an outbox event could not be applied to the rewards ledger.
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    /// The event can never be applied as it is: retrying will not help.
    #[error("poison event: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
