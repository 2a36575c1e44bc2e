//! Pattern 3, self-read, on one machine: the embedded DynamoDB with the pattern's tables,
//! kinesalite with its stream, both read from `patterns/self-read/template.yaml`, the order API
//! publishing to it, and the two consumers behind local Kinesis mappings with the template's
//! settings.

use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
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

use crate::kinesis::{LocalKinesis, StreamDescription};
use crate::kinesis_trigger::{InvokeKinesis, KinesisTrigger};
use crate::local::{create_table, LocalDynamo, ORDERS_TABLE_ID, REWARDS_TABLE_ID};
use crate::pattern::Pattern;
use crate::template::Template;

pub mod chaos;
pub mod demo;

/// The order-history consumer's function in the template.
pub const ORDER_HISTORY_FUNCTION: &str = "OrderHistoryFunction";
/// The rewards consumer's function in the template.
pub const REWARDS_FUNCTION: &str = "RewardsKinesisConsumerFunction";

pub use history::HistoryProcessor;

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
        let suffix = if dynamo.is_embedded() {
            String::new()
        } else {
            format!("-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        };
        let mut names = Vec::new();
        for logical_id in [ORDERS_TABLE_ID, REWARDS_TABLE_ID] {
            let spec = template.table(logical_id)?;
            let name = format!("{}{suffix}", spec.name);
            create_table(&dynamo.client, &spec, &name).await?;
            names.push(name);
        }
        let spec = template
            .kinesis_streams()?
            .into_iter()
            .next()
            .context("patterns/self-read/template.yaml has no Kinesis stream")?;
        let stream = kinesis.create_stream(&spec.name, spec.shard_count).await?;
        let rewards_table = names.pop().expect("two tables");
        let orders_table = names.pop().expect("two tables");
        Ok(Self {
            history: DynamoOrderStore::new(dynamo.client.clone(), &orders_table),
            rewards: DynamoRewardsStore::new(dynamo.client.clone(), &rewards_table),
            dynamo,
            kinesis,
            template,
            orders_table,
            rewards_table,
            stream,
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
    pub async fn trigger<I: InvokeKinesis>(
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

    /// Both consumers' mappings drained once, side by side.
    pub async fn deliver_all(&self) -> Result<()> {
        let mut history = self
            .trigger(
                ORDER_HISTORY_FUNCTION,
                history_in_process(self.history_processor()),
            )
            .await?;
        let mut rewards = self
            .trigger(
                REWARDS_FUNCTION,
                rewards_in_process(self.rewards_processor()),
            )
            .await?;
        let (h, r) = tokio::join!(history.drain(), rewards.drain());
        h?;
        r?;
        Ok(())
    }
}

pub use history::processor as history_processor;

/// The order-history function's handler, invoked in process.
pub fn history_in_process<S>(processor: Processor<OrderHistoryConsumer, S>) -> impl InvokeKinesis
where
    S: ConsumerStore + 'static,
{
    let processor = Arc::new(processor);
    move |event: KinesisEvent| {
        let processor = processor.clone();
        async move {
            history::handle(&processor, LambdaEvent::new(event, Context::default()))
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// The rewards Kinesis function's handler, invoked in process.
pub fn rewards_in_process<S>(processor: Processor<RewardsConsumer, S>) -> impl InvokeKinesis
where
    S: ConsumerStore + 'static,
{
    let processor = Arc::new(processor);
    move |event: KinesisEvent| {
        let processor = processor.clone();
        async move {
            rewards_kinesis::handle(&processor, LambdaEvent::new(event, Context::default()))
                .await
                .map_err(|e| e.to_string())
        }
    }
}
