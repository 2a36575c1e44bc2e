//! Patterns 1 (outbox) and 2 (CDC on the order table): the order-writer's handler on the
//! pattern's order store, the stream consumer's handler behind the local DynamoDB stream mapping
//! with the template's settings, each on its own latency proxy and capacity meter.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use devkit::chaos::order_id_of;
use devkit::demo::api_request;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::stack::{in_process, in_process_changes, CONSUMER_FUNCTION};
use devkit::trigger::DynamoStream;
use devkit::{Invoke, LocalDynamo, Pattern, Stack, StreamClient, Trigger};
use order_service::handlers::order_api;
use order_service::store::cdc::CdcOrderStore;
use order_service::store::dynamodb::DynamoOrderStore;
use order_service::store::OrderStore;
use rewards_service::service;

use super::capacity::CapacityMeter;
use super::watch::Watch;
use super::workload::PlannedOrder;
use super::{arrival, scan, storage, Options, PatternRun, Side};

pub async fn run(pattern: Pattern, opts: &Options, orders: &[PlannedOrder]) -> Result<PatternRun> {
    let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
    let stack = Stack::on_pattern(dynamo, pattern).await?;
    let plan = FaultPlan::latency(opts.latency);
    let writer_proxy = FaultProxy::start(&stack.dynamo.endpoint, plan.clone()).await?;
    let consumer_proxy = FaultProxy::start(&stack.dynamo.endpoint, plan.clone()).await?;
    let stream_proxy = FaultProxy::start(&stack.dynamo.endpoint, plan).await?;
    let (writer_meter, consumer_meter) = (CapacityMeter::default(), CapacityMeter::default());
    let writer_client = writer_meter.on(&stack.dynamo.client_via(&writer_proxy.endpoint).await);
    let consumer_client =
        consumer_meter.on(&stack.dynamo.client_via(&consumer_proxy.endpoint).await);
    let processor = service::processor(
        consumer_client,
        &stack.tables.rewards,
        stack.tables.orders_source(),
    )
    .retention_seconds(stack.retention_seconds())
    .expect("a retention in range");
    let source = stack.template.stream_source(CONSUMER_FUNCTION)?;
    let stream = DynamoStream {
        client: StreamClient::new(&stream_proxy.endpoint, &stack.dynamo.sdk_config)?,
        arn: stack.tables.orders_stream_arn.clone(),
    };
    let concurrency = opts.consumer_concurrency;
    // The mapping gathers for the template's batching window, as Lambda does, then invokes.
    let window_seconds: u64 = stack
        .template
        .parameter("StreamBatchingWindowSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let polling = std::time::Duration::from_secs(window_seconds.max(1));
    let started = Instant::now();
    let (seen, stats) = match pattern {
        Pattern::Outbox => {
            let writer = Arc::new(DynamoOrderStore::new(writer_client, &stack.tables.orders));
            let reader = Arc::new(stack.orders.clone());
            let trigger = Trigger::new(source, stream, in_process(processor, concurrency));
            drive(&stack, writer, reader, trigger, orders, opts, polling).await?
        }
        Pattern::Cdc => {
            let writer = Arc::new(CdcOrderStore::new(writer_client, &stack.tables.orders));
            let reader = Arc::new(stack.cdc_orders());
            let trigger = Trigger::new(source, stream, in_process_changes(processor, concurrency));
            drive(&stack, writer, reader, trigger, orders, opts, polling).await?
        }
        Pattern::SelfRead => bail!("pattern 3 runs in compare::self_read"),
    };
    let elapsed = started.elapsed();
    let mut stored = storage::Storage::new();
    storage::add_table(
        &mut stored,
        "orders",
        &scan(&stack.dynamo.client, &stack.tables.orders).await?,
    );
    storage::add_table(
        &mut stored,
        "rewards",
        &scan(&stack.dynamo.client, &stack.tables.rewards).await?,
    );
    Ok(PatternRun {
        pattern,
        writer: Side {
            name: "order-writer".into(),
            requests: writer_proxy.stats().requests,
            units: writer_meter.units(),
        },
        consumers: vec![Side {
            name: "stream-consumer (rewards)".into(),
            requests: consumer_proxy.stats().requests,
            units: consumer_meter.units(),
        }],
        stream_reads: stream_proxy.stats().requests,
        kinesis: None,
        seen,
        storage: stored,
        mappings: vec![("stream-consumer".into(), stats)],
        polling: format!(
            "the DynamoDB stream mapping reads to the end of the shard and invokes; after a batch smaller than BatchSize it waits {} s before the next read (the template's MaximumBatchingWindowInSeconds {window_seconds}: Lambda gathers up to that long); BatchSize {}; one stream shard (dynoxide)",
            polling.as_secs(),
            stack.template.stream_source(CONSUMER_FUNCTION)?.batch_size
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
    polling: std::time::Duration,
) -> Result<(super::watch::Seen, devkit::TriggerStats)>
where
    O: OrderStore + Send + Sync + 'static,
    I: Invoke + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mapping = tokio::spawn(async move {
        trigger.source.polling_interval = polling;
        let result = trigger
            .follow(async {
                let _ = stopped.await;
            })
            .await;
        result.map(|()| trigger.stats.clone())
    });
    let watch = Arc::new(Watch::default());
    let (placed_all, placing_done) = tokio::sync::watch::channel(false);
    let placing = {
        let watch = watch.clone();
        let reader = reader.clone();
        let orders = orders.to_vec();
        let rate = opts.rate_per_second;
        async move {
            let start = tokio::time::Instant::now();
            let mut tasks = Vec::with_capacity(orders.len());
            for (i, order) in orders.into_iter().enumerate() {
                tokio::time::sleep_until(start + arrival(i, rate)).await;
                let (writer, reader, watch) = (writer.clone(), reader.clone(), watch.clone());
                tasks.push(tokio::spawn(async move {
                    place(&*writer, &*reader, &watch, &order).await
                }));
            }
            let mut failed = 0;
            for task in tasks {
                if !matches!(task.await, Ok(Ok(()))) {
                    failed += 1;
                }
            }
            let _ = placed_all.send(true);
            ensure!(failed == 0, "{failed} orders were not placed");
            Ok(())
        }
    };
    let readable = |order_id: String| {
        let reader = reader.clone();
        async move { matches!(reader.get_order(&order_id).await, Ok(Some(_))) }
    };
    let watching = watch.run(&stack.rewards, readable, &placing_done, opts.settle_timeout);
    let (placed, watched) = tokio::join!(placing, watching);
    let _ = stop.send(());
    let stats = mapping.await.context("the mapping's task")??;
    placed?;
    watched?;
    Ok((watch.seen(), stats))
}

async fn place<O: OrderStore>(
    writer: &O,
    reader: &O,
    watch: &Watch,
    order: &PlannedOrder,
) -> Result<()> {
    let request = api_request("POST", "/orders", Some(order.body()), &[])?;
    let response = order_api::respond(writer, &request, None)
        .await
        .unwrap_or_else(|e| e.into_response());
    let answered = Instant::now();
    ensure!(
        response.status_code == 201,
        "POST /orders answered {}",
        response.status_code
    );
    let order_id =
        order_id_of(response.body.as_ref()).ok_or_else(|| anyhow!("no order id in the answer"))?;
    let readable = matches!(reader.get_order(&order_id).await, Ok(Some(_)));
    watch.answered(order_id, order.customer.clone(), answered, readable);
    Ok(())
}
