//! DynamoDB implementation of the store traits.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};

use crate::domain::StoreError;

mod orders;
mod retry;
mod rewards;

pub use orders::{order_item, outbox_item, DynamoOrderStore};
pub use retry::TransientCancellation;
pub use rewards::DynamoRewardsStore;

pub type Item = HashMap<String, AttributeValue>;

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

/// Sorts an SDK error into what the caller should do about it. Called after the SDK's own retries.
pub(crate) fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(describe(&err))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if TRANSIENT_CODES.contains(&code) || service.raw().status().is_server_error() {
                StoreError::Unavailable(describe(&err))
            } else {
                StoreError::Failed(describe(&err))
            }
        }
        _ => StoreError::Failed(describe(&err)),
    }
}

fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("unknown error"),
            s.err().message().unwrap_or_default()
        ),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

/// How a cancelled transaction ended for one of its items.
pub(crate) fn reason_code(reasons: &[CancellationReason], index: usize) -> &str {
    reasons.get(index).and_then(|r| r.code()).unwrap_or("None")
}

/// A cancelled transaction whose reasons are all transient (conflict, throttling) after the SDK's
/// retries: the same request may succeed later.
pub(crate) fn cancellation_is_transient(reasons: &[CancellationReason]) -> bool {
    let codes = || reasons.iter().map(|r| r.code().unwrap_or("None"));
    codes().any(|c| TRANSIENT_CODES.contains(&c))
        && codes().all(|c| c == "None" || TRANSIENT_CODES.contains(&c))
}

pub(crate) fn cancellation_summary(reasons: &[CancellationReason]) -> String {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    format!("transaction cancelled: [{}]", codes.join(", "))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Failed(format!("encoding failed: {e}")))
}
