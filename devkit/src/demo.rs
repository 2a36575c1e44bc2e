//! The main local job, for any pattern: orders in through the pattern's API, its consumers
//! through the local mappings, the whole source delivered again, and the balances printed.

use std::collections::BTreeMap;

use anyhow::{ensure, Context as _, Result};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewards_service::store::dynamodb::DynamoRewardsStore;
use serde_json::json;

use crate::chaos::order_id_of;
use crate::metrics::Collector;
use crate::pattern::Pattern;
use crate::patterns::broker::BrokerStack;
use crate::patterns::self_read::SelfReadStack;
use crate::patterns::{Harness, OrderApi};
use crate::stack::Stack;

/// What the demo runs: which pattern, and how many orders of how many customers.
#[derive(clap::Args)]
pub struct DemoOptions {
    /// outbox, cdc, self-read or broker: the pattern whose template and functions run.
    #[arg(long, default_value_t = Pattern::Outbox)]
    pub pattern: Pattern,
    #[arg(long, default_value_t = 30)]
    pub orders: usize,
    #[arg(long, default_value_t = 5)]
    pub customers: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = service_runtime::config::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

#[derive(Default)]
pub(crate) struct Customer {
    orders: usize,
    expected_points: i64,
}

/// What the demo's clients sent and were answered.
#[derive(Default)]
pub(crate) struct DemoOrders {
    pub customers: BTreeMap<String, Customer>,
    /// The id of each order taken, in the order sent.
    pub accepted: Vec<String>,
    /// Requests sent, client retries included.
    pub sent: usize,
    /// Retries answered from the original order.
    pub replayed: usize,
}

impl DemoOrders {
    /// The orders written, once every client retry was answered from its original order.
    pub fn written(&self) -> anyhow::Result<usize> {
        let created = self.accepted.len();
        anyhow::ensure!(
            self.replayed == self.sent - created,
            "{} client retries, {} answered from the original order",
            self.sent - created,
            self.replayed
        );
        Ok(created)
    }
}

pub fn api_request(
    method: &str,
    path: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Result<ApiGatewayV2httpRequest> {
    let mut h = serde_json::Map::new();
    h.insert("content-type".into(), json!("application/json"));
    for (k, v) in headers {
        h.insert(k.to_string(), json!(v));
    }
    Ok(serde_json::from_value(json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "headers": h, "body": body,
        "isBase64Encoded": false,
        "requestContext": {"stage": "$default", "http": {"method": method, "path": path}}
    }))?)
}

pub async fn run(opts: DemoOptions) -> Result<()> {
    // The handlers' EMF lines, as the functions write them to their log stream on AWS.
    let metrics = Collector::install();
    match opts.pattern {
        Pattern::SelfRead => run_on(SelfReadStack::start().await?, opts, metrics).await,
        Pattern::Broker => run_on(BrokerStack::start().await?, opts, metrics).await,
        pattern => run_on(Stack::start_pattern(pattern).await?, opts, metrics).await,
    }
}

/// The broker demo on a stack already started (a test's, which may skip without moto).
pub async fn run_broker_on(stack: BrokerStack, opts: DemoOptions) -> Result<()> {
    run_on(stack, opts, Collector::install()).await
}

async fn run_on<H: Harness>(stack: H, opts: DemoOptions, metrics: Collector) -> Result<()> {
    for line in stack.describe() {
        println!("{line}");
    }
    let api = stack.order_api(None).await?;
    let orders = place(&api, H::ACCEPTED, &opts).await?;
    stack.demo_placed(&api, &orders).await?;
    let redelivered = stack.demo_deliver(&api, &orders, opts.concurrency).await?;
    println!();
    let balanced = print_balances(stack.rewards(), &orders).await?;
    println!("\n{}", metrics.summary()?.render());
    let lead = stack
        .demo_check(&api, &orders, &metrics, redelivered)
        .await?;
    ensure!(balanced, "balances do not match the orders placed");
    println!("\n{lead}every balance equals the points of the orders placed; duplicates applied: 0");
    Ok(())
}

/// The clients: `opts.orders` orders of `opts.customers` customers, every third sent twice
/// with the same Idempotency-Key, as a client retrying after a timeout would.
async fn place<A: OrderApi>(api: &A, accepted: i64, opts: &DemoOptions) -> Result<DemoOrders> {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut orders = DemoOrders::default();
    for i in 0..opts.orders {
        let customer = format!("customer-{}", rng.random_range(1..=opts.customers));
        let quantity: i64 = rng.random_range(1..=3);
        let price: i64 = rng.random_range(1..=250) * 99;
        let body = json!({"customer_id": customer, "currency": "USD",
            "items": [{"sku": format!("SKU-{}", rng.random_range(1..=20)), "quantity": quantity, "unit_price_cents": price}]})
        .to_string();
        let key = format!("demo-{}-{i}", opts.seed);
        let sends = if i % 3 == 0 { 2 } else { 1 };
        for send in 0..sends {
            let headers = [("idempotency-key", key.as_str())];
            let request = api_request("POST", "/orders", Some(body.clone()), &headers)?;
            let response = api
                .handle(request)
                .await
                .with_context(|| format!("order {i}"))?;
            ensure!(
                response.status_code == accepted,
                "order {i} answered {}",
                response.status_code
            );
            orders.sent += 1;
            orders.replayed += usize::from(response.headers.contains_key("idempotent-replayed"));
            if send == 0 {
                orders
                    .accepted
                    .push(order_id_of(response.body.as_ref()).unwrap_or_default());
                let c = orders.customers.entry(customer.clone()).or_default();
                c.orders += 1;
                c.expected_points += quantity * price / 100;
            }
        }
    }
    Ok(orders)
}

/// Each customer's balance, as the rewards API returns it, against the orders placed; whether
/// all match.
async fn print_balances(rewards: &DynamoRewardsStore, orders: &DemoOrders) -> Result<bool> {
    println!(
        "{:<14} {:>6} {:>10} {:>10} {:>8}  check",
        "customer", "orders", "expected", "balance", "ledger"
    );
    let mut all_ok = true;
    for (id, c) in &orders.customers {
        let page = rewards_service::service::rewards_of(rewards, id, Some(100), None).await?;
        let ok = page.points == c.expected_points && page.entries.len() == c.orders;
        all_ok &= ok;
        println!(
            "{:<14} {:>6} {:>10} {:>10} {:>8}  {}",
            id,
            c.orders,
            c.expected_points,
            page.points,
            page.entries.len(),
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    Ok(all_ok)
}
