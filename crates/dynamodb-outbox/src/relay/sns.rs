//! SNS: `PublishBatch`, up to 10 messages a call.

use aws_sdk_sns::Client;

use super::{batch, Limits, Message, Sent, Target, DEFAULT_MAX_MESSAGE_BYTES};
use crate::consumer::BoxError;

/// An SNS topic: each message is the envelope as JSON, its `event_type` attribute the event's
/// type (for subscription filter policies). An SQS subscription without raw message delivery
/// receives it inside the SNS notification's `Message`. On a FIFO topic (its ARN ends in
/// `.fifo`) the message group is the ordering key and the deduplication id the event id (each as
/// itself when SNS takes it: 1 to 128 printable ASCII characters, otherwise a name-based UUID of
/// it). SNS refuses no message for its content alone in a way the relay can tell from a
/// misconfiguration (both are `InvalidParameter`), so every failed entry is retried.
///
/// IAM: `sns:Publish` on the topic (it also covers `PublishBatch`).
#[derive(Debug, Clone)]
pub struct SnsTarget {
    client: Client,
    topic_arn: String,
    fifo: bool,
    max_message_bytes: usize,
}

impl SnsTarget {
    /// The topic `topic_arn`, through `client`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        let topic_arn = topic_arn.into();
        Self {
            client,
            fifo: topic_arn.ends_with(".fifo"),
            topic_arn,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// The topic `topic_arn`, through a client built from the function's environment (as
    /// `lambda::dynamodb_client` builds DynamoDB's; `AWS_ENDPOINT_URL_SNS` for a local server).
    #[cfg(feature = "lambda")]
    pub fn from_env(topic_arn: impl Into<String>) -> Self {
        Self::new(super::client_from_env!(aws_sdk_sns, "SNS"), topic_arn)
    }

    /// The largest message (body and attribute) to publish, and the most bytes in one call:
    /// SNS's 256 KiB unless set otherwise. Larger events are parked.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }
}

impl Target for SnsTarget {
    fn destination(&self) -> String {
        format!("SNS topic {}", self.topic_arn)
    }

    fn limits(&self) -> Limits {
        batch::limits(self.max_message_bytes)
    }

    fn size(&self, message: &Message) -> usize {
        batch::attributed_size(message)
    }

    async fn send(&self, messages: &[Message]) -> Result<Vec<Sent>, BoxError> {
        let entries = batch::attributed_entries!(
            aws_sdk_sns::PublishBatchRequestEntry,
            message,
            self.fifo,
            messages
        )?;
        let out = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await?;
        let published = out.successful().iter().filter_map(|ok| ok.id());
        let failures = out
            .failed()
            .iter()
            .map(|failed| (failed.id(), failed.code(), failed.message()));
        Ok(batch::answers_by_id(
            messages.len(),
            published,
            failures,
            &[],
        ))
    }
}
