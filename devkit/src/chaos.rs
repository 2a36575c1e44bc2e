//! The chaos run: many orders placed concurrently through a fault-injecting proxy, the stream
//! delivered by two racing mappings with duplicates and crashes between the consumer's two
//! writes, then the sweeper; then the invariants of the outbox, checked on what the tables hold.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::encodings::Body;
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::testing::{CrashPoint, Crashing};
use futures::stream::{self, StreamExt};
use order_service::handlers::order_api;
use order_service::store::dynamodb::DynamoOrderStore;
use order_service::store::OrderStore;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewards_service::service;
use serde_json::{json, Value as Json};

use crate::demo::api_request;
use crate::invariants::{self, Violation};
use crate::local::Tables;
use crate::proxy::{FaultPlan, FaultProxy, ProxyStats};
use crate::stack::{in_process, Stack};
use crate::trigger::Invoke;

#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub orders: usize,
    pub seed: u64,
    /// Requests in flight at once, as many concurrent API callers.
    pub concurrency: usize,
    /// Probability that the consumer "crashes" after its rewards transaction, before the mark.
    pub crash_probability: f64,
    /// Probability, per record and batch, that a mapping delivers it twice in the same batch.
    pub duplicate_probability: f64,
    pub faults: FaultPlan,
}

impl ChaosOptions {
    pub fn new(orders: usize, seed: u64) -> Self {
        Self {
            orders,
            seed,
            concurrency: 64,
            crash_probability: 0.05,
            duplicate_probability: 0.25,
            faults: FaultPlan {
                seed,
                server_error: 0.02,
                throttling: 0.02,
                provisioned_throughput: 0.01,
                transaction_conflict: 0.02,
                lose_response: 0.02,
                // Without the token, a retried transaction is recognised by the code alone.
                strip_client_request_token: true,
                ..FaultPlan::none()
            },
        }
    }
}

#[derive(Debug, Default)]
pub struct ChaosReport {
    pub orders_ok: usize,
    pub orders_failed: usize,
    pub client_retries: usize,
    pub deliveries: usize,
    pub duplicated_in_batch: u64,
    pub crashes: u64,
    pub on_failure_batches: usize,
    pub swept: usize,
    /// What went through the fault proxy, and what it injected.
    pub proxy: ProxyStats,
    pub violations: Vec<Violation>,
    /// Where the run wrote: the server's endpoint and the run's two tables.
    pub endpoint: String,
    pub tables: Tables,
}

impl ChaosReport {
    pub fn summary(&self) -> String {
        format!(
            "chaos: {} orders acknowledged, {} failed after {} client retries | {} record deliveries ({} extra copies in batch, 2 racing mappings), {} crashes between the consumer's writes, {} batches to the on-failure destination, {} events redriven by the sweeper | proxy: {} | invariants: {}",
            self.orders_ok,
            self.orders_failed,
            self.client_retries,
            self.deliveries,
            self.duplicated_in_batch,
            self.crashes,
            self.on_failure_batches,
            self.swept,
            self.proxy.summary(),
            if self.violations.is_empty() { "all hold".to_owned() } else { format!("{} VIOLATED", self.violations.len()) }
        )
    }

    /// Each broken invariant with how often it broke and the keys of a few items that show it.
    pub fn broken_invariants(&self) -> Vec<String> {
        invariants::describe(&self.violations, 3)
    }

    /// A pass only if faults were injected and every invariant held: a run in which nothing
    /// failed proves nothing about failures, whatever the tables hold.
    pub fn verdict(&self) -> Result<()> {
        if self.proxy.total_faults() == 0 {
            bail!("{}", no_faults_sentence(&self.proxy));
        }
        if !self.violations.is_empty() {
            let broken: BTreeSet<_> = self.violations.iter().map(|v| v.invariant).collect();
            bail!(
                "the chaos run broke {} of the outbox's invariants ({} violations): {}",
                broken.len(),
                self.violations.len(),
                broken
                    .iter()
                    .map(|i| i.statement())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Ok(())
    }
}

fn no_faults_sentence(proxy: &ProxyStats) -> String {
    if proxy.total_requests() == 0 {
        "the chaos run injected no faults: no request reached the fault proxy, so the clients talked to \
         the database some other way; the run proves nothing and is not a pass"
            .to_owned()
    } else {
        format!(
            "the chaos run injected no faults ({}); the run proves nothing and is not a pass",
            proxy.summary()
        )
    }
}

/// Delivers some records of each batch twice, as an at-least-once source may.
pub(crate) fn duplicating<I: Invoke + 'static>(
    inner: I,
    probability: f64,
    seed: u64,
    copies: Arc<AtomicU64>,
) -> impl Invoke {
    let inner = Arc::new(inner);
    let rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed)));
    move |mut event: Event| {
        let mut records = Vec::with_capacity(event.records.len() * 2);
        {
            let mut rng = rng.lock().expect("rng");
            for r in event.records.drain(..) {
                if rng.random_bool(probability) {
                    copies.fetch_add(1, Ordering::Relaxed);
                    records.push(r.clone());
                }
                records.push(r);
            }
        }
        event.records = records;
        let inner = inner.clone();
        async move { inner.invoke(event).await }
    }
}

enum Outcome {
    /// 201, with the order id the response names (`None` if it names none).
    Acknowledged(Option<String>),
    Failed,
}

pub fn order_id_of(body: Option<&Body>) -> Option<String> {
    let bytes: &[u8] = match body? {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => return None,
    };
    serde_json::from_slice::<Json>(bytes).ok()?["order_id"]
        .as_str()
        .map(str::to_owned)
}

pub async fn run(opts: ChaosOptions) -> Result<ChaosReport> {
    let stack = Stack::start().await?;
    let proxy = FaultProxy::start(&stack.dynamo.endpoint, opts.faults.clone()).await?;
    let mut report = ChaosReport::default();
    let mut rng = SmallRng::seed_from_u64(opts.seed);

    // 1. Orders, concurrently, through the order-writer's handler and the proxy.
    let writer = DynamoOrderStore::new(
        stack.dynamo.client_via(&proxy.endpoint).await,
        &stack.tables.orders,
    );
    let acknowledged = place_orders(&writer, &opts, &mut rng, &proxy, &mut report).await?;

    // 2. Two mappings race on the same shard, each a separate consumer "process" that crashes
    //    between its writes now and then; mapping A also duplicates records within batches.
    let copies = Arc::new(AtomicU64::new(0));
    let (stack_ref, proxy_ref, opts_ref) = (&stack, &proxy, &opts);
    let consumer = |seed: u64| async move {
        let (stack, proxy, opts) = (stack_ref, proxy_ref, opts_ref);
        let client = stack.dynamo.client_via(&proxy.endpoint).await;
        let processor =
            service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
                .retention_seconds(stack.retention_seconds())
                .expect("a retention in range");
        // Dies after the effect's commit, before the mark: redelivery only makes the mark.
        let (store, rate) = (processor.store().clone(), opts.crash_probability);
        let store = Crashing::seeded(store, seed, rate, CrashPoint::BeforeDone);
        let crashes = store.crashes();
        (processor.with_store(store), crashes)
    };
    let ((service_a, crashes_a), (service_b, crashes_b)) = (
        consumer(opts.seed ^ 0xA).await,
        consumer(opts.seed ^ 0xB).await,
    );
    let crash_counters = [crashes_a, crashes_b];
    let mut a = stack.trigger(duplicating(
        in_process(service_a, 16),
        opts.duplicate_probability,
        opts.seed,
        copies.clone(),
    ))?;
    let mut b = stack.trigger(in_process(service_b, 16))?;
    a.source.batch_size = rng.random_range(10..=100);
    b.source.batch_size = rng.random_range(10..=100);
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    ra?;
    rb?;
    report.deliveries = a.stats.records_delivered
        + b.stats.records_delivered
        + copies.load(Ordering::Relaxed) as usize;
    report.duplicated_in_batch = copies.load(Ordering::Relaxed);
    report.crashes = crash_counters
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    report.on_failure_batches = a.on_failure.len() + b.on_failure.len();

    // 3. The sweeper redrives whatever is still pending (it goes through the faults too).
    let client = stack.dynamo.client_via(&proxy.endpoint).await;
    let pending = PendingEvents::new(client.clone(), &stack.tables.orders);
    let sweeper = service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
        .retention_seconds(stack.retention_seconds())
        .expect("a retention in range");
    for _ in 0..10 {
        match service::sweep(&pending, &sweeper, std::time::Duration::ZERO, 10_000).await {
            Ok(r) if r == Default::default() => break,
            Ok(r) => report.swept += r.applied + r.duplicates,
            Err(_) => continue,
        }
    }
    report.proxy = proxy.stats();
    report.violations = check_invariants(&stack, &acknowledged.acknowledged).await?;
    report.violations.extend(unnamed_orders(&acknowledged));
    report.endpoint = stack.dynamo.endpoint.clone();
    report.tables = stack.tables.clone();
    Ok(report)
}

/// What the order API acknowledged (201): the order ids its answers named, and how many named none.
pub(crate) struct Placed {
    pub acknowledged: BTreeSet<String>,
    pub acknowledged_without_id: usize,
}

/// `opts.orders` random orders of `opts.orders / 10` customers (at most 500), `opts.concurrency`
/// at once, through the order-writer's handler over `writer` (whose client goes through the
/// proxy). Clients retry a 5xx up to three times with the same Idempotency-Key when they sent
/// one.
pub(crate) async fn place_orders<S: OrderStore>(
    writer: &S,
    opts: &ChaosOptions,
    rng: &mut SmallRng,
    proxy: &FaultProxy,
    report: &mut ChaosReport,
) -> Result<Placed> {
    let customers = (opts.orders / 10).clamp(1, 500);
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
    let outcomes: Vec<Outcome> = stream::iter(requests)
        .map(|(body, key)| {
            let (writer, retries) = (writer, &retries);
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
                    let Ok(req) = api_request("POST", "/orders", Some(body.clone()), &headers)
                    else {
                        return Outcome::Failed;
                    };
                    // Through the Lambda handler, so the run's metrics are the function's own.
                    let event =
                        lambda_runtime::LambdaEvent::new(req, lambda_runtime::Context::default());
                    let Ok(response) = order_api::handle(writer, event).await else {
                        return Outcome::Failed;
                    };
                    match response.status_code {
                        201 => return Outcome::Acknowledged(order_id_of(response.body.as_ref())),
                        500..=599 => continue,
                        _ => return Outcome::Failed,
                    }
                }
                Outcome::Failed
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect()
        .await;
    let mut acknowledged = BTreeSet::new();
    let mut acknowledged_without_id = 0;
    for outcome in &outcomes {
        match outcome {
            Outcome::Acknowledged(Some(order_id)) => {
                acknowledged.insert(order_id.clone());
            }
            Outcome::Acknowledged(None) => acknowledged_without_id += 1,
            Outcome::Failed => report.orders_failed += 1,
        }
    }
    report.orders_ok = outcomes.len() - report.orders_failed;
    report.client_retries = retries.load(Ordering::Relaxed) as usize;
    // Not worth going on: without the proxy in the path, the rest would test nothing either.
    if opts.orders > 0 && proxy.stats().total_requests() == 0 {
        bail!("{}", no_faults_sentence(&proxy.stats()));
    }
    Ok(Placed {
        acknowledged,
        acknowledged_without_id,
    })
}

/// Every 201 that named no order id is a broken promise of its own.
pub(crate) fn unnamed_orders(placed: &Placed) -> impl Iterator<Item = Violation> {
    (0..placed.acknowledged_without_id).map(|_| Violation {
        invariant: invariants::Invariant::AcknowledgedOrderIsStored,
        evidence: "a 201 response named no order_id".into(),
    })
}

/// The outbox's promises, checked on the tables (read directly, not through the proxy).
pub async fn check_invariants(
    stack: &Stack,
    acknowledged: &BTreeSet<String>,
) -> Result<Vec<Violation>> {
    let orders_table = stack.scan(&stack.tables.orders).await?;
    let rewards_table = stack.scan(&stack.tables.rewards).await?;
    Ok(invariants::check(
        &orders_table,
        &rewards_table,
        acknowledged,
    ))
}
