//! The SQS and SNS targets, one target over two SDKs: their batch calls (`SendMessageBatch`,
//! `PublishBatch`) take the same entries (a body, an `event_type` attribute, FIFO ids) and give
//! the same answers (successes and failures named by the entries' ids), in types of two SDKs.
//! What differs, the call itself, is a [`BatchClient`]; the rest is [`BatchTarget`], once;
//! [`batch_target!`] writes both for an SDK, and its public target type.

use std::future::Future;

use super::{batch, Limits, Message, Sent, Target};
use crate::consumer::BoxError;

/// An SQS or SNS client: one batch call of up to 10 messages, each answered apart.
pub(crate) trait BatchClient: Send + Sync {
    /// What the client sends to, for logs and a parked event's reason (`SQS queue`).
    const KIND: &'static str;

    /// Sends `messages` to `to` (a queue's URL, a topic's ARN) in one call, with FIFO ids when
    /// `fifo`: what became of each message, in order, or the error of the whole call.
    fn send_batch(
        &self,
        to: &str,
        fifo: bool,
        messages: &[Message],
    ) -> impl Future<Output = Result<Vec<Sent>, BoxError>> + Send;
}

/// An SQS queue or SNS topic: its client, its URL or ARN, whether it is FIFO (the address ends
/// in `.fifo`), and the largest message to send (the most bytes in one call too).
#[derive(Debug, Clone)]
pub(crate) struct BatchTarget<C> {
    client: C,
    to: String,
    fifo: bool,
    max_message_bytes: usize,
}

impl<C: BatchClient> BatchTarget<C> {
    pub(crate) fn new(client: C, to: String) -> Self {
        Self {
            client,
            fifo: to.ends_with(".fifo"),
            to,
            max_message_bytes: super::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    pub(crate) fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }
}

impl<C: BatchClient> Target for BatchTarget<C> {
    fn destination(&self) -> String {
        format!("{} {}", C::KIND, self.to)
    }

    fn limits(&self) -> Limits {
        batch::limits(self.max_message_bytes)
    }

    /// Its body and its `event_type` message attribute (the attribute's name, its data type and
    /// its value).
    fn size(&self, message: &Message) -> usize {
        message.body.len()
            + super::EVENT_TYPE_ATTRIBUTE.len()
            + "String".len()
            + message.event_type.len()
    }

    async fn send(&self, messages: &[Message]) -> Result<Vec<Sent>, BoxError> {
        self.client.send_batch(&self.to, self.fifo, messages).await
    }
}

/// A FIFO message group or deduplication id for `text`: itself when SQS and SNS take it (1 to
/// 128 printable ASCII characters), otherwise a name-based UUID of it (the same text, the same
/// id), so any ordering key and event id can be a group and a deduplication id.
pub(crate) fn fifo_id(text: &str) -> String {
    let fits = (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        text.to_owned()
    } else {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, text.as_bytes()).to_string()
    }
}

/// The public target `$target` (with its docs) of an SDK's client, `$sdk::Client`: a
/// [`BatchTarget`] and the client's [`BatchClient`], whose batch call is `$call`, its queue or
/// topic (`$to`, also the name of `new`'s argument) set by `$to` and its entries by `$entries`,
/// each a `$sdk::types::$entry` whose body is set by `$body`. `$kind` is what
/// [`BatchClient::KIND`] says, `$env` the service's name in `AWS_ENDPOINT_URL_<SERVICE>`. Each
/// entry is named by its index (as [`answers_by_id`] reads the answers), its `event_type`
/// attribute the event's type and, on a FIFO queue or topic, its message group and deduplication
/// id the [`fifo_id`]s of its ordering key and event id; a failure whose code is one of
/// `$refused` is refused (parked). The two SDKs' calls, entries and answers are alike but not of
/// one type, hence a macro; and the target is a type of its own, not an alias of
/// `BatchTarget`, so that its methods are documented and `BatchTarget` stays private.
macro_rules! batch_target {
    (
        $(#[$doc:meta])*
        pub struct $target:ident($sdk:ident) {
            kind: $kind:literal,
            env: $env:literal,
            call: $call:ident,
            to: $to:ident,
            entries: $entries:ident,
            entry: $entry:ident,
            body: $body:ident,
            refused: $refused:expr $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $target($crate::relay::attributed::BatchTarget<$sdk::Client>);

        impl $target {
            #[doc = concat!("The ", $kind, " `", stringify!($to), "`, through `client`.")]
            pub fn new(client: $sdk::Client, $to: impl Into<String>) -> Self {
                Self($crate::relay::attributed::BatchTarget::new(client, $to.into()))
            }

            #[doc = concat!(
                "The ", $kind, " `", stringify!($to), "`, through a client built from the ",
                "function's environment (as `lambda::dynamodb_client` builds DynamoDB's; ",
                "`AWS_ENDPOINT_URL_", $env, "` for a local server)."
            )]
            #[cfg(feature = "lambda")]
            pub fn from_env($to: impl Into<String>) -> Self {
                Self::new($crate::relay::client_from_env!($sdk, $env), $to)
            }

            /// The largest message (body and attribute) to send, and the most bytes in one
            /// call: 256 KiB unless set otherwise (SQS takes up to 1 MiB since 2025, SNS
            /// 256 KiB). Larger events are parked.
            pub fn max_message_bytes(self, bytes: usize) -> Self {
                Self(self.0.max_message_bytes(bytes))
            }
        }

        impl $crate::relay::Target for $target {
            fn destination(&self) -> String {
                self.0.destination()
            }

            fn limits(&self) -> $crate::relay::Limits {
                self.0.limits()
            }

            fn size(&self, message: &$crate::relay::Message) -> usize {
                self.0.size(message)
            }

            async fn send(
                &self,
                messages: &[$crate::relay::Message],
            ) -> Result<Vec<$crate::relay::Sent>, $crate::consumer::BoxError> {
                self.0.send(messages).await
            }
        }

        impl $crate::relay::attributed::BatchClient for $sdk::Client {
            const KIND: &'static str = $kind;

            async fn send_batch(
                &self,
                to: &str,
                fifo: bool,
                messages: &[$crate::relay::Message],
            ) -> Result<Vec<$crate::relay::Sent>, $crate::consumer::BoxError> {
                use $crate::relay::attributed::{answers_by_id, fifo_id};
                let mut entries = Vec::with_capacity(messages.len());
                for (index, message) in messages.iter().enumerate() {
                    let event_type = $sdk::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(&message.event_type)
                        .build()?;
                    let mut entry = $sdk::types::$entry::builder()
                        .id(index.to_string())
                        .$body(&message.body)
                        .message_attributes($crate::relay::EVENT_TYPE_ATTRIBUTE, event_type);
                    if fifo {
                        entry = entry
                            .message_group_id(fifo_id(&message.ordering_key))
                            .message_deduplication_id(fifo_id(&message.event_id));
                    }
                    entries.push(entry.build()?);
                }
                let out = self.$call().$to(to).$entries(Some(entries)).send().await?;
                // SQS names every success, SNS's id is optional: `Option::from` takes both.
                let published = out
                    .successful()
                    .iter()
                    .filter_map(|ok| Option::from(ok.id()));
                let failures = out
                    .failed()
                    .iter()
                    .map(|failed| (failed.id(), failed.code(), failed.message()));
                Ok(answers_by_id(messages.len(), published, failures, $refused))
            }
        }
    };
}
pub(crate) use batch_target;

/// The answers of a batch call whose entries are named by their index (`"0"`, `"1"`, ...):
/// published, failed (as [`batch::failed`] tells, by its code, message and the `refused`
/// codes), or, for an entry the broker named in neither list, not known to be published.
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
        answer(id, batch::failed(code, message, refused));
    }
    sent
}

#[cfg(test)]
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
