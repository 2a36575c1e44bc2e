//! The consumer's side on DynamoDB: effect and progress in one transaction; the outbox item's
//! completion once every consumer is done.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use serde_dynamo::Item;

use super::{
    cancellation_is_transient, cancellation_summary, classify, number, parked_records, query_up_to,
    reason_code, text, update_at, update_unless_moved_on, SdkItem,
};
use crate::consumer::{Effect, Write};
use crate::item::{read_parked, record_found};
use crate::schema;
use crate::store::{
    chain, Commit, CommitOnce, Committed, ItemKey, LastOut, Leaving, Parked, StoreError, StoreOps,
};

/// DynamoDB's limit on the actions of one transaction.
const MAX_ACTIONS: usize = 100;

/// One action of a transaction is the progress update.
const MAX_EFFECT_WRITES: usize = MAX_ACTIONS - 1;

/// A consumer's progress in its own table, and the outbox it marks.
#[derive(Debug, Clone)]
pub struct DynamoConsumerStore {
    pub(super) client: Client,
    table: String,
    pub(super) outbox_table: String,
}

impl DynamoConsumerStore {
    /// Progress (and parked events) in `table`; completions marked on `outbox_table`.
    pub fn new(client: Client, table: impl Into<String>, outbox_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            outbox_table: outbox_table.into(),
        }
    }

    /// The client it talks through.
    #[cfg(feature = "testing")]
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The outbox table it marks.
    #[cfg(feature = "testing")]
    pub(crate) fn outbox_table(&self) -> &str {
        &self.outbox_table
    }

    /// One write as a transaction action; `is_record`: the effect's idempotency record, whose
    /// existing item comes back when its condition fails (to tell a duplicate from a collision).
    fn action(write: &Write, is_record: bool) -> Result<TransactWriteItem, String> {
        match write {
            Write::Put {
                table,
                item,
                if_absent,
            } => {
                let sdk: SdkItem = item.clone().into();
                let mut put = Put::builder().table_name(table).set_item(Some(sdk));
                if is_record {
                    put = put.return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
                }
                if *if_absent {
                    put = put
                        .condition_expression("attribute_not_exists(#pk)")
                        .expression_attribute_names("#pk", schema::PK);
                }
                let put = put.build().map_err(|e| e.to_string())?;
                Ok(TransactWriteItem::builder().put(put).build())
            }
            Write::Add {
                counter,
                amount,
                at_most,
            } => {
                let mut update = Update::builder()
                    .table_name(&counter.table)
                    .key(schema::PK, text(&counter.key.pk))
                    .key(schema::SK, text(&counter.key.sk))
                    .update_expression("ADD #value :amount")
                    .expression_attribute_names("#value", &counter.attribute)
                    .expression_attribute_values(":amount", number(amount));
                if let Some(max) = at_most {
                    let room = max
                        .checked_sub(*amount)
                        .ok_or_else(|| format!("{amount} can never fit under {max}"))?;
                    // A missing number counts as 0, which passes only when 0 has room.
                    let condition = if room >= 0 {
                        "attribute_not_exists(#value) OR #value <= :room"
                    } else {
                        "#value <= :room"
                    };
                    update = update
                        .condition_expression(condition)
                        .expression_attribute_values(":room", number(room));
                }
                let update = update.build().map_err(|e| e.to_string())?;
                Ok(TransactWriteItem::builder().update(update).build())
            }
        }
    }

    /// The commit's progress update, on the condition that the progress is the step's
    /// predecessor.
    fn progress(&self, commit: Commit<'_>) -> Result<TransactWriteItem, StoreError> {
        let Commit { consumer, step, .. } = commit;
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(
                schema::PK,
                text(schema::progress_pk(consumer, &step.ordering_key)),
            )
            .key(schema::SK, text(schema::PROGRESS_SK))
            .update_expression("SET #seq = :seq")
            .expression_attribute_names("#seq", schema::PROGRESS_SEQUENCE)
            .expression_attribute_values(":seq", number(step.sequence))
            // The progress that cancelled the transaction comes back with it: no second read to
            // tell a duplicate from an early event.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = if step.after == 0 {
            update.condition_expression("attribute_not_exists(#seq)")
        } else {
            update
                .condition_expression("#seq = :after")
                .expression_attribute_values(":after", number(step.after))
        };
        let update = update.build().map_err(|e| StoreError::Failed(e.into()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The effect's actions, with room for one more (the progress, or a parked record's
    /// deletion), or why they cannot be a transaction.
    fn effect_actions(effect: &Effect) -> Result<Vec<TransactWriteItem>, Committed> {
        if effect.writes().len() > MAX_EFFECT_WRITES {
            return Err(Committed::Refused(format!(
                "{} writes in one effect: at most {MAX_EFFECT_WRITES} fit in a transaction with the progress",
                effect.writes().len()
            )));
        }
        let mut actions = Vec::with_capacity(effect.writes().len() + 1);
        for (index, write) in effect.writes().iter().enumerate() {
            match Self::action(write, effect.record == Some(index)) {
                Ok(action) => actions.push(action),
                Err(why) => return Err(Committed::Refused(format!("write {index}: {why}"))),
            }
        }
        Ok(actions)
    }

    /// The consumer's progress on a key, read consistently (when a cancellation did not carry it).
    async fn read_progress(&self, consumer: &str, ordering_key: &str) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                schema::PK,
                text(schema::progress_pk(consumer, ordering_key)),
            )
            .key(schema::SK, text(schema::PROGRESS_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().map_or(0, progress_of))
    }
}

fn progress_of(item: &SdkItem) -> u64 {
    item.get(schema::PROGRESS_SEQUENCE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl DynamoConsumerStore {
    /// What a cancelled commit's progress says, when its condition is what cancelled it: the
    /// event applied before, or waiting for an earlier one (the progress comes back with the
    /// cancellation; read again only when it does not).
    async fn blocked(
        &self,
        commit: Commit<'_>,
        reasons: &[CancellationReason],
    ) -> Result<Option<Committed>, StoreError> {
        let Commit {
            consumer,
            step,
            effect,
        } = commit;
        let progress_at = effect.writes().len();
        if reason_code(reasons, progress_at) != "ConditionalCheckFailed" {
            return Ok(None);
        }
        let applied = match reasons.get(progress_at).and_then(|r| r.item.as_ref()) {
            Some(item) => progress_of(item),
            None => self.read_progress(consumer, &step.ordering_key).await?,
        };
        // `applied == after` can only be seen on a re-read: the predecessor committed between
        // the condition and the read, so the event can go now, on a retry.
        Ok(Some(
            step.blocked(applied)
                .unwrap_or(Committed::Waiting { applied }),
        ))
    }
}

/// How a transaction ended.
enum Sent {
    /// Nothing left to explain: it applied, or DynamoDB refused it as invalid.
    Settled(Committed),
    /// A condition cancelled it; the reasons, one per action, say which.
    Cancelled(Vec<CancellationReason>),
}

impl DynamoConsumerStore {
    /// Sends the effect's writes and then `last` (the progress, a parked record's deletion, a
    /// done record) as one transaction. What settles it comes back settled (applied, or the
    /// effect refused before or by DynamoDB); a cancellation comes back for the caller, who
    /// knows which of its actions are the progress or the idempotency record.
    async fn transact(
        &self,
        effect: &Effect,
        last: impl IntoIterator<Item = TransactWriteItem>,
    ) -> Result<Sent, StoreError> {
        let mut actions = match Self::effect_actions(effect) {
            Ok(actions) => actions,
            Err(refused) => return Ok(Sent::Settled(refused)),
        };
        actions.extend(last);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Sent::Settled(Committed::Applied)),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return refused_if_invalid(classify(err)).map(Sent::Settled);
        };
        Ok(Sent::Cancelled(cancelled.cancellation_reasons().to_vec()))
    }
}

impl StoreOps for DynamoConsumerStore {
    fn table(&self) -> &str {
        &self.table
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, StoreError> {
        let progress = self.progress(commit)?;
        let reasons = match self.transact(commit.effect, Some(progress)).await? {
            Sent::Settled(outcome) => return Ok(outcome),
            Sent::Cancelled(reasons) => reasons,
        };
        if let Some(blocked) = self.blocked(commit, &reasons).await? {
            return Ok(blocked);
        }
        effect_cancellation(commit.effect, &reasons)
    }

    async fn commit_leaving(
        &self,
        commit: Commit<'_>,
        leaving: Leaving<'_>,
    ) -> Result<Option<Committed>, StoreError> {
        let Leaving { items, last } = leaving;
        let effect = commit.effect;
        if effect.writes().len() + 1 + items.len() > MAX_ACTIONS {
            return Ok(None);
        }
        let mut actions = vec![self.progress(commit)?];
        for item in items {
            actions.push(self.leave_alone_action(commit.consumer, item, last)?);
        }
        let reasons = match self.transact(effect, actions).await? {
            // Refused as a whole, the joined transaction says nothing of the effect alone (an
            // effect that writes an outbox item it leaves, say): the plain commit decides.
            Sent::Settled(Committed::Refused(_)) => return Ok(None),
            Sent::Settled(outcome) => return Ok(Some(outcome)),
            Sent::Cancelled(reasons) => reasons,
        };
        if let Some(blocked) = self.blocked(commit, &reasons).await? {
            return Ok(Some(blocked));
        }
        let leaves = effect.writes().len() + 1..effect.writes().len() + 1 + items.len();
        if leaves
            .into_iter()
            .any(|at| reason_code(&reasons, at) == "ConditionalCheckFailed")
        {
            return Ok(None);
        }
        effect_cancellation(effect, &reasons).map(Some)
    }

    async fn progress_on(&self, consumer: &str, ordering_key: &str) -> Result<u64, StoreError> {
        self.read_progress(consumer, ordering_key).await
    }

    async fn leave(&self, consumer: &str, item: &ItemKey, last: LastOut) -> Result<(), StoreError> {
        self.leave_item(consumer, item, last).await
    }

    async fn parked(&self, consumer: &str, limit: usize) -> Result<Vec<Parked>, StoreError> {
        let query = parked_records(&self.client, &self.table, consumer);
        query_up_to(query, limit, |item| read_parked(item.into())).await
    }

    async fn commit_parked(
        &self,
        parked: &ItemKey,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        let record_at = effect.writes().len();
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(schema::PK, text(&parked.pk))
            .key(schema::SK, text(&parked.sk))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .build()
            .map_err(|e| StoreError::Failed(e.into()))?;
        let delete = TransactWriteItem::builder().delete(delete).build();
        let reasons = match self.transact(effect, Some(delete)).await? {
            Sent::Settled(outcome) => return Ok(outcome),
            Sent::Cancelled(reasons) => reasons,
        };
        // Gone means another redrive applied it: whatever the effect's conditions say now is
        // about that redrive's writes.
        if reason_code(&reasons, record_at) == "ConditionalCheckFailed" {
            return Ok(Committed::Duplicate);
        }
        if effect
            .record
            .is_some_and(|index| reason_code(&reasons, index) == "ConditionalCheckFailed")
        {
            // A redelivery applied the event after its fix: the parked record is stale.
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(schema::PK, text(&parked.pk))
                .key(schema::SK, text(&parked.sk))
                .send()
                .await
                .map_err(classify)?;
            return Ok(Committed::Duplicate);
        }
        effect_cancellation(effect, &reasons)
    }

    async fn commit_once(&self, once: CommitOnce<'_>) -> Result<Committed, StoreError> {
        let effect = once.effect;
        let (record_at, named, done) = match effect.idempotency_record() {
            Some(Write::Put { item, .. }) => (effect.record.unwrap_or_default(), Some(item), None),
            _ => {
                let done: SdkItem = once.done_record().into();
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(done))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", schema::PK)
                    .build()
                    .map_err(|e| StoreError::Failed(e.into()))?;
                let put = TransactWriteItem::builder().put(put).build();
                (effect.writes().len(), None, Some(put))
            }
        };
        let reasons = match self.transact(effect, done).await? {
            Sent::Settled(outcome) => return Ok(outcome),
            Sent::Cancelled(reasons) => reasons,
        };
        if reason_code(&reasons, record_at) == "ConditionalCheckFailed" {
            let Some(record) = named else {
                return Ok(Committed::Duplicate);
            };
            let existing: Item = reasons
                .get(record_at)
                .and_then(|r| r.item.clone())
                .unwrap_or_default()
                .into();
            return Ok(record_found(&existing, record, once.event_id));
        }
        effect_cancellation(effect, &reasons)
    }

    async fn repark(&self, parked: &ItemKey, reason: &str) -> Result<(), StoreError> {
        let update = update_at(&self.client, &self.table, parked)
            .update_expression("SET #reason = :reason ADD #attempts :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#reason", schema::PARKED_REASON)
            .expression_attribute_names("#attempts", schema::PARKED_ATTEMPTS)
            .expression_attribute_values(":reason", text(reason))
            .expression_attribute_values(":one", number(1));
        update_unless_moved_on(update).await
    }
}

/// A cancelled transaction that its progress or idempotency record did not explain (the callers
/// look at those first): one of the effect's own writes refused it (the transaction's actions
/// start with the effect's writes, in order), which no retry changes, or it was transient, or it
/// failed.
fn effect_cancellation(
    effect: &Effect,
    reasons: &[CancellationReason],
) -> Result<Committed, StoreError> {
    let refused = (0..effect.writes().len())
        .find(|&i| reason_code(reasons, i) == "ConditionalCheckFailed")
        .and_then(|index| effect.writes().get(index));
    if let Some(write) = refused {
        return Ok(Committed::Refused(write.refusal()));
    }
    if let Some(invalid) = reasons.iter().find(|r| r.code() == Some("ValidationError")) {
        return Ok(Committed::Refused(format!(
            "DynamoDB refused the effect as invalid: {}",
            invalid.message().unwrap_or("ValidationError")
        )));
    }
    if cancellation_is_transient(reasons) {
        return Err(StoreError::Unavailable(
            cancellation_summary(reasons).into(),
        ));
    }
    Err(StoreError::Failed(cancellation_summary(reasons).into()))
}

/// A request DynamoDB refused as invalid (an item over 400 KB, a transaction over 4 MB, a key
/// too long) is refused again however often it is sent: the event is poison, with DynamoDB's
/// reason, so it is parked or reported by the consumer's policy instead of retried forever.
fn refused_if_invalid(err: StoreError) -> Result<Committed, StoreError> {
    match err {
        StoreError::Invalid(why) => Ok(Committed::Refused(format!(
            "DynamoDB refused the effect as invalid: {}",
            chain(why.as_ref())
        ))),
        other => Err(other),
    }
}
