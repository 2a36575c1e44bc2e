//! Each ordering key's counter: advanced in the transaction on the condition that it still holds
//! the value the writer expects (the one it last wrote, or none yet), which a refusal corrects.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use aws_sdk_dynamodb::types::{
    KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{Outbox, WriteError};
use crate::dynamodb::{classify, number, text, SdkItem};
use crate::item::KeyCounter;
use crate::schema;
use crate::store::StoreError;

impl Outbox {
    /// The counters this process last wrote for `keys`; a key it has not written (or no longer
    /// remembers) is expected to have no counter yet, which a refusal corrects.
    pub(super) fn expected(&self, keys: &[&str]) -> HashMap<String, Counter> {
        let known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.iter()
            .map(|key| {
                let state = known.counters.get(*key).cloned().unwrap_or_default();
                let counter = Counter {
                    key: (*key).to_owned(),
                    state,
                };
                ((*key).to_owned(), counter)
            })
            .collect()
    }

    /// Remembers counters as this process wrote or saw them.
    pub(super) fn remember<'c>(&self, counters: impl IntoIterator<Item = &'c Counter>) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for counter in counters {
            known.remember(&counter.key, &counter.state);
        }
    }

    /// Forgets what this process knew of `keys`' counters: a refusal without the counter (a table
    /// emptied under a running writer, say) may have shown it wrong, in either direction.
    pub(super) fn forget(&self, keys: &[&str]) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in keys {
            known.counters.remove(*key);
        }
    }

    /// Reads the sequence counters of `keys`, strongly consistent: only when a refusal did not
    /// carry the counter (an emulator that does not return it).
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

/// How many keys' counters a process remembers: enough for the keys a function instance writes
/// in a burst; a key forgotten costs one refused attempt on its next write, nothing more.
const KNOWN_KEYS: usize = 4_096;

/// The counters this process last wrote or saw, by ordering key, the oldest forgotten first.
#[derive(Default)]
pub(super) struct KnownCounters {
    counters: HashMap<String, KeyCounter>,
    order: VecDeque<String>,
}

impl KnownCounters {
    fn remember(&mut self, key: &str, state: &KeyCounter) {
        match self.counters.get_mut(key) {
            // Never back: a refusal that raced a later success must not undo what it knows.
            Some(known) if known.sequence >= state.sequence => {}
            Some(known) => *known = state.clone(),
            None => {
                self.counters.insert(key.to_owned(), state.clone());
                self.order.push_back(key.to_owned());
                while self.order.len() > KNOWN_KEYS {
                    if let Some(oldest) = self.order.pop_front() {
                        self.counters.remove(&oldest);
                    }
                }
            }
        }
    }
}

impl fmt::Debug for KnownCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KnownCounters({} keys)", self.counters.len())
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
/// `previous`, the sequence expected (0: no counter yet). Refused, it returns the counter as
/// stored in the cancellation reason: the retry needs no read (and returning it reads no
/// capacity).
pub(super) fn advance(
    table: &str,
    key: &str,
    counter: &Counter,
    previous: u64,
) -> Result<TransactWriteItem, WriteError> {
    let mut update = Update::builder()
        .table_name(table)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sequence: u64) -> KeyCounter {
        KeyCounter {
            sequence,
            ..KeyCounter::default()
        }
    }

    #[test]
    fn the_known_counters_keep_the_latest_of_a_key_and_forget_the_oldest_keys_first() {
        let mut known = KnownCounters::default();
        known.remember("a", &at(3));
        known.remember("a", &at(2));
        assert_eq!(
            known.counters["a"],
            at(3),
            "a refusal seen late never moves it back"
        );
        known.remember("a", &at(4));
        assert_eq!(known.counters["a"], at(4));

        for i in 0..KNOWN_KEYS {
            known.remember(&format!("k{i}"), &at(1));
        }
        assert_eq!(known.counters.len(), KNOWN_KEYS, "bounded");
        assert!(
            !known.counters.contains_key("a"),
            "the oldest key forgotten"
        );
        assert!(known.counters.contains_key("k0"));
        assert_eq!(known.order.len(), KNOWN_KEYS);
    }
}
