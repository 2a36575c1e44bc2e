//! Events from an SQS queue (the inbox): the envelope sent directly, through an SNS topic or an
//! EventBridge rule, applied once by event id; a FIFO group held back after a failure; poison
//! parked; what names no event dropped; another queue's messages refused.

use std::sync::atomic::Ordering;

use dynamodb_outbox::{Envelope, Home, Processor, Source};
use serde_json::json;

use crate::fixture::{balance, deposit, last, parked_of, processor_at, Deposited, StoreUnderTest};
use crate::ledger::Ledger;
use crate::records::message;

const QUEUE: &str = "arn:aws:sqs:eu-west-1:123456789012:deposits";
const FIFO: &str = "arn:aws:sqs:eu-west-1:123456789012:deposits.fifo";

/// The body of `event` as it reaches the queue: sent directly, or wrapped by SNS or EventBridge.
#[derive(Clone, Copy)]
enum Via {
    Direct,
    Sns,
    EventBridge,
}

fn body(event: &Envelope<Deposited>, via: Via) -> String {
    let envelope = serde_json::to_string(event).unwrap();
    match via {
        Via::Direct => envelope,
        Via::Sns => json!({
            "Type": "Notification",
            "MessageId": "5a1c6f6b-0000-4000-8000-000000000000",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:deposits",
            "Message": envelope,
            "Timestamp": "2026-12-02T12:00:00.000Z",
            "SignatureVersion": "1",
        })
        .to_string(),
        Via::EventBridge => json!({
            "version": "0",
            "id": "6a7e8feb-0000-4000-8000-000000000000",
            "detail-type": event.event_type,
            "source": "accounts",
            "account": "123456789012",
            "time": "2026-12-02T12:00:00Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": serde_json::to_value(event).unwrap(),
        })
        .to_string(),
    }
}

async fn inbox<S: StoreUnderTest>(ledger: Ledger, queue: &str) -> (Processor<Ledger, S>, S) {
    let name = queue.rsplit(':').next().unwrap();
    let (processor, store) = processor_at(ledger, Source::sqs_queue(name).unwrap(), queue).await;
    (processor.concurrency(4), store)
}

fn ids(failures: &[String]) -> Vec<&str> {
    failures.iter().map(String::as_str).collect()
}

pub async fn an_event_sent_directly_through_sns_or_through_eventbridge_is_applied_once<
    S: StoreUnderTest,
>() {
    let (processor, store) = inbox::<S>(Ledger::default(), QUEUE).await;
    let event = deposit("a", 5);
    // A relay that republished after a crash, through each way a queue is fed.
    let messages = vec![
        message(QUEUE, "m1", body(&event, Via::Direct), None),
        message(QUEUE, "m2", body(&event, Via::Sns), None),
        message(QUEUE, "m3", body(&event, Via::EventBridge), None),
        message(QUEUE, "m4", body(&deposit("a", 7), Via::Sns), None),
        message(QUEUE, "m5", body(&deposit("b", 2), Via::EventBridge), None),
    ];
    let outcome = processor.process_sqs(&messages).await;
    assert_counts!(outcome, applied: 3, duplicates: 2, failures.len(): 0);
    assert!(outcome.sqs_response().batch_item_failures.is_empty());
    let again = processor.process_sqs(&messages).await;
    assert_eq!(again.duplicates, 5, "a redelivered batch: {again:?}");
    assert_eq!(
        (balance(&store, "a").await, balance(&store, "b").await),
        (12, 2)
    );
}

pub async fn on_a_fifo_queue_a_failure_holds_back_its_groups_later_messages_and_the_retry_keeps_their_order<
    S: StoreUnderTest,
>() {
    let ledger = Ledger::default();
    ledger.flaky.store(true, Ordering::SeqCst);
    let (processor, store) = inbox::<S>(ledger.clone(), FIFO).await;
    // Group g1 carries two accounts: the queue's order is the group's, whatever the key.
    let messages = vec![
        message(FIFO, "m1", body(&deposit("a", 1), Via::Direct), Some("g1")),
        message(FIFO, "m2", body(&deposit("a", 13), Via::Sns), Some("g1")),
        message(FIFO, "m3", body(&deposit("b", 3), Via::Direct), Some("g1")),
        message(
            FIFO,
            "m4",
            body(&deposit("c", 4), Via::EventBridge),
            Some("g2"),
        ),
        message(FIFO, "m5", body(&deposit("a", 6), Via::Direct), Some("g1")),
    ];
    let outcome = processor.process_sqs(&messages).await;
    assert_counts!(outcome, applied: 2, failed: 1, held_back: 2);
    let kept: Vec<_> = outcome
        .sqs_response()
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(
        kept,
        ["m2", "m3", "m5"],
        "the failed message and its group's later ones"
    );
    assert_eq!(
        (balance(&store, "b").await, balance(&store, "c").await),
        (0, 4)
    );

    ledger.flaky.store(false, Ordering::SeqCst);
    // The queue redelivers the kept messages, in their group's order.
    let retry: Vec<_> = messages
        .iter()
        .filter(|m| kept.contains(m.message_id.as_ref().unwrap()))
        .cloned()
        .collect();
    let outcome = processor.process_sqs(&retry).await;
    assert_counts!(outcome, applied: 3, failures.len(): 0);
    assert_eq!(last(&store, "a").await, 6, "13 then 6: the group's order");
    assert_eq!(
        (balance(&store, "a").await, balance(&store, "b").await),
        (20, 3)
    );

    // On a standard queue a group orders nothing: only the failed key's later message waits.
    ledger.flaky.store(true, Ordering::SeqCst);
    let (standard, _) = inbox::<S>(ledger, QUEUE).await;
    let unordered: Vec<_> = messages
        .iter()
        .cloned()
        .map(|mut m| {
            m.event_source_arn = Some(QUEUE.into());
            m
        })
        .collect();
    let outcome = standard.process_sqs(&unordered).await;
    assert_eq!(ids(&outcome.failures), ["m2", "m5"], "{outcome:?}");
}

pub async fn poison_is_parked_and_a_body_that_names_no_event_is_dropped<S: StoreUnderTest>() {
    let (processor, store) = inbox::<S>(Ledger::parking(), FIFO).await;
    let unnamed_sns = json!({"Type": "Notification", "TopicArn": "t", "Message": "hello"});
    let messages = vec![
        message(FIFO, "m1", body(&deposit("a", -1), Via::Sns), Some("g")),
        message(FIFO, "m2", body(&deposit("a", 2), Via::Direct), Some("g")),
        message(FIFO, "m3", "not json".into(), Some("g")),
        message(FIFO, "m4", unnamed_sns.to_string(), Some("g")),
        message(
            FIFO,
            "m5",
            json!({"detail-type": "x", "detail": {}}).to_string(),
            Some("g"),
        ),
        message(
            FIFO,
            "m6",
            body(&deposit("a", 3), Via::EventBridge),
            Some("g"),
        ),
    ];
    let outcome = processor.process_sqs(&messages).await;
    assert_counts!(outcome, parked: 1, applied: 2, dropped: 3);
    assert!(
        outcome.failures.is_empty(),
        "nothing blocks the group: {outcome:?}"
    );
    let again = processor.process_sqs(&messages).await;
    assert_eq!(again.duplicates, 3, "a parked event is done: {again:?}");
    let parked = parked_of(&processor).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].reason.contains("negative"), "{parked:?}");
    assert_eq!(balance(&store, "a").await, 5);

    // Under the wait policy the poison stays in the queue (its redrive policy moves it to the
    // dead-letter queue), holding back its group.
    let (waiting, _) = inbox::<S>(Ledger::default(), FIFO).await;
    let outcome = waiting.process_sqs(&messages).await;
    assert_eq!(ids(&outcome.failures), ["m1", "m2", "m6"], "{outcome:?}");
}

pub async fn another_queues_messages_are_refused_and_never_credited<S: StoreUnderTest>() {
    let (processor, store) = inbox::<S>(Ledger::default(), QUEUE).await;
    let foreign = [
        "arn:aws:sqs:eu-west-1:210987654321:deposits",
        "arn:aws:sqs:us-east-1:123456789012:deposits",
        "arn:aws:sqs:eu-west-1:123456789012:deposits.fifo",
        "arn:aws:sqs:eu-west-1:123456789012:other",
        "arn:aws:kinesis:eu-west-1:123456789012:stream/deposits",
        "deposits",
        "",
    ];
    let messages: Vec<_> = foreign
        .iter()
        .enumerate()
        .map(|(i, queue)| {
            let id = format!("m{i}");
            message(queue, &id, body(&deposit("a", 9), Via::Direct), None)
        })
        .collect();
    let outcome = processor.process_sqs(&messages).await;
    assert_counts!(outcome, applied: 0, poison: 7);
    assert_eq!(outcome.failures.len(), 7);
    assert_eq!(balance(&store, "a").await, 0);

    // A processor of a Kinesis stream takes no queue's message, even from its own account.
    let stream = Processor::new(
        Ledger::default(),
        store.clone(),
        Source::kinesis_stream("deposits").unwrap(),
    )
    .home(Home::of_arn(QUEUE).unwrap());
    let mine = [message(
        QUEUE,
        "m",
        body(&deposit("a", 1), Via::Direct),
        None,
    )];
    assert_eq!(stream.process_sqs(&mine).await.poison, 1);
    assert_eq!(processor.process_sqs(&mine).await.applied, 1);
}
