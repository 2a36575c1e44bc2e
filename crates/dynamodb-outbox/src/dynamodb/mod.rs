//! The engine on DynamoDB: the producer's [`Outbox`] and the consumer's [`DynamoConsumerStore`].

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_dynamodb::Client;

use crate::consumer::BoxError;
use crate::schema;
use crate::store::{ItemKey, StoreError};

mod consumer_store;
mod leave;
mod pending;
mod retry;
mod routes;
mod view;
mod writer;

pub use consumer_store::DynamoConsumerStore;
pub use pending::PendingEvents;
pub use retry::TransientCancellation;
pub use routes::Routes;
pub use view::{OutboxView, ParkedRecord, StoredEvent};
pub use writer::{Outbox, Transaction, WriteError, Written, DEFAULT_CONTENTION_BUDGET};

/// An item as the SDK takes it.
pub(crate) type SdkItem = HashMap<String, AttributeValue>;

/// The reasons DynamoDB gives for cancelling a transaction that a later attempt may not meet: its
/// own vocabulary for `TransactionCanceledException`'s reasons (the TransactWriteItems API
/// reference), which the SDK's retry classifiers do not read. Every other error code is read by
/// the SDK's own lists ([`is_transient_code`]).
const TRANSIENT_CANCELLATIONS: &[&str] = &[
    "TransactionConflict",
    "ProvisionedThroughputExceeded",
    "ThrottlingError",
];

/// An error code that means "try again later" rather than "this request is wrong": the codes the
/// SDK itself retries as throttling or transient (`aws_runtime`'s lists, kept up to date with the
/// SDK), so the engine and the SDK never disagree on what may pass.
pub(crate) fn is_transient_code(code: &str) -> bool {
    THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code)
}

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
            if is_transient_code(code) || service.raw().status().is_server_error() {
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
    codes().any(|c| TRANSIENT_CANCELLATIONS.contains(&c))
        && codes().all(|c| c == "None" || TRANSIENT_CANCELLATIONS.contains(&c))
}

pub(crate) fn cancellation_summary(reasons: &[CancellationReason]) -> String {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    format!("transaction cancelled: [{}]", codes.join(", "))
}

/// The query of `ordering_key`'s outbox events in `table`, sequences 1 to `last`, read
/// consistently (lowest first unless the caller turns it around).
pub(crate) fn key_events(
    client: &Client,
    table: &str,
    ordering_key: &str,
    last: u64,
) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk AND #sk BETWEEN :first AND :last")
        .expression_attribute_names("#pk", schema::PK)
        .expression_attribute_names("#sk", schema::SK)
        .expression_attribute_values(":pk", text(schema::key_pk(ordering_key)))
        .expression_attribute_values(":first", text(schema::event_sk(1)))
        .expression_attribute_values(":last", text(schema::event_sk(last)))
        .consistent_read(true)
}

/// The query of `consumer`'s parked records in its table `table`, read consistently, oldest
/// first (their sort key starts with when they were parked).
pub(crate) fn parked_records(client: &Client, table: &str, consumer: &str) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", schema::PK)
        .expression_attribute_values(":pk", text(schema::parked_pk(consumer)))
        .consistent_read(true)
}

/// Up to `limit` of what `read` makes of `query`'s items, page after page from the first: each
/// page asks for what is still missing (at most 1000 items), until `limit` or the last page.
pub(crate) async fn query_up_to<T>(
    query: QueryFluentBuilder,
    limit: usize,
    mut read: impl FnMut(SdkItem) -> Option<T>,
) -> Result<Vec<T>, StoreError> {
    let mut found = Vec::new();
    let mut start = None;
    while found.len() < limit {
        let out = query
            .clone()
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit - found.len()).unwrap_or(1000).min(1000))
            .send()
            .await
            .map_err(classify)?;
        found.extend(
            out.items
                .unwrap_or_default()
                .into_iter()
                .filter_map(&mut read),
        );
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    Ok(found)
}

/// Up to `per_shard` of what `read` makes of each shard of `table`'s pending index, oldest
/// first, a shard's query under `key_condition` (on `#ppk = :ppk`, the shard, and what `narrow`
/// adds to the query: its other names and values, a filter).
pub(crate) async fn pending_shards<T>(
    client: &Client,
    table: &str,
    per_shard: usize,
    key_condition: &str,
    narrow: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
    mut read: impl FnMut(SdkItem) -> Option<T>,
) -> Result<Vec<T>, StoreError> {
    let mut found = Vec::new();
    for shard in 0..schema::PENDING_SHARDS {
        let query = client
            .query()
            .table_name(table)
            .index_name(schema::PENDING_INDEX)
            .key_condition_expression(key_condition)
            .expression_attribute_names("#ppk", schema::PENDING_PK)
            .expression_attribute_values(":ppk", text(schema::pending_pk_for_shard(shard)));
        found.extend(query_up_to(narrow(query), per_shard, &mut read).await?);
    }
    Ok(found)
}

/// The update of the item at `key` in `table`, for the caller's expressions.
pub(crate) fn update_at(client: &Client, table: &str, key: &ItemKey) -> UpdateItemFluentBuilder {
    client
        .update_item()
        .table_name(table)
        .key(schema::PK, text(&key.pk))
        .key(schema::SK, text(&key.sk))
}

/// Sends `update`, whose condition is that the item is still as the caller found it: when it is
/// not (gone, or moved on meanwhile), there is nothing left to update, and the item is left as
/// it is. Any other failure is the caller's error.
pub(crate) async fn update_unless_moved_on(
    update: UpdateItemFluentBuilder,
) -> Result<(), StoreError> {
    match update.send().await {
        Ok(_) => Ok(()),
        Err(err) if leave::is_failed_condition(&err) => Ok(()),
        Err(err) => Err(classify(err)),
    }
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

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::CancellationReason;

    use super::*;

    fn reasons(codes: &[&str]) -> Vec<CancellationReason> {
        codes
            .iter()
            .map(|code| CancellationReason::builder().code(*code).build())
            .collect()
    }

    #[test]
    fn a_transaction_cancelled_only_by_capacity_or_a_conflict_may_pass_later() {
        for code in TRANSIENT_CANCELLATIONS {
            assert!(
                cancellation_is_transient(&reasons(&["None", code])),
                "{code}"
            );
        }
        assert!(!cancellation_is_transient(&reasons(&["None", "None"])));
        for mixed in [
            ["ConditionalCheckFailed", "TransactionConflict"],
            ["ValidationError", "ThrottlingError"],
            [
                "ItemCollectionSizeLimitExceeded",
                "ProvisionedThroughputExceeded",
            ],
        ] {
            assert!(!cancellation_is_transient(&reasons(&mixed)), "{mixed:?}");
        }
    }

    #[test]
    fn the_sdks_throttling_and_transient_codes_may_pass_later_and_others_do_not() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "TransactionInProgressException",
            "LimitExceededException",
            "RequestTimeout",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
