//! End to end on one machine: orders placed through the order-writer's handler, then delivered
//! by the local stream trigger (the template's batch size and filter) to the consumer in process,
//! until every reward is applied. Informative: it measures this machine and the local server as
//! much as the code.

use std::time::Instant;

use anyhow::{ensure, Result};
use devkit::stack::in_process;
use devkit::{LocalDynamo, Stack};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::machine::Machine;
use crate::report::{ms, thousands, Row, Section};

/// Places `orders` orders, `clients` at a time, then drains the stream into the consumer.
pub async fn section(
    orders: usize,
    clients: usize,
    concurrency: usize,
    machine: &Machine,
) -> Result<Section> {
    let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
    let start = Instant::now();
    stream::iter(0..orders)
        .map(|i| {
            let stack = &stack;
            async move {
                let body = crate::order_body(&format!("tp-c{}", i % 100), 1, 1000);
                let response = crate::post_order(&stack.orders, body, None).await?;
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
    let per_second = orders as f64 / (place + reward).as_secs_f64();
    let measured = format!(
        "**{per_second:.0} orders/s**: {} orders placed in {} ms ({clients} at a time), rewarded in {} ms ({} invocations); {} × {}",
        thousands(orders as u64),
        ms(place),
        ms(reward),
        stats.invocations,
        machine.cpus,
        machine.cpu_model
    );
    let mut section = Section::new("End to end");
    let figure = "orders placed and rewarded through the local stream trigger";
    section.rows.push(Row::info(figure, measured));
    Ok(section)
}
