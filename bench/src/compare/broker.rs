//! The broker deployment (pattern 1's outbox relayed through EventBridge): the order-writer's
//! relayed store; the relay behind the orders table's stream mapping, publishing to moto's bus;
//! the rule delivering to the rewards inbox's queue; the inbox behind the local SQS mapping.
//! Each side has its own latency proxy and capacity meter, the relay's `PutEvents` and the
//! inbox mapping's SQS calls theirs.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use devkit::demo::api_request;
use devkit::moto::LocalMoto;
use devkit::patterns::broker::{inbox_in_process, relay_in_process, BrokerStack, RELAY_FUNCTION};
use devkit::trigger::DynamoStream;
use devkit::{LocalDynamo, Pattern, StreamClient, Trigger, TriggerStats};
use order_service::handlers::order_api;
use order_service::store::dynamodb::DynamoOrderStore;

use super::watch::Watch;
use super::workload::PlannedOrder;
use super::{answered, place_and_watch, readable, stored, BrokerCalls, Metered, Options};
use super::{PatternRun, Side};

pub async fn run(opts: &Options, orders: &[PlannedOrder]) -> Result<PatternRun> {
    let moto = LocalMoto::start().await.map_err(|e| anyhow!("{}", e.0))?;
    let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
    let broker = BrokerStack::on_dynamo(dynamo, moto).await?;
    let (stack, moto) = (&broker.stack, &broker.moto);
    let [writer, relay, inbox] = [
        Metered::start(&stack.dynamo.endpoint, opts).await?,
        Metered::start(&stack.dynamo.endpoint, opts).await?,
        Metered::start(&stack.dynamo.endpoint, opts).await?,
    ];
    let stream_proxy = Metered::start(&stack.dynamo.endpoint, opts).await?.proxy;
    let publish = Metered::start(&moto.endpoint, opts).await?.proxy;
    let poll = Metered::start(&moto.endpoint, opts).await?.proxy;

    let relay_processor = broker.relay_on(
        relay.client(&stack.dynamo).await,
        moto.eventbridge_via(&publish.endpoint).await,
    )?;
    let source = stack.template.stream_source(RELAY_FUNCTION)?;
    let batch_size = source.batch_size;
    let stream = DynamoStream {
        client: StreamClient::new(&stream_proxy.endpoint, &stack.dynamo.sdk_config)?,
        arn: stack.tables.orders_stream_arn.clone(),
    };
    let concurrency = opts.consumer_concurrency;
    let mut trigger = Trigger::new(
        source,
        stream,
        relay_in_process(relay_processor.concurrency(concurrency)),
    );
    let window_seconds: u64 = stack
        .template
        .parameter("StreamBatchingWindowSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    trigger.source.polling_interval = std::time::Duration::from_secs(window_seconds.max(1));
    let inbox_processor = broker.inbox_on(inbox.client(&stack.dynamo).await)?;
    let mut mapping = broker
        .inbox_mapping(
            moto.sqs_via(&poll.endpoint).await,
            inbox_in_process(inbox_processor.concurrency(concurrency)),
        )
        .await?;
    let settings = mapping.settings.clone();

    let started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut relay_stopped = stopped.clone();
    let relay_task = tokio::spawn(async move {
        let stop = async move {
            let _ = relay_stopped.wait_for(|s| *s).await;
        };
        trigger.follow(stop).await.map(|()| trigger.stats.clone())
    });
    let mut inbox_stopped = stopped;
    let inbox_task = tokio::spawn(async move {
        let stop = async move {
            let _ = inbox_stopped.wait_for(|s| *s).await;
        };
        mapping.follow(stop).await.map(|()| mapping.stats.clone())
    });

    let watch = Arc::new(Watch::default());
    let store = Arc::new(DynamoOrderStore::relayed(
        writer.client(&stack.dynamo).await,
        &stack.tables.orders,
    ));
    let reader = Arc::new(stack.orders.clone());
    let place = |order: PlannedOrder| {
        let (store, reader, watch) = (store.clone(), reader.clone(), watch.clone());
        async move {
            let request = api_request("POST", "/orders", Some(order.body()), &[])?;
            let response = order_api::respond(&*store, &request, None)
                .await
                .unwrap_or_else(|e| e.into_response());
            answered(&watch, &order, response, 201, |id| readable(&*reader, id)).await
        }
    };
    let placed = place_and_watch(&watch, &stack.rewards, orders, opts, place, |id| {
        readable(&*reader, id)
    })
    .await;
    let _ = stop.send(true);
    let relay_stats = relay_task.await.context("the relay's mapping")??;
    let inbox_stats = inbox_task.await.context("the inbox's mapping")??;
    placed?;
    let elapsed = started.elapsed();

    let mut requests = publish.stats().requests;
    for (operation, count) in poll.stats().requests {
        *requests.entry(operation).or_default() += count;
    }
    let inbox_invocations = TriggerStats {
        invocations: inbox_stats.invocations,
        records_delivered: inbox_stats.messages_delivered,
        ..TriggerStats::default()
    };
    Ok(PatternRun {
        pattern: Pattern::Broker,
        writer: writer.side("order-writer"),
        consumers: vec![
            relay.side("order-relay (its progress)"),
            inbox.side("rewards-inbox"),
        ],
        stream_reads: stream_proxy.stats().requests,
        kinesis: None,
        broker: Some(BrokerCalls {
            events: inbox_stats.messages_delivered as u64,
            requests,
        }),
        seen: watch.seen(),
        storage: stored(&stack.dynamo.client, &stack.tables.orders, &stack.tables.rewards).await?,
        mappings: vec![
            ("order-relay".into(), relay_stats),
            ("rewards-inbox".into(), inbox_invocations),
        ],
        polling: format!(
            "the relay's DynamoDB stream mapping as patterns 1 and 2's (waits {} s after a batch smaller than BatchSize {batch_size}); the inbox's SQS mapping long-polls the queue 1 s at a time and gathers up to {} messages for at most {} s (the template's InboxBatchSize and InboxBatchingWindowSeconds); moto's bus, rule and queue",
            window_seconds.max(1),
            settings.batch_size,
            settings.batching_window.as_secs()
        ),
        elapsed,
    })
}

/// The broker's calls as a side of the requests table.
pub fn side(calls: &BrokerCalls) -> Side {
    Side {
        name: "EventBridge and SQS: the relay's PutEvents, the inbox mapping's calls".into(),
        requests: calls.requests.clone(),
        units: Default::default(),
    }
}
