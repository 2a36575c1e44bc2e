//! `OrderPlaced` evolves: the order-writer now writes version 2 (`amount_cents`, `channel`), and
//! version 1 events written before the change (`total_cents`) are still in the outbox. The
//! rewards consumer upcasts them: each is credited once, with the points its own data say,
//! whether the stream delivers it (twice), the sweeper finds it pending, or an operator redrives
//! it after it was parked. On the embedded DynamoDB, and on the engine's in-memory store. The
//! relay publishes it as it was written.

use dynamodb_outbox::dynamodb::Outbox;
use dynamodb_outbox::memory::{MemoryOutbox, MemoryStore};
use dynamodb_outbox::relay::{Limits, Message, Relay, Sent, Target};
use dynamodb_outbox::testing::{schema, Header, Inspect, StoreOps};
use dynamodb_outbox::{BoxError, Envelope, Event, Processor, Source};
use order_service::domain::events::{
    relayed_routes, routes, takes_order_placed, AGGREGATE_ORDER, ORDER_PLACED, ORDER_RELAY,
    SCHEMA_VERSION_V1,
};
use order_service::domain::order::points_for;
use outbox_tests::*;
use rewards_service::consumer::{RewardsConsumer, NAME as REWARDS};
use rewards_service::schema as rewards;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// `OrderPlaced` as the order-writer wrote it before version 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlacedV1 {
    order_id: String,
    customer_id: String,
    currency: String,
    total_cents: i64,
    points: i64,
}

impl Event for OrderPlacedV1 {
    const EVENT_TYPE: &'static str = ORDER_PLACED;
    const SCHEMA_VERSION: u32 = SCHEMA_VERSION_V1;
    const AGGREGATE_TYPE: &'static str = AGGREGATE_ORDER;
    fn aggregate_id(&self) -> String {
        self.order_id.clone()
    }
}

fn v1(customer: &str, order_id: &str, total_cents: i64) -> Envelope<OrderPlacedV1> {
    Envelope::new(OrderPlacedV1 {
        order_id: order_id.to_owned(),
        customer_id: customer.to_owned(),
        currency: "USD".to_owned(),
        total_cents,
        points: points_for(total_cents),
    })
    .with_ordering_key(customer)
}

/// Writes `event` through the order service's outbox, as the order-writer did before v2.
async fn write_v1(stack: &Stack, event: &Envelope<OrderPlacedV1>) {
    Outbox::new(stack.dynamo.client.clone(), &stack.tables.orders, routes())
        .transaction()
        .event(event)
        .unwrap()
        .commit()
        .await
        .unwrap();
}

/// The points of `order_id`'s line in `customer`'s ledger, if it has one.
async fn ledger_points(stack: &Stack, customer: &str, order_id: &str) -> Option<i64> {
    let pk = rewards::customer_pk(customer);
    scan(stack, &stack.tables.rewards)
        .await
        .into_iter()
        .find(|i| {
            s(i, schema::PK) == Some(pk.as_str())
                && s(i, schema::SK).is_some_and(|k| k.starts_with(rewards::LEDGER_SK_PREFIX))
                && s(i, "order_id") == Some(order_id)
        })
        .and_then(|i| n(&i, rewards::POINTS))
}

#[tokio::test]
async fn a_v1_event_delivered_twice_after_the_change_is_credited_once_as_its_data_say() {
    let stack = stack().await;
    write_v1(&stack, &v1("c-1", "order-v1", 1_250)).await;
    let placed = place(&stack, "c-1", &[("A", 1, 500)]).await;
    let (_, events) = orders_and_events(&stack).await;
    let mut versions: Vec<i64> = events
        .iter()
        .filter_map(|e| n(e, "schema_version"))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2], "one event of each version in the outbox");

    let batch = outbox_batch(&stack).await;
    let service = stack.service();
    let first = service.process_stream(&batch).await;
    assert_counts!(first, [applied = 2, skipped = 0, failures = 0]);
    assert_eq!(balance(&stack, "c-1").await, (12 + 5, 2));
    assert_eq!(ledger_points(&stack, "c-1", "order-v1").await, Some(12));
    let order_id = placed.json["order_id"].as_str().unwrap();
    assert_eq!(ledger_points(&stack, "c-1", order_id).await, Some(5));

    let again = service.process_stream(&batch).await;
    assert_counts!(again, [applied = 0, duplicates = 2]);
    assert_eq!(balance(&stack, "c-1").await, (17, 2), "credited once");
}

#[tokio::test]
async fn a_v1_event_left_pending_is_swept_after_the_change_once() {
    let stack = stack().await;
    write_v1(&stack, &v1("c-1", "order-v1", 4_200)).await;
    // The stream's records expired before any consumer ran: only the sweeper finds it.
    let swept = sweep_with(&stack, json!({"source": "aws.scheduler"})).await;
    assert_counts!(swept, [found = 1, applied = 1]);
    assert_eq!(balance(&stack, "c-1").await, (42, 1));
    assert_eq!(ledger_points(&stack, "c-1", "order-v1").await, Some(42));

    // The stream delivers it late: a duplicate.
    let late = stack
        .service()
        .process_stream(&outbox_batch(&stack).await)
        .await;
    assert_counts!(late, [applied = 0, duplicates = 1]);
    assert_eq!(balance(&stack, "c-1").await, (42, 1));
}

#[tokio::test]
async fn a_v1_event_parked_and_redriven_after_the_change_is_credited_once() {
    let stack = stack().await;
    let (client, table) = (&stack.dynamo.client, &stack.tables.rewards);
    balance_near_limit(client, table, "c-1").await;
    write_v1(&stack, &v1("c-1", "order-v1", 700)).await;
    let batch = outbox_batch(&stack).await;
    let service = stack.service();
    assert_eq!(service.process_stream(&batch).await.parked, 1);
    let parked = service.store().parked(REWARDS, 10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        Header::peek(&parked[0].event).schema_version,
        Some(1),
        "parked as it was written, upcast again on every redrive"
    );

    // The operator fixes the balance and redrives.
    set_balance(client, table, "c-1", 0).await;
    let redriven = sweep_with(&stack, json!({"action": "redrive-parked"})).await;
    assert_eq!(redriven.applied, 1, "{redriven:?}");
    assert_eq!(balance(&stack, "c-1").await, (7, 1));
    assert_eq!(ledger_points(&stack, "c-1", "order-v1").await, Some(7));

    let again = sweep_with(&stack, json!({"action": "redrive-parked"})).await;
    assert_eq!(again.applied, 0, "{again:?}");
    let redelivered = service.process_stream(&batch).await;
    assert_eq!(redelivered.applied, 0, "{redelivered:?}");
    assert_eq!(balance(&stack, "c-1").await, (7, 1), "credited once");
}

#[tokio::test]
async fn in_memory_a_v1_event_is_credited_once_as_its_data_say() {
    let table = "rewards";
    let store = MemoryStore::new(table);
    let mut outbox = MemoryOutbox::new(routes());
    let old = outbox
        .write(&v1("c-1", "order-v1", 990), &store)
        .expect("a v1 event is written");
    let processor = Processor::new(
        RewardsConsumer::new(table),
        store.clone(),
        Source::table("orders").unwrap(),
    );
    let first = processor.process_items(vec![old.clone()]).await;
    assert_eq!(first.applied, 1, "{first:?}");
    let pk = rewards::customer_pk("c-1");
    let points = || store.number(table, &pk, rewards::BALANCE_SK, rewards::POINTS);
    assert_eq!(points().await.unwrap(), 9);
    let again = processor.process_items(vec![old]).await;
    assert_counts!(again, [applied = 0, duplicates = 1]);
    assert_eq!(points().await.unwrap(), 9, "credited once");
}

#[tokio::test]
async fn a_v1_event_without_its_total_is_parked_with_the_upcasters_reason() {
    let table = "rewards";
    let store = MemoryStore::new(table);
    let mut outbox = MemoryOutbox::new(routes());
    let mut broken = v1("c-1", "order-v1", 990);
    broken.payload.total_cents = 0;
    let mut item = outbox.write(&broken, &store).unwrap();
    if let Some(serde_dynamo::AttributeValue::M(payload)) = item.get_mut(schema::PAYLOAD) {
        payload.remove("total_cents");
    }
    let processor = Processor::new(
        RewardsConsumer::new(table),
        store.clone(),
        Source::table("orders").unwrap(),
    );
    assert_eq!(processor.process_items(vec![item]).await.parked, 1);
    let parked = store.parked(REWARDS, 10).await.unwrap();
    assert!(
        parked[0].reason.contains(
            "upcasting OrderPlaced v1 to v2 failed: an OrderPlaced v1 payload carries total_cents"
        ),
        "{}",
        parked[0].reason
    );
}

/// A broker that keeps what it is sent.
#[derive(Clone, Default)]
struct Kept(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Target for Kept {
    fn destination(&self) -> String {
        "a test bus".to_owned()
    }
    fn limits(&self) -> Limits {
        Limits {
            entries_per_call: 10,
            bytes_per_message: 262_144,
            bytes_per_call: 262_144,
        }
    }
    fn size(&self, message: &Message) -> usize {
        message.body.len()
    }
    async fn send(&self, messages: &[Message]) -> Result<Vec<Sent>, BoxError> {
        let mut kept = self.0.lock().unwrap();
        kept.extend(messages.iter().map(|m| m.body.clone()));
        Ok(vec![Sent::Published; messages.len()])
    }
}

#[tokio::test]
async fn the_relay_publishes_a_v1_event_as_it_was_written() {
    let store = MemoryStore::new("orders");
    let mut outbox = MemoryOutbox::new(relayed_routes());
    let old = outbox.write(&v1("c-1", "order-v1", 990), &store).unwrap();
    let kept = Kept::default();
    let relay = Relay::new(ORDER_RELAY, takes_order_placed(), kept.clone());
    let processor = Processor::new(relay, store, Source::table("orders").unwrap());
    let outcome = processor.process_items(vec![old]).await;
    assert_eq!(outcome.applied, 1, "{outcome:?}");
    let bodies = kept.0.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let published: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(published["schema_version"], 1, "{published}");
    assert_eq!(published["payload"]["total_cents"], 990, "{published}");
    assert!(published["payload"].get("amount_cents").is_none());
}
