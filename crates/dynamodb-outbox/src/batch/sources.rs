//! Sources without an outbox sequence (the article's patterns 2 and 3): events published to a
//! Kinesis stream, and the changes of an entity table. No outbox item, no counter: a consumer
//! applies each event once by its **event id** (a done record, or one of its own puts named as
//! the record, committed in the effect's transaction), in the order the source gives within an
//! ordering key: Kinesis orders the records of one partition key within a shard, a DynamoDB
//! stream the changes of one item.

use aws_lambda_events::kinesis::KinesisEventRecord;
use serde::Serialize;
use serde_dynamo::Item;

use super::{Arrived, BatchOutcome, Outcome, Processor, Work};
use crate::consumer::{Consumer, Effect, HandlerError, PoisonPolicy, Takes};
use crate::delivery::{self, Header};
use crate::envelope::{now_rfc3339, Envelope};
use crate::item::ParkedEvent;
use crate::store::{Committed, ConsumerStore, ItemKey};

/// Where an event without an outbox sequence sits: its ordering key (the batch keeps the
/// source's order within it), its id (its idempotency), and the entity item it came from, for
/// an entity table's changes.
pub(crate) struct Once {
    pub(crate) ordering_key: String,
    pub(crate) event_id: String,
    pub(crate) entity: Option<ItemKey>,
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

/// The stream a Kinesis stream ARN names:
/// `arn:<partition>:kinesis:<region>:<account>:stream/<name>`.
pub fn kinesis_stream(arn: &str) -> Option<&str> {
    let mut fields = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("kinesis"), Some(_), Some(_)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    let name = fields.next()?.strip_prefix("stream/")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// A batch of Kinesis records as Lambda delivers them (the processor's source name is the
    /// stream's name), each record's data an [`Envelope`] as JSON ([`kinesis_put`]); return
    /// its [`BatchOutcome::kinesis_response`].
    ///
    /// Each event is applied once by its event id (see [`crate::ConsumerStore::commit_once`]):
    /// a record published twice (a retried `PutRecord`) is a duplicate. Within an ordering key
    /// the records keep their stream order and a failure holds back the key's later records in
    /// the batch; Kinesis orders one partition key within a shard, so publish with the ordering
    /// key as partition key. Records from another stream, and data that is not an envelope,
    /// are poison, named by sequence number; the key's order is not checked across batches (no
    /// sequence): an event Lambda gave up on (retry cap, bisect) is not waited for.
    pub async fn process_kinesis(&self, records: &[KinesisEventRecord]) -> BatchOutcome {
        let takes = self.consumer.takes();
        let incoming = records
            .iter()
            .map(|record| {
                (
                    record.kinesis.sequence_number.clone(),
                    self.sort_kinesis(record, &takes),
                )
            })
            .collect();
        self.process(incoming).await
    }

    fn sort_kinesis(&self, record: &KinesisEventRecord, takes: &[Takes]) -> Work<C::Payload> {
        let sequence = &record.kinesis.sequence_number;
        let source = record.event_source_arn.as_deref().unwrap_or_default();
        if kinesis_stream(source) != Some(self.outbox_table.as_str()) {
            return unreadable(format!(
                "record {sequence} from {source:?}, not from the Kinesis stream {:?}",
                self.outbox_table
            ));
        }
        let item = serde_json::from_slice::<serde_json::Value>(&record.kinesis.data)
            .map_err(|e| e.to_string())
            .and_then(|json| serde_dynamo::to_item::<_, Item>(json).map_err(|e| e.to_string()));
        match item {
            Ok(item) => self.sort_once(item, None, takes),
            Err(e) => unreadable(format!("record {sequence}: its data is not an event: {e}")),
        }
    }

    /// Sorts an envelope (as an item) from a source without an outbox sequence.
    fn sort_once(&self, item: Item, entity: Option<ItemKey>, takes: &[Takes]) -> Work<C::Payload> {
        let header = Header::peek(&item);
        let (Some(event_id), Some(ordering_key)) =
            (header.event_id.clone(), header.ordering_key.clone())
        else {
            return unreadable(format!(
                "event {} has no event id or ordering key",
                header.name()
            ));
        };
        if !super::taken(takes, &header) {
            return Work::Skipped(format!(
                "{} {} v{}",
                event_id,
                header.event_type.as_deref().unwrap_or("(no type)"),
                header
                    .schema_version
                    .map_or_else(|| "?".to_owned(), |v| v.to_string())
            ));
        }
        let once = Once {
            ordering_key,
            event_id,
            entity,
        };
        let kept = (self.consumer.on_poison() == PoisonPolicy::Park).then(|| item.clone());
        match delivery::decode::<C::Payload>(item, &header) {
            Ok(envelope) => Work::Once(
                Box::new(Arrived {
                    envelope,
                    item: kept,
                }),
                once,
            ),
            Err(reason) => Work::Unreadable(once, reason, kept),
        }
    }

    pub(super) async fn apply_once(
        &self,
        id: &str,
        arrived: Arrived<C::Payload>,
        once: Once,
    ) -> Outcome {
        let Arrived { envelope, item } = arrived;
        let effect = match self.consumer.effect(&envelope).await {
            Ok(effect) => effect,
            Err(HandlerError::Poison(reason)) => {
                return self.poison_once(id, reason, &once, item).await
            }
            Err(HandlerError::Transient(reason)) => {
                tracing::warn!(
                    consumer = self.consumer.name(), record = %id, event_id = %once.event_id,
                    error = %reason, "event not applied: reported for retry"
                );
                return Outcome::Failed;
            }
        };
        match self.commit_once(id, &once, &effect).await {
            Outcome::Refused(reason) => self.poison_once(id, reason, &once, item).await,
            other => other,
        }
    }

    async fn commit_once(&self, id: &str, once: &Once, effect: &Effect) -> Outcome {
        let consumer = self.consumer.name();
        match self
            .store
            .commit_once(consumer, &once.event_id, effect)
            .await
        {
            Ok(Committed::Applied) => Outcome::Applied,
            Ok(Committed::Duplicate) => Outcome::Duplicate,
            Ok(Committed::Refused(reason)) => Outcome::Refused(reason),
            Ok(Committed::Waiting { .. }) => Outcome::Failed,
            Err(err) => {
                tracing::warn!(
                    consumer, record = %id, event_id = %once.event_id, error = %err,
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
        event: Option<Item>,
    ) -> Outcome {
        let consumer = self.consumer.name();
        let Some(event) = event.filter(|_| self.consumer.on_poison() == PoisonPolicy::Park) else {
            tracing::error!(consumer, record = %id, event_id = %once.event_id, %reason, "poison event: reported as a batch item failure");
            return Outcome::Poison;
        };
        let parked_at = now_rfc3339();
        let record = ParkedEvent {
            consumer,
            ordering_key: &once.ordering_key,
            event_id: &once.event_id,
            reason: &reason,
            parked_at: &parked_at,
            source: once.entity.as_ref(),
            event,
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

fn unreadable<P>(reason: String) -> Work<P> {
    Work::Poison {
        reason,
        at: None,
        event: None,
    }
}
