//! The sweeper's side: events still pending after a grace period, for one consumer, read from the
//! sparse pending index. Feed them to [`crate::Processor::process_items`]: the same path as the
//! stream, so a redrive keeps per-key order and applies nothing twice.

use aws_sdk_dynamodb::Client;
use serde_dynamo::Item;

use super::{classify, text};
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
        let mut found = Vec::new();
        for shard in 0..schema::PENDING_SHARDS {
            let mut start = None;
            let mut taken = 0;
            while taken < per_shard {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(schema::PENDING_INDEX)
                    .key_condition_expression("#ppk = :ppk AND #psk < :before")
                    // An event no consumer waits for any more but still pending was left between the two
                    // steps of its last consumer's mark: whichever consumer finds it finishes it.
                    .filter_expression(
                        "contains(#waiting, :consumer) OR attribute_not_exists(#waiting)",
                    )
                    .expression_attribute_names("#ppk", schema::PENDING_PK)
                    .expression_attribute_names("#psk", schema::PENDING_SK)
                    .expression_attribute_names("#waiting", schema::WAITING_CONSUMERS)
                    .expression_attribute_values(":ppk", text(schema::pending_pk_for_shard(shard)))
                    .expression_attribute_values(":before", text(before))
                    .expression_attribute_values(":consumer", text(consumer))
                    .set_exclusive_start_key(start)
                    .limit(i32::try_from(per_shard - taken).unwrap_or(1000).min(1000))
                    .send()
                    .await
                    .map_err(classify)?;
                let items = out.items.unwrap_or_default();
                taken += items.len();
                found.extend(items.into_iter().map(Item::from));
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }
}
