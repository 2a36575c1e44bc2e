//! Poison, transient failures, crashes before the marks, and consumers leaving items.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use dynamodb_outbox::testing::{
    Commit, CrashPoint, Crashing, Header, LastOut, Leaving, Step, WaitingItem,
};
use dynamodb_outbox::{pending_marker, Effect, PoisonPolicy, Processor, StoreError};
use serde_dynamo::{AttributeValue, Item};

use crate::fixture::{balance_of, deposit, key_of, name_of, outbox, Ledger, StoreUnderTest, World};
use crate::order::writes;

pub async fn under_the_wait_policy_a_poison_event_holds_back_its_key_and_only_its_key<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::new().await;
    let a1 = world.write(&deposit("a", 5)).await;
    let a2 = world.write(&deposit("a", -1)).await;
    let a3 = world.write(&deposit("a", 7)).await;
    let b1 = world.write(&deposit("b", 9)).await;
    let outcome = world
        .ledger()
        .process_items(vec![a1, a2.clone(), a3.clone(), b1])
        .await;
    assert_counts!(outcome, applied: 2, poison: 1, held_back: 1);
    assert_eq!(outcome.failures, vec![name_of(&a2), name_of(&a3)]);
    assert_eq!(world.balances("ledger", &["a", "b"]).await, [5, 9]);
}

pub async fn under_the_park_policy_a_poison_event_is_parked_and_its_key_goes_on<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::new().await;
    let items = world.deposits("a", &[5, -1, 7]).await;
    let ledger = Ledger {
        policy: PoisonPolicy::Park,
        ..Ledger::new("ledger")
    };
    let outcome = world.processor(ledger).process_items(items).await;
    assert_counts!(outcome, applied: 2, parked: 1, failures.len(): 0);
    assert_eq!(world.balance("ledger", "a").await, 12);
    let parked = world.store.parked("ledger", 10).await.unwrap();
    assert_eq!(parked.len(), 1, "the parked event is recorded: {parked:?}");
    assert_eq!(parked[0].reason, "a negative deposit");
    assert_eq!(
        Header::peek(&parked[0].event).sequence,
        Some(2),
        "the record carries the event itself"
    );
}

pub async fn a_transient_failure_holds_back_the_key_and_the_retry_applies_once<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::new().await;
    let mut batch = writes(&mut world, "a", 3).await;
    batch.push(world.write(&deposit("b", 100)).await);
    let processor = world.ledger();
    world
        .recorded
        .fail_next_commits(1, || StoreError::Unavailable("throttled".into()));
    let outcome = processor.process_items(batch.clone()).await;
    assert_eq!(outcome.failed + outcome.held_back, 3, "{outcome:?}");
    let retry = processor.process_items(batch).await;
    assert_eq!(
        world.balances("ledger", &["a", "b"]).await,
        [6, 100],
        "{retry:?}"
    );
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3]);
}

pub async fn an_effect_whose_condition_fails_is_poison_and_writes_nothing<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let items = world.deposits("a", &[999_999, 2]).await;
    let outcome = world.ledger().process_items(items).await;
    assert_counts!(outcome, applied: 1, poison: 1);
    assert_eq!(
        world.balance("ledger", "a").await,
        999_999,
        "the limit held"
    );
    assert_eq!(world.store.progress("ledger", "a").await.unwrap(), 1);
}

pub async fn an_event_expires_only_after_every_consumer_routed_to_it_is_done<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let item = world.write(&deposit("a", 5)).await;
    let audit = Ledger::new("audit");
    audit.down.store(true, Ordering::SeqCst);

    let first = world.ledger().process_items(vec![item.clone()]).await;
    let failing = world
        .processor(audit.clone())
        .process_items(vec![item.clone()])
        .await;
    assert_eq!((first.applied, failing.failed), (1, 1));
    let waiting = world.waiting(&item).await;
    assert_eq!(waiting.expires_at, None, "audit has yet to apply it");
    assert!(waiting.pending, "still in the pending index");
    assert_eq!(
        waiting.consumers.into_iter().collect::<Vec<_>>(),
        vec!["audit"]
    );

    audit.down.store(false, Ordering::SeqCst);
    world
        .processor(audit)
        .process_items(vec![item.clone()])
        .await;
    let done = world.waiting(&item).await;
    assert!(done.expires_at.is_some() && !done.pending, "{done:?}");
    for consumer in ["audit", "ledger"] {
        assert_eq!(
            world.balance(consumer, "a").await,
            5,
            "{consumer} applied it once"
        );
    }
}

pub async fn a_crash_between_the_commits_and_the_marks_is_repaired_by_redelivery<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::new().await;
    let (items, crashes) = crashed(&mut world, CrashPoint::BeforeDone).await;
    assert!(crashes >= 2, "one crash per key at least");
    let unmarked = |w: &WaitingItem| w.consumers.contains("ledger") && w.pending;
    each_waiting(&world, &items, unmarked, "is not marked yet").await;

    redelivered(&world, &items).await;
    let marked = |w: &WaitingItem| !w.consumers.contains("ledger");
    each_waiting(&world, &items, marked, "is marked by the redelivery").await;
}

/// An item that waits for its consumer alone is left by the commit's own transaction: finished
/// with its TTL when the effect is in, so a crash after the commit leaves nothing to repair.
pub async fn an_item_waiting_for_its_consumer_alone_is_finished_with_the_commit<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::alone().await;
    let (items, _) = crashed(&mut world, CrashPoint::AfterCommit).await;
    let finished = |w: &WaitingItem| w.consumers.is_empty() && !w.pending && w.expires_at.is_some();
    each_waiting(&world, &items, finished, "is finished with its commit").await;
    redelivered(&world, &items).await;
}

/// Three deposits on "a" and one on "b", processed by the ledger on a store that crashes at
/// `point` of every commit: the effects are in, and all four are reported for retry. With the
/// items, how many crashes there were.
async fn crashed<S: StoreUnderTest>(world: &mut World<S>, point: CrashPoint) -> (Vec<Item>, u64) {
    let mut items = writes(world, "a", 3).await;
    items.push(world.write(&deposit("b", 100)).await);
    let store = Crashing::always(world.store.clone(), point);
    let crashes = store.crashes();
    let crashing = Processor::new(Ledger::new("ledger"), store, outbox());
    let outcome = crashing.process_items(items.clone()).await;
    assert_eq!(outcome.failures.len(), 4, "reported for retry: {outcome:?}");
    let balances = world.balances("ledger", &["a", "b"]).await;
    assert_eq!(balances, [6, 100], "the effects are in");
    (items, crashes.load(Ordering::Relaxed))
}

/// Redelivers the crashed `items` to the ledger: all duplicates, marked, and applied once.
async fn redelivered<S: StoreUnderTest>(world: &World<S>, items: &[Item]) {
    let redelivered = world.ledger().process_items(items.to_vec()).await;
    assert_counts!(redelivered, duplicates: 4, applied: 0, unmarked: 0, failures.len(): 0);
    let balances = world.balances("ledger", &["a", "b"]).await;
    assert_eq!(balances, [6, 100], "applied once");
}

/// Asserts `holds` of each of `items` as it waits in the store, naming the item it does not.
async fn each_waiting<S: StoreUnderTest>(
    world: &World<S>,
    items: &[Item],
    holds: impl Fn(&WaitingItem) -> bool,
    what: &str,
) {
    for item in items {
        let waiting = world.waiting(item).await;
        assert!(holds(&waiting), "{} {what}: {waiting:?}", name_of(item));
    }
}

/// A commit cannot leave an item that waits for another consumer too: nothing is written, and
/// the caller commits and leaves separately.
pub async fn a_commit_leaves_no_item_another_consumer_waits_for<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let item = world.write(&deposit("a", 5)).await;
    let step = Step {
        ordering_key: "a".into(),
        sequence: 1,
        after: 0,
    };
    let commit = Commit {
        consumer: "ledger",
        step: &step,
        effect: &Effect::new().add_at_most(balance_of("ledger#a".into()), 5, 1_000_000),
    };
    let leaving = Leaving {
        items: &[key_of(&item)],
        last: LastOut::Expire { at: 4_000_000_000 },
    };
    let joined = world.store.commit_leaving(commit, leaving).await.unwrap();
    assert_eq!(joined, None, "the audit waits too");
    assert_eq!(world.balance("ledger", "a").await, 0, "nothing written");
    assert_eq!(world.store.progress("ledger", "a").await.unwrap(), 0);
    let waiting = world.waiting(&item).await;
    assert!(
        waiting.pending && waiting.consumers.len() == 2,
        "{waiting:?}"
    );

    let processed = world.ledger().process_items(vec![item.clone()]).await;
    assert_eq!((processed.applied, processed.unmarked), (1, 0));
    let waiting = world.waiting(&item).await;
    assert_eq!(
        waiting.consumers.into_iter().collect::<Vec<_>>(),
        vec!["audit"],
        "the ledger left it after its commit"
    );
    assert!(waiting.pending && waiting.expires_at.is_none());
}

pub async fn a_failed_mark_is_reported_without_holding_back_its_key_and_the_retry_marks_it<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::new().await;
    let items = writes(&mut world, "a", 3).await;
    let unmarkable = key_of(&items[0]);
    let store = Crashing::always(world.recorded.clone(), CrashPoint::BeforeDone)
        .only_at(unmarkable.clone());
    let processor =
        Processor::new(Ledger::new("ledger"), store, outbox()).events_per_transaction(1);
    let outcome = processor.process_items(items.clone()).await;
    assert_counts!(
        outcome, applied: 3, unmarked: 1, failed: 0;
        "all three applied, one of them not marked: {outcome:?}"
    );
    assert_eq!(outcome.failures, vec![name_of(&items[0])]);
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3]);
    assert!(world.waiting(&items[0]).await.consumers.contains("ledger"));

    let retry = world.ledger().process_items(items.clone()).await;
    assert_eq!(retry.duplicates, 3, "{retry:?}");
    assert!(!world.waiting(&items[0]).await.consumers.contains("ledger"));
    assert_eq!(world.balance("ledger", "a").await, 6);
}

pub async fn a_run_the_database_refuses_whole_goes_one_event_at_a_time<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let items = writes(&mut world, "a", 3).await;
    world.recorded.fail_next_commits(1, || {
        StoreError::Failed("Transaction request cannot be larger than 4 MB".into())
    });
    let outcome = world.ledger().process_items(items).await;
    assert_eq!(outcome.applied, 3, "{outcome:?}");
    assert!(outcome.failures.is_empty());
    assert_eq!(world.commits("ledger", "a"), vec![(0, 1), (1, 2), (2, 3)]);
    assert_eq!(world.balance("ledger", "a").await, 6);
}

/// The protocol both kinds of items share: each consumer leaves the waiting set once, the last
/// one takes the item out of the pending index, and only an outbox event gets a TTL.
pub async fn the_last_consumer_out_takes_an_entity_out_of_the_pending_index_without_a_ttl<
    S: StoreUnderTest,
>() {
    let world = World::<S>::new().await;
    let marker = pending_marker("a", "2026-01-01T00:00:00Z", "d1", &["ledger", "audit"]);
    let mut entity: HashMap<String, AttributeValue> = marker.into();
    entity.insert("pk".into(), AttributeValue::S("ACCOUNT#a".into()));
    entity.insert("sk".into(), AttributeValue::S("DEPOSIT#d1".into()));
    let entity = Item::from(entity);
    world.store.put_waiting(&entity).await.unwrap();
    let key = key_of(&entity);
    let store = &world.store;

    store.leave("ledger", &key, LastOut::Keep).await.unwrap();
    store.leave("ledger", &key, LastOut::Keep).await.unwrap();
    let half = store.waiting(&key).await.unwrap();
    assert_eq!(half.consumers.iter().collect::<Vec<_>>(), vec!["audit"]);
    assert!(half.pending, "audit still waits: {half:?}");

    store.leave("audit", &key, LastOut::Keep).await.unwrap();
    let done = store.waiting(&key).await.unwrap();
    assert!(done.consumers.is_empty() && !done.pending, "{done:?}");
    assert_eq!(done.expires_at, None, "an entity item never expires");
    store
        .leave("audit", &key, LastOut::Expire { at: 1 })
        .await
        .unwrap();
    assert_eq!(
        store.waiting(&key).await.unwrap(),
        done,
        "a duplicate changes nothing"
    );
}
