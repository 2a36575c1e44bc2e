//! Patterns 1 (outbox) and 2 (CDC on the order table): the order-writer's handler on the
//! pattern's order store, the stream consumer's handler behind the local DynamoDB stream mapping
//! with the template's settings, each on its own latency proxy and capacity meter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use devkit::stack::{in_process, in_process_changes, CONSUMER_FUNCTION};
use devkit::trigger::DynamoStream;
use devkit::{Invoke, LocalDynamo, Pattern, Stack, StreamClient, Trigger};
use order_service::store::cdc::CdcOrderStore;
use order_service::store::dynamodb::DynamoOrderStore;
use order_service::store::OrderStore;
use rewards_service::service;

use super::watch::Watch;
use super::workload::PlannedOrder;
use super::{follow_until, place_through_api, stored, Metered, Options, PatternRun};

pub async fn run(pattern: Pattern, opts: &Options, orders: &[PlannedOrder]) -> Result<PatternRun> {
    let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
    let stack = Stack::on_pattern(dynamo, pattern).await?;
    let (writer, consumer) = (
        Metered::start(&stack.dynamo.endpoint, opts).await?,
        Metered::start(&stack.dynamo.endpoint, opts).await?,
    );
    let stream_proxy = Metered::start(&stack.dynamo.endpoint, opts).await?.proxy;
    let (writer_client, consumer_client) = (
        writer.client(&stack.dynamo).await,
        consumer.client(&stack.dynamo).await,
    );
    let processor = service::processor(
        consumer_client,
        &stack.tables.rewards,
        stack.tables.orders_source(),
    )
    .retention_seconds(stack.retention_seconds())
    .expect("a retention in range");
    let mut source = stack.template.stream_source(CONSUMER_FUNCTION)?;
    let batch_size = source.batch_size;
    // The mapping gathers for the template's batching window, as Lambda does, then invokes (at
    // least a second apart: the window is in whole seconds, 0 when the template sets none).
    let window_seconds = source.polling_interval.as_secs();
    source.polling_interval = source.polling_interval.max(Duration::from_secs(1));
    let polling = source.polling_interval;
    let stream = DynamoStream {
        client: StreamClient::new(&stream_proxy.endpoint, &stack.dynamo.sdk_config)?,
        arn: stack.tables.orders_stream_arn.clone(),
    };
    let concurrency = opts.consumer_concurrency;
    let started = Instant::now();
    let (seen, stats) = match pattern {
        Pattern::Outbox => {
            let store = Arc::new(DynamoOrderStore::new(writer_client, &stack.tables.orders));
            let reader = Arc::new(stack.orders.clone());
            let trigger = Trigger::new(source, stream, in_process(processor, concurrency));
            drive(&stack, store, reader, trigger, orders, opts).await?
        }
        Pattern::Cdc => {
            let store = Arc::new(CdcOrderStore::new(writer_client, &stack.tables.orders));
            let reader = Arc::new(stack.cdc_orders());
            let trigger = Trigger::new(source, stream, in_process_changes(processor, concurrency));
            drive(&stack, store, reader, trigger, orders, opts).await?
        }
        Pattern::SelfRead => bail!("pattern 3 runs in compare::self_read"),
        Pattern::Broker => bail!("the broker deployment runs in compare::broker"),
    };
    let elapsed = started.elapsed();
    Ok(PatternRun {
        pattern,
        writer: writer.side("order-writer"),
        consumers: vec![consumer.side("stream-consumer (rewards)")],
        stream_reads: stream_proxy.stats().requests,
        kinesis: None,
        broker: None,
        seen,
        storage: stored(&stack.dynamo, &stack.tables.orders, &stack.tables.rewards).await?,
        mappings: vec![("stream-consumer".into(), stats)],
        polling: format!(
            "the DynamoDB stream mapping reads to the end of the shard and invokes; after a batch smaller than BatchSize it waits {} s before the next read (the template's MaximumBatchingWindowInSeconds {window_seconds}: Lambda gathers up to that long); BatchSize {}; one stream shard (dynoxide)",
            polling.as_secs(),
            batch_size
        ),
        elapsed,
    })
}

/// Places every order at its arrival time through `writer` while the mapping follows the stream
/// and the watcher looks; returns what the watcher saw and the mapping's counts.
async fn drive<O, I>(
    stack: &Stack,
    writer: Arc<O>,
    reader: Arc<O>,
    mut trigger: Trigger<I>,
    orders: &[PlannedOrder],
    opts: &Options,
) -> Result<(super::watch::Seen, devkit::TriggerStats)>
where
    O: OrderStore + Send + Sync + 'static,
    I: Invoke + 'static,
{
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mapping = follow_until(&stopped, move |until| async move {
        trigger.follow(until).await.map(|()| trigger.stats.clone())
    });
    let watch = Arc::new(Watch::default());
    let placed = place_through_api(&watch, &stack.rewards, orders, opts, writer, reader).await;
    let _ = stop.send(true);
    let stats = mapping.await.context("the mapping's task")??;
    placed?;
    Ok((watch.seen(), stats))
}
