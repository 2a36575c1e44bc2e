//! Events from a Kinesis stream: applied once by event id, in stream order
//! within a key, held back after a failure, poison named by sequence number, and a consumer's
//! own put as the idempotency record. Its ledger serves the SQS source's bodies too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_lambda_events::kinesis::KinesisEventRecord;
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{
    kinesis_put, Consumer, Effect, Envelope, HandlerError, PoisonPolicy, Processor, Source, Takes,
};
use serde_dynamo::{AttributeValue, Item};

use crate::fixture::{
    balance, balance_of, deposit, last, parked_of, processor_at, Deposited, StoreUnderTest, TABLE,
};

const STREAM: &str = "deposits";
const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/deposits";

/// A balance and the last deposit applied per account; a negative deposit is poison, a deposit
/// of 13 cents fails while `flaky`. With `own_record`, the journal line is the idempotency
/// record.
#[derive(Clone, Default)]
pub(crate) struct Ledger {
    pub(crate) own_record: bool,
    pub(crate) park: bool,
    pub(crate) flaky: Arc<AtomicBool>,
}

impl Ledger {
    /// A ledger that parks its poison.
    pub(crate) fn parking() -> Self {
        Self {
            park: true,
            ..Self::default()
        }
    }
}

impl Consumer for Ledger {
    type Payload = Deposited;

    fn name(&self) -> &str {
        "ledger"
    }

    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions("Deposited", 1..=1)]
    }

    fn on_poison(&self) -> PoisonPolicy {
        if self.park {
            PoisonPolicy::Park
        } else {
            PoisonPolicy::Wait
        }
    }

    async fn effect(&self, event: &Envelope<Deposited>) -> Result<Effect, HandlerError> {
        let cents = event.payload.cents;
        if cents < 0 {
            return Err(HandlerError::Poison("a negative deposit".into()));
        }
        if cents == 13 && self.flaky.load(Ordering::SeqCst) {
            return Err(HandlerError::Transient("the ledger is down".into()));
        }
        let pk = format!("ACCOUNT#{}", event.payload.account);
        let item = |sk: String, cents: i64| {
            Item::from(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.clone())),
                ("sk".to_owned(), AttributeValue::S(sk)),
                ("cents".to_owned(), AttributeValue::N(cents.to_string())),
            ]))
        };
        let line = item(format!("LINE#{}", event.event_id), cents);
        let effect = if self.own_record {
            Effect::new().put_new_as_record(TABLE, line)
        } else {
            Effect::new().put_new(TABLE, line)
        };
        Ok(effect
            .put(TABLE, item("LAST".into(), cents))
            .add(balance_of(pk.clone()), cents))
    }
}

/// The records a stream holds after these puts, numbered in put order.
fn stream(events: &[&Envelope<Deposited>]) -> Vec<KinesisEventRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let put = kinesis_put(*event).unwrap();
            record(&format!("{:05}", i + 1), put.data, &put.partition_key)
        })
        .collect()
}

fn record(sequence: &str, data: Vec<u8>, partition_key: &str) -> KinesisEventRecord {
    let mut record = KinesisEventRecord::default();
    record.event_source_arn = Some(ARN.into());
    record.kinesis.sequence_number = sequence.into();
    record.kinesis.partition_key = partition_key.into();
    *record.kinesis.data = data;
    record
}

async fn processor<S: StoreUnderTest>(ledger: Ledger) -> (Processor<Ledger, S>, S) {
    let source = Source::kinesis_stream(STREAM).unwrap();
    let (processor, store) = processor_at(ledger, source, ARN).await;
    (processor.concurrency(4), store)
}

pub async fn a_record_published_twice_is_applied_once_by_its_event_id<S: StoreUnderTest>() {
    for own_record in [false, true] {
        let (processor, store) = processor::<S>(Ledger {
            own_record,
            ..Ledger::default()
        })
        .await;
        let event = deposit("a", 5);
        // A retried PutRecord whose first response was lost: the same event twice.
        let records = stream(&[&event, &deposit("a", 7), &event]);
        let outcome = processor.process_kinesis(&records).await;
        assert_eq!(
            (outcome.applied, outcome.duplicates, outcome.failures.len()),
            (2, 1, 0),
            "own record {own_record}: {outcome:?}"
        );
        let again = processor.process_kinesis(&records).await;
        assert_eq!(again.duplicates, 3, "a redelivered batch: {again:?}");
        assert_eq!(balance(&store, "a").await, 12);
        let done = store
            .item(
                TABLE,
                &schema::done_pk("ledger", &event.event_id),
                schema::DONE_SK,
            )
            .await
            .unwrap();
        assert_eq!(
            done.is_some(),
            !own_record,
            "the engine's record only when needed"
        );
    }
}

pub async fn a_failure_holds_back_its_keys_later_records_and_the_retry_keeps_stream_order<
    S: StoreUnderTest,
>() {
    let ledger = Ledger::default();
    ledger.flaky.store(true, Ordering::SeqCst);
    let (processor, store) = processor::<S>(ledger.clone()).await;
    let records = stream(&[
        &deposit("a", 1),
        &deposit("b", 100),
        &deposit("a", 13),
        &deposit("a", 3),
        &deposit("b", 200),
    ]);
    let outcome = processor.process_kinesis(&records).await;
    assert_eq!(
        (outcome.applied, outcome.failed, outcome.held_back),
        (3, 1, 1),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.failures,
        vec!["00003".to_owned(), "00004".to_owned()]
    );
    let response = outcome.kinesis_response();
    let retry: Vec<_> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        retry, outcome.failures,
        "Lambda is told the sequence numbers"
    );
    assert_eq!((last(&store, "a").await, last(&store, "b").await), (1, 200));

    ledger.flaky.store(false, Ordering::SeqCst);
    // Lambda retries from the first failed record on.
    let outcome = processor.process_kinesis(&records[2..]).await;
    assert_eq!((outcome.applied, outcome.duplicates), (2, 1), "{outcome:?}");
    assert_eq!(last(&store, "a").await, 3, "13 then 3: the stream's order");
    assert_eq!(
        (balance(&store, "a").await, balance(&store, "b").await),
        (17, 300)
    );
}

pub async fn data_that_names_no_event_is_dropped_an_unplaceable_event_waits_and_other_streams_are_refused<
    S: StoreUnderTest,
>() {
    let (processor, store) = processor::<S>(Ledger::default()).await;
    let mut records = stream(&[&deposit("a", 1)]);
    records.push(record("00002", b"not json".to_vec(), "a"));
    records.push(record("00003", br#"[{"event_id": "x"}]"#.to_vec(), "a"));
    records.push(record("00004", br#"{"event_id": 7}"#.to_vec(), "a"));
    let keyless = br#"{"event_id": "k", "event_type": "Deposited", "schema_version": 1}"#;
    records.push(record("00005", keyless.to_vec(), "a"));
    let mut elsewhere = stream(&[&deposit("a", 9)]).remove(0);
    elsewhere.kinesis.sequence_number = "00006".into();
    elsewhere.event_source_arn = Some("arn:aws:kinesis:eu-west-1:123456789012:stream/other".into());
    records.push(elsewhere);
    let outcome = processor.process_kinesis(&records).await;
    assert_eq!(
        (outcome.applied, outcome.dropped, outcome.poison),
        (1, 3, 2),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.failures,
        vec!["00005", "00006"],
        "what names an event waits (PoisonPolicy::Wait), another stream's record is refused; \
         what names none is not retried"
    );
    assert_eq!(balance(&store, "a").await, 1);
}

pub async fn an_event_without_ordering_key_is_parked_under_its_event_id_once<S: StoreUnderTest>() {
    let (processor, store) = processor::<S>(Ledger::parking()).await;
    let keyless = br#"{"event_id": "k-1", "event_type": "Deposited", "schema_version": 1}"#;
    let mut records = vec![record("00001", keyless.to_vec(), "a")];
    records.extend(stream(&[&deposit("a", 5)]).into_iter().map(|mut r| {
        r.kinesis.sequence_number = "00002".into();
        r
    }));
    for round in 0..2 {
        let outcome = processor.process_kinesis(&records).await;
        assert!(outcome.failures.is_empty(), "round {round}: {outcome:?}");
        assert_eq!(outcome.parked, usize::from(round == 0), "{outcome:?}");
        assert_eq!(outcome.duplicates, if round == 0 { 0 } else { 2 });
    }
    let parked = parked_of(&processor).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].reason.contains("no ordering key"), "{parked:?}");
    assert!(parked[0].record.sk.ends_with("#k-1"), "{parked:?}");
    assert_eq!(balance(&store, "a").await, 5);
}

pub async fn a_poison_event_waits_or_is_parked_and_redriven_by_policy<S: StoreUnderTest>() {
    let (waiting, store) = processor::<S>(Ledger::default()).await;
    let records = stream(&[&deposit("a", -1), &deposit("a", 2), &deposit("b", 3)]);
    let outcome = waiting.process_kinesis(&records).await;
    assert_eq!(
        (outcome.poison, outcome.held_back, outcome.applied),
        (1, 1, 1),
        "{outcome:?}"
    );
    assert_eq!(
        (balance(&store, "a").await, balance(&store, "b").await),
        (0, 3)
    );

    let (parking, store) = processor::<S>(Ledger::parking()).await;
    let outcome = parking.process_kinesis(&records).await;
    assert_eq!((outcome.parked, outcome.applied), (1, 2), "{outcome:?}");
    let again = parking.process_kinesis(&records).await;
    assert_eq!(
        again.duplicates, 3,
        "a parked event is done for redeliveries"
    );
    let still = parking.redrive_parked(10).await;
    assert_eq!(still.parked, 1, "{still:?}");
    assert_eq!(balance(&store, "a").await, 2);
}

pub async fn an_own_record_with_other_content_is_poison_not_a_duplicate<S: StoreUnderTest>() {
    let (processor, store) = processor::<S>(Ledger {
        own_record: true,
        ..Ledger::default()
    })
    .await;
    let first = deposit("a", 5);
    let mut collision = deposit("a", 6);
    collision.event_id = first.event_id.clone();
    let outcome = processor
        .process_kinesis(&stream(&[&first, &collision]))
        .await;
    assert_eq!((outcome.applied, outcome.poison), (1, 1), "{outcome:?}");
    assert_eq!(balance(&store, "a").await, 5);
}

pub async fn a_same_named_stream_of_another_account_region_or_partition_is_never_credited<
    S: StoreUnderTest,
>() {
    let (processor, store) = processor::<S>(Ledger::default()).await;
    let mut records = Vec::new();
    for (i, arn) in [
        "arn:aws:kinesis:eu-west-1:210987654321:stream/deposits",
        "arn:aws:kinesis:us-east-1:123456789012:stream/deposits",
        "arn:aws-cn:kinesis:eu-west-1:123456789012:stream/deposits",
        "arn:aws:kinesis:eu-west-1:123456789012:stream/deposits/consumer/x",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/deposits/stream/x",
        "deposits",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let mut foreign = stream(&[&deposit("a", 9)]).remove(0);
        foreign.kinesis.sequence_number = format!("{:05}", i + 1);
        foreign.event_source_arn = Some(arn.into());
        records.push(foreign);
    }
    let mut unnamed = stream(&[&deposit("a", 9)]).remove(0);
    unnamed.kinesis.sequence_number = "00008".into();
    unnamed.event_source_arn = None;
    records.push(unnamed);
    let outcome = processor.process_kinesis(&records).await;
    assert_eq!((outcome.applied, outcome.poison), (0, 8), "{outcome:?}");
    assert_eq!(balance(&store, "a").await, 0);

    // Configured by ARN, the stream is where its ARN says, wherever the function runs.
    let by_arn = Processor::new(
        Ledger::default(),
        store.clone(),
        Source::kinesis_stream(ARN).unwrap(),
    );
    let outcome = by_arn.process_kinesis(&stream(&[&deposit("a", 2)])).await;
    assert_eq!(outcome.applied, 1, "{outcome:?}");
    let outcome = by_arn.process_kinesis(&records).await;
    assert_eq!(outcome.applied, 0, "{outcome:?}");
}

pub async fn a_stream_named_without_a_known_account_and_region_admits_nothing<S: StoreUnderTest>() {
    let store = S::start().await;
    let unplaced = Processor::new(
        Ledger::default(),
        store.clone(),
        Source::kinesis_stream(STREAM).unwrap(),
    );
    let records = stream(&[&deposit("a", 2)]);
    assert_eq!(unplaced.process_kinesis(&records).await.poison, 1);
    unplaced.invoked_as("arn:aws:lambda:eu-west-1:123456789012:function:deposits:live");
    assert_eq!(unplaced.process_kinesis(&records).await.applied, 1);
    assert_eq!(balance(&store, "a").await, 2);
}
