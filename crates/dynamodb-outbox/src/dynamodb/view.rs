//! Read-only views for an operator's tools: an outbox event with its routing and waiting state,
//! the whole pending index, and a consumer's parked events. Nothing here writes, so a tool can
//! show a deployed outbox without any risk to it.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use serde_dynamo::{AttributeValue, Item};

use super::{
    classify, key_events, parked_records, pending_shards, query_up_to, text, DynamoConsumerStore,
    SdkItem,
};
use crate::delivery::Header;
use crate::item::read_parked;
use crate::schema;
use crate::store::{ItemKey, Parked, StoreError, StoreOps};

/// An outbox event as the outbox table keeps it, read for people.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The outbox item itself: the envelope's fields at its top level, and the engine's state.
    pub item: Item,
    /// Its key in the outbox table.
    pub key: ItemKey,
    /// The envelope's event id.
    pub event_id: Option<String>,
    /// The envelope's ordering key.
    pub ordering_key: Option<String>,
    /// Its position among the events of its ordering key.
    pub sequence: Option<u64>,
    /// When it occurred (RFC 3339).
    pub occurred_at: Option<String>,
    /// The consumers it was routed to.
    pub routed: BTreeSet<String>,
    /// The consumers that have yet to process it (the others are done, or parked it).
    pub waiting: BTreeSet<String>,
    /// Whether it is still pending: a consumer waits, or the last one's mark was cut short.
    pub pending: bool,
}

impl StoredEvent {
    /// Reads an outbox item.
    pub fn from_item(item: Item) -> Self {
        let header = Header::peek(&item);
        let waiting = match item.get(schema::WAITING_CONSUMERS) {
            Some(AttributeValue::Ss(set)) => set.iter().cloned().collect(),
            _ => BTreeSet::new(),
        };
        let pending = matches!(item.get(schema::STATUS),
            Some(AttributeValue::S(s)) if s == schema::STATUS_PENDING);
        let occurred_at = match item.get("occurred_at") {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        Self {
            key: header.key(),
            event_id: header.event_id,
            ordering_key: header.ordering_key,
            sequence: header.sequence,
            occurred_at,
            routed: header.after.into_keys().collect(),
            waiting,
            pending,
            item,
        }
    }

    /// Whether `consumer` has yet to process it: it waits for it, or it is pending with no
    /// consumer left (the last mark was cut short, and whichever consumer finds it finishes it).
    pub fn waits_for(&self, consumer: &str) -> bool {
        self.waiting.contains(consumer) || (self.pending && self.waiting.is_empty())
    }
}

/// A consumer's parked event, read for people.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedRecord {
    /// The consumer that parked it.
    pub consumer: String,
    /// The parked record's key in the consumer's table.
    pub key: ItemKey,
    /// The event id of the event parked.
    pub event_id: Option<String>,
    /// Its ordering key.
    pub ordering_key: Option<String>,
    /// Its sequence within its ordering key, for outbox events.
    pub sequence: Option<u64>,
    /// Why it was parked, or why its last redrive failed.
    pub reason: String,
    /// How many times it proved poison.
    pub attempts: u32,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
    /// The event, as the consumer's decoder reads it.
    pub event: Item,
}

impl ParkedRecord {
    fn new(consumer: &str, parked: Parked) -> Self {
        let header = Header::peek(&parked.event);
        Self {
            consumer: consumer.to_owned(),
            key: parked.record,
            event_id: header.event_id,
            ordering_key: header.ordering_key,
            sequence: header.sequence,
            reason: parked.reason,
            attempts: parked.attempts,
            parked_at: parked.parked_at,
            event: parked.event,
        }
    }
}

/// Reads an outbox table and its consumers' parked events, for operators.
#[derive(Debug, Clone)]
pub struct OutboxView {
    client: Client,
    table: String,
}

impl OutboxView {
    /// A view of the outbox in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The events of `ordering_key` still in the table (processed ones expire), lowest sequence
    /// first, at most `limit`.
    pub async fn events_of_key(
        &self,
        ordering_key: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = key_events(&self.client, &self.table, ordering_key, u64::MAX);
        query_up_to(query, limit, |item| {
            Some(StoredEvent::from_item(item.into()))
        })
        .await
    }

    /// The outbox event whose event id is `event_id`, if the table still holds it. The table is
    /// keyed by ordering key, not by event id: this scans it, so it costs a read of the table.
    pub async fn event_by_id(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#entity = :outbox AND #id = :id")
                .expression_attribute_names("#entity", schema::ENTITY)
                .expression_attribute_names("#id", schema::EVENT_ID)
                .expression_attribute_values(":outbox", text(schema::ENTITY_OUTBOX_EVENT))
                .expression_attribute_values(":id", text(event_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            if let Some(item) = out.items.unwrap_or_default().into_iter().next() {
                return Ok(Some(StoredEvent::from_item(item.into())));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(None);
            }
        }
    }

    /// Every pending event in the pending index, whichever consumer it waits for: the oldest
    /// `per_shard` of each shard.
    pub async fn pending(&self, per_shard: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let read = |item: SdkItem| Some(StoredEvent::from_item(item.into()));
        let (client, table) = (&self.client, &self.table);
        pending_shards(client, table, per_shard, "#ppk = :ppk", |q| q, read).await
    }

    /// `consumer`'s parked events in its own table `consumer_table`, oldest first, at most
    /// `limit`: what its next redrive takes, in that order.
    pub async fn parked(
        &self,
        consumer_table: &str,
        consumer: &str,
        limit: usize,
    ) -> Result<Vec<ParkedRecord>, StoreError> {
        let store = DynamoConsumerStore::new(self.client.clone(), consumer_table, &self.table);
        let parked = store.parked(consumer, limit).await?;
        Ok(parked
            .into_iter()
            .map(|p| ParkedRecord::new(consumer, p))
            .collect())
    }

    /// `consumer`'s parked record of the event `event_id`, if it parked it.
    pub async fn parked_event(
        &self,
        consumer_table: &str,
        consumer: &str,
        event_id: &str,
    ) -> Result<Option<ParkedRecord>, StoreError> {
        let query = parked_records(&self.client, consumer_table, consumer)
            .filter_expression("#event.#id = :id")
            .expression_attribute_names("#event", schema::PARKED_EVENT)
            .expression_attribute_names("#id", schema::EVENT_ID)
            .expression_attribute_values(":id", text(event_id));
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            let found = out.items.unwrap_or_default().into_iter();
            if let Some(parked) = found.filter_map(|i| read_parked(i.into())).next() {
                return Ok(Some(ParkedRecord::new(consumer, parked)));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(None);
            }
        }
    }
}
