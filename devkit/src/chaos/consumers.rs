//! The consumers' side of a chaos run: stores that crash at a seeded rate, mappings that
//! deliver records twice in a batch, each mapping with a batch size of its own, and the racing
//! mappings drained side by side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use dynamodb_outbox::testing::{CrashPoint, Crashing};
use dynamodb_outbox::ConsumerStore;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::ChaosOptions;
use crate::mapping::{Batch, Invoke, Mapping, Source, TriggerStats};

/// The consumers' side of the faults: stores that crash and mappings that duplicate records,
/// each seeded from the run's seed and a salt of its own, and counted.
pub(crate) struct ConsumerChaos {
    opts: ChaosOptions,
    point: CrashPoint,
    crashes: Mutex<Vec<Arc<AtomicU64>>>,
    copies: Arc<AtomicU64>,
}

impl ConsumerChaos {
    pub(super) fn new(opts: &ChaosOptions, point: CrashPoint) -> Self {
        Self {
            opts: opts.clone(),
            point,
            crashes: Mutex::default(),
            copies: Arc::default(),
        }
    }

    /// `store` in a consumer process that dies now and then at the pattern's crash point.
    pub fn crashing<S: ConsumerStore>(&self, store: S, salt: u64) -> Crashing<S> {
        self.crashing_at(store, salt, self.point)
    }

    /// `store` in a consumer process that dies now and then at `point`.
    pub fn crashing_at<S: ConsumerStore>(
        &self,
        store: S,
        salt: u64,
        point: CrashPoint,
    ) -> Crashing<S> {
        let (seed, rate) = (self.opts.seed ^ salt, self.opts.crash_probability);
        let store = Crashing::seeded(store, seed, rate, point);
        let mut counters = self.crashes.lock().unwrap_or_else(|p| p.into_inner());
        counters.push(store.crashes());
        store
    }

    /// The copies a mapping adds to its batches: none unless `duplicates`.
    pub fn copies(&self, salt: u64, duplicates: bool) -> Copies {
        Copies {
            rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(self.opts.seed ^ salt))),
            probability: if duplicates {
                self.opts.duplicate_probability
            } else {
                0.0
            },
            count: self.copies.clone(),
        }
    }

    /// `mapping` with a batch size of its own, between 10 and 100.
    pub fn sized<S: Source, I>(&self, mut mapping: Mapping<S, I>, salt: u64) -> Mapping<S, I> {
        let mut rng = SmallRng::seed_from_u64(self.opts.seed ^ salt ^ 0xBA7C);
        mapping.source.batch_size = rng.random_range(10..=100);
        mapping
    }

    /// Records the mappings delivered twice so far.
    pub(super) fn copied(&self) -> u64 {
        self.copies.load(Ordering::Relaxed)
    }

    pub(super) fn crashes(&self) -> u64 {
        let counters = self.crashes.lock().unwrap_or_else(|p| p.into_inner());
        counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Delivers some records of each batch twice, as an at-least-once source may.
#[derive(Clone)]
pub(crate) struct Copies {
    rng: Arc<Mutex<SmallRng>>,
    probability: f64,
    count: Arc<AtomicU64>,
}

impl Copies {
    pub fn add<R: Clone>(&self, records: &mut Vec<R>) {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut copied = Vec::with_capacity(records.len() * 2);
        for record in records.drain(..) {
            if rng.random_bool(self.probability) {
                self.count.fetch_add(1, Ordering::Relaxed);
                copied.push(record.clone());
            }
            copied.push(record);
        }
        *records = copied;
    }
}

/// `inner`, with `copies` added to the batch `records` finds in each event.
pub(crate) fn duplicating<E, R, I>(
    inner: I,
    copies: Copies,
    records: fn(&mut E) -> &mut Vec<R>,
) -> impl Invoke<E>
where
    E: Batch,
    R: Clone,
    I: Invoke<E> + 'static,
{
    let inner = Arc::new(inner);
    move |mut event: E| {
        copies.add(records(&mut event));
        let inner = inner.clone();
        async move { inner.invoke(event).await }
    }
}

/// Mappings drained side by side; their counts summed.
pub(crate) async fn drain_all<S, I>(mappings: &mut [Mapping<S, I>]) -> Result<TriggerStats>
where
    S: Source,
    I: Invoke<S::Event>,
{
    let mut total = TriggerStats::default();
    for stats in futures::future::join_all(mappings.iter_mut().map(Mapping::drain)).await {
        total.add(stats?);
    }
    Ok(total)
}

/// The operator's replay (`outboxctl replay`) of what `mappings` gave up on: each range their
/// on-failure messages name read back from the stream and delivered again by the mapping that
/// gave it up, with its own rules and faults, until no range is given up again (at most
/// `rounds` times); the records delivered again.
pub(crate) async fn replay_given_up<S, I>(
    mappings: &mut [Mapping<S, I>],
    rounds: usize,
) -> Result<usize>
where
    S: Source,
    I: Invoke<S::Event>,
{
    let mut replayed = 0;
    for mapping in mappings {
        for _ in 0..rounds {
            let given_up = std::mem::take(&mut mapping.on_failure);
            if given_up.is_empty() {
                break;
            }
            for message in &given_up {
                let before = mapping.stats.records_delivered;
                mapping.redrive(message).await?;
                replayed += mapping.stats.records_delivered - before;
            }
        }
    }
    Ok(replayed)
}
