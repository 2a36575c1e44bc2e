//! What the engine's own targets share: their limits, what a failed entry becomes and, for SQS
//! and SNS (whose batch calls are alike but of two SDKs), their entries, FIFO ids and answers.

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

/// A FIFO message group or deduplication id for `text`: itself when SQS and SNS take it (1 to
/// 128 printable ASCII characters), otherwise a name-based UUID of it (the same text, the same
/// id), so any ordering key and event id can be a group and a deduplication id.
#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
pub(crate) fn fifo_id(text: &str) -> String {
    let fits = (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        text.to_owned()
    } else {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, text.as_bytes()).to_string()
    }
}

/// Where an SQS or SNS target sends: the queue's URL or the topic's ARN, whether it is FIFO (the
/// address ends in `.fifo`), and the largest message to send (the most bytes in one call too).
#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
#[derive(Debug, Clone)]
pub(crate) struct Address {
    pub(crate) to: String,
    pub(crate) fifo: bool,
    pub(crate) max_message_bytes: usize,
}

#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
impl Address {
    pub(crate) fn new(to: String) -> Self {
        Self {
            fifo: to.ends_with(".fifo"),
            to,
            max_message_bytes: super::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        limits(self.max_message_bytes)
    }
}

/// An SQS or SNS message's size as the relay counts it: its body and its `event_type` message
/// attribute (the attribute's name, its data type and its value).
#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
pub(crate) fn attributed_size(message: &super::Message) -> usize {
    message.body.len()
        + super::EVENT_TYPE_ATTRIBUTE.len()
        + "String".len()
        + message.event_type.len()
}

/// The entries of an SQS `SendMessageBatch` or SNS `PublishBatch` call for `$messages`, as
/// `$sdk::types::$entry`s, the body set by `$body`: each named by its index (as
/// [`answers_by_id`] reads the answers), its `event_type` attribute the event's type and, when
/// `$fifo`, its message group and deduplication id the [`fifo_id`]s of its ordering key and
/// event id. The two SDKs' entry types are alike but not one type, hence a macro.
#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
macro_rules! attributed_entries {
    ($sdk:ident::$entry:ident, $body:ident, $fifo:expr, $messages:expr) => {
        $messages
            .iter()
            .enumerate()
            .map(
                |(index, message)| -> Result<_, $crate::consumer::BoxError> {
                    let event_type = $sdk::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(&message.event_type)
                        .build()?;
                    let mut entry = $sdk::types::$entry::builder()
                        .id(index.to_string())
                        .$body(&message.body)
                        .message_attributes($crate::relay::EVENT_TYPE_ATTRIBUTE, event_type);
                    if $fifo {
                        entry = entry
                            .message_group_id($crate::relay::batch::fifo_id(&message.ordering_key))
                            .message_deduplication_id($crate::relay::batch::fifo_id(
                                &message.event_id,
                            ));
                    }
                    Ok(entry.build()?)
                },
            )
            .collect::<Result<Vec<_>, $crate::consumer::BoxError>>()
    };
}
#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
pub(crate) use attributed_entries;

/// The answers of a batch call whose entries are named by their index (`"0"`, `"1"`, ...):
/// published, failed (as [`failed`] tells, by its code, message and the `refused` codes), or,
/// for an entry the broker named in neither list, not known to be published.
#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
pub(crate) fn answers_by_id<'a>(
    messages: usize,
    published: impl Iterator<Item = &'a str>,
    failures: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)>,
    refused: &[&str],
) -> Vec<Sent> {
    let mut sent = vec![Sent::Failed("the broker answered nothing for it".to_owned()); messages];
    let mut answer = |id: &str, what: Sent| {
        if let Some(slot) = id.parse::<usize>().ok().and_then(|i| sent.get_mut(i)) {
            *slot = what;
        }
    };
    for id in published {
        answer(id, Sent::Published);
    }
    for (id, code, message) in failures {
        answer(id, failed(code, message, refused));
    }
    sent
}

#[cfg(all(test, any(feature = "relay-sns", feature = "relay-sqs")))]
mod tests {
    use super::fifo_id;

    #[test]
    fn a_fifo_id_is_the_text_when_it_fits_and_a_stable_uuid_otherwise() {
        assert_eq!(fifo_id("account-7"), "account-7");
        let long = "k".repeat(129);
        assert_eq!(fifo_id(&long), fifo_id(&long), "the same text, the same id");
        assert_eq!(fifo_id(&long).len(), 36);
        assert_ne!(fifo_id("a b"), "a b", "a space is not taken");
        assert_ne!(fifo_id("é"), fifo_id("è"));
    }
}
