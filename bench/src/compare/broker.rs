//! The broker deployment (pattern 1's outbox relayed through EventBridge): the order-writer's
//! relayed store; the relay behind the orders table's stream mapping, publishing to moto's bus;
//! the rule delivering to the rewards inbox's queue; the inbox behind the local SQS mapping.
//! Each side has its own latency proxy and capacity meter, the relay's `PutEvents` and the
//! inbox mapping's SQS calls theirs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use aws_lambda_events::sqs::SqsEvent;
use devkit::mapping::sqs::{SqsMapping, SqsStats};
use devkit::moto::LocalMoto;
use devkit::patterns::broker::{inbox_in_process, relay_in_process, BrokerStack, RELAY_FUNCTION};
use devkit::proxy::FaultProxy;
use devkit::trigger::DynamoStream;
use devkit::{Invoke, LocalDynamo, Pattern, StreamClient, Trigger, TriggerStats};
use order_service::store::dynamodb::DynamoOrderStore;

use super::watch::{Seen, Watch};
use super::workload::PlannedOrder;
use super::{follow_until, place_through_api, stored, BrokerCalls, Metered, Options};
use super::{PatternRun, Side};

/// Each side's proxy: the three functions' DynamoDB clients, the relay mapping's stream reads,
/// the relay's `PutEvents` and the inbox mapping's SQS calls.
struct Proxies {
    writer: Metered,
    relay: Metered,
    inbox: Metered,
    stream: FaultProxy,
    publish: FaultProxy,
    poll: FaultProxy,
}

impl Proxies {
    async fn start(broker: &BrokerStack, opts: &Options) -> Result<Self> {
        let (dynamo, moto) = (&broker.stack.dynamo.endpoint, &broker.moto.endpoint);
        Ok(Self {
            writer: Metered::start(dynamo, opts).await?,
            relay: Metered::start(dynamo, opts).await?,
            inbox: Metered::start(dynamo, opts).await?,
            stream: Metered::start(dynamo, opts).await?.proxy,
            publish: Metered::start(moto, opts).await?.proxy,
            poll: Metered::start(moto, opts).await?.proxy,
        })
    }
}

pub async fn run(opts: &Options, orders: &[PlannedOrder]) -> Result<PatternRun> {
    let moto = LocalMoto::start().await.map_err(|e| anyhow!("{}", e.0))?;
    let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
    let broker = BrokerStack::on_dynamo(dynamo, moto).await?;
    let stack = &broker.stack;
    let proxies = Proxies::start(&broker, opts).await?;
    let concurrency = opts.consumer_concurrency;
    let relay = broker.relay_on(
        proxies.relay.client(&stack.dynamo).await,
        broker.moto.eventbridge_via(&proxies.publish.endpoint).await,
    )?;
    let mut source = stack.template.stream_source(RELAY_FUNCTION)?;
    let batch_size = source.batch_size;
    // As patterns 1 and 2's mapping: the template's batching window, at least a second.
    source.polling_interval = source.polling_interval.max(Duration::from_secs(1));
    let polling = source.polling_interval.as_secs();
    let stream = DynamoStream {
        client: StreamClient::new(&proxies.stream.endpoint, &stack.dynamo.sdk_config)?,
        arn: stack.tables.orders_stream_arn.clone(),
    };
    let relay = relay_in_process(relay.concurrency(concurrency));
    let trigger = Trigger::new(source, stream, relay);
    let inbox = broker.inbox_on(proxies.inbox.client(&stack.dynamo).await)?;
    let sqs = broker.moto.sqs_via(&proxies.poll.endpoint).await;
    let mapping =
        (broker.inbox_mapping(sqs, inbox_in_process(inbox.concurrency(concurrency)))).await?;
    let settings = mapping.settings.clone();

    let started = Instant::now();
    let (seen, relay_stats, inbox_stats) =
        drive(&broker, &proxies, trigger, mapping, orders, opts).await?;
    let elapsed = started.elapsed();
    let mut requests = proxies.publish.stats().requests;
    for (operation, count) in proxies.poll.stats().requests {
        *requests.entry(operation).or_default() += count;
    }
    let inbox_invocations = TriggerStats {
        invocations: inbox_stats.invocations,
        records_delivered: inbox_stats.messages_delivered,
        ..TriggerStats::default()
    };
    Ok(PatternRun {
        pattern: Pattern::Broker,
        writer: proxies.writer.side("order-writer"),
        consumers: vec![
            proxies.relay.side("order-relay (its progress)"),
            proxies.inbox.side("rewards-inbox"),
        ],
        stream_reads: proxies.stream.stats().requests,
        kinesis: None,
        broker: Some(BrokerCalls {
            events: inbox_stats.messages_delivered as u64,
            requests,
        }),
        seen,
        storage: stored(&stack.dynamo, &stack.tables.orders, &stack.tables.rewards).await?,
        mappings: vec![
            ("order-relay".into(), relay_stats),
            ("rewards-inbox".into(), inbox_invocations),
        ],
        polling: format!(
            "the relay's DynamoDB stream mapping as patterns 1 and 2's (waits {} s after a batch smaller than BatchSize {batch_size}); the inbox's SQS mapping long-polls the queue 1 s at a time and gathers up to {} messages for at most {} s (the template's InboxBatchSize and InboxBatchingWindowSeconds); moto's bus, rule and queue",
            polling,
            settings.batch_size,
            settings.batching_window.as_secs()
        ),
        elapsed,
    })
}

/// Places every order at its arrival time through the relayed order store while both mappings
/// follow their sources and the watcher looks; what the watcher saw and the mappings' counts.
async fn drive<R: Invoke + 'static, Q: Invoke<SqsEvent> + 'static>(
    broker: &BrokerStack,
    proxies: &Proxies,
    mut trigger: Trigger<R>,
    mut mapping: SqsMapping<Q>,
    orders: &[PlannedOrder],
    opts: &Options,
) -> Result<(Seen, TriggerStats, SqsStats)> {
    let stack = &broker.stack;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay_task = follow_until(&stopped, move |until| async move {
        trigger.follow(until).await.map(|()| trigger.stats.clone())
    });
    let inbox_task = follow_until(&stopped, move |until| async move {
        mapping.follow(until).await.map(|()| mapping.stats.clone())
    });
    let watch = Arc::new(Watch::default());
    let store = Arc::new(DynamoOrderStore::relayed(
        proxies.writer.client(&stack.dynamo).await,
        &stack.tables.orders,
    ));
    let reader = Arc::new(stack.orders.clone());
    let placed = place_through_api(&watch, &stack.rewards, orders, opts, store, reader).await;
    let _ = stop.send(true);
    let relay_stats = relay_task.await.context("the relay's mapping")??;
    let inbox_stats = inbox_task.await.context("the inbox's mapping")??;
    placed?;
    Ok((watch.seen(), relay_stats, inbox_stats))
}

/// The broker's calls as a side of the requests table.
pub fn side(calls: &BrokerCalls) -> Side {
    Side {
        name: "EventBridge and SQS: the relay's PutEvents, the inbox mapping's calls".into(),
        requests: calls.requests.clone(),
        units: Default::default(),
    }
}
