//! The outbox item an event is stored as: the envelope's fields at the top level (stream filters
//! and consumers read them there) plus the engine's routing, ordering and pending state.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

use crate::envelope::Envelope;
use crate::schema;

/// The outbox item of `envelope`, the `sequence`-th event of its ordering key, routed to the
/// consumers in `after` (each with the sequence it must have applied first). No `expires_at`:
/// only an event every consumer processed may expire.
pub fn outbox_item<P: Serialize>(
    envelope: &Envelope<P>,
    sequence: u64,
    after: &BTreeMap<String, u64>,
) -> Result<Item, String> {
    let item: Item =
        serde_dynamo::to_item(envelope).map_err(|e| format!("the event does not encode: {e}"))?;
    Ok(with_outbox_state(
        item,
        &envelope.ordering_key,
        &envelope.occurred_at,
        sequence,
        after,
    ))
}

/// Adds the engine's keys, routing, ordering and pending state to an encoded envelope.
pub(crate) fn with_outbox_state(
    mut item: Item,
    ordering_key: &str,
    occurred_at: &str,
    sequence: u64,
    after: &BTreeMap<String, u64>,
) -> Item {
    let s = |v: String| AttributeValue::S(v);
    item.insert(schema::PK.into(), s(schema::key_pk(ordering_key)));
    item.insert(schema::SK.into(), s(schema::event_sk(sequence)));
    item.insert(schema::ENTITY.into(), s(schema::ENTITY_OUTBOX_EVENT.into()));
    item.insert(schema::STATUS.into(), s(schema::STATUS_PENDING.into()));
    item.insert(
        schema::SEQUENCE.into(),
        AttributeValue::N(sequence.to_string()),
    );
    let routes: HashMap<String, AttributeValue> = after
        .iter()
        .map(|(consumer, seq)| (consumer.clone(), AttributeValue::N(seq.to_string())))
        .collect();
    item.insert(schema::AFTER.into(), AttributeValue::M(routes));
    if !after.is_empty() {
        item.insert(
            schema::WAITING_CONSUMERS.into(),
            AttributeValue::Ss(after.keys().cloned().collect()),
        );
    }
    item.insert(
        schema::PENDING_PK.into(),
        s(schema::pending_pk(ordering_key)),
    );
    item.insert(
        schema::PENDING_SK.into(),
        s(schema::pending_sk(occurred_at, ordering_key, sequence)),
    );
    item
}

/// An ordering key's counter: its last sequence, and the last sequence routed to each consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyCounter {
    pub(crate) sequence: u64,
    pub(crate) last: BTreeMap<String, u64>,
}

impl KeyCounter {
    /// Takes the key's next sequence for an event routed to `consumers`: returns it with, for
    /// each consumer, the sequence that consumer must have applied first.
    pub(crate) fn next(&mut self, consumers: &[String]) -> (u64, BTreeMap<String, u64>) {
        self.sequence += 1;
        let mut after = BTreeMap::new();
        for consumer in consumers {
            after.insert(
                consumer.clone(),
                self.last.get(consumer).copied().unwrap_or(0),
            );
            self.last.insert(consumer.clone(), self.sequence);
        }
        (self.sequence, after)
    }
}
