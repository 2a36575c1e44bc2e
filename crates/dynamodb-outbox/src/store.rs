//! The persistence seam of a consumer: commit an effect with the consumer's progress, and mark
//! the outbox item. [`crate::dynamodb::DynamoConsumerStore`] implements it on DynamoDB,
//! [`crate::memory::MemoryStore`] in memory for unit tests of consumers and of the engine.

use std::future::Future;

use serde_dynamo::Item;

use crate::consumer::Effect;

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

/// What can go wrong talking to the store, sorted by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Throttling, 5xx, conflicts, timeouts (after the SDK's retries): try again later.
    #[error("the database is temporarily unavailable: {0}")]
    Unavailable(String),
    /// The database refused the request as invalid (an item over 400 KB, a transaction over
    /// 4 MB, a key too long): sent again, it is refused again. Fix the request.
    #[error("the database refused the request as invalid: {0}")]
    Invalid(String),
    /// Anything else the database refused (a missing table, missing permissions): fix the
    /// configuration; retrying as it is will not help.
    #[error("database request failed: {0}")]
    Failed(String),
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

/// Where a consumer's progress lives, and how its effects commit.
pub trait ConsumerStore: Send + Sync {
    /// The consumer's own table: progress items and parked events.
    fn table(&self) -> &str;

    /// Commits `effect` and advances `consumer`'s progress on `step.ordering_key` from
    /// `step.after` to `step.sequence`, atomically, or writes nothing and says why.
    fn commit(
        &self,
        consumer: &str,
        step: &Step,
        effect: &Effect,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Records that `consumer` is done with the outbox item. When it was the last consumer
    /// waiting, the item leaves the pending index and gets its TTL (`expires_at`, epoch
    /// seconds). An item already done, or gone, is left as it is.
    fn complete(
        &self,
        consumer: &str,
        item: &ItemKey,
        expires_at: i64,
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

    /// Commits `effect` for an event without an outbox sequence, whose idempotency is its
    /// `event_id`: together with a done record (`OUTBOX#DONE#<consumer>#<event_id>`, put if
    /// absent) or, when the effect names one ([`Effect::put_new_as_record`]), with that put as
    /// the record. [`Committed::Duplicate`] when the record exists (for a named record: with the
    /// same content; other content is [`Committed::Refused`]); nothing is written then.
    fn commit_once(
        &self,
        consumer: &str,
        event_id: &str,
        effect: &Effect,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Records that `consumer` is done with an entity item whose creation was the event (an
    /// entity table's changes): it leaves the item's waiting set, and the last consumer takes
    /// the item out of the pending index. The entity item never gets a TTL: it is the
    /// application's data. An item already released, or without a marker, is left as it is.
    fn release(
        &self,
        consumer: &str,
        entity: &ItemKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Hooks around a store's calls, to inject faults or observe commits (chaos runs, tests of a
/// crash between a commit and its mark) without writing a whole store. Every hook lets the call
/// through unchanged unless overridden.
pub trait StoreHooks: Send + Sync {
    /// Runs before `complete`; an error here is the call's result, and the mark is not made (as
    /// if the process died between the commit and the mark).
    fn before_complete(
        &self,
        _consumer: &str,
        _item: &ItemKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Sees what `commit` came to.
    fn after_commit(&self, _consumer: &str, _step: &Step, _result: &Result<Committed, StoreError>) {
    }

    /// Runs before `release`; an error here is the call's result, and the entity keeps its
    /// pending marker (as if the process died between the effect and the release).
    fn before_release(
        &self,
        _consumer: &str,
        _entity: &ItemKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Sees what `commit_once` came to and may replace it: an error after an applied commit is
    /// a process that died before it could answer.
    fn after_commit_once(
        &self,
        _consumer: &str,
        _event_id: &str,
        result: Result<Committed, StoreError>,
    ) -> Result<Committed, StoreError> {
        result
    }
}

/// A store whose calls go through [`StoreHooks`].
///
/// ```
/// use dynamodb_outbox::memory::MemoryStore;
/// use dynamodb_outbox::{Hooked, ItemKey, StoreError, StoreHooks};
///
/// /// Dies before every mark.
/// struct CrashBeforeMark;
/// impl StoreHooks for CrashBeforeMark {
///     async fn before_complete(&self, _: &str, _: &ItemKey) -> Result<(), StoreError> {
///         Err(StoreError::Unavailable("crashed before the mark".into()))
///     }
/// }
/// let store = Hooked { store: MemoryStore::new("ledger"), hooks: CrashBeforeMark };
/// # let _ = store;
/// ```
#[derive(Debug, Clone)]
pub struct Hooked<S, H> {
    /// The store the calls reach.
    pub store: S,
    /// What runs around them.
    pub hooks: H,
}

impl<S: ConsumerStore, H: StoreHooks> ConsumerStore for Hooked<S, H> {
    fn table(&self) -> &str {
        self.store.table()
    }

    async fn commit(
        &self,
        consumer: &str,
        step: &Step,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        let result = self.store.commit(consumer, step, effect).await;
        self.hooks.after_commit(consumer, step, &result);
        result
    }

    async fn complete(
        &self,
        consumer: &str,
        item: &ItemKey,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.hooks.before_complete(consumer, item).await?;
        self.store.complete(consumer, item, expires_at).await
    }

    async fn parked(&self, consumer: &str, limit: usize) -> Result<Vec<Parked>, StoreError> {
        self.store.parked(consumer, limit).await
    }

    async fn commit_parked(
        &self,
        parked: &ItemKey,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        self.store.commit_parked(parked, effect).await
    }

    async fn repark(&self, parked: &ItemKey, reason: &str) -> Result<(), StoreError> {
        self.store.repark(parked, reason).await
    }

    async fn commit_once(
        &self,
        consumer: &str,
        event_id: &str,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        let result = self.store.commit_once(consumer, event_id, effect).await;
        self.hooks.after_commit_once(consumer, event_id, result)
    }

    async fn release(&self, consumer: &str, entity: &ItemKey) -> Result<(), StoreError> {
        self.hooks.before_release(consumer, entity).await?;
        self.store.release(consumer, entity).await
    }
}
