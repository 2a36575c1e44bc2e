//! SNS: `PublishBatch`, up to 10 messages a call.

use aws_sdk_sns::Client;

use super::{batch, Limits, Message, Sent, Target};
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
    topic: batch::Address,
}

impl SnsTarget {
    /// The topic `topic_arn`, through `client`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic: batch::Address::new(topic_arn.into()),
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
        self.topic.max_message_bytes = bytes;
        self
    }
}

impl Target for SnsTarget {
    fn destination(&self) -> String {
        format!("SNS topic {}", self.topic.to)
    }

    fn limits(&self) -> Limits {
        self.topic.limits()
    }

    fn size(&self, message: &Message) -> usize {
        batch::attributed_size(message)
    }

    async fn send(&self, messages: &[Message]) -> Result<Vec<Sent>, BoxError> {
        let entries = batch::attributed_entries!(
            aws_sdk_sns::PublishBatchRequestEntry,
            message,
            self.topic.fifo,
            messages
        )?;
        let out = self
            .client
            .publish_batch()
            .topic_arn(&self.topic.to)
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
