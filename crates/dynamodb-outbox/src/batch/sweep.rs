//! The sweeper's redrive: events still pending after a grace period, read from the pending
//! index and applied through the same path as the stream, so a redrive keeps per-key order and
//! applies nothing twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use serde_dynamo::Item;
use time::OffsetDateTime;

use super::{BatchOutcome, Processor};
use crate::consumer::Consumer;
use crate::delivery::Header;
use crate::dynamodb::PendingEvents;
use crate::envelope::{now_rfc3339, Envelope, OCCURRED_AT};
use crate::schema;
use crate::store::{ConsumerStore, StoreError};

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// Applies outbox events still pending for this consumer `older_than` after they occurred:
    /// the ones the stream never delivered, or gave up on. Safe at any time, concurrently with
    /// the stream's invocations, any number of times.
    ///
    /// Reads up to `limit` events, spread over the pending index's shards so every shard makes
    /// progress on every run. For each ordering key it meets, the redrive starts at the key's
    /// lowest pending sequence, wherever the index put it (clocks disagree). What it cannot apply
    /// now (poison under [`crate::PoisonPolicy::Wait`], an event waiting for an earlier one, a
    /// transient failure) goes to the back of its shard until the grace period passes again, so
    /// stuck events, however many, never stop the keys behind them.
    pub async fn sweep(
        &self,
        pending: &PendingEvents,
        older_than: Duration,
        limit: usize,
    ) -> Result<BatchOutcome, StoreError> {
        let consumer = self.consumer.name();
        let found = self.read_pending(pending, older_than, limit).await?;
        let mut items: Vec<Item> = Vec::with_capacity(found.len());
        let mut seen: HashSet<(String, String)> = HashSet::new();
        // Each key's lowest event among what the index gave: (its sequence, its predecessor).
        let mut lowest: HashMap<String, (u64, u64)> = HashMap::new();
        for item in &found {
            let header = Header::peek(item);
            let after = header.after.get(consumer).copied();
            if let (Some(key), Some(sequence), Some(after)) =
                (header.ordering_key, header.sequence, after)
            {
                let at = lowest.entry(key).or_insert((sequence, after));
                if sequence < at.0 {
                    *at = (sequence, after);
                }
            }
        }
        let per_key = per_shard(limit);
        for (key, (_, after)) in lowest {
            if after == 0 {
                continue; // the key's first event for this consumer: nothing before it
            }
            for item in pending
                .earlier_pending(consumer, &key, after, per_key)
                .await?
            {
                let header = Header::peek(&item);
                if seen.insert((header.pk, header.sk)) {
                    items.push(item);
                }
            }
        }
        for item in found {
            let header = Header::peek(&item);
            if seen.insert((header.pk, header.sk)) {
                items.push(item);
            }
        }
        let outcome = self.process_items(items.clone()).await;
        self.requeue(pending, &items, &outcome).await;
        Ok(outcome)
    }

    /// [`Processor::sweep`] for an entity table's changes (the article's pattern 2): entity
    /// items still carrying their pending marker for this consumer `older_than` after they
    /// occurred, applied through [`Processor::process_entities`] with the same `adapter` as the
    /// stream. What cannot be applied now goes to the back of its shard, as for the outbox.
    pub async fn sweep_entities<F>(
        &self,
        pending: &PendingEvents,
        adapter: F,
        older_than: Duration,
        limit: usize,
    ) -> Result<BatchOutcome, StoreError>
    where
        F: Fn(&Item) -> Option<Result<Envelope<C::Payload>, String>>,
        C::Payload: Serialize,
    {
        let items = self.read_pending(pending, older_than, limit).await?;
        let outcome = self.process_entities(items.clone(), adapter).await;
        self.requeue(pending, &items, &outcome).await;
        Ok(outcome)
    }

    async fn read_pending(
        &self,
        pending: &PendingEvents,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        pending
            .waiting_for(self.consumer.name(), &before(older_than), per_shard(limit))
            .await
    }

    /// The items the run reported (not applied now) go to the back of their shard.
    async fn requeue(&self, pending: &PendingEvents, items: &[Item], outcome: &BatchOutcome) {
        if outcome.failures.is_empty() {
            return;
        }
        let failed: HashSet<&str> = outcome.failures.iter().map(String::as_str).collect();
        let stuck: Vec<&Item> = items
            .iter()
            .filter(|item| {
                let header = Header::peek(item);
                failed.contains(format!("{}/{}", header.pk, header.sk).as_str())
            })
            .collect();
        if let Err(err) = pending.requeue(&stuck, &now_rfc3339()).await {
            // They stay where they are: the next run reads them first again, no event is lost.
            tracing::warn!(
                consumer = self.consumer.name(), error = %crate::store::chain(&err),
                "events not applied by the sweep not moved to the back of their shard"
            );
        }
    }
}

/// Events read per shard for a run of `limit`: at least one.
fn per_shard(limit: usize) -> usize {
    limit.div_ceil(schema::PENDING_SHARDS as usize).max(1)
}

/// The index time `older_than` ago, in the format events carry (saturating at the epoch: a
/// grace longer than the clock has run only means nothing is old enough).
fn before(older_than: Duration) -> String {
    let now = OffsetDateTime::now_utc();
    let at = time::Duration::try_from(older_than)
        .ok()
        .and_then(|d| now.checked_sub(d))
        .filter(|at| at.unix_timestamp() >= 0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(OCCURRED_AT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_owned())
}
