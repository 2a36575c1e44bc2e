//! The transactional outbox on Amazon DynamoDB, for services on AWS Lambda.
//!
//! A producer writes its own items and its events in **one** `TransactWriteItems`
//! ([`dynamodb::Outbox`]): either both are stored or neither. DynamoDB Streams delivers each
//! outbox item at least once; a [`Consumer`] turns an event into its effect, and the
//! [`Processor`] commits that effect together with the consumer's progress, so it happens exactly
//! once, in the order the events of one ordering key were written, for every consumer the event
//! was routed to. Once every consumer is done, the outbox item gets a TTL and DynamoDB deletes it;
//! nothing unprocessed ever expires.
//!
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
//! - [`ConsumerStore`]: where progress lives; [`dynamodb::DynamoConsumerStore`] and
//!   [`memory::MemoryStore`] implement it.
//! - [`Processor::process_kinesis`] and [`Processor::process_changes`]: the same consumers fed
//!   by sources without an outbox (a Kinesis stream, an entity table's changes), applied once by
//!   event id ([`ConsumerStore::commit_once`]).
//! - [`Processor::redrive_parked`]: parked events applied after a fix.
//! - [`schema`]: every key shape and attribute name the engine writes.
//! - `lambda` (feature `lambda`): the Lambda handlers of a consumer, the report of its batches
//!   (logs, trace links, metrics) and the sweeper function.

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
pub mod schema;
mod source;
mod store;

pub use batch::{
    kinesis_put, AppliedEvent, BatchOutcome, KinesisPut, Processor, SettingError,
    DEFAULT_CONCURRENCY, DEFAULT_EVENTS_PER_TRANSACTION, DROPPED_LOG_MESSAGE,
    MAX_RETENTION_SECONDS, PARKED_LOG_MESSAGE,
};
pub use consumer::{Consumer, Effect, HandlerError, PoisonPolicy, Takes, Write};
pub use delivery::Header;
pub use envelope::{Envelope, Event, TraceContext};
pub use item::{outbox_item, pending_marker};
pub use source::{Home, Source, SourceError, SourceKind};
pub use store::{Committed, ConsumerStore, Hooked, ItemKey, Parked, Step, StoreError, StoreHooks};
