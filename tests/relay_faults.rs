//! Relays when the broker fails: an entry moto's SNS refuses in the middle of a batch call, an
//! event over the size limit, throttled calls, an entry failed alone and a lost publish response
//! injected by the fault proxy in front of moto's SQS. Whatever happens: nothing is lost, each
//! key's order is kept, a message appears twice only with the same event id, and the outbox item
//! waits for the relay until it is done.
//!
//! Without moto's server (`make tools`) every test here fails and says which; with
//! `OUTBOX_SKIP_MOTO=<reason>` they print `SKIPPED` with the reason instead.

#[path = "relay_rig.rs"]
mod rig;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_sqs::config::retry::RetryConfig;
use devkit::proxy::{Fault, FaultPlan, FaultProxy};
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::relay::Relay;
use dynamodb_outbox::relay::{EventBridgeTarget, SnsTarget, SqsTarget};
use dynamodb_outbox::testing::StoreOps;
use dynamodb_outbox::Processor;
use outbox_tests::assert_counts;
use rig::{drain, envelope, in_order, numbers_by_key, Received, Rig, RELAY};

/// A message moto's SNS refuses (it takes 256 KiB) but the relay lets through when its limit
/// is raised: a real failed entry among accepted ones.
const OVER_256_KIB: usize = 300_000;

#[tokio::test]
async fn a_failed_entry_holds_back_its_keys_later_events_while_other_keys_go_on() {
    let Some((rig, url)) = Rig::with_queue("partial_failure", "rewards").await else {
        return;
    };
    let sns = rig.moto.sns().await;
    let topic = rig.topic_into("orders", "rewards").await;
    let a1 = rig.write("a", 1, 16).await;
    rig.write("b", 1, 16).await;
    let a2 = rig.write("a", 2, OVER_256_KIB).await;
    rig.write("b", 2, 16).await;
    let a3 = rig.write("a", 3, 16).await;
    rig.write("b", 3, 16).await;
    let raised = SnsTarget::new(sns.clone(), &topic).max_message_bytes(1 << 20);
    let relay = rig.processor(raised);

    let outcome = relay.process_items(rig.outbox_items().await).await;
    let counts = (outcome.applied, outcome.failed, outcome.held_back);
    assert_eq!(counts, (4, 1, 1), "a2 failed, a3 held back: {outcome:?}");
    assert_eq!(outcome.failures.len(), 2, "both reported for retry");
    let published = numbers_by_key(&drain(&rig.moto, &url).await);
    assert_eq!(published["a"], [1], "nothing of a after its failed entry");
    assert_eq!(published["b"], [1, 2, 3], "the other key went on");
    let waiting = rig.waiting().await;
    for event in [&a2, &a3] {
        let state = &waiting[&event.event_id];
        assert!(
            state.pending && state.consumers.contains(RELAY),
            "{state:?}"
        );
    }
    assert!(!waiting[&a1.event_id].pending);

    // Retried as it is, the entry fails again and nothing published is published again.
    let again = relay.process_items(rig.outbox_items().await).await;
    assert_counts!(again, [duplicates = 4, failed = 1, held_back = 1]);
    assert!(drain(&rig.moto, &url).await.is_empty());

    // With SNS's own limit the event is parked with the reason, and its key goes on.
    let relay = rig.processor(SnsTarget::new(sns, &topic));
    let fixed = relay.process_items(rig.outbox_items().await).await;
    assert_counts!(fixed, [parked = 1, applied = 1]);
    assert_eq!(numbers_by_key(&drain(&rig.moto, &url).await)["a"], [3]);
    let parked = rig.store.parked(RELAY, 10).await.expect("parked events");
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0].reason.contains("too large to publish") && parked[0].reason.contains(&topic),
        "{}",
        parked[0].reason
    );
    assert_eq!(
        rig.done().await.len(),
        6,
        "every item done: published or parked"
    );
}

#[tokio::test]
async fn an_event_over_eventbridges_limit_is_parked_with_its_reason_and_its_key_goes_on() {
    let Some(rig) = Rig::start("oversized", &[RELAY]).await else {
        return;
    };
    let events = rig.moto.eventbridge().await;
    rig.write("a", 1, 16).await;
    let big = rig.write("a", 2, OVER_256_KIB).await;
    rig.write("a", 3, 16).await;
    let relay = rig.processor(EventBridgeTarget::new(events, "default", "orders"));

    let outcome = relay.process_items(rig.outbox_items().await).await;
    assert_counts!(outcome, [applied = 2, parked = 1]);
    let parked = rig.store.parked(RELAY, 10).await.expect("parked events");
    assert_eq!(parked.len(), 1);
    let reason = &parked[0].reason;
    assert!(
        reason.contains("over the 262144 bytes EventBridge bus default takes"),
        "{reason}"
    );
    assert_eq!(
        rig::text(&parked[0].event, "event_id"),
        Some(big.event_id.as_str()),
        "the parked record keeps the event for a redrive"
    );
    assert_eq!(rig.done().await.len(), 3);
}

/// The keys of the fault tests' events.
const KEYS: [&str; 3] = ["a", "b", "c"];

/// moto and an outbox holding `count` events of each of [`KEYS`] for the relay [`RELAY`], and the
/// FIFO queue `queue` it publishes to: the rig and the queue's URL (`None`: skipped).
async fn backlog(test: &str, queue: &str, count: u32) -> Option<(Rig, String)> {
    let (rig, url) = Rig::with_queue(test, queue).await?;
    rig.write_many(&KEYS, count).await;
    Some((rig, url))
}

/// A relay named `name` to the queue `url`, whose SendMessageBatch calls go through a fault
/// proxy injecting `plan`, each retried once after a few milliseconds; and the proxy.
async fn through_faults(
    rig: &Rig,
    name: &str,
    url: &str,
    plan: FaultPlan,
) -> (FaultProxy, Processor<Relay<SqsTarget>, DynamoConsumerStore>) {
    let plan = FaultPlan {
        operations: vec!["SendMessageBatch".to_owned()],
        ..plan
    };
    let proxy = FaultProxy::start(&rig.moto.endpoint, plan)
        .await
        .expect("proxy");
    let retries = RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(5));
    let config = aws_sdk_sqs::config::Builder::from(&rig.moto.sdk_config().await)
        .endpoint_url(&proxy.endpoint)
        .retry_config(retries)
        .build();
    let target = SqsTarget::new(aws_sdk_sqs::Client::from_conf(config), url);
    (proxy, rig.processor_named(name, target))
}

#[tokio::test]
async fn throttled_calls_leave_every_event_pending_and_a_later_batch_publishes_them_in_order() {
    let Some((rig, url)) = backlog("throttling", "orders.fifo", 4).await else {
        return;
    };
    let throttled = FaultPlan {
        throttling: 1.0,
        ..FaultPlan::none()
    };
    let (proxy, relay) = through_faults(&rig, RELAY, &url, throttled).await;

    let outcome = relay.process_items(rig.outbox_items().await).await;
    assert_counts!(outcome, [applied = 0, failed = 3, held_back = 9]);
    assert!(
        proxy.stats().fault(Fault::Throttling) >= 2,
        "the SDK retried"
    );
    assert!(drain(&rig.moto, &url).await.is_empty());
    assert!(rig.waiting().await.values().all(|w| w.pending));

    proxy.set_plan(FaultPlan::none());
    let later = relay.process_items(rig.outbox_items().await).await;
    assert_eq!(later.applied, 12, "{later:?}");
    assert_eq!(
        numbers_by_key(&drain(&rig.moto, &url).await),
        in_order(&KEYS, 4)
    );
    assert_eq!(rig.done().await.len(), 12);
}

#[tokio::test]
async fn an_entry_the_broker_failed_alone_is_sent_again_in_the_same_batch_before_its_keys_next() {
    let Some((rig, url)) = backlog("entry_failed_alone", "entries.fifo", 3).await else {
        return;
    };
    let one_entry_twice = FaultPlan {
        partial_failure: 1.0,
        max_faults: Some(2),
        ..FaultPlan::none()
    };
    let (proxy, relay) = through_faults(&rig, RELAY, &url, one_entry_twice).await;

    let outcome = relay.process_items(rig.outbox_items().await).await;
    assert_eq!(proxy.stats().fault(Fault::PartialFailure), 2);
    assert_counts!(outcome, [applied = 9, failed = 0, held_back = 0]);
    assert_eq!(
        numbers_by_key(&drain(&rig.moto, &url).await),
        in_order(&KEYS, 3),
        "each key in order, each event once"
    );
    assert_eq!(rig.done().await.len(), 9);
}

#[tokio::test]
async fn a_lost_publish_response_publishes_again_under_the_same_event_id_and_loses_nothing() {
    let Some(rig) = Rig::start("lost_response", &["relay-standard", "relay-ordered-fifo"]).await
    else {
        return;
    };
    let written = rig.write_many(&KEYS, 5).await;
    for queue in ["standard", "ordered.fifo"] {
        let url = rig.queue(queue).await;
        let lose = FaultPlan {
            lose_response: 1.0,
            max_faults: Some(2),
            ..FaultPlan::none()
        };
        let name = format!("relay-{}", queue.replace('.', "-"));
        let (proxy, relay) = through_faults(&rig, &name, &url, lose).await;
        let items = rig.outbox_items().await;
        let mut rounds = 0;
        while rounds < 5 {
            rounds += 1;
            let outcome = relay.process_items(items.clone()).await;
            if outcome.failures.is_empty() {
                break;
            }
        }
        assert_eq!(proxy.stats().fault(Fault::LostResponse), 2, "{queue}");
        let received = drain(&rig.moto, &url).await;
        let ids = event_ids(&received);
        let all: BTreeSet<String> = written.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(
            ids.keys().cloned().collect::<BTreeSet<_>>(),
            all,
            "{queue}: nothing lost"
        );
        if queue.ends_with(".fifo") {
            assert!(
                ids.values().all(|n| *n == 1),
                "{queue}: the FIFO queue dropped repeats"
            );
            assert_eq!(numbers_by_key(&received), in_order(&KEYS, 5), "{queue}");
            for message in &received {
                let envelope = envelope(&message.body);
                assert_eq!(
                    message.deduplication.as_deref(),
                    envelope["event_id"].as_str()
                );
                assert_eq!(message.group.as_deref(), envelope["ordering_key"].as_str());
                assert_eq!(message.event_type.as_deref(), Some("Happened"));
            }
        } else {
            assert!(
                ids.values().any(|n| *n > 1),
                "{queue}: a lost response repeats"
            );
            assert_eq!(
                first_seen(&received),
                in_order(&KEYS, 5),
                "{queue}: order kept"
            );
        }
    }
}

/// How many times each event id arrived.
fn event_ids(received: &[Received]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for message in received {
        let id = envelope(&message.body)["event_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *ids.entry(id).or_default() += 1;
    }
    ids
}

/// Each key's event numbers in the order each first arrived: a repeat may come after a later
/// event, a later event never before an earlier one's first arrival.
fn first_seen(received: &[Received]) -> BTreeMap<String, Vec<u64>> {
    let mut by_key = numbers_by_key(received);
    for numbers in by_key.values_mut() {
        let mut seen = BTreeSet::new();
        numbers.retain(|n| seen.insert(*n));
    }
    by_key
}
