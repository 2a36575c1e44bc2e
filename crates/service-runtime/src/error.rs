//! The errors both services share: a request that breaks a rule, and a database that failed.

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

/// An error and the chain of its sources in one line (`a: b: c`): what a log line and an
/// error's text keep of an engine error whose cause is its source.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let chain = std::iter::successors(Some(error), |error| error.source());
    chain
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
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

impl From<dynamodb_outbox::StoreError> for StoreError {
    fn from(err: dynamodb_outbox::StoreError) -> Self {
        // The cause with its whole chain: the SDK's error says "service error" at the top.
        let why = aws_sdk_dynamodb::error::DisplayErrorContext(err.cause()).to_string();
        match err {
            dynamodb_outbox::StoreError::Unavailable(_) => Self::Unavailable(why),
            dynamodb_outbox::StoreError::Failed(_) | dynamodb_outbox::StoreError::Invalid(_) => {
                Self::Failed(why)
            }
        }
    }
}

/// Longest id accepted in a key, a URL or a log line.
pub const MAX_ID_LEN: usize = 64;

/// Customer ids, SKUs and order ids: short, and safe to put in keys, URLs and logs.
pub fn validate_id(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid_id",
            field,
            format!("must be 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.', ':'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the order was not written")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("the database is unavailable")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn an_error_reads_with_each_of_its_causes_in_order() {
        let error = Outer(Middle(std::io::Error::other("connection reset")));
        assert_eq!(
            with_causes(&error),
            "the order was not written: the database is unavailable: connection reset"
        );
        assert_eq!(with_causes(&error.0 .0), "connection reset");
    }
}
