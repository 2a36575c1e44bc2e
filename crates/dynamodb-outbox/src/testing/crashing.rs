//! A consumer process that dies at a chosen point, now and then, reproducibly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::around::Around;
use crate::store::{Committed, ConsumerStore, ItemKey, StoreError};

/// Where the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Right after an effect's transaction committed, before the caller hears of it (`commit`,
    /// `commit_once`, `commit_parked` that applied): the effect is stored, the caller sees the
    /// store unavailable, and nothing it would have done next (the mark, the release) happens.
    AfterCommit,
    /// After the effect's commit, before the item is marked done: `leave` (an outbox event's
    /// mark, an entity item's release from its pending marker) fails without writing.
    BeforeDone,
}

/// The error a [`Crashing`] store answers with, as the source of a
/// [`StoreError::Unavailable`]: a process that died looks like a store that did not answer.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("injected crash ({0:?})")]
pub struct Crash(pub CrashPoint);

/// A store whose process crashes at `point` at a rate, deterministically from a seed.
#[derive(Debug, Clone)]
pub struct Crashing<S> {
    store: S,
    point: CrashPoint,
    rate: f64,
    only: Option<ItemKey>,
    rng: Arc<Mutex<u64>>,
    crashes: Arc<AtomicU64>,
}

impl<S: ConsumerStore> Crashing<S> {
    /// Crashes at `point` with probability `rate` (0.0 to 1.0), the draws seeded by `seed`.
    pub fn seeded(store: S, seed: u64, rate: f64, point: CrashPoint) -> Self {
        Self {
            store,
            point,
            rate,
            only: None,
            rng: Arc::new(Mutex::new(seed)),
            crashes: Arc::default(),
        }
    }

    /// Crashes at `point` every time.
    pub fn always(store: S, point: CrashPoint) -> Self {
        Self::seeded(store, 0, 1.0, point)
    }

    /// Crashes only when marking `item` done (for [`CrashPoint::BeforeDone`]).
    pub fn only_at(mut self, item: ItemKey) -> Self {
        self.only = Some(item);
        self
    }

    /// How many times it crashed so far, shared by its clones.
    pub fn crashes(&self) -> Arc<AtomicU64> {
        self.crashes.clone()
    }

    /// The store the calls reach.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Whether to crash now: a splitmix64 draw, so a seed gives the same crashes every run.
    fn crash(&self, point: CrashPoint) -> Result<(), StoreError> {
        if point != self.point {
            return Ok(());
        }
        let draw = {
            let mut state = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        // The top 53 bits as a fraction in [0, 1).
        let fraction = (draw >> 11) as f64 / (1u64 << 53) as f64;
        if fraction < self.rate {
            self.crashes.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable(Box::new(Crash(point))));
        }
        Ok(())
    }
}

impl<S: ConsumerStore> Around for Crashing<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.store
    }

    fn after_commit(&self, result: Result<Committed, StoreError>) -> Result<Committed, StoreError> {
        match result? {
            Committed::Applied => self
                .crash(CrashPoint::AfterCommit)
                .map(|()| Committed::Applied),
            other => Ok(other),
        }
    }

    fn joins(&self) -> bool {
        self.point != CrashPoint::BeforeDone
    }

    fn before_leave(&self, item: &ItemKey) -> Result<(), StoreError> {
        if self.only.as_ref().is_none_or(|only| only == item) {
            self.crash(CrashPoint::BeforeDone)?;
        }
        Ok(())
    }
}
