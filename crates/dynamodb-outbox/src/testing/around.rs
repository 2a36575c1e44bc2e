//! The test stores' shared shape: every call reaches the wrapped store, with a say before the
//! commits and the leave and over the commits' answers.

use crate::consumer::Effect;
use crate::store::{
    Commit, CommitOnce, Committed, ConsumerStore, ItemKey, LastOut, Leaving, Parked, StoreError,
    StoreOps,
};

/// What a test store adds around the store it wraps.
pub(crate) trait Around: Send + Sync {
    /// The store the calls reach.
    type Inner: ConsumerStore;

    fn inner(&self) -> &Self::Inner;

    /// Before a commit of any kind reaches the wrapped store: an error stops it there.
    fn before_commit(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The wrapped store's answer to a commit of any kind, as the caller hears it.
    fn after_commit(&self, result: Result<Committed, StoreError>) -> Result<Committed, StoreError> {
        result
    }

    /// A progress commit (`commit`) that applied.
    fn applied(&self, _commit: Commit<'_>) {}

    /// Before `leave` reaches the wrapped store: an error stops it there.
    fn before_leave(&self, _item: &ItemKey) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether a commit may leave its items in the same transaction: not for a store that must
    /// stop between the two.
    fn joins(&self) -> bool {
        true
    }
}

impl<A: Around> StoreOps for A {
    fn table(&self) -> &str {
        self.inner().table()
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, StoreError> {
        self.before_commit()?;
        let result = self.inner().commit(commit).await;
        answered(self, commit, result)
    }

    async fn commit_leaving(
        &self,
        commit: Commit<'_>,
        leaving: Leaving<'_>,
    ) -> Result<Option<Committed>, StoreError> {
        if !self.joins() {
            return Ok(None);
        }
        self.before_commit()?;
        let result = self.inner().commit_leaving(commit, leaving).await;
        // `None` is no commit: nothing to say of it.
        match result.transpose() {
            Some(result) => answered(self, commit, result).map(Some),
            None => Ok(None),
        }
    }

    async fn progress_on(&self, consumer: &str, ordering_key: &str) -> Result<u64, StoreError> {
        self.inner().progress_on(consumer, ordering_key).await
    }

    async fn leave(&self, consumer: &str, item: &ItemKey, last: LastOut) -> Result<(), StoreError> {
        self.before_leave(item)?;
        self.inner().leave(consumer, item, last).await
    }

    async fn parked(&self, consumer: &str, limit: usize) -> Result<Vec<Parked>, StoreError> {
        self.inner().parked(consumer, limit).await
    }

    async fn commit_parked(
        &self,
        parked: &ItemKey,
        effect: &Effect,
    ) -> Result<Committed, StoreError> {
        self.before_commit()?;
        self.after_commit(self.inner().commit_parked(parked, effect).await)
    }

    async fn repark(&self, parked: &ItemKey, reason: &str) -> Result<(), StoreError> {
        self.inner().repark(parked, reason).await
    }

    async fn commit_once(&self, once: CommitOnce<'_>) -> Result<Committed, StoreError> {
        self.before_commit()?;
        self.after_commit(self.inner().commit_once(once).await)
    }
}

/// A progress commit's answer (`commit`, or a `commit_leaving` that went), as the caller hears
/// it: [`Around::applied`] told first when it applied.
fn answered<A: Around>(
    around: &A,
    commit: Commit<'_>,
    result: Result<Committed, StoreError>,
) -> Result<Committed, StoreError> {
    if let Ok(Committed::Applied) = &result {
        around.applied(commit);
    }
    around.after_commit(result)
}
