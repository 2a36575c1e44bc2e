//! The outbox item an event is stored as: the envelope's fields at the top level (stream filters
//! and consumers read them there) plus the engine's routing, ordering and pending state.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

use crate::envelope::Envelope;
use crate::schema;
use crate::store::{Committed, ItemKey, Parked};

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
            // Named twice, it would become its own predecessor and wait forever.
            if after.contains_key(consumer) {
                continue;
            }
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
    /// The event's ordering key; `None` for an event that carries none (parked all the same,
    /// so that it can be read and redriven once fixed).
    pub(crate) ordering_key: Option<&'a str>,
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
        // The ordering key is in the sort key for people listing the partition; one too long for
        // DynamoDB's sort key is left out of it (the event id and time keep it unique), so a
        // long key never makes an event unparkable. The attribute keeps it whole.
        let mut sk = schema::parked_sk(
            self.parked_at,
            self.ordering_key.unwrap_or_default(),
            self.event_id,
        );
        if sk.len() > schema::MAX_SORT_KEY_BYTES {
            sk = schema::parked_sk(self.parked_at, "", self.event_id);
        }
        let mut record = Item::from(HashMap::from([
            (schema::PK.to_owned(), s(&schema::parked_pk(self.consumer))),
            (schema::SK.to_owned(), s(&sk)),
            (schema::PARKED_REASON.to_owned(), s(self.reason)),
            (
                schema::PARKED_ATTEMPTS.to_owned(),
                AttributeValue::N("1".into()),
            ),
            (schema::PARKED_AT.to_owned(), s(self.parked_at)),
            (
                schema::PARKED_EVENT.to_owned(),
                AttributeValue::M(self.event.into_inner()),
            ),
        ]));
        if let Some(ordering_key) = self.ordering_key {
            record.insert(schema::PARKED_ORDERING_KEY.into(), s(ordering_key));
        }
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
/// `record`, equal as DynamoDB compares values (numbers by value, sets as sets: the stored item
/// comes back normalised, `10.50` as `10.5`, a set in the database's order). Other content under
/// the same key is a collision, not a redelivery.
pub(crate) fn same_record(existing: &Item, record: &Item) -> bool {
    record.iter().all(|(name, value)| {
        existing
            .get(name)
            .is_some_and(|stored| same_value(stored, value))
    })
}

/// What an existing idempotency record means for event `event_id`, whose effect would write
/// `record`: a duplicate when it is the same record ([`same_record`]), otherwise a collision the
/// event is refused for.
pub(crate) fn record_found(existing: &Item, record: &Item, event_id: &str) -> Committed {
    if same_record(existing, record) {
        Committed::Duplicate
    } else {
        Committed::Refused(format!(
            "the idempotency record of event {event_id} exists with other content"
        ))
    }
}

/// DynamoDB's equality of two attribute values.
fn same_value(a: &AttributeValue, b: &AttributeValue) -> bool {
    use AttributeValue as V;
    match (a, b) {
        (V::N(x), V::N(y)) => same_number(x, y),
        (V::Ss(x), V::Ss(y)) => same_set(x, y, |a, b| a == b),
        (V::Ns(x), V::Ns(y)) => same_set(x, y, |a, b| same_number(a, b)),
        (V::Bs(x), V::Bs(y)) => same_set(x, y, |a, b| a == b),
        (V::L(x), V::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b)),
        (V::M(x), V::M(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| same_value(a, b)))
        }
        _ => a == b,
    }
}

/// Sets hold no duplicates, so equal sizes and every element of one in the other is equality.
fn same_set<T>(x: &[T], y: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
    x.len() == y.len() && x.iter().all(|a| y.iter().any(|b| eq(a, b)))
}

fn same_number(x: &str, y: &str) -> bool {
    match (canonical_number(x), canonical_number(y)) {
        (Some(a), Some(b)) => a == b,
        _ => x == y,
    }
}

/// A decimal number as (negative, significant digits without leading or trailing zeros, the
/// exponent of its first digit): `10.50`, `1.05e1` and `+0010.5` are one number. `None` for text
/// that is not a number.
fn canonical_number(text: &str) -> Option<(bool, String, i64)> {
    let text = text.trim();
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let leading = digits.bytes().take_while(|&b| b == b'0').count();
    let significant = digits[leading..].trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let whole_len = i64::try_from(whole.len()).ok()?;
    let leading = i64::try_from(leading).ok()?;
    let first_digit_exponent = exponent.checked_add(whole_len)?.checked_sub(leading)?;
    Some((negative, significant.to_owned(), first_digit_exponent))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn numbers_compare_by_value_as_dynamodb_stores_them() {
        for (a, b) in [
            ("10.50", "10.5"),
            ("1.05e1", "10.5"),
            ("+0010.5", "10.5"),
            ("0.0", "0"),
            ("-0", "0"),
            ("100", "1E2"),
            ("-1.50", "-1.5"),
            ("0.001", "1e-3"),
        ] {
            assert!(same_value(&n(a), &n(b)), "{a} = {b}");
        }
        for (a, b) in [("10.5", "10.05"), ("1", "-1"), ("100", "10"), ("0.1", "1")] {
            assert!(!same_value(&n(a), &n(b)), "{a} != {b}");
        }
    }

    #[test]
    fn sets_compare_as_sets_and_nested_values_by_the_same_rules() {
        let ss = |v: &[&str]| AttributeValue::Ss(v.iter().map(|s| (*s).to_owned()).collect());
        let ns = |v: &[&str]| AttributeValue::Ns(v.iter().map(|s| (*s).to_owned()).collect());
        assert!(same_value(&ss(&["b", "a"]), &ss(&["a", "b"])));
        assert!(!same_value(&ss(&["a", "b"]), &ss(&["a", "c"])));
        assert!(same_value(&ns(&["2.0", "1"]), &ns(&["1", "2"])));
        let map = |v: &str| AttributeValue::M(HashMap::from([("x".to_owned(), n(v))]));
        assert!(same_value(&map("3.10"), &map("3.1")));
        assert!(same_value(
            &AttributeValue::L(vec![n("1.0"), ss(&["y", "x"])]),
            &AttributeValue::L(vec![n("1"), ss(&["x", "y"])])
        ));
        assert!(!same_value(&n("1"), &AttributeValue::S("1".into())));
    }
}
