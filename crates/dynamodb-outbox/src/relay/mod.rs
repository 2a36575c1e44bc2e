//! Relays: the outbox published to a broker (feature `relay`, with one feature per broker:
//! `relay-eventbridge`, `relay-sns`, `relay-sqs`).
//!
//! A [`Relay`] is a [`Consumer`] whose effect is a publication: routed like any consumer (its
//! name in the event's routes, its own progress, its own stream mapping), so an outbox item
//! expires only once the relay and every other consumer are done with it. Each message is the
//! [`Envelope`] as JSON (as [`kinesis_put`](crate::kinesis_put) writes it), its event id the
//! broker's deduplication id where the broker has one, its ordering key a FIFO target's
//! message group.
//!
//! **Order.** A key's events are published strictly in sequence: before it publishes a key's
//! events, the relay reads its progress on the key, publishes only the events that follow it
//! without a gap, and publishes the next one only once the broker accepted the one before. One
//! broker call carries at most one event per ordering key (the order of entries within one call
//! is not promised by EventBridge, and no broker says what becomes of a key's later entry in a
//! call whose earlier entry failed), so a batch of many keys goes in calls of up to 10 entries,
//! a hot key one event per round trip. After the batch's calls, the relay commits its progress
//! once per key, for what the broker accepted.
//!
//! **At least once.** A crash (or a timeout, or a lost response the SDK retried) between the
//! publication and the progress publishes the event again, with the same event id. FIFO queues
//! and topics drop a repeated deduplication id within five minutes; for everything else the
//! receiving side deduplicates by event id: the engine's SQS inbox applies each event id once
//! (the effect commits with its idempotency record). A later event is never published before an
//! earlier one was accepted; a repeated earlier one may arrive after a later one.
//!
//! **Failures.** A failed entry (`FailedEntryCount`, `Failed`) is sent again in a later call of
//! the same invocation, after a short pause, up to three calls in all; one that still fails is
//! reported for retry with its key's later events held back; the batch's other keys go on. A whole call that fails (throttling
//! and 5xx after the SDK's retries, a lost response) fails its entries the same way. An event
//! over the target's size limit, or whose content the broker refuses as such (EventBridge's
//! `MalformedDetail`, SQS's `InvalidMessageContents`), is parked with the reason (a relay parks
//! its poison): its key goes on, and [`Processor::redrive_parked`](crate::Processor) publishes it
//! again once fixed. A relay skips, like any consumer, the events it does not
//! [`takes`](Consumer::takes).
//!
//! ```
//! # #[cfg(feature = "relay-sqs")]
//! # fn main() {
//! use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Routes};
//! use dynamodb_outbox::relay::{Relay, SqsTarget};
//! use dynamodb_outbox::{Processor, Source, Takes};
//!
//! # fn clients() -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
//! #     let config = aws_sdk_dynamodb::Config::builder()
//! #         .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest()).build();
//! #     let queues = aws_sdk_sqs::Config::builder()
//! #         .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest()).build();
//! #     (aws_sdk_dynamodb::Client::from_conf(config), aws_sdk_sqs::Client::from_conf(queues))
//! # }
//! let (dynamodb, sqs) = clients();
//! let queue = "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo";
//! let relay = Relay::new(
//!     "order-relay",
//!     vec![Takes::versions("InvoiceIssued", 1..=1)],
//!     SqsTarget::new(sqs, queue),
//! );
//! // The producer routes the events to the relay as to any consumer...
//! let routes = Routes::new().consumer(&relay);
//! assert_eq!(routes.consumers_of("InvoiceIssued"), ["order-relay"]);
//! // ...and the relay runs as any consumer: its progress and parked events in a table of its
//! // own (or the outbox table), on the outbox's stream (on Lambda: `lambda::OutboxConsumer`).
//! let store = DynamoConsumerStore::new(dynamodb, "relay-progress", "orders");
//! let processor = Processor::new(relay, store, Source::table("orders").unwrap());
//! # let _ = processor;
//! # }
//! # #[cfg(not(feature = "relay-sqs"))]
//! # fn main() {}
//! ```

use std::future::Future;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::consumer::{BoxError, Consumer, Effect, HandlerError, PoisonPolicy, Takes};
use crate::envelope::Envelope;

#[cfg(any(feature = "relay-sns", feature = "relay-sqs"))]
mod attributed;
#[cfg(any(
    feature = "relay-eventbridge",
    feature = "relay-sns",
    feature = "relay-sqs"
))]
mod batch;
#[cfg(feature = "relay-eventbridge")]
mod eventbridge;
#[cfg(feature = "relay-sns")]
mod sns;
#[cfg(feature = "relay-sqs")]
mod sqs;

#[cfg(feature = "relay-eventbridge")]
pub use eventbridge::EventBridgeTarget;
#[cfg(feature = "relay-sns")]
pub use sns::SnsTarget;
#[cfg(feature = "relay-sqs")]
pub use sqs::SqsTarget;

/// The size limit of SQS, SNS and EventBridge messages unless raised: 256 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;

/// One event as a relay hands it to a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The event's id: the broker's deduplication id where it has one; it is in `body` too.
    pub event_id: String,
    /// The event's ordering key: a FIFO target's message group.
    pub ordering_key: String,
    /// The event's type: EventBridge's detail type, the `event_type` attribute of SQS and SNS.
    pub event_type: String,
    /// The envelope as JSON.
    pub body: String,
}

/// What a broker takes in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries per call (10 for `PutEvents`, `SendMessageBatch`, `PublishBatch`).
    pub entries_per_call: usize,
    /// The largest message, as [`Target::size`] counts it.
    pub bytes_per_message: usize,
    /// The most bytes of messages in one call.
    pub bytes_per_call: usize,
}

/// What the broker did with one entry of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Accepted.
    Published,
    /// Not accepted now (throttled, an internal error, a call whose outcome is unknown): the
    /// event is reported for retry and its key's later events wait.
    Failed(String),
    /// Refused for what it is (its content): retrying cannot help, so the event is parked.
    Refused(String),
}

/// A broker a [`Relay`] publishes to. The engine implements it for EventBridge, SNS and SQS; a
/// target of your own implements it for another broker.
pub trait Target: Send + Sync {
    /// Where it publishes, for logs and a parked event's reason (`SQS queue <url>`).
    fn destination(&self) -> String;

    /// What the broker takes in one call.
    fn limits(&self) -> Limits;

    /// The size the broker counts for `message` (the body, and what else the broker counts).
    fn size(&self, message: &Message) -> usize;

    /// Publishes `messages` in one call: within [`Target::limits`], each of another ordering
    /// key. Returns what became of each message, in order, or the error of the whole call (no
    /// message is known to be published: every one is retried).
    fn send(
        &self,
        messages: &[Message],
    ) -> impl Future<Output = Result<Vec<Sent>, BoxError>> + Send;
}

/// A consumer that publishes the events routed to it to a [`Target`], in per-key order, at
/// least once (see the [module](self)).
#[derive(Debug, Clone)]
pub struct Relay<T> {
    name: String,
    takes: Vec<Takes>,
    target: T,
}

impl<T: Target> Relay<T> {
    /// A relay named `name` (its routes, its progress, its logs) publishing the events it
    /// `takes` to `target`. It publishes each event as it was written: upcasters in `takes`
    /// ([`Takes::upcast`]) only widen the versions it takes, they are not run, so every
    /// subscriber upcasts for itself.
    pub fn new(name: &str, takes: Vec<Takes>, target: T) -> Self {
        Self {
            name: name.to_owned(),
            takes: takes.into_iter().map(Takes::into_as_written).collect(),
            target,
        }
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.target
    }

    /// The message of an event and its size, or why it cannot be published (poison).
    fn message(&self, event: &Envelope<Value>) -> Result<(Message, usize), String> {
        let body = serde_json::to_string(event)
            .map_err(|e| format!("the event {} does not encode: {e}", event.event_id))?;
        let message = Message {
            event_id: event.event_id.clone(),
            ordering_key: event.ordering_key.clone(),
            event_type: event.event_type.clone(),
            body,
        };
        let size = self.target.size(&message);
        let limit = self.target.limits().bytes_per_message;
        if size > limit {
            return Err(format!(
                "the message is {size} bytes, over the {limit} bytes {} takes: too large to publish",
                self.target.destination()
            ));
        }
        Ok((message, size))
    }
}

impl<T: Target> Consumer for Relay<T> {
    type Payload = Value;

    fn name(&self) -> &str {
        &self.name
    }

    fn takes(&self) -> Vec<Takes> {
        self.takes.clone()
    }

    /// A relay parks what it cannot publish, so one event the broker will never take does not
    /// hold its key.
    fn on_poison(&self) -> PoisonPolicy {
        PoisonPolicy::Park
    }

    /// One event published by itself: what a relay does with events outside an outbox batch
    /// (a parked event's redrive, a Kinesis record). Outbox batches go in calls of several.
    async fn effect(&self, event: &Envelope<Value>) -> Result<Effect, HandlerError> {
        let (message, _) = self.message(event).map_err(HandlerError::poison)?;
        let sent = self
            .target
            .send(std::slice::from_ref(&message))
            .await
            .map_err(HandlerError::Transient)?;
        match sent.into_iter().next() {
            Some(Sent::Published) => Ok(Effect::new()),
            Some(Sent::Refused(why)) => Err(HandlerError::poison(why)),
            Some(Sent::Failed(why)) => Err(HandlerError::transient(why)),
            None => Err(HandlerError::transient(
                "the broker answered for no message",
            )),
        }
    }

    fn publisher(&self) -> Option<&dyn hook::Publish<Value>> {
        Some(self)
    }
}

/// The seam between the processor and a relay: what the processor's batch path for relays asks
/// of the consumer. Unnameable outside the crate: only [`Relay`] publishes.
pub(crate) mod hook {
    use super::*;

    /// What the processor publishes a batch through.
    pub trait Publish<P>: Send + Sync {
        /// Where it publishes.
        fn destination(&self) -> String;
        /// What one call takes.
        fn limits(&self) -> Limits;
        /// The message of an event and its size, or why it is poison.
        fn message(&self, event: &Envelope<P>) -> Result<(Message, usize), String>;
        /// One call.
        fn send<'a>(
            &'a self,
            messages: &'a [Message],
        ) -> BoxFuture<'a, Result<Vec<Sent>, BoxError>>;
    }

    impl<T: Target> Publish<Value> for Relay<T> {
        fn destination(&self) -> String {
            self.target.destination()
        }

        fn limits(&self) -> Limits {
            self.target.limits()
        }

        fn message(&self, event: &Envelope<Value>) -> Result<(Message, usize), String> {
            Relay::message(self, event)
        }

        fn send<'a>(
            &'a self,
            messages: &'a [Message],
        ) -> BoxFuture<'a, Result<Vec<Sent>, BoxError>> {
            Box::pin(self.target.send(messages))
        }
    }
}

/// The message attribute that carries the event's type on SQS and SNS (for filter policies).
pub const EVENT_TYPE_ATTRIBUTE: &str = "event_type";

/// A broker SDK client built from Lambda's environment, as [`crate::lambda::dynamodb_client`]
/// builds DynamoDB's: region, the role's credentials, `AWS_ENDPOINT_URL_<SERVICE>`, the
/// function's retries, timeouts and HTTPS client.
#[cfg(feature = "lambda")]
macro_rules! client_from_env {
    ($sdk:ident, $service:literal) => {{
        use aws_config::environment::EnvironmentVariableCredentialsProvider;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region(
                env("AWS_REGION")
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .map($sdk::config::Region::new),
            )
            .credentials_provider(EnvironmentVariableCredentialsProvider::new())
            .retry_config(crate::lambda::retry_config())
            .timeout_config(crate::lambda::timeout_config())
            .http_client(crate::lambda::https_client());
        if let Some(endpoint) = crate::lambda::endpoint_url($service) {
            config = config.endpoint_url(endpoint);
        }
        $sdk::Client::from_conf(config.build())
    }};
}
#[cfg(feature = "lambda")]
pub(crate) use client_from_env;
