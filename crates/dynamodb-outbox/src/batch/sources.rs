//! Sources without an outbox sequence (the article's patterns 2 and 3): events published to a
//! Kinesis stream, and the changes of an entity table (an SQS queue, in `sqs`, goes the same way). No outbox item, no counter: a consumer
//! applies each event once by its **event id** (a done record, or one of its own puts named as
//! the record, committed in the effect's transaction), in the order the source gives within an
//! ordering key: Kinesis orders the records of one partition key within a shard, a DynamoDB
//! stream the changes of one item.

use std::borrow::Cow;

use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::kinesis::KinesisEventRecord;
use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

use super::intake::{key_name, record_id};
use super::{Arrived, BatchOutcome, Outcome, Processor, Work};
use crate::consumer::{Consumer, Effect, HandlerError, PoisonPolicy, Takes};
use crate::delivery::Header;
use crate::envelope::{now_rfc3339, Envelope};
use crate::item::ParkedEvent;
use crate::schema;
use crate::source::SourceKind;
use crate::store::{CommitOnce, Committed, ConsumerStore, ItemKey, LastOut};
use crate::upcast::{self, taken};

/// Where an event without an outbox sequence sits: its ordering key (the batch keeps the
/// source's order within it; `None` for a poison event that carries none, which then waits for
/// nothing and holds nothing back), its id (its idempotency), the entity item it came from, for
/// an entity table's changes, and the FIFO message group it came in, for a FIFO queue's
/// messages.
pub(crate) struct Once {
    pub(crate) ordering_key: Option<String>,
    pub(crate) event_id: String,
    pub(crate) entity: Option<ItemKey>,
    pub(crate) group: Option<String>,
}

impl Once {
    /// What orders the event in the batch: its FIFO message group when it came in one (the
    /// queue's order is per group, whatever key the event names), else its ordering key.
    pub(crate) fn lane(&self) -> Option<&String> {
        self.group.as_ref().or(self.ordering_key.as_ref())
    }
}

/// What a publisher puts on a Kinesis stream for an event: `PutRecord` with this partition key
/// (the ordering key, so one key's events share a shard and keep their order) and this data
/// (the envelope as JSON), which [`Processor::process_kinesis`] reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisPut {
    /// The partition key: the envelope's ordering key.
    pub partition_key: String,
    /// The data: the envelope as JSON.
    pub data: Vec<u8>,
}

/// The Kinesis record of `envelope` (see [`KinesisPut`]).
///
/// ```
/// # use dynamodb_outbox::{kinesis_put, Envelope, Event};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)]
/// # struct Paid { account: String }
/// # impl Event for Paid {
/// #     const EVENT_TYPE: &'static str = "Paid";
/// #     const SCHEMA_VERSION: u32 = 1;
/// #     const AGGREGATE_TYPE: &'static str = "Account";
/// #     fn aggregate_id(&self) -> String { self.account.clone() }
/// # }
/// let put = kinesis_put(&Envelope::new(Paid { account: "a".into() })).unwrap();
/// assert_eq!(put.partition_key, "a");
/// // kinesis.put_record().stream_name(stream).partition_key(put.partition_key)
/// //     .data(Blob::new(put.data)).send().await?;
/// ```
pub fn kinesis_put<P: Serialize>(envelope: &Envelope<P>) -> Result<KinesisPut, String> {
    let data =
        serde_json::to_vec(envelope).map_err(|e| format!("the event does not encode: {e}"))?;
    Ok(KinesisPut {
        partition_key: envelope.ordering_key.clone(),
        data,
    })
}

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// A batch of Kinesis records as Lambda delivers them (the processor's source name is the
    /// stream's name), each record's data an [`Envelope`] as JSON ([`kinesis_put`]); return
    /// its [`BatchOutcome::kinesis_response`].
    ///
    /// Each event is applied once by its event id (see `StoreOps::commit_once`):
    /// a record published twice (a retried `PutRecord`) is a duplicate. Within an ordering key
    /// the records keep their stream order and a failure holds back the key's later records in
    /// the batch; Kinesis orders one partition key within a shard, so publish with the ordering
    /// key as partition key. The key's order is not checked across batches (no sequence): an
    /// event Lambda gave up on (retry cap, bisect) is not waited for.
    ///
    /// What is not an event never holds the shard. Records from another stream are refused
    /// (poison, reported: nothing from them is trusted). Data that names an event (a usable
    /// `event_id`) but is not one this consumer can apply (no ordering key, an envelope that
    /// does not decode) is poison: parked under [`PoisonPolicy::Park`], reported under
    /// [`PoisonPolicy::Wait`]. Data that names no event (not JSON, not an object, no usable
    /// `event_id`) is dropped: logged with its sequence number and why
    /// ([`crate::DROPPED_LOG_MESSAGE`]), counted in [`BatchOutcome::dropped`], never reported,
    /// since a retry brings the same bytes and there is nothing to park it by.
    pub async fn process_kinesis(&self, records: &[KinesisEventRecord]) -> BatchOutcome {
        let takes = self.consumer.takes();
        let incoming = records
            .iter()
            .map(|record| {
                (
                    record.kinesis.sequence_number.clone(),
                    self.classify_kinesis(record, &takes),
                )
            })
            .collect();
        self.process(incoming).await
    }

    fn classify_kinesis(
        &self,
        record: &KinesisEventRecord,
        takes: &[Takes],
    ) -> Work<'static, C::Payload> {
        let sequence = &record.kinesis.sequence_number;
        let source = record.event_source_arn.as_deref();
        if let Err(reason) = self.admit(SourceKind::KinesisStream, source) {
            return unreadable(format!("record {sequence}: {reason}"));
        }
        let json = match serde_json::from_slice::<serde_json::Value>(&record.kinesis.data) {
            Ok(json @ serde_json::Value::Object(_)) => json,
            Ok(_) => return Work::Drop("its data is JSON but not an object".to_owned()),
            Err(e) => return Work::Drop(format!("its data is not JSON: {e}")),
        };
        match serde_dynamo::to_item::<_, Item>(json) {
            Ok(item) => self.classify_once(item, takes),
            Err(e) => Work::Drop(format!("its data does not read as an item: {e}")),
        }
    }

    /// A batch of DynamoDB stream records of an entity table (the processor's source name is
    /// the table): the article's pattern 2, where the producer writes only its entity item and
    /// the item's creation is the event. `adapter` turns an item image into the event: `None`
    /// when the item is not an entity this consumer reads (on an item whose pending marker waits
    /// for this consumer, poison: the producer said it is this consumer's event), `Err` when it
    /// cannot be read
    /// (poison: the consumer is coupled to the entity's shape, so a renamed attribute lands
    /// here). Only INSERTs are events; records from another table's stream are poison.
    ///
    /// Each event is applied once by its event id (the adapter must derive it from the item,
    /// e.g. from its key, so a redelivery carries the same id). Order is the stream's, per item.
    /// When the item carries a pending marker ([`crate::pending_marker`]), the consumer then
    /// leaves its waiting set and the last one takes it out of the pending index; it never gets
    /// a TTL. Return its [`BatchOutcome::stream_response`].
    pub async fn process_changes<F>(&self, records: &[EventRecord], adapter: F) -> BatchOutcome
    where
        F: Fn(&Item) -> Option<Result<Envelope<C::Payload>, String>>,
        C::Payload: Serialize,
    {
        let read = records.iter().map(|r| (record_id(r), self.inserted(r)));
        self.process(self.entity_work(read, &adapter)).await
    }

    /// Entity items read from the table (the sweeper's redrive of what the stream dropped:
    /// [`crate::dynamodb::PendingEvents`] finds them by their pending marker), each named by its
    /// key: the same path as [`Processor::process_changes`].
    pub async fn process_entities<F>(&self, items: Vec<Item>, adapter: F) -> BatchOutcome
    where
        F: Fn(&Item) -> Option<Result<Envelope<C::Payload>, String>>,
        C::Payload: Serialize,
    {
        let read = items.iter().map(|item| (key_name(item), Ok(Some(item))));
        self.process(self.entity_work(read, &adapter)).await
    }

    /// The work of each entity item read, named: a stream record's new image, or an item read
    /// from the table (`Ok(None)`: a record that is no event, such as a MODIFY; `Err`: a record
    /// that cannot be read).
    fn entity_work<'i, F>(
        &self,
        read: impl Iterator<Item = (String, Result<Option<&'i Item>, String>)>,
        adapter: &F,
    ) -> Vec<(String, Work<'static, C::Payload>)>
    where
        F: Fn(&Item) -> Option<Result<Envelope<C::Payload>, String>>,
        C::Payload: Serialize,
    {
        let takes = self.consumer.takes();
        read.map(|(id, image)| {
            let work = match image {
                Err(reason) => unreadable(format!("record {id}: {reason}")),
                Ok(None) => Work::Ignore,
                Ok(Some(image)) => self.classify_entity(image, adapter, &takes),
            };
            (id, work)
        })
        .collect()
    }

    fn classify_entity<F>(
        &self,
        image: &Item,
        adapter: &F,
        takes: &[Takes],
    ) -> Work<'static, C::Payload>
    where
        F: Fn(&Item) -> Option<Result<Envelope<C::Payload>, String>>,
        C::Payload: Serialize,
    {
        let header = Header::peek(image);
        let entity = header.key();
        let envelope = match adapter(image) {
            None => match self.waits_for_me(image) {
                // Someone marked the item as an event for this consumer: not recognising it
                // would leave it pending forever, read by every sweep and never applied.
                Some(marker) => {
                    return unreadable(format!(
                        "entity {}/{}: {marker}, but the adapter does not read it as an event",
                        entity.pk, entity.sk
                    ))
                }
                None => return Work::Ignore,
            },
            Some(Err(reason)) => {
                return unreadable(format!("entity {}/{}: {reason}", entity.pk, entity.sk))
            }
            Some(Ok(envelope)) => envelope,
        };
        // The event as its decoder reads it: what a parked record keeps, and what a redrive
        // reads back.
        let item = match serde_dynamo::to_item::<_, Item>(&envelope) {
            Ok(item) => item,
            Err(e) => return unreadable(format!("entity {}/{}: {e}", entity.pk, entity.sk)),
        };
        let header = Header::peek(&item);
        let once = Once {
            ordering_key: Some(envelope.ordering_key.clone()),
            event_id: envelope.event_id.clone(),
            entity: Some(entity),
            group: None,
        };
        // The adapter built the payload the consumer handles: nothing to upcast, so only the
        // versions handled as they are are taken (a parked one is redriven as it is).
        let handled = takes
            .iter()
            .any(|t| t.handles(header.event_type.as_deref(), header.schema_version));
        if !handled {
            let what = format!(
                "{} {} v{}",
                envelope.event_id, envelope.event_type, envelope.schema_version
            );
            return Work::Skipped(what, once.entity);
        }
        let kept = (self.consumer.on_poison() == PoisonPolicy::Park).then_some(Cow::Owned(item));
        Work::Once(
            Box::new(Arrived {
                envelope,
                item: kept,
                alone: false,
            }),
            once,
        )
    }

    /// What of an entity item's pending marker ([`crate::pending_marker`]) makes it this
    /// consumer's event: it lists this consumer among those it waits for, or it sits in the
    /// pending index without saying for whom. `None` for an item without a marker, one waiting
    /// for other consumers only, and the engine's own outbox items (read by
    /// [`Processor::process_stream`], not as entities).
    fn waits_for_me(&self, image: &Item) -> Option<String> {
        if matches!(image.get(schema::ENTITY), Some(AttributeValue::S(e)) if e == schema::ENTITY_OUTBOX_EVENT)
        {
            return None;
        }
        let me = self.consumer.name();
        match image.get(schema::WAITING_CONSUMERS) {
            Some(AttributeValue::Ss(waiting)) if waiting.iter().any(|c| c == me) => {
                Some(format!("it carries a pending marker waiting for {me:?}"))
            }
            Some(AttributeValue::Ss(_)) => None,
            Some(_) => Some(format!(
                "its pending marker's {} is not a set of consumer names",
                schema::WAITING_CONSUMERS
            )),
            None => image.contains_key(schema::PENDING_PK).then(|| {
                format!(
                    "it is in the pending index ({}) without the consumers it waits for",
                    schema::PENDING_PK
                )
            }),
        }
    }

    /// Sorts the data of a Kinesis record or the envelope of an SQS message (a JSON object, as
    /// an item): an event when it names one by a usable event id, dropped when it does not.
    pub(super) fn classify_once(&self, item: Item, takes: &[Takes]) -> Work<'static, C::Payload> {
        let header = Header::peek(&item);
        let event_id = match &header.event_id {
            None => return Work::Drop("its data has no event_id string".to_owned()),
            Some(id) => match schema::unusable_event_id(self.consumer.name(), id) {
                Some(why) => return Work::Drop(why),
                None => id.clone(),
            },
        };
        if !taken(takes, &header) {
            let what = format!(
                "{} {} v{}",
                event_id,
                header.event_type.as_deref().unwrap_or("(no type)"),
                header
                    .schema_version
                    .map_or_else(|| "?".to_owned(), |v| v.to_string())
            );
            return Work::Skipped(what, None);
        }
        let kept =
            (self.consumer.on_poison() == PoisonPolicy::Park).then(|| Cow::Owned(item.clone()));
        let Some(ordering_key) = header.ordering_key.clone() else {
            let once = Once {
                ordering_key: None,
                event_id,
                entity: None,
                group: None,
            };
            let reason = format!("event {} has no ordering key", once.event_id);
            return Work::Unreadable(once, reason, kept);
        };
        let once = Once {
            ordering_key: Some(ordering_key),
            event_id,
            entity: None,
            group: None,
        };
        match upcast::decode::<C::Payload>(item, &header, takes) {
            Ok(envelope) => Work::Once(
                Box::new(Arrived {
                    envelope,
                    item: kept,
                    alone: false,
                }),
                once,
            ),
            Err(reason) => Work::Unreadable(once, reason, kept),
        }
    }

    pub(super) async fn apply_once(
        &self,
        id: &str,
        arrived: Arrived<'_, C::Payload>,
        once: Once,
    ) -> Outcome {
        let Arrived { envelope, item, .. } = arrived;
        let effect = match self.consumer.effect(&envelope).await {
            Ok(effect) => effect,
            Err(error @ HandlerError::Poison(_)) => {
                let outcome = self.poison_once(id, error.reason(), &once, item).await;
                return self.release(id, &once, outcome).await;
            }
            Err(error @ HandlerError::Transient(_)) => {
                tracing::warn!(
                    consumer = self.consumer.name(), record = %id, event_id = %once.event_id,
                    error = %error.reason(), "event not applied: reported for retry"
                );
                return Outcome::Failed;
            }
        };
        let outcome = match self.commit_once(id, &once, &effect).await {
            Outcome::Refused(reason) => self.poison_once(id, reason, &once, item).await,
            other => other,
        };
        self.release(id, &once, outcome).await
    }

    pub(super) async fn skip_once(&self, id: &str, what: &str, entity: Option<ItemKey>) -> Outcome {
        tracing::info!(consumer = self.consumer.name(), record = %id, event = %what, "event skipped: not taken by this consumer");
        let once = Once {
            ordering_key: None,
            event_id: what.to_owned(),
            entity,
            group: None,
        };
        self.release(id, &once, Outcome::Skipped).await
    }

    /// Once the event is done for this consumer (applied, a duplicate, or parked), the entity
    /// item it came from stops waiting for it.
    async fn release(&self, id: &str, once: &Once, outcome: Outcome) -> Outcome {
        let done = matches!(
            outcome,
            Outcome::Applied | Outcome::Duplicate | Outcome::Parked | Outcome::Skipped
        );
        let Some(entity) = once.entity.as_ref().filter(|_| done) else {
            return outcome;
        };
        match self
            .store
            .leave(self.consumer.name(), entity, LastOut::Keep)
            .await
        {
            Ok(()) => outcome,
            // The effect is in; a redelivery finds it a duplicate and releases the item then.
            Err(err) => {
                tracing::warn!(
                    consumer = self.consumer.name(), record = %id, event_id = %once.event_id,
                    error = %crate::store::chain(&err), "entity item not released: reported for retry"
                );
                Outcome::Failed
            }
        }
    }

    async fn commit_once(&self, id: &str, once: &Once, effect: &Effect) -> Outcome {
        let consumer = self.consumer.name();
        let commit = CommitOnce {
            consumer,
            event_id: &once.event_id,
            effect,
        };
        match self.store.commit_once(commit).await {
            Ok(Committed::Applied) => Outcome::Applied,
            Ok(Committed::Duplicate) => Outcome::Duplicate,
            Ok(Committed::Refused(reason)) => Outcome::Refused(reason),
            Err(crate::store::StoreError::Invalid(why)) => {
                Outcome::Refused(crate::store::chain(why.as_ref()))
            }
            Ok(Committed::Waiting { .. }) => Outcome::Failed,
            Err(err) => {
                tracing::warn!(
                    consumer, record = %id, event_id = %once.event_id, error = %crate::store::chain(&err),
                    "event not applied: reported for retry"
                );
                Outcome::Failed
            }
        }
    }

    /// A poison event without an outbox sequence: reported (its key waits in this batch), or
    /// parked with a done record (so redeliveries are duplicates) by policy.
    pub(super) async fn poison_once(
        &self,
        id: &str,
        reason: String,
        once: &Once,
        event: Option<Cow<'_, Item>>,
    ) -> Outcome {
        let consumer = self.consumer.name();
        let Some(event) = event.filter(|_| self.consumer.on_poison() == PoisonPolicy::Park) else {
            tracing::error!(consumer, record = %id, event_id = %once.event_id, %reason, "poison event: reported as a batch item failure");
            return Outcome::Poison;
        };
        let parked_at = now_rfc3339();
        let record = ParkedEvent {
            consumer,
            ordering_key: once.ordering_key.as_deref(),
            event_id: &once.event_id,
            reason: &reason,
            parked_at: &parked_at,
            source: once.entity.as_ref(),
            event: event.into_owned(),
        }
        .record();
        let effect = Effect::new().put(self.store.table(), record);
        match self.commit_once(id, once, &effect).await {
            Outcome::Applied => {
                tracing::error!(consumer, record = %id, event_id = %once.event_id, %reason, "poison event parked; its key goes on");
                Outcome::Parked
            }
            Outcome::Refused(_) => Outcome::Poison,
            other => other,
        }
    }
}

pub(super) fn unreadable<P>(reason: String) -> Work<'static, P> {
    Work::Poison {
        reason,
        at: None,
        event: None,
    }
}
