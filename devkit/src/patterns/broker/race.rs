//! The broker deployment's chaos run. The relay is read by two racing stream mappings that
//! duplicate records and crash before marking an item done; it publishes through a fault proxy
//! in front of moto, which fails `PutEvents` calls (5xx, throttling), loses their answers after
//! the bus took the events, and fails single entries of a call. The rewards inbox is read by two
//! racing SQS mappings through the same proxy, so their receives and deletes fail or lose their
//! answers; the mappings duplicate messages, and the inbox crashes right after its commit. Then
//! the relay's sweeper publishes what the stream left pending, the dead-letter queue is moved
//! back to the inbox queue as the runbook does, and the queue is drained again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::QueueAttributeName;
use dynamodb_outbox::dynamodb::PendingEvents;
use dynamodb_outbox::testing::CrashPoint;
use order_service::domain::events::ORDER_RELAY;

use super::stack::{inbox_in_process, queue_depth, relay_in_process};
use super::{BrokerStack, Queue};
use crate::chaos::{drain_all, duplicating, ConsumerChaos, Faults};
use crate::invariants::{Invariant, Violation};
use crate::mapping::sqs::SqsMapping;
use crate::trigger::{Invoke, TriggerStats};

/// The inbox queue's visibility timeout during a chaos run: a message the inbox kept comes back
/// within the run, where the template's 360 s (six times the function's timeout) would only
/// make the run longer. A message whose invocation outlasts it is delivered to the other
/// mapping meanwhile, one more duplicate.
const CHAOS_VISIBILITY: Duration = Duration::from_secs(5);

/// The most messages the inbox queue holds before the relays wait for the inbox to catch up.
/// moto's server reads every message of a queue on each send, receive and delete, so a queue
/// the relays fill faster than the inbox empties it makes each call slower until the clients
/// time out and the server stops answering. SQS has no such cost, and Lambda would scale the
/// inbox's pollers out instead.
const QUEUE_BOUND: usize = 100;

/// How long the inbox mappings may take to empty the queue, once the relays are done, before
/// the run fails.
const PATIENCE: Duration = Duration::from_secs(600);

impl BrokerStack {
    /// The relay read by two racing mappings until the stream is drained and, meanwhile, the
    /// inbox by two racing mappings until the queue is empty once the relays are done; both
    /// sides' counts summed. The two sides run at once, as deployed: a queue that filled with
    /// every event before the inbox started would make moto's server slower with each message
    /// (it reads every message of a queue on each send).
    pub(super) async fn race(
        &self,
        chaos: &ConsumerChaos,
        faults: &Faults,
    ) -> Result<TriggerStats> {
        let mut relays = Vec::new();
        for (salt, duplicates) in [(0xA, true), (0xB, false)] {
            let processor = self.relay_on(
                self.stack.dynamo.client_via(&faults.dynamo.endpoint).await,
                self.moto.eventbridge_via(faults.broker_endpoint()).await,
            )?;
            let store = chaos.crashing(processor.store().clone(), salt);
            let invoker = relay_in_process(processor.with_store(store));
            let invoker = duplicating(invoker, chaos.copies(salt, duplicates), records);
            let invoker = paced(self.broker.sqs.clone(), &self.broker.queue.url, invoker);
            relays.push(chaos.sized(self.relay_trigger(invoker)?, salt));
        }
        let publishing = AtomicBool::new(true);
        let relayed = async {
            let stats = drain_all(&mut relays).await;
            publishing.store(false, Ordering::Release);
            stats
        };
        let inboxed = self.race_inbox(chaos, faults, &publishing);
        let (stats, delivered) = futures::join!(relayed, inboxed);
        let mut stats = stats?;
        stats.records_delivered += delivered?;
        Ok(stats)
    }

    /// Two inbox mappings on the queue at once, each through the proxy, the first duplicating
    /// messages in its batches, until the queue holds nothing and nothing is `publishing` to it;
    /// the messages they delivered.
    async fn race_inbox(
        &self,
        chaos: &ConsumerChaos,
        faults: &Faults,
        publishing: &AtomicBool,
    ) -> Result<usize> {
        let queue = &self.broker.queue;
        self.broker
            .sqs
            .set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                CHAOS_VISIBILITY.as_secs().to_string(),
            )
            .send()
            .await?;
        let mut mappings = Vec::new();
        for (salt, duplicates) in [(0xC, true), (0xD, false)] {
            let processor =
                self.inbox_on(self.stack.dynamo.client_via(&faults.dynamo.endpoint).await)?;
            let store = chaos.crashing_at(processor.store().clone(), salt, CrashPoint::AfterCommit);
            let invoker = inbox_in_process(processor.with_store(store));
            let invoker = duplicating(invoker, chaos.copies(salt, duplicates), messages);
            mappings.push(
                self.inbox_mapping(self.moto.sqs_via(faults.broker_endpoint()).await, invoker)
                    .await?,
            );
        }
        let settled =
            futures::future::join_all(mappings.iter_mut().map(|m| self.settle(m, publishing)))
                .await;
        let mut delivered = 0;
        for (mapping, outcome) in mappings.iter().zip(settled) {
            outcome?;
            delivered += mapping.stats.messages_delivered;
        }
        Ok(delivered)
    }

    /// Polls until the queue holds no message, visible or in flight, and nothing is
    /// `publishing` to it. A failed receive or delete is polled again, as Lambda's pollers do: a
    /// message not deleted comes back after the visibility timeout.
    async fn settle<I: Invoke<SqsEvent>>(
        &self,
        mapping: &mut SqsMapping<I>,
        publishing: &AtomicBool,
    ) -> Result<()> {
        let mut deadline = None;
        loop {
            match mapping.poll(Duration::from_secs(1)).await {
                Ok(0) | Err(_) => {}
                Ok(_) => continue,
            }
            if publishing.load(Ordering::Acquire) {
                continue;
            }
            // A depth moto did not answer is asked again at the next poll.
            let Ok(left) = self.depth(&self.broker.queue).await else {
                continue;
            };
            if left == 0 {
                return Ok(());
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + PATIENCE);
            ensure!(
                Instant::now() < deadline,
                "the inbox mappings left {left} messages in {} after {PATIENCE:?}",
                self.broker.queue.name
            );
        }
    }

    /// What a chaos run leaves for the operator's tools: the relay's sweeper (as `RelaySweeper`
    /// runs on its schedule), the dead-letter queue moved back to the inbox queue (as the
    /// runbook does), and the queue drained by the inbox, until nothing is left; how many events
    /// the sweeper published and messages came back from the dead letters.
    pub(super) async fn sweep_all(&self, chaos: &ConsumerChaos, faults: &Faults) -> Result<usize> {
        let relay = self.relay_on(
            self.stack.dynamo.client_via(&faults.dynamo.endpoint).await,
            self.moto.eventbridge_via(faults.broker_endpoint()).await,
        )?;
        let client = self.stack.dynamo.client_via(&faults.dynamo.endpoint).await;
        let pending = PendingEvents::new(client, &self.stack.tables.orders);
        let mut swept = 0;
        for _ in 0..10 {
            match relay.sweep(&pending, Duration::ZERO, 10_000).await {
                Ok(run) if run.applied + run.duplicates + run.failed + run.held_back == 0 => break,
                Ok(run) => swept += run.applied,
                Err(_) => continue,
            }
        }
        for _ in 0..5 {
            let moved = self.move_dead_letters().await?;
            swept += moved;
            self.race_inbox(chaos, faults, &AtomicBool::new(false))
                .await?;
            if moved == 0 && self.depth(&self.broker.dead_letter_queue).await? == 0 {
                break;
            }
        }
        Ok(swept)
    }

    /// The dead-letter queue's messages sent back to the inbox queue, each deleted from the
    /// dead letters once sent: what SQS's message move task (the runbook's
    /// `start-message-move-task`, which moto does not serve) does.
    async fn move_dead_letters(&self) -> Result<usize> {
        let (sqs, dead) = (&self.broker.sqs, &self.broker.dead_letter_queue);
        let mut moved = 0;
        loop {
            let received = sqs.receive_message().queue_url(&dead.url);
            let received = received.max_number_of_messages(10).send().await?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(moved);
            }
            for message in messages {
                let send = sqs.send_message().queue_url(&self.broker.queue.url);
                send.message_body(message.body().unwrap_or_default())
                    .send()
                    .await?;
                let delete = sqs.delete_message().queue_url(&dead.url);
                delete
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await?;
                moved += 1;
            }
        }
    }

    /// What the run left behind: events the relay has yet to publish, messages in the inbox
    /// queue or its dead letters.
    pub(super) async fn left_behind(&self) -> Result<Vec<Violation>> {
        let mut found = Vec::new();
        let pending = self.stack.pending_for(ORDER_RELAY).await?;
        if pending > 0 {
            found.push(Violation {
                invariant: Invariant::EventIsProcessed,
                evidence: format!("{pending} outbox events still pending for {ORDER_RELAY}"),
            });
        }
        for queue in [&self.broker.queue, &self.broker.dead_letter_queue] {
            let left = self.depth(queue).await?;
            if left > 0 {
                found.push(left_in(queue, left));
            }
        }
        Ok(found)
    }
}

/// `inner` invoked once the inbox queue holds at most [`QUEUE_BOUND`] messages (or its depth
/// could not be read: the invocation then goes on, and the bound with the next one).
fn paced<I: Invoke + 'static>(sqs: aws_sdk_sqs::Client, url: &str, inner: I) -> impl Invoke {
    let (inner, url) = (Arc::new(inner), Arc::<str>::from(url));
    move |event: Event| {
        let (sqs, url, inner) = (sqs.clone(), url.clone(), inner.clone());
        async move {
            while matches!(queue_depth(&sqs, &url).await, Ok(depth) if depth > QUEUE_BOUND) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            inner.invoke(event).await
        }
    }
}

fn left_in(queue: &Queue, messages: usize) -> Violation {
    Violation {
        invariant: Invariant::EventIsProcessed,
        evidence: format!("{messages} messages left in {}", queue.name),
    }
}

fn messages(event: &mut SqsEvent) -> &mut Vec<SqsMessage> {
    &mut event.records
}

fn records(event: &mut Event) -> &mut Vec<EventRecord> {
    &mut event.records
}
