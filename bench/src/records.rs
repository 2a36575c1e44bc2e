//! Fresh orders and their stream records: what every measured batch is made of.
//!
//! Re-delivering records that were applied already is a different workload (every record is a
//! duplicate the ledger refuses), so each measured batch is made of orders placed just before it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use aws_lambda_events::dynamodb::EventRecord;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::{Stack, StreamClient};
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{Consumer, ConsumerStore, Processor};
use order_service::domain::order::LineItem;
use order_service::domain::{Order, OrderRequest};
use order_service::service::{place_order, Placed};
use order_service::store::OrderStore;

/// A batch's layout: `customers` customers with `per_customer` orders each, interleaved in the
/// stream (c0, c1, …, c0, c1, …) as concurrent shoppers' orders would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub customers: usize,
    pub per_customer: usize,
}

impl Shape {
    pub fn distinct(records: usize) -> Self {
        Self {
            customers: records,
            per_customer: 1,
        }
    }

    pub fn skewed(customers: usize, per_customer: usize) -> Self {
        Self {
            customers,
            per_customer,
        }
    }

    pub fn records(self) -> usize {
        self.customers * self.per_customer
    }

    pub fn label(self) -> String {
        if self.per_customer == 1 {
            format!(
                "{} records, {} distinct customers",
                self.records(),
                self.customers
            )
        } else {
            format!(
                "{} records, {} customers × {}",
                self.records(),
                self.customers,
                self.per_customer
            )
        }
    }
}

/// One order of `customer_id` worth `cents`.
pub fn order_request(customer_id: &str, cents: i64) -> OrderRequest {
    OrderRequest {
        customer_id: customer_id.to_owned(),
        currency: "USD".to_owned(),
        items: vec![LineItem {
            sku: "SKU-1".to_owned(),
            quantity: 1,
            unit_price_cents: cents,
        }],
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
    for round in 0..shape.per_customer {
        for c in 0..shape.customers {
            let customer = format!("{prefix}-c{c}");
            let cents = 100 * (1 + round as i64) + c as i64;
            match place_order(store, order_request(&customer, cents), None, None).await? {
                Placed::Created(order) => orders.push(order),
                Placed::Replayed(_) => bail!("a fresh order was answered as a replay"),
            }
        }
    }
    Ok(orders)
}

/// Reads a table's stream from where it stopped last time, as a Lambda poller does from its
/// checkpoint (reading the whole stream for every batch would grow with the run).
#[derive(Default)]
pub struct StreamCursor {
    after: HashMap<String, String>,
}

impl StreamCursor {
    /// The outbox INSERT records of stream `arn` written since the last call, in stream order:
    /// what the template's `FilterCriteria` lets through to the consumer.
    pub async fn outbox_inserts(
        &mut self,
        stream: &StreamClient,
        arn: &str,
    ) -> Result<Vec<EventRecord>> {
        let mut records = Vec::new();
        for shard in stream.shard_ids(arn).await? {
            loop {
                let after = self.after.get(&shard).map(String::as_str);
                let page = stream.read(arn, &shard, after, 1000).await?;
                let Some(last) = page.last() else { break };
                self.after
                    .insert(shard.clone(), last.sequence_number.clone());
                for raw in &page {
                    let insert = raw.json["eventName"] == "INSERT";
                    let outbox = raw.json["dynamodb"]["NewImage"][schema::ENTITY]["S"]
                        == schema::ENTITY_OUTBOX_EVENT;
                    if insert && outbox {
                        records.push(raw.to_event_record()?);
                    }
                }
            }
        }
        Ok(records)
    }

    /// The outbox records of exactly `orders`, in stream order.
    pub async fn records_of(
        &mut self,
        stack: &Stack,
        orders: &[Order],
    ) -> Result<Vec<EventRecord>> {
        let wanted: HashSet<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
        let records: Vec<EventRecord> = self
            .outbox_inserts(&stack.stream, &stack.tables.orders_stream_arn)
            .await?
            .into_iter()
            .filter(|r| {
                matches!(r.change.new_image.get("aggregate_id"),
                    Some(serde_dynamo::AttributeValue::S(id)) if wanted.contains(id.as_str()))
            })
            .collect();
        ensure!(
            records.len() == orders.len(),
            "the stream carried {} of the {} outbox events placed",
            records.len(),
            orders.len()
        );
        Ok(records)
    }
}

/// How long `processor` takes on `records` with `latency` added to every request through
/// `proxy`; an error unless every record was applied.
pub async fn timed_batch<C, S>(
    proxy: &FaultProxy,
    latency: Duration,
    processor: &Processor<C, S>,
    records: &[EventRecord],
    batch: &str,
) -> Result<Duration>
where
    C: Consumer,
    S: ConsumerStore,
{
    proxy.set_plan(FaultPlan::latency(latency));
    let start = Instant::now();
    let outcome = processor.process_stream(records).await;
    let elapsed = start.elapsed();
    proxy.set_plan(FaultPlan::none());
    ensure!(
        outcome.applied == records.len() && outcome.failures.is_empty(),
        "batch {batch} was not applied in full: {outcome:?}"
    );
    Ok(elapsed)
}

/// True when every customer's ledger has the customer's orders applied in the order the stream
/// carried them: the ledger is sorted by when the order was placed, and `applied_at` must grow
/// along it.
pub async fn order_kept(stack: &Stack, orders: &[Order]) -> Result<bool> {
    let mut by_customer: HashMap<&str, Vec<&str>> = HashMap::new();
    for order in orders {
        by_customer
            .entry(order.customer_id.as_str())
            .or_default()
            .push(order.order_id.as_str());
    }
    for (customer, expected) in by_customer {
        let page = rewards_service::service::rewards_of(&stack.rewards, customer, Some(100), None)
            .await
            .with_context(|| format!("reading the ledger of {customer}"))?;
        // Newest first from the API; oldest first here.
        let entries: Vec<_> = page.entries.iter().rev().collect();
        let applied: Vec<&str> = entries.iter().map(|e| e.order_id.as_str()).collect();
        if applied != expected {
            return Ok(false);
        }
        if entries
            .windows(2)
            .any(|w| w[0].applied_at >= w[1].applied_at)
        {
            return Ok(false);
        }
    }
    Ok(true)
}
