//! End to end on one machine: orders placed through the order-writer's handler, then delivered
//! by the local stream trigger (the template's batch size and filter) to the consumer in process,
//! until every reward is applied. Informative: it measures this machine and the local server as
//! much as the code.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use devkit::stack::in_process;
use devkit::{LocalDynamo, Stack};
use futures::stream::{self, StreamExt, TryStreamExt};
use order_service::handlers::order_api;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub orders: usize,
    pub place: Duration,
    pub reward: Duration,
    pub invocations: usize,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.orders as f64 / (self.place + self.reward).as_secs_f64()
    }
}

/// Places `orders` orders, `clients` at a time, then drains the stream into the consumer.
pub async fn measure(orders: usize, clients: usize, concurrency: usize) -> Result<Throughput> {
    let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
    let start = Instant::now();
    stream::iter(0..orders)
        .map(|i| {
            let stack = &stack;
            async move {
                let body = json!({"customer_id": format!("tp-c{}", i % 100), "currency": "USD",
                    "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1000}]});
                let req =
                    devkit::demo::api_request("POST", "/orders", Some(body.to_string()), &[])?;
                let response = order_api::respond(&stack.orders, &req, None)
                    .await
                    .unwrap_or_else(|e| e.into_response());
                ensure!(
                    response.status_code == 201,
                    "order {i}: {}",
                    response.status_code
                );
                Ok(())
            }
        })
        .buffer_unordered(clients)
        .try_collect::<()>()
        .await?;
    let place = start.elapsed();

    let start = Instant::now();
    let mut trigger = stack.trigger(in_process(stack.service(), concurrency))?;
    let stats = trigger.drain().await?.clone();
    let reward = start.elapsed();
    ensure!(
        stats.records_delivered == orders && stats.partial_failures == 0,
        "the trigger delivered {} of {orders} events: {stats:?}",
        stats.records_delivered
    );
    Ok(Throughput {
        orders,
        place,
        reward,
        invocations: stats.invocations,
    })
}
