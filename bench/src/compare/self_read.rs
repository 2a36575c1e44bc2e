//! Pattern 3 (self-read): the order API publishing to kinesalite through a latency proxy, both
//! consumers (order-history, rewards) behind their own local Kinesis mappings with the template's
//! settings, each consumer on its own DynamoDB latency proxy and capacity meter.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use devkit::demo::api_request;
use devkit::kinesis::{client_for, LocalKinesis};
use devkit::kinesis_trigger::KinesisTrigger;
use devkit::patterns::self_read::{
    history_in_process, history_processor, rewards_in_process, SelfReadStack,
    ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION,
};
use devkit::template::StartingPosition;
use devkit::{Invoke, LocalDynamo, Pattern, TriggerStats};
use order_service::self_read::api;
use order_service::self_read::kinesis::KinesisPublisher;
use rewards_service::handlers::kinesis as rewards_kinesis;

use super::prices::KINESIS_PUT_UNIT_BYTES;
use super::watch::Watch;
use super::workload::PlannedOrder;
use super::{
    answered, follow_until, place_and_watch, readable, stored, KinesisPuts, Metered, Options,
    PatternRun,
};

pub async fn run(opts: &Options, orders: &[PlannedOrder]) -> Result<PatternRun> {
    let kinesis = LocalKinesis::start().await.map_err(|e| anyhow!("{e}"))?;
    let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
    let stack = SelfReadStack::on(dynamo, kinesis).await?;
    let put = Metered::start(&stack.kinesis.endpoint, opts).await?;
    let read_proxy = Metered::start(&stack.kinesis.endpoint, opts).await?.proxy;
    let history = Metered::start(&stack.dynamo.endpoint, opts).await?;
    let rewards = Metered::start(&stack.dynamo.endpoint, opts).await?;
    let (history_client, rewards_client) = (
        history.client(&stack.dynamo).await,
        rewards.client(&stack.dynamo).await,
    );
    let stream_name = stack.stream.name.clone();
    let publisher = Arc::new(KinesisPublisher::new(
        client_for(&put.proxy.endpoint).await,
        &stream_name,
    ));
    let history_mapping = KinesisTrigger::open(
        stack.template.kinesis_source(ORDER_HISTORY_FUNCTION)?,
        client_for(&read_proxy.endpoint).await,
        &stream_name,
        history_in_process(history_processor(
            history_client,
            &stack.orders_table,
            stack.stream.source(),
        )),
    )
    .await?;
    let rewards_mapping = KinesisTrigger::open(
        stack.template.kinesis_source(REWARDS_FUNCTION)?,
        client_for(&read_proxy.endpoint).await,
        &stream_name,
        rewards_in_process(
            rewards_kinesis::processor(rewards_client, &stack.rewards_table, stack.stream.source())
                .concurrency(opts.consumer_concurrency),
        ),
    )
    .await?;
    let polling_ms = history_mapping.source.polling_interval.as_millis();
    let batch_size = history_mapping.source.batch_size;

    let started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let history_task = follow(history_mapping, &stopped);
    let rewards_task = follow(rewards_mapping, &stopped);

    let watch = Arc::new(Watch::default());
    let placed = place(&stack, publisher, &watch, orders, opts).await;
    let _ = stop.send(true);
    let history_stats = history_task.await.context("order-history's mapping")??;
    let rewards_stats = rewards_task.await.context("the rewards mapping")??;
    placed?;
    let elapsed = started.elapsed();

    let puts = published(&stack).await?;
    Ok(PatternRun {
        pattern: Pattern::SelfRead,
        writer: put.side("order-publisher"),
        consumers: vec![history.side("order-history"), rewards.side("rewards-kinesis-consumer")],
        stream_reads: read_proxy.stats().requests,
        kinesis: Some(puts),
        broker: None,
        seen: watch.seen(),
        storage: stored(&stack.dynamo, &stack.orders_table, &stack.rewards_table).await?,
        mappings: vec![
            ("order-history".into(), history_stats),
            ("rewards-kinesis-consumer".into(), rewards_stats),
        ],
        polling: format!(
            "two Kinesis mappings, each reading each of the {} shards on its own; after a batch smaller than BatchSize a shard waits {polling_ms} ms before the next read (the template's MaximumBatchingWindowInSeconds, at least Lambda's one poll a second per shard); BatchSize {batch_size}",
            stack.stream.shard_ids.len()
        ),
        elapsed,
    })
}

/// Places every order through the order API (publishing to Kinesis) while `watch` looks.
async fn place(
    stack: &SelfReadStack,
    publisher: Arc<KinesisPublisher>,
    watch: &Arc<Watch>,
    orders: &[PlannedOrder],
    opts: &Options,
) -> Result<()> {
    let reader = Arc::new(stack.history.clone());
    let place = |order: PlannedOrder| {
        let (publisher, history, watch) = (publisher.clone(), reader.clone(), watch.clone());
        async move {
            let request = api_request("POST", "/orders", Some(order.body()), &[])?;
            let response = api::respond(&*publisher, &*history, &request, None)
                .await
                .unwrap_or_else(|e| e.into_response());
            answered(&watch, &order, response, 202, |id| readable(&*history, id)).await
        }
    };
    place_and_watch(watch, &stack.rewards, orders, opts, place, |id| {
        readable(&*reader, id)
    })
    .await
}

fn follow<I: Invoke<KinesisEvent> + 'static>(
    mut mapping: KinesisTrigger<I>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<TriggerStats>> {
    follow_until(stopped, move |until| async move {
        mapping.follow(until).await.map(|()| mapping.stats.clone())
    })
}

/// Every record in the stream, read on the direct client (not counted as a mapping's read) from
/// its start with no filter, sized as Kinesis bills a put: data plus partition key, in 25 KB
/// payload units.
async fn published(stack: &SelfReadStack) -> Result<KinesisPuts> {
    let mut source = stack.template.kinesis_source(ORDER_HISTORY_FUNCTION)?;
    source.starting_position = StartingPosition::TrimHorizon;
    source.filter_patterns.clear();
    let nothing = |_: KinesisEvent| async { Ok::<_, String>(KinesisEventResponse::default()) };
    let client = stack.kinesis.client.clone();
    let mut all = KinesisTrigger::open(source, client, &stack.stream.name, nothing).await?;
    let mut puts = KinesisPuts {
        shards: stack.stream.shard_ids.len(),
        ..Default::default()
    };
    for record in all.mapped_records().await? {
        let size = (record.kinesis.data.len() + record.kinesis.partition_key.len()) as u64;
        puts.records += 1;
        puts.bytes += size;
        puts.payload_units += size.div_ceil(KINESIS_PUT_UNIT_BYTES).max(1);
    }
    Ok(puts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_published_record_is_counted_and_sized_as_kinesis_bills_it() {
        let Some(kinesis) = LocalKinesis::start_or_skip("published").await.unwrap() else {
            return;
        };
        let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let stack = SelfReadStack::on(dynamo, kinesis).await.unwrap();
        let big = vec![b'x'; KINESIS_PUT_UNIT_BYTES as usize];
        for (key, data) in [("k1", b"abc".to_vec()), ("k2", big)] {
            let put = stack
                .kinesis
                .client
                .put_record()
                .stream_name(&stack.stream.name);
            let data = aws_sdk_kinesis::primitives::Blob::new(data);
            put.partition_key(key).data(data).send().await.unwrap();
        }
        let puts = published(&stack).await.unwrap();
        assert_eq!((puts.records, puts.payload_units), (2, 3));
        assert_eq!(puts.bytes, 5 + 2 + KINESIS_PUT_UNIT_BYTES);
    }
}
