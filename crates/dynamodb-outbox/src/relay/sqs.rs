//! SQS: `SendMessageBatch`, up to 10 messages a call.

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;

use super::{
    answers_by_id, attribute_bytes, fifo_id, Limits, Message, Sent, Target,
    DEFAULT_MAX_MESSAGE_BYTES, EVENT_TYPE_ATTRIBUTE,
};
use crate::consumer::BoxError;

/// The failure codes that refuse a message for its content: retrying cannot help, so the event
/// is parked. Every other failure is retried.
const REFUSED: &[&str] = &["InvalidMessageContents", "MessageTooLong"];

/// An SQS queue: each message's body is the envelope as JSON, its `event_type` attribute the
/// event's type. On a FIFO queue (its URL ends in `.fifo`) the message group is the ordering key
/// and the deduplication id the event id (each as itself when SQS takes it: 1 to 128 printable
/// ASCII characters, otherwise a name-based UUID of it). A standard queue promises no order and
/// may deliver twice: its receiver deduplicates by event id.
///
/// IAM: `sqs:SendMessage` on the queue (it also covers `SendMessageBatch`).
#[derive(Debug, Clone)]
pub struct SqsTarget {
    client: Client,
    queue_url: String,
    fifo: bool,
    max_message_bytes: usize,
}

impl SqsTarget {
    /// The queue at `queue_url`, through `client`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        Self {
            client,
            fifo: queue_url.ends_with(".fifo"),
            queue_url,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// The queue at `queue_url`, through a client built from the function's environment (as
    /// `lambda::dynamodb_client` builds DynamoDB's; `AWS_ENDPOINT_URL_SQS` for a local server).
    #[cfg(feature = "lambda")]
    pub fn from_env(queue_url: impl Into<String>) -> Self {
        Self::new(super::client_from_env!(aws_sdk_sqs, "SQS"), queue_url)
    }

    /// The largest message (body and attribute) to send, and the most bytes in one call:
    /// 256 KiB unless raised (SQS takes up to 1 MiB since 2025). Larger events are parked.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    fn entry(
        &self,
        index: usize,
        message: &Message,
    ) -> Result<SendMessageBatchRequestEntry, BoxError> {
        let event_type = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&message.event_type)
            .build()?;
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(&message.body)
            .message_attributes(EVENT_TYPE_ATTRIBUTE, event_type);
        if self.fifo {
            entry = entry
                .message_group_id(fifo_id(&message.ordering_key))
                .message_deduplication_id(fifo_id(&message.event_id));
        }
        Ok(entry.build()?)
    }
}

impl Target for SqsTarget {
    fn destination(&self) -> String {
        format!("SQS queue {}", self.queue_url)
    }

    fn limits(&self) -> Limits {
        Limits {
            entries_per_call: 10,
            bytes_per_message: self.max_message_bytes,
            bytes_per_call: self.max_message_bytes,
        }
    }

    fn size(&self, message: &Message) -> usize {
        message.body.len() + attribute_bytes(message)
    }

    async fn send(&self, messages: &[Message]) -> Result<Vec<Sent>, BoxError> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(index, message)| self.entry(index, message))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        let published = out.successful().iter().map(|ok| ok.id());
        let failed = out.failed().iter().map(|failed| {
            let why = format!(
                "{}: {}",
                failed.code(),
                failed.message().unwrap_or("no message")
            );
            (failed.id(), why, REFUSED.contains(&failed.code()))
        });
        Ok(answers_by_id(messages.len(), published, failed))
    }
}
