//! An in-memory [`crate::ConsumerStore`] with DynamoDB's semantics for what the engine uses: effects and
//! progress commit together or not at all, conditions refuse, the last consumer expires the
//! outbox item. For fast unit tests of consumers and of the batch logic. The engine's contract
//! suite runs the same tests on it and on [`crate::dynamodb::DynamoConsumerStore`], so where
//! the two could differ, DynamoDB's behaviour is the one kept here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_dynamo::{AttributeValue, Item};

use serde::Serialize;

use crate::consumer::{Counter, Effect, Write};
use crate::delivery::Header;
use crate::dynamodb::Routes;
use crate::envelope::Envelope;
use crate::item::{outbox_item, read_parked, record_found, KeyCounter};
use crate::schema;
use crate::store::{
    Commit, CommitOnce, Committed, ItemKey, LastOut, Leaving, Parked, StoreError, StoreOps,
};

/// The in-memory store; clones share the same state.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    table: String,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    progress: HashMap<(String, String), u64>,
    items: HashMap<(String, String, String), Item>,
    waiting: HashMap<ItemKey, Waiting>,
}

/// An item that waits for its consumers, as DynamoDB keeps it: the waiting set, whether it is in
/// the pending index, and (for an outbox event its last consumer finished) its TTL.
#[derive(Debug, Default)]
struct Waiting {
    consumers: BTreeSet<String>,
    pending: bool,
    expires_at: Option<i64>,
}

impl Waiting {
    /// The last consumer out: the item leaves the pending index, and expires if `last` says so.
    fn finish(&mut self, last: LastOut) {
        self.pending = false;
        if let LastOut::Expire { at } = last {
            self.expires_at = Some(at);
        }
    }
}

impl State {
    /// Where the consumer's progress on the step's key is kept, when the step is the next to
    /// commit; otherwise what keeps it from committing.
    fn next(&self, commit: Commit<'_>) -> Result<(String, String), Committed> {
        let progress = (commit.consumer.to_owned(), commit.step.ordering_key.clone());
        let applied = self.progress.get(&progress).copied().unwrap_or(0);
        commit.step.blocked(applied).map_or(Ok(progress), Err)
    }

    /// Writes the effect and advances the `progress` to the step, all or nothing, as one
    /// DynamoDB transaction would.
    fn apply(&mut self, progress: (String, String), commit: Commit<'_>) -> Committed {
        if let Err(refused) = write_all(self, commit.effect) {
            return refused;
        }
        self.progress.insert(progress, commit.step.sequence);
        Committed::Applied
    }
}

impl MemoryStore {
    /// A store whose consumer table is named `table`.
    pub fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an item as its producer stored it, an outbox item or an entity item with the
    /// pending marker of [`crate::pending_marker`]: who has yet to process it, and whether it
    /// is in the pending index.
    pub fn written(&self, item: &Item) {
        let header = Header::peek(item);
        let consumers = match item.get(schema::WAITING_CONSUMERS) {
            Some(AttributeValue::Ss(consumers)) => consumers.iter().cloned().collect(),
            _ => BTreeSet::new(),
        };
        let waiting = Waiting {
            consumers,
            pending: item.contains_key(schema::PENDING_PK),
            expires_at: None,
        };
        self.state().waiting.insert(header.key(), waiting);
    }

    /// The last sequence `consumer` applied on `ordering_key` (0: none).
    pub(crate) fn progress_of(&self, consumer: &str, ordering_key: &str) -> u64 {
        self.state()
            .progress
            .get(&(consumer.to_owned(), ordering_key.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// An item an effect wrote.
    #[cfg(feature = "testing")]
    pub(crate) fn item_at(&self, table: &str, pk: &str, sk: &str) -> Option<Item> {
        self.state()
            .items
            .get(&(table.to_owned(), pk.to_owned(), sk.to_owned()))
            .cloned()
    }

    /// An item's waiting set, whether it is in the pending index, and its TTL.
    #[cfg(feature = "testing")]
    pub(crate) fn waiting_of(&self, item: &ItemKey) -> (BTreeSet<String>, bool, Option<i64>) {
        self.state().waiting.get(item).map_or_else(
            || (BTreeSet::new(), false, None),
            |w| (w.consumers.clone(), w.pending, w.expires_at),
        )
    }
}

fn number_of(item: &Item, attribute: &str) -> Option<i64> {
    match item.get(attribute) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// An item's place: (table, pk, sk).
type TableKey = (String, String, String);

fn key_of(table: &str, item: &Item) -> TableKey {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    (table.to_owned(), text(schema::PK), text(schema::SK))
}

/// Writes the effect's items, all or none: none, and why, when one is refused ([`stage`]).
fn write_all(state: &mut State, effect: &Effect) -> Result<(), Committed> {
    for (key, item) in stage(state, effect)? {
        state.items.insert(key, item);
    }
    Ok(())
}

/// The items an effect would write, every condition checked before anything is written (all or
/// nothing), or why it is refused.
fn stage(state: &State, effect: &Effect) -> Result<Vec<(TableKey, Item)>, Committed> {
    let mut staged: Vec<(TableKey, Item)> = Vec::new();
    for write in effect.writes() {
        match write {
            Write::Put {
                table,
                item,
                if_absent,
            } => {
                let key = key_of(table, item);
                if *if_absent && state.items.contains_key(&key) {
                    return Err(Committed::Refused(write.refusal()));
                }
                staged.push((key, item.clone()));
            }
            Write::Add {
                counter:
                    Counter {
                        table,
                        key: ItemKey { pk, sk },
                        attribute,
                    },
                amount,
                at_most,
            } => {
                let key = (table.clone(), pk.clone(), sk.clone());
                let mut item = state.items.get(&key).cloned().unwrap_or_else(|| {
                    Item::from(HashMap::from([
                        (schema::PK.to_owned(), AttributeValue::S(pk.clone())),
                        (schema::SK.to_owned(), AttributeValue::S(sk.clone())),
                    ]))
                });
                let current = number_of(&item, attribute).unwrap_or(0);
                let refused = || Committed::Refused(write.refusal());
                let Some(sum) = current.checked_add(*amount) else {
                    return Err(refused());
                };
                if at_most.is_some_and(|max| sum > max) {
                    return Err(refused());
                }
                item.insert(attribute.clone(), AttributeValue::N(sum.to_string()));
                staged.push((key, item));
            }
        }
    }
    Ok(staged)
}

impl StoreOps for MemoryStore {
    fn table(&self) -> &str {
        &self.table
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, StoreError> {
        let mut state = self.state();
        Ok(match state.next(commit) {
            Ok(progress) => state.apply(progress, commit),
            Err(blocked) => blocked,
        })
    }

    async fn commit_leaving(
        &self,
        commit: Commit<'_>,
        leaving: Leaving<'_>,
    ) -> Result<Option<Committed>, StoreError> {
        let Leaving { items, last } = leaving;
        let mut state = self.state();
        let progress = match state.next(commit) {
            Ok(progress) => progress,
            Err(blocked) => return Ok(Some(blocked)),
        };
        let alone = |item: &ItemKey| {
            state.waiting.get(item).is_some_and(|waiting| {
                waiting.pending
                    && waiting.consumers.len() == 1
                    && waiting.consumers.contains(commit.consumer)
            })
        };
        if !items.iter().all(alone) {
            return Ok(None);
        }
        let committed = state.apply(progress, commit);
        if committed == Committed::Applied {
            for item in items {
                if let Some(waiting) = state.waiting.get_mut(item) {
                    waiting.consumers.clear();
                    waiting.finish(last);
                }
            }
        }
        Ok(Some(committed))
    }

    async fn progress_on(&self, consumer: &str, ordering_key: &str) -> Result<u64, StoreError> {
        Ok(self.progress_of(consumer, ordering_key))
    }

    async fn leave(&self, consumer: &str, item: &ItemKey, last: LastOut) -> Result<(), StoreError> {
        let mut state = self.state();
        let Some(waiting) = state.waiting.get_mut(item) else {
            return Ok(());
        };
        waiting.consumers.remove(consumer);
        // As on DynamoDB, the last one out finishes the item, and so does any later departure
        // that finds the set empty and the item still pending.
        if waiting.consumers.is_empty() && waiting.pending {
            waiting.finish(last);
        }
        Ok(())
    }

    async fn parked(&self, consumer: &str, limit: usize) -> Result<Vec<Parked>, StoreError> {
        let pk = schema::parked_pk(consumer);
        let state = self.state();
        let mut records: Vec<(&String, &Item)> = state
            .items
            .iter()
            .filter(|((table, record_pk, _), _)| *table == self.table && *record_pk == pk)
            .map(|((_, _, sk), item)| (sk, item))
            .collect();
        records.sort_by(|a, b| a.0.cmp(b.0));
        Ok(records
            .into_iter()
            .filter_map(|(_, item)| read_parked(item.clone()))
            .take(limit)
            .collect())
    }

    async fn commit_parked(
        &self,
        parked: &ItemKey,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        let mut state = self.state();
        let record = (self.table.clone(), parked.pk.clone(), parked.sk.clone());
        if !state.items.contains_key(&record) {
            return Ok(Committed::Duplicate);
        }
        if let Some(Write::Put { table, item, .. }) = effect.idempotency_record() {
            if state.items.contains_key(&key_of(table, item)) {
                // A redelivery applied the event after its fix: the parked record is stale.
                state.items.remove(&record);
                return Ok(Committed::Duplicate);
            }
        }
        if let Err(refused) = write_all(&mut state, effect) {
            return Ok(refused);
        }
        state.items.remove(&record);
        Ok(Committed::Applied)
    }

    async fn commit_once(&self, once: CommitOnce<'_>) -> Result<Committed, StoreError> {
        let effect = once.effect;
        let mut state = self.state();
        let done = match effect.idempotency_record() {
            Some(Write::Put { table, item, .. }) => {
                if let Some(existing) = state.items.get(&key_of(table, item)) {
                    return Ok(record_found(existing, item, once.event_id));
                }
                None
            }
            _ => {
                let done = once.done_record();
                if state.items.contains_key(&key_of(&self.table, &done)) {
                    return Ok(Committed::Duplicate);
                }
                Some(done)
            }
        };
        if let Err(refused) = write_all(&mut state, effect) {
            return Ok(refused);
        }
        if let Some(done) = done {
            state.items.insert(key_of(&self.table, &done), done);
        }
        Ok(Committed::Applied)
    }

    async fn repark(&self, parked: &ItemKey, reason: &str) -> Result<(), StoreError> {
        let record = (self.table.clone(), parked.pk.clone(), parked.sk.clone());
        let mut state = self.state();
        if let Some(item) = state.items.get_mut(&record) {
            let attempts = number_of(item, schema::PARKED_ATTEMPTS).unwrap_or(1) + 1;
            item.insert(
                schema::PARKED_ATTEMPTS.into(),
                AttributeValue::N(attempts.to_string()),
            );
            item.insert(
                schema::PARKED_REASON.into(),
                AttributeValue::S(reason.to_owned()),
            );
        }
        Ok(())
    }
}

/// The producer's side in memory: assigns sequences and routing exactly as
/// [`crate::dynamodb::Outbox`] does, and returns the outbox items it would store, to feed a
/// [`crate::Processor`] in unit tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryOutbox {
    routes: Routes,
    counters: HashMap<String, KeyCounter>,
}

impl MemoryOutbox {
    /// An outbox with this routing.
    pub fn new(routes: Routes) -> Self {
        Self {
            routes,
            counters: HashMap::new(),
        }
    }

    /// The outbox item of the next event; registered with `store` as waiting for its consumers.
    pub fn write<P: Serialize>(
        &mut self,
        envelope: &Envelope<P>,
        store: &MemoryStore,
    ) -> Result<Item, String> {
        let consumers = self.routes.consumers_of(&envelope.event_type);
        if consumers.is_empty() {
            return Err(format!("event type {:?} has no route", envelope.event_type));
        }
        let (sequence, after) = self
            .counters
            .entry(envelope.ordering_key.clone())
            .or_default()
            .next(consumers);
        let item = outbox_item(envelope, sequence, &after)?;
        store.written(&item);
        Ok(item)
    }
}
