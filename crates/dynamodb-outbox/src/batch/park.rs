//! Parking and redrive: a poison event set aside so its key goes on, and applied again later.

use std::borrow::Cow;

use serde_dynamo::Item;

use super::{BatchOutcome, Outcome, Processor, PARKED_LOG_MESSAGE};
use crate::consumer::{Consumer, Effect, HandlerError, PoisonPolicy, Takes};
use crate::delivery::Header;
use crate::envelope::now_rfc3339;
use crate::item::ParkedEvent;
use crate::schema;
use crate::store::{Committed, ConsumerStore, ItemKey, Parked, Step};
use crate::upcast::{self, taken};

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// A poison event: reported (the key waits), or parked (the key goes on), by policy.
    pub(super) async fn poison(
        &self,
        id: &str,
        reason: String,
        at: Option<(Step, ItemKey)>,
        event: Option<Cow<'_, Item>>,
    ) -> Outcome {
        let consumer = self.consumer.name();
        let parkable = self.consumer.on_poison() == PoisonPolicy::Park;
        let (Some((step, key)), Some(event)) = (at.filter(|_| parkable), event) else {
            tracing::error!(consumer, record = %id, %reason, "poison event: reported as a batch item failure");
            return Outcome::Poison;
        };
        let parked_at = now_rfc3339();
        let event_id = Header::peek(&event).name();
        let record = ParkedEvent {
            consumer,
            ordering_key: Some(&step.ordering_key),
            event_id: &event_id,
            reason: &reason,
            parked_at: &parked_at,
            source: Some(&key),
            event: event.into_owned(),
        }
        .record();
        let effect = Effect::new().put(self.store.table(), record);
        match self.commit(id, &step, &effect).await {
            Outcome::Applied => {
                tracing::error!(consumer, record = %id, %event_id, sequence = step.sequence, %reason, "{PARKED_LOG_MESSAGE}");
                Outcome::Parked
            }
            Outcome::Refused(_) => Outcome::Poison,
            other => other,
        }
    }

    /// Applies this consumer's parked events again, up to `limit` of them, oldest first: for
    /// each, the effect is computed anew and committed in one transaction with the deletion of
    /// the parked record, on the condition that the record still exists. So a fixed event is
    /// applied exactly once, even when two redrives race (the loser finds it a duplicate).
    ///
    /// **Out of key order, by design**: parking let the key's later events go on, so a redriven
    /// event lands after them. Only park events whose effect does not depend on that order.
    ///
    /// An event still poison stays parked with its new reason and one more attempt (counted in
    /// `parked`, named in `failures` by its record's sort key); a transient failure leaves it as
    /// it is (`failed`); an event this consumer no longer takes is dropped with no effect
    /// (`skipped`). Effects outside DynamoDB run again on every attempt: at least once.
    pub async fn redrive_parked(&self, limit: usize) -> BatchOutcome {
        let consumer = self.consumer.name();
        let mut outcome = BatchOutcome::default();
        let parked = match self.store.parked(consumer, limit).await {
            Ok(parked) => parked,
            Err(err) => {
                tracing::warn!(consumer, error = %crate::store::chain(&err), "parked events not read: nothing redriven");
                outcome.failed = 1;
                outcome.failures.push(schema::parked_pk(consumer));
                return outcome;
            }
        };
        let takes = self.consumer.takes();
        for parked in parked {
            match self.redrive(&parked, &takes).await {
                Outcome::Applied => outcome.applied += 1,
                Outcome::Duplicate => outcome.duplicates += 1,
                Outcome::Skipped => outcome.skipped += 1,
                Outcome::Parked => {
                    outcome.parked += 1;
                    outcome.failures.push(parked.record.sk.clone());
                }
                _ => {
                    outcome.failed += 1;
                    outcome.failures.push(parked.record.sk.clone());
                }
            }
        }
        outcome
    }

    async fn redrive(&self, parked: &Parked, takes: &[Takes]) -> Outcome {
        let consumer = self.consumer.name();
        let header = Header::peek(&parked.event);
        let (effect, done) = if taken(takes, &header) {
            let effect = match upcast::decode::<C::Payload>(parked.event.clone(), &header, takes) {
                Ok(envelope) => self.consumer.effect(&envelope).await,
                Err(reason) => Err(HandlerError::poison(reason)),
            };
            match effect {
                Ok(effect) => (effect, Outcome::Applied),
                Err(error @ HandlerError::Poison(_)) => {
                    return self.repark(parked, &error.reason()).await
                }
                Err(error @ HandlerError::Transient(_)) => {
                    tracing::warn!(consumer, parked = %parked.record.sk, error = %error.reason(), "parked event not redriven: left parked");
                    return Outcome::Failed;
                }
            }
        } else {
            (Effect::new(), Outcome::Skipped)
        };
        match self.store.commit_parked(&parked.record, &effect).await {
            Ok(Committed::Applied) => {
                tracing::info!(consumer, parked = %parked.record.sk, event_id = %header.name(), "parked event redriven");
                done
            }
            Ok(Committed::Duplicate) => Outcome::Duplicate,
            Ok(Committed::Refused(reason)) => self.repark(parked, &reason).await,
            Ok(Committed::Waiting { .. }) => Outcome::Failed,
            Err(err) => {
                tracing::warn!(consumer, parked = %parked.record.sk, error = %crate::store::chain(&err), "parked event not redriven: left parked");
                Outcome::Failed
            }
        }
    }

    async fn repark(&self, parked: &Parked, reason: &str) -> Outcome {
        let consumer = self.consumer.name();
        match self.store.repark(&parked.record, reason).await {
            Ok(()) => {
                tracing::error!(consumer, parked = %parked.record.sk, %reason, attempts = parked.attempts + 1, "parked event still poison: left parked");
                Outcome::Parked
            }
            Err(err) => {
                tracing::warn!(consumer, parked = %parked.record.sk, error = %crate::store::chain(&err), "parked event's new reason not recorded");
                Outcome::Failed
            }
        }
    }
}
