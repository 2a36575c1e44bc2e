//! The outbox item an event is stored as: the envelope's fields at the top level (stream filters
//! and consumers read them there) plus the engine's routing, ordering and pending state.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

use crate::envelope::Envelope;
use crate::schema;
use crate::store::{ItemKey, Parked};

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

/// What a consumer records when it parks a poison event.
pub(crate) struct ParkedEvent<'a> {
    pub(crate) consumer: &'a str,
    pub(crate) ordering_key: &'a str,
    pub(crate) event_id: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) parked_at: &'a str,
    /// Where the event came from (the outbox item's key), when it came from an outbox.
    pub(crate) source: Option<&'a ItemKey>,
    pub(crate) event: Item,
}

impl ParkedEvent<'_> {
    /// The parked record, in the consumer's table.
    pub(crate) fn record(self) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut record = Item::from(HashMap::from([
            (schema::PK.to_owned(), s(&schema::parked_pk(self.consumer))),
            (
                schema::SK.to_owned(),
                s(&schema::parked_sk(
                    self.parked_at,
                    self.ordering_key,
                    self.event_id,
                )),
            ),
            (schema::PARKED_REASON.to_owned(), s(self.reason)),
            (
                schema::PARKED_ATTEMPTS.to_owned(),
                AttributeValue::N("1".into()),
            ),
            (schema::PARKED_AT.to_owned(), s(self.parked_at)),
            (schema::PARKED_ORDERING_KEY.to_owned(), s(self.ordering_key)),
            (
                schema::PARKED_EVENT.to_owned(),
                AttributeValue::M(self.event.into_inner()),
            ),
        ]));
        if let Some(source) = self.source {
            record.insert(schema::PARKED_OUTBOX_PK.into(), s(&source.pk));
            record.insert(schema::PARKED_OUTBOX_SK.into(), s(&source.sk));
        }
        record
    }
}

/// Reads a parked record; `None` when it is not one (no key or no event).
pub(crate) fn read_parked(record: Item) -> Option<Parked> {
    let mut record = record.into_inner();
    let mut text = |name: &str| match record.remove(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    };
    let key = ItemKey {
        pk: text(schema::PK)?,
        sk: text(schema::SK)?,
    };
    let reason = text(schema::PARKED_REASON).unwrap_or_default();
    let parked_at = text(schema::PARKED_AT).unwrap_or_default();
    let attempts = match record.get(schema::PARKED_ATTEMPTS) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(1),
        _ => 1,
    };
    let Some(AttributeValue::M(event)) = record.remove(schema::PARKED_EVENT) else {
        return None;
    };
    Some(Parked {
        record: key,
        event: Item::from(event),
        reason,
        attempts,
        parked_at,
    })
}

/// Whether an existing idempotency record is the one `record` would write: every attribute of
/// `record`, same value. Other content under the same key is a collision, not a redelivery.
pub(crate) fn same_record(existing: &Item, record: &Item) -> bool {
    record
        .iter()
        .all(|(name, value)| existing.get(name) == Some(value))
}

/// The done record of an event from a source without an outbox sequence.
pub(crate) fn done_record(consumer: &str, event_id: &str, done_at: &str) -> Item {
    Item::from(HashMap::from([
        (
            schema::PK.to_owned(),
            AttributeValue::S(schema::done_pk(consumer, event_id)),
        ),
        (
            schema::SK.to_owned(),
            AttributeValue::S(schema::DONE_SK.to_owned()),
        ),
        (
            schema::DONE_AT.to_owned(),
            AttributeValue::S(done_at.to_owned()),
        ),
    ]))
}

/// The pending marker a producer adds to an entity item whose creation is an event for
/// `consumers` (an entity table's changes, without an outbox): the item enters the sparse
/// pending index (shard of its ordering key, oldest first) and lists the consumers it waits for,
/// so a sweeper finds what the stream dropped ([`crate::dynamodb::PendingEvents`]). Each consumer
/// removes itself when done and the last one takes the item out of the index; the item never
/// gets a TTL. Merge these attributes into the entity item's put.
pub fn pending_marker(
    ordering_key: &str,
    occurred_at: &str,
    event_id: &str,
    consumers: &[&str],
) -> Item {
    if consumers.is_empty() {
        // Nobody to wait for: in the index it would never leave it.
        return Item::from(HashMap::<String, AttributeValue>::new());
    }
    let s = |v: String| AttributeValue::S(v);
    let marker = Item::from(HashMap::from([
        (
            schema::WAITING_CONSUMERS.to_owned(),
            AttributeValue::Ss(consumers.iter().map(|c| (*c).to_owned()).collect()),
        ),
        (
            schema::PENDING_PK.to_owned(),
            s(schema::pending_pk(ordering_key)),
        ),
        (
            schema::PENDING_SK.to_owned(),
            s(format!("{occurred_at}#{ordering_key}#{event_id}")),
        ),
    ]));
    marker
}
