//! SNS: `PublishBatch`, up to 10 messages a call.

use aws_sdk_sns::Client;

use super::attributed::{self, BatchTarget};

/// An SNS topic: each message is the envelope as JSON, its `event_type` attribute the event's
/// type (for subscription filter policies). An SQS subscription without raw message delivery
/// receives it inside the SNS notification's `Message`. On a FIFO topic (its ARN ends in
/// `.fifo`) the message group is the ordering key and the deduplication id the event id (each as
/// itself when SNS takes it: 1 to 128 printable ASCII characters, otherwise a name-based UUID of
/// it). SNS refuses no message for its content alone in a way the relay can tell from a
/// misconfiguration (both are `InvalidParameter`), so every failed entry is retried.
///
/// `SnsTarget::new(client, topic_arn)`; `from_env(topic_arn)` with the `lambda` feature
/// (`AWS_ENDPOINT_URL_SNS` for a local server); `max_message_bytes`, SNS's 256 KiB unless set
/// otherwise.
///
/// IAM: `sns:Publish` on the topic (it also covers `PublishBatch`).
pub type SnsTarget = BatchTarget<Client>;

// SNS refuses no entry for its content alone in a way the relay can tell (see `SnsTarget`).
attributed::batch_client!(aws_sdk_sns {
    kind: "SNS topic",
    env: "SNS",
    call: publish_batch,
    to: topic_arn,
    entries: set_publish_batch_request_entries,
    entry: PublishBatchRequestEntry,
    body: message,
    refused: &[],
});
