use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use crate::domain::order::validate_id;
use crate::domain::{
    Applied, EventEnvelope, LedgerPage, Reward, RewardError, RewardWrite, StoreError, Timestamp,
    ValidationError, MAX_BALANCE,
};
use crate::schema::rewards::LEDGER_SK_PREFIX;
use crate::schema::PENDING_SHARDS;
use crate::store::{OutboxItem, OutboxStore, RewardsStore};

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

/// Applies outbox events to the rewards ledger, and marks them processed in the outbox.
#[derive(Clone, Debug)]
pub struct RewardsService<R, O> {
    pub rewards: R,
    pub outbox: O,
    /// How long a processed outbox event is kept before DynamoDB's TTL may delete it.
    pub retention_seconds: i64,
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    pub applied: Applied,
    /// The event's outbox lag: from its `occurred_at` to the commit of its reward, in
    /// milliseconds. `None` for a duplicate (its reward committed before) or an `occurred_at`
    /// that is not a timestamp this code writes.
    pub lag_millis: Option<f64>,
}

/// What one run of the sweeper found and did.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct SweepReport {
    pub found: usize,
    pub applied: usize,
    pub already_applied: usize,
    /// Events that can never be applied as they are: taken out of the pending shards into the
    /// parked state, so they cannot starve the events behind them.
    pub parked: usize,
    /// Events that failed for a transient reason: still pending, retried by the next run.
    pub failed: usize,
    /// Every parked or failed event, by id (or item key), with the reason.
    pub problems: Vec<SweepProblem>,
    /// The outbox lag of every event applied now, for the metrics (not part of the result).
    #[serde(skip)]
    pub lag_millis: Vec<f64>,
}

/// The log message of every parked event: what the runbook's log query for parked events filters on
/// (docs/operations.md); the alarm watches the sweeper's `Parked` metric.
pub const PARKED_LOG_MESSAGE: &str = "outbox event parked: it cannot be applied as it is";

/// One event a sweeper run could not apply.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepProblem {
    /// The event id, or the item key when the item has none.
    pub event: String,
    pub reason: String,
    pub parked: bool,
}

impl<R: RewardsStore, O: OutboxStore> RewardsService<R, O> {
    /// Applies one event at most once, then marks it processed. Each step is idempotent, so a
    /// crash between them is repaired by the next delivery: it finds the ledger entry and only
    /// completes the mark.
    pub async fn apply_event(&self, event: &EventEnvelope) -> Result<Effect, RewardError> {
        let reward = Reward::try_from(event)?;
        let now = Timestamp::now();
        let effect = match self.rewards.apply_reward(&reward, now).await? {
            RewardWrite::Recorded => Effect {
                applied: Applied::Now,
                // Read when the transaction has returned: the reward is committed by then.
                lag_millis: Timestamp::parse(&event.occurred_at)
                    .map(|occurred| Timestamp::now().millis_since(occurred)),
            },
            RewardWrite::AlreadyRecorded => Effect {
                applied: Applied::AlreadyApplied,
                lag_millis: None,
            },
            RewardWrite::OrderRewardedToAnotherCustomer(other) => {
                return Err(RewardError::Poison(format!(
                    "order {} was already rewarded to customer {other}, not {}",
                    reward.order_id, reward.customer_id
                )))
            }
            RewardWrite::BalanceLimitReached => {
                return Err(RewardError::Poison(format!(
                    "{} points would take the balance of customer {} past {MAX_BALANCE}",
                    reward.points, reward.customer_id
                )))
            }
        };
        let expires_at = now.plus_seconds(self.retention_seconds);
        self.outbox.mark_processed(event, now, expires_at).await?;
        Ok(effect)
    }

    /// Applies events still pending after `grace_seconds`: the ones the stream never delivered,
    /// or dropped after its retries. Safe at any time, concurrently with the consumer, any number
    /// of times: it goes through the same idempotent path. Reads up to `limit` events, spread
    /// evenly over the pending shards; an event that can never be applied is parked, so however
    /// many there are, the next run reaches the events behind them.
    pub async fn sweep(&self, grace_seconds: i64, limit: usize) -> Result<SweepReport, StoreError> {
        let before = Timestamp::now().plus_seconds(-grace_seconds);
        let per_shard = limit.div_ceil(PENDING_SHARDS as usize).max(1);
        let pending = self.outbox.pending_events(before, per_shard).await?;
        let mut report = SweepReport::default();
        for item in pending {
            self.redrive(item, &mut report).await?;
        }
        Ok(report)
    }

    /// The operator's redrive after a fix: every parked event (up to `limit`) goes back to
    /// pending and through the consumer's idempotent path at once; one that still cannot be
    /// applied is parked again with its new reason.
    pub async fn redrive_parked(&self, limit: usize) -> Result<SweepReport, StoreError> {
        let parked = self.outbox.parked_events(limit).await?;
        let mut report = SweepReport::default();
        for item in parked {
            self.outbox.unpark(&item).await?;
            let fresh = OutboxItem {
                parked_reason: None,
                ..item
            };
            self.redrive(fresh, &mut report).await?;
        }
        Ok(report)
    }

    async fn redrive(&self, item: OutboxItem, report: &mut SweepReport) -> Result<(), StoreError> {
        report.found += 1;
        let outcome = match &item.event {
            Ok(event) => self.apply_event(event).await,
            Err(RewardError::Poison(why)) => Err(RewardError::Poison(why.clone())),
            Err(RewardError::Store(err)) => Err(RewardError::Store(err.clone())),
        };
        let name = item.name();
        match outcome {
            Ok(Effect {
                applied: Applied::Now,
                lag_millis,
            }) => {
                report.applied += 1;
                report.lag_millis.extend(lag_millis);
            }
            Ok(Effect {
                applied: Applied::AlreadyApplied,
                ..
            }) => report.already_applied += 1,
            Err(RewardError::Poison(reason)) => {
                if let Err(err) = self.outbox.park(&item.key, &reason, Timestamp::now()).await {
                    tracing::warn!(event_id = %name, error = %err, "could not park event: still pending");
                    report.failed += 1;
                    report.problems.push(SweepProblem {
                        event: name,
                        reason: format!("{reason}; parking it failed: {err}"),
                        parked: false,
                    });
                    return Ok(());
                }
                tracing::error!(event_id = %name, reason = %reason, "{PARKED_LOG_MESSAGE}");
                report.parked += 1;
                report.problems.push(SweepProblem {
                    event: name,
                    reason,
                    parked: true,
                });
            }
            Err(RewardError::Store(err)) => {
                tracing::warn!(
                    event_id = %name, error = %err,
                    "sweeper could not apply event: still pending"
                );
                report.failed += 1;
                report.problems.push(SweepProblem {
                    event: name,
                    reason: err.to_string(),
                    parked: false,
                });
            }
        }
        Ok(())
    }
}

/// A page of a customer's ledger, newest first. `next` is the cursor a previous page returned.
pub async fn rewards_of<R: RewardsStore>(
    rewards: &R,
    customer_id: &str,
    limit: Option<usize>,
    next: Option<&str>,
) -> Result<LedgerPage, RewardsQueryError> {
    validate_id("customer_id", customer_id)?;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ValidationError::new(
            "invalid_limit",
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        )
        .into());
    }
    let start_after = next.map(decode_cursor).transpose()?;
    let mut page = rewards
        .ledger(customer_id, limit, start_after.as_deref())
        .await?;
    page.next = page.next.map(|sk| URL_SAFE_NO_PAD.encode(sk));
    Ok(page)
}

#[derive(Debug, thiserror::Error)]
pub enum RewardsQueryError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn decode_cursor(token: &str) -> Result<String, ValidationError> {
    let invalid =
        || ValidationError::new("invalid_cursor", "next", "is not a cursor this API issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let sk = String::from_utf8(bytes).map_err(|_| invalid())?;
    if sk.starts_with(LEDGER_SK_PREFIX) && sk.len() < 256 {
        Ok(sk)
    } else {
        Err(invalid())
    }
}
