use serde::{Deserialize, Serialize};

use super::{Order, RewardError, Timestamp};

pub const ORDER_PLACED: &str = "OrderPlaced";
pub const AGGREGATE_ORDER: &str = "Order";
/// The envelope version this code writes and understands.
pub const SCHEMA_VERSION: u32 = 1;

/// A self-describing outbox event, modelled on Debezium's outbox event router: the consumer needs
/// nothing but this to act, and `event_id` is what it deduplicates on.
///
/// The same type is written by the order-writer (flattened into the outbox item) and read back by
/// the stream consumer from the stream record's new image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventEnvelope {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub aggregate_type: String,
    /// Ordering key: events of one aggregate are applied in the order they were written.
    pub aggregate_id: String,
    pub occurred_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
    pub payload: OrderPlaced,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub total_cents: i64,
    pub points: i64,
}

/// Tracing context of the request that produced the event, so the consumer's work joins its trace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xray_trace_id: Option<String>,
}

impl TraceContext {
    /// `None` when there is nothing to carry, so events without tracing stay small.
    pub fn new(traceparent: Option<String>, xray_trace_id: Option<String>) -> Option<Self> {
        (traceparent.is_some() || xray_trace_id.is_some()).then_some(Self {
            traceparent,
            xray_trace_id,
        })
    }
}

/// Just the fields needed to decide whether an envelope is one this code may decode.
#[derive(Debug)]
pub struct EnvelopeHeader {
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub schema_version: Option<u32>,
}

impl EnvelopeHeader {
    /// The header of a stored or streamed outbox item, read without decoding the rest.
    pub fn peek(item: &serde_dynamo::Item) -> Self {
        use serde_dynamo::AttributeValue;
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        Self {
            event_id: text("event_id"),
            event_type: text("event_type"),
            schema_version: match item.get("schema_version") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            },
        }
    }

    /// Refuses versions and types this code does not know, whatever the payload looks like.
    pub fn check(&self) -> Result<(), RewardError> {
        match (self.event_type.as_deref(), self.schema_version) {
            (Some(ORDER_PLACED), Some(SCHEMA_VERSION)) => Ok(()),
            (Some(ORDER_PLACED), v) => Err(RewardError::Poison(format!(
                "unknown schema version {v:?} (this consumer reads version {SCHEMA_VERSION})"
            ))),
            (t, _) => Err(RewardError::Poison(format!("unknown event type {t:?}"))),
        }
    }
}

impl EventEnvelope {
    pub fn order_placed(order: &Order, now: Timestamp, trace: Option<TraceContext>) -> Self {
        Self {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: ORDER_PLACED.to_owned(),
            schema_version: SCHEMA_VERSION,
            aggregate_type: AGGREGATE_ORDER.to_owned(),
            aggregate_id: order.order_id.clone(),
            occurred_at: now.to_string(),
            trace_context: trace,
            payload: OrderPlaced {
                order_id: order.order_id.clone(),
                customer_id: order.customer_id.clone(),
                currency: order.currency.clone(),
                total_cents: order.total_cents,
                points: order.points,
            },
        }
    }
}
