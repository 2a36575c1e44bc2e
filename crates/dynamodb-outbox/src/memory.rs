//! An in-memory [`ConsumerStore`] with DynamoDB's semantics for what the engine uses: effects and
//! progress commit together or not at all, conditions refuse, the last consumer expires the
//! outbox item. For fast unit tests of consumers and of the batch logic; the end-to-end suites
//! run on a real (local) DynamoDB.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_dynamo::{AttributeValue, Item};

use serde::Serialize;

use crate::consumer::{Effect, Write};
use crate::delivery::Header;
use crate::dynamodb::Routes;
use crate::envelope::now_rfc3339;
use crate::envelope::Envelope;
use crate::item::{done_record, outbox_item, read_parked, same_record, KeyCounter};
use crate::schema;
use crate::store::{Committed, ConsumerStore, ItemKey, Parked, Step, StoreError};

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
    waiting: HashMap<ItemKey, BTreeSet<String>>,
    expires: HashMap<ItemKey, i64>,
    commit_faults: VecDeque<StoreError>,
    commits: Vec<(String, String, u64, u64)>,
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

    /// Registers an outbox item as the writer stored it: who has yet to process it.
    pub fn outbox_written(&self, item: &Item) {
        let header = Header::peek(item);
        let key = ItemKey {
            pk: header.pk,
            sk: header.sk,
        };
        self.state()
            .waiting
            .insert(key, header.after.into_keys().collect());
    }

    /// Registers an entity item as its producer stored it, with the pending marker of
    /// [`crate::pending_marker`]: who has yet to process its creation.
    pub fn entity_written(&self, item: &Item) {
        let header = Header::peek(item);
        let waiting = match item.get(schema::WAITING_CONSUMERS) {
            Some(AttributeValue::Ss(consumers)) => consumers.iter().cloned().collect(),
            _ => BTreeSet::new(),
        };
        let key = ItemKey {
            pk: header.pk,
            sk: header.sk,
        };
        self.state().waiting.insert(key, waiting);
    }

    /// The next `count` commits fail with `error`, as a throttled or unreachable database would.
    pub fn fail_next_commits(&self, count: usize, error: StoreError) {
        let mut state = self.state();
        for _ in 0..count {
            state.commit_faults.push_back(error.clone());
        }
    }

    /// The last sequence `consumer` applied on `ordering_key` (0: none).
    pub fn progress(&self, consumer: &str, ordering_key: &str) -> u64 {
        self.state()
            .progress
            .get(&(consumer.to_owned(), ordering_key.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Every commit that applied, in order: (consumer, ordering key, progress before, progress
    /// after). A commit of several consecutive events moves the progress over all of them.
    pub fn commits(&self) -> Vec<(String, String, u64, u64)> {
        self.state().commits.clone()
    }

    /// An item an effect wrote.
    pub fn item(&self, table: &str, pk: &str, sk: &str) -> Option<Item> {
        self.state()
            .items
            .get(&(table.to_owned(), pk.to_owned(), sk.to_owned()))
            .cloned()
    }

    /// A numeric attribute an effect wrote (0 when absent).
    pub fn number(&self, table: &str, pk: &str, sk: &str, attribute: &str) -> i64 {
        self.item(table, pk, sk)
            .and_then(|item| number_of(&item, attribute))
            .unwrap_or(0)
    }

    /// When the outbox item expires, once its last consumer is done.
    pub fn expires_at(&self, item: &ItemKey) -> Option<i64> {
        self.state().expires.get(item).copied()
    }

    /// The consumers still waiting on an outbox item.
    pub fn waiting(&self, item: &ItemKey) -> BTreeSet<String> {
        self.state().waiting.get(item).cloned().unwrap_or_default()
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
                table,
                pk,
                sk,
                attribute,
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

impl ConsumerStore for MemoryStore {
    fn table(&self) -> &str {
        &self.table
    }

    async fn commit(
        &self,
        consumer: &str,
        step: &Step,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        let mut state = self.state();
        if let Some(fault) = state.commit_faults.pop_front() {
            return Err(fault);
        }
        let progress_key = (consumer.to_owned(), step.ordering_key.clone());
        let applied = state.progress.get(&progress_key).copied().unwrap_or(0);
        if applied >= step.sequence {
            return Ok(Committed::Duplicate);
        }
        if applied < step.after {
            return Ok(Committed::Waiting { applied });
        }
        if applied != step.after {
            return Ok(Committed::Refused(format!(
                "progress {applied} is past this event's predecessor {}: its routing changed",
                step.after
            )));
        }
        let staged = match stage(&state, effect) {
            Ok(staged) => staged,
            Err(refused) => return Ok(refused),
        };
        for (key, item) in staged {
            state.items.insert(key, item);
        }
        state.progress.insert(progress_key, step.sequence);
        state.commits.push((
            consumer.to_owned(),
            step.ordering_key.clone(),
            step.after,
            step.sequence,
        ));
        Ok(Committed::Applied)
    }

    async fn complete(
        &self,
        consumer: &str,
        item: &ItemKey,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let Some(waiting) = state.waiting.get_mut(item) else {
            return Ok(());
        };
        if waiting.remove(consumer) && waiting.is_empty() {
            state.expires.insert(item.clone(), expires_at);
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
        if let Some(fault) = state.commit_faults.pop_front() {
            return Err(fault);
        }
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
        let staged = match stage(&state, effect) {
            Ok(staged) => staged,
            Err(refused) => return Ok(refused),
        };
        for (key, item) in staged {
            state.items.insert(key, item);
        }
        state.items.remove(&record);
        Ok(Committed::Applied)
    }

    async fn commit_once(
        &self,
        consumer: &str,
        event_id: &str,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        let mut state = self.state();
        if let Some(fault) = state.commit_faults.pop_front() {
            return Err(fault);
        }
        let done = match effect.idempotency_record() {
            Some(Write::Put { table, item, .. }) => {
                if let Some(existing) = state.items.get(&key_of(table, item)) {
                    return Ok(if same_record(existing, item) {
                        Committed::Duplicate
                    } else {
                        Committed::Refused(format!(
                            "the idempotency record of event {event_id} exists with other content"
                        ))
                    });
                }
                None
            }
            _ => {
                let done = done_record(consumer, event_id, &now_rfc3339());
                if state.items.contains_key(&key_of(&self.table, &done)) {
                    return Ok(Committed::Duplicate);
                }
                Some(done)
            }
        };
        let staged = match stage(&state, effect) {
            Ok(staged) => staged,
            Err(refused) => return Ok(refused),
        };
        for (key, item) in staged {
            state.items.insert(key, item);
        }
        if let Some(done) = done {
            state.items.insert(key_of(&self.table, &done), done);
        }
        Ok(Committed::Applied)
    }

    async fn release(&self, consumer: &str, entity: &ItemKey) -> Result<(), StoreError> {
        if let Some(waiting) = self.state().waiting.get_mut(entity) {
            waiting.remove(consumer);
        }
        Ok(())
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
        store.outbox_written(&item);
        Ok(item)
    }
}
