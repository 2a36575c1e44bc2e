//! The stream consumer, driven with records read from the local server's stream.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use devkit::stack::in_process;
use outbox::domain::{EventEnvelope, StoreError, Timestamp};
use outbox::handlers::stream::process_batch;
use outbox::schema;
use outbox::service::RewardsService;
use outbox::store::dynamodb::DynamoOrderStore;
use outbox::store::{OutboxItem, OutboxItemKey, OutboxStore};
use outbox_tests::*;

const CONCURRENCY: usize = 8;

async fn place_orders(stack: &Stack, orders: &[(&str, i64)]) -> HashMap<String, i64> {
    let mut expected: HashMap<String, i64> = HashMap::new();
    for (customer, cents) in orders {
        let r = place(stack, customer, &[("SKU-1", 1, *cents)]).await;
        *expected.entry(customer.to_string()).or_default() += r.json["points"].as_i64().unwrap();
    }
    expected
}

async fn assert_balances(
    stack: &Stack,
    expected: &HashMap<String, i64>,
    orders_per_customer: &HashMap<String, usize>,
) {
    for (customer, points) in expected {
        let (balance, ledger) = balance(stack, customer).await;
        assert_eq!(balance, *points, "balance of {customer}");
        assert_eq!(
            ledger, orders_per_customer[customer],
            "ledger entries of {customer}"
        );
    }
}

fn count(orders: &[(&str, i64)]) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for (customer, _) in orders {
        *c.entry(customer.to_string()).or_default() += 1;
    }
    c
}

const ORDERS: &[(&str, i64)] = &[
    ("c-1", 1250),
    ("c-2", 999),
    ("c-1", 10_000),
    ("c-3", 5),
    ("c-2", 2_550),
    ("c-1", 101),
];

#[tokio::test]
async fn orders_placed_end_up_as_exactly_the_expected_balances() {
    let stack = stack().await;
    let expected = place_orders(&stack, ORDERS).await;
    let mut trigger = stack
        .trigger(in_process(stack.service(), CONCURRENCY))
        .unwrap();
    let stats = trigger.drain().await.unwrap().clone();

    assert_eq!(
        stats.records_delivered,
        ORDERS.len(),
        "only outbox inserts reach the consumer"
    );
    // The order items' INSERTs, and the MODIFYs of the consumer's own processed marks.
    assert_eq!(
        stats.filtered_out,
        2 * ORDERS.len(),
        "only outbox inserts pass the filter"
    );
    assert_balances(&stack, &expected, &count(ORDERS)).await;

    let (_, events) = orders_and_events(&stack).await;
    let retention = stack.retention_seconds();
    let now = Timestamp::now().unix_seconds();
    for event in &events {
        assert_eq!(s(event, schema::STATUS), Some(schema::STATUS_PROCESSED));
        assert!(
            matches!(event.get(schema::EXPIRES_AT), Some(AttributeValue::N(_))),
            "expires_at is a Number"
        );
        let expires = n(event, schema::EXPIRES_AT).unwrap();
        assert!(
            (now + retention - 60..=now + retention).contains(&expires),
            "expires_at {expires} not within the retention window"
        );
        assert!(
            event.get(schema::PENDING_PK).is_none(),
            "processed events leave the pending index"
        );
    }
    // The consumer's own MODIFY records are in the stream now; they are filtered out too.
    let stats = trigger.drain().await.unwrap();
    assert_eq!(stats.records_delivered, ORDERS.len());
    assert_eq!(stats.invocations, 1, "six records fit one batch");
}

#[tokio::test]
async fn a_batch_delivered_two_and_three_times_applies_once() {
    let stack = stack().await;
    let expected = place_orders(&stack, ORDERS).await;
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    let service = stack.service();

    let first = process_batch(&service, CONCURRENCY, &batch).await;
    assert_eq!(
        (first.applied, first.duplicates, first.failures.len()),
        (ORDERS.len(), 0, 0)
    );
    for _ in 0..2 {
        let again = process_batch(&service, CONCURRENCY, &batch).await;
        assert_eq!(
            (again.applied, again.duplicates, again.failures.len()),
            (0, ORDERS.len(), 0)
        );
    }
    assert_balances(&stack, &expected, &count(ORDERS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumers_racing_on_one_batch_apply_it_once() {
    let stack = stack().await;
    let expected = place_orders(&stack, ORDERS).await;
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    let (a, b) = (stack.service(), stack.service());

    let (x, y) = tokio::join!(
        process_batch(&a, CONCURRENCY, &batch),
        process_batch(&b, CONCURRENCY, &batch)
    );
    assert!(
        x.failures.is_empty() && y.failures.is_empty(),
        "{x:?} {y:?}"
    );
    assert_eq!(
        x.applied + y.applied,
        ORDERS.len(),
        "each event applied by exactly one consumer"
    );
    assert_eq!(x.duplicates + y.duplicates, ORDERS.len());
    assert_balances(&stack, &expected, &count(ORDERS)).await;
}

/// The outbox as seen by a consumer that crashes right after its rewards transaction committed.
#[derive(Clone)]
struct CrashBeforeMark(DynamoOrderStore);

impl OutboxStore for CrashBeforeMark {
    async fn mark_processed(
        &self,
        _: &EventEnvelope,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "process crashed before marking the event".into(),
        ))
    }
    fn table_name(&self) -> &str {
        self.0.table_name()
    }
    async fn pending_events(
        &self,
        before: Timestamp,
        per_shard: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.0.pending_events(before, per_shard).await
    }
    async fn park(
        &self,
        key: &OutboxItemKey,
        reason: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.0.park(key, reason, at).await
    }
    async fn parked_events(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.0.parked_events(limit).await
    }
    async fn unpark(&self, item: &OutboxItem) -> Result<(), StoreError> {
        self.0.unpark(item).await
    }
}

#[tokio::test]
async fn a_crash_between_the_reward_and_the_mark_is_repaired_by_redelivery() {
    let stack = stack().await;
    place_orders(&stack, &[("c-1", 4_200)]).await;
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    let crashing = RewardsService {
        rewards: stack.rewards.clone(),
        outbox: CrashBeforeMark(stack.orders.clone()),
        retention_seconds: stack.retention_seconds(),
    };

    let first = process_batch(&crashing, CONCURRENCY, &batch).await;
    assert_eq!(
        first.failures.len(),
        1,
        "the record is reported so Lambda redelivers it"
    );
    assert_eq!(
        balance(&stack, "c-1").await,
        (42, 1),
        "the reward committed before the crash"
    );
    let (_, events) = orders_and_events(&stack).await;
    assert_eq!(s(&events[0], schema::STATUS), Some(schema::STATUS_PENDING));
    assert!(
        !events[0].contains_key(schema::EXPIRES_AT),
        "not marked: must not expire"
    );

    let redelivery = process_batch(&stack.service(), CONCURRENCY, &batch).await;
    assert_eq!(
        (
            redelivery.applied,
            redelivery.duplicates,
            redelivery.failures.len()
        ),
        (0, 1, 0)
    );
    assert_eq!(
        balance(&stack, "c-1").await,
        (42, 1),
        "one ledger entry, points added once"
    );
    let (_, events) = orders_and_events(&stack).await;
    assert_eq!(
        s(&events[0], schema::STATUS),
        Some(schema::STATUS_PROCESSED)
    );
    assert!(n(&events[0], schema::EXPIRES_AT).is_some());
}

/// Writes an outbox item that no consumer can apply, as a buggy or newer writer might.
async fn put_poison(
    stack: &Stack,
    customer: &str,
    event_id: &str,
    tweak: impl FnOnce(&mut HashMap<String, AttributeValue>),
) {
    let order_id = uuid::Uuid::new_v4().to_string();
    let mut payload = HashMap::new();
    payload.insert("order_id".to_owned(), AttributeValue::S(order_id.clone()));
    payload.insert(
        "customer_id".to_owned(),
        AttributeValue::S(customer.to_owned()),
    );
    payload.insert("currency".to_owned(), AttributeValue::S("USD".into()));
    payload.insert("total_cents".to_owned(), AttributeValue::N("100".into()));
    payload.insert("points".to_owned(), AttributeValue::N("1".into()));
    let mut item: HashMap<String, AttributeValue> = [
        (
            schema::PK,
            AttributeValue::S(schema::orders::order_pk(&order_id)),
        ),
        (
            schema::SK,
            AttributeValue::S(schema::orders::outbox_sk(event_id)),
        ),
        (
            schema::ENTITY,
            AttributeValue::S(schema::ENTITY_OUTBOX_EVENT.into()),
        ),
        (
            schema::STATUS,
            AttributeValue::S(schema::STATUS_PENDING.into()),
        ),
        ("event_id", AttributeValue::S(event_id.into())),
        ("event_type", AttributeValue::S("OrderPlaced".into())),
        ("schema_version", AttributeValue::N("1".into())),
        ("aggregate_type", AttributeValue::S("Order".into())),
        ("aggregate_id", AttributeValue::S(order_id.clone())),
        (
            "occurred_at",
            AttributeValue::S(Timestamp::now().to_string()),
        ),
        ("payload", AttributeValue::M(payload)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    tweak(&mut item);
    stack
        .dynamo
        .client
        .put_item()
        .table_name(&stack.tables.orders)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

fn sequence_of(batch: &[EventRecord], event_id: &str) -> String {
    batch
        .iter()
        .find(|r| matches!(r.change.new_image.get("event_id"), Some(serde_dynamo::AttributeValue::S(id)) if id == event_id))
        .and_then(|r| r.change.sequence_number.clone())
        .unwrap()
}

fn event_id_of(order: &Reply, batch: &[EventRecord]) -> String {
    let order_id = order.json["order_id"].as_str().unwrap();
    batch
        .iter()
        .find_map(|r| {
            match (
                r.change.new_image.get("aggregate_id"),
                r.change.new_image.get("event_id"),
            ) {
                (
                    Some(serde_dynamo::AttributeValue::S(a)),
                    Some(serde_dynamo::AttributeValue::S(e)),
                ) if a == order_id => Some(e.clone()),
                _ => None,
            }
        })
        .unwrap()
}

#[tokio::test]
async fn a_poison_record_is_reported_and_holds_back_only_its_own_customer() {
    let stack = stack().await;
    let a = place(&stack, "c-1", &[("A", 1, 1_000)]).await;
    put_poison(&stack, "c-1", "poison-version", |i| {
        i.insert("schema_version".into(), AttributeValue::N("99".into()));
    })
    .await;
    let b = place(&stack, "c-1", &[("B", 1, 2_000)]).await;
    let c = place(&stack, "c-2", &[("C", 1, 3_000)]).await;
    put_poison(&stack, "c-3", "poison-negative", |i| {
        let Some(AttributeValue::M(p)) = i.get_mut("payload") else {
            unreachable!()
        };
        p.insert("points".into(), AttributeValue::N("-5".into()));
    })
    .await;
    put_poison(&stack, "c-4", "poison-garbage", |i| {
        i.insert("payload".into(), AttributeValue::S("not a map".into()));
    })
    .await;
    let d = place(&stack, "c-2", &[("D", 1, 500)]).await;
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    assert_eq!(batch.len(), 7);

    let outcome = process_batch(&stack.service(), CONCURRENCY, &batch).await;

    let expected_failures = vec![
        sequence_of(&batch, "poison-version"),
        sequence_of(&batch, &event_id_of(&b, &batch)),
        sequence_of(&batch, "poison-negative"),
        sequence_of(&batch, "poison-garbage"),
    ];
    assert_eq!(
        outcome.failures, expected_failures,
        "the poison records, and c-1's order held back behind its poison"
    );
    assert_eq!(
        (outcome.failed, outcome.held_back, outcome.applied),
        (3, 1, 3)
    );
    assert_eq!(
        balance(&stack, "c-1").await,
        (10, 1),
        "only the order before the poison"
    );
    assert_eq!(
        balance(&stack, "c-2").await,
        (35, 2),
        "another customer is not blocked"
    );
    assert_eq!(
        balance(&stack, "c-3").await,
        (0, 0),
        "negative points are never applied"
    );
    let _ = (a, c, d);

    // Lambda retries from the lowest reported sequence number; the replay applies nothing twice.
    let from = batch
        .iter()
        .position(|r| r.change.sequence_number.as_deref() == Some(&expected_failures[0]))
        .unwrap();
    let retry = process_batch(&stack.service(), CONCURRENCY, &batch[from..]).await;
    assert_eq!(retry.failures, expected_failures);
    assert_eq!(balance(&stack, "c-2").await, (35, 2));
}

#[tokio::test]
async fn modify_and_remove_records_are_ignored_including_real_ttl_deletions() {
    let stack = stack().await;
    assert!(
        stack.dynamo.is_embedded(),
        "this test forces a TTL sweep, which only the embedded server can do: \
         against another server, `make test-external` skips it by name"
    );
    let expected = place_orders(&stack, &[("c-1", 700), ("c-2", 300)]).await;
    // Retention 0: processed events expire at once, so the sweep below deletes them.
    let service = stack.service_with_retention(0);
    let mut trigger = stack
        .trigger(in_process(service.clone(), CONCURRENCY))
        .unwrap();
    trigger.drain().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let deleted = stack.dynamo.sweep_ttl().await.unwrap();
    assert_eq!(deleted, 2, "both processed events expired");
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!(
        (orders.len(), events.len()),
        (2, 0),
        "orders stay, processed events are gone"
    );

    let records = stack.stream_records().await.unwrap();
    let removes: Vec<_> = records
        .iter()
        .filter(|r| r.event_name == "REMOVE")
        .cloned()
        .collect();
    let modifies: Vec<_> = records
        .iter()
        .filter(|r| r.event_name == "MODIFY")
        .cloned()
        .collect();
    assert_eq!((removes.len(), modifies.len()), (2, 2));
    for r in &removes {
        let who = r
            .user_identity
            .as_ref()
            .expect("TTL deletions carry a user identity");
        assert_eq!(
            (who.type_.as_str(), who.principal_id.as_str()),
            ("Service", "dynamodb.amazonaws.com")
        );
    }

    // Even delivered without the filter, they change nothing.
    let unfiltered: Vec<_> = removes.iter().chain(&modifies).cloned().collect();
    let outcome = process_batch(&service, CONCURRENCY, &unfiltered).await;
    assert_eq!(
        (outcome.ignored, outcome.applied, outcome.failures.len()),
        (4, 0, 0)
    );
    assert_balances(&stack, &expected, &count(&[("c-1", 0), ("c-2", 0)])).await;

    // And the template's filter keeps them from the function altogether.
    let before = trigger.stats.records_delivered;
    let stats = trigger.drain().await.unwrap();
    assert_eq!(stats.records_delivered, before);
}

/// A copy of an outbox record with its image changed, as a forged or corrupted delivery.
fn altered(
    record: &EventRecord,
    sequence: &str,
    change: impl FnOnce(&mut HashMap<String, serde_dynamo::AttributeValue>),
) -> EventRecord {
    let mut copy = record.clone();
    copy.change.sequence_number = Some(sequence.to_owned());
    let mut image: HashMap<String, serde_dynamo::AttributeValue> = copy
        .change
        .new_image
        .clone()
        .into_inner()
        .into_iter()
        .collect();
    change(&mut image);
    copy.change.new_image = serde_dynamo::Item::from(image);
    copy
}

fn set_s(image: &mut HashMap<String, serde_dynamo::AttributeValue>, name: &str, value: &str) {
    image.insert(name.into(), serde_dynamo::AttributeValue::S(value.into()));
}

fn set_payload(
    image: &mut HashMap<String, serde_dynamo::AttributeValue>,
    name: &str,
    value: serde_dynamo::AttributeValue,
) {
    let Some(serde_dynamo::AttributeValue::M(payload)) = image.get_mut("payload") else {
        unreachable!("an outbox image has a payload map")
    };
    payload.insert(name.into(), value);
}

#[tokio::test]
async fn an_order_is_rewarded_once_whatever_else_its_events_say() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 2_000)]).await;
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    let original = &batch[0];
    let copies = vec![
        original.clone(),
        altered(original, "900000000000000000001", |i| {
            set_s(i, "occurred_at", "2030-01-01T00:00:00.000000Z")
        }),
        altered(original, "900000000000000000002", |i| {
            set_s(i, "event_id", "another-event-about-the-same-order")
        }),
    ];
    let outcome = process_batch(&stack.service(), CONCURRENCY, &copies).await;
    assert_eq!((outcome.applied, outcome.duplicates), (1, 2), "{outcome:?}");
    assert_eq!(balance(&stack, "c-1").await, (20, 1));

    // The same order named in another customer's event is poison, and credits no one.
    let stolen = altered(original, "900000000000000000003", |i| {
        set_payload(
            i,
            "customer_id",
            serde_dynamo::AttributeValue::S("c-2".into()),
        )
    });
    let outcome = process_batch(&stack.service(), CONCURRENCY, &[stolen]).await;
    assert_eq!((outcome.failed, outcome.applied), (1, 0), "{outcome:?}");
    assert_eq!(balance(&stack, "c-2").await, (0, 0));
    assert_eq!(balance(&stack, "c-1").await, (20, 1));
}

#[tokio::test]
async fn points_that_do_not_follow_from_the_total_are_poison() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 2_000)]).await;
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    let forged: Vec<EventRecord> = (0..2)
        .map(|i| {
            altered(&batch[0], &format!("90000000000000000001{i}"), |image| {
                set_s(image, "event_id", &format!("forged-{i}"));
                set_payload(
                    image,
                    "order_id",
                    serde_dynamo::AttributeValue::S(format!("forged-{i}")),
                );
                set_payload(
                    image,
                    "points",
                    serde_dynamo::AttributeValue::N(i64::MAX.to_string()),
                );
            })
        })
        .collect();
    let outcome = process_batch(&stack.service(), CONCURRENCY, &forged).await;
    assert_eq!(
        (outcome.failed, outcome.held_back, outcome.applied),
        (1, 1, 0),
        "{outcome:?}"
    );
    assert_eq!(balance(&stack, "c-1").await, (0, 0));
    let rewards = call_rewards(&stack, request("GET", "/customers/c-1/rewards", None, &[])).await;
    assert_eq!(rewards.status, 200, "the customer stays readable");
}

#[tokio::test]
async fn a_reward_that_would_pass_the_balance_limit_is_poison_and_the_customer_stays_readable() {
    use outbox::domain::order::{points_for, MAX_MONEY_CENTS};
    let stack = stack().await;
    let largest = points_for(MAX_MONEY_CENTS);
    let fit = outbox::domain::MAX_BALANCE / largest;
    for _ in 0..=fit {
        place(&stack, "c-1", &[("A", 1, MAX_MONEY_CENTS)]).await;
    }
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    let outcome = process_batch(&stack.service(), CONCURRENCY, &batch).await;
    assert_eq!(
        (outcome.applied, outcome.failed),
        (fit as usize, 1),
        "the largest orders fill the balance up to the limit, and the next one is refused"
    );
    let rewards = call_rewards(&stack, request("GET", "/customers/c-1/rewards", None, &[])).await;
    assert_eq!(rewards.status, 200, "{:?}", rewards.json);
    assert_eq!(rewards.json["points"], fit * largest);
    assert!(fit * largest <= outbox::domain::MAX_BALANCE);
}

#[tokio::test]
async fn records_from_another_tables_stream_are_poison_and_credit_nothing() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 2_000)]).await;
    let batch = outbox_inserts(&stack.stream_records().await.unwrap());
    let mut elsewhere = batch[0].clone();
    elsewhere.event_source_arn = Some(
        "arn:aws:dynamodb:us-east-1:123456789012:table/someone-elses-table/stream/2026-01-01T00:00:00.000"
            .into(),
    );
    let mut unnamed = batch[0].clone();
    unnamed.event_source_arn = None;
    unnamed.change.sequence_number = Some("900000000000000000031".into());
    let outcome = process_batch(&stack.service(), CONCURRENCY, &[elsewhere, unnamed]).await;
    assert_eq!((outcome.failed, outcome.applied), (2, 0), "{outcome:?}");
    assert_eq!(balance(&stack, "c-1").await, (0, 0));
    let outcome = process_batch(&stack.service(), CONCURRENCY, &batch).await;
    assert_eq!(
        outcome.applied, 1,
        "the same record from the right stream is applied"
    );
}
