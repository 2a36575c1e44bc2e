//! The outbox sweeper: events the stream never delivered are still applied, exactly once, and
//! events that can never be applied are parked where an operator can redrive them.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use devkit::stack::in_process;
use dynamodb_outbox::testing::StoreOps;
use dynamodb_outbox::testing::{schema, Header};
use lambda_runtime::{Context, LambdaEvent};
use outbox_tests::*;
use rewards_service::consumer::NAME as REWARDS;
use rewards_service::handlers::sweeper;
use rewards_service::service::SweepReport;
use serde_json::json;
use service_runtime::Timestamp;

/// One scheduled run of the sweeper function, with `grace_seconds` and `limit`.
async fn sweep(stack: &Stack, grace_seconds: i64, limit: usize) -> SweepReport {
    let scheduled = LambdaEvent::new(json!({"source": "aws.scheduler"}), Context::default());
    sweeper::handle(&stack.sweeper(grace_seconds, limit), scheduled)
        .await
        .unwrap()
}

/// The operator's redrive of what was parked.
async fn redrive(stack: &Stack) -> SweepReport {
    sweep_with(stack, json!({"action": "redrive-parked"})).await
}

/// The rewards consumer's parked events: event id (or item key) → reason.
async fn parked(stack: &Stack) -> HashMap<String, String> {
    stack
        .service()
        .store()
        .parked(REWARDS, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (Header::peek(&p.event).name(), p.reason))
        .collect()
}

#[tokio::test]
async fn events_the_stream_never_delivered_are_applied_by_the_sweeper() {
    let stack = stack().await;
    for (customer, cents) in [("c-1", 1_000), ("c-2", 2_500), ("c-1", 300)] {
        place(&stack, customer, &[("A", 1, cents)]).await;
    }
    // No consumer ran: the stream's records might as well have expired.
    let waiting = sweep(&stack, 3_600, 100).await;
    assert_eq!(
        waiting.found, 0,
        "younger than the grace period: left to the stream"
    );

    let report = sweep(&stack, 0, 100).await;
    assert_counts!(report, [found = 3, applied = 3, failed = 0]);
    assert_eq!(balance(&stack, "c-1").await, (13, 2));
    assert_eq!(balance(&stack, "c-2").await, (25, 1));
    let (_, events) = orders_and_events(&stack).await;
    for e in &events {
        assert_eq!(s(e, schema::STATUS), Some(schema::STATUS_PROCESSED));
        assert!(n(e, schema::EXPIRES_AT).is_some());
    }

    let again = sweep(&stack, 0, 100).await;
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
    let mut expected = HashMap::<String, (i64, usize)>::new();
    for i in 0..40 {
        let e = expected.entry(format!("c-{}", i % 7)).or_default();
        e.0 += (100 + i) / 100;
        e.1 += 1;
    }
    let mut trigger = stack.trigger(in_process(stack.service(), 4)).unwrap();
    trigger.source.batch_size = 5;
    let (sweeps, drained) = tokio::join!(
        async {
            let mut reports = Vec::new();
            for _ in 0..3 {
                reports.push(sweep(&stack, 0, 100).await);
            }
            reports
        },
        trigger.drain()
    );
    drained.unwrap();
    // A sweep may find an event whose predecessor the consumer is applying at that moment: it
    // waits (nothing written) and the next run or the stream applies it.
    assert!(sweeps.iter().all(|r| r.parked == 0), "{sweeps:?}");
    for _ in 0..3 {
        if sweep(&stack, 0, 100).await.found == 0 {
            break;
        }
    }
    for (customer, (points, entries)) in expected {
        assert_eq!(
            balance(&stack, &customer).await,
            (points, entries),
            "{customer}"
        );
    }
    assert_eq!(sweep(&stack, 0, 100).await.found, 0, "nothing left pending");
}

/// Outbox events that can never be applied (their points do not follow from their total), older
/// than anything else, each the first event of its own customer; with `shard`, only customers
/// whose events land in that shard of the pending index.
fn stuck_events(count: usize, shard: Option<u32>) -> Vec<Item> {
    let long_ago = Timestamp::now().plus_seconds(-86_400);
    let mut items = Vec::new();
    let mut n = 0;
    while items.len() < count {
        n += 1;
        let customer = format!("stuck-{n:05}");
        if shard.is_some_and(|shard| {
            schema::pending_pk(&customer) != schema::pending_pk_for_shard(shard)
        }) {
            continue;
        }
        items.push(poison_outbox_event(
            &customer,
            &format!("stuck-event-{n:05}"),
            long_ago,
            1,
        ));
    }
    items
}

#[tokio::test]
async fn stuck_events_are_parked_and_cannot_starve_the_events_behind_them() {
    let stack = stack().await;
    let stuck = 300;
    put_items(&stack, &stack.tables.orders, stuck_events(stuck, None)).await;
    place(&stack, "c-1", &[("A", 1, 500)]).await;

    // 80 events a run, 10 per shard: whatever is stuck in front of it, the good event's shard
    // reaches it within a few runs.
    let limit = 80;
    let mut runs = Vec::new();
    while balance(&stack, "c-1").await.0 == 0 {
        assert!(
            runs.len() < stuck.div_ceil(limit) + 2,
            "the good event starved: {runs:?}"
        );
        let report = sweep(&stack, 0, limit).await;
        runs.push((report.found, report.parked, report.applied));
    }
    assert_eq!(balance(&stack, "c-1").await, (5, 1));
    let swept_parked: usize = runs.iter().map(|(_, parked, _)| parked).sum();
    let parked = parked(&stack).await;
    assert_eq!(swept_parked, parked.len(), "every park is counted");
    assert!(parked
        .values()
        .all(|reason| reason.contains("do not match a total")));
    // The rest of the stuck events are parked by the next runs, and then nothing is left.
    while sweep(&stack, 0, limit).await.found > 0 {}
    assert_eq!(parked_len(&stack).await, stuck);
}

async fn parked_len(stack: &Stack) -> usize {
    parked(stack).await.len()
}

#[tokio::test]
async fn every_run_makes_progress_on_every_shard() {
    let stack = stack().await;
    // Every stuck event in shard 0: a sweeper walking the shards in turn with its whole limit
    // would never get past it.
    put_items(&stack, &stack.tables.orders, stuck_events(200, Some(0))).await;
    let customer = (0..)
        .map(|i| format!("c-{i}"))
        .find(|c| schema::pending_pk(c) == schema::pending_pk_for_shard(schema::PENDING_SHARDS - 1))
        .unwrap();
    place(&stack, &customer, &[("A", 1, 500)]).await;
    let report = sweep(&stack, 0, 80).await;
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
    let (client, table) = (&stack.dynamo.client, &stack.tables.rewards);
    balance_near_limit(client, table, "c-2").await;
    place(&stack, "c-2", &[("A", 1, 700)]).await;

    let report = sweep(&stack, 0, 100).await;
    assert_counts!(report, [found = 2, applied = 1, parked = 1, failed = 0]);
    let parked_now = parked(&stack).await;
    assert_eq!(
        parked_now.len(),
        1,
        "visible to the operator: {parked_now:?}"
    );
    let (event_id, reason) = parked_now.iter().next().unwrap();
    assert!(
        reason.contains("add of 7 to points of")
            && reason.contains(&format!(
                "(the result would pass {})",
                rewards_service::domain::MAX_BALANCE
            )),
        "the reason names the refused write: {reason}"
    );
    assert_eq!(
        sweep(&stack, 0, 100).await.found,
        0,
        "a parked event is not re-read by every run"
    );

    // A redrive before the fix parks it again, with one more attempt.
    let early = redrive(&stack).await;
    assert_counts!(early, [found = 1, applied = 0, parked = 1]);

    // The fix lands (the balance is corrected), and the operator redrives what was parked.
    set_balance(client, table, "c-2", 0).await;
    let fixed = redrive(&stack).await;
    assert_counts!(fixed, [found = 1, applied = 1, parked = 0]);
    assert_eq!(balance(&stack, "c-2").await, (7, 1));
    assert!(parked(&stack).await.is_empty());
    let again = redrive(&stack).await;
    assert_counts!(again, [found = 0, applied = 0], "applied once");
    assert_eq!(balance(&stack, "c-2").await, (7, 1));
    let (_, events) = orders_and_events(&stack).await;
    let done = events
        .iter()
        .find(|e| s(e, "event_id") == Some(event_id.as_str()))
        .unwrap();
    assert_eq!(s(done, schema::STATUS), Some(schema::STATUS_PROCESSED));
    assert!(done.contains_key(schema::EXPIRES_AT));
}

#[tokio::test]
async fn an_undecodable_pending_event_is_parked_and_named_by_its_id_or_its_key() {
    let stack = stack().await;
    let long_ago = Timestamp::now().plus_seconds(-3_600);
    // Its payload is not an order.
    let mut garbled = outbox_event("c-1", "garbled-1", long_ago, 1);
    garbled.insert("payload".into(), AttributeValue::S("not a map".into()));
    // Not even an event id.
    let mut anonymous = outbox_event("c-2", "anonymous-1", long_ago, 1);
    anonymous.remove("event_id");
    let anonymous_key = format!(
        "item {}/{}",
        s(&anonymous, schema::PK).unwrap(),
        s(&anonymous, schema::SK).unwrap()
    );
    put_items(&stack, &stack.tables.orders, vec![garbled, anonymous]).await;

    let report = sweep(&stack, 0, 100).await;
    assert_counts!(report, [found = 2, parked = 2]);
    let parked = parked(&stack).await;
    assert!(
        parked["garbled-1"].contains("undecodable envelope garbled-1"),
        "{parked:?}"
    );
    assert!(!parked[&anonymous_key].is_empty(), "{parked:?}");
}
