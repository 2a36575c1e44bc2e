//! Patterns 1 and 2 on the harness: the order-writer's store (the outbox's transaction, or the
//! order item alone with its pending marker under CDC), the rewards consumer behind the orders
//! table's stream, and the sweeper over the pending index. They differ in the order store, the
//! consumer's handler, the sweep and where the invariants find the events; the rest is shared.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::dynamodb::{Event, EventRecord};
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::testing::CrashPoint;
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use order_service::store::cdc::CdcOrderStore;
use order_service::store::dynamodb::DynamoOrderStore;
use rewards_service::consumer::NAME as REWARDS;
use rewards_service::service::{self, RewardsProcessor};
use rewards_service::store::dynamodb::DynamoRewardsStore;
use service_runtime::metrics as names;

use super::{Harness, OrderApi};
use crate::chaos::{drain_all, duplicating, ConsumerChaos, Faults};
use crate::demo::{api_request, DemoOrders};
use crate::invariants::EventSource;
use crate::local::{LocalDynamo, Tables};
use crate::metrics::Collector;
use crate::pattern::Pattern;
use crate::stack::Stack;
use crate::trigger::TriggerStats;

/// The order-writer with the pattern's order store.
pub(crate) enum OrderWriter {
    Outbox(DynamoOrderStore),
    Cdc(CdcOrderStore),
}

impl OrderApi for OrderWriter {
    async fn handle(&self, request: ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse> {
        let event = LambdaEvent::new(request, Context::default());
        let response = match self {
            Self::Outbox(store) => order_api::handle(store, event).await,
            Self::Cdc(store) => order_api::handle(store, event).await,
        };
        response.map_err(|e| anyhow!("the order-writer failed: {e}"))
    }
}

impl Stack {
    /// The rewards consumer as its function builds it, its client through `faults`.
    async fn processor_via(&self, faults: &Faults) -> Result<RewardsProcessor> {
        let client = self.dynamo.client_via(&faults.dynamo.endpoint).await;
        let source = self.tables.orders_source();
        Ok(service::processor(client, &self.tables.rewards, source)
            .retention_seconds(self.retention_seconds())?)
    }
}

fn records(event: &mut Event) -> &mut Vec<EventRecord> {
    &mut event.records
}

impl Harness for Stack {
    type Api = OrderWriter;

    /// The outbox's consumer finishes an event in its commit's transaction (it is the event's
    /// only consumer); an order item's release is a second write after the commit.
    fn crash_point(&self) -> CrashPoint {
        match self.pattern {
            Pattern::Cdc => CrashPoint::BeforeDone,
            _ => CrashPoint::AfterCommit,
        }
    }

    fn dynamo(&self) -> &LocalDynamo {
        &self.dynamo
    }
    fn tables(&self) -> Tables {
        self.tables.clone()
    }
    fn rewards(&self) -> &DynamoRewardsStore {
        &self.rewards
    }
    fn events(&self) -> EventSource {
        match self.pattern {
            Pattern::Cdc => EventSource::OrderItems,
            _ => EventSource::OutboxItems,
        }
    }

    async fn order_api(&self, faults: Option<&Faults>) -> Result<OrderWriter> {
        let client = match faults {
            Some(faults) => self.dynamo.client_via(&faults.dynamo.endpoint).await,
            None => self.dynamo.client.clone(),
        };
        let table = &self.tables.orders;
        Ok(match self.pattern {
            Pattern::Cdc => OrderWriter::Cdc(CdcOrderStore::new(client, table)),
            _ => OrderWriter::Outbox(DynamoOrderStore::new(client, table)),
        })
    }

    async fn consume_racing(&self, chaos: &ConsumerChaos, faults: &Faults) -> Result<TriggerStats> {
        let mut mappings = Vec::new();
        for (salt, duplicates) in [(0xA, true), (0xB, false)] {
            let processor = self.processor_via(faults).await?;
            let store = chaos.crashing(processor.store().clone(), salt);
            let invoker = self.consumer(processor.with_store(store), 16);
            let invoker = duplicating(invoker, chaos.copies(salt, duplicates), records);
            mappings.push(chaos.sized(self.trigger(invoker)?, salt));
        }
        drain_all(&mut mappings).await
    }

    async fn sweep(&self, _: &ConsumerChaos, faults: &Faults) -> Result<Option<usize>> {
        let sweeper = self.processor_via(faults).await?;
        let client = self.dynamo.client_via(&faults.dynamo.endpoint).await;
        let pending = PendingEvents::new(client, &self.tables.orders);
        let mut swept = 0;
        for _ in 0..10 {
            let run = match self.pattern {
                Pattern::Cdc => {
                    service::sweep_order_changes(&pending, &sweeper, Duration::ZERO, 10_000).await
                }
                _ => service::sweep(&pending, &sweeper, Duration::ZERO, 10_000).await,
            };
            match run {
                Ok(r) if r == Default::default() => break,
                Ok(r) => swept += r.applied + r.duplicates,
                Err(_) => continue,
            }
        }
        Ok(Some(swept))
    }

    fn describe(&self) -> Vec<String> {
        let server = if self.dynamo.is_embedded() {
            "embedded dynoxide"
        } else {
            "from AWS_ENDPOINT_URL"
        };
        vec![
            format!("pattern: {}", self.pattern),
            format!("local DynamoDB: {} ({server})", self.dynamo.endpoint),
            format!(
                "tables from template.yaml: {} (stream {}), {}\n",
                self.tables.orders, self.tables.orders_stream_arn, self.tables.rewards
            ),
        ]
    }

    async fn demo_placed(&self, api: &OrderWriter, orders: &DemoOrders) -> Result<()> {
        let created = orders.written()?;
        // One order a client gets wrong: refused with a reason code, which the metrics count.
        let wrong_currency = serde_json::json!({"customer_id": "customer-1", "currency": "usd",
            "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 100}]});
        let request = api_request("POST", "/orders", Some(wrong_currency.to_string()), &[])?;
        let refused = api.handle(request).await?;
        let written = match self.pattern {
            Pattern::Cdc => "order item alone, with its pending marker, in one PutItem",
            _ => "order + outbox event in one transaction",
        };
        println!("order service: {created} orders written ({written}), {} client retries answered from the original order, 1 refused ({})", orders.replayed, refused.status_code);
        println!(
            "pending for rewards: {} events\n",
            self.pending_for(REWARDS).await?
        );
        Ok(())
    }

    /// The stream into the consumer, then all of it again; then, under the outbox, the
    /// processed events' expiry. How many events the second delivery brought again.
    async fn demo_deliver(&self, _: &OrderWriter, _: &DemoOrders, n: usize) -> Result<usize> {
        let consumer = || self.consumer(self.service_with_retention(0), n);
        let mut trigger = self.trigger(consumer())?;
        let stats = trigger.drain().await?.clone();
        println!(
            "stream → stream-consumer: {} records read, {} filtered out by FilterCriteria, {} delivered in {} invocations",
            stats.records_read, stats.filtered_out, stats.records_delivered, stats.invocations
        );
        let mut replay = self.trigger(consumer())?;
        let duplicates = replay.drain().await?.records_delivered;
        println!("redelivery of the whole stream: {duplicates} events delivered again, all recognised as duplicates by the ledger");
        // Processed events carry expires_at; a TTL sweep deletes them (their REMOVE records never
        // reach the consumer).
        if self.pattern == Pattern::Cdc {
            println!("nothing to clean up: no outbox item was written, no TTL to wait for");
        } else if self.dynamo.is_embedded() {
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let expired = self.dynamo.sweep_ttl().await?;
            let before = trigger.stats.records_delivered;
            trigger.drain().await?;
            println!(
                "TTL: {expired} processed outbox events expired and deleted (demo retention 0 s; deployed default 7 days); {} of their REMOVE records reached the consumer",
                trigger.stats.records_delivered - before
            );
        }
        Ok(duplicates)
    }

    async fn demo_check(
        &self,
        _: &OrderWriter,
        orders: &DemoOrders,
        metrics: &Collector,
        redelivered: usize,
    ) -> Result<&'static str> {
        if let Some(line) = metrics
            .lines()
            .iter()
            .find(|l| l.contains("\"stream-consumer\""))
        {
            println!("one of those lines, as CloudWatch receives it:\n{line}");
        }
        let pending_after = self.pending_for(REWARDS).await?;
        println!("\npending for rewards: {pending_after} events after the consumer");
        let summary = metrics.summary()?;
        let read_back = (
            summary.count(names::ORDER_WRITER, names::ORDERS_PLACED),
            summary.count(names::STREAM_CONSUMER, names::APPLIED),
            summary.count(names::STREAM_CONSUMER, names::DUPLICATES),
        );
        let created = orders.accepted.len() as f64;
        let expected = (created, created, redelivered as f64);
        if read_back != expected {
            bail!("the metrics say (placed, applied, duplicates) = {read_back:?}, the run did {expected:?}");
        }
        ensure!(
            pending_after == 0,
            "{pending_after} events still pending for rewards"
        );
        Ok("")
    }
}
