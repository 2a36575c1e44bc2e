//! Consumer batch latency through a latency-injecting proxy (`devkit::proxy::FaultProxy`, 25 ms
//! a realistic Lambda → DynamoDB round trip under load; 0 ms leaves only the local server's own
//! cost): one `process_stream` call on a batch of freshly placed events read from the local
//! stream, concurrent settings against the same code one request at a time, back to back.
//!
//! Re-delivering records that were applied already is a different workload (every record a
//! duplicate), so each measured batch is placed just before it. Two workloads: [`rewards`] (the
//! rewards consumer on orders) and [`ledger`] (the engine's `Processor` running the invoice
//! example's `Ledger`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use aws_lambda_events::dynamodb::EventRecord;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::StreamClient;
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{Consumer, Processor, DEFAULT_CONCURRENCY, DEFAULT_EVENTS_PER_TRANSACTION};

use crate::report::median;

pub mod ledger;
pub mod rewards;

/// A batch's layout: `keys` ordering keys with `per_key` events each, interleaved in the stream
/// (k0, k1, …, k0, k1, …) as concurrent customers' events would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub keys: usize,
    pub per_key: usize,
}

impl Shape {
    pub const fn new(keys: usize, per_key: usize) -> Self {
        Self { keys, per_key }
    }

    pub const fn distinct(records: usize) -> Self {
        Self::new(records, 1)
    }

    pub fn records(self) -> usize {
        self.keys * self.per_key
    }
}

/// How the processor runs: the keys and marks in flight, and the events per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    pub concurrency: usize,
    pub events_per_transaction: usize,
}

impl Settings {
    /// The engine's defaults.
    pub const DEFAULT: Settings = Settings::concurrent(DEFAULT_CONCURRENCY);
    /// One request at a time, one event per transaction: the baseline.
    pub const ONE_AT_A_TIME: Settings = Settings {
        concurrency: 1,
        events_per_transaction: 1,
    };

    /// `concurrency` keys at a time, a key's consecutive events in one transaction.
    pub const fn concurrent(concurrency: usize) -> Self {
        if concurrency <= 1 {
            return Self::ONE_AT_A_TIME;
        }
        Self {
            concurrency,
            events_per_transaction: DEFAULT_EVENTS_PER_TRANSACTION,
        }
    }
}

/// The round trips on the longest chain of a batch, its floor: the commits of the longest key
/// (its runs, in as many waves as the keys need at this concurrency). Both workloads' consumer
/// is its events' only consumer, so each commit also finishes its events: no marks after them.
pub fn round_trips(shape: Shape, settings: Settings) -> usize {
    let waves = |n: usize| n.div_ceil(settings.concurrency.max(1));
    let runs = shape
        .per_key
        .div_ceil(settings.events_per_transaction.max(1));
    waves(shape.keys) * runs
}

/// One kind of batch: how it is placed, which processor takes it, and what it must leave.
#[allow(async_fn_in_trait)]
pub trait Workload: Sized {
    type Consumer: Consumer;
    /// A fresh embedded server (always: the figures describe this code on a known server) with
    /// the workload's tables; the processor's one client goes through [`Workload::proxy`], as one
    /// Lambda container keeps one client for its lifetime.
    async fn start() -> Result<Self>;
    fn proxy(&self) -> &FaultProxy;
    /// Places batch `batch` of `shape` directly (not through the proxy); its stream records.
    async fn place(&mut self, batch: usize, shape: Shape) -> Result<Vec<EventRecord>>;
    fn processor(&self, settings: Settings) -> Processor<Self::Consumer, DynamoConsumerStore>;
    /// Whether the last batch left what it must (each customer's order; exactly once).
    async fn held(&self) -> Result<bool>;
}

/// Places a batch, then times one `process_stream` call on it with `latency` per request; an
/// error unless every record was applied. Also says whether the batch [held](Workload::held).
pub async fn run<W: Workload>(
    lab: &mut W,
    batch: usize,
    latency: Duration,
    settings: Settings,
    shape: Shape,
) -> Result<(Duration, bool)> {
    let records = lab.place(batch, shape).await?;
    let processor = lab.processor(settings);
    lab.proxy().set_plan(FaultPlan::latency(latency));
    let start = Instant::now();
    let outcome = processor.process_stream(&records).await;
    let elapsed = start.elapsed();
    lab.proxy().set_plan(FaultPlan::none());
    ensure!(
        outcome.applied == records.len() && outcome.failures.is_empty(),
        "batch {batch} was not applied in full: {outcome:?}"
    );
    Ok((elapsed, lab.held().await?))
}

/// Every batch's time by (latency, shape, settings), and how many batches held.
#[derive(Debug, Default)]
pub struct Timings {
    times: HashMap<(Duration, Shape, Settings), Vec<Duration>>,
    pub batches: usize,
    pub held: usize,
}

impl Timings {
    pub fn median(&self, latency: Duration, shape: Shape, settings: Settings) -> Duration {
        let mut times = self.times.get(&(latency, shape, settings)).cloned();
        median(times.as_deref_mut().unwrap_or_default())
    }

    /// Each (latency, shape) of `plan` on a fresh server (the embedded server's cost per
    /// request grows with what it holds), after a batch of `warm_up` that opens the pool's
    /// connections (not counted), then both `settings` back to back so both see the same load
    /// on the machine; `repeats` times.
    pub async fn measure<W: Workload>(
        repeats: usize,
        plan: &[(Duration, Shape)],
        settings: [Settings; 2],
        warm_up: Shape,
    ) -> Result<Self> {
        let mut timings = Self::default();
        for _ in 0..repeats {
            for &(latency, shape) in plan {
                let mut lab = W::start().await?;
                run(&mut lab, 0, Duration::ZERO, settings[0], warm_up).await?;
                for (batch, settings) in (1..).zip(settings) {
                    let (elapsed, held) = run(&mut lab, batch, latency, settings, shape).await?;
                    timings.batches += 1;
                    timings.held += usize::from(held);
                    let key = (latency, shape, settings);
                    timings.times.entry(key).or_default().push(elapsed);
                }
            }
        }
        Ok(timings)
    }
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
        for raw in stream.read_all(arn, &mut self.after).await? {
            let insert = raw.json["eventName"] == "INSERT";
            let entity = &raw.json["dynamodb"]["NewImage"][schema::ENTITY]["S"];
            if insert && entity == schema::ENTITY_OUTBOX_EVENT {
                records.push(raw.to_event_record()?);
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_count_waves_of_keys_and_runs_of_records() {
        let (distinct, spread, hot) =
            (Shape::distinct(100), Shape::new(10, 10), Shape::new(1, 100));
        // One request at a time: a commit per record, which finishes its event too.
        for shape in [distinct, spread, hot] {
            assert_eq!(round_trips(shape, Settings::ONE_AT_A_TIME), 100);
        }
        let wide = Settings::concurrent(100);
        assert_eq!(round_trips(distinct, wide), 1);
        assert_eq!(round_trips(spread, wide), 1);
        // One key's 100 records: 4 transactions of 25 in a row.
        assert_eq!(round_trips(hot, wide), 4);
        // 100 keys, 16 at a time: 7 waves of one commit.
        assert_eq!(round_trips(distinct, Settings::concurrent(16)), 7);
        assert_eq!(Settings::concurrent(1), Settings::ONE_AT_A_TIME);
    }

    /// Both workloads, each setting: every record applied, and what the batch must leave held.
    async fn every_batch_holds<W: Workload>() {
        let mut lab = W::start().await.unwrap();
        for (batch, settings) in (1..).zip([Settings::concurrent(8), Settings::ONE_AT_A_TIME]) {
            let latency = Duration::from_millis(1);
            let (elapsed, held) = run(&mut lab, batch, latency, settings, Shape::new(3, 2))
                .await
                .unwrap();
            assert!(held, "{settings:?}");
            assert!(elapsed >= latency);
        }
    }

    #[tokio::test]
    async fn rewards_are_applied_in_full_and_in_each_customers_order() {
        every_batch_holds::<rewards::RewardsLab>().await;
    }

    #[tokio::test]
    async fn ledger_batches_are_applied_exactly_once() {
        every_batch_holds::<ledger::LedgerLab>().await;
    }
}
