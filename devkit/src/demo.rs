//! The main local job: orders in, rewards out, on the local DynamoDB, with the numbers printed.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use dynamodb_outbox::dynamodb::PendingEvents;
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::metrics::Collector;
use crate::pattern::Pattern;
use crate::stack::{in_process, in_process_changes, Service, Stack};
use crate::trigger::Invoke;
use order_service::store::OrderStore;

pub struct DemoOptions {
    /// Which of the article's patterns runs (its template, its order store, its consumer).
    pub pattern: Pattern,
    pub orders: usize,
    pub customers: usize,
    pub seed: u64,
    pub concurrency: usize,
}

#[derive(Default)]
struct Customer {
    orders: usize,
    expected_points: i64,
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
    let stack = Stack::start_pattern(opts.pattern).await?;
    match opts.pattern {
        Pattern::Outbox => run_on(opts, metrics, &stack, &stack.orders, in_process).await,
        Pattern::Cdc => {
            let orders = stack.cdc_orders();
            run_on(opts, metrics, &stack, &orders, in_process_changes).await
        }
        Pattern::SelfRead => bail!("the self-read demo is not built in this branch"),
    }
}

/// The demo on one pattern: its order store behind the order-writer's handler, its consumer
/// handler behind the local mapping.
async fn run_on<O, I>(
    opts: DemoOptions,
    metrics: Collector,
    stack: &Stack,
    orders: &O,
    consumer: fn(Service, usize) -> I,
) -> Result<()>
where
    O: OrderStore,
    I: Invoke,
{
    println!("pattern: {}", opts.pattern);
    println!(
        "local DynamoDB: {} ({})",
        stack.dynamo.endpoint,
        if stack.dynamo.is_embedded() {
            "embedded dynoxide"
        } else {
            "from AWS_ENDPOINT_URL"
        }
    );
    println!(
        "tables from template.yaml: {} (stream {}), {}\n",
        stack.tables.orders, stack.tables.orders_stream_arn, stack.tables.rewards
    );

    // 1. The order service: POST /orders through the order-writer's handler. Every third order
    //    is sent twice with the same Idempotency-Key, as a client retrying after a timeout would.
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut customers: BTreeMap<String, Customer> = BTreeMap::new();
    let (mut created, mut replayed) = (0, 0);
    for i in 0..opts.orders {
        let customer = format!("customer-{}", rng.random_range(1..=opts.customers));
        let quantity: i64 = rng.random_range(1..=3);
        let price: i64 = rng.random_range(1..=250) * 99;
        let body = json!({"customer_id": customer, "currency": "USD",
            "items": [{"sku": format!("SKU-{}", rng.random_range(1..=20)), "quantity": quantity, "unit_price_cents": price}]})
        .to_string();
        let key = format!("demo-{}-{i}", opts.seed);
        let sends = if i % 3 == 0 { 2 } else { 1 };
        for _ in 0..sends {
            let req = api_request(
                "POST",
                "/orders",
                Some(body.clone()),
                &[("idempotency-key", &key)],
            )?;
            let invocation = LambdaEvent::new(req, Context::default());
            let response = order_api::handle(orders, invocation).await;
            let response = response.map_err(|e| anyhow!("order {i}: {e}"))?;
            let replay = response.headers.contains_key("idempotent-replayed");
            if response.status_code != 201 {
                bail!("order {i} answered {}", response.status_code);
            }
            if replay {
                replayed += 1;
            } else {
                created += 1;
                let c = customers.entry(customer.clone()).or_default();
                c.orders += 1;
                c.expected_points += quantity * price / 100;
            }
        }
    }
    // One order a client gets wrong: refused with a reason code, which the metrics count.
    let wrong_currency = json!({"customer_id": "customer-1", "currency": "usd",
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 100}]});
    let req = api_request("POST", "/orders", Some(wrong_currency.to_string()), &[])?;
    let refused = order_api::handle(orders, LambdaEvent::new(req, Context::default()))
        .await
        .map_err(|e| anyhow!("refused order: {e}"))?;
    let pending_before = count_pending(stack).await?;
    let written = match opts.pattern {
        Pattern::Cdc => "order item alone, with its pending marker, in one PutItem",
        _ => "order + outbox event in one transaction",
    };
    println!("order service: {created} orders written ({written}), {replayed} client retries answered from the original order, 1 refused ({})", refused.status_code);
    println!("pending for rewards: {pending_before} events\n");

    // 2. The stream: the local event source mapping delivers outbox INSERTs to the consumer.
    let mut trigger = stack.trigger(consumer(stack.service_with_retention(0), opts.concurrency))?;
    let stats = trigger.drain().await?.clone();
    println!(
        "stream → stream-consumer: {} records read, {} filtered out by FilterCriteria, {} delivered in {} invocations",
        stats.records_read, stats.filtered_out, stats.records_delivered, stats.invocations
    );

    // 3. At-least-once delivery: replay the whole stream into the consumer a second time.
    let mut replay = stack.trigger(consumer(stack.service_with_retention(0), opts.concurrency))?;
    let replay_stats = replay.drain().await?.clone();
    let duplicates = replay_stats.records_delivered;
    println!("redelivery of the whole stream: {duplicates} events delivered again, all recognised as duplicates by the ledger\n");

    // 4. Balances, as the rewards API returns them.
    println!(
        "{:<14} {:>6} {:>10} {:>10} {:>8}  check",
        "customer", "orders", "expected", "balance", "ledger"
    );
    let mut all_ok = true;
    for (id, c) in &customers {
        let page =
            rewards_service::service::rewards_of(&stack.rewards, id, Some(100), None).await?;
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
    let pending_after = count_pending(stack).await?;
    println!("\npending for rewards: {pending_after} events after the consumer");

    // 5. Cleanup: processed events carry expires_at; a TTL sweep deletes them (their REMOVE
    //    records never reach the consumer).
    if opts.pattern == Pattern::Cdc {
        println!("nothing to clean up: no outbox item was written, no TTL to wait for");
    } else if stack.dynamo.is_embedded() {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let expired = stack.dynamo.sweep_ttl().await?;
        let before = trigger.stats.records_delivered;
        trigger.drain().await?;
        println!(
            "TTL: {expired} processed outbox events expired and deleted (demo retention 0 s; deployed default 7 days); {} of their REMOVE records reached the consumer",
            trigger.stats.records_delivered - before
        );
    }
    // 6. The metrics, read back from the EMF lines the handlers wrote (not recomputed).
    let summary = metrics.summary()?;
    println!("\n{}", summary.render());
    if let Some(line) = metrics
        .lines()
        .iter()
        .find(|l| l.contains("\"stream-consumer\""))
    {
        println!("one of those lines, as CloudWatch receives it:\n{line}");
    }
    let consumer = service_runtime::metrics::STREAM_CONSUMER;
    let read_back = (
        summary.count(
            service_runtime::metrics::ORDER_WRITER,
            service_runtime::metrics::ORDERS_PLACED,
        ),
        summary.count(consumer, service_runtime::metrics::APPLIED),
        summary.count(consumer, service_runtime::metrics::DUPLICATES),
    );
    let expected = (created as f64, created as f64, duplicates as f64);
    if read_back != expected {
        bail!("the metrics say (placed, applied, duplicates) = {read_back:?}, the run did {expected:?}");
    }
    if !all_ok || pending_after != 0 {
        bail!("balances do not match the orders placed");
    }
    println!("\nevery balance equals the points of the orders placed; duplicates applied: 0");
    Ok(())
}

/// Outbox events the rewards consumer has yet to process, from the sweeper's pending index.
async fn count_pending(stack: &Stack) -> Result<usize> {
    let far_future = service_runtime::Timestamp::now()
        .plus_seconds(3600)
        .to_string();
    let pending = PendingEvents::new(stack.dynamo.client.clone(), &stack.tables.orders);
    Ok(pending
        .waiting_for(rewards_service::consumer::NAME, &far_future, usize::MAX)
        .await?
        .len())
}
