//! The guarantees every pattern makes, proved by the same test bodies for each: a [`Harness`]
//! places orders through the pattern's own API handler and delivers through the pattern's own
//! consumer handler, the local event source mapping with the pattern's template settings, and the
//! pattern's sweeper. Each test is generated once per pattern (`outbox::…`, `cdc::…`) and names
//! its pattern in every failure message.
//!
//! What differs between the patterns is stated as data, not hidden in the bodies:
//! [`Harness::WRITE_ORDER_ACROSS_DELIVERIES`] (the outbox applies one customer's orders in write
//! order whatever order they arrive in; CDC applies them in the order the source gives).

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use devkit::filter;
use devkit::stack::{in_process, in_process_changes, CONSUMER_FUNCTION};
use devkit::trigger::Invoke;
use devkit::{Pattern, Stack, TriggerStats};
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, PendingEvents};
use dynamodb_outbox::{
    Committed, ConsumerStore, Effect, ItemKey, Parked, Processor, Step, StoreError,
};
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use order_service::store::OrderStore;
use outbox_tests::{balance, order_body, post_order, reply, s, scan};
use rewards_service::consumer::{RewardsConsumer, NAME as REWARDS};
use rewards_service::domain::MAX_BALANCE;
use rewards_service::handlers::sweeper::{self, REDRIVE_PARKED};
use rewards_service::schema as rewards;
use rewards_service::service::SweepReport;
use serde_json::json;

/// One pattern, as the guarantees suite drives it.
trait Harness: Sized {
    const PATTERN: Pattern;
    /// Whether one customer's orders are applied in the order they were written even when the
    /// source delivers them in another order (the outbox's per-key sequence), or only in the
    /// order the source gives (CDC: DynamoDB Streams orders the changes of one item, and each
    /// order is its own item).
    const WRITE_ORDER_ACROSS_DELIVERIES: bool;

    fn stack(&self) -> &Stack;

    /// `POST /orders` through the pattern's order-writer handler; the new order's id.
    async fn place(&self, customer: &str, cents: i64) -> String;

    /// The pattern's stream-consumer handler over `processor` (a wrapper store injects faults).
    fn consumer<S: ConsumerStore + Clone + 'static>(
        &self,
        processor: Processor<RewardsConsumer, S>,
    ) -> impl Invoke;
}

struct Outbox(Stack);
struct Cdc(Stack);

impl Harness for Outbox {
    const PATTERN: Pattern = Pattern::Outbox;
    const WRITE_ORDER_ACROSS_DELIVERIES: bool = true;

    fn stack(&self) -> &Stack {
        &self.0
    }
    async fn place(&self, customer: &str, cents: i64) -> String {
        place_through(&self.0.orders, customer, cents).await
    }
    fn consumer<S: ConsumerStore + Clone + 'static>(
        &self,
        processor: Processor<RewardsConsumer, S>,
    ) -> impl Invoke {
        in_process(processor, 100)
    }
}

impl Harness for Cdc {
    const PATTERN: Pattern = Pattern::Cdc;
    const WRITE_ORDER_ACROSS_DELIVERIES: bool = false;

    fn stack(&self) -> &Stack {
        &self.0
    }
    async fn place(&self, customer: &str, cents: i64) -> String {
        place_through(&self.0.cdc_orders(), customer, cents).await
    }
    fn consumer<S: ConsumerStore + Clone + 'static>(
        &self,
        processor: Processor<RewardsConsumer, S>,
    ) -> impl Invoke {
        in_process_changes(processor, 100)
    }
}

async fn place_through<S: OrderStore>(store: &S, customer: &str, cents: i64) -> String {
    let request = post_order(&order_body(customer, &[("A-1", 1, cents)]), &[]);
    let response = order_api::handle(store, LambdaEvent::new(request, Context::default()))
        .await
        .expect("the handler answers");
    let reply = reply(response);
    assert_eq!(reply.status, 201, "{:?}", reply.json);
    reply.json["order_id"].as_str().unwrap().to_owned()
}

async fn start<H: Harness>(wrap: fn(Stack) -> H) -> H {
    let stack = Stack::start_pattern(H::PATTERN)
        .await
        .expect("local DynamoDB with the pattern's tables");
    wrap(stack)
}

/// Everything in the stream through a fresh local mapping (from the start of the stream) with
/// the pattern's template settings and its consumer handler.
async fn deliver<H: Harness>(h: &H) -> TriggerStats {
    let stack = h.stack();
    let mut trigger = stack.trigger(h.consumer(stack.service())).unwrap();
    trigger.drain().await.unwrap().clone()
}

/// The records the pattern's mapping passes to its consumer, in stream order.
async fn mapped_records<H: Harness>(h: &H) -> Vec<EventRecord> {
    let stack = h.stack();
    let patterns = stack
        .template
        .stream_source(CONSUMER_FUNCTION)
        .unwrap()
        .filter_patterns;
    stack
        .stream_records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| filter::passes(&patterns, &serde_json::to_value(r).unwrap()))
        .collect()
}

async fn invoke(invoker: &impl Invoke, records: Vec<EventRecord>) -> DynamoDbEventResponse {
    let mut event = Event::default();
    event.records = records;
    invoker
        .invoke(event)
        .await
        .expect("the handler answers the batch")
}

/// Events some consumer still has to process: outbox items, or order items with their marker.
async fn pending(stack: &Stack) -> usize {
    let far_future = service_runtime::Timestamp::now()
        .plus_seconds(3_600)
        .to_string();
    PendingEvents::new(stack.dynamo.client.clone(), &stack.tables.orders)
        .waiting_for(REWARDS, &far_future, usize::MAX)
        .await
        .unwrap()
        .len()
}

async fn sweep(stack: &Stack) -> SweepReport {
    sweeper::handle(
        &stack.sweeper(0, 100),
        LambdaEvent::new(json!({"source": "aws.scheduler"}), Context::default()),
    )
    .await
    .unwrap()
}

async fn redrive_parked(stack: &Stack) -> SweepReport {
    sweeper::handle(
        &stack.sweeper(0, 100),
        LambdaEvent::new(json!({"action": REDRIVE_PARKED}), Context::default()),
    )
    .await
    .unwrap()
}

/// The order ids of a customer's ledger lines, in the order they were applied.
async fn applied_order<H: Harness>(h: &H, customer: &str) -> Vec<String> {
    let stack = h.stack();
    let pk = rewards::customer_pk(customer);
    let mut lines: Vec<(String, String)> = scan(stack, &stack.tables.rewards)
        .await
        .iter()
        .filter(|i| s(i, rewards::PK) == Some(pk.as_str()))
        .filter(|i| s(i, rewards::SK).is_some_and(|k| k.starts_with(rewards::LEDGER_SK_PREFIX)))
        .map(|i| {
            (
                s(i, "applied_at").unwrap().to_owned(),
                s(i, "order_id").unwrap().to_owned(),
            )
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, order)| order).collect()
}

async fn set_balance(stack: &Stack, customer: &str, points: i64) {
    stack
        .dynamo
        .client
        .put_item()
        .table_name(&stack.tables.rewards)
        .item(
            rewards::PK,
            AttributeValue::S(rewards::customer_pk(customer)),
        )
        .item(rewards::SK, AttributeValue::S(rewards::BALANCE_SK.into()))
        .item(rewards::POINTS, AttributeValue::N(points.to_string()))
        .send()
        .await
        .unwrap();
}

/// Orders of two customers: (customer, cents). c-1 earns 10 + 3 + 7 = 20 points, c-2 25.
const ORDERS: [(&str, i64); 4] = [("c-1", 1_000), ("c-2", 2_500), ("c-1", 300), ("c-1", 700)];

async fn place_all<H: Harness>(h: &H) {
    for (customer, cents) in ORDERS {
        h.place(customer, cents).await;
    }
}

async fn assert_rewarded_once<H: Harness>(h: &H, when: &str) {
    let name = H::PATTERN;
    assert_eq!(
        balance(h.stack(), "c-1").await,
        (20, 3),
        "{name}: c-1 {when}"
    );
    assert_eq!(
        balance(h.stack(), "c-2").await,
        (25, 1),
        "{name}: c-2 {when}"
    );
}

async fn exactly_once_under_duplicates<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    let first = deliver(&h).await;
    assert_eq!(first.records_delivered, ORDERS.len(), "{name}: {first:?}");
    assert_rewarded_once(&h, "after one delivery").await;
    // The whole stream again, twice: Lambda's at-least-once delivery.
    for _ in 0..2 {
        let again = deliver(&h).await;
        assert_eq!(again.records_delivered, ORDERS.len(), "{name}: {again:?}");
        assert_eq!(again.partial_failures, 0, "{name}: {again:?}");
    }
    assert_rewarded_once(&h, "after the stream was delivered three times").await;
    assert_eq!(pending(h.stack()).await, 0, "{name}: nothing left pending");
}

async fn exactly_once_with_racing_consumers<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    let stack = h.stack();
    let mut x = stack.trigger(h.consumer(stack.service())).unwrap();
    let mut y = stack.trigger(h.consumer(stack.service())).unwrap();
    let (a, b) = tokio::join!(x.drain(), y.drain());
    let (a, b) = (a.unwrap().clone(), b.unwrap().clone());
    assert_eq!(
        a.records_delivered,
        ORDERS.len(),
        "{name}: both mappings deliver everything"
    );
    assert_eq!(b.records_delivered, ORDERS.len(), "{name}");
    assert_rewarded_once(&h, "after two consumers raced").await;
    assert_eq!(pending(stack).await, 0, "{name}");
}

/// The rewards consumer's store in a process that crashes right after the effect's transaction
/// committed, before its second write: the outbox item's mark (pattern 1), the order item's
/// release from its pending marker (pattern 2).
#[derive(Clone)]
struct CrashAfterCommit(DynamoConsumerStore);

fn crashed() -> StoreError {
    StoreError::Unavailable("process crashed after the effect committed".into())
}

impl ConsumerStore for CrashAfterCommit {
    fn table(&self) -> &str {
        self.0.table()
    }
    async fn commit(
        &self,
        consumer: &str,
        step: &Step,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        self.0.commit(consumer, step, effect).await
    }
    async fn complete(&self, _: &str, _: &ItemKey, _: i64) -> Result<(), StoreError> {
        Err(crashed())
    }
    async fn parked(&self, consumer: &str, limit: usize) -> Result<Vec<Parked>, StoreError> {
        self.0.parked(consumer, limit).await
    }
    async fn commit_parked(
        &self,
        parked: &ItemKey,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        self.0.commit_parked(parked, effect).await
    }
    async fn repark(&self, parked: &ItemKey, reason: &str) -> Result<(), StoreError> {
        self.0.repark(parked, reason).await
    }
    async fn commit_once(
        &self,
        consumer: &str,
        event_id: &str,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        self.0.commit_once(consumer, event_id, effect).await
    }
    async fn release(&self, _: &str, _: &ItemKey) -> Result<(), StoreError> {
        Err(crashed())
    }
}

async fn a_crash_between_the_consumers_writes_is_repaired_by_redelivery<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    let stack = h.stack();
    let crashing = stack
        .service()
        .with_store(CrashAfterCommit(stack.service().store().clone()));
    let answer = invoke(&h.consumer(crashing), mapped_records(&h).await).await;
    assert_eq!(
        answer.batch_item_failures.len(),
        ORDERS.len(),
        "{name}: every record is reported for retry, since its second write never happened"
    );
    // The first order of each customer committed its effect before the crash (under CDC a
    // customer's later orders in the batch are then held back: each is its own transaction).
    assert_eq!(
        balance(stack, "c-2").await,
        (25, 1),
        "{name}: the effect committed before the crash"
    );
    assert!(
        balance(stack, "c-1").await.1 >= 1,
        "{name}: the effect committed before the crash"
    );
    assert_eq!(
        pending(stack).await,
        ORDERS.len(),
        "{name}: still pending after the crash"
    );

    let redelivered = deliver(&h).await;
    assert_eq!(redelivered.partial_failures, 0, "{name}: {redelivered:?}");
    assert_rewarded_once(
        &h,
        "after the redelivery (duplicates, nothing applied twice)",
    )
    .await;
    assert_eq!(
        pending(stack).await,
        0,
        "{name}: the redelivery finished the second write"
    );
}

async fn poison_is_parked_the_customer_goes_on_and_the_operator_redrives_it<H: Harness>(h: H) {
    let name = H::PATTERN;
    let stack = h.stack();
    // c-9's balance sits just under the limit (a data error elsewhere): a 20-point reward
    // would pass it, so the consumer refuses it: poison.
    set_balance(stack, "c-9", MAX_BALANCE - 10).await;
    let poison = h.place("c-9", 2_000).await;
    let later = h.place("c-9", 500).await;
    let stats = deliver(&h).await;
    assert_eq!(
        stats.partial_failures, 0,
        "{name}: parked, not retried: {stats:?}"
    );
    assert_eq!(
        applied_order(&h, "c-9").await,
        vec![later.clone()],
        "{name}: the customer's later order went on"
    );
    let parked = stack.service().store().parked(REWARDS, 100).await.unwrap();
    assert_eq!(parked.len(), 1, "{name}: {parked:?}");
    assert!(
        parked[0].reason.contains("condition"),
        "{name}: {}",
        parked[0].reason
    );
    assert_eq!(
        pending(stack).await,
        0,
        "{name}: a parked event is done for the source"
    );
    assert_eq!(
        deliver(&h).await.partial_failures,
        0,
        "{name}: a redelivery of the parked event is a duplicate"
    );
    assert_eq!(
        stack
            .service()
            .store()
            .parked(REWARDS, 100)
            .await
            .unwrap()
            .len(),
        1,
        "{name}: parked once"
    );

    // The fix lands (the balance is corrected) and the operator redrives what was parked.
    set_balance(stack, "c-9", 0).await;
    let redriven = redrive_parked(stack).await;
    assert_eq!(
        (redriven.found, redriven.applied, redriven.parked),
        (1, 1, 0),
        "{name}: {redriven:?}"
    );
    assert_eq!(balance(stack, "c-9").await, (20, 2), "{name}");
    assert_eq!(
        applied_order(&h, "c-9").await,
        vec![later, poison],
        "{name}"
    );
    let again = redrive_parked(stack).await;
    assert_eq!(
        (again.found, again.applied),
        (0, 0),
        "{name}: applied once: {again:?}"
    );
}

async fn what_the_stream_dropped_is_redriven_by_the_sweeper_once<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    let stack = h.stack();
    assert_eq!(
        pending(stack).await,
        ORDERS.len(),
        "{name}: every order waits for rewards"
    );
    // No consumer ran: the stream's records might as well have expired. Then the sweeper runs
    // while a late stream delivery races it.
    let mut late = stack.trigger(h.consumer(stack.service())).unwrap();
    let (report, stats) = tokio::join!(sweep(stack), late.drain());
    let stats = stats.unwrap().clone();
    // How many the sweeper finds depends on how far the stream got first (the sweeper reads
    // its shards one after the other): whatever it found, it applied or found applied.
    assert_eq!(stats.records_delivered, ORDERS.len(), "{name}: {stats:?}");
    assert!(report.found <= ORDERS.len(), "{name}: {report:?}");
    assert_eq!(
        report.applied + report.already_applied,
        report.found,
        "{name}: {report:?}"
    );
    assert_rewarded_once(&h, "after the sweeper raced the stream").await;
    assert_eq!(pending(stack).await, 0, "{name}");
    assert_eq!(sweep(stack).await.found, 0, "{name}: nothing left to sweep");
}

async fn one_customers_orders_are_applied_in_the_promised_order<H: Harness>(h: H) {
    let name = H::PATTERN;
    let mut placed = Vec::new();
    for cents in [100, 200, 300] {
        placed.push(h.place("c-1", cents).await);
    }
    let records = mapped_records(&h).await;
    assert_eq!(records.len(), 3, "{name}");
    let consumer = h.consumer(h.stack().service());
    // The source delivers them last first, one per invocation (three shards, or three
    // parallel invocations), then everything again as a retry would.
    let mut reported = 0;
    for record in records.iter().rev() {
        reported += invoke(&consumer, vec![record.clone()])
            .await
            .batch_item_failures
            .len();
    }
    invoke(&consumer, records).await;
    assert_eq!(balance(h.stack(), "c-1").await, (6, 3), "{name}: each once");
    let applied = applied_order(&h, "c-1").await;
    if H::WRITE_ORDER_ACROSS_DELIVERIES {
        assert_eq!(
            reported, 2,
            "{name}: the two early orders waited for their predecessor"
        );
        assert_eq!(applied, placed, "{name}: applied in write order");
    } else {
        let delivered: Vec<String> = placed.iter().rev().cloned().collect();
        assert_eq!(
            reported, 0,
            "{name}: nothing waits: there is no sequence across items"
        );
        assert_eq!(
            applied, delivered,
            "{name}: applied in the order the source gave"
        );
    }
}

macro_rules! guarantees {
    ($module:ident, $harness:ident) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn exactly_once_under_duplicates() {
                super::exactly_once_under_duplicates(start($harness).await).await;
            }
            #[tokio::test]
            async fn exactly_once_with_racing_consumers() {
                super::exactly_once_with_racing_consumers(start($harness).await).await;
            }
            #[tokio::test]
            async fn a_crash_between_the_consumers_writes_is_repaired_by_redelivery() {
                super::a_crash_between_the_consumers_writes_is_repaired_by_redelivery(
                    start($harness).await,
                )
                .await;
            }
            #[tokio::test]
            async fn poison_is_parked_the_customer_goes_on_and_the_operator_redrives_it() {
                super::poison_is_parked_the_customer_goes_on_and_the_operator_redrives_it(
                    start($harness).await,
                )
                .await;
            }
            #[tokio::test]
            async fn what_the_stream_dropped_is_redriven_by_the_sweeper_once() {
                super::what_the_stream_dropped_is_redriven_by_the_sweeper_once(
                    start($harness).await,
                )
                .await;
            }
            #[tokio::test]
            async fn one_customers_orders_are_applied_in_the_promised_order() {
                super::one_customers_orders_are_applied_in_the_promised_order(
                    start($harness).await,
                )
                .await;
            }
        }
    };
}

guarantees!(outbox, Outbox);
guarantees!(cdc, Cdc);
