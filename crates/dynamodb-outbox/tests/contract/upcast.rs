//! Events that evolve: a ledger handles `InvoiceIssued` v3 and upcasts v1 (`total_cents`, since
//! renamed `amount_cents`) and v2 (no `currency`, since added) to it. Older events are applied
//! once, as their own data say; a newer one is skipped; an event whose upcast fails is poison,
//! waited on or parked, and redriven once the upcaster is fixed; records of a Kinesis stream are
//! upcast too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dynamodb_outbox::dynamodb::Routes;
use dynamodb_outbox::{
    BoxError, Consumer, Effect, Envelope, Event, HandlerError, Home, PoisonPolicy, Processor,
    Source, Takes,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};
use serde_json::Value;

use crate::fixture::{balance, balance_of, outbox, Producer, StoreUnderTest, TABLE};
use crate::ledger::poison_policy;
use crate::records::stream;

const NAME: &str = "ledger";
const ACCOUNT: &str = "a";

/// The version the ledger handles.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InvoiceIssued {
    invoice_id: String,
    account_id: String,
    amount_cents: i64,
    currency: String,
}

/// Version 1: the amount was `total_cents`.
#[derive(Serialize, Deserialize)]
struct InvoiceIssuedV1 {
    invoice_id: String,
    account_id: String,
    total_cents: i64,
}

/// Version 2: `amount_cents`, and no currency yet.
#[derive(Serialize, Deserialize)]
struct InvoiceIssuedV2 {
    invoice_id: String,
    account_id: String,
    amount_cents: i64,
}

/// A version 1 event a faulty producer wrote with `total` instead of `total_cents`.
#[derive(Serialize, Deserialize)]
struct MisnamedV1 {
    invoice_id: String,
    account_id: String,
    total: i64,
}

/// Version 4, which the ledger has not learnt yet.
#[derive(Serialize, Deserialize)]
struct InvoiceIssuedV4 {
    invoice_id: String,
    account_id: String,
}

macro_rules! invoice_event {
    ($name:ident, $version:literal) => {
        impl Event for $name {
            const EVENT_TYPE: &'static str = "InvoiceIssued";
            const SCHEMA_VERSION: u32 = $version;
            const AGGREGATE_TYPE: &'static str = "Invoice";
            fn aggregate_id(&self) -> String {
                self.invoice_id.clone()
            }
        }
    };
}

invoice_event!(InvoiceIssued, 3);
invoice_event!(InvoiceIssuedV1, 1);
invoice_event!(InvoiceIssuedV2, 2);
invoice_event!(MisnamedV1, 1);
invoice_event!(InvoiceIssuedV4, 4);

/// Credits each invoice to its account and writes a line with the currency and the version the
/// effect saw. Until `fixed`, its v1 upcaster knows only `total_cents`.
#[derive(Clone, Default)]
struct Ledger {
    park: bool,
    fixed: Arc<AtomicBool>,
}

fn v1_to_v2(fixed: bool, mut payload: Value) -> Result<Value, BoxError> {
    let fields = payload
        .as_object_mut()
        .ok_or("the payload is not an object")?;
    let total = match fields.remove("total_cents") {
        Some(total) => total,
        None if fixed => fields.remove("total").ok_or("no total_cents nor total")?,
        None => return Err("v1 carries total_cents, and this one has none".into()),
    };
    fields.insert("amount_cents".into(), total);
    Ok(payload)
}

impl Consumer for Ledger {
    type Payload = InvoiceIssued;

    fn name(&self) -> &str {
        NAME
    }

    fn takes(&self) -> Vec<Takes> {
        let fixed = self.fixed.clone();
        vec![Takes::versions("InvoiceIssued", 3..=3)
            .upcast(2, |mut payload| {
                if let Some(fields) = payload.as_object_mut() {
                    // Every invoice before v3 was in euros.
                    fields.insert("currency".into(), "EUR".into());
                }
                Ok(payload)
            })
            .upcast(1, move |payload| {
                v1_to_v2(fixed.load(Ordering::SeqCst), payload)
            })]
    }

    fn on_poison(&self) -> PoisonPolicy {
        poison_policy(self.park)
    }

    async fn effect(&self, event: &Envelope<InvoiceIssued>) -> Result<Effect, HandlerError> {
        let pk = format!("ACCOUNT#{}", event.payload.account_id);
        let line = Item::from(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.clone())),
            (
                "sk".to_owned(),
                AttributeValue::S(format!("LINE#{}", event.payload.invoice_id)),
            ),
            (
                "currency".to_owned(),
                AttributeValue::S(event.payload.currency.clone()),
            ),
            (
                "seen_version".to_owned(),
                AttributeValue::N(event.schema_version.to_string()),
            ),
        ]));
        Ok(Effect::new()
            .put_new(TABLE, line)
            .add(balance_of(pk), event.payload.amount_cents))
    }
}

fn on_account<P: Event>(payload: P) -> Envelope<P> {
    Envelope::new(payload).with_ordering_key(ACCOUNT)
}

fn v1(invoice: &str, total_cents: i64) -> Envelope<InvoiceIssuedV1> {
    on_account(InvoiceIssuedV1 {
        invoice_id: invoice.into(),
        account_id: ACCOUNT.into(),
        total_cents,
    })
}

fn v3(invoice: &str, amount_cents: i64) -> Envelope<InvoiceIssued> {
    on_account(InvoiceIssued {
        invoice_id: invoice.into(),
        account_id: ACCOUNT.into(),
        amount_cents,
        currency: "USD".into(),
    })
}

fn misnamed(invoice: &str, total: i64) -> Envelope<MisnamedV1> {
    on_account(MisnamedV1 {
        invoice_id: invoice.into(),
        account_id: ACCOUNT.into(),
        total,
    })
}

/// A producer of invoices to the ledger, its items stored where `store` marks them.
fn producer<S: StoreUnderTest>(store: &S) -> Producer<S> {
    Producer::new(store, Routes::new().route("InvoiceIssued", &[NAME]))
}

/// A store of its own holding a misnamed v1 of 700 cents and, after it on its key, a v3 of 30.
async fn misnamed_then_v3<S: StoreUnderTest>() -> (S, Vec<Item>) {
    let store = S::start().await;
    let mut producer = producer(&store);
    let items = vec![
        producer.write(&misnamed("i-1", 700)).await,
        producer.write(&v3("i-2", 30)).await,
    ];
    (store, items)
}

/// The line of `invoice`: its currency and the schema version its effect saw.
async fn line<S: StoreUnderTest>(store: &S, invoice: &str) -> (String, i64) {
    let pk = format!("ACCOUNT#{ACCOUNT}");
    let sk = format!("LINE#{invoice}");
    let item = store.item(TABLE, &pk, &sk).await.unwrap();
    let item = item.unwrap_or_else(|| panic!("no line for {invoice}"));
    let currency = match item.get("currency") {
        Some(AttributeValue::S(c)) => c.clone(),
        other => panic!("currency {other:?}"),
    };
    (
        currency,
        store.number(TABLE, &pk, &sk, "seen_version").await.unwrap(),
    )
}

pub async fn older_versions_are_upcast_through_the_chain_and_applied_once_newer_ones_skipped<
    S: StoreUnderTest,
>() {
    let store = S::start().await;
    let mut producer = producer(&store);
    let items = vec![
        producer.write(&v1("i-1", 900)).await,
        producer
            .write(&on_account(InvoiceIssuedV2 {
                invoice_id: "i-2".into(),
                account_id: ACCOUNT.into(),
                amount_cents: 250,
            }))
            .await,
        producer.write(&v3("i-3", 100)).await,
        producer
            .write(&on_account(InvoiceIssuedV4 {
                invoice_id: "i-4".into(),
                account_id: ACCOUNT.into(),
            }))
            .await,
        producer.write(&v1("i-5", 5)).await,
    ];
    let processor = Processor::new(Ledger::default(), store.clone(), outbox());
    let outcome = processor.process_items(items.clone()).await;
    assert_counts!(
        outcome, applied: 4, skipped: 1, failures.len(): 0;
        "v1, v2, v3 applied, v4 skipped and its key goes on: {outcome:?}"
    );
    assert_eq!(balance(&store, ACCOUNT).await, 900 + 250 + 100 + 5);
    assert_eq!(line(&store, "i-1").await, ("EUR".to_owned(), 3));
    assert_eq!(line(&store, "i-2").await, ("EUR".to_owned(), 3));
    assert_eq!(line(&store, "i-3").await, ("USD".to_owned(), 3));
    assert_eq!(store.progress(NAME, ACCOUNT).await.unwrap(), 5);

    let again = processor.process_items(items).await;
    assert_eq!(again.applied, 0, "a redelivery applies nothing: {again:?}");
    assert_eq!(balance(&store, ACCOUNT).await, 1_255);
}

pub async fn an_event_whose_upcast_fails_is_poison_waited_on_or_parked_and_redriven_once<
    S: StoreUnderTest,
>() {
    // Waited on: the key holds.
    let (store, items) = misnamed_then_v3::<S>().await;
    let waiting = Processor::new(Ledger::default(), store.clone(), outbox());
    let outcome = waiting.process_items(items).await;
    assert_counts!(
        outcome, poison: 1, applied: 0, failures.len(): 2;
        "the poison and the key's later event reported: {outcome:?}"
    );
    assert_eq!(balance(&store, ACCOUNT).await, 0);

    // Parked: the key goes on, the reason names the step.
    let (store, items) = misnamed_then_v3::<S>().await;
    let ledger = Ledger {
        park: true,
        ..Ledger::default()
    };
    let parking = Processor::new(ledger, store.clone(), outbox());
    let outcome = parking.process_items(items.clone()).await;
    assert_counts!(outcome, parked: 1, applied: 1);
    assert_eq!(balance(&store, ACCOUNT).await, 30);
    let parked = store.parked(NAME, 10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0]
            .reason
            .contains("upcasting InvoiceIssued v1 to v2 failed: v1 carries total_cents"),
        "{}",
        parked[0].reason
    );
    assert_eq!(
        parked[0].event.get("schema_version"),
        Some(&AttributeValue::N("1".into())),
        "parked as it was written"
    );

    // Still poison before the fix; applied once after it.
    assert_eq!(parking.redrive_parked(10).await.parked, 1);
    parking.consumer().fixed.store(true, Ordering::SeqCst);
    let redriven = parking.redrive_parked(10).await;
    assert_counts!(redriven, applied: 1, parked: 0);
    assert_eq!(balance(&store, ACCOUNT).await, 730);
    assert_eq!(line(&store, "i-1").await, ("EUR".to_owned(), 3));
    assert_eq!(parking.redrive_parked(10).await, Default::default());
    assert_eq!(parking.process_items(items).await.applied, 0);
    assert_eq!(balance(&store, ACCOUNT).await, 730, "applied once");
}

pub async fn a_kinesis_record_in_an_older_version_is_upcast_and_applied_once<S: StoreUnderTest>() {
    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/invoices";
    let store = S::start().await;
    let processor = Processor::new(
        Ledger::default(),
        store.clone(),
        Source::kinesis_stream("invoices").unwrap(),
    )
    .home(Home::of_arn(ARN).unwrap());
    let event = v1("i-1", 400);
    let records = stream(ARN, &[&event, &event]);
    let outcome = processor.process_kinesis(&records).await;
    assert_counts!(
        outcome, applied: 1, duplicates: 1;
        "published twice, applied once: {outcome:?}"
    );
    assert_eq!(balance(&store, ACCOUNT).await, 400);
    assert_eq!(line(&store, "i-1").await, ("EUR".to_owned(), 3));
}
