//! Per-key order, duplicates, and how a key's events are grouped into transactions.

use dynamodb_outbox::Envelope;
use serde_dynamo::Item;

use crate::fixture::{deposit, name_of, Frozen, Ledger, StoreUnderTest, World};

pub async fn each_key_is_applied_in_write_order_however_the_batch_is_shuffled<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let mut items = world.deposits("a", &[10, 20, 30, 40, 50]).await;
    items.extend(world.deposits("b", &[1, 2, 3]).await);
    // Interleaved and reversed, as shards and retries can make it.
    items.reverse();
    items.swap(0, 6);
    let outcome = world.ledger().process_items(items).await;
    assert_counts!(outcome, applied: 8, failures.len(): 0);
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3, 4, 5]);
    assert_eq!(world.applied_order("ledger", "b"), vec![1, 2, 3]);
    assert_eq!(world.balances("ledger", &["a", "b"]).await, [150, 6]);
}

pub async fn an_event_that_arrives_before_its_predecessor_waits_across_batches<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::new().await;
    let first = world.write(&deposit("a", 1)).await;
    let second = world.write(&deposit("a", 2)).await;
    let processor = world.ledger();

    let early = processor.process_items(vec![second.clone()]).await;
    assert_counts!(early, waiting: 1, applied: 0);
    assert_eq!(early.failures, vec![name_of(&second)], "reported for retry");
    assert_eq!(
        world.balance("ledger", "a").await,
        0,
        "nothing applied out of order"
    );

    processor.process_items(vec![first]).await;
    let retry = processor.process_items(vec![second]).await;
    assert_eq!(retry.applied, 1, "{retry:?}");
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2]);
}

pub async fn a_redelivered_batch_is_all_duplicates<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let items = writes(&mut world, "a", 4).await;
    let processor = world.ledger();
    processor.process_items(items.clone()).await;
    let again = processor.process_items(items).await;
    assert_counts!(again, duplicates: 4, applied: 0);
    assert_eq!(world.balance("ledger", "a").await, 10);
}

pub async fn a_keys_consecutive_events_commit_in_one_transaction<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let mut items = writes(&mut world, "a", 5).await;
    items.push(world.write(&deposit("b", 100)).await);
    let outcome = world.ledger().process_items(items).await;
    assert_eq!(outcome.applied, 6, "{outcome:?}");
    assert_eq!(
        world.commits("ledger", "a"),
        vec![(0, 5)],
        "five events, one round trip"
    );
    assert_eq!(
        world.balance("ledger", "a").await,
        15,
        "one addition of their sum"
    );
    assert_eq!(world.balance("ledger", "b").await, 100);
}

pub async fn a_run_the_consumer_partly_applied_before_applies_only_the_rest<S: StoreUnderTest>() {
    let mut world = World::<S>::new().await;
    let items = writes(&mut world, "a", 5).await;
    let processor = world.ledger();
    processor.process_items(items[..2].to_vec()).await;
    let outcome = processor.process_items(items).await;
    assert_counts!(outcome, duplicates: 2, applied: 3);
    assert_eq!(world.balance("ledger", "a").await, 15);
    assert_eq!(world.applied_order("ledger", "a"), vec![1, 2, 3, 4, 5]);
}

pub async fn one_event_per_transaction_commits_each_event_on_its_own_in_order<S: StoreUnderTest>() {
    assert_eq!(
        run_in_transactions_of::<S>(5, 1, 1).await,
        vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    );
}

pub async fn a_hot_keys_run_is_cut_at_the_events_per_transaction<S: StoreUnderTest>() {
    assert_eq!(
        run_in_transactions_of::<S>(7, 3, 4).await,
        vec![(0, 3), (3, 6), (6, 7)]
    );
}

/// Applies a run of `events` deposits on key `a` (1, 2, ... cents), `concurrency` keys at a
/// time and at most `per_transaction` events to a transaction, checks that each is applied
/// once, and returns the ledger's commits on the key.
async fn run_in_transactions_of<S: StoreUnderTest>(
    events: i64,
    per_transaction: usize,
    concurrency: usize,
) -> Vec<(u64, u64)> {
    let mut world = World::<S>::new().await;
    let items = writes(&mut world, "a", events).await;
    let outcome = world
        .ledger()
        .concurrency(concurrency)
        .events_per_transaction(per_transaction)
        .process_items(items)
        .await;
    assert_counts!(outcome, applied: events as usize);
    assert_eq!(
        world.balance("ledger", "a").await,
        events * (events + 1) / 2
    );
    world.commits("ledger", "a")
}

pub async fn an_event_type_a_consumer_does_not_take_is_skipped_and_its_key_goes_on<
    S: StoreUnderTest,
>() {
    let mut world = World::<S>::new().await;
    let items = vec![
        world.write(&deposit("a", 5)).await,
        world
            .write(&Envelope::new(Frozen {
                account: "a".into(),
            }))
            .await,
        world.write(&deposit("a", 7)).await,
    ];
    let outcome = world.ledger().process_items(items.clone()).await;
    assert_counts!(outcome, applied: 2, skipped: 1, poison: 0);
    assert_eq!(world.balance("ledger", "a").await, 12);

    // The audit consumer was never routed the Frozen event: it ignores it, and its chain skips it.
    let audit = world
        .processor(Ledger::new("audit"))
        .process_items(items)
        .await;
    assert_counts!(audit, applied: 2, ignored: 1);
}

/// `count` deposits of 1, 2, ... cents on `account`, written in order.
pub async fn writes<S: StoreUnderTest>(
    world: &mut World<S>,
    account: &str,
    count: i64,
) -> Vec<Item> {
    let cents: Vec<i64> = (1..=count).collect();
    world.deposits(account, &cents).await
}
