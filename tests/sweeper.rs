//! The outbox sweeper: events the stream never delivered are still applied, exactly once.

use aws_sdk_dynamodb::types::AttributeValue;
use devkit::stack::in_process;
use outbox::schema;
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

#[tokio::test]
async fn a_pending_event_that_cannot_be_applied_is_reported_not_hidden() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 500)]).await;
    let r = place(&stack, "c-2", &[("A", 1, 700)]).await;
    // Corrupt c-2's pending event in place, as a bad deploy of a writer might.
    let order_id = r.json["order_id"].as_str().unwrap();
    let (_, events) = orders_and_events(&stack).await;
    let event = events
        .iter()
        .find(|e| s(e, "aggregate_id") == Some(order_id))
        .unwrap();
    stack
        .dynamo
        .client
        .update_item()
        .table_name(&stack.tables.orders)
        .key(schema::PK, event[schema::PK].clone())
        .key(schema::SK, event[schema::SK].clone())
        .update_expression("SET schema_version = :v")
        .expression_attribute_values(":v", AttributeValue::N("7".into()))
        .send()
        .await
        .unwrap();

    let report = stack.service().sweep(0, 100).await.unwrap();
    assert_eq!(
        (report.found, report.applied, report.failed),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        report.failed_event_ids,
        vec![s(event, "event_id").unwrap().to_owned()]
    );
    assert_eq!(balance(&stack, "c-1").await, (5, 1));
    assert_eq!(balance(&stack, "c-2").await, (0, 0));
    let (_, events) = orders_and_events(&stack).await;
    let still = events
        .iter()
        .find(|e| s(e, "aggregate_id") == Some(order_id))
        .unwrap();
    assert_eq!(
        s(still, schema::STATUS),
        Some(schema::STATUS_PENDING),
        "kept for a fixed consumer"
    );
}
