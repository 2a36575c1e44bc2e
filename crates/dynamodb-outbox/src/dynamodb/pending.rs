//! The sweeper's side: events still pending after a grace period, for one consumer, read from the
//! sparse pending index. Feed them to [`crate::Processor::process_items`]: the same path as the
//! stream, so a redrive keeps per-key order and applies nothing twice.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::Client;
use serde_dynamo::{AttributeValue, Item};

use super::{
    classify, key_events, pending_shards, text, update_at, update_unless_moved_on, SdkItem,
};
use crate::delivery::Header;
use crate::schema;
use crate::store::StoreError;

/// Reads an outbox table's pending index.
#[derive(Debug, Clone)]
pub struct PendingEvents {
    client: Client,
    table: String,
}

impl PendingEvents {
    /// The pending events of the outbox in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Events that occurred before `before` (RFC 3339) and that `consumer` has yet to process
    /// (or that every consumer processed but whose last mark was cut short): the oldest
    /// `per_shard` of every shard, so every shard makes progress on every run. An
    /// ordering key lives in one shard, so its events come in their order.
    pub async fn waiting_for(
        &self,
        consumer: &str,
        before: &str,
        per_shard: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let narrow = |query: QueryFluentBuilder| {
            query
                // An event no consumer waits for any more but still pending was left between the
                // two steps of its last consumer's mark: whichever consumer finds it finishes it.
                .filter_expression(
                    "contains(#waiting, :consumer) OR attribute_not_exists(#waiting)",
                )
                .expression_attribute_names("#psk", schema::PENDING_SK)
                .expression_attribute_names("#waiting", schema::WAITING_CONSUMERS)
                .expression_attribute_values(":before", text(before))
                .expression_attribute_values(":consumer", text(consumer))
        };
        let condition = "#ppk = :ppk AND #psk < :before";
        let read = |item: SdkItem| Some(Item::from(item));
        pending_shards(
            &self.client,
            &self.table,
            per_shard,
            condition,
            narrow,
            read,
        )
        .await
    }

    /// The pending events of `ordering_key` up to `sequence` that `consumer` has yet to apply,
    /// lowest first, at most `limit` (the lowest ones). The pending index orders a key's events
    /// by when they occurred, and clocks disagree: an event can sit in the index ahead of the
    /// earlier event it waits for. This reads the key's own partition downwards from `sequence`
    /// instead, until an event routed to `consumer` that it has applied (everything below it is
    /// applied too), so a redrive always reaches the key's lowest pending sequence.
    pub(crate) async fn earlier_pending(
        &self,
        consumer: &str,
        ordering_key: &str,
        sequence: u64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut lowest: std::collections::VecDeque<Item> = std::collections::VecDeque::new();
        let mut start = None;
        'pages: loop {
            let out = key_events(&self.client, &self.table, ordering_key, sequence)
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                let item = Item::from(item);
                if !Header::peek(&item).after.contains_key(consumer) {
                    continue; // routed to other consumers only
                }
                let waiting = match item.get(schema::WAITING_CONSUMERS) {
                    Some(AttributeValue::Ss(set)) => set.iter().any(|c| c == consumer),
                    // Between the two steps of its last mark: applied, not yet finished.
                    _ => matches!(item.get(schema::STATUS),
                        Some(AttributeValue::S(s)) if s == schema::STATUS_PENDING),
                };
                if !waiting {
                    break 'pages;
                }
                lowest.push_front(item);
                if lowest.len() > limit {
                    lowest.pop_back();
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(lowest.into())
    }

    /// Moves pending items the sweep could not apply to the back of their shard (their index
    /// time becomes `now`), so they are read again only after the grace period, behind the
    /// others: events that stay stuck, however many, cannot fill every run and starve the keys
    /// behind them. An item that left the index meanwhile is left as it is.
    pub(crate) async fn requeue(&self, items: &[&Item], now: &str) -> Result<(), StoreError> {
        for item in items {
            let Some(AttributeValue::S(old)) = item.get(schema::PENDING_SK) else {
                continue;
            };
            let rest = old.split_once('#').map_or(old.as_str(), |(_, rest)| rest);
            let update = update_at(&self.client, &self.table, &Header::peek(item).key())
                .update_expression("SET #psk = :psk")
                .condition_expression("attribute_exists(#ppk)")
                .expression_attribute_names("#psk", schema::PENDING_SK)
                .expression_attribute_names("#ppk", schema::PENDING_PK)
                .expression_attribute_values(":psk", text(format!("{now}#{rest}")));
            update_unless_moved_on(update).await?;
        }
        Ok(())
    }
}
