//! The whole system on one machine: a local DynamoDB with the template's tables, the stores and
//! services the functions use, and the stream wiring between them.

use anyhow::{Context as _, Result};
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::{ConsumerStore, Processor};
use order_service::store::cdc::CdcOrderStore;
use order_service::store::dynamodb::DynamoOrderStore;
use rewards_service::consumer::RewardsConsumer;
use rewards_service::handlers::stream;
use rewards_service::handlers::sweeper::Sweeper;
use rewards_service::service::{self, RewardsProcessor};
use rewards_service::store::dynamodb::DynamoRewardsStore;

use crate::local::{LocalDynamo, Tables};
use crate::mapping::handler;
use crate::pattern::Pattern;
use crate::stream::StreamClient;
use crate::template::Template;
use crate::trigger::{DynamoStream, Invoke, Trigger};

pub const CONSUMER_FUNCTION: &str = "StreamConsumerFunction";

/// The rewards consumer on the engine, as the functions build it.
pub type Service = RewardsProcessor;

pub struct Stack {
    /// The pattern whose template made the tables and mappings.
    pub pattern: Pattern,
    pub dynamo: LocalDynamo,
    pub template: Template,
    pub tables: Tables,
    pub orders: DynamoOrderStore,
    pub rewards: DynamoRewardsStore,
    pub stream: StreamClient,
}

impl Stack {
    /// The embedded dynoxide (or `AWS_ENDPOINT_URL`'s server) with fresh tables.
    pub async fn start() -> Result<Self> {
        Self::on(LocalDynamo::start().await?).await
    }

    /// Fresh tables on `dynamo`. On a shared server the names get a unique suffix.
    pub async fn on(dynamo: LocalDynamo) -> Result<Self> {
        Self::on_pattern(dynamo, Pattern::Outbox).await
    }

    /// The embedded dynoxide (or `AWS_ENDPOINT_URL`'s server) with fresh tables from
    /// `pattern`'s template.
    pub async fn start_pattern(pattern: Pattern) -> Result<Self> {
        Self::on_pattern(LocalDynamo::start().await?, pattern).await
    }

    /// Fresh tables of `pattern`'s template on `dynamo`.
    pub async fn on_pattern(dynamo: LocalDynamo, pattern: Pattern) -> Result<Self> {
        let suffix = dynamo.run_suffix();
        Self::with_suffix(dynamo, &suffix, pattern).await
    }

    /// The template's tables under their own names, created if they are missing (the tables of
    /// `make ddb`, or of a deployed stage).
    pub async fn on_existing(dynamo: LocalDynamo) -> Result<Self> {
        Self::with_suffix(dynamo, "", Pattern::Outbox).await
    }

    async fn with_suffix(dynamo: LocalDynamo, suffix: &str, pattern: Pattern) -> Result<Self> {
        let template = Template::load(&pattern.template_path())?;
        let tables = dynamo.create_tables(&template, suffix).await?;
        let stream = StreamClient::new(&dynamo.endpoint, &dynamo.sdk_config)?;
        Ok(Self {
            pattern,
            orders: DynamoOrderStore::new(dynamo.client.clone(), &tables.orders),
            rewards: DynamoRewardsStore::new(dynamo.client.clone(), &tables.rewards),
            dynamo,
            template,
            tables,
            stream,
        })
    }

    /// The consumer's service as the function builds it, with the template's retention.
    pub fn service(&self) -> Service {
        self.service_with_retention(self.retention_seconds())
    }

    pub fn service_with_retention(&self, retention_seconds: i64) -> Service {
        service::processor(
            self.dynamo.client.clone(),
            &self.tables.rewards,
            self.tables.orders_source(),
        )
        .retention_seconds(retention_seconds)
        .expect("a retention in range")
    }

    /// The sweeper as its function builds it, redriving what is pending after `grace_seconds`,
    /// `limit` events a run.
    pub fn sweeper(&self, grace_seconds: i64, limit: usize) -> Sweeper {
        Sweeper {
            pending: Some(PendingEvents::new(
                self.dynamo.client.clone(),
                &self.tables.orders,
            )),
            processor: self.service(),
            order_history: None,
            grace_seconds,
            limit,
            pattern: self.pattern.runtime(),
        }
    }

    /// The order-writer's store under pattern 2: the order item alone, with its pending marker.
    pub fn cdc_orders(&self) -> CdcOrderStore {
        CdcOrderStore::new(self.dynamo.client.clone(), &self.tables.orders)
    }

    pub fn retention_seconds(&self) -> i64 {
        self.template
            .parameter("OutboxRetentionSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(service_runtime::config::DEFAULT_RETENTION_SECONDS)
    }

    /// A local event source mapping for the stream consumer, with the template's settings.
    pub fn trigger<I: Invoke>(&self, invoker: I) -> Result<Trigger<I>> {
        let source = self
            .template
            .stream_source(CONSUMER_FUNCTION)
            .context("reading the consumer's event source from template.yaml")?;
        let stream = DynamoStream {
            client: self.stream.clone(),
            arn: self.tables.orders_stream_arn.clone(),
        };
        Ok(Trigger::new(source, stream, invoker))
    }

    /// The stream consumer's handler of the stack's pattern, in process: [`in_process_changes`]
    /// under pattern 2, [`in_process`] otherwise.
    pub fn consumer<S>(&self, processor: Processor<RewardsConsumer, S>, n: usize) -> impl Invoke
    where
        S: ConsumerStore + 'static,
    {
        consumer_in_process(self.pattern == Pattern::Cdc, processor, n)
    }

    /// Outbox events `consumer` has yet to process, from the sweeper's pending index.
    pub async fn pending_for(&self, consumer: &str) -> Result<usize> {
        let far_future = service_runtime::Timestamp::now()
            .plus_seconds(3600)
            .to_string();
        let pending = PendingEvents::new(self.dynamo.client.clone(), &self.tables.orders);
        let waiting = pending.waiting_for(consumer, &far_future, usize::MAX);
        Ok(waiting.await?.len())
    }

    /// Every item of a table, read consistently (for checks and tests, not for hot paths).
    pub async fn scan(&self, table: &str) -> Result<Vec<crate::Item>> {
        self.dynamo.scan(table).await
    }

    /// Every record in the orders table's stream so far, unfiltered, in stream order.
    pub async fn stream_records(&self) -> Result<Vec<EventRecord>> {
        let nothing = |_: Event| async { Ok::<_, String>(DynamoDbEventResponse::default()) };
        let mut reader = self.trigger(nothing)?;
        reader.source.filter_patterns.clear();
        reader.mapped_records().await
    }
}

/// The stream consumer's handler, invoked in process with a batch: the Lambda entry point
/// itself, so its logs and metrics are the deployed function's.
pub fn in_process<S>(processor: Processor<RewardsConsumer, S>, concurrency: usize) -> impl Invoke
where
    S: ConsumerStore + 'static,
{
    consumer_in_process(false, processor, concurrency)
}

/// The stream consumer's handler under pattern 2 (the order table's own changes), invoked in
/// process with a batch, as [`in_process`] is under the outbox.
pub fn in_process_changes<S>(
    processor: Processor<RewardsConsumer, S>,
    concurrency: usize,
) -> impl Invoke
where
    S: ConsumerStore + 'static,
{
    consumer_in_process(true, processor, concurrency)
}

fn consumer_in_process<S>(
    changes: bool,
    processor: Processor<RewardsConsumer, S>,
    concurrency: usize,
) -> impl Invoke
where
    S: ConsumerStore + 'static,
{
    let processor = processor.concurrency(concurrency);
    handler(processor, move |p, event| async move {
        match changes {
            true => stream::handle_order_changes(&p, event).await,
            false => stream::handle(&p, event).await,
        }
    })
}
