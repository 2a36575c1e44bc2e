//! Stores that record what they applied, or fail on purpose.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::around::Around;
use crate::store::{Commit, ConsumerStore, StoreError};

/// A commit that applied: `consumer`'s progress on `ordering_key` moved from `after` to
/// `sequence` (over every event in between, when a run committed together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCommit {
    /// The consumer.
    pub consumer: String,
    /// The key.
    pub ordering_key: String,
    /// Its progress before.
    pub after: u64,
    /// Its progress after.
    pub sequence: u64,
}

/// A store that records every commit that applied, in the order the answers came (concurrent
/// commits of different keys may answer in another order than they committed; one key's
/// commits chain, each starting where the one before it ended), and whose next commits fail
/// when told to, as a throttled or unreachable database would.
#[derive(Debug, Clone)]
pub struct Recording<S> {
    store: S,
    applied: Arc<Mutex<Vec<AppliedCommit>>>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

/// Builds the error a failing commit answers with.
pub type Fault = fn() -> StoreError;

impl<S: ConsumerStore> Recording<S> {
    /// Records the commits that reach `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            applied: Arc::default(),
            faults: Arc::default(),
        }
    }

    /// The store the calls reach.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Every commit that applied so far.
    pub fn applied(&self) -> Vec<AppliedCommit> {
        lock(&self.applied).clone()
    }

    /// The spans `(after, sequence)` of `consumer`'s commits on `ordering_key`, in order.
    pub fn spans(&self, consumer: &str, ordering_key: &str) -> Vec<(u64, u64)> {
        lock(&self.applied)
            .iter()
            .filter(|c| c.consumer == consumer && c.ordering_key == ordering_key)
            .map(|c| (c.after, c.sequence))
            .collect()
    }

    /// The next `count` commits (of any kind) fail with what `fault` builds, writing nothing.
    pub fn fail_next_commits(&self, count: usize, fault: Fault) {
        lock(&self.faults).extend(std::iter::repeat_n(fault, count));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: ConsumerStore> Around for Recording<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.store
    }

    fn before_commit(&self) -> Result<(), StoreError> {
        match lock(&self.faults).pop_front() {
            Some(fault) => Err(fault()),
            None => Ok(()),
        }
    }

    fn applied(&self, commit: Commit<'_>) {
        let Commit { consumer, step, .. } = commit;
        lock(&self.applied).push(AppliedCommit {
            consumer: consumer.to_owned(),
            ordering_key: step.ordering_key.clone(),
            after: step.after,
            sequence: step.sequence,
        });
    }
}
