use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use crate::domain::event::EnvelopeHeader;
use crate::domain::order::validate_id;
use crate::domain::{
    Applied, EventEnvelope, LedgerPage, Reward, RewardError, StoreError, Timestamp, ValidationError,
};
use crate::schema::rewards::LEDGER_SK_PREFIX;
use crate::store::{OutboxStore, RewardsStore};

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

/// What one run of the sweeper found and did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub found: usize,
    pub applied: usize,
    pub already_applied: usize,
    pub failed: usize,
    pub failed_event_ids: Vec<String>,
}

/// Decodes an outbox item (a stream image or a stored item) into the envelope the writer wrote.
/// An item that cannot be decoded, or that this code does not understand, is poison.
pub fn decode_envelope<T>(item: T) -> Result<EventEnvelope, RewardError>
where
    T: Into<serde_dynamo::Item>,
{
    let item: serde_dynamo::Item = item.into();
    // The header is read in place, so a newer schema or another event type is named in the
    // error, and the item is decoded once, without a copy.
    let header = EnvelopeHeader::peek(&item);
    header.check()?;
    serde_dynamo::from_item(item).map_err(|e| {
        RewardError::Poison(format!(
            "undecodable envelope {}: {e}",
            header.event_id.as_deref().unwrap_or("without event_id")
        ))
    })
}

impl<R: RewardsStore, O: OutboxStore> RewardsService<R, O> {
    /// Applies one event at most once, then marks it processed. Each step is idempotent, so a
    /// crash between them is repaired by the next delivery: it finds the ledger entry and only
    /// completes the mark.
    pub async fn apply_event(&self, event: &EventEnvelope) -> Result<Applied, RewardError> {
        let reward = Reward::try_from(event)?;
        let now = Timestamp::now();
        let applied = self.rewards.apply_reward(&reward, now).await?;
        let expires_at = now.plus_seconds(self.retention_seconds);
        self.outbox.mark_processed(event, now, expires_at).await?;
        Ok(applied)
    }

    /// Applies every event still pending after `grace_seconds`: the ones the stream never
    /// delivered, or dropped after its retries. Safe to run at any time, concurrently with the
    /// consumer, any number of times: it goes through the same idempotent path.
    pub async fn sweep(&self, grace_seconds: i64, limit: usize) -> Result<SweepReport, StoreError> {
        let before = Timestamp::now().plus_seconds(-grace_seconds);
        let pending = self.outbox.pending_events(before, limit).await?;
        let mut report = SweepReport {
            found: pending.len(),
            ..SweepReport::default()
        };
        for event in pending {
            let outcome = match &event {
                Ok(event) => self.apply_event(event).await,
                Err(e) => Err(RewardError::Poison(e.to_string())),
            };
            match outcome {
                Ok(Applied::Now) => report.applied += 1,
                Ok(Applied::AlreadyApplied) => report.already_applied += 1,
                Err(err) => {
                    report.failed += 1;
                    let id = event
                        .as_ref()
                        .map(|e| e.event_id.clone())
                        .unwrap_or_default();
                    tracing::error!(event_id = %id, error = %err, "sweeper could not apply event");
                    report.failed_event_ids.push(id);
                }
            }
        }
        Ok(report)
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
