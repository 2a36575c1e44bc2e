//! The rewards consumer (`rewards_service::service::processor`) on freshly placed orders: the
//! `make bench` table's consumer latency section and its chart.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use aws_lambda_events::dynamodb::EventRecord;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::{LocalDynamo, Stack};
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::Processor;
use order_service::domain::order::LineItem;
use order_service::domain::{Order, OrderRequest};
use order_service::service::{place_order, Placed};
use order_service::store::OrderStore;
use rewards_service::consumer::RewardsConsumer;
use rewards_service::service::{self, RewardsProcessor};

use super::{round_trips, Settings, Shape, StreamCursor, Timings, Workload};
use crate::chart::{self, Points};
use crate::report::{ms, Limit::AtLeast, Row, Section};

/// A local DynamoDB, a proxy in front of it, and the rewards processor going through the proxy.
pub struct RewardsLab {
    stack: Stack,
    proxy: FaultProxy,
    service: RewardsProcessor,
    cursor: StreamCursor,
    orders: Vec<Order>,
}

impl Workload for RewardsLab {
    type Consumer = RewardsConsumer;

    async fn start() -> Result<Self> {
        let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
        let proxy = FaultProxy::start(&stack.dynamo.endpoint, FaultPlan::none()).await?;
        let client = stack.dynamo.client_via(&proxy.endpoint).await;
        let service =
            service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
                .retention_seconds(stack.retention_seconds())?;
        let cursor = StreamCursor::default();
        Ok(Self {
            stack,
            proxy,
            service,
            cursor,
            orders: Vec::new(),
        })
    }

    fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    async fn place(&mut self, batch: usize, shape: Shape) -> Result<Vec<EventRecord>> {
        self.orders = place_shape(&self.stack.orders, &format!("b{batch}"), shape).await?;
        records_of(&mut self.cursor, &self.stack, &self.orders).await
    }

    fn processor(&self, s: Settings) -> Processor<RewardsConsumer, DynamoConsumerStore> {
        self.service
            .clone()
            .concurrency(s.concurrency)
            .events_per_transaction(s.events_per_transaction)
    }

    /// Every customer's ledger has the customer's orders applied in the order the stream
    /// carried them: sorted by when the order was placed, with `applied_at` growing along it.
    async fn held(&self) -> Result<bool> {
        let mut by_customer: HashMap<&str, Vec<&str>> = HashMap::new();
        for order in &self.orders {
            by_customer
                .entry(&order.customer_id)
                .or_default()
                .push(&order.order_id);
        }
        for (customer, expected) in by_customer {
            let page = service::rewards_of(&self.stack.rewards, customer, Some(100), None)
                .await
                .with_context(|| format!("reading the ledger of {customer}"))?;
            // Newest first from the API; oldest first here.
            let entries: Vec<_> = page.entries.iter().rev().collect();
            let applied: Vec<&str> = entries.iter().map(|e| e.order_id.as_str()).collect();
            if applied != expected
                || entries
                    .windows(2)
                    .any(|w| w[0].applied_at >= w[1].applied_at)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Places the orders of `shape` for customers named `<prefix>-c<i>`, one after the other so the
/// stream carries them in this order. Returns them in that order.
pub async fn place_shape<S: OrderStore>(
    store: &S,
    prefix: &str,
    shape: Shape,
) -> Result<Vec<Order>> {
    let mut orders = Vec::with_capacity(shape.records());
    for round in 0..shape.per_key {
        for c in 0..shape.keys {
            let items = vec![LineItem {
                sku: "SKU-1".to_owned(),
                quantity: 1,
                unit_price_cents: 100 * (1 + round as i64) + c as i64,
            }];
            let customer_id = format!("{prefix}-c{c}");
            let request = OrderRequest {
                customer_id,
                currency: "USD".to_owned(),
                items,
            };
            match place_order(store, request, None, None).await? {
                Placed::Created(order) => orders.push(order),
                Placed::Replayed(_) => bail!("a fresh order was answered as a replay"),
            }
        }
    }
    Ok(orders)
}

/// The outbox records of exactly `orders`, in stream order.
pub async fn records_of(
    cursor: &mut StreamCursor,
    stack: &Stack,
    orders: &[Order],
) -> Result<Vec<EventRecord>> {
    let wanted: HashSet<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
    let records: Vec<EventRecord> = cursor
        .outbox_inserts(&stack.stream, &stack.tables.orders_stream_arn)
        .await?
        .into_iter()
        .filter(|r| {
            matches!(r.change.new_image.get("aggregate_id"),
                Some(serde_dynamo::AttributeValue::S(id)) if wanted.contains(id.as_str()))
        })
        .collect();
    let (carried, placed) = (records.len(), orders.len());
    ensure!(
        carried == placed,
        "the stream carried {carried} of the {placed} outbox events placed"
    );
    Ok(records)
}

fn label(shape: Shape) -> String {
    let (records, keys) = (shape.records(), shape.keys);
    match shape.per_key {
        1 => format!("{records} records, {keys} distinct customers"),
        n => format!("{records} records, {keys} customers × {n}"),
    }
}

/// The goal of the headline row: concurrent against sequential, 100 customers at 25 ms.
const SPEEDUP_AT_25MS: f64 = 15.0;

/// The latencies of the table, the first also the chart's.
const LATENCIES: [Duration; 3] = [
    Duration::from_millis(25),
    Duration::from_millis(10),
    Duration::ZERO,
];
/// The table's shapes, and the batch sizes the chart adds (with the table's 100).
const SHAPES: [Shape; 2] = [Shape::distinct(100), Shape::new(10, 10)];
const SWEEP: [usize; 4] = [1, 10, 25, 50];

/// Concurrent (`concurrency` customers at a time) against sequential, at each of [`LATENCIES`]
/// on each of [`SHAPES`]; then the batch-size sweep at 25 ms for the chart (drawn into `chart`,
/// when given). Returns the section and the chart's data.
pub async fn section(
    concurrency: usize,
    repeats: usize,
    chart: Option<&Path>,
) -> Result<(Section, String)> {
    let mut plan: Vec<(Duration, Shape)> = Vec::new();
    for latency in LATENCIES {
        plan.extend(SHAPES.map(|s| (latency, s)));
    }
    plan.extend(SWEEP.map(|n| (LATENCIES[0], Shape::distinct(n))));
    let (fast, slow) = (Settings::concurrent(concurrency), Settings::ONE_AT_A_TIME);
    let warm_up = Shape::distinct(concurrency);
    let timings = Timings::measure::<RewardsLab>(repeats, &plan, [fast, slow], warm_up).await?;
    let figures = Figures {
        timings,
        fast,
        slow,
    };
    Ok((figures.section(), figures.chart(chart)?))
}

struct Figures {
    timings: Timings,
    fast: Settings,
    slow: Settings,
}

impl Figures {
    /// (concurrent, sequential, floor of the concurrent) of `shape` at `latency`.
    fn times(&self, latency: Duration, shape: Shape) -> [Duration; 3] {
        let floor = latency * round_trips(shape, self.fast) as u32;
        let t = &self.timings;
        [
            t.median(latency, shape, self.fast),
            t.median(latency, shape, self.slow),
            floor,
        ]
    }

    fn section(&self) -> Section {
        let mut section =
            Section::new("Stream-consumer batch latency (proxy in front of the local DynamoDB)");
        for latency in LATENCIES {
            for shape in SHAPES {
                let [concurrent, sequential, floor] = self.times(latency, shape);
                let speedup = sequential.as_secs_f64() / concurrent.as_secs_f64();
                let figure = format!("{}, {} ms per request", label(shape), latency.as_millis());
                let (cc, sq) = (ms(concurrent), ms(sequential));
                let mut measured =
                    format!("{cc} ms concurrent vs {sq} ms sequential: **{speedup:.1}×**");
                if !latency.is_zero() {
                    measured.push_str(&format!(" (floor {} ms)", ms(floor)));
                }
                section
                    .rows
                    .push(if latency == LATENCIES[0] && shape.per_key == 1 {
                        Row::bounded(figure, measured, speedup, AtLeast(SPEEDUP_AT_25MS), "×")
                    } else {
                        Row::info(figure, measured)
                    });
            }
        }
        let (held, batches) = (self.timings.held, self.timings.batches);
        section.rows.push(Row::holds(
            "per-customer order (ledger order = stream order, `applied_at` increasing)",
            format!("kept in {held} of {batches} batches"),
            "preserved",
            held == batches,
            format!("{} batches out of order", batches - held),
        ));
        section.notes.push(format!(
            "Consumer: each batch is freshly placed orders (re-delivered records would all be duplicates, \
             a different workload) read from the local stream, and one `process_stream` call of the \
             rewards consumer through `FaultProxy` with the stated latency added to every request; \
             concurrent is the deployed default (`CONSUMER_CONCURRENCY` = {} customers at a time, a \
             customer's consecutive records in one transaction, which also finishes their events), \
             sequential is the same processor one request at a time (concurrency 1, one event per \
             transaction). The floor is the longest chain of round trips (`bench/src/consumer/mod.rs`, \
             `round_trips`).",
            self.fast.concurrency
        ));
        let distinct = SHAPES[0];
        let [concurrent, sequential, _] = self.times(Duration::ZERO, distinct);
        let per_record = |d: Duration| d.as_secs_f64() * 1000.0 / distinct.records() as f64;
        section.notes.push(format!(
            "At 0 ms the proxy adds nothing: what remains is the local server's and the client's own \
             work, {:.2} ms per record sequential and {:.2} ms concurrent. That part does not shrink \
             with latency, so it bounds every ratio above (DynamoDB itself serves requests to \
             different items in parallel; the client's CPU is the part that stays, see the CPU \
             notes).",
            per_record(sequential),
            per_record(concurrent),
        ));
        section
    }

    /// The chart's data (the sweep plus the 100-record batch at 25 ms), and the chart drawn
    /// into `path` when given.
    fn chart(&self, path: Option<&Path>) -> Result<String> {
        let latency = LATENCIES[0];
        let mut series: [Points; 3] = Default::default();
        let mut data = String::from(
            "| records | concurrent (ms) | sequential (ms) | speed-up | floor (ms) |\n| ---: | ---: | ---: | ---: | ---: |\n",
        );
        for n in SWEEP.into_iter().chain([100]) {
            let figures = self.times(latency, Shape::distinct(n));
            for (points, d) in series.iter_mut().zip(figures) {
                points.push((n, d.as_secs_f64() * 1000.0));
            }
            let [cc, sq, fl] = figures.map(ms);
            let speedup = figures[1].as_secs_f64() / figures[0].as_secs_f64();
            data.push_str(&format!("| {n} | {cc} | {sq} | {speedup:.1}× | {fl} |\n"));
        }
        if let Some(path) = path {
            let title = format!(
                "stream-consumer batch latency, {} ms per DynamoDB request",
                latency.as_millis()
            );
            let label = format!("concurrent ({} customers at a time)", self.fast.concurrency);
            chart::draw(path, &title, &label, &series)?;
        }
        Ok(data)
    }
}
