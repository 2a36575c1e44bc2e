//! What the engine's own targets share: their limits and what a failed entry becomes.

use super::{Limits, Sent};

/// The limits of the engine's targets: 10 entries a call (`PutEvents`, `SendMessageBatch`,
/// `PublishBatch`), each message and the whole call at most `max_message_bytes`.
pub(crate) fn limits(max_message_bytes: usize) -> Limits {
    Limits {
        entries_per_call: 10,
        bytes_per_message: max_message_bytes,
        bytes_per_call: max_message_bytes,
    }
}

/// What became of an entry the broker failed with `code` (and `message`): refused for its
/// content, so parked, when `code` is one of `refused`; otherwise failed, so retried.
pub(crate) fn failed(code: &str, message: Option<&str>, refused: &[&str]) -> Sent {
    let why = format!("{code}: {}", message.unwrap_or("no message"));
    if refused.contains(&code) {
        Sent::Refused(why)
    } else {
        Sent::Failed(why)
    }
}
