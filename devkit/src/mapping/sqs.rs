//! The local event source mapping of an SQS queue: what Lambda does between a queue and a
//! function, over a real SQS API (moto's server locally).
//!
//! A poll receives up to `BatchSize` messages (ten per `ReceiveMessage`, gathering more for at
//! most `MaximumBatchingWindowInSeconds`), invokes the function with them in Lambda's SQS event
//! shape, and deletes what succeeded: every message when the function answers and the mapping
//! has no `ReportBatchItemFailures`; with it, all but those its `batchItemFailures` name; none
//! after a function error, or an answer naming a message that is not in the batch (Lambda takes
//! that as the whole batch failed). The mapping never hands a message back: one it did not
//! delete becomes visible again when the queue's visibility timeout has passed, and the queue's
//! redrive policy moves it to the dead-letter queue once it has been received
//! `maxReceiveCount` times, as on AWS. On a FIFO queue the queue hands out a group's next
//! message only once the one in flight is deleted or visible again, so a kept message holds
//! its group back across batches.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};
use aws_sdk_sqs::Client;
use futures::FutureExt as _;

use crate::mapping::Invoke;

mod template;

pub use template::{create_queues, queues, sqs_source, LocalQueue, QueueSpec, SqsEventSource};

/// The most messages one `ReceiveMessage` returns.
const RECEIVE_MAX: usize = 10;

/// The longest long poll SQS allows.
const LONGEST_POLL: Duration = Duration::from_secs(20);

/// A mapping's settings, as a template's `Type: SQS` event gives them ([`sqs_source`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSettings {
    /// `BatchSize`: the most messages per invocation (SAM's default 10).
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`: how long a poll gathers messages towards a full batch.
    pub batching_window: Duration,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
}

impl Default for SqsSettings {
    fn default() -> Self {
        Self {
            batch_size: RECEIVE_MAX,
            batching_window: Duration::ZERO,
            report_batch_item_failures: false,
        }
    }
}

/// Counters of what the mapping did, for the demo, tests and benchmarks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SqsStats {
    pub invocations: usize,
    pub messages_delivered: usize,
    pub messages_deleted: usize,
    /// Invocations whose answer kept some messages (`batchItemFailures`).
    pub partial_failures: usize,
    /// Messages left in the queue, to come back after the visibility timeout.
    pub messages_kept: usize,
    /// Invocations that failed as a whole (an error, or an answer Lambda would not accept).
    pub function_errors: usize,
}

/// A mapping from an SQS queue to a function.
pub struct SqsMapping<I> {
    /// The template's settings; a test may change them before it polls.
    pub settings: SqsSettings,
    client: Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    invoker: I,
    pub stats: SqsStats,
}

impl<I: Invoke<SqsEvent>> SqsMapping<I> {
    /// A mapping from the queue at `queue_url` to `invoker`, with `settings`.
    pub async fn open(
        settings: SqsSettings,
        client: Client,
        queue_url: &str,
        invoker: I,
    ) -> Result<Self> {
        let queue_arn = queue_arn(&client, queue_url).await?;
        let region = queue_arn.split(':').nth(3).unwrap_or_default().to_owned();
        Ok(Self {
            settings,
            client,
            queue_url: queue_url.to_owned(),
            queue_arn,
            region,
            invoker,
            stats: SqsStats::default(),
        })
    }

    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    /// One poll: a batch received (its first message waited for up to `wait`), the function
    /// invoked with it, what succeeded deleted. Returns the messages delivered (0: none came).
    pub async fn poll(&mut self, wait: Duration) -> Result<usize> {
        let batch = self.receive(wait).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let delivered = batch.len();
        let event = self.event(&batch);
        self.stats.invocations += 1;
        self.stats.messages_delivered += delivered;
        let answer = self.invoker.invoke(event).await;
        let keep = self.kept(&batch, answer);
        let done: Vec<&Message> = batch
            .iter()
            .filter(|m| !keep.contains(m.message_id().unwrap_or_default()))
            .collect();
        self.delete(&done).await?;
        self.stats.messages_deleted += done.len();
        self.stats.messages_kept += delivered - done.len();
        Ok(delivered)
    }

    /// Polls until a receive finds no visible message: what is in the queue now is delivered,
    /// and what the function kept waits for its visibility timeout.
    pub async fn drain(&mut self) -> Result<&SqsStats> {
        while self.poll(Duration::ZERO).await? > 0 {}
        Ok(&self.stats)
    }

    /// Polls until `stop` resolves, long-polling a second at a time: a batch in hand is
    /// finished (invoked, deleted) before `stop` is looked at again.
    pub async fn follow(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(stop);
        while stop.as_mut().now_or_never().is_none() {
            self.poll(Duration::from_secs(1)).await?;
        }
        Ok(())
    }

    /// Up to `BatchSize` messages: the first receive long-polls up to `wait`; more are gathered
    /// while the batching window lasts.
    async fn receive(&self, wait: Duration) -> Result<Vec<Message>> {
        let want = self.settings.batch_size.max(1);
        let deadline = Instant::now() + self.settings.batching_window;
        let mut batch = self.receive_once(want.min(RECEIVE_MAX), wait).await?;
        while !batch.is_empty() && batch.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let more = self
                .receive_once((want - batch.len()).min(RECEIVE_MAX), left)
                .await?;
            batch.extend(more);
        }
        Ok(batch)
    }

    async fn receive_once(&self, count: usize, wait: Duration) -> Result<Vec<Message>> {
        let seconds = i32::try_from(wait.min(LONGEST_POLL).as_secs())?;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(count)?)
            .wait_time_seconds(seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .with_context(|| format!("ReceiveMessage {}", self.queue_url))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// The ids of the messages to keep, after the function's answer.
    fn kept(
        &mut self,
        batch: &[Message],
        answer: Result<SqsBatchResponse, String>,
    ) -> HashSet<String> {
        let all = || {
            batch
                .iter()
                .filter_map(|m| m.message_id().map(str::to_owned))
                .collect()
        };
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(queue = %self.queue_arn, %error, "function error: the batch stays in the queue");
                self.stats.function_errors += 1;
                return all();
            }
        };
        if !self.settings.report_batch_item_failures {
            return HashSet::new();
        }
        let ids: HashSet<&str> = batch.iter().filter_map(Message::message_id).collect();
        let named: HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        if let Some(stranger) = named.iter().find(|id| !ids.contains(id.as_str())) {
            tracing::warn!(queue = %self.queue_arn, item = %stranger, "batchItemFailures names a message not in the batch: the whole batch failed");
            self.stats.function_errors += 1;
            return all();
        }
        self.stats.partial_failures += usize::from(!named.is_empty());
        named
    }

    async fn delete(&self, done: &[&Message]) -> Result<()> {
        for chunk in done.chunks(RECEIVE_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .with_context(|| format!("DeleteMessageBatch {}", self.queue_url))?;
            if let Some(failed) = out.failed().first() {
                bail!(
                    "DeleteMessageBatch {}: {} entries failed, the first: {:?}",
                    self.queue_url,
                    out.failed().len(),
                    failed.message()
                );
            }
        }
        Ok(())
    }

    /// The batch in Lambda's SQS event shape.
    fn event(&self, batch: &[Message]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = batch.iter().map(|m| self.record(m)).collect();
        event
    }

    fn record(&self, message: &Message) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.receipt_handle = message.receipt_handle.clone();
        record.body = message.body.clone();
        record.md5_of_body = message.md5_of_body.clone();
        record.md5_of_message_attributes = message.md5_of_message_attributes.clone();
        record.attributes = message
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        record.message_attributes = message
            .message_attributes()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
            .unwrap_or_default();
        record.event_source = Some("aws:sqs".to_owned());
        record.event_source_arn = Some(self.queue_arn.clone());
        record.aws_region = Some(self.region.clone());
        record
    }
}

/// The ARN of the queue at `url`.
async fn queue_arn(client: &Client, url: &str) -> Result<String> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {url}: is the queue there?"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("{url} has no QueueArn"))
}

/// A message attribute as Lambda's event carries it.
fn attribute(value: &MessageAttributeValue) -> SqsMessageAttribute {
    let mut attribute = SqsMessageAttribute::default();
    attribute.string_value = value.string_value.clone();
    attribute.binary_value = value.binary_value.as_ref().map(|b| base64_data(b.as_ref()));
    attribute.string_list_values = value.string_list_values().to_vec();
    attribute.binary_list_values = value
        .binary_list_values()
        .iter()
        .map(|b| base64_data(b.as_ref()))
        .collect();
    attribute.data_type = Some(value.data_type().to_owned());
    attribute
}

fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    *data = bytes.to_vec();
    data
}
