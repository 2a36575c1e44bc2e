//! EventBridge: `PutEvents`, up to 10 entries a call.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::{batch, Limits, Message, Sent, Target, DEFAULT_MAX_MESSAGE_BYTES};
use crate::consumer::BoxError;

/// The entry failure codes that refuse an entry for its content: retrying cannot help, so the
/// event is parked. Every other failure (`ThrottlingException`, `InternalFailure`, access
/// denied) is retried.
const REFUSED: &[&str] = &["MalformedDetail"];

/// An EventBridge event bus: each entry's detail is the envelope as JSON (so the event id, the
/// receiver's deduplication key, is `detail.event_id`), its detail type the event's type, its
/// source the one given. A rule matches them with `{"source": [source], "detail-type":
/// [event type]}`; an SQS target of the rule receives the whole EventBridge event, the envelope
/// in its `detail`. EventBridge promises no order, even within one call: the relay puts at most
/// one event of a key in a call, and the next one only after this one was accepted, so the bus
/// receives a key's events in order; what a rule's target receives is up to EventBridge.
///
/// IAM: `events:PutEvents` on the bus.
#[derive(Debug, Clone)]
pub struct EventBridgeTarget {
    client: Client,
    bus: String,
    source: String,
    max_message_bytes: usize,
}

impl EventBridgeTarget {
    /// The event bus `bus` (its name or ARN), through `client`, with `source` as every entry's
    /// source.
    pub fn new(client: Client, bus: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
            source: source.into(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// The bus `bus`, through a client built from the function's environment (as
    /// `lambda::dynamodb_client` builds DynamoDB's; `AWS_ENDPOINT_URL_EVENTBRIDGE` for a local
    /// server).
    #[cfg(feature = "lambda")]
    pub fn from_env(bus: impl Into<String>, source: impl Into<String>) -> Self {
        Self::new(
            super::client_from_env!(aws_sdk_eventbridge, "EVENTBRIDGE"),
            bus,
            source,
        )
    }

    /// The largest entry to put, and the most bytes in one call: 256 KB unless set otherwise.
    /// Larger events are parked.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }
}

impl Target for EventBridgeTarget {
    fn destination(&self) -> String {
        format!("EventBridge bus {}", self.bus)
    }

    fn limits(&self) -> Limits {
        batch::limits(self.max_message_bytes)
    }

    /// As EventBridge counts an entry: its source, detail type and detail (no time, no
    /// resources).
    fn size(&self, message: &Message) -> usize {
        self.source.len() + message.event_type.len() + message.body.len()
    }

    async fn send(&self, messages: &[Message]) -> Result<Vec<Sent>, BoxError> {
        let entries = messages
            .iter()
            .map(|message| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&self.source)
                    .detail_type(&message.event_type)
                    .detail(&message.body)
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await?;
        // The result entries are the request's, in its order; an entry with an error code
        // failed, whatever FailedEntryCount says.
        let mut sent: Vec<Sent> = out
            .entries()
            .iter()
            .map(|entry| match entry.error_code() {
                None => Sent::Published,
                Some(code) => batch::failed(code, entry.error_message(), REFUSED),
            })
            .collect();
        if out.failed_entry_count() > 0 && !sent.iter().any(|s| s != &Sent::Published) {
            // A count with no failed entry to match it: nothing is known to be published.
            let why = format!("{} entries failed, none named", out.failed_entry_count());
            sent = vec![Sent::Failed(why); messages.len()];
        }
        sent.truncate(messages.len());
        Ok(sent)
    }
}
