//! `make chaos PATTERN=self-read`: orders published concurrently through the fault proxy in
//! front of kinesalite (5xx, throttling, lost responses: the SDK and the clients publish again),
//! each consumer read by two racing mappings, one duplicating records within batches, their
//! DynamoDB writes through a second fault proxy, with crashes right after a commit; then the
//! shared invariants and this pattern's own: every 202'd order exists exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use aws_lambda_events::kinesis::KinesisEvent;
use dynamodb_outbox::testing::{CrashPoint, Crashing};
use futures::stream::{self, StreamExt};
use order_service::self_read::history::NAME as ORDER_HISTORY;
use order_service::self_read::kinesis::KinesisPublisher;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{
    history_in_process, history_processor, rewards_in_process, SelfReadStack,
    ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION,
};
use crate::chaos::{order_id_of, ChaosOptions, ChaosReport};
use crate::demo::api_request;
use crate::invariants::{self, Invariant, Violation};
use crate::kinesis::client_for;
use crate::kinesis_trigger::InvokeKinesis;
use crate::proxy::{FaultPlan, FaultProxy};
use crate::Item;

/// What the publisher's proxy injects: no transactions on Kinesis, so no conflicts.
fn kinesis_faults(seed: u64) -> FaultPlan {
    FaultPlan {
        seed: seed ^ 0x4b,
        server_error: 0.02,
        throttling: 0.02,
        provisioned_throughput: 0.02,
        lose_response: 0.03,
        ..FaultPlan::none()
    }
}

pub async fn run(opts: ChaosOptions) -> Result<ChaosReport> {
    let stack = SelfReadStack::start().await?;
    let kinesis_proxy =
        FaultProxy::start(&stack.kinesis.endpoint, kinesis_faults(opts.seed)).await?;
    let dynamo_proxy = FaultProxy::start(&stack.dynamo.endpoint, opts.faults.clone()).await?;
    let mut report = ChaosReport::default();
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let customers = (opts.orders / 10).clamp(1, 500);

    // 1. Orders through the order API and the Kinesis fault proxy. A client retries a 5xx up to
    //    three times with the same Idempotency-Key when it sent one.
    let publisher = KinesisPublisher::new(
        client_for(&kinesis_proxy.endpoint).await,
        &stack.stream.name,
    );
    let requests: Vec<(String, Option<String>)> = (0..opts.orders)
        .map(|i| {
            let body = json!({
                "customer_id": format!("cust-{}", rng.random_range(0..customers)),
                "currency": "EUR",
                "items": (0..rng.random_range(1..=3)).map(|j| json!({
                    "sku": format!("SKU-{j}"), "quantity": rng.random_range(1..=5), "unit_price_cents": rng.random_range(0..=20_000)
                })).collect::<Vec<_>>()
            })
            .to_string();
            let key = rng.random_bool(0.5).then(|| format!("chaos-{}-{i}", opts.seed));
            (body, key)
        })
        .collect();
    let retries = AtomicU64::new(0);
    let outcomes: Vec<Option<Option<String>>> = stream::iter(requests)
        .map(|(body, key)| {
            let (stack, publisher, retries) = (&stack, &publisher, &retries);
            async move {
                let headers: Vec<(&str, &str)> = key
                    .as_deref()
                    .map(|k| vec![("idempotency-key", k)])
                    .unwrap_or_default();
                let attempts = if key.is_some() { 4 } else { 1 };
                for attempt in 0..attempts {
                    if attempt > 0 {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    let request =
                        api_request("POST", "/orders", Some(body.clone()), &headers).ok()?;
                    let response = stack.call(publisher, request).await;
                    match response.status_code {
                        202 => return Some(order_id_of(response.body.as_ref())),
                        500..=599 => continue,
                        _ => return None,
                    }
                }
                None
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect()
        .await;
    let mut acknowledged = BTreeSet::new();
    for outcome in &outcomes {
        match outcome {
            Some(Some(order_id)) => {
                acknowledged.insert(order_id.clone());
            }
            Some(None) => report.violations.push(Violation {
                invariant: Invariant::AcknowledgedOrderIsStored,
                evidence: "a 202 response named no order_id".into(),
            }),
            None => report.orders_failed += 1,
        }
    }
    report.orders_ok = outcomes.len() - report.orders_failed;
    report.client_retries = retries.load(Ordering::Relaxed) as usize;

    // 2. Each consumer: two racing mappings, A duplicating records in its batches, both
    //    crashing now and then right after a commit (before answering), writes via the proxy.
    let copies = Arc::new(AtomicU64::new(0));
    let crash_counters = Mutex::new(Vec::new());
    let client = stack.dynamo.client_via(&dynamo_proxy.endpoint).await;
    // A consumer process that sometimes dies right after its commit, before answering: the next
    // delivery must find the event a duplicate by its id.
    let crashing = |store, salt: u64| {
        let store = Crashing::seeded(
            store,
            opts.seed ^ salt,
            opts.crash_probability,
            CrashPoint::AfterCommit,
        );
        crash_counters
            .lock()
            .expect("counters")
            .push(store.crashes());
        store
    };
    let history = |salt| {
        let processor =
            history_processor(client.clone(), &stack.orders_table, stack.stream.source());
        let store = crashing(processor.store().clone(), salt);
        history_in_process(processor.with_store(store).concurrency(16))
    };
    let rewards = |salt| {
        let processor = rewards_service::handlers::kinesis::processor(
            client.clone(),
            &stack.rewards_table,
            stack.stream.source(),
        );
        let store = crashing(processor.store().clone(), salt);
        rewards_in_process(processor.with_store(store).concurrency(16))
    };
    let mut history_a = stack
        .trigger(
            ORDER_HISTORY_FUNCTION,
            duplicating(
                history(0xA1),
                opts.duplicate_probability,
                opts.seed ^ 0xD1,
                copies.clone(),
            ),
        )
        .await?;
    let mut history_b = stack.trigger(ORDER_HISTORY_FUNCTION, history(0xB1)).await?;
    let mut rewards_a = stack
        .trigger(
            REWARDS_FUNCTION,
            duplicating(
                rewards(0xA2),
                opts.duplicate_probability,
                opts.seed ^ 0xD2,
                copies.clone(),
            ),
        )
        .await?;
    let mut rewards_b = stack.trigger(REWARDS_FUNCTION, rewards(0xB2)).await?;
    for trigger_batch in [
        &mut history_a.source.batch_size,
        &mut history_b.source.batch_size,
    ] {
        *trigger_batch = rng.random_range(10..=100);
    }
    rewards_a.source.batch_size = rng.random_range(10..=100);
    rewards_b.source.batch_size = rng.random_range(10..=100);
    let (ha, hb, ra, rb) = tokio::join!(
        history_a.drain(),
        history_b.drain(),
        rewards_a.drain(),
        rewards_b.drain()
    );
    ha?;
    hb?;
    ra?;
    rb?;
    report.duplicated_in_batch = copies.load(Ordering::Relaxed);
    report.deliveries = [
        &history_a.stats,
        &history_b.stats,
        &rewards_a.stats,
        &rewards_b.stats,
    ]
    .iter()
    .map(|s| s.records_delivered)
    .sum::<usize>()
        + report.duplicated_in_batch as usize;
    report.crashes = crash_counters
        .lock()
        .expect("counters")
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    report.on_failure_batches = history_a.on_failure.len()
        + history_b.on_failure.len()
        + rewards_a.on_failure.len()
        + rewards_b.on_failure.len();

    let mut proxy = kinesis_proxy.stats();
    println!("Kinesis proxy (PutRecord): {}", proxy.summary());
    let dynamo = dynamo_proxy.stats();
    for (operation, count) in dynamo.requests {
        *proxy.requests.entry(operation).or_default() += count;
    }
    for (fault, count) in dynamo.faults {
        *proxy.faults.entry(fault).or_default() += count;
    }
    proxy.tokens_stripped += dynamo.tokens_stripped;
    report.proxy = proxy;
    let orders_table = scan(&stack, &stack.orders_table).await?;
    let rewards_table = scan(&stack, &stack.rewards_table).await?;
    report
        .violations
        .extend(check(&orders_table, &rewards_table, &acknowledged));
    report.endpoint = format!("{} and {}", stack.dynamo.endpoint, stack.kinesis.endpoint);
    report.tables.orders = stack.orders_table.clone();
    report.tables.rewards = stack.rewards_table.clone();
    Ok(report)
}

/// The shared invariants, where they apply without an outbox (an order has no outbox event
/// here), and this pattern's own: every 202'd order exists exactly once, with exactly one
/// ledger entry, and order-history parked nothing.
pub fn check(
    orders_table: &[Item],
    rewards_table: &[Item],
    acknowledged: &BTreeSet<String>,
) -> Vec<Violation> {
    let mut violations: Vec<Violation> =
        invariants::check(orders_table, rewards_table, acknowledged)
            .into_iter()
            .filter(|v| v.invariant != Invariant::OrderHasOneEventAndOneLedgerEntry)
            .collect();
    let text = |item: &Item, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let mut items_of_order: BTreeMap<String, usize> = BTreeMap::new();
    let parked = dynamodb_outbox::testing::schema::parked_pk(ORDER_HISTORY);
    for item in orders_table {
        let pk = text(item, dynamodb_outbox::testing::schema::PK).unwrap_or_default();
        if pk == parked {
            violations.push(Violation {
                invariant: Invariant::EventIsProcessed,
                evidence: format!("order-history parked {pk} / {:?}", text(item, "sk")),
            });
        }
        if text(item, dynamodb_outbox::testing::schema::ENTITY).as_deref()
            == Some(order_service::schema::ENTITY_ORDER)
        {
            if let Some(order_id) = text(item, "order_id") {
                *items_of_order.entry(order_id).or_default() += 1;
            }
        }
    }
    let mut ledger_of_order: BTreeMap<String, usize> = BTreeMap::new();
    for item in rewards_table {
        let sk = text(item, dynamodb_outbox::testing::schema::SK).unwrap_or_default();
        if sk.starts_with(rewards_service::schema::LEDGER_SK_PREFIX) {
            *ledger_of_order
                .entry(text(item, "order_id").unwrap_or_default())
                .or_default() += 1;
        }
    }
    for (order_id, items) in &items_of_order {
        let ledger = ledger_of_order.get(order_id).copied().unwrap_or(0);
        if *items != 1 || ledger != 1 {
            violations.push(Violation {
                invariant: Invariant::OrderHasOneEventAndOneLedgerEntry,
                evidence: format!("order {order_id}: {items} order items, {ledger} ledger entries"),
            });
        }
    }
    violations.sort();
    violations
}

async fn scan(stack: &SelfReadStack, table: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = stack
            .dynamo
            .client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Runs the self-read chaos and prints its verdict as the outbox's does.
pub async fn print_run(opts: ChaosOptions) -> Result<()> {
    let started = std::time::Instant::now();
    let (orders, seed) = (opts.orders, opts.seed);
    let report = run(opts).await?;
    for line in report.broken_invariants() {
        println!("{line}");
    }
    println!("{}", report.summary());
    println!(
        "(pattern self-read, {orders} orders, seed {seed}, {:.1} s, on {}: tables {} and {}; faults on PutRecord at the Kinesis proxy and on the consumers' DynamoDB writes)",
        started.elapsed().as_secs_f64(),
        report.endpoint,
        report.tables.orders,
        report.tables.rewards
    );
    if report.on_failure_batches > 0 {
        bail!(
            "{} batches went to the on-failure destination: their orders may be missing",
            report.on_failure_batches
        );
    }
    report.verdict()
}

/// Delivers some records of each batch twice, as an at-least-once source may.
fn duplicating<I: InvokeKinesis + 'static>(
    inner: I,
    probability: f64,
    seed: u64,
    copies: Arc<AtomicU64>,
) -> impl InvokeKinesis {
    let inner = Arc::new(inner);
    let rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed)));
    move |mut event: KinesisEvent| {
        let mut records = Vec::with_capacity(event.records.len() * 2);
        {
            let mut rng = rng.lock().expect("rng");
            for record in event.records.drain(..) {
                if rng.random_bool(probability) {
                    copies.fetch_add(1, Ordering::Relaxed);
                    records.push(record.clone());
                }
                records.push(record);
            }
        }
        event.records = records;
        let inner = inner.clone();
        async move { inner.invoke(event).await }
    }
}
