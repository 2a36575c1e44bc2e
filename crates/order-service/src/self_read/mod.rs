//! Pattern 3, self-read: the order API writes nothing itself. It validates the order, publishes
//! `OrderPlaced` to a Kinesis data stream ([`publish`]) and answers `202 Accepted`; two consumers
//! read the stream through their own mappings: order-history ([`history`]) writes the order
//! item, so `GET /orders/{id}` finds it once it caught up, and rewards applies the points (the
//! same `RewardsConsumer` as the other patterns).
//!
//! The event's payload is the whole [`Order`] (line items included): it is the only record of
//! the order until order-history writes it. Its fields are a superset of `OrderPlaced` v1's
//! (`total_cents`), so it is published as version 1 ([`SCHEMA_VERSION_V1`]): order-history reads
//! it as the order it is, and rewards, which handles [`OrderPlaced`](crate::domain::OrderPlaced)
//! v2, upcasts it as it does every v1 event.
//!
//! **Event ids.** A publish whose response was lost is retried (by the SDK, or by the client
//! with the same Idempotency-Key), and the stream then holds the event twice. Both consumers
//! apply an event once by its id, so the id must be the same for every publish of one order:
//! [`event_id`] is a UUID v5 of the order id and the request's fingerprint. A keyed retry of
//! the same request derives the same order id, so the same event id: a duplicate. The same key
//! with *another* request derives the same order id but another event id: both consumers find
//! their per-order record taken (the order item, the order's reward record) and park the event
//! as poison, visible to an operator, instead of applying a second order under one id.

pub mod api;
pub mod history;
#[cfg(feature = "kinesis")]
pub mod kinesis;
pub mod publish;

use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::{Consumer, Envelope, Processor, Source, SourceKind, TraceContext};
use service_runtime::config::{self, ConfigError};
use uuid::Uuid;

use crate::domain::events::{AGGREGATE_ORDER, ORDER_PLACED, SCHEMA_VERSION_V1};
use crate::domain::Order;

/// Namespace of the event ids of pattern 3 (UUID v5).
const SELF_READ_EVENT_NS: Uuid = Uuid::from_u128(0x6f75_7462_6f78_4f72_8465_7273_0000_0003);

/// `consumer` reading the Kinesis stream `stream`, its done records and parked events in its own
/// table `table`: how both consumers of the order events run.
pub fn stream_processor<C: Consumer>(
    consumer: C,
    client: Client,
    table: &str,
    stream: Source,
) -> Processor<C, DynamoConsumerStore> {
    let store = DynamoConsumerStore::new(client, table, stream.name());
    Processor::new(consumer, store, stream)
}

/// [`stream_processor`] from a function's settings, read at start-up: the stream in
/// [`config::ORDER_EVENTS_STREAM`] (its name or its ARN), [`config::CONSUMER_CONCURRENCY`].
pub fn stream_processor_from_env<C: Consumer>(
    consumer: C,
    client: Client,
    table: &str,
) -> Result<Processor<C, DynamoConsumerStore>, ConfigError> {
    let stream = config::source(config::ORDER_EVENTS_STREAM, SourceKind::KinesisStream)?;
    let processor = stream_processor(consumer, client, table, stream);
    Ok(processor.concurrency(config::CONSUMER_CONCURRENCY.read()?))
}

/// The id of the event announcing `order`: the same for every publish of the same request.
pub fn event_id(order: &Order) -> String {
    let name = format!("{}\u{0}{}", order.order_id, order.request_hash);
    Uuid::new_v5(&SELF_READ_EVENT_NS, name.as_bytes()).to_string()
}

/// `OrderPlaced` as pattern 3 publishes it: the whole order as payload, ordered by customer (one
/// customer's orders keep their order on one shard), with an id derived from the order.
pub fn order_placed(order: &Order, trace: Option<TraceContext>) -> Envelope<Order> {
    Envelope {
        event_id: event_id(order),
        event_type: ORDER_PLACED.to_owned(),
        schema_version: SCHEMA_VERSION_V1,
        aggregate_type: AGGREGATE_ORDER.to_owned(),
        aggregate_id: order.order_id.clone(),
        ordering_key: order.customer_id.clone(),
        occurred_at: order.created_at.clone(),
        trace_context: trace,
        payload: order.clone(),
    }
}
