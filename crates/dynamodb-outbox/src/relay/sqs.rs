//! SQS: `SendMessageBatch`, up to 10 messages a call.

use super::attributed;

/// The failure codes that refuse a message for its content: retrying cannot help, so the event
/// is parked. Every other failure is retried.
const REFUSED: &[&str] = &["InvalidMessageContents", "MessageTooLong"];

attributed::batch_target! {
    /// An SQS queue: each message's body is the envelope as JSON, its `event_type` attribute the
    /// event's type. On a FIFO queue (its URL ends in `.fifo`) the message group is the ordering
    /// key and the deduplication id the event id (each as itself when SQS takes it: 1 to 128
    /// printable ASCII characters, otherwise a name-based UUID of it). A standard queue promises
    /// no order and may deliver twice: its receiver deduplicates by event id.
    ///
    /// IAM: `sqs:SendMessage` on the queue (it also covers `SendMessageBatch`).
    pub struct SqsTarget(aws_sdk_sqs) {
        kind: "SQS queue",
        env: "SQS",
        call: send_message_batch,
        to: queue_url,
        entries: set_entries,
        entry: SendMessageBatchRequestEntry,
        body: message_body,
        refused: REFUSED,
    }
}
