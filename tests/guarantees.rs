//! The guarantees every pattern makes, proved by the same test bodies for each: a [`Harness`]
//! places orders through the pattern's own API handler and delivers through the pattern's own
//! consumer handlers and the local event source mappings with the pattern's template settings
//! (DynamoDB Streams for the outbox and CDC; kinesalite for self-read). Each test is generated
//! once per pattern (`outbox::…`, `cdc::…`, `self_read::…`) and names its pattern in every
//! failure message.
//!
//! What differs between the patterns is stated as data, not hidden in the bodies:
//! [`Harness::WRITE_ORDER_ACROSS_DELIVERIES`] (the outbox applies one customer's orders in write
//! order whatever order they arrive in; CDC and self-read apply them in the order the source
//! gives), [`Harness::pending`] (self-read keeps no record of an event a consumer has not
//! processed: the stream is the only copy), and what "redrive what the source dropped" means
//! ([`Harness::source_gives_up`], [`Harness::redrive_dropped`]): the sweeper over the pending
//! index for the outbox and CDC, the on-failure queue's batches read again from the stream for
//! self-read.
//!
//! The self-read cases need kinesalite (`make kinesalite`); without it they fail saying so, or
//! print SKIPPED with the reason when `OUTBOX_SKIP_KINESIS` is set.

use std::sync::Mutex;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use devkit::demo::api_request;
use devkit::filter;
use devkit::patterns::self_read::{
    history_in_process, rewards_in_process, SelfReadStack, ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION,
};
use devkit::stack::{in_process, in_process_changes, Service, CONSUMER_FUNCTION};
use devkit::trigger::Invoke;
use devkit::{Item, Pattern, Stack, TriggerStats};
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, PendingEvents};
use dynamodb_outbox::testing::{Commit, CommitOnce, Committed, LastOut, Parked, StoreOps};
use dynamodb_outbox::testing::{CrashPoint, Crashing};
use dynamodb_outbox::{ConsumerStore, Effect, ItemKey, Processor, StoreError};
use lambda_runtime::{Context, LambdaEvent};
use order_service::store::OrderStore;
use outbox_tests::{assert_counts, call_order_api, order_body, post_order, reply, s, sweep_with};
use rewards_service::consumer::{RewardsConsumer, NAME as REWARDS};
use rewards_service::domain::MAX_BALANCE;
use rewards_service::handlers::sweeper::{self, REDRIVE_PARKED};
use rewards_service::schema as rewards;
use rewards_service::service::{rewards_of, SweepReport};
use rewards_service::store::dynamodb::DynamoRewardsStore;
use serde_json::{json, Value as Json};

/// What a redrive of what the source dropped found, and how much of it is settled now (applied,
/// or found applied by a racing delivery).
#[derive(Debug, Default)]
struct Redriven {
    found: usize,
    settled: usize,
}

/// One pattern, as the guarantees suite drives it.
trait Harness: Sized {
    const PATTERN: Pattern;
    /// Whether one customer's orders are applied in the order they were written even when the
    /// source delivers them in another order (the outbox's per-key sequence), or only in the
    /// order the source gives (CDC: DynamoDB Streams orders the changes of one item, and each
    /// order is its own item; self-read: a Kinesis shard keeps the order of its partition key,
    /// the customer, but nothing numbers the events).
    const WRITE_ORDER_ACROSS_DELIVERIES: bool;
    /// Whether the redrive of what the source dropped finds every dropped event whatever races
    /// it (self-read: the on-failure messages name every record given up), or only what the
    /// racing delivery has not settled yet (the sweeper reads the pending index).
    const REDRIVE_FINDS_EVERY_DROPPED_EVENT: bool;

    /// The pattern's local stack, or `None` after printing why it was skipped.
    async fn start(test: &str) -> Option<Self>;

    /// `POST /orders` through the pattern's order API handler; the new order's id.
    async fn place(&self, customer: &str, cents: i64) -> String;

    /// The rewards consumer as the pattern's function builds it.
    fn processor(&self) -> Service;
    fn rewards(&self) -> &DynamoRewardsStore;
    fn rewards_table(&self) -> (&aws_sdk_dynamodb::Client, &str);

    /// Everything in the source through fresh local mappings (from the start) with the
    /// template's settings and the pattern's consumer handlers; the rewards mapping's counts.
    async fn deliver(&self) -> TriggerStats;
    /// Two rewards mappings over the whole source at once.
    async fn deliver_racing(&self) -> (TriggerStats, TriggerStats);

    /// How many records the pattern's mapping passes to its rewards consumer.
    async fn mapped_count(&self) -> usize;
    /// The mapped records, invoked by hand on the rewards handler over `processor`, in the
    /// order given by `pick` (indexes into the mapped records), one invocation per group; the
    /// record failures the handler reported.
    async fn invoke_by_hand<S: ConsumerStore + Clone + 'static>(
        &self,
        processor: Processor<RewardsConsumer, S>,
        groups: &[Vec<usize>],
    ) -> usize;

    /// Events some consumer still has to process, when the pattern keeps such a record.
    async fn pending(&self) -> Option<usize>;

    /// The source stops delivering every placed order to rewards (the outbox and CDC: no
    /// consumer ran, the stream's records might as well have expired; self-read: the rewards
    /// mapping fails on every record until its retry cap and reports the batches to its
    /// on-failure destination).
    async fn source_gives_up(&self);
    /// The pattern's redrive of what the source dropped, racing a late delivery of the whole
    /// source; the redrive's report and the late delivery's counts.
    async fn redrive_dropped_racing_a_late_delivery(&self) -> (Redriven, TriggerStats);
    async fn redrive_dropped(&self) -> Redriven;

    /// The operator's redrive of the parked events after a fix.
    async fn redrive_parked(&self) -> SweepReport;
}

/// The outbox and CDC, on the embedded DynamoDB and its stream.
trait DynamoStreamPattern {
    const PATTERN: Pattern;
    fn stack(&self) -> &Stack;
    fn consumer<S: ConsumerStore + Clone + 'static>(
        &self,
        processor: Processor<RewardsConsumer, S>,
    ) -> impl Invoke;
}

struct Outbox(Stack);
struct Cdc(Stack);

/// A pattern on the embedded DynamoDB's stream, its consumer handler `$handler`.
macro_rules! dynamo_stream_pattern {
    ($pattern:ident, $handler:ident) => {
        impl DynamoStreamPattern for $pattern {
            const PATTERN: Pattern = Pattern::$pattern;
            fn stack(&self) -> &Stack {
                &self.0
            }
            fn consumer<S: ConsumerStore + Clone + 'static>(
                &self,
                processor: Processor<RewardsConsumer, S>,
            ) -> impl Invoke {
                $handler(processor, 100)
            }
        }
    };
}

dynamo_stream_pattern!(Outbox, in_process);
dynamo_stream_pattern!(Cdc, in_process_changes);

/// The harness methods the outbox and CDC share (they differ in their order store and their
/// consumer handler only).
macro_rules! dynamo_stream_harness {
    ($pattern:ident, $wrap:expr, $write_order:expr, $orders:expr) => {
        impl Harness for $pattern {
            const PATTERN: Pattern = <$pattern as DynamoStreamPattern>::PATTERN;
            const WRITE_ORDER_ACROSS_DELIVERIES: bool = $write_order;
            const REDRIVE_FINDS_EVERY_DROPPED_EVENT: bool = false;

            async fn start(_: &str) -> Option<Self> {
                let stack = Stack::start_pattern(<Self as Harness>::PATTERN)
                    .await
                    .expect("local DynamoDB with the pattern's tables");
                Some($wrap(stack))
            }
            async fn place(&self, customer: &str, cents: i64) -> String {
                #[allow(clippy::redundant_closure_call)]
                let store = ($orders)(self.stack());
                place_through(&store, customer, cents).await
            }
            fn processor(&self) -> Service {
                self.stack().service()
            }
            fn rewards(&self) -> &DynamoRewardsStore {
                &self.stack().rewards
            }
            fn rewards_table(&self) -> (&aws_sdk_dynamodb::Client, &str) {
                (&self.stack().dynamo.client, &self.stack().tables.rewards)
            }
            async fn deliver(&self) -> TriggerStats {
                stream_deliver(self).await
            }
            async fn deliver_racing(&self) -> (TriggerStats, TriggerStats) {
                stream_deliver_racing(self).await
            }
            async fn mapped_count(&self) -> usize {
                stream_mapped_records(self.stack()).await.len()
            }
            async fn invoke_by_hand<S: ConsumerStore + Clone + 'static>(
                &self,
                processor: Processor<RewardsConsumer, S>,
                groups: &[Vec<usize>],
            ) -> usize {
                let records = stream_mapped_records(self.stack()).await;
                let consumer = self.consumer(processor);
                let mut reported = 0;
                for group in groups {
                    let batch = group.iter().map(|&i| records[i].clone()).collect();
                    reported += invoke(&consumer, batch).await.batch_item_failures.len();
                }
                reported
            }
            async fn pending(&self) -> Option<usize> {
                Some(stream_pending(self.stack()).await)
            }
            async fn source_gives_up(&self) {}
            async fn redrive_dropped_racing_a_late_delivery(&self) -> (Redriven, TriggerStats) {
                let stack = self.stack();
                let mut late = stack.trigger(self.consumer(stack.service())).unwrap();
                let (report, stats) = tokio::join!(sweep(stack), late.drain());
                (report, stats.unwrap().clone())
            }
            async fn redrive_dropped(&self) -> Redriven {
                sweep(self.stack()).await
            }
            async fn redrive_parked(&self) -> SweepReport {
                sweeper::handle(
                    &self.stack().sweeper(0, 100),
                    LambdaEvent::new(json!({"action": REDRIVE_PARKED}), Context::default()),
                )
                .await
                .unwrap()
            }
        }
    };
}

dynamo_stream_harness!(Outbox, Outbox, true, |stack: &Stack| stack.orders.clone());
dynamo_stream_harness!(Cdc, Cdc, false, |stack: &Stack| stack.cdc_orders());

/// Self-read on kinesalite and the embedded DynamoDB: the order API publishes, order-history and
/// rewards read the stream through their own mappings.
struct SelfRead {
    stack: SelfReadStack,
    /// The rewards mapping's on-failure destination (the template's SQS queue).
    on_failure_queue: Mutex<Vec<Json>>,
}

impl Harness for SelfRead {
    const PATTERN: Pattern = Pattern::SelfRead;
    const WRITE_ORDER_ACROSS_DELIVERIES: bool = false;
    const REDRIVE_FINDS_EVERY_DROPPED_EVENT: bool = true;

    async fn start(test: &str) -> Option<Self> {
        let stack = SelfReadStack::start_or_skip(test)
            .await
            .expect("the self-read stack (kinesalite and the embedded DynamoDB)")?;
        Some(Self {
            stack,
            on_failure_queue: Mutex::new(Vec::new()),
        })
    }
    async fn place(&self, customer: &str, cents: i64) -> String {
        let body = order_body(customer, &[("A-1", 1, cents)]);
        let request = api_request("POST", "/orders", Some(body), &[]).unwrap();
        let response = self.stack.call(&self.stack.publisher(), request).await;
        let reply = reply(response);
        assert_eq!(reply.status, 202, "self-read: {:?}", reply.json);
        reply.json["order_id"].as_str().unwrap().to_owned()
    }
    fn processor(&self) -> Service {
        self.stack.rewards_processor()
    }
    fn rewards(&self) -> &DynamoRewardsStore {
        &self.stack.rewards
    }
    fn rewards_table(&self) -> (&aws_sdk_dynamodb::Client, &str) {
        (&self.stack.dynamo.client, &self.stack.rewards_table)
    }
    async fn deliver(&self) -> TriggerStats {
        let mut history = self
            .stack
            .trigger(
                ORDER_HISTORY_FUNCTION,
                history_in_process(self.stack.history_processor()),
            )
            .await
            .unwrap();
        let mut rewards = self.rewards_mapping(self.processor()).await;
        let (h, r) = tokio::join!(history.drain(), rewards.drain());
        h.unwrap();
        r.unwrap().clone()
    }
    async fn deliver_racing(&self) -> (TriggerStats, TriggerStats) {
        let mut x = self.rewards_mapping(self.processor()).await;
        let mut y = self.rewards_mapping(self.processor()).await;
        let (a, b) = tokio::join!(x.drain(), y.drain());
        (a.unwrap().clone(), b.unwrap().clone())
    }
    async fn mapped_count(&self) -> usize {
        self.mapped_records().await.len()
    }
    async fn invoke_by_hand<S: ConsumerStore + Clone + 'static>(
        &self,
        processor: Processor<RewardsConsumer, S>,
        groups: &[Vec<usize>],
    ) -> usize {
        let records = self.mapped_records().await;
        let consumer = rewards_in_process(processor);
        let mut reported = 0;
        for group in groups {
            let mut event = KinesisEvent::default();
            event.records = group.iter().map(|&i| records[i].clone()).collect();
            reported += consumer
                .invoke(event)
                .await
                .expect("the handler answers the batch")
                .batch_item_failures
                .len();
        }
        reported
    }
    async fn pending(&self) -> Option<usize> {
        None
    }
    async fn source_gives_up(&self) {
        let processor = self.processor();
        let down = processor.store().clone();
        let mut mapping = self.rewards_mapping(processor.with_store(Down(down))).await;
        let stats = mapping.drain().await.unwrap().clone();
        assert_eq!(
            stats.records_to_on_failure,
            ORDERS.len(),
            "self-read: every record given up after the retry cap: {stats:?}"
        );
        self.on_failure_queue
            .lock()
            .unwrap()
            .append(&mut mapping.on_failure);
    }
    async fn redrive_dropped_racing_a_late_delivery(&self) -> (Redriven, TriggerStats) {
        let mut late = self.rewards_mapping(self.processor()).await;
        let (redriven, stats) = tokio::join!(self.redrive_dropped(), late.drain());
        (redriven, stats.unwrap().clone())
    }
    async fn redrive_dropped(&self) -> Redriven {
        let messages = std::mem::take(&mut *self.on_failure_queue.lock().unwrap());
        let mut mapping = self.rewards_mapping(self.processor()).await;
        for message in &messages {
            mapping.redrive(message).await.unwrap();
        }
        let found = mapping.stats.records_read - mapping.stats.filtered_out;
        Redriven {
            found,
            settled: found - mapping.stats.records_to_on_failure,
        }
    }
    async fn redrive_parked(&self) -> SweepReport {
        SweepReport::from(&self.processor().redrive_parked(100).await)
    }
}

impl SelfRead {
    async fn rewards_mapping<S: ConsumerStore + Clone + 'static>(
        &self,
        processor: Processor<RewardsConsumer, S>,
    ) -> devkit::kinesis_trigger::KinesisTrigger<impl Invoke<KinesisEvent>> {
        self.stack
            .trigger(REWARDS_FUNCTION, rewards_in_process(processor))
            .await
            .unwrap()
    }

    async fn mapped_records(&self) -> Vec<KinesisEventRecord> {
        self.rewards_mapping(self.processor())
            .await
            .mapped_records()
            .await
            .unwrap()
    }
}

async fn place_through<S: OrderStore>(store: &S, customer: &str, cents: i64) -> String {
    let request = post_order(&order_body(customer, &[("A-1", 1, cents)]), &[]);
    let reply = call_order_api(store, request).await;
    assert_eq!(reply.status, 201, "{:?}", reply.json);
    reply.json["order_id"].as_str().unwrap().to_owned()
}

async fn stream_deliver<H: DynamoStreamPattern>(h: &H) -> TriggerStats {
    let stack = h.stack();
    let mut trigger = stack.trigger(h.consumer(stack.service())).unwrap();
    trigger.drain().await.unwrap().clone()
}

async fn stream_deliver_racing<H: DynamoStreamPattern>(h: &H) -> (TriggerStats, TriggerStats) {
    let stack = h.stack();
    let mut x = stack.trigger(h.consumer(stack.service())).unwrap();
    let mut y = stack.trigger(h.consumer(stack.service())).unwrap();
    let (a, b) = tokio::join!(x.drain(), y.drain());
    (a.unwrap().clone(), b.unwrap().clone())
}

/// The records the pattern's mapping passes to its consumer, in stream order.
async fn stream_mapped_records(stack: &Stack) -> Vec<EventRecord> {
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
async fn stream_pending(stack: &Stack) -> usize {
    let far_future = service_runtime::Timestamp::now()
        .plus_seconds(3_600)
        .to_string();
    PendingEvents::new(stack.dynamo.client.clone(), &stack.tables.orders)
        .waiting_for(REWARDS, &far_future, usize::MAX)
        .await
        .unwrap()
        .len()
}

async fn sweep(stack: &Stack) -> Redriven {
    let report = sweep_with(stack, json!({"source": "aws.scheduler"})).await;
    Redriven {
        found: report.found,
        settled: report.applied + report.already_applied,
    }
}

async fn rewards_items<H: Harness>(h: &H) -> Vec<Item> {
    let (client, table) = h.rewards_table();
    devkit::local::scan_all(client, table).await.unwrap()
}

/// A customer's balance and the number of their ledger lines.
async fn balance<H: Harness>(h: &H, customer: &str) -> (i64, usize) {
    let page = rewards_of(h.rewards(), customer, Some(100), None)
        .await
        .unwrap();
    (page.points, page.entries.len())
}

/// The order ids of a customer's ledger lines, in the order they were applied.
async fn applied_order<H: Harness>(h: &H, customer: &str) -> Vec<String> {
    let pk = rewards::customer_pk(customer);
    let mut lines: Vec<(String, String)> = rewards_items(h)
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

async fn set_balance<H: Harness>(h: &H, customer: &str, points: i64) {
    let (client, table) = h.rewards_table();
    outbox_tests::set_balance(client, table, customer, points).await;
}

async fn parked<H: Harness>(h: &H) -> Vec<Parked> {
    h.processor().store().parked(REWARDS, 100).await.unwrap()
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
    assert_eq!(balance(h, "c-1").await, (20, 3), "{name}: c-1 {when}");
    assert_eq!(balance(h, "c-2").await, (25, 1), "{name}: c-2 {when}");
}

/// Nothing left for any consumer, where the pattern keeps a record of what is left.
async fn assert_nothing_pending<H: Harness>(h: &H, when: &str) {
    if let Some(pending) = h.pending().await {
        assert_eq!(pending, 0, "{}: nothing left pending {when}", H::PATTERN);
    }
}

async fn exactly_once_under_duplicates<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    let first = h.deliver().await;
    assert_eq!(first.records_delivered, ORDERS.len(), "{name}: {first:?}");
    assert_rewarded_once(&h, "after one delivery").await;
    // The whole stream again, twice: Lambda's at-least-once delivery.
    for _ in 0..2 {
        let again = h.deliver().await;
        assert_eq!(again.records_delivered, ORDERS.len(), "{name}: {again:?}");
        assert_eq!(again.partial_failures, 0, "{name}: {again:?}");
    }
    assert_rewarded_once(&h, "after the stream was delivered three times").await;
    assert_nothing_pending(&h, "after the deliveries").await;
}

async fn exactly_once_with_racing_consumers<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    let (a, b) = h.deliver_racing().await;
    assert_eq!(
        a.records_delivered,
        ORDERS.len(),
        "{name}: both mappings deliver everything"
    );
    assert_eq!(b.records_delivered, ORDERS.len(), "{name}");
    assert_rewarded_once(&h, "after two consumers raced").await;
    assert_nothing_pending(&h, "after two consumers raced").await;
}

/// The rewards consumer's store while DynamoDB is unreachable: every write fails.
#[derive(Clone)]
struct Down(DynamoConsumerStore);

fn down() -> StoreError {
    StoreError::Unavailable("DynamoDB unreachable".into())
}

impl StoreOps for Down {
    fn table(&self) -> &str {
        self.0.table()
    }
    async fn commit(&self, _: Commit<'_>) -> Result<Committed, StoreError> {
        Err(down())
    }
    async fn progress_on(&self, _: &str, _: &str) -> Result<u64, StoreError> {
        Err(down())
    }
    async fn leave(&self, _: &str, _: &ItemKey, _: LastOut) -> Result<(), StoreError> {
        Err(down())
    }
    async fn parked(&self, _: &str, _: usize) -> Result<Vec<Parked>, StoreError> {
        Err(down())
    }
    async fn commit_parked(&self, _: &ItemKey, _: &Effect) -> Result<Committed, StoreError> {
        Err(down())
    }
    async fn repark(&self, _: &ItemKey, _: &str) -> Result<(), StoreError> {
        Err(down())
    }
    async fn commit_once(&self, _: CommitOnce<'_>) -> Result<Committed, StoreError> {
        Err(down())
    }
}

async fn a_crash_between_the_consumers_writes_is_repaired_by_redelivery<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    let processor = h.processor();
    // The rewards consumer's store in a process that crashes right after the effect's
    // transaction committed, before anything else: before the answer to the mapping (pattern 1,
    // whose transaction also finished the outbox item: rewards is its only consumer; pattern 3,
    // whose one transaction holds the effect and the done record), before the order item's
    // release from its pending marker (pattern 2).
    let store = Crashing::always(processor.store().clone(), CrashPoint::AfterCommit);
    let everything: Vec<usize> = (0..h.mapped_count().await).collect();
    let reported = h
        .invoke_by_hand(processor.with_store(store), &[everything])
        .await;
    assert_eq!(
        reported,
        ORDERS.len(),
        "{name}: every record is reported for retry, since the process crashed after its commit"
    );
    // The first order of each customer committed its effect before the crash (without the
    // outbox's sequence a customer's later orders in the batch are then held back: each is its
    // own transaction).
    assert_eq!(
        balance(&h, "c-2").await,
        (25, 1),
        "{name}: the effect committed before the crash"
    );
    assert!(
        balance(&h, "c-1").await.1 >= 1,
        "{name}: the effect committed before the crash"
    );
    if let Some(pending) = h.pending().await {
        let (expected, why) = match name {
            // Each customer's orders commit as one run here, every one of them before the crash.
            Pattern::Outbox => (0, "finished by the commits before the crash"),
            _ => (ORDERS.len(), "still pending after the crash"),
        };
        assert_eq!(pending, expected, "{name}: {why}");
    }

    let redelivered = h.deliver().await;
    assert_eq!(redelivered.partial_failures, 0, "{name}: {redelivered:?}");
    assert_rewarded_once(
        &h,
        "after the redelivery (duplicates, nothing applied twice)",
    )
    .await;
    assert_nothing_pending(&h, "after the redelivery finished the second write").await;
}

async fn poison_is_parked_the_customer_goes_on_and_the_operator_redrives_it<H: Harness>(h: H) {
    let name = H::PATTERN;
    // c-9's balance sits just under the limit (a data error elsewhere): a 20-point reward
    // would pass it, so the consumer refuses it: poison.
    set_balance(&h, "c-9", MAX_BALANCE - 10).await;
    let poison = h.place("c-9", 2_000).await;
    let later = h.place("c-9", 500).await;
    let stats = h.deliver().await;
    assert_eq!(
        stats.partial_failures, 0,
        "{name}: parked, not retried: {stats:?}"
    );
    assert_eq!(
        applied_order(&h, "c-9").await,
        vec![later.clone()],
        "{name}: the customer's later order went on"
    );
    let parked_now = parked(&h).await;
    assert_eq!(parked_now.len(), 1, "{name}: {parked_now:?}");
    assert!(
        parked_now[0].reason.contains("condition"),
        "{name}: {}",
        parked_now[0].reason
    );
    assert_nothing_pending(&h, "(a parked event is done for the source)").await;
    assert_eq!(
        h.deliver().await.partial_failures,
        0,
        "{name}: a redelivery of the parked event is a duplicate"
    );
    assert_eq!(parked(&h).await.len(), 1, "{name}: parked once");

    // The fix lands (the balance is corrected) and the operator redrives what was parked.
    set_balance(&h, "c-9", 0).await;
    let redriven = h.redrive_parked().await;
    assert_counts!(redriven, [found = 1, applied = 1, parked = 0], "{name}");
    assert_eq!(balance(&h, "c-9").await, (20, 2), "{name}");
    assert_eq!(
        applied_order(&h, "c-9").await,
        vec![later, poison],
        "{name}"
    );
    let again = h.redrive_parked().await;
    assert_counts!(again, [found = 0, applied = 0], "{name}: applied once");
}

async fn what_the_source_dropped_is_redriven_once<H: Harness>(h: H) {
    let name = H::PATTERN;
    place_all(&h).await;
    if let Some(pending) = h.pending().await {
        assert_eq!(
            pending,
            ORDERS.len(),
            "{name}: every order waits for rewards"
        );
    }
    h.source_gives_up().await;
    assert_eq!(
        (balance(&h, "c-1").await, balance(&h, "c-2").await),
        ((0, 0), (0, 0)),
        "{name}: nothing applied while the source gave up"
    );
    // The redrive runs while a late delivery of the whole source races it.
    let (redriven, late) = h.redrive_dropped_racing_a_late_delivery().await;
    assert_eq!(late.records_delivered, ORDERS.len(), "{name}: {late:?}");
    // How many the sweeper finds depends on how far the stream got first (the sweeper reads
    // its shards one after the other): whatever the redrive found, it applied or found applied.
    if H::REDRIVE_FINDS_EVERY_DROPPED_EVENT {
        assert_eq!(redriven.found, ORDERS.len(), "{name}: {redriven:?}");
    } else {
        assert!(redriven.found <= ORDERS.len(), "{name}: {redriven:?}");
    }
    assert_eq!(redriven.settled, redriven.found, "{name}: {redriven:?}");
    assert_rewarded_once(&h, "after the redrive raced a late delivery").await;
    assert_nothing_pending(&h, "after the redrive").await;
    assert_eq!(
        h.redrive_dropped().await.found,
        0,
        "{name}: nothing left to redrive"
    );
}

async fn one_customers_orders_are_applied_in_the_promised_order<H: Harness>(h: H) {
    let name = H::PATTERN;
    let mut placed = Vec::new();
    for cents in [100, 200, 300] {
        placed.push(h.place("c-1", cents).await);
    }
    assert_eq!(h.mapped_count().await, 3, "{name}");
    // The source delivers them last first, one per invocation (three shards, or three
    // parallel invocations), then everything again as a retry would.
    let reported = h
        .invoke_by_hand(h.processor(), &[vec![2], vec![1], vec![0]])
        .await;
    h.invoke_by_hand(h.processor(), &[vec![0, 1, 2]]).await;
    assert_eq!(balance(&h, "c-1").await, (6, 3), "{name}: each once");
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

/// The shared guarantees as tests of one pattern, each named as its function above.
macro_rules! guarantees {
    ($module:ident, $harness:ident) => {
        mod $module {
            use super::*;

            guarantees!(
                @tests $module, $harness:
                exactly_once_under_duplicates,
                exactly_once_with_racing_consumers,
                a_crash_between_the_consumers_writes_is_repaired_by_redelivery,
                poison_is_parked_the_customer_goes_on_and_the_operator_redrives_it,
                what_the_source_dropped_is_redriven_once,
                one_customers_orders_are_applied_in_the_promised_order
            );
        }
    };
    (@tests $module:ident, $harness:ident: $($test:ident),*) => {
        $(
            #[tokio::test]
            async fn $test() {
                let name = concat!(stringify!($module), ": ", stringify!($test));
                let Some(h) = <$harness as Harness>::start(name).await else {
                    return;
                };
                super::$test(h).await;
            }
        )*
    };
}

guarantees!(outbox, Outbox);
guarantees!(cdc, Cdc);
guarantees!(self_read, SelfRead);
