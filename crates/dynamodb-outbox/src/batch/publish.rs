//! A relay's batch: each key's events published in sequence order from the relay's progress,
//! one event per key per broker call and several keys per call; then each key's progress
//! committed once for what the broker accepted, and its outbox items marked with the batch's.
//!
//! Three phases, so that calls gather many keys: every key reads its progress and plans its
//! events (`plan_key`); waves of calls publish each key's next event (`send_waves`); every key
//! commits what was published and parks what cannot be (`settle_key`).

use std::borrow::Cow;

use aws_smithy_async::rt::sleep::AsyncSleep as _;
use futures::stream::{self, StreamExt};
use serde_dynamo::Item;

use super::commit::{gather, GroupOutcome, Mark};
use super::{Outcome, Processor, Work};
use crate::consumer::{Consumer, Effect};
use crate::relay::hook::Publish;
use crate::relay::{Message, Sent};
use crate::store::{chain, Commit, Committed, ConsumerStore, ItemKey, Step};

/// What becomes of one of a key's events, in the key's order.
enum Link {
    /// To publish; `sent` says what the broker did with it (`None`: not sent, as an earlier
    /// event of the key failed).
    Send {
        at: Place,
        message: Message,
        size: usize,
        event: Option<Item>,
        sent: Option<Sent>,
        /// Calls that carried it so far.
        attempts: u32,
    },
    /// Routed to the relay in a type or version it does not take: nothing to publish.
    Skip { at: Place },
    /// Poison (too large, not encodable): parked with its reason.
    Park {
        at: Place,
        reason: String,
        event: Option<Item>,
    },
}

/// Calls that may carry one event in an invocation. A broker answers a throttled or failed
/// entry alone (EventBridge's `FailedEntryCount`, SQS's and SNS's `Failed`) and its SDK does not
/// retry it; sent again in a later wave, after a short pause, it rarely fails the batch.
const SEND_ATTEMPTS: u32 = 3;

/// The pause before a wave that sends failed entries again, times the attempt.
const RESEND_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// One broker call: each message with its key's plan and its link there.
type Call = Vec<(usize, usize, Message)>;

/// A record's position in the batch and its event's place in its key's order.
struct Place {
    position: usize,
    step: Step,
    key: ItemKey,
}

impl Link {
    fn place(&self) -> &Place {
        match self {
            Link::Send { at, .. } | Link::Skip { at } | Link::Park { at, .. } => at,
        }
    }
}

/// One key's events as planned: where its progress was, what to do with each event that follows
/// it, and the outcomes known before publishing (duplicates, an event that waits, the rest).
struct KeyPlan {
    applied: u64,
    links: Vec<Link>,
    known: GroupOutcome,
}

impl KeyPlan {
    /// The key's next event to publish, if the key has not stopped: its link's index.
    fn next_send(&self) -> Option<usize> {
        for (index, link) in self.links.iter().enumerate() {
            match link {
                Link::Send { sent: None, .. } => return Some(index),
                Link::Send {
                    sent: Some(Sent::Failed(_)),
                    attempts,
                    ..
                } => return (*attempts < SEND_ATTEMPTS).then_some(index),
                _ => {}
            }
        }
        None
    }
}

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// A relay's groups: those of outbox events through the three phases; any other (records
    /// without an outbox sequence) through the consumer's own path, one publication per event.
    pub(super) async fn publish_groups(
        &self,
        publisher: &dyn Publish<C::Payload>,
        groups: Vec<Vec<(usize, Work<'_, C::Payload>)>>,
        ids: &[String],
    ) -> (Vec<Option<Outcome>>, Vec<Mark>) {
        let (keyed, others): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .partition(|group| group.iter().all(|(_, work)| work.place().is_some()));
        // The futures made before they are streamed, as in `apply_groups`.
        let applying: Vec<_> = others
            .into_iter()
            .map(|group| self.apply_group(group, ids))
            .collect();
        let mut done: Vec<GroupOutcome> = stream::iter(applying)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let planning: Vec<_> = keyed
            .into_iter()
            .map(|group| self.plan_key(publisher, group, ids))
            .collect();
        let mut plans: Vec<KeyPlan> = stream::iter(planning)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        self.send_waves(publisher, &mut plans).await;
        let settled: Vec<GroupOutcome> = stream::iter(plans)
            .map(|plan| self.settle_key(plan, ids))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        done.extend(settled);
        gather(done, ids.len())
    }

    /// Reads the relay's progress on the group's key and plans its events from there: those
    /// already published are duplicates, the chain that follows the progress is to publish (or
    /// skip, or park), and the first event after a gap waits, with the rest held back.
    async fn plan_key(
        &self,
        publisher: &dyn Publish<C::Payload>,
        group: Vec<(usize, Work<'_, C::Payload>)>,
        ids: &[String],
    ) -> KeyPlan {
        let consumer = self.consumer.name();
        let mut plan = KeyPlan {
            applied: 0,
            links: Vec::new(),
            known: GroupOutcome::default(),
        };
        let Some((first, step)) = group.first().and_then(|(p, w)| Some((*p, w.place()?.0))) else {
            return plan;
        };
        match self.store.progress_on(consumer, &step.ordering_key).await {
            Ok(applied) => plan.applied = applied,
            Err(err) => {
                let failed = self.store_failure(&ids[first], step, &err);
                plan.known.outcomes = group.iter().map(|(p, _)| (*p, Outcome::HeldBack)).collect();
                plan.known.outcomes[0].1 = failed;
                return plan;
            }
        }
        let mut cursor = plan.applied;
        let mut blocked = false;
        for (position, work) in group {
            let Some((step, key)) = work.place().map(|(s, k)| (s.clone(), k.clone())) else {
                continue;
            };
            if blocked {
                plan.known.outcomes.push((position, Outcome::HeldBack));
            } else if step.sequence <= plan.applied {
                plan.known.outcomes.push((position, Outcome::Duplicate));
                plan.known.marks.push((position, step, key));
            } else if step.after != cursor {
                tracing::warn!(
                    consumer, record = %ids[position], ordering_key = %step.ordering_key,
                    sequence = step.sequence, after = step.after, applied = cursor,
                    "event waits for an earlier event of its key: reported for retry"
                );
                plan.known.outcomes.push((position, Outcome::Waiting));
                blocked = true;
            } else {
                cursor = step.sequence;
                let at = Place {
                    position,
                    step,
                    key,
                };
                plan.links.push(link(publisher, at, work));
            }
        }
        plan
    }

    /// Publishes the planned events in waves: each wave takes the next event of every key that
    /// has one (none of a key after its failed event), in calls within the target's limits,
    /// `concurrency` calls at a time; a key's next event goes in the next wave, once the broker
    /// accepted this one.
    async fn send_waves(&self, publisher: &dyn Publish<C::Payload>, plans: &mut [KeyPlan]) {
        let limits = publisher.limits();
        loop {
            let wave: Vec<(usize, usize)> = plans
                .iter()
                .enumerate()
                .filter_map(|(plan, p)| Some((plan, p.next_send()?)))
                .collect();
            if wave.is_empty() {
                return;
            }
            let resent = wave
                .iter()
                .filter_map(|(plan, index)| match &plans[*plan].links[*index] {
                    Link::Send { attempts, .. } => Some(*attempts),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            // The SDK's timer, so the engine sleeps on whatever runtime the clients run on.
            let sleep = aws_smithy_async::rt::sleep::default_async_sleep();
            if let Some(sleep) = sleep.filter(|_| resent > 0) {
                sleep.sleep(RESEND_PAUSE * resent).await;
            }
            let mut calls: Vec<Call> = Vec::new();
            let mut bytes = 0;
            for (plan, index) in wave {
                let Link::Send { message, size, .. } = &plans[plan].links[index] else {
                    continue;
                };
                let full = calls.last().is_none_or(|call| {
                    call.len() >= limits.entries_per_call || bytes + size > limits.bytes_per_call
                });
                if full {
                    calls.push(Vec::new());
                    bytes = 0;
                }
                bytes += size;
                calls
                    .last_mut()
                    .into_iter()
                    .for_each(|call| call.push((plan, index, message.clone())));
            }
            let answers: Vec<(Call, Vec<Sent>)> = stream::iter(calls)
                .map(|call| async move {
                    let messages: Vec<Message> = call.iter().map(|(_, _, m)| m.clone()).collect();
                    let sent = answered(call.len(), publisher.send(&messages).await);
                    (call, sent)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            for (call, sent) in answers {
                for ((plan, index, _), result) in call.into_iter().zip(sent) {
                    if let Link::Send { sent, attempts, .. } = &mut plans[plan].links[index] {
                        *sent = Some(result);
                        *attempts += 1;
                    }
                }
            }
        }
    }

    /// Commits what a key published (one progress update for its run of published and skipped
    /// events), parks what cannot be published, and reports the failed event with the rest of
    /// the key held back.
    async fn settle_key(&self, plan: KeyPlan, ids: &[String]) -> GroupOutcome {
        let consumer = self.consumer.name();
        let KeyPlan {
            mut applied,
            links,
            known: mut out,
        } = plan;
        let mut run: Vec<(Place, Outcome)> = Vec::new();
        let mut stopped = false;
        for link in links {
            if stopped {
                out.outcomes
                    .push((link.place().position, Outcome::HeldBack));
                continue;
            }
            let (at, parked) = match link {
                Link::Skip { at } => {
                    run.push((at, Outcome::Skipped));
                    continue;
                }
                Link::Send {
                    at,
                    sent: Some(Sent::Published),
                    ..
                } => {
                    run.push((at, Outcome::Applied));
                    continue;
                }
                Link::Send {
                    at,
                    sent: Some(Sent::Refused(reason)),
                    event,
                    ..
                }
                | Link::Park { at, reason, event } => (at, Some((reason, event))),
                Link::Send { at, sent, .. } => {
                    let reason = match sent {
                        Some(Sent::Failed(reason)) => reason,
                        _ => "not sent: an earlier event of its key failed".to_owned(),
                    };
                    tracing::warn!(
                        consumer, record = %ids[at.position], ordering_key = %at.step.ordering_key,
                        sequence = at.step.sequence, error = %reason,
                        "event not published: reported for retry"
                    );
                    (at, None)
                }
            };
            stopped = !self.commit_run(&mut run, &mut applied, &mut out, ids).await;
            let outcome = match parked {
                _ if stopped => Outcome::HeldBack,
                Some((reason, event)) => {
                    let place = Some((at.step.clone(), at.key.clone()));
                    self.poison(&ids[at.position], reason, place, event.map(Cow::Owned))
                        .await
                }
                None => Outcome::Failed,
            };
            if outcome.committed() {
                applied = at.step.sequence;
                out.marks.push((at.position, at.step, at.key));
            } else {
                stopped = true;
            }
            out.outcomes.push((at.position, outcome));
        }
        self.commit_run(&mut run, &mut applied, &mut out, ids).await;
        out
    }

    /// Commits the relay's progress over `run` (events published or skipped, consecutive from
    /// `applied`) in one update, empties it into `out` with their marks, and says whether the
    /// key may go on. When the commit fails, the run's events are reported for retry: published
    /// already, they will be published again (at least once).
    async fn commit_run(
        &self,
        run: &mut Vec<(Place, Outcome)>,
        applied: &mut u64,
        out: &mut GroupOutcome,
        ids: &[String],
    ) -> bool {
        let Some((last, _)) = run.last() else {
            return true;
        };
        let span = Step {
            ordering_key: last.step.ordering_key.clone(),
            sequence: last.step.sequence,
            after: *applied,
        };
        let consumer = self.consumer.name();
        let commit = Commit {
            consumer,
            step: &span,
            effect: &Effect::new(),
        };
        let committed = match self.store.commit(commit).await {
            Ok(Committed::Applied) => Some(None),
            Ok(Committed::Duplicate) => Some(Some(Outcome::Duplicate)),
            Ok(other) => {
                tracing::warn!(consumer, ordering_key = %span.ordering_key, from = span.after, to = span.sequence, found = ?other, "relay progress not committed: its events are reported for retry");
                None
            }
            Err(err) => {
                let first = run.first().map_or(0, |(at, _)| at.position);
                tracing::warn!(consumer, record = %ids[first], error = %chain(&err), "relay progress not committed: its events are reported for retry");
                None
            }
        };
        for (at, outcome) in run.drain(..) {
            match &committed {
                Some(instead) => {
                    let outcome = instead.as_ref().map_or(outcome, |_| Outcome::Duplicate);
                    out.marks.push((at.position, at.step, at.key));
                    out.outcomes.push((at.position, outcome));
                }
                None => out.outcomes.push((at.position, Outcome::Failed)),
            }
        }
        if committed.is_some() {
            *applied = span.sequence;
        }
        committed.is_some()
    }
}

/// What to do with one event that follows the key's progress.
fn link<P>(publisher: &dyn Publish<P>, at: Place, work: Work<P>) -> Link {
    match work {
        Work::Apply(arrived, ..) => {
            let event = arrived.item.map(Cow::into_owned);
            match publisher.message(&arrived.envelope) {
                Ok((message, size)) => Link::Send {
                    at,
                    message,
                    size,
                    event,
                    sent: None,
                    attempts: 0,
                },
                Err(reason) => Link::Park { at, reason, event },
            }
        }
        Work::Poison { reason, event, .. } => Link::Park {
            at,
            reason,
            event: event.map(Cow::into_owned),
        },
        _ => Link::Skip { at },
    }
}

/// A call's answer, one per message: a whole call that failed fails each of its messages, and a
/// message the broker answered nothing for is not known to be published.
fn answered(messages: usize, answer: Result<Vec<Sent>, crate::BoxError>) -> Vec<Sent> {
    match answer {
        Ok(mut sent) => {
            sent.resize(
                messages,
                Sent::Failed("the broker answered nothing for it".to_owned()),
            );
            sent
        }
        Err(err) => {
            let reason = format!("the call failed: {}", chain(err.as_ref()));
            vec![Sent::Failed(reason); messages]
        }
    }
}
