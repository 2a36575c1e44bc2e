//! Redriving parked events: a fixed event is applied once and its record goes, racing redrives
//! apply it once, a still-poison event stays parked with its new reason, a transient failure
//! leaves it as it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use dynamodb_outbox::dynamodb::Routes;
use dynamodb_outbox::testing::Recording;
use dynamodb_outbox::{
    Consumer, Effect, Envelope, HandlerError, PoisonPolicy, Processor, StoreError, Takes,
};
use serde_dynamo::{AttributeValue, Item};
use tokio::sync::Barrier;

use crate::fixture::{
    balance, balance_of, deposit, outbox, Deposited, Producer, StoreUnderTest, TABLE,
};

const NAME: &str = "ledger";

/// Parks negative deposits until it is `fixed` (then takes them as withdrawals); counts the
/// effects it computed, can be `down`, and can hold every effect at a `gate` until as many are
/// computed as the gate waits for.
#[derive(Clone, Default)]
struct Ledger {
    fixed: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    effects: Arc<AtomicU32>,
    gate: Arc<std::sync::Mutex<Option<Arc<Barrier>>>>,
}

impl Consumer for Ledger {
    type Payload = Deposited;

    fn name(&self) -> &str {
        NAME
    }

    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions("Deposited", 1..=1)]
    }

    fn on_poison(&self) -> PoisonPolicy {
        PoisonPolicy::Park
    }

    async fn effect(&self, event: &Envelope<Deposited>) -> Result<Effect, HandlerError> {
        self.effects.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.wait().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(HandlerError::Transient("the ledger is down".into()));
        }
        if event.payload.cents < 0 && !self.fixed.load(Ordering::SeqCst) {
            return Err(HandlerError::Poison("a negative deposit".into()));
        }
        let pk = format!("ACCOUNT#{}", event.payload.account);
        let line = Item::from(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.clone())),
            (
                "sk".to_owned(),
                AttributeValue::S(format!("LINE#{}", event.event_id)),
            ),
        ]));
        Ok(Effect::new()
            .put_new(TABLE, line)
            .add(balance_of(pk), event.payload.cents))
    }
}

/// Items of `deposits` on their accounts, written and stored where `store` marks them.
async fn written<S: StoreUnderTest>(store: &S, deposits: &[(&str, i64)]) -> Vec<Item> {
    let mut producer = Producer::new(store, Routes::new().route("Deposited", &[NAME]));
    let mut items = Vec::new();
    for (account, cents) in deposits {
        items.push(producer.write(&deposit(account, *cents)).await);
    }
    items
}

/// A ledger that parked the -5 of "a" between a 10 and a 20.
async fn parked_world<S: StoreUnderTest>() -> (Processor<Ledger, Recording<S>>, S) {
    let store = S::start().await;
    let items = written(&store, &[("a", 10), ("a", -5), ("a", 20)]).await;
    let processor = Processor::new(Ledger::default(), Recording::new(store.clone()), outbox());
    let outcome = processor.process_items(items).await;
    assert_counts!(outcome, applied: 2, parked: 1);
    (processor, store)
}

pub async fn a_fixed_parked_event_is_applied_once_and_its_record_goes<S: StoreUnderTest>() {
    let (processor, store) = parked_world::<S>().await;
    assert_eq!(balance(&store, "a").await, 30);

    processor.consumer().fixed.store(true, Ordering::SeqCst);
    let redriven = processor.redrive_parked(10).await;
    assert_counts!(redriven, applied: 1, failures.len(): 0);
    assert_eq!(
        balance(&store, "a").await,
        25,
        "applied after the key's later events"
    );
    assert!(store.parked(NAME, 10).await.unwrap().is_empty());

    let again = processor.redrive_parked(10).await;
    assert_eq!(again, Default::default(), "nothing left to apply");
    assert_eq!(balance(&store, "a").await, 25);
    assert_eq!(
        store.progress(NAME, "a").await.unwrap(),
        3,
        "the progress never moved back"
    );
}

pub async fn racing_redrives_apply_a_parked_event_once<S: StoreUnderTest>() {
    let (processor, store) = parked_world::<S>().await;
    processor.consumer().fixed.store(true, Ordering::SeqCst);
    // Both have read the parked record and computed its effect before either commits.
    *processor.consumer().gate.lock().unwrap() = Some(Arc::new(Barrier::new(2)));
    processor.consumer().effects.store(0, Ordering::SeqCst);
    let (first, second) = tokio::join!(processor.redrive_parked(10), processor.redrive_parked(10));
    assert_eq!(
        (
            first.applied + second.applied,
            first.duplicates + second.duplicates
        ),
        (1, 1),
        "{first:?} {second:?}"
    );
    assert_eq!(
        processor.consumer().effects.load(Ordering::SeqCst),
        2,
        "both computed the effect; one committed"
    );
    assert_eq!(balance(&store, "a").await, 25);
}

pub async fn an_event_still_poison_stays_parked_with_its_new_reason_and_attempts<
    S: StoreUnderTest,
>() {
    let (processor, store) = parked_world::<S>().await;
    let redriven = processor.redrive_parked(10).await;
    assert_counts!(redriven, parked: 1, applied: 0);
    let parked = store.parked(NAME, 10).await.unwrap();
    assert_eq!(redriven.failures, vec![parked[0].record.sk.clone()]);
    assert_eq!(
        (parked[0].attempts, parked[0].reason.as_str()),
        (2, "a negative deposit")
    );
    assert_eq!(balance(&store, "a").await, 30);
}

pub async fn a_transient_failure_leaves_the_parked_event_as_it_is<S: StoreUnderTest>() {
    let (processor, store) = parked_world::<S>().await;
    processor.consumer().fixed.store(true, Ordering::SeqCst);
    processor
        .store()
        .fail_next_commits(1, || StoreError::Unavailable("throttled".into()));
    let failing = processor.redrive_parked(10).await;
    assert_counts!(failing, failed: 1, applied: 0);
    let parked = store.parked(NAME, 10).await.unwrap();
    assert_eq!(parked[0].attempts, 1, "not counted as poison");
    assert_eq!(processor.redrive_parked(10).await.applied, 1);
    assert_eq!(balance(&store, "a").await, 25);
}

pub async fn parked_events_are_listed_oldest_first_up_to_the_limit<S: StoreUnderTest>() {
    let store = S::start().await;
    let processor = Processor::new(Ledger::default(), store.clone(), outbox());
    // Keys whose names sort against their parking order.
    for account in ["z", "m", "a"] {
        let item = written(&store, &[(account, -1)]).await;
        assert_eq!(processor.process_items(item).await.parked, 1);
        // Parked records are ordered by the time they were parked, at RFC 3339's resolution.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let parked = store.parked(NAME, 2).await.unwrap();
    let accounts: Vec<&str> = parked
        .iter()
        .map(|p| match p.event.get("ordering_key") {
            Some(AttributeValue::S(key)) => key.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(accounts, vec!["z", "m"]);
}
