//! The producer's side: events join the caller's own `TransactWriteItems`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::Serialize;
use serde_dynamo::Item;

use super::routes::Routes;
use super::{cancellation_is_transient, cancellation_summary, classify, item_size, SdkItem};
use crate::envelope::Envelope;
use crate::item::with_outbox_state;
use crate::schema;
use crate::store::StoreError;

/// DynamoDB's limits on one `TransactWriteItems`.
const MAX_ACTIONS: usize = 100;
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long a commit keeps retrying when other writers take its keys' sequences first (or its
/// transaction conflicts with theirs), unless [`Outbox::contention_budget`] says otherwise.
pub const DEFAULT_CONTENTION_BUDGET: Duration = Duration::from_secs(10);

mod attempt;
mod counter;
mod read_back;
mod refusal;

use attempt::Backoff;
use counter::{Counter, KnownCounters};

/// The outbox in one DynamoDB table.
///
/// Clones share what the writer knows of the keys' counters (the last it wrote of each, for a
/// few thousand keys): build one at a function's cold start and clone it, rather than one per
/// request.
#[derive(Debug, Clone)]
pub struct Outbox {
    client: Client,
    table: String,
    routes: Routes,
    known: Arc<Mutex<KnownCounters>>,
    contention_budget: Duration,
}

/// Why a transaction with events was not written. In every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The transaction would exceed DynamoDB's 100 actions (the caller's items, one per event,
    /// one per ordering key's counter).
    #[error("{actions} actions in one transaction: DynamoDB allows {MAX_ACTIONS}")]
    TooManyActions {
        /// The actions the transaction would have had.
        actions: usize,
    },
    /// The transaction would exceed DynamoDB's 4 MB.
    #[error("about {bytes} bytes in one transaction: DynamoDB allows {MAX_BYTES}")]
    TooLarge {
        /// The estimated size.
        bytes: usize,
    },
    /// An event type with no consumer: it would never be processed nor expire.
    #[error("event type {0:?} has no route to any consumer")]
    NoRoute(String),
    /// A key the engine would build from the event is longer than DynamoDB takes (2,048 bytes a
    /// partition key, 1,024 a sort key): the event's, its place in the pending index, or a
    /// consumer's progress on its ordering key. Shorten the ordering key (or the consumer's name).
    #[error("{key} would be {bytes} bytes, DynamoDB takes {limit}: shorten the ordering key ({ordering_key_bytes} bytes) or the name")]
    KeyTooLong {
        /// Which key.
        key: String,
        /// Its length.
        bytes: usize,
        /// DynamoDB's limit for it.
        limit: usize,
        /// The ordering key's length.
        ordering_key_bytes: usize,
    },
    /// An event's payload did not encode as a DynamoDB item (a map key that is not a string,
    /// a number out of range): fix the event type's serialization.
    #[error("the event does not encode as an item")]
    Encode(#[source] serde_dynamo::Error),
    /// One of the caller's own items was refused (its condition failed): `reasons[i]` is the
    /// cancellation code of the caller's `i`-th item, `None` where it had none.
    #[error("the transaction was cancelled by the caller's items: {reasons:?}")]
    Cancelled {
        /// The cancellation code of each of the caller's items.
        reasons: Vec<Option<String>>,
    },
    /// The database refused or was unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An attempt was refused in a way an earlier attempt of the same commit could explain (its
    /// answer lost, its events stored), and reading them back failed: the transaction may or may
    /// not have been written. Nothing more was written. Retrying the same commit may write the
    /// events a second time unless the caller's own items carry a condition that refuses it.
    #[error("the transaction may or may not have been written (an earlier attempt may have committed, and reading its events back failed)")]
    OutcomeUnknown(#[source] StoreError),
}

/// What a committed transaction wrote: each event's id and its sequence within its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `(event_id, sequence)`, in the order the events were added.
    pub events: Vec<(String, u64)>,
    /// `true` when an earlier attempt of this commit had committed and its answer was lost (a
    /// retry then found the events already stored, by their ids, at that attempt's sequences):
    /// the transaction was written once, by that attempt, and not again.
    pub from_earlier_attempt: bool,
}

struct StagedEvent {
    event_id: String,
    event_type: String,
    ordering_key: String,
    occurred_at: String,
    item: Item,
}

/// One attempt's transaction: its actions, where it puts the events, and the counters as it
/// leaves them.
struct Built {
    items: Vec<TransactWriteItem>,
    written: Written,
    advanced: HashMap<String, Counter>,
}

/// One of the caller's writes: given, or built once the events' sequences are known.
enum CallerWrite<'a> {
    Given(Box<TransactWriteItem>),
    Built(Box<dyn Fn(&Written) -> TransactWriteItem + Send + Sync + 'a>),
}

/// The caller's writes and the events that must commit with them.
pub struct Transaction<'a> {
    outbox: &'a Outbox,
    items: Vec<CallerWrite<'a>>,
    events: Vec<StagedEvent>,
}

impl Outbox {
    /// The outbox in `table`, with its routing.
    pub fn new(client: Client, table: impl Into<String>, routes: Routes) -> Self {
        Self {
            client,
            table: table.into(),
            routes,
            known: Arc::default(),
            contention_budget: DEFAULT_CONTENTION_BUDGET,
        }
    }

    /// How long one commit keeps retrying when other writers take its keys' sequences first or
    /// its transaction conflicts with theirs ([`DEFAULT_CONTENTION_BUDGET`] unless set): within
    /// it, contention is absorbed; past it, the commit answers [`StoreError::Unavailable`]. Keep
    /// it well under the function's timeout.
    pub fn contention_budget(mut self, budget: Duration) -> Self {
        self.contention_budget = budget;
        self
    }

    /// The outbox table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The routing.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// A transaction to fill with the caller's writes and events.
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction {
            outbox: self,
            items: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl<'a> Transaction<'a> {
    /// Adds one of the caller's own writes (with whatever condition it needs).
    pub fn write(mut self, item: TransactWriteItem) -> Self {
        self.items.push(CallerWrite::Given(Box::new(item)));
        self
    }

    /// Adds one of the caller's writes that records where the events land (e.g. an aggregate item
    /// that names its event's sequence, to look the event up later): `build` gets the events'
    /// sequences, on every attempt, since a retry after a counter race assigns new ones.
    pub fn write_with(
        mut self,
        build: impl Fn(&Written) -> TransactWriteItem + Send + Sync + 'a,
    ) -> Self {
        self.items.push(CallerWrite::Built(Box::new(build)));
        self
    }

    /// Adds an event. It is routed by its type; an unrouted type is refused here.
    pub fn event<P: Serialize>(mut self, envelope: &Envelope<P>) -> Result<Self, WriteError> {
        if self
            .outbox
            .routes
            .consumers_of(&envelope.event_type)
            .is_empty()
        {
            return Err(WriteError::NoRoute(envelope.event_type.clone()));
        }
        check_keys(
            envelope,
            self.outbox.routes.consumers_of(&envelope.event_type),
        )?;
        let item = serde_dynamo::to_item(envelope).map_err(WriteError::Encode)?;
        self.events.push(StagedEvent {
            event_id: envelope.event_id.clone(),
            event_type: envelope.event_type.clone(),
            ordering_key: envelope.ordering_key.clone(),
            occurred_at: envelope.occurred_at.clone(),
            item,
        });
        Ok(self)
    }

    /// Writes the caller's items and the events in one `TransactWriteItems`, or nothing.
    ///
    /// **Sequences.** Each event gets the next sequence of its ordering key, and the key's
    /// counter advances in the same transaction on the condition that it still holds the value
    /// the writer expects: the one this process last wrote for the key, or no counter at all for
    /// a key it has not written. When another writer advanced it in between, the refusal returns
    /// the counter as stored (`ReturnValuesOnConditionCheckFailure` on the counter's update, no
    /// read capacity), and the transaction is built again after it. So a key's first event, and
    /// an event of a key this process wrote last, cost **one request**; an event of a key another
    /// process wrote last costs two (the refused transaction, then the one that commits). Writers
    /// racing on one key retry, spread by a short random pause, for as long as
    /// [`Outbox::contention_budget`] allows (transactions cancelled by a conflict with another
    /// transaction too, after the SDK's own retries); only past it does the commit answer
    /// [`StoreError::Unavailable`].
    ///
    /// **Cost.** An event adds two transactional writes to the caller's transaction (the outbox
    /// item and the counter: 2 WCU, or write request units on demand, per KB each) and no read:
    /// the counter a refusal returns is not billed as a read. A refused transaction is billed
    /// all the same: DynamoDB consumes the write capacity of every item of a cancelled
    /// transaction, as if it had committed (the Developer Guide, "DynamoDB read and write
    /// operations": the capacity "is consumed even when the transaction is canceled"). So an
    /// event of a key another process wrote last costs its transaction twice, the caller's
    /// items included, and each race lost on a hot key once more.
    ///
    /// **Stored once, whatever the retries.** A transaction can commit and its answer be lost;
    /// the SDK's retry of it (without the request token that would have hidden it) is then
    /// refused, as after a race. The writer counts the SDK's transmissions of each attempt: when
    /// one was sent more than once (or the SDK gave up on a timeout or a 5xx), it reads back the
    /// first event of that attempt by key and sequence before building the transaction again at
    /// new sequences or answering an error. Stored with its own event id, that attempt
    /// committed, and the commit answers `Ok` with [`Written::from_earlier_attempt`] set, nothing
    /// written twice. When that read fails, the outcome is unknown and the error says so
    /// ([`WriteError::OutcomeUnknown`]).
    pub async fn commit(self) -> Result<Written, WriteError> {
        let actions = self.items.len() + self.events.len() + self.distinct_keys().len();
        if actions > MAX_ACTIONS {
            return Err(WriteError::TooManyActions { actions });
        }
        let mut counters = self.outbox.expected(&self.distinct_keys());
        let mut backoff = Backoff::new(self.outbox.contention_budget);
        // Attempts the SDK sent more than once: one of those requests may have committed unseen.
        let mut uncertain: Vec<Written> = Vec::new();
        loop {
            let Built {
                items,
                written,
                advanced,
            } = self.build(&counters)?;
            let sent = self.outbox.send(items).await;
            let err = match sent.result {
                Ok(_) => {
                    self.outbox.remember(advanced.values());
                    return Ok(written);
                }
                Err(err) => err,
            };
            if sent.resent {
                uncertain.push(written.clone());
            }
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                let err = classify(err);
                // A timeout or a 5xx after the SDK's retries: this attempt may have committed.
                if let StoreError::Unavailable(_) = err {
                    if !sent.resent {
                        uncertain.push(written);
                    }
                    if let Some(written) = self.committed_before(&uncertain).await? {
                        tracing::warn!(
                            table = %self.outbox.table, events = ?written.events,
                            "the transaction committed although its answer was lost"
                        );
                        return Ok(written);
                    }
                }
                return Err(err.into());
            };
            let reasons = cancelled.cancellation_reasons();
            if !uncertain.is_empty() {
                if let Some(written) = self.committed_before(&uncertain).await? {
                    tracing::warn!(
                        table = %self.outbox.table, events = ?written.events,
                        "an earlier attempt of this transaction committed and its answer was lost: \
                         its events are stored once, not written again"
                    );
                    return Ok(written);
                }
                if self.first_counter_refused(reasons) {
                    // Its counter moved past what every attempt so far expected: none of them
                    // can commit any more.
                    uncertain.clear();
                }
            }
            let raced = self.learn(reasons, &mut counters).await?;
            if let Some(refused) = self.callers_refused(reasons) {
                return Err(refused);
            }
            let contended = raced || cancellation_is_transient(reasons);
            if contended && backoff.pause(self.outbox).await {
                continue;
            }
            let summary = cancellation_summary(reasons);
            return Err(if contended {
                StoreError::Unavailable(summary.into()).into()
            } else {
                StoreError::Failed(summary.into()).into()
            });
        }
    }

    fn distinct_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .events
            .iter()
            .map(|e| e.ordering_key.as_str())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The transaction's actions for the counters it expects: the caller's items, the events' puts, one
    /// counter update per key (DynamoDB forbids two actions on one item in a transaction).
    fn build(&self, expected: &HashMap<String, Counter>) -> Result<Built, WriteError> {
        let mut counters = expected.clone();
        let mut items = Vec::with_capacity(self.items.len() + 2 * self.events.len());
        let mut written = Vec::with_capacity(self.events.len());
        let mut bytes = 0;
        for event in &self.events {
            let counter = counters
                .entry(event.ordering_key.clone())
                .or_insert_with(|| Counter {
                    key: event.ordering_key.clone(),
                    ..Counter::default()
                });
            let (sequence, after) = counter
                .state
                .next(self.outbox.routes.consumers_of(&event.event_type));
            let item: SdkItem = with_outbox_state(
                event.item.clone(),
                &event.ordering_key,
                &event.occurred_at,
                sequence,
                &after,
            )
            .into();
            bytes += item_size(&item);
            let put = Put::builder()
                .table_name(&self.outbox.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK)
                .build()
                .map_err(|e| StoreError::Failed(e.into()))?;
            items.push(TransactWriteItem::builder().put(put).build());
            written.push((event.event_id.clone(), sequence));
        }
        for key in self.distinct_keys() {
            let previous = expected.get(key).map_or(0, |c| c.state.sequence);
            items.push(counter::advance(
                &self.outbox.table,
                key,
                &counters[key],
                previous,
            )?);
        }
        let written = Written {
            events: written,
            from_earlier_attempt: false,
        };
        let callers: Vec<TransactWriteItem> = self
            .items
            .iter()
            .map(|write| match write {
                CallerWrite::Given(item) => (**item).clone(),
                CallerWrite::Built(build) => build(&written),
            })
            .collect();
        bytes += callers
            .iter()
            .map(|item| {
                item.put().map_or(0, |p| item_size(p.item()))
                    + item.update().map_or(0, |u| item_size(u.key()))
            })
            .sum::<usize>();
        if bytes > MAX_BYTES {
            return Err(WriteError::TooLarge { bytes });
        }
        // The caller's writes first: cancellation reasons name them by their position.
        let items = callers.into_iter().chain(items).collect();
        Ok(Built {
            items,
            written,
            advanced: counters,
        })
    }
}

/// Refuses an event whose keys DynamoDB would refuse later: at the producer, with what to
/// shorten, instead of an event no consumer could ever record progress for.
fn check_keys<P>(envelope: &Envelope<P>, consumers: &[String]) -> Result<(), WriteError> {
    let key = &envelope.ordering_key;
    let too_long = |what: String, bytes: usize, limit: usize| WriteError::KeyTooLong {
        key: what,
        bytes,
        limit,
        ordering_key_bytes: key.len(),
    };
    let event_pk = schema::key_pk(key).len();
    if event_pk > schema::MAX_PARTITION_KEY_BYTES {
        return Err(too_long(
            "the event's partition key".into(),
            event_pk,
            schema::MAX_PARTITION_KEY_BYTES,
        ));
    }
    let pending_sk = schema::pending_sk(&envelope.occurred_at, key, u64::MAX).len();
    if pending_sk > schema::MAX_SORT_KEY_BYTES {
        return Err(too_long(
            "its pending index sort key (occurred_at, ordering key, sequence)".into(),
            pending_sk,
            schema::MAX_SORT_KEY_BYTES,
        ));
    }
    for consumer in consumers {
        let progress = schema::progress_pk(consumer, key).len();
        if progress > schema::MAX_PARTITION_KEY_BYTES {
            return Err(too_long(
                format!("consumer {consumer:?}'s progress key"),
                progress,
                schema::MAX_PARTITION_KEY_BYTES,
            ));
        }
    }
    Ok(())
}
