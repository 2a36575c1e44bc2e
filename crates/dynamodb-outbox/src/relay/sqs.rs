//! SQS: `SendMessageBatch`, up to 10 messages a call.

use aws_sdk_sqs::Client;

use super::attributed::{self, BatchTarget};

/// The failure codes that refuse a message for its content: retrying cannot help, so the event
/// is parked. Every other failure is retried.
const REFUSED: &[&str] = &["InvalidMessageContents", "MessageTooLong"];

/// An SQS queue: each message's body is the envelope as JSON, its `event_type` attribute the
/// event's type. On a FIFO queue (its URL ends in `.fifo`) the message group is the ordering key
/// and the deduplication id the event id (each as itself when SQS takes it: 1 to 128 printable
/// ASCII characters, otherwise a name-based UUID of it). A standard queue promises no order and
/// may deliver twice: its receiver deduplicates by event id.
///
/// `SqsTarget::new(client, queue_url)`; `from_env(queue_url)` with the `lambda` feature
/// (`AWS_ENDPOINT_URL_SQS` for a local server); `max_message_bytes` up to SQS's 1 MiB.
///
/// IAM: `sqs:SendMessage` on the queue (it also covers `SendMessageBatch`).
pub type SqsTarget = BatchTarget<Client>;

attributed::batch_client!(aws_sdk_sqs {
    kind: "SQS queue",
    env: "SQS",
    call: send_message_batch,
    to: queue_url,
    entries: set_entries,
    entry: SendMessageBatchRequestEntry,
    body: message_body,
    refused: REFUSED,
});
