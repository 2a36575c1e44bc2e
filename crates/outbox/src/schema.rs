//! The one place that knows how items are laid out in the two tables.
//!
//! Key shapes, attribute names and entity markers are defined here and nowhere else: the DynamoDB
//! adapter, the stream filter in `template.yaml`, the dev tools and the tests all read them from
//! this module (the template carries the same literals, and a test checks that they agree).

/// Partition key attribute of both tables.
pub const PK: &str = "pk";
/// Sort key attribute of both tables.
pub const SK: &str = "sk";
/// Marks what an item is, so a stream filter can select outbox events without decoding them.
pub const ENTITY: &str = "entity";
/// Outbox status: `PENDING` until the consumer applied the event, then `PROCESSED`; `PARKED` when
/// the sweeper found it can never be applied as it is (out of the pending shards, with a reason,
/// until an operator redrives it).
pub const STATUS: &str = "status";
/// The orders table's TTL attribute (Number, epoch seconds). Only processed outbox items carry it.
pub const EXPIRES_AT: &str = "expires_at";
/// When the consumer marked the event processed (RFC 3339).
pub const PROCESSED_AT: &str = "processed_at";
/// Fingerprint of the request that created an order, to recognise a replay of the same request.
pub const REQUEST_HASH: &str = "request_hash";
/// Sparse index over pending outbox items: only pending items carry these two attributes.
pub const PENDING_PK: &str = "pending_pk";
pub const PENDING_SK: &str = "pending_sk";
/// Name of the sparse index over pending outbox items.
pub const PENDING_INDEX: &str = "PendingOutbox";
/// How many partitions the pending index spreads over, so a burst of orders does not throttle
/// one index partition (and, through it, the order writes themselves).
pub const PENDING_SHARDS: u32 = 8;

/// Value of [`ENTITY`] on order items.
pub const ENTITY_ORDER: &str = "Order";
/// Value of [`ENTITY`] on outbox event items; the stream filter matches on it.
pub const ENTITY_OUTBOX_EVENT: &str = "OutboxEvent";

pub const STATUS_PENDING: &str = "PENDING";
pub const STATUS_PROCESSED: &str = "PROCESSED";
pub const STATUS_PARKED: &str = "PARKED";
/// Why a parked event cannot be applied, and when it was parked (RFC 3339).
pub const PARKED_REASON: &str = "parked_reason";
pub const PARKED_AT: &str = "parked_at";

/// Balance attribute on a customer's balance item (updated with `ADD`).
pub const POINTS: &str = "points";

/// Keys of the orders table. An order and its outbox events share a partition, so one `Query`
/// returns the order together with the state of its events.
pub mod orders {
    pub fn order_pk(order_id: &str) -> String {
        format!("ORDER#{order_id}")
    }
    pub const ORDER_SK: &str = "ORDER";
    pub const OUTBOX_SK_PREFIX: &str = "OUTBOX#";
    pub fn outbox_sk(event_id: &str) -> String {
        format!("{OUTBOX_SK_PREFIX}{event_id}")
    }
    /// Shard of the pending index an event lands in: stable for an event id.
    pub fn pending_pk(event_id: &str) -> String {
        let shard = event_id
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % super::PENDING_SHARDS;
        pending_pk_for_shard(shard)
    }
    pub fn pending_pk_for_shard(shard: u32) -> String {
        format!("OUTBOX#PENDING#{shard}")
    }
    /// Parked events live in the same sparse index, under their own partition: visible to an
    /// operator's query, invisible to the sweeper's walk over the pending shards.
    pub const PARKED_PK: &str = "OUTBOX#PARKED";
    /// The event id an outbox item's sort key names, for items whose body does not decode.
    pub fn event_id_of_outbox_sk(sk: &str) -> Option<&str> {
        sk.strip_prefix(OUTBOX_SK_PREFIX)
    }
    /// Oldest first within a shard, so the sweeper can stop at the grace period.
    pub fn pending_sk(occurred_at: &str, event_id: &str) -> String {
        format!("{occurred_at}#{event_id}")
    }
}

/// Keys of the rewards table: a customer's balance and ledger share a partition; each rewarded
/// order has its own reward record, the consumer's idempotency record.
pub mod rewards {
    /// The reward record of an order: one per order, whatever the events about it say, so an
    /// order is rewarded once, and to one customer.
    pub fn order_reward_pk(order_id: &str) -> String {
        format!("ORDER#{order_id}")
    }
    pub const ORDER_REWARD_SK: &str = "REWARD";
    /// On the reward record: the customer the order was rewarded to.
    pub const REWARDED_CUSTOMER: &str = "customer_id";
    pub fn customer_pk(customer_id: &str) -> String {
        format!("CUSTOMER#{customer_id}")
    }
    pub const BALANCE_SK: &str = "BALANCE";
    pub const LEDGER_SK_PREFIX: &str = "LEDGER#";
    /// Ordered by when the order was placed, then by order id. Deduplication does not rest on
    /// it (an event redelivered with another `occurred_at` would land elsewhere): the order's
    /// reward record, written in the same transaction, does.
    pub fn ledger_sk(occurred_at: &str, order_id: &str) -> String {
        format!("{LEDGER_SK_PREFIX}{occurred_at}#{order_id}")
    }
}
