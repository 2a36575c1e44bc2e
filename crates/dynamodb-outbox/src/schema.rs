//! The one place that knows how the engine lays out its items.
//!
//! The engine's items live in the caller's tables, which must have a string partition key `pk`
//! and a string sort key `sk`. The outbox table needs a stream (`NEW_IMAGE`), a TTL attribute
//! [`EXPIRES_AT`], and a sparse global secondary index [`PENDING_INDEX`] on
//! ([`PENDING_PK`], [`PENDING_SK`]) for the sweeper.

/// Partition key attribute of every table the engine writes to.
pub const PK: &str = "pk";
/// Sort key attribute of every table the engine writes to.
pub const SK: &str = "sk";
/// The envelope's event id, at the top level of an outbox item.
pub const EVENT_ID: &str = "event_id";
/// The envelope's schema version, at the top level of an outbox item.
pub const SCHEMA_VERSION: &str = "schema_version";
/// The envelope's payload, at the top level of an outbox item: what an upcaster rewrites.
pub const PAYLOAD: &str = "payload";
/// Marks outbox event items, so a stream filter can select them without decoding.
pub const ENTITY: &str = "entity";
/// Value of [`ENTITY`] on outbox event items.
pub const ENTITY_OUTBOX_EVENT: &str = "OutboxEvent";
/// `PENDING` until every consumer declared for the event processed it, then `PROCESSED`.
pub const STATUS: &str = "status";
/// Value of [`STATUS`] while any consumer has yet to process the event.
pub const STATUS_PENDING: &str = "PENDING";
/// Value of [`STATUS`] once every consumer processed the event.
pub const STATUS_PROCESSED: &str = "PROCESSED";
/// The outbox table's TTL attribute (epoch seconds): only a fully processed event carries it.
pub const EXPIRES_AT: &str = "expires_at";
/// The consumers that have yet to process the event (a string set; removed when empty).
pub const WAITING_CONSUMERS: &str = "outbox_waiting";
/// The event's position among the events of its ordering key: 1, 2, 3, ... without gaps.
pub const SEQUENCE: &str = "outbox_seq";
/// For each consumer of the event, the sequence of the previous event of the same key that this
/// consumer takes (0 when none): what the consumer must have applied before this one.
pub const AFTER: &str = "outbox_after";
/// Sparse index over pending outbox events: only pending items carry these two attributes.
pub const PENDING_PK: &str = "pending_pk";
/// Sort key of the pending index: oldest first within a shard.
pub const PENDING_SK: &str = "pending_sk";
/// Name of the sparse index over pending outbox events.
pub const PENDING_INDEX: &str = "PendingOutbox";
/// Shards of the pending index; an ordering key always lands in the same one.
pub const PENDING_SHARDS: u32 = 8;
/// A consumer's progress on one ordering key: the last sequence it applied.
pub const PROGRESS_SEQUENCE: &str = "seq";

const KEY_PREFIX: &str = "OUTBOX#";

/// Partition of an ordering key's events and of its sequence counter: one key, one partition.
pub fn key_pk(ordering_key: &str) -> String {
    format!("{KEY_PREFIX}{ordering_key}")
}

/// Sort key of an event: its sequence, zero-padded so the text sorts as the number.
pub fn event_sk(sequence: u64) -> String {
    format!("EVENT#{sequence:020}")
}

/// Sort key of an ordering key's sequence counter.
pub const COUNTER_SK: &str = "SEQUENCE";

/// A name as one field of a key joined with `#`: `%` and `#` escaped (`%25`, `%23`), so the
/// field ends at the first `#` after it and no two names give one key. Names without either
/// character are left as they are, which keeps the keys of existing tables.
fn field(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains(['%', '#']) {
        name.replace('%', "%25").replace('#', "%23").into()
    } else {
        name.into()
    }
}

/// Partition of a consumer's progress on an ordering key, in the consumer's own table. The
/// consumer's name is escaped (see [`escape_field`]), so a `#` in a name or a key cannot make
/// two pairs share one item.
pub fn progress_pk(consumer: &str, ordering_key: &str) -> String {
    format!("{KEY_PREFIX}PROGRESS#{}#{ordering_key}", field(consumer))
}

/// A name escaped as the engine writes it inside its keys: `%` as `%25`, `#` as `%23`
/// (`ledger#eu` is `ledger%23eu`; `ledger` stays `ledger`).
#[cfg(any(test, feature = "testing"))]
pub fn escape_field(name: &str) -> String {
    field(name).into_owned()
}

/// Sort key of a progress item.
pub const PROGRESS_SK: &str = "PROGRESS";

/// Partition of a consumer's record that it applied an event from a source without an outbox
/// sequence (Kinesis, an entity table's changes): the event id is the idempotency key.
pub fn done_pk(consumer: &str, event_id: &str) -> String {
    format!("{KEY_PREFIX}DONE#{}#{event_id}", field(consumer))
}

/// Sort key of a done record.
pub const DONE_SK: &str = "DONE";

/// When the consumer applied the event (RFC 3339), on its done record.
pub const DONE_AT: &str = "done_at";

/// Partition of a consumer's parked events, in the consumer's own table.
pub fn parked_pk(consumer: &str) -> String {
    format!("{KEY_PREFIX}PARKED#{}", field(consumer))
}

/// Sort key of a parked event: when it was parked (RFC 3339), so a consumer's parked events list
/// oldest first, then its ordering key (escaped) and event id, which make it unique.
pub fn parked_sk(parked_at: &str, ordering_key: &str, event_id: &str) -> String {
    format!("{parked_at}#{}#{event_id}", field(ordering_key))
}

/// The longest sort key DynamoDB stores, in bytes (UTF-8).
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// The longest partition key DynamoDB stores, in bytes (UTF-8).
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;

/// Why `event_id` cannot identify an event of `consumer` in DynamoDB: it is empty, or too long
/// for the keys of its done record ([`done_pk`]) or its parked record ([`parked_sk`]). An event
/// that such an id names can be neither applied once nor parked.
pub(crate) fn unusable_event_id(consumer: &str, event_id: &str) -> Option<String> {
    if event_id.is_empty() {
        return Some("its event id is empty".to_owned());
    }
    let parked = parked_sk(&crate::envelope::now_rfc3339(), "", event_id).len();
    let done = done_pk(consumer, event_id).len();
    (parked > MAX_SORT_KEY_BYTES || done > MAX_PARTITION_KEY_BYTES).then(|| {
        format!(
            "its event id ({} bytes) is too long to key a record (DynamoDB keys hold {MAX_SORT_KEY_BYTES} bytes of sort key)",
            event_id.len()
        )
    })
}

/// Why the event is parked: the last reason it proved poison.
pub const PARKED_REASON: &str = "reason";
/// How many times the event proved poison: 1 when parked, one more per redrive that failed.
pub const PARKED_ATTEMPTS: &str = "attempts";
/// When the event was parked (RFC 3339).
pub const PARKED_AT: &str = "parked_at";
/// The event itself: the outbox item (or the source's event) as the consumer's decoder reads
/// it, in a map, so a redrive can apply it after the outbox item has expired.
pub const PARKED_EVENT: &str = "event";
/// The ordering key of a parked event, for people reading the table.
pub const PARKED_ORDERING_KEY: &str = "ordering_key";
/// Partition key of the outbox item a parked event came from.
pub const PARKED_OUTBOX_PK: &str = "outbox_pk";
/// Sort key of the outbox item a parked event came from.
pub const PARKED_OUTBOX_SK: &str = "outbox_sk";

/// Shard of the pending index an ordering key lands in: stable, so the sweeper meets a key's
/// events in one shard, in their order.
pub fn pending_pk(ordering_key: &str) -> String {
    let shard = ordering_key
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % PENDING_SHARDS;
    pending_pk_for_shard(shard)
}

/// The pending index partition of one shard.
pub fn pending_pk_for_shard(shard: u32) -> String {
    format!("{KEY_PREFIX}PENDING#{shard}")
}

/// Oldest first within a shard; a key's events by sequence when they occurred together.
pub fn pending_sk(occurred_at: &str, ordering_key: &str, sequence: u64) -> String {
    format!("{occurred_at}#{ordering_key}#{sequence:020}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_separator_and_the_escape_character_are_escaped() {
        assert_eq!(super::escape_field("ledger#eu"), "ledger%23eu");
        assert_eq!(super::escape_field("100%#"), "100%25%23");
        assert_eq!(super::escape_field("ledger"), "ledger");
    }
}
