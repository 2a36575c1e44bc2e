//! Commits: each key's events applied with the consumer's progress, in runs where they can be;
//! an outbox item that waits for this consumer alone left in the same transaction, the others
//! marked after all the commits.

use futures::stream::{self, StreamExt};
use time::OffsetDateTime;

use super::schedule::{KeyQueue, Next};
use super::{Arrived, Outcome, Processor, Work, DROPPED_LOG_MESSAGE};
use crate::consumer::{Consumer, Effect, HandlerError};
use crate::store::{
    chain, Commit, Committed, ConsumerStore, ItemKey, LastOut, Leaving, Step, StoreError,
};

/// An event whose progress is committed, and the outbox item to mark for it.
pub(super) type Mark = (usize, Step, ItemKey);

/// What one key's group came to: each record's outcome, and the marks it leaves to the batch.
#[derive(Default)]
pub(super) struct GroupOutcome {
    pub(super) outcomes: Vec<(usize, Outcome)>,
    pub(super) marks: Vec<Mark>,
}

/// The groups' outcomes by record position, and all their marks.
pub(super) fn gather(
    groups: Vec<GroupOutcome>,
    records: usize,
) -> (Vec<Option<Outcome>>, Vec<Mark>) {
    let mut by_position: Vec<Option<Outcome>> = (0..records).map(|_| None).collect();
    let mut marks = Vec::new();
    for group in groups {
        for (position, result) in group.outcomes {
            by_position[position] = Some(result);
        }
        marks.extend(group.marks);
    }
    (by_position, marks)
}

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// Applies the groups, `concurrency` keys at a time: each record's outcome by position, and
    /// the outbox items to mark.
    pub(super) async fn apply_groups(
        &self,
        groups: Vec<Vec<(usize, Work<'_, C::Payload>)>>,
        ids: &[String],
    ) -> (Vec<Option<Outcome>>, Vec<Mark>) {
        // The futures made before they are streamed: a closure over a borrowing `Work` kept in this
        // future's state trips the compiler's proof that the future is `Send`.
        let applying: Vec<_> = groups
            .into_iter()
            .map(|group| self.apply_group(group, ids))
            .collect();
        let applied: Vec<GroupOutcome> = stream::iter(applying)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        gather(applied, ids.len())
    }

    pub(super) async fn apply_group(
        &self,
        group: Vec<(usize, Work<'_, C::Payload>)>,
        ids: &[String],
    ) -> GroupOutcome {
        let mut results = Vec::with_capacity(group.len());
        let mut marks = Vec::new();
        let mut queue = KeyQueue::new(group, self.events_per_transaction);
        while let Some(next) = queue.next() {
            match next {
                Next::HeldBack(position, held) => results.push((position, held)),
                Next::Run(run) => {
                    let Some((outcomes, left)) = self.apply_run(&run, ids).await else {
                        queue.one_at_a_time(run);
                        continue;
                    };
                    for ((position, outcome), (_, work)) in outcomes.iter().zip(&run) {
                        queue.settle(outcome);
                        if let (true, false, Some((step, key))) =
                            (outcome.committed(), left, work.place())
                        {
                            marks.push((*position, step.clone(), key.clone()));
                        }
                    }
                    results.extend(outcomes);
                }
                Next::One(position, work) => {
                    let place = work.place().map(|(step, key)| (step.clone(), key.clone()));
                    let (result, left) = self.apply_one(position, work, ids).await;
                    queue.settle(&result);
                    if let (true, false, Some((step, key))) = (result.committed(), left, place) {
                        marks.push((position, step, key));
                    }
                    results.push((position, result));
                }
            }
        }
        GroupOutcome {
            outcomes: results,
            marks,
        }
    }

    /// Commits a run of one key's consecutive events in one transaction: their effects merged
    /// (several additions to one item become one addition of their sum, as DynamoDB allows one
    /// action per item), the progress moved from the first event's predecessor to the last
    /// event, and the outbox items left too when each waits for this consumer alone (the
    /// `bool`). `None` when the run must go one event at a time: an effect failed or does not
    /// combine, a condition refused, the database refused the transaction as a whole, or the
    /// consumer had applied part of the run already.
    async fn apply_run(
        &self,
        run: &[(usize, Work<'_, C::Payload>)],
        ids: &[String],
    ) -> Option<(Vec<(usize, Outcome)>, bool)> {
        let mut effects = Vec::with_capacity(run.len());
        let mut steps = Vec::with_capacity(run.len());
        let mut items = Vec::with_capacity(run.len());
        for (_, work) in run {
            let Work::Apply(arrived, step, key) = work else {
                return None;
            };
            effects.push(self.consumer.effect(arrived).await.ok()?);
            steps.push(step);
            if arrived.alone {
                items.push(key.clone());
            }
        }
        if items.len() < run.len() {
            items.clear();
        }
        let merged = Effect::merge(&effects)?;
        let (first, last) = (steps[0], steps[steps.len() - 1]);
        let span = Step {
            ordering_key: first.ordering_key.clone(),
            sequence: last.sequence,
            after: first.after,
        };
        let consumer = self.consumer.name();
        let all = |outcome: fn() -> Outcome| run.iter().map(|(p, _)| (*p, outcome())).collect();
        let (committed, left) = self.commit_leaving(&span, &merged, &items).await;
        let outcomes = match committed {
            Ok(Committed::Applied) => all(|| Outcome::Applied),
            Ok(Committed::Duplicate) => all(|| Outcome::Duplicate),
            Ok(Committed::Waiting { applied }) if applied < first.after => {
                tracing::warn!(
                    consumer, ordering_key = %span.ordering_key, from = first.sequence,
                    to = last.sequence, applied, "events wait for an earlier event of their key"
                );
                all(|| Outcome::Waiting)
            }
            Ok(_) => return None,
            // Refused whole (larger than DynamoDB's 4 MB, say): one event at a time, each says
            // for itself whether it is the cause.
            Err(StoreError::Failed(_) | StoreError::Invalid(_)) => return None,
            Err(err) => {
                self.store_failure(&ids[run[0].0], &span, &err);
                all(|| Outcome::Failed)
            }
        };
        Some((outcomes, left))
    }

    /// Commits `effect` at `step`, leaving `items` in the same transaction when the store can
    /// (each waits for this consumer alone): the store's answer, and whether they were left.
    async fn commit_leaving(
        &self,
        step: &Step,
        effect: &Effect,
        items: &[ItemKey],
    ) -> (Result<Committed, StoreError>, bool) {
        let commit = Commit {
            consumer: self.consumer.name(),
            step,
            effect,
        };
        if !items.is_empty() {
            let leaving = Leaving {
                items,
                last: self.last_out(),
            };
            match self.store.commit_leaving(commit, leaving).await {
                Ok(Some(committed)) => {
                    let left = committed == Committed::Applied;
                    return (Ok(committed), left);
                }
                Ok(None) => {}
                Err(err) => return (Err(err), false),
            }
        }
        (self.store.commit(commit).await, false)
    }

    /// What the last consumer out does to an outbox event: it expires after the retention.
    fn last_out(&self) -> LastOut {
        LastOut::Expire {
            at: OffsetDateTime::now_utc()
                .unix_timestamp()
                .saturating_add(self.retention_seconds),
        }
    }

    /// One record's outcome, and whether its outbox item was left with its commit.
    async fn apply_one(
        &self,
        position: usize,
        work: Work<'_, C::Payload>,
        ids: &[String],
    ) -> (Outcome, bool) {
        let id = &ids[position];
        let outcome = match work {
            Work::Apply(arrived, step, key) => {
                return self.apply_arrived(id, *arrived, step, key).await;
            }
            Work::Ignore => Outcome::Ignored,
            Work::Once(arrived, once) => self.apply_once(id, *arrived, once).await,
            Work::Unreadable(once, reason, event) => {
                self.poison_once(id, reason, &once, event).await
            }
            Work::Skipped(what, entity) => self.skip_once(id, &what, entity).await,
            Work::Drop(reason) => {
                tracing::error!(
                    consumer = self.consumer.name(), record = %id, %reason,
                    "{DROPPED_LOG_MESSAGE}"
                );
                Outcome::Dropped
            }
            Work::Poison { reason, at, event } => self.poison(id, reason, at, event).await,
            Work::Skip(step, _, what) => {
                tracing::info!(
                    consumer = self.consumer.name(), record = %id, sequence = step.sequence,
                    event = %what, "event skipped: not taken by this consumer"
                );
                match self.commit(id, &step, &Effect::new()).await {
                    Outcome::Applied | Outcome::Duplicate => Outcome::Skipped,
                    Outcome::Refused(_) => Outcome::Poison,
                    other => other,
                }
            }
        };
        (outcome, false)
    }

    async fn apply_arrived(
        &self,
        id: &str,
        arrived: Arrived<'_, C::Payload>,
        step: Step,
        key: ItemKey,
    ) -> (Outcome, bool) {
        let Arrived {
            envelope,
            item,
            alone,
        } = arrived;
        match self.consumer.effect(&envelope).await {
            Ok(effect) => {
                let items = if alone { vec![key.clone()] } else { Vec::new() };
                match self.commit_with(id, &step, &effect, &items).await {
                    (Outcome::Refused(reason), _) => (
                        self.poison(id, reason, Some((step, key)), item).await,
                        false,
                    ),
                    other => other,
                }
            }
            Err(error @ HandlerError::Poison(_)) => (
                self.poison(id, error.reason(), Some((step, key)), item)
                    .await,
                false,
            ),
            Err(error @ HandlerError::Transient(_)) => {
                tracing::warn!(
                    consumer = self.consumer.name(), event_id = %envelope.event_id,
                    sequence = step.sequence, error = %error.reason(),
                    "event not applied: reported for retry"
                );
                (Outcome::Failed, false)
            }
        }
    }

    /// Commits an effect with the progress (the batch marks the outbox item afterwards).
    pub(super) async fn commit(&self, id: &str, step: &Step, effect: &Effect) -> Outcome {
        self.commit_with(id, step, effect, &[]).await.0
    }

    /// Commits an effect with the progress, leaving `items` in the same transaction when it
    /// can: the outcome, and whether they were left.
    async fn commit_with(
        &self,
        id: &str,
        step: &Step,
        effect: &Effect,
        items: &[ItemKey],
    ) -> (Outcome, bool) {
        let consumer = self.consumer.name();
        let (committed, left) = self.commit_leaving(step, effect, items).await;
        let outcome = match committed {
            Ok(Committed::Applied) => Outcome::Applied,
            Ok(Committed::Duplicate) => Outcome::Duplicate,
            Ok(Committed::Waiting { applied }) => {
                tracing::warn!(
                    consumer, record = %id, ordering_key = %step.ordering_key,
                    sequence = step.sequence, after = step.after, applied,
                    "event waits for an earlier event of its key: reported for retry"
                );
                Outcome::Waiting
            }
            Ok(Committed::Refused(reason)) => Outcome::Refused(reason),
            Err(StoreError::Invalid(why)) => Outcome::Refused(chain(why.as_ref())),
            Err(err) => self.store_failure(id, step, &err),
        };
        (outcome, left)
    }

    pub(super) fn store_failure(&self, id: &str, step: &Step, err: &StoreError) -> Outcome {
        tracing::warn!(
            consumer = self.consumer.name(), record = %id, ordering_key = %step.ordering_key,
            sequence = step.sequence, error = %chain(err), "event not applied: reported for retry"
        );
        Outcome::Failed
    }

    /// Marks the batch's outbox items (see [`Processor::mark`]): by position, whether a record's
    /// mark failed, each failure logged.
    pub(super) async fn mark_all(&self, marks: Vec<Mark>, ids: &[String]) -> Vec<bool> {
        let mut unmarked = vec![false; ids.len()];
        for (position, step, err) in self.mark(marks).await {
            tracing::warn!(
                consumer = self.consumer.name(), record = %ids[position],
                ordering_key = %step.ordering_key, sequence = step.sequence, error = %chain(&err),
                "event applied but its outbox item not marked: reported for retry, which marks it"
            );
            unmarked[position] = true;
        }
        unmarked
    }

    /// Marks the outbox items whose events the batch committed (or found committed before), all
    /// after the commits, `concurrency` at a time: a mark is on no key's chain, so a key's next
    /// run never waits for the one before it to be marked. A crash or a failure between a commit
    /// and its mark leaves the item waiting for this consumer; its redelivery (the record is
    /// reported, or the sweeper finds it pending) is a duplicate and marks it then. Returns the
    /// marks that failed.
    async fn mark(&self, marks: Vec<Mark>) -> Vec<(usize, Step, StoreError)> {
        let consumer = self.consumer.name();
        let last = self.last_out();
        stream::iter(marks)
            .map(|(position, step, key)| async move {
                let marked = self.store.leave(consumer, &key, last).await;
                marked.err().map(|err| (position, step, err))
            })
            .buffer_unordered(self.concurrency)
            .filter_map(|failed| async move { failed })
            .collect()
            .await
    }
}
