//! The stream consumer, driven with records read from the local server's stream.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use devkit::stack::in_process;
use dynamodb_outbox::dynamodb::Outbox;
use dynamodb_outbox::testing::StoreOps;
use dynamodb_outbox::testing::{schema, CrashPoint, Crashing};
use dynamodb_outbox::{BatchOutcome, Envelope};
use order_service::domain::events::routes;
use order_service::domain::OrderPlaced;
use outbox_tests::*;
use service_runtime::Timestamp;

/// The rewards consumer as the function runs it, over `records`.
async fn process(stack: &Stack, records: &[EventRecord]) -> BatchOutcome {
    stack
        .service()
        .concurrency(CONCURRENCY)
        .process_stream(records)
        .await
}

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
    // The order items' INSERTs, the customers' sequence counters, and the MODIFYs of the
    // consumer's own processed marks.
    let everything = stack.stream_records().await.unwrap();
    assert_eq!(
        stats.filtered_out,
        everything.len() - ORDERS.len(),
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
    let batch = outbox_batch(&stack).await;
    let first = process(&stack, &batch).await;
    assert_counts!(
        first,
        [applied = ORDERS.len(), duplicates = 0, failures = 0]
    );
    // Every event is done: its waiting set is gone, which the mark of a redelivered record
    // must read as "already completed", not as an error to retry.
    let (_, events) = orders_and_events(&stack).await;
    assert!(events.iter().all(|e| {
        s(e, schema::STATUS) == Some(schema::STATUS_PROCESSED)
            && !e.contains_key(schema::WAITING_CONSUMERS)
    }));
    for _ in 0..2 {
        let again = process(&stack, &batch).await;
        assert_counts!(
            again,
            [applied = 0, duplicates = ORDERS.len(), failures = 0]
        );
    }
    assert_balances(&stack, &expected, &count(ORDERS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumers_racing_on_one_batch_apply_it_once() {
    let stack = stack().await;
    let expected = place_orders(&stack, ORDERS).await;
    let batch = outbox_batch(&stack).await;
    let (x, y) = tokio::join!(process(&stack, &batch), process(&stack, &batch));
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

#[tokio::test]
async fn a_crash_between_the_reward_and_the_mark_is_repaired_by_redelivery() {
    let stack = stack().await;
    place_orders(&stack, &[("c-1", 4_200)]).await;
    let batch = outbox_batch(&stack).await;
    let service = stack.service();
    // A process that crashes right after its transaction committed, before the outbox mark.
    let store = Crashing::always(service.store().clone(), CrashPoint::BeforeDone);
    let crashing = service.with_store(store);

    let first = crashing.process_stream(&batch).await;
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

    let redelivery = process(&stack, &batch).await;
    assert_counts!(redelivery, [applied = 0, duplicates = 1, failures = 0]);
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

/// Writes an `OrderPlaced` event for `customer` through the outbox engine, as a producer with a
/// bug (or a newer one) might: `tweak` changes the envelope first.
async fn publish(
    stack: &Stack,
    customer: &str,
    event_id: &str,
    tweak: impl FnOnce(&mut Envelope<OrderPlaced>),
) {
    let mut event = Envelope::new(OrderPlaced {
        order_id: uuid::Uuid::new_v4().to_string(),
        customer_id: customer.to_owned(),
        currency: "USD".into(),
        amount_cents: 100,
        points: 1,
        channel: order_service::domain::events::CHANNEL_API.into(),
    })
    .with_ordering_key(customer);
    event.event_id = event_id.to_owned();
    tweak(&mut event);
    Outbox::new(stack.dynamo.client.clone(), &stack.tables.orders, routes())
        .transaction()
        .event(&event)
        .unwrap()
        .commit()
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

/// What the rewards consumer parked, by event id, with the reason.
async fn parked(stack: &Stack) -> HashMap<String, String> {
    stack
        .service()
        .store()
        .parked(rewards_service::consumer::NAME, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                dynamodb_outbox::testing::Header::peek(&p.event).name(),
                p.reason,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_poison_event_is_parked_with_its_reason_and_its_customer_goes_on() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 1_000)]).await;
    publish(&stack, "c-1", "poison-points", |e| e.payload.points = 99).await;
    place(&stack, "c-1", &[("B", 1, 2_000)]).await;
    place(&stack, "c-2", &[("C", 1, 3_000)]).await;
    publish(&stack, "c-3", "poison-negative", |e| {
        e.payload.points = -5;
        e.payload.amount_cents = -500;
    })
    .await;
    publish(&stack, "c-4", "poison-customer", |e| {
        e.payload.customer_id = "not a customer id!".into();
    })
    .await;
    let batch = outbox_batch(&stack).await;
    assert_eq!(batch.len(), 6);

    let outcome = process(&stack, &batch).await;
    assert_counts!(outcome, [applied = 3, parked = 3, failures = 0]);
    assert_eq!(
        balance(&stack, "c-1").await,
        (30, 2),
        "the order after the poison too"
    );
    assert_eq!(balance(&stack, "c-2").await, (30, 1));
    assert_eq!(
        balance(&stack, "c-3").await,
        (0, 0),
        "negative points are never applied"
    );
    let parked = parked(&stack).await;
    assert_eq!(parked.len(), 3, "{parked:?}");
    assert!(parked["poison-points"].contains("points"), "{parked:?}");
    assert!(parked["poison-negative"].contains("negative"), "{parked:?}");
    assert!(
        parked["poison-customer"].contains("customer_id"),
        "{parked:?}"
    );

    // A redelivery (Lambda retries, a second mapping) applies and parks nothing again.
    let again = process(&stack, &batch).await;
    assert_counts!(again, [applied = 0, parked = 0, duplicates = 6]);
    assert_eq!(balance(&stack, "c-1").await, (30, 2));
    let _ = sequence_of(&batch, "poison-points");
}

#[tokio::test]
async fn an_event_of_a_newer_schema_version_is_skipped_and_counted_never_poison() {
    let stack = stack().await;
    publish(&stack, "c-1", "from-the-future", |e| {
        e.schema_version = order_service::domain::events::SCHEMA_VERSION + 1
    })
    .await;
    place(&stack, "c-1", &[("A", 1, 1_000)]).await;
    let batch = outbox_batch(&stack).await;
    let outcome = process(&stack, &batch).await;
    assert_counts!(
        outcome,
        [skipped = 1, applied = 1, parked = 0, failures = 0]
    );
    assert_eq!(balance(&stack, "c-1").await, (10, 1));
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
    // One per processed mark (the only consumer finishes the event in one write); each
    // customer's counter was written once, an INSERT.
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
    let outcome = service.process_stream(&unfiltered).await;
    assert_counts!(outcome, [ignored = 4, applied = 0, failures = 0]);
    assert_balances(&stack, &expected, &count(&[("c-1", 0), ("c-2", 0)])).await;

    // And the template's filter keeps them from the function altogether.
    let before = trigger.stats.records_delivered;
    let stats = trigger.drain().await.unwrap();
    assert_eq!(stats.records_delivered, before);
}

/// A stack with one order of c-1's placed (20 points), and its outbox event as the stream
/// delivers it.
async fn one_order() -> (Stack, Vec<EventRecord>) {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 2_000)]).await;
    let batch = outbox_batch(&stack).await;
    (stack, batch)
}

/// A copy of an outbox record with its image changed, as a forged or corrupted delivery.
fn altered(record: &EventRecord, sequence: &str, change: impl FnOnce(&mut Image)) -> EventRecord {
    let mut copy = record.clone();
    copy.change.sequence_number = Some(sequence.to_owned());
    edit_image(&mut copy, change);
    copy
}

fn set_s(image: &mut Image, name: &str, value: &str) {
    image.insert(name.into(), serde_dynamo::AttributeValue::S(value.into()));
}

fn set_payload(image: &mut Image, name: &str, value: serde_dynamo::AttributeValue) {
    let Some(serde_dynamo::AttributeValue::M(payload)) = image.get_mut("payload") else {
        unreachable!("an outbox image has a payload map")
    };
    payload.insert(name.into(), value);
}

#[tokio::test]
async fn an_order_is_rewarded_once_whatever_else_its_events_say() {
    let (stack, batch) = one_order().await;
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
    let outcome = process(&stack, &copies).await;
    assert_counts!(outcome, [applied = 1, duplicates = 2]);
    assert_eq!(balance(&stack, "c-1").await, (20, 1));

    // A copy naming another customer sits at the same place in the key's order: a duplicate,
    // and it credits no one.
    let stolen = altered(original, "900000000000000000003", |i| {
        set_payload(
            i,
            "customer_id",
            serde_dynamo::AttributeValue::S("c-2".into()),
        )
    });
    let outcome = process(&stack, &[stolen]).await;
    assert_counts!(outcome, [duplicates = 1, applied = 0]);
    assert_eq!(balance(&stack, "c-2").await, (0, 0));
    assert_eq!(balance(&stack, "c-1").await, (20, 1));

    // A second event about the same order, written by a producer with a bug: the order's reward
    // record refuses it, so it is parked and the order stays rewarded once.
    let order_id = s(&orders_and_events(&stack).await.0[0], "order_id")
        .unwrap()
        .to_owned();
    publish(&stack, "c-1", "second-event-same-order", |e| {
        e.aggregate_id = order_id.clone();
        e.payload.order_id = order_id.clone();
        e.payload.amount_cents = 2_000;
        e.payload.points = 20;
    })
    .await;
    let batch = outbox_batch(&stack).await;
    let outcome = process(&stack, &batch).await;
    assert_counts!(outcome, [parked = 1, applied = 0]);
    assert_eq!(balance(&stack, "c-1").await, (20, 1));
    let reason = &parked(&stack).await["second-event-same-order"];
    assert!(
        reason.contains("put of") && reason.contains("(an item with that key exists)"),
        "the reason names the refused write: {reason}"
    );
}

#[tokio::test]
async fn points_that_do_not_follow_from_the_total_are_poison() {
    let (stack, batch) = one_order().await;
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
    let outcome = process(&stack, &forged).await;
    assert_counts!(
        outcome,
        [parked = 1, duplicates = 1, applied = 0],
        "the first forgery is parked; the second sits at the same place in the key's order"
    );
    assert_eq!(balance(&stack, "c-1").await, (0, 0));
    let rewards = call_rewards(&stack, request("GET", "/customers/c-1/rewards", None, &[])).await;
    assert_eq!(rewards.status, 200, "the customer stays readable");
}

#[tokio::test]
async fn a_reward_that_would_pass_the_balance_limit_is_poison_and_the_customer_stays_readable() {
    use order_service::domain::order::{points_for, MAX_MONEY_CENTS};
    use rewards_service::domain::MAX_BALANCE;
    let stack = stack().await;
    let largest = points_for(MAX_MONEY_CENTS);
    let fit = MAX_BALANCE / largest;
    for _ in 0..=fit {
        place(&stack, "c-1", &[("A", 1, MAX_MONEY_CENTS)]).await;
    }
    let batch = outbox_batch(&stack).await;
    let outcome = process(&stack, &batch).await;
    assert_counts!(
        outcome,
        [applied = fit as usize, parked = 1],
        "the largest orders fill the balance up to the limit, and the next one is refused"
    );
    let rewards = call_rewards(&stack, request("GET", "/customers/c-1/rewards", None, &[])).await;
    assert_eq!(rewards.status, 200, "{:?}", rewards.json);
    assert_eq!(rewards.json["points"], fit * largest);
    assert!(fit * largest <= MAX_BALANCE);
}

#[tokio::test]
async fn records_from_another_tables_stream_are_poison_and_credit_nothing() {
    let (stack, batch) = one_order().await;
    let mut elsewhere = batch[0].clone();
    elsewhere.event_source_arn = Some(
        "arn:aws:dynamodb:us-east-1:123456789012:table/someone-elses-table/stream/2026-01-01T00:00:00.000"
            .into(),
    );
    let mut unnamed = batch[0].clone();
    unnamed.event_source_arn = None;
    unnamed.change.sequence_number = Some("900000000000000000031".into());
    let outcome = process(&stack, &[elsewhere, unnamed]).await;
    assert_counts!(outcome, [poison = 2, failures = 2, applied = 0]);
    assert_eq!(balance(&stack, "c-1").await, (0, 0));
    let outcome = process(&stack, &batch).await;
    assert_eq!(
        outcome.applied, 1,
        "the same record from the right stream is applied"
    );
}

/// `records` through the stream-consumer's handler, invoked as a function whose ARN is
/// `function_arn`, with the rewards processor configured with `orders` (a name or an ARN).
async fn handle_as(
    stack: &Stack,
    orders: &str,
    function_arn: &str,
    records: &[EventRecord],
) -> Vec<String> {
    let processor = rewards_service::service::processor(
        stack.dynamo.client.clone(),
        &stack.tables.rewards,
        dynamodb_outbox::Source::table(orders).expect("a table's name or ARN"),
    );
    let mut event = aws_lambda_events::dynamodb::Event::default();
    event.records = records.to_vec();
    let mut context = lambda_runtime::Context::default();
    context.invoked_function_arn = function_arn.to_owned();
    let response = rewards_service::handlers::stream::handle(
        &processor,
        lambda_runtime::LambdaEvent::new(event, context),
    )
    .await
    .unwrap();
    response
        .batch_item_failures
        .into_iter()
        .filter_map(|f| f.item_identifier)
        .collect()
}

/// The record as if it came from the same-named table's stream at `place`
/// (`<region>:<account>`, or a whole other partition).
fn from_elsewhere(record: &EventRecord, from: &str, to: &str, sequence: &str) -> EventRecord {
    let mut copy = record.clone();
    copy.event_source_arn = copy.event_source_arn.map(|arn| arn.replacen(from, to, 1));
    copy.change.sequence_number = Some(sequence.into());
    copy
}

#[tokio::test]
async fn a_same_named_table_of_another_account_region_or_partition_is_never_credited() {
    let (stack, batch) = one_order().await;
    let local = dynamodb_outbox::Home::of_arn(&stack.tables.orders_stream_arn).unwrap();
    let own = format!("{}:{}", local.region, local.account);
    let function = format!(
        "arn:{}:lambda:{}:{}:function:stream-consumer",
        local.partition, local.region, local.account
    );
    // (what of the ARN changes, to what, the record's sequence number)
    let elsewhere = [
        (own.clone(), format!("{}:210987654321", local.region), 41),
        (own.clone(), format!("eu-west-1:{}", local.account), 42),
        ("arn:aws:".to_owned(), "arn:aws-cn:".to_owned(), 43),
    ];
    let foreign: Vec<EventRecord> = elsewhere
        .iter()
        .map(|(from, to, n)| from_elsewhere(&batch[0], from, to, &format!("9{n:020}")))
        .collect();
    for orders in [stack.tables.orders.clone(), stack.tables.orders_arn()] {
        let failures = handle_as(&stack, &orders, &function, &foreign).await;
        assert_eq!(
            failures.len(),
            3,
            "{orders}: every foreign record is refused"
        );
        assert_eq!(balance(&stack, "c-1").await, (0, 0), "{orders}");
    }
    // By name, the table is the function's own: invoked from another account, the real
    // stream's records are foreign too.
    let elsewhere = "arn:aws:lambda:eu-west-1:210987654321:function:stream-consumer";
    let failures = handle_as(&stack, &stack.tables.orders, elsewhere, &batch).await;
    assert_eq!(failures.len(), 1);
    assert_eq!(balance(&stack, "c-1").await, (0, 0));

    let failures = handle_as(&stack, &stack.tables.orders, &function, &batch).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        balance(&stack, "c-1").await.0,
        20,
        "the real stream's record is applied"
    );
}

#[tokio::test]
async fn the_orders_table_given_as_its_arn_admits_its_own_stream_from_any_invocation() {
    let (stack, batch) = one_order().await;
    let arn = stack.tables.orders_arn();
    assert!(arn.starts_with("arn:"), "{arn}");
    let failures = handle_as(&stack, &arn, "", &batch).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(balance(&stack, "c-1").await.0, 20);
    let (_, events) = orders_and_events(&stack).await;
    assert_eq!(
        s(&events[0], schema::STATUS),
        Some(schema::STATUS_PROCESSED),
        "the outbox item is marked on the table the ARN names"
    );
}
