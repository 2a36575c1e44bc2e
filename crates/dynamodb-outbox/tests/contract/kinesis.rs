//! Events from a Kinesis stream: applied once by event id, in stream order
//! within a key, held back after a failure, poison named by sequence number, and a consumer's
//! own put as the idempotency record.

use std::sync::atomic::Ordering;

use aws_lambda_events::kinesis::KinesisEventRecord;
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{Envelope, Processor, Source};

use crate::fixture::{
    balance, deposit, last, parked_of, processor_at, Deposited, StoreUnderTest, TABLE,
};
use crate::ledger::Ledger;
use crate::records::{put_at, record};

const STREAM: &str = "deposits";
const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/deposits";

/// The records the stream holds after these puts, numbered in put order.
fn stream(events: &[&Envelope<Deposited>]) -> Vec<KinesisEventRecord> {
    crate::records::stream(ARN, events)
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
        assert_counts!(
            outcome, applied: 2, duplicates: 1, failures.len(): 0;
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
    assert_counts!(outcome, applied: 3, failed: 1, held_back: 1);
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
    assert_counts!(outcome, applied: 2, duplicates: 1);
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
    records.push(record(ARN, "00002", b"not json", "a"));
    records.push(record(ARN, "00003", br#"[{"event_id": "x"}]"#, "a"));
    records.push(record(ARN, "00004", br#"{"event_id": 7}"#, "a"));
    let keyless = br#"{"event_id": "k", "event_type": "Deposited", "schema_version": 1}"#;
    records.push(record(ARN, "00005", keyless, "a"));
    let other = "arn:aws:kinesis:eu-west-1:123456789012:stream/other";
    records.push(put_at(other, "00006", &deposit("a", 9)));
    let outcome = processor.process_kinesis(&records).await;
    assert_counts!(outcome, applied: 1, dropped: 3, poison: 2);
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
    let records = vec![
        record(ARN, "00001", keyless, "a"),
        put_at(ARN, "00002", &deposit("a", 5)),
    ];
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
    assert_counts!(outcome, poison: 1, held_back: 1, applied: 1);
    assert_eq!(
        (balance(&store, "a").await, balance(&store, "b").await),
        (0, 3)
    );

    let (parking, store) = processor::<S>(Ledger::parking()).await;
    let outcome = parking.process_kinesis(&records).await;
    assert_counts!(outcome, parked: 1, applied: 2);
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
    assert_counts!(outcome, applied: 1, poison: 1);
    assert_eq!(balance(&store, "a").await, 5);
}

pub async fn a_same_named_stream_of_another_account_region_or_partition_is_never_credited<
    S: StoreUnderTest,
>() {
    let (processor, store) = processor::<S>(Ledger::default()).await;
    let foreign = [
        "arn:aws:kinesis:eu-west-1:210987654321:stream/deposits",
        "arn:aws:kinesis:us-east-1:123456789012:stream/deposits",
        "arn:aws-cn:kinesis:eu-west-1:123456789012:stream/deposits",
        "arn:aws:kinesis:eu-west-1:123456789012:stream/deposits/consumer/x",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/deposits/stream/x",
        "deposits",
        "",
    ];
    let mut records: Vec<_> = foreign
        .iter()
        .enumerate()
        .map(|(i, arn)| put_at(arn, &format!("{:05}", i + 1), &deposit("a", 9)))
        .collect();
    let mut unnamed = put_at(ARN, "00008", &deposit("a", 9));
    unnamed.event_source_arn = None;
    records.push(unnamed);
    let outcome = processor.process_kinesis(&records).await;
    assert_counts!(outcome, applied: 0, poison: 8);
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
