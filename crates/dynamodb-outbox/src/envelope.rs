//! The event as every consumer sees it: a self-describing envelope around a typed payload.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// A payload type that can travel in an [`Envelope`]: it names its event type, its schema version
/// and the aggregate it is about.
///
/// ```
/// use dynamodb_outbox::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct InvoiceIssued { invoice_id: String, account_id: String, amount_cents: i64 }
///
/// impl Event for InvoiceIssued {
///     const EVENT_TYPE: &'static str = "InvoiceIssued";
///     const SCHEMA_VERSION: u32 = 1;
///     const AGGREGATE_TYPE: &'static str = "Invoice";
///     fn aggregate_id(&self) -> String { self.invoice_id.clone() }
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned {
    /// The name consumers route and filter on.
    const EVENT_TYPE: &'static str;
    /// The payload's schema version; consumers declare the versions they read.
    const SCHEMA_VERSION: u32;
    /// The kind of aggregate the event is about.
    const AGGREGATE_TYPE: &'static str;
    /// The id of the aggregate the event is about: the default ordering key.
    fn aggregate_id(&self) -> String;
}

/// Tracing context of the request that produced an event, so a consumer's work can be linked to
/// the producer's trace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceContext {
    /// A W3C `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// An AWS X-Ray trace header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xray_trace_id: Option<String>,
}

/// An event with everything a consumer needs to act on it, modelled on Debezium's outbox event.
///
/// `event_id` names the event (logs, reports, the outbox item); `ordering_key` decides which
/// events are applied in write order (events with different keys are independent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope<P> {
    /// Unique id of this event.
    pub event_id: String,
    /// The payload's [`Event::EVENT_TYPE`].
    pub event_type: String,
    /// The payload's [`Event::SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The payload's [`Event::AGGREGATE_TYPE`].
    pub aggregate_type: String,
    /// The payload's [`Event::aggregate_id`].
    pub aggregate_id: String,
    /// Events with one ordering key reach each consumer in the order they were written.
    pub ordering_key: String,
    /// When the event was created (RFC 3339, UTC).
    pub occurred_at: String,
    /// The producer's trace, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
    /// The event itself.
    pub payload: P,
}

impl<P: Event> Envelope<P> {
    /// A new envelope with a fresh id, the current time, and the aggregate id as ordering key.
    pub fn new(payload: P) -> Self {
        let aggregate_id = payload.aggregate_id();
        Self {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: P::EVENT_TYPE.to_owned(),
            schema_version: P::SCHEMA_VERSION,
            aggregate_type: P::AGGREGATE_TYPE.to_owned(),
            ordering_key: aggregate_id.clone(),
            aggregate_id,
            occurred_at: now_rfc3339(),
            trace_context: None,
            payload,
        }
    }

    /// Orders this event with every other event of `key` instead of its aggregate's.
    pub fn with_ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = key.into();
        self
    }

    /// Carries the producer's trace context.
    pub fn with_trace(mut self, trace: Option<TraceContext>) -> Self {
        self.trace_context = trace;
        self
    }
}

/// RFC 3339 in UTC with exactly six fractional digits: fixed width, so the text sorts in time
/// order where it is part of a key (the pending index sorts on it).
pub(crate) const OCCURRED_AT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(OCCURRED_AT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_owned())
}
