//! Pattern 3, self-read, on one machine: the embedded DynamoDB with the pattern's tables,
//! kinesalite with its stream, both read from `patterns/self-read/template.yaml`, the order API
//! publishing to it, and the two consumers behind local Kinesis mappings with the template's
//! settings; and the pattern on the harness the chaos run and the demo drive.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{anyhow, ensure, Context as _, Result};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::kinesis::KinesisEvent;
use dynamodb_outbox::{ConsumerStore, Processor};
use lambda_runtime::{Context, LambdaEvent};
use order_service::self_read::history::{self, OrderHistoryConsumer};
use order_service::self_read::kinesis::KinesisPublisher;
use order_service::self_read::{api, publish::EventPublisher};
use order_service::store::dynamodb::DynamoOrderStore;
use rewards_service::consumer::RewardsConsumer;
use rewards_service::handlers::kinesis as rewards_kinesis;
use rewards_service::handlers::sweeper::Sweeper;
use rewards_service::service::RewardsProcessor;
use rewards_service::store::dynamodb::DynamoRewardsStore;

use super::{Harness, OrderApi};
use crate::chaos::{drain_all, duplicating, replay_given_up, ConsumerChaos, Faults};
use crate::demo::{api_request, DemoOrders};
use crate::invariants::EventSource;
use crate::kinesis::{client_for, LocalKinesis, StreamDescription};
use crate::kinesis_trigger::KinesisTrigger;
use crate::local::{LocalDynamo, Tables};
use crate::mapping::handler;
use crate::mapping::Invoke;
use crate::metrics::Collector;
use crate::pattern::Pattern;
use crate::template::Template;
use crate::trigger::TriggerStats;

/// The order-history consumer's function in the template.
pub const ORDER_HISTORY_FUNCTION: &str = "OrderHistoryFunction";
/// The rewards consumer's function in the template.
pub const REWARDS_FUNCTION: &str = "RewardsKinesisConsumerFunction";

pub use history::HistoryProcessor;

/// How many times the chaos run's replay takes back ranges that were given up again.
const REPLAY_ROUNDS: usize = 5;

pub struct SelfReadStack {
    pub dynamo: LocalDynamo,
    pub kinesis: LocalKinesis,
    pub template: Template,
    /// Order items (order-history's) and order-history's done records.
    pub orders_table: String,
    /// Balances, ledgers and the rewards consumer's done records.
    pub rewards_table: String,
    pub stream: StreamDescription,
    /// What `GET /orders/{id}` reads: the order-history table.
    pub history: DynamoOrderStore,
    pub rewards: DynamoRewardsStore,
    /// Records the chaos run's replay of given-up ranges delivered again.
    replayed: AtomicUsize,
}

impl SelfReadStack {
    /// The embedded DynamoDB (or `AWS_ENDPOINT_URL`'s) and a fresh kinesalite.
    pub async fn start() -> Result<Self> {
        let kinesis = LocalKinesis::start().await.map_err(|e| anyhow!("{e}"))?;
        Self::on(LocalDynamo::start().await?, kinesis).await
    }

    /// For tests: the stack, or `None` after printing why it was skipped
    /// ([`LocalKinesis::start_or_skip`]).
    pub async fn start_or_skip(test: &str) -> Result<Option<Self>> {
        let Some(kinesis) = LocalKinesis::start_or_skip(test).await? else {
            return Ok(None);
        };
        Ok(Some(Self::on(LocalDynamo::start().await?, kinesis).await?))
    }

    /// The template's tables on `dynamo` (suffixed on a shared server) and its stream on
    /// `kinesis`.
    pub async fn on(dynamo: LocalDynamo, kinesis: LocalKinesis) -> Result<Self> {
        let template = Template::load(&Pattern::SelfRead.template_path())?;
        let tables = dynamo
            .create_tables(&template, &dynamo.run_suffix())
            .await?;
        let spec = template.kinesis_streams()?.into_iter().next();
        let spec = spec.context("patterns/self-read/template.yaml has no Kinesis stream")?;
        let stream = kinesis.create_stream(&spec.name, spec.shard_count).await?;
        Ok(Self {
            history: DynamoOrderStore::new(dynamo.client.clone(), &tables.orders),
            rewards: DynamoRewardsStore::new(dynamo.client.clone(), &tables.rewards),
            dynamo,
            kinesis,
            template,
            orders_table: tables.orders,
            rewards_table: tables.rewards,
            stream,
            replayed: AtomicUsize::new(0),
        })
    }

    /// The order API's publisher, on the stream.
    pub fn publisher(&self) -> KinesisPublisher {
        KinesisPublisher::new(self.kinesis.client.clone(), &self.stream.name)
    }

    /// The order-history consumer as its function builds it.
    pub fn history_processor(&self) -> HistoryProcessor {
        history_processor(
            self.dynamo.client.clone(),
            &self.orders_table,
            self.stream.source(),
        )
    }

    /// The rewards consumer as its function builds it.
    pub fn rewards_processor(&self) -> RewardsProcessor {
        rewards_kinesis::processor(
            self.dynamo.client.clone(),
            &self.rewards_table,
            self.stream.source(),
        )
    }

    /// The redrive function of pattern 3 (`outbox-sweeper` under `OUTBOX_PATTERN=self-read`),
    /// as it builds itself: both consumers' parked events, no pending events to sweep.
    pub fn sweeper(&self, limit: usize) -> Sweeper {
        Sweeper {
            pending: None,
            processor: self.rewards_processor(),
            order_history: Some(self.history_processor()),
            grace_seconds: 0,
            limit,
            pattern: service_runtime::config::OutboxPattern::SelfRead,
        }
    }

    /// A local Kinesis mapping for `function` (one of the two consumers), with its settings
    /// from the template.
    pub async fn trigger<I: Invoke<KinesisEvent>>(
        &self,
        function: &str,
        invoker: I,
    ) -> Result<KinesisTrigger<I>> {
        let source = self
            .template
            .kinesis_source(function)
            .with_context(|| format!("reading {function}'s Kinesis event source"))?;
        KinesisTrigger::open(
            source,
            self.kinesis.client.clone(),
            &self.stream.name,
            invoker,
        )
        .await
    }

    /// The order API (the order-publisher function's handler) with `publisher`.
    pub async fn call<P: EventPublisher>(
        &self,
        publisher: &P,
        request: ApiGatewayV2httpRequest,
    ) -> ApiGatewayV2httpResponse {
        let event = LambdaEvent::new(request, Context::default());
        match api::handle(publisher, &self.history, event).await {
            Ok(response) => response,
            Err(never) => unreachable!("the order API answers every request: {never}"),
        }
    }

    /// Both consumers' mappings drained once from the start, side by side: order-history's
    /// counts and the rewards consumer's.
    pub async fn deliver_all(&self) -> Result<(TriggerStats, TriggerStats)> {
        let history = history_in_process(self.history_processor());
        let mut history = self.trigger(ORDER_HISTORY_FUNCTION, history).await?;
        let rewards = rewards_in_process(self.rewards_processor());
        let mut rewards = self.trigger(REWARDS_FUNCTION, rewards).await?;
        let (h, r) = tokio::join!(history.drain(), rewards.drain());
        Ok((h?.clone(), r?.clone()))
    }
}

pub use history::processor as history_processor;

/// The order-history function's handler, invoked in process.
pub fn history_in_process<S>(
    processor: Processor<OrderHistoryConsumer, S>,
) -> impl Invoke<KinesisEvent>
where
    S: ConsumerStore + 'static,
{
    handler(processor, |p, event| async move {
        history::handle(&p, event).await
    })
}

/// The rewards Kinesis function's handler, invoked in process.
pub fn rewards_in_process<S>(processor: Processor<RewardsConsumer, S>) -> impl Invoke<KinesisEvent>
where
    S: ConsumerStore + 'static,
{
    handler(processor, |p, event| async move {
        rewards_kinesis::handle(&p, event).await
    })
}

/// The order API (the order-publisher function's handler) with its publisher.
pub(crate) struct Publisher {
    publisher: KinesisPublisher,
    history: DynamoOrderStore,
}

impl OrderApi for Publisher {
    async fn handle(&self, request: ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse> {
        let event = LambdaEvent::new(request, Context::default());
        api::handle(&self.publisher, &self.history, event)
            .await
            .map_err(|never| anyhow!("the order API answers every request: {never}"))
    }
}

async fn get(api: &Publisher, order_id: &str) -> Result<ApiGatewayV2httpResponse> {
    api.handle(api_request(
        "GET",
        &format!("/orders/{order_id}"),
        None,
        &[],
    )?)
    .await
}

impl Harness for SelfReadStack {
    const ACCEPTED: i64 = 202;
    type Api = Publisher;

    fn dynamo(&self) -> &LocalDynamo {
        &self.dynamo
    }
    fn kinesis_endpoint(&self) -> Option<&str> {
        Some(&self.kinesis.endpoint)
    }
    fn tables(&self) -> Tables {
        Tables {
            orders: self.orders_table.clone(),
            rewards: self.rewards_table.clone(),
            orders_stream_arn: String::new(),
        }
    }
    fn rewards(&self) -> &DynamoRewardsStore {
        &self.rewards
    }
    fn events(&self) -> EventSource {
        EventSource::Stream
    }

    async fn order_api(&self, faults: Option<&Faults>) -> Result<Publisher> {
        let client = match faults.and_then(|f| f.kinesis.as_ref()) {
            Some(proxy) => client_for(&proxy.endpoint).await,
            None => self.kinesis.client.clone(),
        };
        Ok(Publisher {
            publisher: KinesisPublisher::new(client, &self.stream.name),
            history: self.history.clone(),
        })
    }

    async fn consume_racing(&self, chaos: &ConsumerChaos, faults: &Faults) -> Result<TriggerStats> {
        let client = self.dynamo.client_via(&faults.dynamo.endpoint).await;
        let source = self.stream.source();
        let (mut history, mut rewards) = (Vec::new(), Vec::new());
        for (salt, duplicates) in [(0xA, true), (0xB, false)] {
            let (h, r) = (salt ^ 0x10, salt ^ 0x20);
            let processor = history_processor(client.clone(), &self.orders_table, source.clone());
            let store = chaos.crashing(processor.store().clone(), h);
            let invoker = history_in_process(processor.with_store(store).concurrency(16));
            let invoker = duplicating(invoker, chaos.copies(h, duplicates), records);
            let mapping = self.trigger(ORDER_HISTORY_FUNCTION, invoker).await?;
            history.push(chaos.sized(mapping, h));
            let processor =
                rewards_kinesis::processor(client.clone(), &self.rewards_table, source.clone());
            let store = chaos.crashing(processor.store().clone(), r);
            let invoker = rewards_in_process(processor.with_store(store).concurrency(16));
            let invoker = duplicating(invoker, chaos.copies(r, duplicates), records);
            let mapping = self.trigger(REWARDS_FUNCTION, invoker).await?;
            rewards.push(chaos.sized(mapping, r));
        }
        let (h, r) = tokio::join!(drain_all(&mut history), drain_all(&mut rewards));
        let mut stats = h?;
        stats.add(&r?);
        // No sweeper holds a copy: the runbook replays what the mappings gave up on from the
        // stream, while it still holds the records.
        let (h, r) = tokio::join!(
            replay_given_up(&mut history, REPLAY_ROUNDS),
            replay_given_up(&mut rewards, REPLAY_ROUNDS)
        );
        self.replayed.store(h? + r?, Ordering::Relaxed);
        Ok(stats)
    }

    /// No pending events to sweep (the stream is the only copy of an event no consumer
    /// processed): what the operator's replay delivered again in the race.
    async fn sweep(&self, _: &ConsumerChaos, _: &Faults) -> Result<Option<usize>> {
        Ok(Some(self.replayed.load(Ordering::Relaxed)))
    }

    fn describe(&self) -> Vec<String> {
        vec![
            format!(
                "local DynamoDB: {} | local Kinesis (kinesalite): {}",
                self.dynamo.endpoint, self.kinesis.endpoint
            ),
            format!(
                "from patterns/self-read/template.yaml: stream {} ({} shards), tables {} and {}\n",
                self.stream.name,
                self.stream.shard_ids.len(),
                self.orders_table,
                self.rewards_table
            ),
        ]
    }

    /// The read-your-writes gap: before order-history ran, the first order is not there yet.
    async fn demo_placed(&self, api: &Publisher, orders: &DemoOrders) -> Result<()> {
        println!(
            "order API: {} orders accepted (202), {} records published (client retries publish again; nothing written to DynamoDB)",
            orders.accepted.len(), orders.sent
        );
        let first = orders.accepted.first().cloned().unwrap_or_default();
        let before = get(api, &first).await?;
        let retry_after = before
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok());
        println!(
            "GET /orders/{first} before order-history: {} (Retry-After: {})",
            before.status_code,
            retry_after.unwrap_or("none")
        );
        ensure!(
            before.status_code == 404,
            "order {first} was readable before order-history ran"
        );
        Ok(())
    }

    async fn demo_deliver(&self, api: &Publisher, orders: &DemoOrders, _: usize) -> Result<usize> {
        let (h, r) = self.deliver_all().await?;
        println!(
            "stream → order-history: {} records in {} invocations | stream → rewards: {} records in {} invocations",
            h.records_delivered, h.invocations, r.records_delivered, r.invocations
        );
        let first = orders.accepted.first().cloned().unwrap_or_default();
        let after = get(api, &first).await?.status_code;
        println!("GET /orders/{first} after order-history: {after}");
        ensure!(
            after == 200,
            "order {first} unreadable after order-history ran"
        );
        self.deliver_all().await?;
        println!("redelivery of the whole stream to both consumers: every record a duplicate by event id");
        Ok(0)
    }

    async fn demo_check(
        &self,
        api: &Publisher,
        orders: &DemoOrders,
        _: &Collector,
        _: usize,
    ) -> Result<&'static str> {
        let mut unreadable = 0;
        for order_id in &orders.accepted {
            unreadable += usize::from(get(api, order_id).await?.status_code != 200);
        }
        ensure!(unreadable == 0, "{unreadable} accepted orders not readable");
        Ok("every accepted order is readable; ")
    }
}

fn records(event: &mut KinesisEvent) -> &mut Vec<aws_lambda_events::kinesis::KinesisEventRecord> {
    &mut event.records
}
