//! The read-back of an earlier attempt: whether a transaction whose answer was lost committed.

use super::{Transaction, WriteError, Written};
use crate::dynamodb::{classify, text};
use crate::schema;

impl Transaction<'_> {
    /// The attempt among `tried` that committed, found by reading back its first event at the
    /// sequence it was given: a transaction commits whole, so one of its events stored with its
    /// own id means all of it is. `None` when none did.
    pub(super) async fn committed_before(
        &self,
        tried: &[Written],
    ) -> Result<Option<Written>, WriteError> {
        let Some(first) = self.events.first() else {
            return Ok(None);
        };
        for attempt in tried.iter().rev() {
            let Some((event_id, sequence)) = attempt.events.first() else {
                continue;
            };
            let stored = self
                .outbox
                .client
                .get_item()
                .table_name(&self.outbox.table)
                .key(schema::PK, text(schema::key_pk(&first.ordering_key)))
                .key(schema::SK, text(schema::event_sk(*sequence)))
                .consistent_read(true)
                .projection_expression("#id")
                .expression_attribute_names("#id", schema::EVENT_ID)
                .send()
                .await
                .map_err(|err| WriteError::OutcomeUnknown(classify(err)))?;
            let stored_id = stored
                .item
                .as_ref()
                .and_then(|item| item.get(schema::EVENT_ID))
                .and_then(|v| v.as_s().ok());
            if stored_id == Some(event_id) {
                return Ok(Some(Written {
                    events: attempt.events.clone(),
                    from_earlier_attempt: true,
                }));
            }
        }
        Ok(None)
    }
}
