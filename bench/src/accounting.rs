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
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::{LocalDynamo, Stack};
use order_service::handlers::order_api;
use order_service::store::dynamodb::DynamoOrderStore;
use rewards_service::service;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::capacity::{CapacityMeter, Units};
use crate::records::{place_shape, Shape, StreamCursor};

/// Operations that read; none may appear on the hot paths.
pub const READS: &[&str] = &[
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];

/// Requests per operation and write capacity, per order (or per record).
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub requests: BTreeMap<String, f64>,
    /// `None` when the server reported no capacity for these requests.
    pub write_units: Option<f64>,
}

impl Cost {
    pub fn total_requests(&self) -> f64 {
        // A fold from +0.0: `sum()` of nothing is -0.0, which prints as "-0.00".
        self.requests.values().fold(0.0, |a, n| a + n)
    }

    pub fn reads(&self) -> f64 {
        self.requests
            .iter()
            .filter(|(op, _)| READS.contains(&op.as_str()))
            .fold(0.0, |a, (_, n)| a + n)
    }

    /// `TransactWriteItems 1.00 + UpdateItem 1.00`.
    pub fn breakdown(&self) -> String {
        self.requests
            .iter()
            .map(|(op, n)| format!("{op} {n:.2}"))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// The whole accounting pass.
#[derive(Debug, Clone)]
pub struct Accounting {
    pub orders: usize,
    pub concurrency: usize,
    /// `POST /orders` through the order-writer's handler, per order.
    pub writer: Cost,
    /// The same `Idempotency-Key` and body again: the replay, per request.
    pub writer_replay: Cost,
    /// A batch of new outbox events through the consumer, per record.
    pub consumer: Cost,
    /// The same batch delivered again (every record a duplicate), per record.
    pub redelivery: Cost,
    /// TCP connections opened by the writer's requests, the consumer's first batch, its second
    /// batch, and the redelivery (the client and its pool live through all four).
    pub connections: [u64; 4],
}

/// A TCP forwarder that counts the connections it accepts.
pub struct ConnectionCounter {
    pub endpoint: String,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectionCounter {
    pub async fn start(upstream_endpoint: &str) -> Result<Self> {
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

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counters before a step, to take the step's own share afterwards.
struct Mark {
    requests: BTreeMap<String, u64>,
    capacity: Units,
    connections: u64,
}

struct Meters<'a> {
    proxy: &'a FaultProxy,
    capacity: &'a CapacityMeter,
    connections: &'a ConnectionCounter,
}

impl Meters<'_> {
    fn mark(&self) -> Mark {
        Mark {
            requests: self.proxy.stats().requests,
            capacity: self.capacity.units(),
            connections: self.connections.accepted(),
        }
    }

    /// Per-unit cost since `mark`, and the connections opened since.
    fn since(&self, mark: &Mark, units: usize) -> (Cost, u64) {
        let now = self.mark();
        let per = |n: f64| n / units.max(1) as f64;
        let requests = now
            .requests
            .iter()
            .filter_map(|(op, n)| {
                let d = n - mark.requests.get(op).copied().unwrap_or(0);
                (d > 0).then(|| (op.clone(), per(d as f64)))
            })
            .collect();
        let reported = now.capacity.reports > mark.capacity.reports;
        let write_units = reported.then(|| per(now.capacity.write - mark.capacity.write));
        (
            Cost {
                requests,
                write_units,
            },
            now.connections - mark.connections,
        )
    }
}

/// `POST /orders` as API Gateway delivers it.
fn post_order(customer: &str, cents: i64, key: Option<&str>) -> Result<ApiGatewayV2httpRequest> {
    let body = json!({"customer_id": customer, "currency": "USD",
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": cents}]})
    .to_string();
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    devkit::demo::api_request("POST", "/orders", Some(body), &headers)
}

async fn expect_created(
    store: &DynamoOrderStore,
    request: &ApiGatewayV2httpRequest,
) -> Result<bool> {
    let response = order_api::respond(store, request, None)
        .await
        .unwrap_or_else(|e| e.into_response());
    ensure!(
        response.status_code == 201,
        "POST /orders answered {}",
        response.status_code
    );
    Ok(response.headers.contains_key("idempotent-replayed"))
}

/// Runs the accounting pass on `orders` orders, with the consumer at `concurrency`.
pub async fn measure(orders: usize, concurrency: usize) -> Result<Accounting> {
    let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
    let proxy = FaultProxy::start(&stack.dynamo.endpoint, FaultPlan::none()).await?;
    let counter = ConnectionCounter::start(&proxy.endpoint).await?;
    let capacity = CapacityMeter::default();
    let meters = Meters {
        proxy: &proxy,
        capacity: &capacity,
        connections: &counter,
    };
    let client = capacity.on(&stack.dynamo.client_via(&counter.endpoint).await);
    let writer = DynamoOrderStore::new(client.clone(), &stack.tables.orders);
    let service = service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
        .retention_seconds(stack.retention_seconds())
        .expect("a retention in range")
        .concurrency(concurrency);
    let mut cursor = StreamCursor::default();

    // The order-writer: every order through its handler.
    let mark = meters.mark();
    for i in 0..orders {
        expect_created(&writer, &post_order(&format!("acct-c{i}"), 1000, None)?).await?;
    }
    let (writer_cost, writer_connections) = meters.since(&mark, orders);

    // A client retry with the same key: answered from the transaction's cancellation.
    let retry = post_order("acct-retry", 1000, Some("acct-key-1"))?;
    expect_created(&writer, &retry).await?;
    let mark = meters.mark();
    ensure!(
        expect_created(&writer, &retry).await?,
        "the retry was not answered as a replay"
    );
    let (writer_replay, _) = meters.since(&mark, 1);

    // The consumer: the writer's events, then a batch of fresh ones, then that batch again.
    let first = cursor
        .outbox_inserts(&stack.stream, &stack.tables.orders_stream_arn)
        .await?;
    let mark = meters.mark();
    let outcome = service.process_stream(&first).await;
    ensure!(outcome.applied == first.len(), "first batch: {outcome:?}");
    let (consumer, first_connections) = meters.since(&mark, first.len());

    let placed = place_shape(&stack.orders, "acct2", Shape::distinct(orders)).await?;
    let second = cursor.records_of(&stack, &placed).await?;
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
    let (redelivery, redelivery_connections) = meters.since(&mark, second.len());

    Ok(Accounting {
        orders,
        concurrency,
        writer: writer_cost,
        writer_replay,
        consumer,
        redelivery,
        connections: [
            writer_connections,
            first_connections,
            second_connections,
            redelivery_connections,
        ],
    })
}
