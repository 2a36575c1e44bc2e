//! Each ordering key's counter: read before a transaction, advanced in it on the condition that
//! nobody advanced it in between.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{KeysAndAttributes, TransactWriteItem, Update};

use super::{Outbox, WriteError};
use crate::dynamodb::{classify, number, text, SdkItem};
use crate::item::KeyCounter;
use crate::schema;
use crate::store::StoreError;

impl Outbox {
    /// Reads the sequence counters of `keys`, strongly consistent.
    pub(super) async fn counters(
        &self,
        keys: &[&str],
    ) -> Result<HashMap<String, Counter>, StoreError> {
        let mut counters = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for key in chunk {
                request = request.keys(HashMap::from([
                    (schema::PK.to_owned(), text(schema::key_pk(key))),
                    (schema::SK.to_owned(), text(schema::COUNTER_SK)),
                ]));
            }
            let mut pending = HashMap::from([(
                self.table.clone(),
                request.build().map_err(|e| StoreError::Failed(e.into()))?,
            )]);
            // BatchGetItem may leave keys unprocessed under load: ask again for those.
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(classify)?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let counter = Counter::from_item(&item);
                    counters.insert(counter.key.clone(), counter);
                }
                pending = out.unprocessed_keys.unwrap_or_default();
                pending.retain(|_, k| !k.keys().is_empty());
            }
        }
        Ok(counters)
    }
}

/// An ordering key's counter as stored: the key, and its state.
#[derive(Debug, Clone, Default)]
pub(super) struct Counter {
    pub(super) key: String,
    pub(super) state: KeyCounter,
}

const LAST_PREFIX: &str = "last#";

impl Counter {
    pub(super) fn from_item(item: &SdkItem) -> Self {
        let pk = item
            .get(schema::PK)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .unwrap_or_default();
        let number_of = |v: &aws_sdk_dynamodb::types::AttributeValue| {
            v.as_n().ok().and_then(|n| n.parse::<u64>().ok())
        };
        Self {
            key: pk.strip_prefix("OUTBOX#").unwrap_or(pk).to_owned(),
            state: KeyCounter {
                sequence: item.get(schema::SEQUENCE).and_then(number_of).unwrap_or(0),
                last: item
                    .iter()
                    .filter_map(|(name, v)| {
                        let consumer = name.strip_prefix(LAST_PREFIX)?;
                        Some((consumer.to_owned(), number_of(v)?))
                    })
                    .collect(),
            },
        }
    }
}

/// The update that advances `key`'s counter to `counter`, on the condition that it still holds
/// `previous`, the sequence read before (0: no counter yet).
pub(super) fn advance(
    table: &str,
    key: &str,
    counter: &Counter,
    previous: u64,
) -> Result<TransactWriteItem, WriteError> {
    let mut update = Update::builder()
        .table_name(table)
        .key(schema::PK, text(schema::key_pk(key)))
        .key(schema::SK, text(schema::COUNTER_SK))
        .expression_attribute_names("#seq", schema::SEQUENCE)
        .expression_attribute_values(":seq", number(counter.state.sequence));
    let mut sets = vec!["#seq = :seq".to_owned()];
    for (i, (consumer, last)) in counter.state.last.iter().enumerate() {
        sets.push(format!("#last{i} = :last{i}"));
        update = update
            .expression_attribute_names(format!("#last{i}"), format!("{LAST_PREFIX}{consumer}"))
            .expression_attribute_values(format!(":last{i}"), number(last));
    }
    update = update.update_expression(format!("SET {}", sets.join(", ")));
    update = if previous == 0 {
        update
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
    } else {
        update
            .condition_expression("#seq = :read")
            .expression_attribute_values(":read", number(previous))
    };
    let update = update.build().map_err(|e| StoreError::Failed(e.into()))?;
    Ok(TransactWriteItem::builder().update(update).build())
}
