//! Intake: each record classified into the work it asks for, before any database work.

use std::borrow::Cow;

use aws_lambda_events::dynamodb::EventRecord;
use serde_dynamo::{AttributeValue, Item};

use super::{BatchOutcome, Once, Processor};
use crate::consumer::{Consumer, PoisonPolicy, Takes};
use crate::delivery::Header;
use crate::envelope::Envelope;
use crate::schema;
use crate::source::SourceKind;
use crate::store::{ConsumerStore, ItemKey, Step};
use crate::upcast::{self, taken};

/// One record, classified before any database work: what it asks for.
pub(super) enum Work<'r, P> {
    Ignore,
    Apply(Box<Arrived<'r, P>>, Step, ItemKey),
    Skip(Step, ItemKey, String),
    Poison {
        reason: String,
        at: Option<(Step, ItemKey)>,
        /// The event as it arrived, kept when the consumer parks poison.
        event: Option<Cow<'r, Item>>,
    },
    /// An event without an outbox sequence: idempotent by its id, ordered by its source.
    Once(Box<Arrived<'r, P>>, Once),
    /// An event without an outbox sequence whose envelope does not decode (poison), with the
    /// event as it arrived when the consumer parks poison.
    Unreadable(Once, String, Option<Cow<'r, Item>>),
    /// An event without an outbox sequence that this consumer does not take (with the entity
    /// item it came from, which stops waiting for this consumer).
    Skipped(String, Option<ItemKey>),
    /// A record that is not an event and names none, with why: logged, counted, not reported.
    Drop(String),
}

/// A decoded event, with the item it came from when the consumer parks poison (a parked record
/// carries the event, so a redrive can apply it once the outbox item has expired).
///
/// The item is borrowed from the batch when the batch holds it (a stream record's image): a
/// copy for every event cost about as much CPU as decoding it (perf, the consumer's bench), for
/// the rare event that parks.
pub(super) struct Arrived<'r, P> {
    pub(super) envelope: Envelope<P>,
    pub(super) item: Option<Cow<'r, Item>>,
    /// The outbox item was written waiting for this consumer alone: its commit can leave it in
    /// the same transaction.
    pub(super) alone: bool,
}

impl<P> std::ops::Deref for Arrived<'_, P> {
    type Target = Envelope<P>;

    fn deref(&self) -> &Envelope<P> {
        &self.envelope
    }
}

impl<P> Work<'_, P> {
    /// The event's place in its key's order and its outbox item, when it has one.
    pub(super) fn place(&self) -> Option<(&Step, &ItemKey)> {
        match self {
            Work::Apply(_, step, key)
            | Work::Skip(step, key, _)
            | Work::Poison {
                at: Some((step, key)),
                ..
            } => Some((step, key)),
            _ => None,
        }
    }
}

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// A batch of DynamoDB stream records as Lambda delivers them.
    pub async fn process_stream(&self, records: &[EventRecord]) -> BatchOutcome {
        let takes = self.consumer.takes();
        let incoming: Vec<(String, Work<'_, C::Payload>)> = records
            .iter()
            .map(|record| {
                (
                    record_id(record),
                    self.classify_stream_record(record, &takes),
                )
            })
            .collect();
        self.process(incoming).await
    }

    /// Outbox items read from the table (the sweeper's redrive), each named by its key.
    pub async fn process_items(&self, items: Vec<Item>) -> BatchOutcome {
        let takes = self.consumer.takes();
        let incoming = items
            .into_iter()
            .map(|item| {
                (
                    key_name(&item),
                    self.classify_item(Cow::Owned(item), &takes),
                )
            })
            .collect();
        self.process(incoming).await
    }

    fn classify_stream_record<'r>(
        &self,
        record: &'r EventRecord,
        takes: &[Takes],
    ) -> Work<'r, C::Payload> {
        match self.inserted(record) {
            Err(reason) => Work::Poison {
                reason,
                at: None,
                event: None,
            },
            Ok(None) => Work::Ignore,
            Ok(Some(image)) => self.classify_item(Cow::Borrowed(image), takes),
        }
    }

    /// The item a table stream's record inserted: `None` for another change (only INSERTs are
    /// events), `Err` for a record from a stream this processor does not read.
    pub(super) fn inserted<'r>(&self, record: &'r EventRecord) -> Result<Option<&'r Item>, String> {
        self.admit(SourceKind::Table, record.event_source_arn.as_deref())?;
        Ok((record.event_name == "INSERT").then_some(&record.change.new_image))
    }

    /// An outbox item, borrowed or owned: decoding takes a copy of a borrowed one, and a copy
    /// of an owned one is kept when the consumer parks poison.
    pub(super) fn classify_item<'r>(
        &self,
        item: Cow<'r, Item>,
        takes: &[Takes],
    ) -> Work<'r, C::Payload> {
        let is_outbox = matches!(
            item.get(schema::ENTITY),
            Some(AttributeValue::S(e)) if e == schema::ENTITY_OUTBOX_EVENT
        );
        if !is_outbox {
            return Work::Ignore;
        }
        let header = Header::peek(&item);
        let me = self.consumer.name();
        let Some(&after) = header.after.get(me) else {
            // Routed to other consumers only (or unreadable routing): not this consumer's.
            return if header.after.is_empty() {
                Work::Poison {
                    reason: format!("outbox event {} carries no routing", header.name()),
                    at: None,
                    event: None,
                }
            } else {
                Work::Ignore
            };
        };
        let (Some(ordering_key), Some(sequence)) = (header.ordering_key.clone(), header.sequence)
        else {
            return Work::Poison {
                reason: format!(
                    "outbox event {} has no ordering key or sequence",
                    header.name()
                ),
                at: None,
                event: None,
            };
        };
        let step = Step {
            ordering_key,
            sequence,
            after,
        };
        let key = header.key();
        if !taken(takes, &header) {
            let what = format!(
                "{} v{}",
                header.event_type.as_deref().unwrap_or("(no type)"),
                header
                    .schema_version
                    .map_or_else(|| "?".to_owned(), |v| v.to_string())
            );
            return Work::Skip(step, key, what);
        }
        let park = self.consumer.on_poison() == PoisonPolicy::Park;
        let (decoded, kept) = match item {
            Cow::Borrowed(image) => (image.clone(), park.then_some(Cow::Borrowed(image))),
            Cow::Owned(item) if park => (item.clone(), Some(Cow::Owned(item))),
            Cow::Owned(item) => (item, None),
        };
        let alone = header.after.len() == 1;
        match upcast::decode::<C::Payload>(decoded, &header, takes) {
            Ok(envelope) => Work::Apply(
                Box::new(Arrived {
                    envelope,
                    item: kept,
                    alone,
                }),
                step,
                key,
            ),
            Err(reason) => Work::Poison {
                reason,
                at: Some((step, key)),
                event: kept,
            },
        }
    }
}

/// What a table stream's record is named by in the batch's outcome: its sequence number.
pub(super) fn record_id(record: &EventRecord) -> String {
    record
        .change
        .sequence_number
        .clone()
        .unwrap_or_else(|| record.event_id.clone())
}

/// What an item read from a table is named by in the batch's outcome: its key.
pub(super) fn key_name(item: &Item) -> String {
    let header = Header::peek(item);
    format!("{}/{}", header.pk, header.sk)
}
