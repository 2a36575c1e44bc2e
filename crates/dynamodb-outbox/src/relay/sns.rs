//! SNS: `PublishBatch`, up to 10 messages a call.

use super::attributed;

attributed::batch_target! {
    /// An SNS topic: each message is the envelope as JSON, its `event_type` attribute the event's
    /// type (for subscription filter policies). An SQS subscription without raw message delivery
    /// receives it inside the SNS notification's `Message`. On a FIFO topic (its ARN ends in
    /// `.fifo`) the message group is the ordering key and the deduplication id the event id (each
    /// as itself when SNS takes it: 1 to 128 printable ASCII characters, otherwise a name-based
    /// UUID of it). SNS refuses no message for its content alone in a way the relay can tell
    /// from a misconfiguration (both are `InvalidParameter`), so every failed entry is retried.
    ///
    /// IAM: `sns:Publish` on the topic (it also covers `PublishBatch`).
    pub struct SnsTarget(aws_sdk_sns) {
        kind: "SNS topic",
        env: "SNS",
        call: publish_batch,
        to: topic_arn,
        entries: set_publish_batch_request_entries,
        entry: PublishBatchRequestEntry,
        body: message,
        refused: &[],
    }
}
