//! SQS: `SendMessageBatch`, up to 10 messages a call.

use aws_sdk_sqs::Client;

use super::{batch, Limits, Message, Sent, Target};
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
    queue: batch::Address,
}

impl SqsTarget {
    /// The queue at `queue_url`, through `client`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue: batch::Address::new(queue_url.into()),
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
        self.queue.max_message_bytes = bytes;
        self
    }
}

impl Target for SqsTarget {
    fn destination(&self) -> String {
        format!("SQS queue {}", self.queue.to)
    }

    fn limits(&self) -> Limits {
        self.queue.limits()
    }

    fn size(&self, message: &Message) -> usize {
        batch::attributed_size(message)
    }

    async fn send(&self, messages: &[Message]) -> Result<Vec<Sent>, BoxError> {
        let entries = batch::attributed_entries!(
            aws_sdk_sqs::SendMessageBatchRequestEntry,
            message_body,
            self.queue.fifo,
            messages
        )?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue.to)
            .set_entries(Some(entries))
            .send()
            .await?;
        let published = out.successful().iter().map(|ok| ok.id());
        let failures = out
            .failed()
            .iter()
            .map(|failed| (failed.id(), failed.code(), failed.message()));
        Ok(batch::answers_by_id(
            messages.len(),
            published,
            failures,
            REFUSED,
        ))
    }
}
