#![doc = include_str!("../README.md")]
//! # Ordering
//!
//! DynamoDB Streams orders the records of one *item*, nothing more: records of different items
//! may come in another order, on other shards, to parallel invocations. So the engine does not
//! rely on the stream for order. Each ordering key has a sequence counter, advanced in the
//! producer's transaction; each event records, per consumer, the sequence that consumer must have
//! applied first; and the consumer's progress on the key moves only from that predecessor to the
//! event, in the same transaction as the effect. An event that arrives early waits (it is reported
//! for retry); one that arrives again is a duplicate. This holds across shards, retries, the retry
//! cap and the sweeper's redrive. The cost: the producer reads the key's counter (one strongly
//! consistent read) and writes it (one more item in its transaction); the consumer's progress item
//! is its idempotency record, so that costs nothing extra.
//!
//! # Layout
//!
//! - [`Envelope`] and [`Event`]: the event as consumers see it.
//! - [`dynamodb::Outbox`]: the producer's side, joining the caller's transaction.
//! - [`Consumer`], [`Effect`]: the consumer's side; [`Processor`] runs a consumer over a batch.
//! - [`Takes::upcast`]: older schema versions of an event brought up to the one a consumer
//!   handles.
//! - [`ConsumerStore`]: where progress lives; [`dynamodb::DynamoConsumerStore`] and
//!   [`memory::MemoryStore`] implement it.
//! - [`Processor::process_kinesis`] and [`Processor::process_changes`]: the same consumers fed
//!   by sources without an outbox (a Kinesis stream, an entity table's changes), applied once by
//!   event id.
//! - [`Processor::process_sqs`]: the inbox, the same consumers fed by an SQS queue (the envelope
//!   sent directly, through an SNS topic or an EventBridge rule), applied once by event id.
//! - [`Processor::redrive_parked`]: parked events applied after a fix.
//! - [`table`]: the names an application's items share with the engine; the `testing` feature
//!   adds every key shape and attribute name the engine writes, and an outbox item built by hand.
//! - `lambda` (feature `lambda`): the Lambda handlers of a consumer, the report of its batches
//!   (logs, trace links, metrics) and the sweeper function.
//! - `relay` (features `relay-eventbridge`, `relay-sns`, `relay-sqs`): consumers that publish
//!   the outbox to a broker, in per-key order, at least once.

#![warn(missing_docs)]

mod batch;
mod consumer;
mod delivery;
pub mod dynamodb;
mod envelope;
mod item;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod memory;
#[cfg(feature = "relay")]
pub mod relay;
mod schema;

/// The names an application's own items share with the engine's: the table's key attributes,
/// the entity attribute, and what says whether an outbox item or an entity's pending marker
/// still waits for a consumer. The engine's other names are its own (the `testing` feature
/// shows them all, for tests that inspect a table).
pub mod table {
    pub use crate::schema::{
        event_sk, key_pk, ENTITY, PK, SK, STATUS, STATUS_PENDING, WAITING_CONSUMERS,
    };
}

mod source;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod upcast;

pub use batch::{
    kinesis_put, AppliedEvent, BatchOutcome, KinesisPut, Processor, SettingError,
    DEFAULT_CONCURRENCY, DEFAULT_EVENTS_PER_TRANSACTION, DROPPED_LOG_MESSAGE,
    MAX_RETENTION_SECONDS, PARKED_LOG_MESSAGE,
};
pub use consumer::{BoxError, Consumer, Counter, Effect, HandlerError, PoisonPolicy, Takes};
pub use envelope::{Envelope, Event, TraceContext};
pub use item::pending_marker;
pub use source::{Home, Source, SourceError, SourceKind};
pub use store::{ConsumerStore, ItemKey, StoreError};
