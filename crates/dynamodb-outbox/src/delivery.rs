//! Reading an outbox item (a stream image or a stored item): the header the engine routes and
//! orders by, read in place, and the typed envelope, decoded once.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_dynamo::{AttributeValue, Item};

use crate::envelope::Envelope;
use crate::schema;
use crate::store::ItemKey;

/// What the engine needs of an outbox item before decoding its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The item's `pk`.
    pub pk: String,
    /// The item's `sk`.
    pub sk: String,
    /// The event id, when the item has one.
    pub event_id: Option<String>,
    /// The event type, when the item has one.
    pub event_type: Option<String>,
    /// The schema version, when the item has one.
    pub schema_version: Option<u32>,
    /// The ordering key, when the item has one.
    pub ordering_key: Option<String>,
    /// The event's sequence within its key, when the item has one.
    pub sequence: Option<u64>,
    /// For each consumer the event was routed to, the sequence it must have applied first.
    pub after: HashMap<String, u64>,
}

impl Header {
    /// Reads the header without decoding the rest.
    pub fn peek(item: &Item) -> Self {
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        let after = match item.get(schema::AFTER) {
            Some(AttributeValue::M(map)) => map
                .iter()
                .filter_map(|(consumer, v)| match v {
                    AttributeValue::N(n) => n.parse().ok().map(|n| (consumer.clone(), n)),
                    _ => None,
                })
                .collect(),
            _ => HashMap::new(),
        };
        Self {
            pk: text(schema::PK).unwrap_or_default(),
            sk: text(schema::SK).unwrap_or_default(),
            event_id: text(schema::EVENT_ID),
            event_type: text("event_type"),
            schema_version: number(schema::SCHEMA_VERSION).and_then(|v| u32::try_from(v).ok()),
            ordering_key: text("ordering_key"),
            sequence: number(schema::SEQUENCE),
            after,
        }
    }

    /// The event id, or the item key when even that is missing: what every report names.
    pub fn name(&self) -> String {
        self.event_id
            .clone()
            .unwrap_or_else(|| format!("item {}/{}", self.pk, self.sk))
    }

    /// The item's key.
    pub(crate) fn key(&self) -> ItemKey {
        ItemKey {
            pk: self.pk.clone(),
            sk: self.sk.clone(),
        }
    }
}

/// Decodes the envelope the writer stored, naming the event in the error.
pub fn decode<P: DeserializeOwned>(item: Item, header: &Header) -> Result<Envelope<P>, String> {
    serde_dynamo::from_item(item)
        .map_err(|e| format!("undecodable envelope {}: {e}", header.name()))
}
