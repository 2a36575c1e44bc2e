//! What a refused transaction says: the counters it returned, and whose condition failed.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::CancellationReason;

use super::counter::Counter;
use super::{Transaction, WriteError};
use crate::dynamodb::reason_code;

impl Transaction<'_> {
    /// Where the counters' reasons start: after the caller's items and the events' puts.
    pub(super) fn counters_at(&self) -> usize {
        self.items.len() + self.events.len()
    }

    /// Whether the refusal says the first event's key's counter was not what this attempt
    /// expected.
    pub(super) fn first_counter_refused(&self, reasons: &[CancellationReason]) -> bool {
        let Some(first) = self.events.first() else {
            return false;
        };
        let keys = self.distinct_keys();
        keys.iter()
            .position(|key| *key == first.ordering_key)
            .is_some_and(|i| {
                reason_code(reasons, self.counters_at() + i) == "ConditionalCheckFailed"
            })
    }

    /// Takes the counters a refusal returned as what the next attempt expects; reads those it did
    /// not return. Whether any key's counter was refused (a race lost).
    pub(super) async fn learn(
        &self,
        reasons: &[CancellationReason],
        counters: &mut HashMap<String, Counter>,
    ) -> Result<bool, WriteError> {
        let mut raced = false;
        let mut returned = Vec::new();
        let mut unreturned = Vec::new();
        for (i, key) in self.distinct_keys().into_iter().enumerate() {
            let Some(reason) = reasons.get(self.counters_at() + i) else {
                continue;
            };
            if reason.code() != Some("ConditionalCheckFailed") {
                continue;
            }
            raced = true;
            match reason.item() {
                Some(item) => returned.push(Counter {
                    key: key.to_owned(),
                    ..Counter::from_item(item)
                }),
                None => unreturned.push(key),
            }
        }
        self.outbox.remember(&returned);
        counters.extend(returned.into_iter().map(|c| (c.key.clone(), c)));
        if !unreturned.is_empty() {
            self.outbox.forget(&unreturned);
            let read = self.outbox.counters(&unreturned).await?;
            for key in unreturned {
                let counter = read.get(key).cloned().unwrap_or_else(|| Counter {
                    key: key.to_owned(),
                    ..Counter::default()
                });
                counters.insert(key.to_owned(), counter);
            }
        }
        Ok(raced)
    }

    /// The refusal of one of the caller's own items, as the caller reads it.
    pub(super) fn callers_refused(&self, reasons: &[CancellationReason]) -> Option<WriteError> {
        let callers = self.items.len();
        (0..callers)
            .any(|i| reason_code(reasons, i) == "ConditionalCheckFailed")
            .then(|| WriteError::Cancelled {
                reasons: (0..callers)
                    .map(|i| {
                        let code = reason_code(reasons, i);
                        (code != "None").then(|| code.to_owned())
                    })
                    .collect(),
            })
    }
}
