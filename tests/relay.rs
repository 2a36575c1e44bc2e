//! Relays on moto's server: the outbox published to SQS (standard and FIFO), to SNS (standard
//! and FIFO) through an SQS subscription, and to EventBridge through a rule with an SQS target;
//! per-key order across keys and batches of more than 10; the outbox item pending until the
//! relay and every other consumer are done.
//!
//! Without moto's server (`make tools`) every test here fails and says which; with
//! `OUTBOX_SKIP_MOTO=<reason>` they print `SKIPPED` with the reason instead.

#[path = "relay_rig.rs"]
mod rig;

use aws_sdk_eventbridge::types::Target as RuleTarget;
use devkit::moto::queue_arn;
use dynamodb_outbox::relay::{EventBridgeTarget, SnsTarget, SqsTarget};
use outbox_tests::assert_counts;
use rig::{drain, envelope, in_order, numbers_by_key, Rig, RELAY};

const KEYS: [&str; 3] = ["alpha", "beta", "gamma"];

#[tokio::test]
async fn sqs_fifo_gets_each_keys_events_in_order_grouped_by_key_and_deduplicated_by_event_id() {
    let Some((rig, url)) = Rig::with_queue("sqs_fifo", "orders.fifo").await else {
        return;
    };
    let events = rig.write_many(&KEYS, 12).await;
    let relay = rig.processor(SqsTarget::new(rig.moto.sqs().await, &url));

    let outcome = relay.process_items(rig.outbox_items().await).await;
    assert_eq!(outcome.applied, 36, "{outcome:?}");
    assert!(outcome.failures.is_empty(), "{outcome:?}");

    let received = drain(&rig.moto, &url).await;
    assert_eq!(numbers_by_key(&received), in_order(&KEYS, 12));
    for message in &received {
        let envelope = envelope(&message.body);
        assert_eq!(message.group.as_deref(), envelope["ordering_key"].as_str());
        assert_eq!(
            message.deduplication.as_deref(),
            envelope["event_id"].as_str()
        );
        assert_eq!(message.event_type.as_deref(), Some("Happened"));
    }
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(
        rig.done().await,
        ids.into_iter().collect(),
        "every item done"
    );

    // A redelivery of the whole batch is a duplicate: nothing is published again.
    let again = relay.process_items(rig.outbox_items().await).await;
    assert_counts!(again, [applied = 0, duplicates = 36]);
    assert!(drain(&rig.moto, &url).await.is_empty());
}

#[tokio::test]
async fn sqs_standard_gets_the_envelope_as_body_and_each_keys_events_in_publication_order() {
    let Some((rig, url)) = Rig::with_queue("sqs_standard", "orders").await else {
        return;
    };
    let keys = [
        "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12",
    ];
    let events = rig.write_many(&keys, 3).await;
    let relay = rig.processor(SqsTarget::new(rig.moto.sqs().await, &url));

    let outcome = relay.process_items(rig.outbox_items().await).await;
    assert_eq!(outcome.applied, 36, "{outcome:?}");

    let received = drain(&rig.moto, &url).await;
    // A standard queue promises no order; moto's hands messages out as they were sent, so
    // this reads the relay's own publication order.
    assert_eq!(numbers_by_key(&received), in_order(&keys, 3));
    let first = envelope(&received[0].body);
    let written = events
        .iter()
        .find(|e| e.event_id == first["event_id"].as_str().unwrap_or_default())
        .expect("a written event");
    assert_eq!(
        first,
        serde_json::to_value(written).expect("json"),
        "the envelope itself"
    );
    assert!(received
        .iter()
        .all(|m| m.deduplication.is_none() && m.group.is_none()));
}

#[tokio::test]
async fn sns_standard_and_fifo_reach_an_sqs_subscription_with_each_keys_events_in_order() {
    let relays = [relay_of("orders"), relay_of("orders.fifo")];
    let Some(rig) = Rig::start("sns", &[&relays[0], &relays[1]]).await else {
        return;
    };
    rig.write_many(&KEYS, 11).await;
    let sns = rig.moto.sns().await;
    for name in ["orders", "orders.fifo"] {
        let url = rig.queue(&format!("rewards-{name}")).await;
        let topic = rig.topic_into(name, &format!("rewards-{name}")).await;
        // Each topic its own relay, with its own route and progress.
        let relay = rig.processor_named(&relay_of(name), SnsTarget::new(sns.clone(), &topic));

        let outcome = relay.process_items(rig.outbox_items().await).await;
        assert_eq!(outcome.applied, 33, "{name}: {outcome:?}");

        let received = drain(&rig.moto, &url).await;
        assert_eq!(numbers_by_key(&received), in_order(&KEYS, 11), "{name}");
    }
}

#[tokio::test]
async fn eventbridge_puts_the_envelope_as_detail_and_a_rule_delivers_it_to_sqs_in_order() {
    let Some((rig, url)) = Rig::with_queue("eventbridge", "rewards").await else {
        return;
    };
    let events = rig.moto.eventbridge().await;
    events
        .create_event_bus()
        .name("orders-bus")
        .send()
        .await
        .expect("a bus");
    events
        .put_rule()
        .name("happened-to-rewards")
        .event_bus_name("orders-bus")
        .event_pattern(r#"{"source": ["orders"], "detail-type": ["Happened"]}"#)
        .send()
        .await
        .expect("a rule");
    let target = RuleTarget::builder()
        .id("rewards")
        .arn(queue_arn("rewards"))
        .build()
        .expect("a target");
    events
        .put_targets()
        .rule("happened-to-rewards")
        .event_bus_name("orders-bus")
        .targets(target)
        .send()
        .await
        .expect("targets");
    rig.write_many(&KEYS, 11).await;
    let relay = rig.processor(EventBridgeTarget::new(events, "orders-bus", "orders"));

    let outcome = relay.process_items(rig.outbox_items().await).await;
    assert_eq!(outcome.applied, 33, "{outcome:?}");

    let received = drain(&rig.moto, &url).await;
    assert_eq!(numbers_by_key(&received), in_order(&KEYS, 11));
    let event: serde_json::Value = serde_json::from_str(&received[0].body).expect("json");
    assert_eq!(event["source"], "orders");
    assert_eq!(event["detail-type"], "Happened");
    assert!(
        event["detail"]["event_id"].is_string(),
        "the dedupe id is in the detail"
    );
}

#[tokio::test]
async fn the_outbox_item_waits_for_every_other_consumer_after_the_relay_is_done() {
    let Some(rig) = Rig::start("other_consumers", &[RELAY, "audit"]).await else {
        return;
    };
    let url = rig.queue("orders").await;
    rig.write_many(&KEYS, 2).await;
    let before = rig.waiting().await;
    assert!(before.values().all(|w| w.pending && w.consumers.len() == 2));

    let relay = rig.processor(SqsTarget::new(rig.moto.sqs().await, &url));
    let outcome = relay.process_items(rig.outbox_items().await).await;
    assert_eq!(outcome.applied, 6, "{outcome:?}");

    for (id, waiting) in rig.waiting().await {
        assert!(waiting.pending, "{id} still pending for audit");
        assert_eq!(waiting.consumers, ["audit".to_owned()].into(), "{id}");
        assert_eq!(waiting.expires_at, None, "{id} does not expire yet");
    }
}

fn relay_of(topic: &str) -> String {
    format!("relay-{}", topic.replace('.', "-"))
}
