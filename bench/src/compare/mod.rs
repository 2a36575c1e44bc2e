//! `make compare`: the three patterns and the broker deployment on one workload, with the same
//! latency added to every request to every AWS-compatible server through the fault proxy,
//! measured in one run and written to `docs/patterns.md` and `docs/patterns.svg`.
//!
//! - [`workload`]: the orders (Zipf-skewed customers), the same for every pattern.
//! - [`dynamo`] (outbox, CDC), [`self_read`] and [`broker`]: each pattern's real handlers behind
//!   its local event source mappings, orders placed at a fixed rate while the mappings poll.
//! - `crate::capacity`: `ConsumedCapacity` per side; requests are counted by the proxies.
//! - [`watch`]: end-to-end latency and the read-your-writes gap, seen from outside.
//! - [`storage`], [`prices`]: bytes one day later, and what a month of it costs.
//! - [`doc`], [`chart`]: the figures written into the document, and its chart.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use devkit::chaos::order_id_of;
use devkit::{Pattern, TriggerStats};
use futures::future::BoxFuture;
use order_service::store::OrderStore;
use rewards_service::store::dynamodb::DynamoRewardsStore;

pub mod broker;
pub mod chart;
pub mod doc;
pub mod dynamo;
pub mod figures;
pub mod prices;
pub mod self_read;
pub mod storage;
pub mod watch;
pub mod workload;

use crate::capacity::Units;
use storage::Storage;
use watch::{Seen, Watch};
use workload::PlannedOrder;

#[derive(Debug, Clone)]
pub struct Options {
    pub orders: usize,
    pub customers: usize,
    pub seed: u64,
    /// Added to every request to DynamoDB, DynamoDB Streams and Kinesis.
    pub latency: Duration,
    /// Orders placed per second (open loop: the same arrival times for every pattern).
    pub rate_per_second: f64,
    pub consumer_concurrency: usize,
    /// How long after the last order the watcher waits for everything to be visible.
    pub settle_timeout: Duration,
}

/// Requests per operation and capacity, over the whole run, for one side (a function).
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub name: String,
    pub requests: BTreeMap<String, u64>,
    pub units: Units,
}

impl Side {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// Kinesis records the API published, sized as Kinesis bills them.
#[derive(Debug, Clone, Default)]
pub struct KinesisPuts {
    pub records: u64,
    pub payload_units: u64,
    pub bytes: u64,
    pub shards: usize,
}

/// What the broker deployment asked of EventBridge and SQS.
#[derive(Debug, Clone, Default)]
pub struct BrokerCalls {
    /// Events on the bus, counted as the messages its rule delivered to the queue (each one an
    /// EventBridge event and an SQS request, billed to the queue's owner).
    pub events: u64,
    /// The relay's and the inbox mapping's calls by operation (`PutEvents`, `ReceiveMessage`,
    /// `DeleteMessageBatch`, ...).
    pub requests: BTreeMap<String, u64>,
}

impl BrokerCalls {
    /// SQS requests: the rule's deliveries and every call of the inbox's mapping.
    pub fn sqs_requests(&self) -> u64 {
        let mapping: u64 = (self.requests.iter())
            .filter(|(operation, _)| operation.as_str() != "PutEvents")
            .map(|(_, n)| n)
            .sum();
        self.events + mapping
    }
}

/// One pattern's run.
#[derive(Debug, Clone)]
pub struct PatternRun {
    pub pattern: Pattern,
    pub writer: Side,
    pub consumers: Vec<Side>,
    /// Stream reads by the mappings (polling: the count follows the clock, not the orders).
    pub stream_reads: BTreeMap<String, u64>,
    pub kinesis: Option<KinesisPuts>,
    /// The broker deployment's EventBridge and SQS calls.
    pub broker: Option<BrokerCalls>,
    pub seen: Seen,
    pub storage: Storage,
    pub mappings: Vec<(String, TriggerStats)>,
    /// What the mappings' polling was, in words.
    pub polling: String,
    pub elapsed: Duration,
}

/// What the pattern's orders and rewards tables hold after the run.
pub async fn stored(dynamo: &devkit::LocalDynamo, orders: &str, rewards: &str) -> Result<Storage> {
    let mut stored = Storage::new();
    for (role, table) in [("orders", orders), ("rewards", rewards)] {
        storage::add_table(&mut stored, role, &dynamo.scan(table).await?);
    }
    Ok(stored)
}

/// Runs a local mapping on a task of its own until `true` is sent on `stopped`'s channel:
/// `follow` is the mapping's follow loop, given that stop as a future, and returns its counts.
pub fn follow_until<T, F>(
    stopped: &tokio::sync::watch::Receiver<bool>,
    follow: impl FnOnce(BoxFuture<'static, ()>) -> F,
) -> tokio::task::JoinHandle<Result<T>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let mut stopped = stopped.clone();
    tokio::spawn(follow(Box::pin(async move {
        let _ = stopped.wait_for(|s| *s).await;
    })))
}

/// When order `index` arrives, from the start of placing.
pub fn arrival(index: usize, rate_per_second: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate_per_second.max(0.001))
}

/// Places every order at its arrival time (open loop: a task each) with `place`, while `watch`
/// looks for the rewards in `rewards` and for each order with `readable`; an order not placed,
/// or not visible in time, is an error.
pub async fn place_and_watch<P, PF, R, RF>(
    watch: &Watch,
    rewards: &DynamoRewardsStore,
    orders: &[PlannedOrder],
    opts: &Options,
    place: P,
    readable: R,
) -> Result<()>
where
    P: Fn(PlannedOrder) -> PF,
    PF: Future<Output = Result<()>> + Send + 'static,
    R: Fn(String) -> RF,
    RF: Future<Output = bool>,
{
    let (placed_all, placing_done) = tokio::sync::watch::channel(false);
    let placing = async {
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(orders.len());
        for (i, order) in orders.iter().enumerate() {
            tokio::time::sleep_until(start + arrival(i, opts.rate_per_second)).await;
            tasks.push(tokio::spawn(place(order.clone())));
        }
        let (mut failed, mut first) = (0, None);
        for task in tasks {
            let error = match task.await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => e.into(),
            };
            failed += 1;
            first.get_or_insert(error);
        }
        let _ = placed_all.send(true);
        match first {
            None => Ok(()),
            Some(e) => Err(e.context(format!("{failed} orders were not placed; the first"))),
        }
    };
    let watching = watch.run(rewards, readable, &placing_done, opts.settle_timeout);
    let (placed, watched) = tokio::join!(placing, watching);
    placed.and(watched)
}

/// Places every order through the order-writer's handler on `writer` ([`place_and_watch`]),
/// each looked for with `reader`.
pub async fn place_through_api<W: OrderStore + 'static, R: OrderStore + 'static>(
    watch: &Arc<Watch>,
    rewards: &DynamoRewardsStore,
    orders: &[PlannedOrder],
    opts: &Options,
    writer: Arc<W>,
    reader: Arc<R>,
) -> Result<()> {
    let place = |order: PlannedOrder| {
        let (writer, reader, watch) = (writer.clone(), reader.clone(), watch.clone());
        async move {
            let response = crate::post_order(&*writer, order.body(), None).await?;
            answered(&watch, &order, response, 201, |id| readable(&*reader, id)).await
        }
    };
    place_and_watch(watch, rewards, orders, opts, place, |id| {
        readable(&*reader, id)
    })
    .await
}

/// Whether `GET /orders/{id}`'s read finds the order.
pub async fn readable<O: order_service::store::OrderStore>(reader: &O, order_id: String) -> bool {
    matches!(reader.get_order(&order_id).await, Ok(Some(_)))
}

/// A side's latency proxy in front of `endpoint`, and the capacity meter on its DynamoDB client.
pub struct Metered {
    pub proxy: devkit::proxy::FaultProxy,
    meter: crate::capacity::CapacityMeter,
}

impl Metered {
    pub async fn start(endpoint: &str, opts: &Options) -> Result<Self> {
        let plan = devkit::proxy::FaultPlan::latency(opts.latency);
        let proxy = devkit::proxy::FaultProxy::start(endpoint, plan).await?;
        Ok(Self {
            proxy,
            meter: Default::default(),
        })
    }

    /// `dynamo`'s client through the proxy, metered.
    pub async fn client(&self, dynamo: &devkit::LocalDynamo) -> aws_sdk_dynamodb::Client {
        self.meter
            .on(&dynamo.client_via(&self.proxy.endpoint).await)
    }

    /// What the side asked for over the run, as `name`.
    pub fn side(&self, name: &str) -> Side {
        let (requests, units) = (self.proxy.stats().requests, self.meter.units());
        Side {
            name: name.into(),
            requests,
            units,
        }
    }
}

/// Tells `watch` when the API answered `order` with `response` (which must have `status`) and
/// whether `readable` finds the order right after.
pub async fn answered<F: Future<Output = bool>>(
    watch: &Watch,
    order: &PlannedOrder,
    response: ApiGatewayV2httpResponse,
    status: i64,
    readable: impl FnOnce(String) -> F,
) -> Result<()> {
    let answered = Instant::now();
    ensure!(
        response.status_code == status,
        "POST /orders answered {}",
        response.status_code
    );
    let order_id =
        order_id_of(response.body.as_ref()).ok_or_else(|| anyhow!("no order id in the answer"))?;
    let readable = readable(order_id.clone()).await;
    watch.answered(order_id, order.customer.clone(), answered, readable);
    Ok(())
}
