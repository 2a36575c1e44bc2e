//! The persistence seam of a consumer: commit an effect with the consumer's progress, and mark
//! the outbox item. [`crate::dynamodb::DynamoConsumerStore`] implements it on DynamoDB,
//! [`crate::memory::MemoryStore`] in memory for unit tests of consumers and of the engine.

use std::future::Future;

use serde_dynamo::Item;

use crate::consumer::{BoxError, Effect};

/// One event's place in its key's order, for one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The event's ordering key.
    pub ordering_key: String,
    /// The event's sequence within the key.
    pub sequence: u64,
    /// The sequence this consumer must have applied before (0: none).
    pub after: u64,
}

impl Step {
    /// What the consumer's progress `applied` on the key says of committing this step: nothing
    /// when it is the predecessor (the step may commit), otherwise why not: applied before,
    /// waiting for an earlier event, or past the predecessor (its routing changed).
    pub(crate) fn blocked(&self, applied: u64) -> Option<Committed> {
        if applied >= self.sequence {
            Some(Committed::Duplicate)
        } else if applied < self.after {
            Some(Committed::Waiting { applied })
        } else if applied > self.after {
            Some(Committed::Refused(format!(
                "progress {applied} is past this event's predecessor {}: its routing changed",
                self.after
            )))
        } else {
            None
        }
    }
}

/// An effect to commit with a consumer's progress: the consumer, the step its progress takes,
/// and the effect. What [`StoreOps::commit`] and [`StoreOps::commit_leaving`] take, so each
/// store and each wrapper names the three once.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The consumer whose progress advances.
    pub consumer: &'a str,
    /// Where the progress goes: from `step.after` to `step.sequence` on `step.ordering_key`.
    pub step: &'a Step,
    /// What commits with it.
    pub effect: &'a Effect,
}

/// An effect to commit once, for an event without an outbox sequence whose idempotency is its
/// event id: what [`StoreOps::commit_once`] takes.
#[derive(Debug, Clone, Copy)]
pub struct CommitOnce<'a> {
    /// The consumer that applies the event.
    pub consumer: &'a str,
    /// The event's id: the consumer applies it at most once.
    pub event_id: &'a str,
    /// What commits with the record of it.
    pub effect: &'a Effect,
}

impl CommitOnce<'_> {
    /// The record that the consumer applied the event, stamped now: what commits with the
    /// effect when the effect names no record of its own.
    pub(crate) fn done_record(&self) -> Item {
        crate::item::done_record(
            self.consumer,
            self.event_id,
            &crate::envelope::now_rfc3339(),
        )
    }
}

/// What [`StoreOps::commit_leaving`] leaves in its commit's transaction: the items, each
/// waiting for the committing consumer alone, and what the last one out does to them.
#[derive(Debug, Clone, Copy)]
pub struct Leaving<'a> {
    /// The items the consumer leaves.
    pub items: &'a [ItemKey],
    /// What is done to each, as the last consumer out of it.
    pub last: LastOut,
}

/// What committing an effect found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The effect and the progress committed together.
    Applied,
    /// The consumer had applied this event before: nothing was written.
    Duplicate,
    /// An earlier event of the key has not been applied yet (`applied` is the consumer's
    /// progress): nothing was written; retry after it.
    Waiting {
        /// The last sequence the consumer applied on this key.
        applied: u64,
    },
    /// A condition of the effect failed: nothing was written, and retrying will not change it.
    Refused(String),
}

/// What can go wrong talking to the store, sorted by what the caller should do. Each keeps its
/// cause (the SDK's error, or a message) as its source: a log line shows the chain of sources,
/// the SDK's error can be downcast from it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, 5xx, conflicts, timeouts (after the SDK's retries). Retry later: the same
    /// request may well succeed.
    #[error("the database is temporarily unavailable: retry later")]
    Unavailable(#[source] BoxError),
    /// The database refused the request as invalid (an item over 400 KB, a transaction over
    /// 4 MB, a key too long): sent again, it is refused again. Fix the request.
    #[error("the database refused the request as invalid: fix the request")]
    Invalid(#[source] BoxError),
    /// Anything else the database refused (a missing table, missing permissions). Fix the
    /// configuration: retrying as it is will not help.
    #[error("the database request failed: fix the configuration")]
    Failed(#[source] BoxError),
}

impl StoreError {
    /// The cause, whichever the variant.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self {
            Self::Unavailable(cause) | Self::Invalid(cause) | Self::Failed(cause) => cause.as_ref(),
        }
    }
}

/// An error and its sources in one line, each said once (the SDK's errors say "service error"
/// at the top and the useful part in their source): what the engine's log lines show.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut said = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        let text = next.to_string();
        if !said.contains(&text) {
            said = format!("{said}: {text}");
        }
        source = next.source();
    }
    said
}

/// The key of an item: its partition and sort key, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemKey {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
}

/// An event a consumer parked (under [`crate::PoisonPolicy::Park`]), as its store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parked {
    /// The key of the parked record in the consumer's table.
    pub record: ItemKey,
    /// The event as the consumer's decoder reads it (for outbox events, the outbox item).
    pub event: Item,
    /// Why it was parked, or why its last redrive failed.
    pub reason: String,
    /// How many times it proved poison.
    pub attempts: u32,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
}

/// What the last consumer to leave an item does to it, besides taking it out of the pending
/// index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastOut {
    /// An outbox event: marked processed, it expires at `at` (epoch seconds) by the table's TTL.
    Expire {
        /// The TTL, epoch seconds.
        at: i64,
    },
    /// An entity item: it is the application's data, so it stays as it is, without a TTL.
    Keep,
}

/// Where a consumer's progress lives, and how its effects commit:
/// [`crate::dynamodb::DynamoConsumerStore`], or [`crate::memory::MemoryStore`] in a unit test.
///
/// Sealed: its operations (`StoreOps`) are the engine's protocol, not an extension point, so
/// they can change without breaking a caller. The `testing` feature opens them, for tests that
/// drive a store directly or wrap one to inject faults.
pub trait ConsumerStore: StoreOps {}

impl<T: StoreOps> ConsumerStore for T {}

/// The operations of a [`ConsumerStore`].
pub trait StoreOps: Send + Sync {
    /// The consumer's own table: progress items and parked events.
    fn table(&self) -> &str;

    /// Commits `commit.effect` and advances `commit.consumer`'s progress on the step's ordering
    /// key from `step.after` to `step.sequence`, atomically, or writes nothing and says why.
    fn commit(
        &self,
        commit: Commit<'_>,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// [`StoreOps::commit`] and, in the same transaction, [`StoreOps::leave`] of each of
    /// `leaving.items` that waits for the consumer alone: one round trip where the two take two.
    /// `Ok(None)` when they cannot go together (an item waits for another consumer too, was left
    /// before, is gone, or the store does not join them): nothing was written, and the caller
    /// commits and leaves separately. Any other answer is `commit`'s, and when it is
    /// [`Committed::Applied`] every item was left as well.
    fn commit_leaving(
        &self,
        _commit: Commit<'_>,
        _leaving: Leaving<'_>,
    ) -> impl Future<Output = Result<Option<Committed>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// The last sequence `consumer` applied on `ordering_key` (0: none), read consistently:
    /// what a relay reads before it publishes a key's events, so that it never publishes one
    /// whose predecessor it has not published, nor one it published before.
    fn progress_on(
        &self,
        consumer: &str,
        ordering_key: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records that `consumer` is done with an item that waits for its consumers (an outbox
    /// event, or an entity item whose creation was the event): `consumer` leaves the item's
    /// waiting set, and the last one out takes the item out of the pending index and does what
    /// `last` says. An item `consumer` already left, or gone, is left as it is; a departure cut
    /// short (the set left, the index not) is finished by the next call of any consumer.
    fn leave(
        &self,
        consumer: &str,
        item: &ItemKey,
        last: LastOut,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` of `consumer`'s parked events, oldest first.
    fn parked(
        &self,
        consumer: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send;

    /// Commits `effect` together with the deletion of the parked record `parked`, atomically, on
    /// the condition that the record still exists. [`Committed::Duplicate`] when it does not (a
    /// concurrent redrive applied it), [`Committed::Refused`] when a condition of the effect
    /// failed; nothing is written in either case. The consumer's progress is not touched: the
    /// key moved on when the event was parked.
    fn commit_parked(
        &self,
        parked: &ItemKey,
        effect: &Effect,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Records that the parked event proved poison again: its new reason, one more attempt. A
    /// record that is gone (redriven meanwhile) is left gone.
    fn repark(
        &self,
        parked: &ItemKey,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Commits `once.effect` for an event without an outbox sequence, whose idempotency is its
    /// `event_id`: together with a done record (`OUTBOX#DONE#<consumer>#<event_id>`, put if
    /// absent) or, when the effect names one ([`Effect::put_new_as_record`]), with that put as
    /// the record. [`Committed::Duplicate`] when the record exists (for a named record: with the
    /// same content; other content is [`Committed::Refused`]); nothing is written then.
    fn commit_once(
        &self,
        once: CommitOnce<'_>,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;
}
