//! Pattern 2 (CDC on the order table) under the chaos run's fault model: orders through the
//! order-writer with `OUTBOX_PATTERN=cdc` (the order item alone, with its pending marker) and the
//! fault proxy; two racing mappings on the orders table's stream, one duplicating records, both
//! crashing now and then between the consumer's two writes (the reward's transaction and the
//! order's release from its marker); then the sweeper over the order items still marked. The
//! outbox's invariants where they apply, with the order item in the outbox event's place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::testing::{CrashPoint, Crashing};
use order_service::store::cdc::CdcOrderStore;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewards_service::service;

use crate::chaos::{duplicating, place_orders, unnamed_orders, ChaosOptions, ChaosReport};
use crate::invariants::{self, EventSource};
use crate::pattern::Pattern;
use crate::proxy::FaultProxy;
use crate::stack::{in_process_changes, Stack};

pub async fn chaos(opts: ChaosOptions) -> Result<ChaosReport> {
    let stack = Stack::start_pattern(Pattern::Cdc).await?;
    let proxy = FaultProxy::start(&stack.dynamo.endpoint, opts.faults.clone()).await?;
    let mut report = ChaosReport::default();
    let mut rng = SmallRng::seed_from_u64(opts.seed);

    // 1. Orders, concurrently, through the order-writer's handler (its CDC store) and the proxy.
    let writer = CdcOrderStore::new(
        stack.dynamo.client_via(&proxy.endpoint).await,
        &stack.tables.orders,
    );
    let placed = place_orders(&writer, &opts, &mut rng, &proxy, &mut report).await?;

    // 2. Two mappings race on the stream, each a consumer "process" of its own that crashes
    //    between its writes now and then; mapping A also duplicates records within batches.
    let copies = Arc::new(AtomicU64::new(0));
    let mut crash_counters = Vec::new();
    let mut consumers = Vec::new();
    for seed in [opts.seed ^ 0xA, opts.seed ^ 0xB] {
        let client = stack.dynamo.client_via(&proxy.endpoint).await;
        let processor =
            service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
                .retention_seconds(stack.retention_seconds())
                .expect("a retention in range");
        // A consumer process that sometimes dies right after the reward's transaction committed,
        // before it releases the order from its pending marker: the next delivery (or the
        // sweeper) must find the reward applied by the event id and only release the order.
        let store = Crashing::seeded(
            processor.store().clone(),
            seed,
            opts.crash_probability,
            CrashPoint::BeforeDone,
        );
        crash_counters.push(store.crashes());
        consumers.push(processor.with_store(store));
    }
    let (service_b, service_a) = (consumers.pop(), consumers.pop());
    let (Some(service_a), Some(service_b)) = (service_a, service_b) else {
        unreachable!("two consumers were built");
    };
    let mut a = stack.trigger(duplicating(
        in_process_changes(service_a, 16),
        opts.duplicate_probability,
        opts.seed,
        copies.clone(),
    ))?;
    let mut b = stack.trigger(in_process_changes(service_b, 16))?;
    a.source.batch_size = rng.random_range(10..=100);
    b.source.batch_size = rng.random_range(10..=100);
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    ra?;
    rb?;
    report.duplicated_in_batch = copies.load(Ordering::Relaxed);
    report.deliveries =
        a.stats.records_delivered + b.stats.records_delivered + report.duplicated_in_batch as usize;
    report.crashes = crash_counters
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    report.on_failure_batches = a.on_failure.len() + b.on_failure.len();

    // 3. The sweeper redrives the orders still marked (through the faults too).
    let client = stack.dynamo.client_via(&proxy.endpoint).await;
    let pending = PendingEvents::new(client.clone(), &stack.tables.orders);
    let sweeper = service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
        .retention_seconds(stack.retention_seconds())
        .expect("a retention in range");
    for _ in 0..10 {
        match service::sweep_order_changes(&pending, &sweeper, std::time::Duration::ZERO, 10_000)
            .await
        {
            Ok(r) if r == Default::default() => break,
            Ok(r) => report.swept += r.applied + r.duplicates,
            Err(_) => continue,
        }
    }
    report.proxy = proxy.stats();
    let orders_table = stack.scan(&stack.tables.orders).await?;
    let rewards_table = stack.scan(&stack.tables.rewards).await?;
    report.violations = invariants::check_source(
        &orders_table,
        &rewards_table,
        &placed.acknowledged,
        EventSource::OrderItems,
    );
    report.violations.extend(unnamed_orders(&placed));
    report.endpoint = stack.dynamo.endpoint.clone();
    report.tables = stack.tables.clone();
    Ok(report)
}
