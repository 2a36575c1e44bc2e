use aws_sdk_dynamodb::config::interceptors::InterceptorContext;
use aws_sdk_dynamodb::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use super::cancellation_is_transient;

/// Lets the SDK retry a `TransactWriteItems` cancelled only by a transient cause (a conflict with
/// another transaction, throttling of one item). The SDK's own classifiers see a cancellation as a
/// final client error; without this one a conflict would reach the caller on its first occurrence.
/// Install it on every client that commits transactions:
///
/// ```
/// use dynamodb_outbox::dynamodb::TransientCancellation;
/// let config = aws_sdk_dynamodb::Config::builder()
///     .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
///     .retry_classifier(TransientCancellation)
///     .build();
/// # let _ = config;
/// ```
#[derive(Debug, Default)]
pub struct TransientCancellation;

impl ClassifyRetry for TransientCancellation {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let cancelled = err
            .as_operation_error()
            .and_then(|e| e.downcast_ref::<TransactWriteItemsError>())
            .and_then(|e| match e {
                TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                _ => None,
            });
        match cancelled {
            Some(c) if cancellation_is_transient(c.cancellation_reasons()) => {
                RetryAction::transient_error()
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "TransientTransactionCancellation"
    }
}
