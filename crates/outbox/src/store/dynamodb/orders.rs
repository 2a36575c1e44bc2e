use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::{
    cancellation_is_transient, cancellation_summary, classify, decode, encode, n, reason_code, s,
    string_attr, Item,
};
use crate::domain::event::decode_envelope;
use crate::domain::{EventEnvelope, NewOrder, Order, OrderView, StoreError, Timestamp};
use crate::schema::{self, orders as keys};
use crate::store::{OrderStore, OutboxItem, OutboxItemKey, OutboxStore, PutOutcome};

/// Orders and their outbox events, in the order service's own table.
#[derive(Clone, Debug)]
pub struct DynamoOrderStore {
    client: Client,
    table: String,
}

impl DynamoOrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn conditional_put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            // The existing order comes back with the cancellation: no second read to compare it.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The order as stored, read consistently: used when a cancellation did not carry it.
    async fn read_order(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::order_pk(order_id)))
            .key(schema::SK, s(keys::ORDER_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(decode).transpose()
    }
}

pub fn order_item(order: &Order) -> Result<Item, StoreError> {
    let mut item = encode(order)?;
    item.insert(schema::PK.into(), s(keys::order_pk(&order.order_id)));
    item.insert(schema::SK.into(), s(keys::ORDER_SK));
    item.insert(schema::ENTITY.into(), s(schema::ENTITY_ORDER));
    Ok(item)
}

/// The envelope's own fields at the top level (the stream filter and the consumer read them
/// there), plus the keys, the status and the sparse pending-index keys. No `expires_at`: only a
/// processed event may expire.
pub fn outbox_item(event: &EventEnvelope) -> Result<Item, StoreError> {
    let mut item = encode(event)?;
    item.insert(schema::PK.into(), s(keys::order_pk(&event.aggregate_id)));
    item.insert(schema::SK.into(), s(keys::outbox_sk(&event.event_id)));
    item.insert(schema::ENTITY.into(), s(schema::ENTITY_OUTBOX_EVENT));
    item.insert(schema::STATUS.into(), s(schema::STATUS_PENDING));
    item.insert(
        schema::PENDING_PK.into(),
        s(keys::pending_pk(&event.event_id)),
    );
    item.insert(
        schema::PENDING_SK.into(),
        s(keys::pending_sk(&event.occurred_at, &event.event_id)),
    );
    Ok(item)
}

impl OrderStore for DynamoOrderStore {
    async fn put_order(&self, new: &NewOrder) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.conditional_put(order_item(&new.order)?)?)
            .transact_items(self.conditional_put(outbox_item(&new.event)?)?)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(PutOutcome::Created),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(classify(err));
        };
        let reasons = cancelled.cancellation_reasons();
        if reason_code(reasons, 0) == "ConditionalCheckFailed" {
            let carried = reasons.first().and_then(|r| r.item.clone());
            let existing = match carried {
                Some(item) => Some(decode::<Order>(item)?),
                None => self.read_order(&new.order.order_id).await?,
            };
            return existing.map(PutOutcome::Exists).ok_or_else(|| {
                StoreError::Failed("order condition failed but no order is stored".into())
            });
        }
        if cancellation_is_transient(reasons) {
            return Err(StoreError::Unavailable(cancellation_summary(reasons)));
        }
        Err(StoreError::Failed(cancellation_summary(reasons)))
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<OrderView>, StoreError> {
        // One query returns the order and its outbox events: they share the partition.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(keys::order_pk(order_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let mut order = None;
        let mut outbox_pending = false;
        for item in out.items.unwrap_or_default() {
            match string_attr(&item, schema::ENTITY) {
                Some(schema::ENTITY_ORDER) => order = Some(decode::<Order>(item)?),
                Some(schema::ENTITY_OUTBOX_EVENT) => {
                    outbox_pending |=
                        string_attr(&item, schema::STATUS) == Some(schema::STATUS_PENDING);
                }
                _ => {}
            }
        }
        Ok(order.map(|order| OrderView {
            order,
            outbox_pending,
        }))
    }
}

impl OutboxStore for DynamoOrderStore {
    fn table_name(&self) -> &str {
        &self.table
    }

    async fn mark_processed(
        &self,
        event: &EventEnvelope,
        processed_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::order_pk(&event.aggregate_id)))
            .key(schema::SK, s(keys::outbox_sk(&event.event_id)))
            // Only a pending item that still exists: an update must never recreate an item that
            // TTL already deleted, nor push back the expiry of one already processed.
            // A parked event that a retried stream delivery applied after all is done too.
            .condition_expression("attribute_exists(#pk) AND #status IN (:pending, :parked)")
            .update_expression(
                "SET #status = :processed, #processed_at = :now, #expires_at = :expires \
                 REMOVE #pending_pk, #pending_sk, #parked_reason, #parked_at",
            )
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#status", schema::STATUS)
            .expression_attribute_names("#processed_at", schema::PROCESSED_AT)
            .expression_attribute_names("#expires_at", schema::EXPIRES_AT)
            .expression_attribute_names("#pending_pk", schema::PENDING_PK)
            .expression_attribute_names("#pending_sk", schema::PENDING_SK)
            .expression_attribute_names("#parked_reason", schema::PARKED_REASON)
            .expression_attribute_names("#parked_at", schema::PARKED_AT)
            .expression_attribute_values(":pending", s(schema::STATUS_PENDING))
            .expression_attribute_values(":parked", s(schema::STATUS_PARKED))
            .expression_attribute_values(":processed", s(schema::STATUS_PROCESSED))
            .expression_attribute_values(":now", s(processed_at.to_string()))
            .expression_attribute_values(":expires", n(expires_at.unix_seconds()))
            .send()
            .await;
        ignore_failed_condition(result)
    }

    async fn pending_events(
        &self,
        before: Timestamp,
        per_shard: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let cutoff = before.to_string();
        let mut found = Vec::new();
        for shard in 0..schema::PENDING_SHARDS {
            let pk = keys::pending_pk_for_shard(shard);
            found.extend(self.index_partition(&pk, Some(&cutoff), per_shard).await?);
        }
        Ok(found)
    }

    async fn park(
        &self,
        key: &OutboxItemKey,
        reason: &str,
        parked_at: Timestamp,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(&key.pk))
            .key(schema::SK, s(&key.sk))
            .condition_expression("attribute_exists(#pk) AND #status = :pending")
            .update_expression(
                "SET #status = :parked, #reason = :reason, #parked_at = :now, #pending_pk = :parked_pk",
            )
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#status", schema::STATUS)
            .expression_attribute_names("#reason", schema::PARKED_REASON)
            .expression_attribute_names("#parked_at", schema::PARKED_AT)
            .expression_attribute_names("#pending_pk", schema::PENDING_PK)
            .expression_attribute_values(":pending", s(schema::STATUS_PENDING))
            .expression_attribute_values(":parked", s(schema::STATUS_PARKED))
            .expression_attribute_values(":reason", s(truncate(reason, MAX_REASON_LEN)))
            .expression_attribute_values(":now", s(parked_at.to_string()))
            .expression_attribute_values(":parked_pk", s(keys::PARKED_PK))
            .send()
            .await;
        ignore_failed_condition(result)
    }

    async fn parked_events(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.index_partition(keys::PARKED_PK, None, limit).await
    }

    async fn unpark(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let event_id = item
            .event_id
            .as_deref()
            .or_else(|| keys::event_id_of_outbox_sk(&item.key.sk))
            .unwrap_or(&item.key.sk);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(&item.key.pk))
            .key(schema::SK, s(&item.key.sk))
            .condition_expression("attribute_exists(#pk) AND #status = :parked")
            .update_expression(
                "SET #status = :pending, #pending_pk = :shard REMOVE #reason, #parked_at",
            )
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#status", schema::STATUS)
            .expression_attribute_names("#reason", schema::PARKED_REASON)
            .expression_attribute_names("#parked_at", schema::PARKED_AT)
            .expression_attribute_names("#pending_pk", schema::PENDING_PK)
            .expression_attribute_values(":pending", s(schema::STATUS_PENDING))
            .expression_attribute_values(":parked", s(schema::STATUS_PARKED))
            .expression_attribute_values(":shard", s(keys::pending_pk(event_id)))
            .send()
            .await;
        ignore_failed_condition(result)
    }
}

/// Longest parked reason stored: enough for any error this code writes, bounded for the item.
const MAX_REASON_LEN: usize = 1024;

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A conditional update whose condition failed changed nothing, which is what the caller wants:
/// the item moved on (processed, expired, or handled by a concurrent run).
fn ignore_failed_condition<T>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<UpdateItemError, HttpResponse>>,
) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
        {
            Ok(())
        }
        Err(err) => Err(classify(err)),
    }
}

impl DynamoOrderStore {
    /// Up to `limit` items of one partition of the pending index, oldest first, each decoded with
    /// the consumer's checks; `before` bounds the sort key.
    async fn index_partition(
        &self,
        partition: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        while found.len() < limit {
            let page = i32::try_from(limit - found.len())
                .unwrap_or(i32::MAX)
                .min(1000);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(schema::PENDING_INDEX)
                .expression_attribute_names("#ppk", schema::PENDING_PK)
                .expression_attribute_values(":ppk", s(partition))
                .set_exclusive_start_key(start)
                .limit(page);
            query = match before {
                Some(cutoff) => query
                    .key_condition_expression("#ppk = :ppk AND #psk < :cutoff")
                    .expression_attribute_names("#psk", schema::PENDING_SK)
                    .expression_attribute_values(":cutoff", s(cutoff)),
                None => query.key_condition_expression("#ppk = :ppk"),
            };
            let out = query.send().await.map_err(classify)?;
            found.extend(
                out.items
                    .unwrap_or_default()
                    .into_iter()
                    .map(outbox_item_read),
            );
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(found)
    }
}

fn outbox_item_read(item: Item) -> OutboxItem {
    let text = |name: &str| string_attr(&item, name).unwrap_or_default().to_owned();
    let key = OutboxItemKey {
        pk: text(schema::PK),
        sk: text(schema::SK),
    };
    let event_id = string_attr(&item, "event_id").map(str::to_owned);
    let parked_reason = string_attr(&item, schema::PARKED_REASON).map(str::to_owned);
    OutboxItem {
        key,
        event_id,
        parked_reason,
        event: decode_envelope(item),
    }
}
