//! Stream-consumer batch latency through a latency-injecting proxy.
//!
//! The consumer's stores talk to the local DynamoDB through `devkit::proxy::FaultProxy`, which
//! delays every request by the chosen latency (25 ms is a realistic Lambda → DynamoDB round trip
//! under load; 0 ms leaves only the local server's own cost). Each measurement is one
//! `process_stream` call of the rewards consumer (the engine's `Processor`) on a batch of freshly
//! placed orders; the baseline is the same processor one request at a time (one customer at a
//! time, one event per transaction), measured in the same run.

use std::time::Duration;

use anyhow::Result;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::{LocalDynamo, Stack};
use dynamodb_outbox::DEFAULT_EVENTS_PER_TRANSACTION;
use rewards_service::service::{self, RewardsProcessor};

use crate::records::{order_kept, place_shape, timed_batch, Shape, StreamCursor};

/// What one batch took, and whether every customer's records were applied in stream order.
#[derive(Debug, Clone, Copy)]
pub struct BatchRun {
    pub elapsed: Duration,
    pub order_kept: bool,
}

/// A local DynamoDB, a proxy in front of it, and the consumer's service going through the proxy.
pub struct ConsumerLab {
    pub stack: Stack,
    pub proxy: FaultProxy,
    service: RewardsProcessor,
    cursor: StreamCursor,
    batches: usize,
}

impl ConsumerLab {
    pub async fn start() -> Result<Self> {
        // Always the embedded server: the figures describe this code on a known server.
        let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
        let proxy = FaultProxy::start(&stack.dynamo.endpoint, FaultPlan::none()).await?;
        // One client for the whole run, as one Lambda container keeps one for its lifetime.
        let client = stack.dynamo.client_via(&proxy.endpoint).await;
        let service =
            service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
                .retention_seconds(stack.retention_seconds())
                .expect("a retention in range");
        Ok(Self {
            stack,
            proxy,
            service,
            cursor: StreamCursor::default(),
            batches: 0,
        })
    }

    /// Places a fresh batch of `shape` (directly, not through the proxy), then times the
    /// consumer on it with `latency` per request and `concurrency` customers at a time.
    pub async fn run(
        &mut self,
        latency: Duration,
        concurrency: usize,
        shape: Shape,
    ) -> Result<BatchRun> {
        self.batches += 1;
        let prefix = format!("b{}", self.batches);
        let orders = place_shape(&self.stack.orders, &prefix, shape).await?;
        let records = self.cursor.records_of(&self.stack, &orders).await?;

        let processor = self.service.clone().concurrency(concurrency);
        // Concurrency 1 is the baseline: every request after the one before it.
        let processor = if concurrency == 1 {
            processor.events_per_transaction(1)
        } else {
            processor
        };
        let elapsed = timed_batch(&self.proxy, latency, &processor, &records, &prefix).await?;
        Ok(BatchRun {
            elapsed,
            order_kept: order_kept(&self.stack, &orders).await?,
        })
    }
}

/// The least time a batch can take: the longest chain of round trips. One at a time
/// (`concurrency` 1), every record is a transaction and a mark in a row. Otherwise a customer's
/// consecutive records commit [`DEFAULT_EVENTS_PER_TRANSACTION`] at a time, customers beyond the
/// concurrency wait for a slot, and the marks follow the commits, `concurrency` at a time.
pub fn floor(shape: Shape, concurrency: usize, latency: Duration) -> Duration {
    let records = shape.customers * shape.per_customer;
    if concurrency <= 1 {
        return latency * (2 * records) as u32;
    }
    let waves = shape.customers.div_ceil(concurrency);
    let commits = shape.per_customer.div_ceil(DEFAULT_EVENTS_PER_TRANSACTION);
    latency * (waves * commits + records.div_ceil(concurrency)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_counts_waves_of_customers_and_chains_of_records() {
        let ms = Duration::from_millis;
        // 100 customers, 16 at a time: 7 waves of one commit, then 7 rounds of marks.
        assert_eq!(floor(Shape::distinct(100), 16, ms(25)), ms(350));
        // 10 customers fit at once; each commits its 10 records in one transaction.
        assert_eq!(floor(Shape::skewed(10, 10), 16, ms(25)), ms(200));
        // One customer's 100 records: 4 transactions of 25 in a row, then the marks.
        assert_eq!(floor(Shape::skewed(1, 100), 100, ms(25)), ms(125));
        // Sequential: every record after the other.
        assert_eq!(floor(Shape::distinct(100), 1, ms(25)), ms(5000));
        assert_eq!(floor(Shape::skewed(10, 10), 1, ms(25)), ms(5000));
    }

    #[tokio::test]
    async fn a_timed_batch_is_applied_in_full_and_in_each_customers_order() {
        let mut lab = ConsumerLab::start().await.unwrap();
        for concurrency in [8, 1] {
            let run = lab
                .run(Duration::from_millis(1), concurrency, Shape::skewed(3, 2))
                .await
                .unwrap();
            assert!(run.order_kept, "concurrency {concurrency}");
            assert!(run.elapsed >= Duration::from_millis(1));
        }
    }
}
