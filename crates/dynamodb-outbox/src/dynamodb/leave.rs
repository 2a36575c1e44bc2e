//! A consumer leaving an item's waiting set, and the last one out finishing the item: one
//! protocol for outbox events (which then expire) and entity items (which stay).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{classify, number, text, update_at, update_unless_moved_on, SdkItem};
use crate::schema;
use crate::store::{ItemKey, LastOut, StoreError};

use super::DynamoConsumerStore;

type UpdateResult = Result<
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::error::SdkError<
        UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
>;

impl LastOut {
    /// What the last one out sets, before the `REMOVE` of the pending index's keys.
    fn set_clause(self) -> &'static str {
        match self {
            LastOut::Expire { .. } => "SET #status = :processed, #expires = :expires ",
            LastOut::Keep => "",
        }
    }

    /// That the item is still in the pending index, as a condition.
    fn pending_condition(self) -> &'static str {
        match self {
            LastOut::Expire { .. } => "#status = :pending",
            LastOut::Keep => "attribute_exists(#ppk)",
        }
    }

    /// The same, on the item as it was.
    fn was_pending(self, item: &SdkItem) -> bool {
        match self {
            LastOut::Expire { .. } => item
                .get(schema::STATUS)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|status| status == schema::STATUS_PENDING),
            LastOut::Keep => item.contains_key(schema::PENDING_PK),
        }
    }

    /// The names and values `set_clause` (and `pending_condition`, when `checks_pending`) use:
    /// DynamoDB refuses an expression given any it does not use.
    fn bindings(self, checks_pending: bool) -> Bindings {
        let LastOut::Expire { at } = self else {
            return (Vec::new(), Vec::new());
        };
        let names = vec![
            ("#status", schema::STATUS),
            ("#expires", schema::EXPIRES_AT),
        ];
        let mut values = vec![
            (":processed", text(schema::STATUS_PROCESSED)),
            (":expires", number(at)),
        ];
        if checks_pending {
            values.push((":pending", text(schema::STATUS_PENDING)));
        }
        (names, values)
    }

    fn bind(
        self,
        update: UpdateItemFluentBuilder,
        checks_pending: bool,
    ) -> UpdateItemFluentBuilder {
        with_bindings(update, self.bindings(checks_pending))
    }
}

type Bindings = (
    Vec<(&'static str, &'static str)>,
    Vec<(&'static str, AttributeValue)>,
);

/// Leaving an item as its only waiting consumer, finishing it: the update and its condition.
/// `size` only after `attribute_exists`: once the item is finished the set is gone, and `size`
/// of a missing attribute is false on DynamoDB but an error on some servers (moto answers 500),
/// which must not turn a duplicate into a retry.
const LEAVE_ALONE_CONDITION: &str = "attribute_exists(#pk) AND attribute_exists(#waiting) AND size(#waiting) = :one AND contains(#waiting, :name)";

fn with_bindings(
    mut update: UpdateItemFluentBuilder,
    (names, values): Bindings,
) -> UpdateItemFluentBuilder {
    for (name, attribute) in names {
        update = update.expression_attribute_names(name, attribute);
    }
    for (name, value) in values {
        update = update.expression_attribute_values(name, value);
    }
    update
}

fn leave_alone_update(last: LastOut) -> String {
    format!("{}REMOVE #waiting, #ppk, #psk", last.set_clause())
}

fn leave_alone_bindings(consumer: &str, last: LastOut) -> Bindings {
    let (mut names, mut values) = last.bindings(false);
    names.extend([
        ("#pk", schema::PK),
        ("#waiting", schema::WAITING_CONSUMERS),
        ("#ppk", schema::PENDING_PK),
        ("#psk", schema::PENDING_SK),
    ]);
    values.extend([(":one", number(1)), (":name", text(consumer))]);
    (names, values)
}

impl DynamoConsumerStore {
    pub(super) async fn leave_item(
        &self,
        consumer: &str,
        item: &ItemKey,
        last: LastOut,
    ) -> Result<(), StoreError> {
        let old = match self.leave_alone(consumer, item, last).await {
            Ok(_) => return Ok(()),
            Err(err) if is_failed_condition(&err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(failed) => failed.item,
                _ => None,
            },
            Err(err) => return Err(classify(err)),
        };
        // The item as it was, when the database said: a redelivered duplicate usually finds it
        // finished, and then this was the only request.
        if old.as_ref().is_some_and(|old| !last.was_pending(old)) {
            return Ok(());
        }
        // Others wait too (or this consumer left and the item was not finished): leave the
        // set, and the last one out finishes the item.
        let removed = self
            .update(item)
            .update_expression("DELETE #waiting :me")
            .condition_expression("contains(#waiting, :name)")
            .expression_attribute_names("#waiting", schema::WAITING_CONSUMERS)
            .expression_attribute_values(":me", AttributeValue::Ss(vec![consumer.to_owned()]))
            .expression_attribute_values(":name", text(consumer))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match removed {
            Ok(out) => {
                let still_waiting = out
                    .attributes
                    .unwrap_or_default()
                    .get(schema::WAITING_CONSUMERS)
                    .and_then(|v| v.as_ss().ok())
                    .is_some_and(|set| !set.is_empty());
                if still_waiting {
                    return Ok(());
                }
            }
            // Not waiting for this consumer any more: done before, or the item is gone. The
            // last step may not have happened (a crash or a lost answer in between), so it is
            // tried again; its condition makes it a no-op when there is nothing to finish.
            Err(err) if is_failed_condition(&err) => {}
            Err(err) => return Err(classify(err)),
        }
        self.finish(item, last).await
    }

    /// The usual case, one consumer per item: leaving the waiting set and finishing the item are
    /// one write, on the condition that this consumer is the only one left.
    async fn leave_alone(&self, consumer: &str, item: &ItemKey, last: LastOut) -> UpdateResult {
        let update = self
            .update(item)
            .update_expression(leave_alone_update(last))
            .condition_expression(LEAVE_ALONE_CONDITION)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        with_bindings(update, leave_alone_bindings(consumer, last))
            .send()
            .await
    }

    /// [`Self::leave_alone`] as an action of a transaction (the effect's commit), which the
    /// transaction's cancellation reports when its condition fails.
    pub(super) fn leave_alone_action(
        &self,
        consumer: &str,
        item: &ItemKey,
        last: LastOut,
    ) -> Result<TransactWriteItem, StoreError> {
        let (names, values) = leave_alone_bindings(consumer, last);
        let update = Update::builder()
            .table_name(&self.outbox_table)
            .key(schema::PK, text(&item.pk))
            .key(schema::SK, text(&item.sk))
            .update_expression(leave_alone_update(last))
            .condition_expression(LEAVE_ALONE_CONDITION)
            .set_expression_attribute_names(Some(
                names
                    .into_iter()
                    .map(|(n, a)| (n.to_owned(), a.to_owned()))
                    .collect(),
            ))
            .set_expression_attribute_values(Some(
                values.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
            ))
            .build()
            .map_err(|e| StoreError::Failed(e.into()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The last consumer out: the item leaves the pending index (and an event may now expire).
    /// Nothing to finish (finished before, or gone) is no error.
    async fn finish(&self, item: &ItemKey, last: LastOut) -> Result<(), StoreError> {
        let update = self
            .update(item)
            .update_expression(format!("{}REMOVE #ppk, #psk", last.set_clause()))
            .condition_expression(format!(
                "attribute_exists(#pk) AND attribute_not_exists(#waiting) AND {}",
                last.pending_condition()
            ))
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#waiting", schema::WAITING_CONSUMERS)
            .expression_attribute_names("#ppk", schema::PENDING_PK)
            .expression_attribute_names("#psk", schema::PENDING_SK);
        update_unless_moved_on(last.bind(update, true)).await
    }

    fn update(&self, item: &ItemKey) -> UpdateItemFluentBuilder {
        update_at(&self.client, &self.outbox_table, item)
    }
}

pub(super) fn is_failed_condition(
    err: &aws_sdk_dynamodb::error::SdkError<
        UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}
