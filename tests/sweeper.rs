//! The outbox sweeper: events the stream never delivered are still applied, exactly once.

use aws_sdk_dynamodb::types::AttributeValue;
use devkit::stack::in_process;
use outbox::domain::Timestamp;
use outbox::schema;
use outbox::store::OutboxStore;
use outbox_tests::*;

#[tokio::test]
async fn events_the_stream_never_delivered_are_applied_by_the_sweeper() {
    let stack = stack().await;
    for (customer, cents) in [("c-1", 1_000), ("c-2", 2_500), ("c-1", 300)] {
        place(&stack, customer, &[("A", 1, cents)]).await;
    }
    // No consumer ran: the stream's records might as well have expired.
    let service = stack.service();
    let waiting = service.sweep(3_600, 100).await.unwrap();
    assert_eq!(
        waiting.found, 0,
        "younger than the grace period: left to the stream"
    );

    let report = service.sweep(0, 100).await.unwrap();
    assert_eq!(
        (report.found, report.applied, report.failed),
        (3, 3, 0),
        "{report:?}"
    );
    assert_eq!(balance(&stack, "c-1").await, (13, 2));
    assert_eq!(balance(&stack, "c-2").await, (25, 1));
    let (_, events) = orders_and_events(&stack).await;
    for e in &events {
        assert_eq!(s(e, schema::STATUS), Some(schema::STATUS_PROCESSED));
        assert!(n(e, schema::EXPIRES_AT).is_some());
    }

    let again = service.sweep(0, 100).await.unwrap();
    assert_eq!(again.found, 0, "processed events leave the pending index");

    // When the stream does deliver them later, they are duplicates.
    let mut trigger = stack.trigger(in_process(stack.service(), 4)).unwrap();
    trigger.drain().await.unwrap();
    assert_eq!(balance(&stack, "c-1").await, (13, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_racing_the_consumer_applies_each_event_once() {
    let stack = stack().await;
    for i in 0..40 {
        place(&stack, &format!("c-{}", i % 7), &[("A", 1, 100 + i)]).await;
    }
    let mut expected = std::collections::HashMap::<String, (i64, usize)>::new();
    for i in 0..40 {
        let e = expected.entry(format!("c-{}", i % 7)).or_default();
        e.0 += (100 + i) / 100;
        e.1 += 1;
    }
    let service = stack.service();
    let mut trigger = stack.trigger(in_process(stack.service(), 4)).unwrap();
    trigger.source.batch_size = 5;
    let (sweeps, drained) = tokio::join!(
        async {
            let mut reports = Vec::new();
            for _ in 0..3 {
                reports.push(service.sweep(0, 100).await.unwrap());
            }
            reports
        },
        trigger.drain()
    );
    drained.unwrap();
    assert!(sweeps.iter().all(|r| r.failed == 0), "{sweeps:?}");
    for (customer, (points, entries)) in expected {
        assert_eq!(
            balance(&stack, &customer).await,
            (points, entries),
            "{customer}"
        );
    }
    assert_eq!(
        service.sweep(0, 100).await.unwrap().found,
        0,
        "nothing left pending"
    );
}

/// Outbox events that can never be applied (an unknown schema version), older than anything else.
fn stuck_events(count: usize, shard: Option<u32>) -> Vec<Item> {
    let long_ago = Timestamp::now().plus_seconds(-86_400);
    let mut items = Vec::new();
    let mut n = 0;
    while items.len() < count {
        n += 1;
        let event_id = format!("stuck-{n:05}");
        if shard.is_some_and(|shard| {
            schema::orders::pending_pk(&event_id) != schema::orders::pending_pk_for_shard(shard)
        }) {
            continue;
        }
        let mut item = outbox_event("c-stuck", &event_id, long_ago);
        item.insert("schema_version".into(), AttributeValue::N("99".into()));
        items.push(item);
    }
    items
}

#[tokio::test]
async fn stuck_events_are_parked_and_cannot_starve_the_events_behind_them() {
    let stack = stack().await;
    let stuck = 300;
    put_items(&stack, &stack.tables.orders, stuck_events(stuck, None)).await;
    place(&stack, "c-1", &[("A", 1, 500)]).await;

    // 80 events a run, 10 per shard: the old sweeper re-read the same 80 stuck events forever.
    let limit = 80;
    let mut runs = Vec::new();
    while balance(&stack, "c-1").await.0 == 0 {
        assert!(
            runs.len() < stuck.div_ceil(limit) + 2,
            "the good event starved: {runs:?}"
        );
        let report = stack.service().sweep(0, limit).await.unwrap();
        runs.push((report.found, report.parked, report.applied));
    }
    assert_eq!(balance(&stack, "c-1").await, (5, 1));
    let (_, events) = orders_and_events(&stack).await;
    let parked: Vec<&Item> = events
        .iter()
        .filter(|e| s(e, schema::STATUS) == Some(schema::STATUS_PARKED))
        .collect();
    let sweeper_parked: usize = runs.iter().map(|(_, parked, _)| parked).sum();
    assert_eq!(sweeper_parked, parked.len(), "every park is counted");
    assert!(parked.len() <= stuck);
    for item in &parked {
        assert!(
            s(item, schema::PARKED_REASON).is_some_and(|r| r.contains("unknown schema version")),
            "the reason is on the item: {item:?}"
        );
        assert_eq!(s(item, schema::PENDING_PK), Some(schema::orders::PARKED_PK));
    }
    // The rest of the stuck events are parked by the next runs, and then nothing is left.
    while stack.service().sweep(0, limit).await.unwrap().found > 0 {}
    let (_, events) = orders_and_events(&stack).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| s(e, schema::STATUS) == Some(schema::STATUS_PARKED))
            .count(),
        stuck
    );
}

#[tokio::test]
async fn every_run_makes_progress_on_every_shard() {
    let stack = stack().await;
    // Every stuck event in shard 0, which the old sweeper walked first with the whole limit.
    put_items(&stack, &stack.tables.orders, stuck_events(200, Some(0))).await;
    let mut good = None;
    for i in 0.. {
        let r = place(&stack, &format!("c-{i}"), &[("A", 1, 500)]).await;
        let (_, events) = orders_and_events(&stack).await;
        let order_id = r.json["order_id"].as_str().unwrap();
        let event = events
            .iter()
            .find(|e| s(e, "aggregate_id") == Some(order_id))
            .unwrap();
        if s(event, schema::PENDING_PK)
            == Some(schema::orders::pending_pk_for_shard(schema::PENDING_SHARDS - 1).as_str())
        {
            good = Some(format!("c-{i}"));
            break;
        }
    }
    let customer = good.unwrap();
    let report = stack.service().sweep(0, 80).await.unwrap();
    assert_eq!(balance(&stack, &customer).await.0, 5, "{report:?}");
    assert_eq!(
        report.parked, 10,
        "shard 0 got its share, not the whole run"
    );
}

#[tokio::test]
async fn a_parked_event_is_redriven_by_the_operator_after_the_fix() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 500)]).await;
    let r = place(&stack, "c-2", &[("A", 1, 700)]).await;
    // Corrupt c-2's pending event in place, as a bad deploy of a writer might.
    let order_id = r.json["order_id"].as_str().unwrap();
    let (_, events) = orders_and_events(&stack).await;
    let event = events
        .iter()
        .find(|e| s(e, "aggregate_id") == Some(order_id))
        .unwrap()
        .clone();
    let set_version = |version: &'static str| {
        stack
            .dynamo
            .client
            .update_item()
            .table_name(&stack.tables.orders)
            .key(schema::PK, event[schema::PK].clone())
            .key(schema::SK, event[schema::SK].clone())
            .update_expression("SET schema_version = :v")
            .expression_attribute_values(":v", AttributeValue::N(version.into()))
            .send()
    };
    set_version("7").await.unwrap();

    let report = stack.service().sweep(0, 100).await.unwrap();
    let event_id = s(&event, "event_id").unwrap().to_owned();
    assert_eq!(
        (report.found, report.applied, report.parked, report.failed),
        (2, 1, 1, 0),
        "{report:?}"
    );
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].event, event_id, "named by its id");
    assert!(report.problems[0]
        .reason
        .contains("unknown schema version Some(7)"));
    assert_eq!(balance(&stack, "c-2").await, (0, 0));
    let stored = stack.orders.parked_events(10).await.unwrap();
    assert_eq!(stored.len(), 1, "visible to the operator");
    assert_eq!(stored[0].event_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(
        stack.service().sweep(0, 100).await.unwrap().found,
        0,
        "a parked event is not re-read by every run"
    );

    // The fix lands (here: the item is repaired), and the operator redrives what was parked.
    set_version("1").await.unwrap();
    let service = stack.service();
    let redrive = outbox::handlers::sweeper::handle(
        &service,
        0,
        100,
        lambda_runtime::LambdaEvent::new(
            serde_json::json!({"action": "redrive-parked"}),
            lambda_runtime::Context::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (redrive.found, redrive.applied, redrive.parked),
        (1, 1, 0),
        "{redrive:?}"
    );
    assert_eq!(balance(&stack, "c-2").await, (7, 1));
    assert!(stack.orders.parked_events(10).await.unwrap().is_empty());
    let (_, events) = orders_and_events(&stack).await;
    let done = events
        .iter()
        .find(|e| s(e, "event_id") == Some(event_id.as_str()))
        .unwrap();
    assert_eq!(s(done, schema::STATUS), Some(schema::STATUS_PROCESSED));
    assert!(done.contains_key(schema::EXPIRES_AT) && !done.contains_key(schema::PARKED_REASON));
}

#[tokio::test]
async fn an_undecodable_pending_event_is_named_by_its_id_or_its_key() {
    let stack = stack().await;
    let long_ago = Timestamp::now().plus_seconds(-3_600);
    // Passes the header check, but its payload is not an order.
    let mut garbled = outbox_event("c-1", "garbled-1", long_ago);
    garbled.insert("payload".into(), AttributeValue::S("not a map".into()));
    // Not even an event id.
    let mut anonymous = outbox_event("c-1", "anonymous-1", long_ago);
    anonymous.remove("event_id");
    let anonymous_key = format!(
        "item {}/{}",
        s(&anonymous, schema::PK).unwrap(),
        s(&anonymous, schema::SK).unwrap()
    );
    put_items(&stack, &stack.tables.orders, vec![garbled, anonymous]).await;

    let report = stack.service().sweep(0, 100).await.unwrap();
    assert_eq!((report.found, report.parked), (2, 2), "{report:?}");
    let mut named: Vec<(String, String)> = report
        .problems
        .iter()
        .map(|p| (p.event.clone(), p.reason.clone()))
        .collect();
    named.sort();
    assert_eq!(named[0].0, "garbled-1");
    assert!(
        named[0].1.contains("undecodable envelope garbled-1"),
        "{}",
        named[0].1
    );
    assert_eq!(named[1].0, anonymous_key);
    assert!(!named[1].1.is_empty());
    let parked = stack.orders.parked_events(10).await.unwrap();
    assert!(parked
        .iter()
        .all(|p| p.parked_reason.as_deref().is_some_and(|r| !r.is_empty())));
}
