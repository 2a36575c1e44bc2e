//! The engine on DynamoDB: the producer's [`Outbox`] and the consumer's [`DynamoConsumerStore`].

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};

use crate::consumer::BoxError;
use crate::store::StoreError;

mod consumer_store;
mod leave;
mod pending;
mod retry;
mod writer;

pub use consumer_store::DynamoConsumerStore;
pub use pending::PendingEvents;
pub use retry::TransientCancellation;
pub use writer::{Outbox, Routes, Transaction, WriteError, Written};

/// An item as the SDK takes it.
pub(crate) type SdkItem = HashMap<String, AttributeValue>;

/// Error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflict",
    "ThrottlingError",
    "LimitExceededException",
];

/// Sorts an SDK error (after the SDK's own retries) into what the caller should do: the same
/// reading for the engine's requests and for a service's own reads and writes. The SDK's error
/// is the result's source.
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let sort: fn(BoxError) -> StoreError = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if TRANSIENT_CODES.contains(&code) || service.raw().status().is_server_error() {
                StoreError::Unavailable
            } else if code == "ValidationException" {
                StoreError::Invalid
            } else {
                StoreError::Failed
            }
        }
        _ => StoreError::Failed,
    };
    sort(Box::new(err))
}

/// The cancellation code of one action of a cancelled transaction.
pub(crate) fn reason_code(reasons: &[CancellationReason], index: usize) -> &str {
    reasons.get(index).and_then(|r| r.code()).unwrap_or("None")
}

/// A cancelled transaction whose reasons are all transient (conflict, throttling).
pub(crate) fn cancellation_is_transient(reasons: &[CancellationReason]) -> bool {
    let codes = || reasons.iter().map(|r| r.code().unwrap_or("None"));
    codes().any(|c| TRANSIENT_CODES.contains(&c))
        && codes().all(|c| c == "None" || TRANSIENT_CODES.contains(&c))
}

pub(crate) fn cancellation_summary(reasons: &[CancellationReason]) -> String {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    format!("transaction cancelled: [{}]", codes.join(", "))
}

pub(crate) fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// DynamoDB's item size rule, closely enough to refuse a transaction before sending it: names and
/// values, with a few bytes for each nested value.
pub(crate) fn item_size(item: &SdkItem) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}
