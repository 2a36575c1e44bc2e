//! An entity table's changes as events: INSERTs only, the adapter decides
//! what is an event, applied once by event id, held back after a failure within a key, and the
//! entity item released (never expired) once its consumers are done.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use aws_lambda_events::dynamodb::EventRecord;
use dynamodb_outbox::{pending_marker, Envelope, ItemKey, Processor, Source};
use serde_dynamo::{AttributeValue, Item};

use crate::fixture::{balance, last, processor_at, Deposited, StoreUnderTest};
use crate::ledger::Ledger;

const ENTITIES: &str = "deposits";
const ARN: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/deposits/stream/2026-11-30";

/// Deposit items are events ("Deposited", or "Refunded" for negative ones, which the ledger does
/// not take); other items are not; a deposit without an amount cannot be read.
fn adapter(item: &Item) -> Option<Result<Envelope<Deposited>, String>> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    let id = text("pk")?.strip_prefix("DEPOSIT#")?.to_owned();
    let cents = match item.get("cents") {
        Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
        _ => None,
    };
    let Some(cents) = cents else {
        return Some(Err(format!("deposit {id} has no amount")));
    };
    let account = text("account").unwrap_or_default();
    Some(Ok(Envelope {
        event_id: format!("Deposited#{id}"),
        event_type: if cents < 0 { "Refunded" } else { "Deposited" }.into(),
        schema_version: 1,
        aggregate_type: "Deposit".into(),
        aggregate_id: id,
        ordering_key: account.clone(),
        occurred_at: "2026-11-30T00:00:00Z".into(),
        trace_context: None,
        payload: Deposited { account, cents },
    }))
}

/// A deposit item with its pending marker, stored where `store` releases it.
async fn deposit<S: StoreUnderTest>(store: &S, id: &str, account: &str, cents: i64) -> Item {
    let mut item = pending_marker(account, "2026-11-30T00:00:00Z", id, &["ledger"]);
    item.insert("pk".into(), AttributeValue::S(format!("DEPOSIT#{id}")));
    item.insert("sk".into(), AttributeValue::S("DEPOSIT".into()));
    item.insert("account".into(), AttributeValue::S(account.into()));
    item.insert("cents".into(), AttributeValue::N(cents.to_string()));
    store.put_waiting(&item).await.unwrap();
    item
}

fn insert(sequence: &str, image: Item) -> EventRecord {
    let mut record = EventRecord::default();
    record.event_name = "INSERT".into();
    record.event_source_arn = Some(ARN.into());
    record.change.sequence_number = Some(sequence.into());
    record.change.new_image = image;
    record
}

fn key(id: &str) -> ItemKey {
    ItemKey {
        pk: format!("DEPOSIT#{id}"),
        sk: "DEPOSIT".into(),
    }
}

async fn world<S: StoreUnderTest>(ledger: Ledger) -> (Processor<Ledger, S>, S) {
    processor_at(ledger, Source::table(ENTITIES).unwrap(), ARN).await
}

pub async fn inserts_are_applied_once_and_release_their_entity_item<S: StoreUnderTest>() {
    let (processor, store) = world::<S>(Ledger::default()).await;
    let mut records = vec![
        insert("1", deposit(&store, "d1", "a", 5).await),
        insert("2", deposit(&store, "d2", "a", 7).await),
    ];
    let mut modify = records[0].clone();
    modify.event_name = "MODIFY".into();
    records.push(modify);
    let mut other = Item::from(HashMap::<String, AttributeValue>::new());
    other.insert("pk".into(), AttributeValue::S("ACCOUNT#a".into()));
    records.push(insert("4", other));

    let outcome = processor.process_changes(&records, adapter).await;
    assert_counts!(outcome, applied: 2, ignored: 2, failures.len(): 0);
    let released = store.waiting(&key("d1")).await.unwrap();
    assert!(
        released.consumers.is_empty() && !released.pending,
        "released: {released:?}"
    );
    assert_eq!(released.expires_at, None, "never expires");
    let again = processor.process_changes(&records, adapter).await;
    assert_eq!(again.duplicates, 2, "{again:?}");
    assert_eq!(balance(&store, "a").await, 12);
}

pub async fn a_failure_holds_back_the_keys_later_inserts_and_other_keys_go_on<S: StoreUnderTest>() {
    let ledger = Ledger::default();
    ledger.flaky.store(true, Ordering::SeqCst);
    let (processor, store) = world::<S>(ledger.clone()).await;
    let records = vec![
        insert("1", deposit(&store, "d1", "a", 13).await),
        insert("2", deposit(&store, "d2", "b", 2).await),
        insert("3", deposit(&store, "d3", "a", 3).await),
    ];
    let outcome = processor.process_changes(&records, adapter).await;
    assert_counts!(outcome, failed: 1, held_back: 1, applied: 1);
    assert_eq!(outcome.failures, vec!["1", "3"]);
    assert_eq!(
        store.waiting(&key("d3")).await.unwrap().consumers.len(),
        1,
        "still waiting for the ledger"
    );
    ledger.flaky.store(false, Ordering::SeqCst);
    processor.process_changes(&records, adapter).await;
    assert_eq!(last(&store, "a").await, 3);
    assert_eq!(balance(&store, "a").await, 16);
}

pub async fn unreadable_entities_and_other_tables_even_same_named_elsewhere_are_poison_and_untaken_events_are_skipped<
    S: StoreUnderTest,
>() {
    let (processor, store) = world::<S>(Ledger::default()).await;
    let mut unreadable = deposit(&store, "d1", "a", 1).await;
    unreadable.remove("cents");
    let mut elsewhere = insert("3", deposit(&store, "d3", "a", 4).await);
    elsewhere.event_source_arn =
        Some("arn:aws:dynamodb:eu-west-1:123456789012:table/other/stream/x".into());
    let mut other_account = insert("4", deposit(&store, "d4", "a", 4).await);
    other_account.event_source_arn =
        Some("arn:aws:dynamodb:eu-west-1:210987654321:table/deposits/stream/x".into());
    let mut other_region = insert("5", deposit(&store, "d5", "a", 4).await);
    other_region.event_source_arn =
        Some("arn:aws:dynamodb:us-east-1:123456789012:table/deposits/stream/x".into());
    let records = vec![
        insert("1", unreadable),
        insert("2", deposit(&store, "d2", "a", -4).await),
        elsewhere,
        other_account,
        other_region,
    ];
    let outcome = processor.process_changes(&records, adapter).await;
    assert_counts!(outcome, poison: 4, skipped: 1);
    assert_eq!(outcome.failures, vec!["1", "3", "4", "5"]);
    assert!(
        store
            .waiting(&key("d2"))
            .await
            .unwrap()
            .consumers
            .is_empty(),
        "a skipped event releases its item too"
    );
}
