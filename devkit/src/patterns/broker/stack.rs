//! The broker deployment on the harness ([`crate::patterns::Harness`]): the order-writer's
//! relayed store on the local DynamoDB, the relay behind the orders table's stream mapping
//! publishing to the bus on moto, the rule delivering to the queue, and the rewards inbox behind
//! the local SQS mapping. What the demo runs under `--pattern broker`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, ensure, Result};
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::lambda::{OutboxStream, SqsQueue};
use dynamodb_outbox::relay::{EventBridgeTarget, Relay};
use dynamodb_outbox::testing::CrashPoint;
use dynamodb_outbox::{BatchOutcome, ConsumerStore, Processor, Source};
use lambda_runtime::tower::Service as _;
use lambda_runtime::LambdaEvent;
use order_service::domain::events::{takes_order_placed, ORDER_RELAY};
use order_service::store::dynamodb::DynamoOrderStore;
use rewards_service::consumer::RewardsConsumer;
use rewards_service::store::dynamodb::DynamoRewardsStore;

use super::{LocalBroker, Queue};
use crate::chaos::{ConsumerChaos, Faults};
use crate::demo::DemoOrders;
use crate::invariants::Violation;
use crate::local::{LocalDynamo, Tables};
use crate::mapping::handler;
use crate::mapping::sqs::{SqsMapping, SqsSettings};
use crate::metrics::Collector;
use crate::moto::LocalMoto;
use crate::pattern::Pattern;
use crate::patterns::stream::OrderWriter;
use crate::patterns::Harness;
use crate::stack::Stack;
use crate::template::Template;
use crate::trigger::{DynamoStream, Invoke, Trigger, TriggerStats};

/// The broker's relay function in the template (its DynamoDB stream event).
pub const RELAY_FUNCTION: &str = "OrderRelayFunction";
/// The rewards inbox's event source mapping in the template (a resource of its own).
pub const INBOX_MAPPING: &str = "RewardsInboxMapping";
/// The `source` the relay's events carry on the bus (what the rule matches).
pub const EVENT_SOURCE: &str = "orders";

pub type RelayProcessor = Processor<Relay<EventBridgeTarget>, DynamoConsumerStore>;
pub type InboxProcessor = Processor<RewardsConsumer, DynamoConsumerStore>;

/// What a consumer's in-process handler did, over all its invocations.
#[derive(Default)]
struct Counts {
    applied: AtomicUsize,
    duplicates: AtomicUsize,
}

impl Counts {
    fn add(&self, outcome: &BatchOutcome) {
        self.applied.fetch_add(outcome.applied, Ordering::Relaxed);
        self.duplicates
            .fetch_add(outcome.duplicates, Ordering::Relaxed);
    }
    fn get(&self) -> (usize, usize) {
        (
            self.applied.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
        )
    }
}

/// The broker deployment on one machine: the order-writer's tables on the local DynamoDB (from
/// `patterns/broker/template.yaml`), and moto's server with the bus, the rule and the queues.
pub struct BrokerStack {
    pub stack: Stack,
    pub broker: LocalBroker,
    pub moto: LocalMoto,
    relayed: Arc<Counts>,
    inboxed: Arc<Counts>,
}

impl BrokerStack {
    /// The embedded DynamoDB (or `AWS_ENDPOINT_URL`'s) and a fresh moto server.
    pub async fn start() -> Result<Self> {
        let moto = LocalMoto::start().await.map_err(|e| anyhow!("{}", e.0))?;
        Self::on_dynamo(LocalDynamo::start().await?, moto).await
    }

    /// For tests: the stack, or `None` after printing why it was skipped
    /// ([`LocalMoto::start_or_skip`]).
    pub async fn start_or_skip(test: &str) -> Result<Option<Self>> {
        let Some(moto) = LocalMoto::start_or_skip(test).await? else {
            return Ok(None);
        };
        Ok(Some(
            Self::on_dynamo(LocalDynamo::start().await?, moto).await?,
        ))
    }

    /// The template's tables on `dynamo`, and the bus, rule and queues on `moto`.
    pub async fn on_dynamo(dynamo: LocalDynamo, moto: LocalMoto) -> Result<Self> {
        let stack = Stack::on_pattern(dynamo, Pattern::Broker).await?;
        let broker = LocalBroker::create(&moto, &stack.template).await?;
        Ok(Self {
            stack,
            broker,
            moto,
            relayed: Arc::default(),
            inboxed: Arc::default(),
        })
    }

    /// The relay as its function builds it, its progress written with `dynamo`, publishing to
    /// the bus with `events`.
    pub fn relay_on(
        &self,
        dynamo: aws_sdk_dynamodb::Client,
        events: aws_sdk_eventbridge::Client,
    ) -> Result<RelayProcessor> {
        let orders = &self.stack.tables.orders;
        let target = EventBridgeTarget::new(events, &self.broker.bus, EVENT_SOURCE);
        let relay = Relay::new(ORDER_RELAY, takes_order_placed(), target);
        let store = DynamoConsumerStore::new(dynamo, orders, orders);
        Ok(
            Processor::new(relay, store, self.stack.tables.orders_source())
                .retention_seconds(self.stack.retention_seconds())?,
        )
    }

    /// The rewards inbox as its function builds it, writing with `dynamo`, reading the queue.
    pub fn inbox_on(&self, dynamo: aws_sdk_dynamodb::Client) -> Result<InboxProcessor> {
        let rewards = &self.stack.tables.rewards;
        let store = DynamoConsumerStore::new(dynamo, rewards, rewards);
        let queue = Source::sqs_queue(&self.broker.queue.arn)?;
        Ok(Processor::new(
            RewardsConsumer::new(rewards.clone()),
            store,
            queue,
        ))
    }

    /// The local stream mapping of the relay function to `invoker`, with the template's
    /// settings.
    pub fn relay_trigger<I: Invoke>(&self, invoker: I) -> Result<Trigger<I>> {
        let source = self.stack.template.stream_source(RELAY_FUNCTION)?;
        let stream = DynamoStream {
            client: self.stack.stream.clone(),
            arn: self.stack.tables.orders_stream_arn.clone(),
        };
        Ok(Trigger::new(source, stream, invoker))
    }

    /// The relay function in process, its outcomes counted for the demo.
    fn counted_relay(&self) -> Result<impl Invoke> {
        let counts = self.relayed.clone();
        let relay = self.relay_on(self.stack.dynamo.client.clone(), self.broker.events.clone())?;
        Ok(handler(relay, move |p, event| {
            let counts = counts.clone();
            async move {
                let processed = OutboxStream::new(&*p).call(event).await?;
                counts.add(&processed.outcome);
                Ok::<_, lambda_runtime::Error>(processed.response)
            }
        }))
    }

    /// The local SQS mapping of the inbox function to `invoker`, receiving and deleting with
    /// `sqs`, with the template's settings.
    pub async fn inbox_mapping<I: Invoke<SqsEvent>>(
        &self,
        sqs: aws_sdk_sqs::Client,
        invoker: I,
    ) -> Result<SqsMapping<I>> {
        let settings = inbox_settings(&self.stack.template)?;
        SqsMapping::open(settings, sqs, &self.broker.queue.url, invoker).await
    }

    /// The inbox function in process for the demo: each batch handled, then handled again (the
    /// broker's at-least-once delivery, the copy arriving before the original is deleted).
    fn twice_inbox(&self) -> Result<impl Invoke<SqsEvent>> {
        let counts = self.inboxed.clone();
        let inbox = self.inbox_on(self.stack.dynamo.client.clone())?;
        Ok(handler(inbox, move |p, event: LambdaEvent<SqsEvent>| {
            let counts = counts.clone();
            async move {
                let copy = LambdaEvent::new(event.payload.clone(), event.context.clone());
                let first = SqsQueue::new(&*p).call(event).await?;
                counts.add(&first.outcome);
                let again = SqsQueue::new(&*p).call(copy).await?;
                counts.add(&again.outcome);
                Ok::<_, lambda_runtime::Error>(first.response)
            }
        }))
    }

    /// Messages in `queue`, visible or in flight.
    pub(super) async fn depth(&self, queue: &Queue) -> Result<usize> {
        queue_depth(&self.broker.sqs, &queue.url).await
    }
}

/// Messages in the queue at `url`, visible or in flight.
pub(super) async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<usize> {
    let out = sqs.get_queue_attributes().queue_url(url);
    let out = out.attribute_names(QueueAttributeName::All).send().await?;
    let attributes = out.attributes.unwrap_or_default();
    let mut depth = 0;
    for name in [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ] {
        depth += attributes
            .get(&name)
            .map_or(Ok(0), |n| n.parse::<usize>())?;
    }
    Ok(depth)
}

/// The relay function's handler, invoked in process with a stream batch.
pub fn relay_in_process<S: ConsumerStore + 'static>(
    processor: Processor<Relay<EventBridgeTarget>, S>,
) -> impl Invoke {
    handler(processor, |p, event| async move {
        let processed = OutboxStream::new(&*p).call(event).await?;
        Ok::<_, lambda_runtime::Error>(processed.response)
    })
}

/// The rewards inbox function's handler, invoked in process with a batch of queue messages.
pub fn inbox_in_process<S: ConsumerStore + 'static>(
    processor: Processor<RewardsConsumer, S>,
) -> impl Invoke<SqsEvent> {
    handler(processor, |p, event| async move {
        let processed = SqsQueue::new(&*p).call(event).await?;
        Ok::<_, lambda_runtime::Error>(processed.response)
    })
}

/// The inbox mapping's settings, from the template's `AWS::Lambda::EventSourceMapping`.
fn inbox_settings(template: &Template) -> Result<SqsSettings> {
    let properties = template.properties(INBOX_MAPPING)?;
    let number = |key: &str| {
        let value = &properties[key];
        value
            .as_u64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
    };
    let defaults = SqsSettings::default();
    let report = properties["FunctionResponseTypes"]
        .as_array()
        .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures"));
    Ok(SqsSettings {
        batch_size: number("BatchSize").map_or(defaults.batch_size, |n| n as usize),
        batching_window: number("MaximumBatchingWindowInSeconds")
            .map_or(defaults.batching_window, std::time::Duration::from_secs),
        report_batch_item_failures: report,
    })
}

impl Harness for BrokerStack {
    type Api = OrderWriter;

    /// The relay marks the outbox item after it published.
    fn crash_point(&self) -> CrashPoint {
        CrashPoint::BeforeDone
    }

    fn dynamo(&self) -> &LocalDynamo {
        &self.stack.dynamo
    }
    fn tables(&self) -> Tables {
        self.stack.tables.clone()
    }
    fn rewards(&self) -> &DynamoRewardsStore {
        &self.stack.rewards
    }

    async fn order_api(&self, faults: Option<&Faults>) -> Result<OrderWriter> {
        let client = match faults {
            Some(faults) => self.stack.dynamo.client_via(&faults.dynamo.endpoint).await,
            None => self.stack.dynamo.client.clone(),
        };
        let store = DynamoOrderStore::relayed(client, &self.stack.tables.orders);
        Ok(OrderWriter::Outbox(store))
    }

    fn broker_endpoint(&self) -> Option<&str> {
        Some(&self.moto.endpoint)
    }

    async fn consume_racing(&self, chaos: &ConsumerChaos, faults: &Faults) -> Result<TriggerStats> {
        self.race(chaos, faults).await
    }

    async fn sweep(&self, chaos: &ConsumerChaos, faults: &Faults) -> Result<Option<usize>> {
        self.sweep_all(chaos, faults).await.map(Some)
    }

    async fn leftovers(&self) -> Result<Vec<Violation>> {
        self.left_behind().await
    }

    fn describe(&self) -> Vec<String> {
        let mut lines = self.stack.describe();
        lines.insert(
            2,
            format!(
                "moto: bus {}, rule {} → queue {} (dead letters {})",
                self.broker.bus,
                self.broker.rule,
                self.broker.queue.name,
                self.broker.dead_letter_queue.name
            ),
        );
        lines
    }

    async fn demo_placed(&self, _: &OrderWriter, orders: &DemoOrders) -> Result<()> {
        let created = orders.written()?;
        println!("order service: {created} orders written (order + outbox event for the relay in one transaction), {} client retries answered from the original order", orders.replayed);
        println!(
            "pending for the relay: {} events\n",
            self.stack.pending_for(ORDER_RELAY).await?
        );
        Ok(())
    }

    async fn demo_deliver(&self, _: &OrderWriter, _: &DemoOrders, _: usize) -> Result<usize> {
        let mut relay = self.relay_trigger(self.counted_relay()?)?;
        let stats = relay.drain().await?.clone();
        let (published, _) = self.relayed.get();
        println!(
            "stream → order-relay: {} records read, {} filtered out, {} delivered; {published} published to {}",
            stats.records_read, stats.filtered_out, stats.records_delivered, self.broker.bus
        );
        let mut replay = self.relay_trigger(self.counted_relay()?)?;
        let again = replay.drain().await?.records_delivered;
        let (_, relay_duplicates) = self.relayed.get();
        println!("redelivery of the whole stream: {again} records delivered again, {relay_duplicates} recognised as published, nothing published twice");
        println!(
            "queue {}: {} messages delivered by the rule",
            self.broker.queue.name,
            self.depth(&self.broker.queue).await?
        );
        let sqs = self.broker.sqs.clone();
        let mut inbox = self.inbox_mapping(sqs, self.twice_inbox()?).await?;
        let stats = inbox.drain().await?.clone();
        let (applied, duplicates) = self.inboxed.get();
        println!(
            "queue → rewards-inbox: {} messages in {} invocations, {} deleted; each batch delivered twice: {applied} applied, {duplicates} duplicates",
            stats.messages_delivered, stats.invocations, stats.messages_deleted
        );
        Ok(duplicates)
    }

    async fn demo_check(
        &self,
        _: &OrderWriter,
        orders: &DemoOrders,
        _: &Collector,
        redelivered: usize,
    ) -> Result<&'static str> {
        let created = orders.accepted.len();
        let pending = self.stack.pending_for(ORDER_RELAY).await?;
        let queued = self.depth(&self.broker.queue).await?;
        let dead = self.depth(&self.broker.dead_letter_queue).await?;
        println!(
            "\npending for the relay: {pending}; queue: {queued} messages; dead letters: {dead}"
        );
        let (published, relay_duplicates) = self.relayed.get();
        let (applied, duplicates) = self.inboxed.get();
        let read_back = (published, relay_duplicates, applied, duplicates);
        let expected = (created, created, created, redelivered);
        ensure!(
            read_back == expected && redelivered == created,
            "(published, republished seen, applied, inbox duplicates) = {read_back:?}, the run placed {created} orders"
        );
        ensure!(pending == 0, "{pending} events still pending for the relay");
        ensure!(
            queued == 0 && dead == 0,
            "{queued} messages left in the queue, {dead} dead letters"
        );
        Ok("every order published once, applied once through the queue; ")
    }
}
