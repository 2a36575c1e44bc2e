//! The chaos run, for any pattern: many orders placed concurrently through a fault-injecting
//! proxy, every consumer's source read by two racing mappings with duplicates and crashes, then
//! the pattern's sweeper; then the invariants, checked on what the tables hold.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, ensure, Result};
use aws_lambda_events::encodings::Body;
use futures::future::OptionFuture;
use futures::stream::{self, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

mod consumers;

pub(crate) use consumers::{drain_all, duplicating, replay_given_up, ConsumerChaos};

use crate::demo::api_request;
use crate::invariants::{self, Invariant, Violation};
use crate::local::Tables;
use crate::metrics::Collector;
use crate::pattern::Pattern;
use crate::patterns::broker::BrokerStack;
use crate::patterns::self_read::SelfReadStack;
use crate::patterns::{Harness, OrderApi};
use crate::proxy::{FaultPlan, FaultProxy, ProxyStats};
use crate::stack::Stack;

#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub orders: usize,
    pub seed: u64,
    /// Requests in flight at once, as many concurrent API callers.
    pub concurrency: usize,
    /// Probability that a consumer "crashes" at its pattern's crash point.
    pub crash_probability: f64,
    /// Probability, per record and batch, that a mapping delivers it twice in the same batch.
    pub duplicate_probability: f64,
    /// What the proxy in front of DynamoDB injects.
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
                provisioned_throughput: 0.01,
                transaction_conflict: 0.02,
                // Without the token, a retried transaction is recognised by the code alone.
                strip_client_request_token: true,
                ..any_server(seed)
            },
        }
    }

    /// What the proxy in front of the broker (moto's EventBridge and SQS) injects: besides
    /// [`any_server`]'s, single entries of a `PutEvents` failed.
    fn broker_faults(&self) -> FaultPlan {
        FaultPlan {
            // Per `PutEvents` call, of which a run makes about one per ten orders: at 5 % the
            // 250-order run of `tests/chaos.rs` failed no entry in about a third of its runs.
            partial_failure: 0.25,
            ..any_server(self.seed ^ 0xb0)
        }
    }

    /// What the proxy in front of Kinesis injects: no transactions there, so no conflicts.
    fn kinesis_faults(&self) -> FaultPlan {
        FaultPlan {
            provisioned_throughput: 0.02,
            lose_response: 0.03,
            ..any_server(self.seed ^ 0x4b)
        }
    }
}

/// What every fault proxy of a run injects, whatever the server behind it: failed and
/// throttled calls, and answers lost after the server acted.
fn any_server(seed: u64) -> FaultPlan {
    FaultPlan {
        seed,
        server_error: 0.02,
        throttling: 0.02,
        lose_response: 0.02,
        ..FaultPlan::none()
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
    /// Whether a sweeper redrives what the mappings gave up (otherwise those batches are lost).
    pub sweeper: bool,
    /// What went through the fault proxies, and what they injected (Kinesis's and the
    /// broker's included).
    pub proxy: ProxyStats,
    /// What went through the proxy in front of Kinesis, for the pattern that publishes there.
    pub kinesis_proxy: Option<ProxyStats>,
    /// What went through the proxy in front of the broker, for the deployment that relays.
    pub broker_proxy: Option<ProxyStats>,
    pub violations: Vec<Violation>,
    /// Where the run wrote: the servers' endpoints and the run's two tables.
    pub endpoint: String,
    pub tables: Tables,
}

impl ChaosReport {
    pub fn summary(&self) -> String {
        format!(
            "chaos: {} orders acknowledged, {} failed after {} client retries | {} record deliveries ({} extra copies in batch, 2 racing mappings), {} consumer crashes (at its pattern's crash point), {} batches to the on-failure destination, {} events redriven by the sweeper | proxy: {} | invariants: {}",
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

    /// A pass only if faults were injected, nothing was given up with no sweeper behind it and
    /// every invariant held: a run in which nothing failed proves nothing about failures.
    pub fn verdict(&self) -> Result<()> {
        ensure!(
            self.proxy.total_faults() > 0,
            "{}",
            no_faults_sentence(&self.proxy)
        );
        let (given_up, sweeper) = (self.on_failure_batches, self.sweeper);
        ensure!(
            sweeper || given_up == 0,
            "{given_up} batches went to the on-failure destination: their orders may be missing"
        );
        let broken: BTreeSet<_> = self
            .violations
            .iter()
            .map(|v| v.invariant.statement())
            .collect();
        ensure!(
            broken.is_empty(),
            "the chaos run broke {} of the outbox's invariants ({} violations): {}",
            broken.len(),
            self.violations.len(),
            broken.into_iter().collect::<Vec<_>>().join("; ")
        );
        Ok(())
    }
}

fn no_faults_sentence(proxy: &ProxyStats) -> String {
    let why = match proxy.total_requests() {
        0 => "no request reached the fault proxy, so the clients talked to the database some other way".to_owned(),
        _ => proxy.summary(),
    };
    format!("the chaos run injected no faults ({why}); the run proves nothing and is not a pass")
}

/// The proxies a run puts in front of the pattern's servers.
pub(crate) struct Faults {
    pub dynamo: FaultProxy,
    pub kinesis: Option<FaultProxy>,
    pub broker: Option<FaultProxy>,
}

impl Faults {
    async fn start<H: Harness>(stack: &H, opts: &ChaosOptions) -> Result<Self> {
        let dynamo = FaultProxy::start(&stack.dynamo().endpoint, opts.faults.clone()).await?;
        let kinesis = stack
            .kinesis_endpoint()
            .map(|to| FaultProxy::start(to, opts.kinesis_faults()));
        let kinesis = OptionFuture::from(kinesis).await.transpose()?;
        let broker = stack
            .broker_endpoint()
            .map(|to| FaultProxy::start(to, opts.broker_faults()));
        let broker = OptionFuture::from(broker).await.transpose()?;
        Ok(Self {
            dynamo,
            kinesis,
            broker,
        })
    }

    /// The proxy in front of the broker, or the DynamoDB one for a pattern without a broker
    /// (whose clients never call it).
    pub fn broker_endpoint(&self) -> &str {
        self.broker
            .as_ref()
            .unwrap_or(&self.dynamo)
            .endpoint
            .as_str()
    }

    /// Every proxy's counts in one.
    fn stats(&self) -> ProxyStats {
        let mut all = self.dynamo.stats();
        for other in self
            .kinesis
            .iter()
            .chain(&self.broker)
            .map(FaultProxy::stats)
        {
            all.add(other);
        }
        all
    }
}

/// The order id an order API's answer names.
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

/// The chaos run of `pattern` on a fresh local stack.
pub async fn run(pattern: Pattern, opts: ChaosOptions) -> Result<ChaosReport> {
    match pattern {
        Pattern::SelfRead => run_on(SelfReadStack::start().await?, opts).await,
        Pattern::Broker => run_on(BrokerStack::start().await?, opts).await,
        pattern => run_on(Stack::start_pattern(pattern).await?, opts).await,
    }
}

async fn run_on<H: Harness>(stack: H, opts: ChaosOptions) -> Result<ChaosReport> {
    let faults = Faults::start(&stack, &opts).await?;
    let mut report = ChaosReport::default();
    let api = stack.order_api(Some(&faults)).await?;
    let acknowledged = place_orders(&api, H::ACCEPTED, &opts, &faults, &mut report).await?;

    let chaos = ConsumerChaos::new(&opts, stack.crash_point());
    let stats = stack.consume_racing(&chaos, &faults).await?;
    report.duplicated_in_batch = chaos.copied();
    report.deliveries = stats.records_delivered + report.duplicated_in_batch as usize;
    report.crashes = chaos.crashes();
    report.on_failure_batches = stats.batches_to_on_failure;
    let swept = stack.sweep(&chaos, &faults).await?;
    (report.sweeper, report.swept) = (swept.is_some(), swept.unwrap_or(0));
    // Crashes and copies of the sweep's own drain of a queue count too.
    report.crashes = chaos.crashes();
    report.duplicated_in_batch = chaos.copied();

    report.proxy = faults.stats();
    report.kinesis_proxy = faults.kinesis.as_ref().map(FaultProxy::stats);
    report.broker_proxy = faults.broker.as_ref().map(FaultProxy::stats);
    let tables = stack.tables();
    let orders = stack.dynamo().scan(&tables.orders).await?;
    let rewards = stack.dynamo().scan(&tables.rewards).await?;
    let violations = invariants::check_source(&orders, &rewards, &acknowledged, stack.events());
    report.violations.extend(violations);
    report.violations.extend(stack.leftovers().await?);
    let others = stack
        .kinesis_endpoint()
        .into_iter()
        .chain(stack.broker_endpoint());
    report.endpoint = std::iter::once(stack.dynamo().endpoint.as_str())
        .chain(others)
        .collect::<Vec<_>>()
        .join(" and ");
    report.tables = tables;
    Ok(report)
}

/// Runs the chaos of `pattern` and prints its findings, the functions' own metrics (read back
/// from the EMF lines they wrote during the run) and its summary; then its verdict.
pub async fn print_run(pattern: Pattern, opts: ChaosOptions) -> Result<()> {
    let started = std::time::Instant::now();
    let metrics = Collector::install();
    let (orders, seed) = (opts.orders, opts.seed);
    let report = run(pattern, opts).await?;
    // Each broken invariant with how often it broke and the keys of a few items that show it.
    for line in invariants::describe(&report.violations, 3) {
        println!("{line}");
    }
    println!("{}", metrics.summary()?.render());
    if let Some(kinesis) = &report.kinesis_proxy {
        println!("Kinesis proxy (PutRecord): {}", kinesis.summary());
    }
    if let Some(broker) = &report.broker_proxy {
        println!(
            "broker proxy (PutEvents, ReceiveMessage, DeleteMessageBatch): {}",
            broker.summary()
        );
    }
    println!("{}", report.summary());
    println!(
        "(pattern {pattern}, {orders} orders, seed {seed}, {:.1} s, on {}: tables {} and {}{})",
        started.elapsed().as_secs_f64(),
        report.endpoint,
        report.tables.orders,
        report.tables.rewards,
        match (&report.kinesis_proxy, &report.broker_proxy) {
            (Some(_), _) => {
                "; faults on PutRecord at the Kinesis proxy and on the consumers' DynamoDB writes"
            }
            (_, Some(_)) => "; faults on the relay's PutEvents and the inbox mappings' ReceiveMessage and DeleteMessageBatch at the broker proxy, and on every DynamoDB write",
            _ => "",
        }
    );
    report.verdict()
}

enum Outcome {
    /// Acknowledged, with the order id the response names (`None` if it names none).
    Acknowledged(Option<String>),
    Failed,
}

/// `opts.orders` random orders of `opts.orders / 10` customers (at most 500), half of them with
/// an Idempotency-Key: (body, key).
fn random_orders(opts: &ChaosOptions) -> Vec<(String, Option<String>)> {
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let customers = (opts.orders / 10).clamp(1, 500);
    (0..opts.orders)
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
        .collect()
}

/// One client's order: it retries a 5xx up to three times when it sent an Idempotency-Key.
async fn send_order<A: OrderApi>(
    api: &A,
    accepted: i64,
    body: String,
    key: Option<String>,
    retries: &AtomicU64,
) -> Outcome {
    let headers: Vec<_> = key
        .iter()
        .map(|k| ("idempotency-key", k.as_str()))
        .collect();
    for attempt in 0..if key.is_some() { 4 } else { 1 } {
        retries.fetch_add(u64::from(attempt > 0), Ordering::Relaxed);
        let Ok(request) = api_request("POST", "/orders", Some(body.clone()), &headers) else {
            return Outcome::Failed;
        };
        match api.handle(request).await {
            Ok(ok) if ok.status_code == accepted => {
                return Outcome::Acknowledged(order_id_of(ok.body.as_ref()))
            }
            Ok(failed) if (500..600).contains(&failed.status_code) => continue,
            _ => return Outcome::Failed,
        }
    }
    Outcome::Failed
}

/// The random orders, `opts.concurrency` at once, through `api` (whose clients go through the
/// proxies); the ids the acknowledgements named. One that named none is a broken promise.
async fn place_orders<A: OrderApi>(
    api: &A,
    accepted: i64,
    opts: &ChaosOptions,
    faults: &Faults,
    report: &mut ChaosReport,
) -> Result<BTreeSet<String>> {
    let retries = AtomicU64::new(0);
    let outcomes: Vec<Outcome> = stream::iter(random_orders(opts))
        .map(|(body, key)| send_order(api, accepted, body, key, &retries))
        .buffer_unordered(opts.concurrency)
        .collect()
        .await;
    let mut acknowledged = BTreeSet::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Acknowledged(Some(order_id)) => _ = acknowledged.insert(order_id),
            Outcome::Acknowledged(None) => report.violations.push(Violation {
                invariant: Invariant::AcknowledgedOrderIsStored,
                evidence: "an acknowledgement named no order_id".into(),
            }),
            Outcome::Failed => report.orders_failed += 1,
        }
    }
    report.orders_ok = opts.orders - report.orders_failed;
    report.client_retries = retries.load(Ordering::Relaxed) as usize;
    // Not worth going on: without the proxy in the path, the rest would test nothing either.
    if opts.orders > 0 && faults.stats().total_requests() == 0 {
        bail!("{}", no_faults_sentence(&faults.stats()));
    }
    Ok(acknowledged)
}
