//! `make demo PATTERN=self-read`: orders published to the local Kinesis, the read-your-writes gap
//! seen through `GET /orders/{id}`, both consumers' mappings, a redelivery of the whole stream,
//! and the same balance table as the outbox's demo.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{
    history_in_process, rewards_in_process, SelfReadStack, ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION,
};
use crate::chaos::order_id_of;
use crate::demo::{api_request, DemoOptions};

#[derive(Default)]
struct Customer {
    orders: usize,
    expected_points: i64,
}

pub async fn run(opts: DemoOptions) -> Result<()> {
    let stack = SelfReadStack::start().await?;
    println!(
        "local DynamoDB: {} | local Kinesis (kinesalite): {}",
        stack.dynamo.endpoint, stack.kinesis.endpoint
    );
    println!(
        "from patterns/self-read/template.yaml: stream {} ({} shards), tables {} and {}\n",
        stack.stream.name,
        stack.stream.shard_ids.len(),
        stack.orders_table,
        stack.rewards_table
    );

    // 1. POST /orders publishes and answers 202; every third order is sent twice with the same
    //    Idempotency-Key (a client retrying after a timeout): the stream holds it twice.
    let publisher = stack.publisher();
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut customers: BTreeMap<String, Customer> = BTreeMap::new();
    let (mut accepted, mut published) = (Vec::new(), 0);
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
            let request = api_request(
                "POST",
                "/orders",
                Some(body.clone()),
                &[("idempotency-key", &key)],
            )?;
            let response = stack.call(&publisher, request).await;
            if response.status_code != 202 {
                bail!("order {i} answered {}", response.status_code);
            }
            published += 1;
            if send == 0 {
                accepted.push(order_id_of(response.body.as_ref()).unwrap_or_default());
                let c = customers.entry(customer.clone()).or_default();
                c.orders += 1;
                c.expected_points += quantity * price / 100;
            }
        }
    }
    println!(
        "order API: {} orders accepted (202), {published} records published (client retries publish again; nothing written to DynamoDB)",
        accepted.len()
    );

    // 2. The read-your-writes gap: before order-history ran, the order is not there yet.
    let first = accepted.first().cloned().unwrap_or_default();
    let get = |id: &str| api_request("GET", &format!("/orders/{id}"), None, &[]);
    let before = stack.call(&publisher, get(&first)?).await;
    println!(
        "GET /orders/{first} before order-history: {} (Retry-After: {})",
        before.status_code,
        before
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
    );

    // 3. Both mappings, each with the template's settings, side by side.
    let mut history = stack
        .trigger(
            ORDER_HISTORY_FUNCTION,
            history_in_process(stack.history_processor()),
        )
        .await?;
    let mut rewards = stack
        .trigger(
            REWARDS_FUNCTION,
            rewards_in_process(stack.rewards_processor()),
        )
        .await?;
    let (h, r) = tokio::join!(history.drain(), rewards.drain());
    let (h, r) = (h?.clone(), r?.clone());
    println!(
        "stream → order-history: {} records in {} invocations | stream → rewards: {} records in {} invocations",
        h.records_delivered, h.invocations, r.records_delivered, r.invocations
    );
    let after = stack.call(&publisher, get(&first)?).await;
    println!(
        "GET /orders/{first} after order-history: {}",
        after.status_code
    );

    // 4. At-least-once: both consumers read the whole stream again from TRIM_HORIZON.
    stack.deliver_all().await?;
    println!(
        "redelivery of the whole stream to both consumers: every record a duplicate by event id\n"
    );

    // 5. The same balance table as the outbox's demo.
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
    let mut unreadable = 0;
    for order_id in &accepted {
        let response = stack.call(&publisher, get(order_id)?).await;
        unreadable += usize::from(response.status_code != 200);
    }
    if before.status_code != 404 || after.status_code != 200 || unreadable > 0 || !all_ok {
        bail!("self-read demo: {unreadable} accepted orders not readable, or balances do not match the orders accepted");
    }
    println!("\nevery accepted order is readable; every balance equals the points of the orders accepted; duplicates applied: 0");
    Ok(())
}
