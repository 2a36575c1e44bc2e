//! The producer's price of per-key order, counted at the proxy with `make compare`'s added
//! latency: requests per order on the compare workload, ten orders of one customer at once from
//! ten function instances, and one customer's orders driven as hard as they go.
//!
//! Each `DynamoOrderStore` built here is one function instance: it keeps its own memory of the
//! counters it wrote, as one Lambda container does, and all share one connection pool.

use std::time::{Duration, Instant};

use anyhow::Result;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::{LocalDynamo, Stack};
use futures::future::join_all;
use order_service::store::dynamodb::DynamoOrderStore;

use crate::compare::arrival;
use crate::compare::workload::zipf_orders;
use crate::report::{Limit::AtMost, Row, Section};

/// Added to every request, as `make compare` adds it.
const LATENCY: Duration = Duration::from_millis(10);
/// `make compare`'s workload: its customers, arrival rate and seed.
const CUSTOMERS: usize = 200;
const RATE: f64 = 50.0;
const SEED: u64 = 7;
/// Concurrent orders of one customer, each from its own instance.
const SAME_KEY: usize = 10;

/// What some orders cost and how they went.
#[derive(Debug, Default)]
struct Orders {
    placed: usize,
    refused: usize,
    requests: u64,
    latencies: Vec<Duration>,
}

impl Orders {
    fn add(&mut self, (status, took): (i64, Duration)) {
        self.placed += 1;
        self.refused += usize::from(status != 201);
        self.latencies.push(took);
    }

    fn per_order(&self) -> f64 {
        self.requests as f64 / self.placed.max(1) as f64
    }

    /// The latency at `q` (0 to 1), in milliseconds.
    fn ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(at).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

struct Bench {
    stack: Stack,
    proxy: FaultProxy,
    client: aws_sdk_dynamodb::Client,
}

impl Bench {
    async fn start() -> Result<Self> {
        let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
        let proxy = FaultProxy::start(&stack.dynamo.endpoint, FaultPlan::latency(LATENCY)).await?;
        let client = stack.dynamo.client_via(&proxy.endpoint).await;
        Ok(Self {
            stack,
            proxy,
            client,
        })
    }

    fn instance(&self) -> DynamoOrderStore {
        DynamoOrderStore::new(self.client.clone(), &self.stack.tables.orders)
    }

    /// Runs `orders` and counts the requests they made.
    async fn count<F: std::future::Future<Output = Result<Orders>>>(
        &self,
        orders: F,
    ) -> Result<Orders> {
        let before = self.proxy.stats().total_requests();
        let mut orders = orders.await?;
        orders.requests = self.proxy.stats().total_requests() - before;
        Ok(orders)
    }
}

/// One `POST /orders` as API Gateway delivers it: its status and how long the answer took.
async fn post(store: DynamoOrderStore, body: String) -> Result<(i64, Duration)> {
    let started = Instant::now();
    let response = crate::post_order(&store, body, None).await?;
    Ok((response.status_code, started.elapsed()))
}

/// The compare workload, open loop at its rate, through one instance.
async fn zipf(bench: &Bench, count: usize) -> Result<Orders> {
    let store = bench.instance();
    let start = tokio::time::Instant::now();
    let tasks = zipf_orders(count, CUSTOMERS, SEED)
        .into_iter()
        .enumerate()
        .map(|(i, order)| {
            let store = store.clone();
            let at = start + arrival(i, RATE);
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                post(store, order.body()).await
            })
        });
    let mut orders = Orders::default();
    for answer in join_all(tasks.collect::<Vec<_>>()).await {
        orders.add(answer??);
    }
    Ok(orders)
}

/// `rounds` times, ten orders of one customer at once, each from a fresh instance.
async fn same_key(bench: &Bench, rounds: usize) -> Result<Orders> {
    let mut orders = Orders::default();
    for round in 0..rounds {
        let customer = format!("same-key-{round}");
        let tasks = (0..SAME_KEY).map(|_| {
            let body = crate::order_body(&customer, 1, 1000);
            tokio::spawn(post(bench.instance(), body))
        });
        for answer in join_all(tasks.collect::<Vec<_>>()).await {
            orders.add(answer??);
        }
    }
    Ok(orders)
}

/// `writers` instances placing orders of one customer back to back for `period`.
async fn hot_key(bench: &Bench, writers: usize, period: Duration) -> Result<(Orders, Duration)> {
    let customer = format!("hot-key-{writers}");
    let started = Instant::now();
    let tasks = (0..writers).map(|_| {
        let (store, customer) = (bench.instance(), customer.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while started.elapsed() < period {
                let body = crate::order_body(&customer, 1, 1000);
                answers.push(post(store.clone(), body).await?);
            }
            anyhow::Ok(answers)
        })
    });
    let mut orders = Orders::default();
    for answers in join_all(tasks.collect::<Vec<_>>()).await {
        answers??.into_iter().for_each(|a| orders.add(a));
    }
    Ok((orders, started.elapsed()))
}

/// The producer's rows: `quick` runs a quarter of the compare workload and shorter drives.
pub async fn section(quick: bool) -> Result<Section> {
    let bench = Bench::start().await?;
    let count = if quick { 500 } else { 2000 };
    let workload = bench.count(zipf(&bench, count)).await?;
    let same = bench
        .count(same_key(&bench, if quick { 2 } else { 5 }))
        .await?;
    let period = Duration::from_secs(if quick { 2 } else { 5 });
    let alone = bench
        .count(async { Ok(hot_key(&bench, 1, period).await?.0) })
        .await?;
    let (crowd, took) = hot_key(&bench, SAME_KEY, period).await?;
    let rate = |o: &Orders, d: Duration| (o.placed - o.refused) as f64 / d.as_secs_f64();
    let round_trip = alone.ms(0.5);
    let mut section = Section::new(&format!(
        "Producer: per-key order ({} ms added to every request, as `make compare`)",
        LATENCY.as_millis()
    ));
    section.rows = vec![
        Row::bounded(
            format!("order-writer: requests per order, `make compare`'s workload ({count} orders, {CUSTOMERS} customers, Zipf, {RATE} a second, one instance)"),
            format!(
                "{:.3} ({} requests for {} orders; {} refused answers); latency p50 {:.1} ms, p99 {:.1} ms",
                workload.per_order(), workload.requests, workload.placed, workload.refused,
                workload.ms(0.5), workload.ms(0.99)
            ),
            workload.per_order(),
            AtMost(1.1),
            "",
        ),
        Row::holds(
            format!("{SAME_KEY} orders of one customer at once, from {SAME_KEY} instances"),
            format!(
                "{} of {} acknowledged; {:.2} requests per order; latency p50 {:.0} ms, max {:.0} ms",
                same.placed - same.refused, same.placed, same.per_order(), same.ms(0.5), same.ms(1.0)
            ),
            "every one acknowledged (no 503)",
            same.refused == 0,
            format!("{} answered other than 201", same.refused),
        ),
        Row::info(
            "one customer's orders as fast as they go (a hot ordering key)",
            format!(
                "1 instance: {:.0} orders/s (an order's answer took {round_trip:.1} ms: at most {:.0} a second back to back), {:.2} requests per order; {SAME_KEY} instances: {:.0} orders/s, {} refused, latency p99 {:.0} ms",
                rate(&alone, period), 1000.0 / round_trip.max(0.001), alone.per_order(),
                rate(&crowd, took), crowd.refused, crowd.ms(0.99)
            ),
        ),
    ];
    section.notes.push(format!(
        "Producer: each row's requests are counted at the proxy, which adds {} ms to every request; \
         an instance is one `DynamoOrderStore` (one function instance: its own memory of the counters \
         it wrote, up to 4,096 keys). The writer expects the counter it last wrote for a key, or none: \
         a key's first order and a key it wrote last cost 1 `TransactWriteItems`; a key another \
         instance wrote last costs 2, the refusal carrying the stored counter (no read). On AWS the \
         refused transaction is billed its items' write units (DynamoDB's developer guide: capacity \
         \"is consumed even when the transaction is canceled\"); the local server reports none for it. \
         A hot key takes one commit per transaction round trip at best: the instances racing on it \
         lose rounds, each one more transaction, and wait a random pause between them.",
        LATENCY.as_millis()
    ));
    Ok(section)
}
