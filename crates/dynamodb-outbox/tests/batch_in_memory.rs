//! The batch logic without a server: grouping, per-key order, hold-back, partial failures, skip
//! versus poison, several consumers. The same engine runs on DynamoDB in the workspace's
//! end-to-end suites.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dynamodb_outbox::dynamodb::Routes;
use dynamodb_outbox::memory::{MemoryOutbox, MemoryStore};
use dynamodb_outbox::testing::Header;
use dynamodb_outbox::{
    BatchOutcome, Consumer, ConsumerStore, Counter, Effect, Envelope, Event, HandlerError, Hooked,
    ItemKey, PoisonPolicy, Processor, Source, StoreError, StoreHooks, Takes,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    account: String,
    cents: i64,
}

impl Event for Deposited {
    const EVENT_TYPE: &'static str = "Deposited";
    const SCHEMA_VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Account";
    fn aggregate_id(&self) -> String {
        self.account.clone()
    }
}

/// A newer event type the consumers were never taught.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Frozen {
    account: String,
}

impl Event for Frozen {
    const EVENT_TYPE: &'static str = "Frozen";
    const SCHEMA_VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Account";
    fn aggregate_id(&self) -> String {
        self.account.clone()
    }
}

const TABLE: &str = "accounts";

/// Keeps a balance and a journal of applied sequences per account; a negative deposit is poison.
#[derive(Clone)]
struct Ledger {
    name: &'static str,
    policy: PoisonPolicy,
    down: Arc<AtomicBool>,
}

impl Ledger {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            policy: PoisonPolicy::Wait,
            down: Arc::default(),
        }
    }
}

impl Consumer for Ledger {
    type Payload = Deposited;

    fn name(&self) -> &str {
        self.name
    }

    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions("Deposited", 1..=1)]
    }

    fn on_poison(&self) -> PoisonPolicy {
        self.policy
    }

    async fn effect(&self, event: &Envelope<Deposited>) -> Result<Effect, HandlerError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(HandlerError::Transient("the ledger is down".into()));
        }
        if event.payload.cents < 0 {
            return Err(HandlerError::Poison("a negative deposit".into()));
        }
        let pk = format!("{}#{}", self.name, event.payload.account);
        let entry = Item::from(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.clone())),
            (
                "sk".to_owned(),
                AttributeValue::S(format!("ENTRY#{}", event.event_id)),
            ),
        ]));
        Ok(Effect::new().put_new(TABLE, entry).add_at_most(
            Counter {
                table: TABLE.into(),
                key: ItemKey {
                    pk,
                    sk: "BALANCE".into(),
                },
                attribute: "cents".into(),
            },
            event.payload.cents,
            1_000_000,
        ))
    }
}

fn routes() -> Routes {
    Routes::new()
        .route("Deposited", &["ledger", "audit"])
        .route("Frozen", &["ledger"])
}

fn deposit(account: &str, cents: i64) -> Envelope<Deposited> {
    Envelope::new(Deposited {
        account: account.into(),
        cents,
    })
}

struct World {
    outbox: MemoryOutbox,
    store: MemoryStore,
}

impl World {
    fn new() -> Self {
        Self {
            outbox: MemoryOutbox::new(routes()),
            store: MemoryStore::new(TABLE),
        }
    }

    fn write<P: Serialize>(&mut self, event: &Envelope<P>) -> Item {
        self.outbox.write(event, &self.store).unwrap()
    }

    fn processor(&self, ledger: Ledger) -> Processor<Ledger, MemoryStore> {
        Processor::new(ledger, self.store.clone(), Source::table("outbox").unwrap()).concurrency(4)
    }

    fn balance(&self, consumer: &str, account: &str) -> i64 {
        self.store
            .number(TABLE, &format!("{consumer}#{account}"), "BALANCE", "cents")
    }

    /// The sequences the consumer applied on the key, in the order its commits happened (every
    /// event of these tests reaches every consumer, so a commit from progress `a` to `b` applied
    /// `a+1..=b`).
    fn applied_order(&self, consumer: &str, key: &str) -> Vec<u64> {
        self.store
            .commits()
            .into_iter()
            .filter(|(c, k, _, _)| c == consumer && k == key)
            .flat_map(|(_, _, from, to)| from + 1..=to)
            .collect()
    }
}

fn key_of(item: &Item) -> ItemKey {
    let header = Header::peek(item);
    ItemKey {
        pk: header.pk,
        sk: header.sk,
    }
}

fn name_of(item: &Item) -> String {
    let key = key_of(item);
    format!("{}/{}", key.pk, key.sk)
}

#[tokio::test]
async fn each_key_is_applied_in_write_order_however_the_batch_is_shuffled() {
    let mut world = World::new();
    let mut items = Vec::new();
    for i in 1..=5 {
        items.push(world.write(&deposit("a", i * 10)));
    }
    for i in 1..=3 {
        items.push(world.write(&deposit("b", i)));
    }
    // Interleaved and reversed, as shards and retries can make it.
    items.reverse();
    items.swap(0, 6);
    let outcome = world
        .processor(Ledger::new("ledger"))
        .process_items(items)
        .await;
    assert_eq!(
        (outcome.applied, outcome.failures.len()),
        (8, 0),
        "{outcome:?}"
    );
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3, 4, 5]);
    assert_eq!(world.applied_order("ledger", "b"), vec![1, 2, 3]);
    assert_eq!(world.balance("ledger", "a"), 150);
    assert_eq!(world.balance("ledger", "b"), 6);
}

#[tokio::test]
async fn an_event_that_arrives_before_its_predecessor_waits_across_batches() {
    let mut world = World::new();
    let first = world.write(&deposit("a", 1));
    let second = world.write(&deposit("a", 2));
    let processor = world.processor(Ledger::new("ledger"));

    let early = processor.process_items(vec![second.clone()]).await;
    assert_eq!((early.waiting, early.applied), (1, 0), "{early:?}");
    assert_eq!(early.failures, vec![name_of(&second)], "reported for retry");
    assert_eq!(
        world.balance("ledger", "a"),
        0,
        "nothing applied out of order"
    );

    processor.process_items(vec![first]).await;
    let retry = processor.process_items(vec![second]).await;
    assert_eq!(retry.applied, 1, "{retry:?}");
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2]);
}

#[tokio::test]
async fn a_redelivered_batch_is_all_duplicates() {
    let mut world = World::new();
    let items: Vec<Item> = (1..=4).map(|i| world.write(&deposit("a", i))).collect();
    let processor = world.processor(Ledger::new("ledger"));
    processor.process_items(items.clone()).await;
    let again = processor.process_items(items).await;
    assert_eq!((again.duplicates, again.applied), (4, 0), "{again:?}");
    assert_eq!(world.balance("ledger", "a"), 10);
}

#[tokio::test]
async fn under_the_wait_policy_a_poison_event_holds_back_its_key_and_only_its_key() {
    let mut world = World::new();
    let a1 = world.write(&deposit("a", 5));
    let a2 = world.write(&deposit("a", -1));
    let a3 = world.write(&deposit("a", 7));
    let b1 = world.write(&deposit("b", 9));
    let outcome = world
        .processor(Ledger::new("ledger"))
        .process_items(vec![a1, a2.clone(), a3.clone(), b1])
        .await;
    assert_eq!(
        (outcome.applied, outcome.poison, outcome.held_back),
        (2, 1, 1),
        "{outcome:?}"
    );
    assert_eq!(outcome.failures, vec![name_of(&a2), name_of(&a3)]);
    assert_eq!(world.balance("ledger", "a"), 5);
    assert_eq!(world.balance("ledger", "b"), 9);
}

#[tokio::test]
async fn under_the_park_policy_a_poison_event_is_parked_and_its_key_goes_on() {
    let mut world = World::new();
    let items = vec![
        world.write(&deposit("a", 5)),
        world.write(&deposit("a", -1)),
        world.write(&deposit("a", 7)),
    ];
    let ledger = Ledger {
        policy: PoisonPolicy::Park,
        ..Ledger::new("ledger")
    };
    let outcome = world.processor(ledger).process_items(items).await;
    assert_eq!(
        (outcome.applied, outcome.parked, outcome.failures.len()),
        (2, 1, 0),
        "{outcome:?}"
    );
    assert_eq!(world.balance("ledger", "a"), 12);
    let parked = world.store.parked("ledger", 10).await.unwrap();
    assert_eq!(parked.len(), 1, "the parked event is recorded: {parked:?}");
    assert_eq!(parked[0].reason, "a negative deposit");
    assert_eq!(
        Header::peek(&parked[0].event).sequence,
        Some(2),
        "the record carries the event itself"
    );
}

#[tokio::test]
async fn an_event_type_a_consumer_does_not_take_is_skipped_and_its_key_goes_on() {
    let mut world = World::new();
    let items = vec![
        world.write(&deposit("a", 5)),
        world.write(&Envelope::new(Frozen {
            account: "a".into(),
        })),
        world.write(&deposit("a", 7)),
    ];
    let outcome = world
        .processor(Ledger::new("ledger"))
        .process_items(items.clone())
        .await;
    assert_eq!(
        (outcome.applied, outcome.skipped, outcome.poison),
        (2, 1, 0),
        "{outcome:?}"
    );
    assert_eq!(world.balance("ledger", "a"), 12);

    // The audit consumer was never routed the Frozen event: it ignores it, and its chain skips it.
    let audit = world
        .processor(Ledger::new("audit"))
        .process_items(items)
        .await;
    assert_eq!((audit.applied, audit.ignored), (2, 1), "{audit:?}");
}

#[tokio::test]
async fn a_transient_failure_holds_back_the_key_and_the_retry_applies_once() {
    let mut world = World::new();
    let items: Vec<Item> = (1..=3).map(|i| world.write(&deposit("a", i))).collect();
    let other = world.write(&deposit("b", 100));
    let processor = world.processor(Ledger::new("ledger"));
    let mut batch = items.clone();
    batch.push(other);
    world
        .store
        .fail_next_commits(1, StoreError::Unavailable("throttled".into()));
    let outcome = processor.process_items(batch.clone()).await;
    assert_eq!(outcome.failed + outcome.held_back, 3, "{outcome:?}");
    let retry = processor.process_items(batch).await;
    assert_eq!(world.balance("ledger", "a"), 6, "{retry:?}");
    assert_eq!(world.balance("ledger", "b"), 100);
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3]);
}

#[tokio::test]
async fn an_effect_whose_condition_fails_is_poison_and_writes_nothing() {
    let mut world = World::new();
    let items = vec![
        world.write(&deposit("a", 999_999)),
        world.write(&deposit("a", 2)),
    ];
    let outcome = world
        .processor(Ledger::new("ledger"))
        .process_items(items)
        .await;
    assert_eq!((outcome.applied, outcome.poison), (1, 1), "{outcome:?}");
    assert_eq!(world.balance("ledger", "a"), 999_999, "the limit held");
    assert_eq!(world.store.progress("ledger", "a"), 1);
}

#[tokio::test]
async fn an_event_expires_only_after_every_consumer_routed_to_it_is_done() {
    let mut world = World::new();
    let item = world.write(&deposit("a", 5));
    let key = key_of(&item);
    let ledger = Ledger::new("ledger");
    let audit = Ledger::new("audit");
    audit.down.store(true, Ordering::SeqCst);

    let first: BatchOutcome = world
        .processor(ledger)
        .process_items(vec![item.clone()])
        .await;
    let failing = world
        .processor(audit.clone())
        .process_items(vec![item.clone()])
        .await;
    assert_eq!((first.applied, failing.failed), (1, 1));
    assert_eq!(
        world.store.expires_at(&key),
        None,
        "audit has yet to apply it"
    );
    assert_eq!(
        world.store.waiting(&key).into_iter().collect::<Vec<_>>(),
        vec!["audit".to_owned()]
    );

    audit.down.store(false, Ordering::SeqCst);
    world.processor(audit).process_items(vec![item]).await;
    assert!(world.store.expires_at(&key).is_some());
    assert_eq!(world.balance("audit", "a"), 5);
    assert_eq!(world.balance("ledger", "a"), 5);
}

#[tokio::test]
async fn a_keys_consecutive_events_commit_in_one_transaction() {
    let mut world = World::new();
    let mut items: Vec<Item> = (1..=5).map(|i| world.write(&deposit("a", i))).collect();
    items.push(world.write(&deposit("b", 100)));
    let outcome = world
        .processor(Ledger::new("ledger"))
        .process_items(items)
        .await;
    assert_eq!(outcome.applied, 6, "{outcome:?}");
    let commits: Vec<(u64, u64)> = world
        .store
        .commits()
        .into_iter()
        .filter(|(c, k, _, _)| c == "ledger" && k == "a")
        .map(|(_, _, from, to)| (from, to))
        .collect();
    assert_eq!(commits, vec![(0, 5)], "five events, one round trip");
    assert_eq!(
        world.balance("ledger", "a"),
        15,
        "one addition of their sum"
    );
    assert_eq!(world.balance("ledger", "b"), 100);
}

#[tokio::test]
async fn a_run_the_consumer_partly_applied_before_applies_only_the_rest() {
    let mut world = World::new();
    let items: Vec<Item> = (1..=5).map(|i| world.write(&deposit("a", i))).collect();
    let processor = world.processor(Ledger::new("ledger"));
    processor.process_items(items[..2].to_vec()).await;
    let outcome = processor.process_items(items).await;
    assert_eq!((outcome.duplicates, outcome.applied), (2, 3), "{outcome:?}");
    assert_eq!(world.balance("ledger", "a"), 15);
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3, 4, 5]);
}

/// Outbox marks that go wrong: they never finish (the function dies after the batch's commits:
/// a timeout, a crash), or they fail for one item.
enum BrokenMarks {
    /// Every mark hangs; the first one says so on the channel.
    Hang(std::sync::Mutex<Option<futures::channel::oneshot::Sender<()>>>),
    /// The mark of this item fails.
    Fail(ItemKey),
}

impl StoreHooks for BrokenMarks {
    async fn before_complete(&self, _: &str, item: &ItemKey) -> Result<(), StoreError> {
        match self {
            BrokenMarks::Hang(reached) => {
                if let Some(reached) = reached.lock().unwrap().take() {
                    let _ = reached.send(());
                }
                futures::future::pending().await
            }
            BrokenMarks::Fail(key) if key == item => {
                Err(StoreError::Unavailable("throttled".into()))
            }
            BrokenMarks::Fail(_) => Ok(()),
        }
    }
}

#[tokio::test]
async fn a_crash_between_the_commits_and_the_marks_is_repaired_by_redelivery() {
    let mut world = World::new();
    let mut items: Vec<Item> = (1..=3).map(|i| world.write(&deposit("a", i))).collect();
    items.push(world.write(&deposit("b", 100)));
    let (reached, marking) = futures::channel::oneshot::channel();
    let crashing = Processor::new(
        Ledger::new("ledger"),
        Hooked {
            store: world.store.clone(),
            hooks: BrokenMarks::Hang(std::sync::Mutex::new(Some(reached))),
        },
        Source::table("outbox").unwrap(),
    );
    let batch = items.clone();
    let running = tokio::spawn(async move { crashing.process_items(batch).await });
    marking.await.unwrap();
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());

    assert_eq!(world.balance("ledger", "a"), 6, "the effects are in");
    assert_eq!(world.balance("ledger", "b"), 100);
    for item in &items {
        assert!(
            world.store.waiting(&key_of(item)).contains("ledger"),
            "{} is not marked yet",
            name_of(item)
        );
    }

    let redelivered = world
        .processor(Ledger::new("ledger"))
        .process_items(items.clone())
        .await;
    assert_eq!(
        (redelivered.duplicates, redelivered.applied),
        (4, 0),
        "{redelivered:?}"
    );
    assert!(redelivered.failures.is_empty());
    assert_eq!(world.balance("ledger", "a"), 6, "applied once");
    assert_eq!(world.balance("ledger", "b"), 100);
    for item in &items {
        assert!(
            !world.store.waiting(&key_of(item)).contains("ledger"),
            "{} is marked by the redelivery",
            name_of(item)
        );
    }
}

#[tokio::test]
async fn a_failed_mark_is_reported_without_holding_back_its_key_and_the_retry_marks_it() {
    let mut world = World::new();
    let items: Vec<Item> = (1..=3).map(|i| world.write(&deposit("a", i))).collect();
    let unmarkable = key_of(&items[0]);
    let processor = Processor::new(
        Ledger::new("ledger"),
        Hooked {
            store: world.store.clone(),
            hooks: BrokenMarks::Fail(unmarkable.clone()),
        },
        Source::table("outbox").unwrap(),
    )
    .events_per_transaction(1);
    let outcome = processor.process_items(items.clone()).await;
    assert_eq!(
        (outcome.applied, outcome.unmarked, outcome.failed),
        (3, 1, 0),
        "all three applied, one of them not marked: {outcome:?}"
    );
    assert_eq!(outcome.failures, vec![name_of(&items[0])]);
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3]);
    assert!(world.store.waiting(&unmarkable).contains("ledger"));

    let retry = world
        .processor(Ledger::new("ledger"))
        .process_items(items)
        .await;
    assert_eq!(retry.duplicates, 3, "{retry:?}");
    assert!(!world.store.waiting(&unmarkable).contains("ledger"));
    assert_eq!(world.balance("ledger", "a"), 6);
}

#[tokio::test]
async fn one_event_per_transaction_commits_each_event_on_its_own_in_order() {
    let mut world = World::new();
    let items: Vec<Item> = (1..=5).map(|i| world.write(&deposit("a", i))).collect();
    let outcome = world
        .processor(Ledger::new("ledger"))
        .concurrency(1)
        .events_per_transaction(1)
        .process_items(items)
        .await;
    assert_eq!(outcome.applied, 5, "{outcome:?}");
    let commits: Vec<(u64, u64)> = world
        .store
        .commits()
        .into_iter()
        .filter(|(c, k, _, _)| c == "ledger" && k == "a")
        .map(|(_, _, from, to)| (from, to))
        .collect();
    assert_eq!(commits, vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
    assert_eq!(world.balance("ledger", "a"), 15);
}

#[tokio::test]
async fn a_hot_keys_run_is_cut_at_the_events_per_transaction() {
    let mut world = World::new();
    let items: Vec<Item> = (1..=7).map(|i| world.write(&deposit("a", i))).collect();
    let outcome = world
        .processor(Ledger::new("ledger"))
        .events_per_transaction(3)
        .process_items(items)
        .await;
    assert_eq!(outcome.applied, 7, "{outcome:?}");
    let commits: Vec<(u64, u64)> = world
        .store
        .commits()
        .into_iter()
        .filter(|(c, k, _, _)| c == "ledger" && k == "a")
        .map(|(_, _, from, to)| (from, to))
        .collect();
    assert_eq!(commits, vec![(0, 3), (3, 6), (6, 7)]);
}

#[tokio::test]
async fn a_run_the_database_refuses_whole_goes_one_event_at_a_time() {
    let mut world = World::new();
    let items: Vec<Item> = (1..=3).map(|i| world.write(&deposit("a", i))).collect();
    world.store.fail_next_commits(
        1,
        StoreError::Failed("Transaction request cannot be larger than 4 MB".into()),
    );
    let outcome = world
        .processor(Ledger::new("ledger"))
        .process_items(items)
        .await;
    assert_eq!(outcome.applied, 3, "{outcome:?}");
    assert!(outcome.failures.is_empty());
    let commits: Vec<(u64, u64)> = world
        .store
        .commits()
        .into_iter()
        .filter(|(c, k, _, _)| c == "ledger" && k == "a")
        .map(|(_, _, from, to)| (from, to))
        .collect();
    assert_eq!(commits, vec![(0, 1), (1, 2), (2, 3)]);
    assert_eq!(world.balance("ledger", "a"), 6);
}
