//! What an order costs in DynamoDB: requests (counted at the proxy, per operation), write
//! capacity (from `ConsumedCapacity`, which the local server returns when asked), and TCP
//! connections opened (counted by a forwarder in front of the proxy).
//!
//! This pass is separate from the timed one: the capacity meter adds `ReturnConsumedCapacity` to
//! each request, and the connection counter is one more hop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::{LocalDynamo, Stack};
use order_service::store::dynamodb::DynamoOrderStore;
use rewards_service::service;
use tokio::net::{TcpListener, TcpStream};

use crate::capacity::CapacityMeter;
use crate::consumer::rewards::{place_shape, records_of};
use crate::consumer::{Shape, StreamCursor};
use crate::report::{Limit::AtMost, Row, Section};

/// Operations that read; none may appear on the consumer's path.
const READS: &[&str] = &[
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];

/// Requests per operation and write capacity, per order (or per record).
#[derive(Debug, Clone, Default)]
struct Cost {
    requests: BTreeMap<String, f64>,
    /// `None` when the server reported no capacity for these requests.
    write_units: Option<f64>,
}

impl Cost {
    fn total(&self) -> f64 {
        // A fold from +0.0: `sum()` of nothing is -0.0, which prints as "-0.00".
        self.requests.values().fold(0.0, |a, n| a + n)
    }

    fn reads(&self) -> f64 {
        let reads = self
            .requests
            .iter()
            .filter(|(op, _)| READS.contains(&op.as_str()));
        reads.fold(0.0, |a, (_, n)| a + n)
    }

    /// `2.00 (TransactWriteItems 1.00 + UpdateItem 1.00)`.
    fn breakdown(&self) -> String {
        let ops: Vec<String> = self
            .requests
            .iter()
            .map(|(op, n)| format!("{op} {n:.2}"))
            .collect();
        format!("{:.2} ({})", self.total(), ops.join(" + "))
    }

    fn wcu(&self) -> String {
        self.write_units
            .map_or_else(|| "not reported".to_owned(), |u| format!("{u:.1} WCU"))
    }
}

/// A TCP forwarder that counts the connections it accepts.
struct ConnectionCounter {
    endpoint: String,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectionCounter {
    async fn start(upstream_endpoint: &str) -> Result<Self> {
        let upstream: http::Uri = upstream_endpoint.parse()?;
        let upstream = upstream
            .authority()
            .context("upstream endpoint has no host")?
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self {
            endpoint,
            accepted,
            task,
        })
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The counters, read before a step to take the step's own share afterwards.
struct Meters {
    proxy: FaultProxy,
    capacity: CapacityMeter,
    connections: ConnectionCounter,
}

type Mark = (BTreeMap<String, u64>, crate::capacity::Units, u64);

impl Meters {
    fn mark(&self) -> Mark {
        let connections = self.connections.accepted.load(Ordering::Relaxed);
        (
            self.proxy.stats().requests,
            self.capacity.units(),
            connections,
        )
    }

    /// Per-unit cost since `mark`, and the connections opened since.
    fn since(&self, (requests, capacity, connections): &Mark, units: usize) -> (Cost, u64) {
        let now = self.mark();
        let per = |n: f64| n / units.max(1) as f64;
        let requests = (now.0.iter())
            .filter_map(|(op, n)| {
                let d = n - requests.get(op).copied().unwrap_or(0);
                (d > 0).then(|| (op.clone(), per(d as f64)))
            })
            .collect();
        let write_units =
            (now.1.reports > capacity.reports).then(|| per(now.1.write - capacity.write));
        (
            Cost {
                requests,
                write_units,
            },
            now.2 - connections,
        )
    }
}

/// `POST /orders` through the order-writer's handler, as API Gateway delivers it; whether it
/// was answered as a replay.
async fn post_order(store: &DynamoOrderStore, customer: &str, key: Option<&str>) -> Result<bool> {
    let response = crate::post_order(store, crate::order_body(customer, 1, 1000), key).await?;
    ensure!(
        response.status_code == 201,
        "POST /orders answered {}",
        response.status_code
    );
    Ok(response.headers.contains_key("idempotent-replayed"))
}

/// What the pass measured: per order (or record) of the order-writer, a client's retry of an
/// order, the consumer, and a redelivered batch; and the connections opened by the writer, the
/// consumer's first batch, its second, and the redelivery.
struct Costs {
    writer: Cost,
    replay: Cost,
    consumer: Cost,
    redelivery: Cost,
    connections: [u64; 4],
}

/// Runs the accounting pass on `orders` orders, with the consumer at `concurrency`: the
/// order-writer, a client's retry, the consumer on the writer's events, on a fresh batch, and on
/// that batch again. One client (one pool) serves them all, as one Lambda container keeps its
/// client across invocations.
async fn measure(orders: usize, concurrency: usize) -> Result<Costs> {
    let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
    let proxy = FaultProxy::start(&stack.dynamo.endpoint, FaultPlan::none()).await?;
    let connections = ConnectionCounter::start(&proxy.endpoint).await?;
    let capacity = CapacityMeter::default();
    let client = capacity.on(&stack.dynamo.client_via(&connections.endpoint).await);
    let meters = Meters {
        proxy,
        capacity,
        connections,
    };
    let store = DynamoOrderStore::new(client.clone(), &stack.tables.orders);
    let service = service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
        .retention_seconds(stack.retention_seconds())?
        .concurrency(concurrency);
    let mut cursor = StreamCursor::default();

    let mark = meters.mark();
    for i in 0..orders {
        post_order(&store, &format!("acct-c{i}"), None).await?;
    }
    let (writer, writer_connections) = meters.since(&mark, orders);

    // A client retry with the same key: answered from the transaction's cancellation.
    post_order(&store, "acct-retry", Some("acct-key-1")).await?;
    let mark = meters.mark();
    let replayed = post_order(&store, "acct-retry", Some("acct-key-1")).await?;
    ensure!(replayed, "the retry was not answered as a replay");
    let (replay, _) = meters.since(&mark, 1);

    let first = cursor
        .outbox_inserts(&stack.stream, &stack.tables.orders_stream_arn)
        .await?;
    let mark = meters.mark();
    let outcome = service.process_stream(&first).await;
    ensure!(outcome.applied == first.len(), "first batch: {outcome:?}");
    let (consumer, first_connections) = meters.since(&mark, first.len());

    let placed = place_shape(&stack.orders, "acct2", Shape::distinct(orders)).await?;
    let second = records_of(&mut cursor, &stack, &placed).await?;
    let mark = meters.mark();
    let outcome = service.process_stream(&second).await;
    ensure!(outcome.applied == second.len(), "second batch: {outcome:?}");
    let (_, second_connections) = meters.since(&mark, second.len());

    let mark = meters.mark();
    let outcome = service.process_stream(&second).await;
    ensure!(
        outcome.duplicates == second.len(),
        "redelivery: {outcome:?}"
    );
    let (redelivery, again) = meters.since(&mark, second.len());
    let connections = [
        writer_connections,
        first_connections,
        second_connections,
        again,
    ];
    Ok(Costs {
        writer,
        replay,
        consumer,
        redelivery,
        connections,
    })
}

/// The table's rows of the accounting pass over `orders` orders, the consumer at `concurrency`.
pub async fn section(orders: usize, concurrency: usize) -> Result<Section> {
    let Costs {
        writer,
        replay,
        consumer,
        redelivery,
        connections,
    } = measure(orders, concurrency).await?;
    let [writer_connections, first, second, again] = connections;
    let mut section =
        Section::new("DynamoDB requests and capacity per order (counted at the proxy)");
    section.rows = vec![
        Row::bounded(
            "order-writer: DynamoDB requests per order",
            format!("{}; a client retry with the same key: {}", writer.breakdown(), replay.breakdown()),
            writer.total(),
            // One transaction, no read: the writer expects the counter it last wrote for a key
            // (here, each order's customer is new: none yet), and a refusal would carry it.
            AtMost(1.0),
            "",
        ),
        Row::bounded(
            "stream-consumer: DynamoDB requests per record",
            format!("{}; a redelivered duplicate: {}", consumer.breakdown(), redelivery.breakdown()),
            consumer.total(),
            // One transaction per record (effect, progress, finish); the margin is duplicates'.
            AtMost(1.2),
            "",
        ),
        // A read on either path would be a regression: the writer learns a counter it did not
        // expect from the refusal, and the consumer's conditions replace reads.
        Row::holds(
            "reads before writes on the hot paths",
            format!("{:.2} reads per order", writer.reads() + consumer.reads() + redelivery.reads()),
            "none: not the writer's counter, nothing on the consumer's path",
            writer.reads() == 0.0 && consumer.reads() == 0.0 && redelivery.reads() == 0.0,
            format!(
                "writer {:.2}, consumer {:.2}, redelivery {:.2} per order",
                writer.reads(),
                consumer.reads(),
                redelivery.reads()
            ),
        ),
        Row::info(
            "write capacity per order (`ConsumedCapacity`, as the local server reports it)",
            format!("order-writer {}, stream-consumer {}", writer.wcu(), consumer.wcu()),
        ),
        Row::holds(
            "TCP connections opened (one client per process, pooled)",
            format!(
                "{writer_connections} for {orders} sequential orders; consumer batch 1: {first}, batch 2: {second}, redelivery: {again}"
            ),
            "opened once (about the concurrency), then reused",
            // A few more than the concurrency may open in the first batch: a request that
            // starts while another's connection is still on its way back to the pool gets a new one.
            first <= 2 * concurrency as u64 && second == 0 && again == 0,
            if second + again > 0 {
                format!("{} new connections after the first batch", second + again)
            } else {
                format!("{first} connections for a concurrency of {concurrency}")
            },
        ),
    ];
    section.notes.push(format!(
        "Requests are counted per operation at the proxy over {orders} orders; capacity comes from \
         `ConsumedCapacity` (a metering interceptor asks for it, in this pass only). A transaction \
         cancelled by its condition (replay, duplicate) returns no capacity. Connections are counted \
         by a TCP forwarder in front of the proxy; one client (one pool) serves the writer and then \
         three consumer batches, as one Lambda container keeps its client across invocations; the \
         first batch may open a few more connections than its concurrency, when a request starts \
         while another's connection is still on its way back to the pool. \
         Capacity follows DynamoDB's rules: a transactional write costs twice a standard one (and \
         a global secondary index entry is one more write): the writer's transaction is the order, \
         the outbox event (with its pending-index entry) and the customer's sequence counter, with no \
         read; the consumer's transaction is the reward \
         record, the ledger line, the balance and its progress, then one write marks the event \
         (and removes its index entry)."
    ));
    Ok(section)
}
