//! A batch of source records in, partial batch failures out: the consumer's whole pipeline.
//!
//! Records are sorted into groups by ordering key and applied in sequence order inside a group,
//! groups concurrently (bounded). The consumer's progress on a key only moves from an event's
//! predecessor to the event, so order holds across batches, shards, retries and redrives too:
//! an event whose predecessor has not been applied waits (and is reported for retry), a
//! redelivered one is a duplicate. After a failure, the rest of the group is held back.
//!
//! A batch's time is its longest chain of round trips: a key's consecutive events commit in one
//! transaction, and the outbox items are marked after all the commits, on no key's chain.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::streams::{
    DynamoDbBatchItemFailure, DynamoDbEventResponse, KinesisEventResponse,
};
use futures::stream::{self, StreamExt};
use serde_dynamo::{AttributeValue, Item};
use time::OffsetDateTime;

use crate::consumer::{Consumer, Effect, HandlerError, PoisonPolicy, Takes};
use crate::delivery::{self, Header};
use crate::envelope::{now_rfc3339, Envelope};
use crate::item::ParkedEvent;
use crate::schema;
use crate::source::{Home, Source, SourceKind};
use crate::store::{Committed, ConsumerStore, ItemKey, Parked, Step, StoreError};

mod sources;
mod sweep;

use sources::Once;
pub use sources::{kinesis_put, KinesisPut};

/// What a batch came to: counts for logs, metrics and tests, and the records to report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Effects committed now.
    pub applied: usize,
    /// Events this consumer had applied before.
    pub duplicates: usize,
    /// Events routed to this consumer in a type or version it does not take: progress moved on.
    pub skipped: usize,
    /// Records that carry no event for this consumer (other items, updates, deletions, events
    /// routed elsewhere).
    pub ignored: usize,
    /// Poison events parked under [`PoisonPolicy::Park`].
    pub parked: usize,
    /// Poison events reported for retry under [`PoisonPolicy::Wait`], and records refused for
    /// where they come from or for what no order can be given to (reported under both policies).
    pub poison: usize,
    /// Records of the source that are not events and name none (no usable event id, not JSON,
    /// not an object): nothing to apply, park or retry, so they are logged with their record
    /// identifier and why, counted here, and not reported: a retry would bring the same bytes.
    pub dropped: usize,
    /// Events whose predecessor on their key has not been applied yet.
    pub waiting: usize,
    /// Transient failures.
    pub failed: usize,
    /// Events not tried because an earlier event of their key failed in this batch.
    pub held_back: usize,
    /// Of the events counted above as applied, duplicate, skipped or parked, those whose outbox
    /// item could not be marked: reported for retry (in `failures`), whose redelivery marks it.
    pub unmarked: usize,
    /// Identifiers of the records to report as batch item failures, in input order.
    pub failures: Vec<String>,
    /// The events applied now, in input order: for the consumer's logs and metrics (how long
    /// each took from being written to being applied, which trace wrote it).
    pub applied_events: Vec<AppliedEvent>,
}

impl BatchOutcome {
    /// The partial batch response Lambda expects from a Kinesis consumer (with
    /// `ReportBatchItemFailures` on the mapping): the sequence numbers to retry.
    pub fn kinesis_response(&self) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        response.set_failures(self.failures.iter().cloned());
        response
    }

    /// The partial batch response Lambda expects from a DynamoDB stream consumer (with
    /// `ReportBatchItemFailures` on the mapping): the records to retry.
    pub fn stream_response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = self
            .failures
            .iter()
            .map(|id| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(id.clone());
                failure
            })
            .collect();
        response
    }
}

/// The log message of every event a consumer parks: what an operator's log query for parked
/// events filters on (the record's `event_id` field names the event, or its item key).
pub const PARKED_LOG_MESSAGE: &str = "poison event parked; its key goes on";

/// The log message of every record a consumer drops as not an event (see
/// [`BatchOutcome::dropped`]); its `record` field names the record (a Kinesis sequence number).
pub const DROPPED_LOG_MESSAGE: &str = "record dropped: not an event, and it names none";

/// An event a batch applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEvent {
    /// The event's id.
    pub event_id: String,
    /// The aggregate the event is about.
    pub aggregate_id: String,
    /// When the producer wrote it (RFC 3339).
    pub occurred_at: String,
    /// The producer's trace, when it had one.
    pub trace_context: Option<crate::TraceContext>,
}

/// The most events of one key committed in one transaction, by default. DynamoDB takes 100
/// actions and 4 MB per transaction, and one action is the progress: 25 events leave room for
/// effects of up to three items each beside one shared sum (25 × 3 + 1 + 1 = 77 actions), and for
/// events of up to 160 KB each. A run whose merged effect does not fit goes one event at a time.
/// With 25, a hot key's 100 events take 4 commits in a row instead of 100.
pub const DEFAULT_EVENTS_PER_TRANSACTION: usize = 25;

/// Ordering keys (and outbox marks) in flight at a time, by default: Lambda's default batch size
/// for a stream mapping is 100 records, so a batch of distinct keys goes in one wave of round
/// trips instead of several.
pub const DEFAULT_CONCURRENCY: usize = 100;

/// The longest retention a processor accepts: 100 years, in seconds. Past it an expiry time
/// would mean nothing to TTL, and near `i64::MAX` it would overflow.
pub const MAX_RETENTION_SECONDS: i64 = 100 * 365 * 24 * 60 * 60;

/// A setting outside the range it accepts: nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} must be between {range}; got {value}")]
pub struct SettingError {
    setting: &'static str,
    value: String,
    range: String,
}

/// One action of a transaction is the consumer's progress.
const MAX_EVENTS_PER_TRANSACTION: usize = 99;

/// Applies batches of outbox records for one consumer.
///
/// In a Lambda function, `process_stream(&event.payload.records)` and return its
/// `stream_response()`. In a unit test, the in-memory store and outbox stand in for DynamoDB:
///
/// ```
/// use dynamodb_outbox::dynamodb::Routes;
/// use dynamodb_outbox::memory::{MemoryOutbox, MemoryStore};
/// use dynamodb_outbox::{
///     Consumer, Counter, Effect, Envelope, Event, HandlerError, ItemKey, Processor, Source, Takes,
/// };
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)]
/// # struct Paid { account: String, cents: i64 }
/// # impl Event for Paid {
/// #     const EVENT_TYPE: &'static str = "Paid";
/// #     const SCHEMA_VERSION: u32 = 1;
/// #     const AGGREGATE_TYPE: &'static str = "Account";
/// #     fn aggregate_id(&self) -> String { self.account.clone() }
/// # }
/// struct Totals;
/// impl Consumer for Totals {
///     type Payload = Paid;
///     fn name(&self) -> &str { "totals" }
///     fn takes(&self) -> Vec<Takes> { vec![Takes::versions("Paid", 1..=1)] }
///     async fn effect(&self, e: &Envelope<Paid>) -> Result<Effect, HandlerError> {
///         let total = Counter {
///             table: "totals".into(),
///             key: ItemKey { pk: format!("ACCOUNT#{}", e.payload.account), sk: "TOTAL".into() },
///             attribute: "cents".into(),
///         };
///         Ok(Effect::new().add(total, e.payload.cents))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new("totals");
/// let mut outbox = MemoryOutbox::new(Routes::new().route("Paid", &["totals"]));
/// let items = vec![
///     outbox.write(&Envelope::new(Paid { account: "a".into(), cents: 5 }), &store).unwrap(),
///     outbox.write(&Envelope::new(Paid { account: "a".into(), cents: 7 }), &store).unwrap(),
/// ];
/// let processor = Processor::new(Totals, store.clone(), Source::table("outbox").unwrap());
/// let outcome = processor.process_items(items.clone()).await;
/// assert_eq!(outcome.applied, 2);
/// assert_eq!(processor.process_items(items).await.duplicates, 2, "exactly once");
/// assert_eq!(store.number("totals", "ACCOUNT#a", "TOTAL", "cents"), 12);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Processor<C, S> {
    consumer: C,
    store: S,
    /// Where the records must come from.
    source: Source,
    /// The function's own place, where a source configured by name is.
    home: OnceLock<Home>,
    retention_seconds: i64,
    concurrency: usize,
    events_per_transaction: usize,
}

/// One record, sorted before any database work.
enum Work<P> {
    Ignore,
    Apply(Box<Arrived<P>>, Step, ItemKey),
    Skip(Step, ItemKey, String),
    Poison {
        reason: String,
        at: Option<(Step, ItemKey)>,
        /// The event as it arrived, kept when the consumer parks poison.
        event: Option<Item>,
    },
    /// An event without an outbox sequence: idempotent by its id, ordered by its source.
    Once(Box<Arrived<P>>, Once),
    /// An event without an outbox sequence whose envelope does not decode (poison), with the
    /// event as it arrived when the consumer parks poison.
    Unreadable(Once, String, Option<Item>),
    /// An event without an outbox sequence that this consumer does not take (with the entity
    /// item it came from, which stops waiting for this consumer).
    Skipped(String, Option<ItemKey>),
    /// A record that is not an event and names none, with why: logged, counted, not reported.
    Drop(String),
}

/// A decoded event, with the item it came from when the consumer parks poison (a parked record
/// carries the event, so a redrive can apply it once the outbox item has expired).
struct Arrived<P> {
    envelope: Envelope<P>,
    item: Option<Item>,
}

impl<P> std::ops::Deref for Arrived<P> {
    type Target = Envelope<P>;

    fn deref(&self) -> &Envelope<P> {
        &self.envelope
    }
}

enum Outcome {
    Refused(String),
    Applied,
    Duplicate,
    Skipped,
    Ignored,
    Parked,
    Poison,
    Dropped,
    Waiting,
    Failed,
    HeldBack,
}

/// An event whose progress is committed, and the outbox item to mark for it.
type Mark = (usize, Step, ItemKey);

/// What one key's group came to: each record's outcome, and the marks it leaves to the batch.
struct Applied {
    outcomes: Vec<(usize, Outcome)>,
    marks: Vec<Mark>,
}

impl<P> Work<P> {
    /// The event's place in its key's order and its outbox item, when it has one.
    fn place(&self) -> Option<(&Step, &ItemKey)> {
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

impl Outcome {
    /// The consumer's progress is at or past the event: its outbox item can be marked.
    fn committed(&self) -> bool {
        matches!(
            self,
            Outcome::Applied | Outcome::Duplicate | Outcome::Skipped | Outcome::Parked
        )
    }

    fn blocks(&self) -> bool {
        matches!(
            self,
            Outcome::Refused(_) | Outcome::Poison | Outcome::Waiting | Outcome::Failed
        )
    }
}

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// A processor for `consumer` of `source`, committing through `store`. `source` is where
    /// its records must come from: [`Source::table`] for the table whose stream it reads (the
    /// outbox, or an entity table whose changes are the events), [`Source::kinesis_stream`] for
    /// [`Processor::process_kinesis`]. A record is admitted only when its `eventSourceARN` is
    /// that source's, partition, region and account included; a source named without an ARN is
    /// in the function's own account and region ([`Processor::invoked_as`]), and while that is
    /// unknown its records are refused, as are records of another kind of source. Processed outbox items expire `retention_seconds` after their last consumer is done; up to
    /// `concurrency` ordering keys are applied at a time.
    pub fn new(consumer: C, store: S, source: Source) -> Self {
        Self {
            consumer,
            store,
            source,
            home: OnceLock::new(),
            retention_seconds: 7 * 24 * 60 * 60,
            concurrency: DEFAULT_CONCURRENCY,
            events_per_transaction: DEFAULT_EVENTS_PER_TRANSACTION,
        }
    }

    /// How long a processed outbox item is kept before TTL may delete it: 0 to
    /// [`MAX_RETENTION_SECONDS`]; anything else is refused with what the range is.
    ///
    /// ```
    /// # use dynamodb_outbox::{memory::MemoryStore, Processor};
    /// # #[derive(Clone, Debug)] struct C;
    /// # impl dynamodb_outbox::Consumer for C {
    /// #     type Payload = serde_json::Value;
    /// #     fn name(&self) -> &str { "c" }
    /// #     fn takes(&self) -> Vec<dynamodb_outbox::Takes> { vec![] }
    /// #     async fn effect(&self, _: &dynamodb_outbox::Envelope<serde_json::Value>)
    /// #         -> Result<dynamodb_outbox::Effect, dynamodb_outbox::HandlerError> { Ok(Default::default()) }
    /// # }
    /// # let outbox = dynamodb_outbox::Source::table("outbox").unwrap();
    /// let processor = Processor::new(C, MemoryStore::new("t"), outbox);
    /// let err = processor.clone().retention_seconds(i64::MAX).unwrap_err();
    /// assert!(err.to_string().contains("retention_seconds must be between 0 and"));
    /// let processor = processor.retention_seconds(86_400).unwrap();
    /// # let _ = processor;
    /// ```
    pub fn retention_seconds(mut self, seconds: i64) -> Result<Self, SettingError> {
        if !(0..=MAX_RETENTION_SECONDS).contains(&seconds) {
            return Err(SettingError {
                setting: "retention_seconds",
                value: seconds.to_string(),
                range: format!("0 and {MAX_RETENTION_SECONDS} (100 years)"),
            });
        }
        self.retention_seconds = seconds;
        Ok(self)
    }

    /// How many ordering keys are applied at a time within a batch, and how many outbox items
    /// are marked at a time after the batch's commits (default [`DEFAULT_CONCURRENCY`]). With 1,
    /// every request of the batch waits for the one before it.
    pub fn concurrency(mut self, keys: usize) -> Self {
        self.concurrency = keys.max(1);
        self
    }

    /// The most consecutive events of one key committed in one transaction (default
    /// [`DEFAULT_EVENTS_PER_TRANSACTION`], at most 99, as the progress takes one of DynamoDB's
    /// 100 actions). With 1, every event is its own transaction: a key's events cost one round
    /// trip each. Larger runs mean fewer round trips for a hot key, and larger transactions
    /// (their effects merged must still fit in 100 actions and 4 MB, or the run goes one event
    /// at a time).
    pub fn events_per_transaction(mut self, events: usize) -> Self {
        self.events_per_transaction = events.clamp(1, MAX_EVENTS_PER_TRANSACTION);
        self
    }

    /// The partition, region and account of a source configured by name: where the function
    /// runs (a test, a tool, or a function that knows it before its first invocation).
    pub fn home(self, home: Home) -> Self {
        let _ = self.home.set(home);
        self
    }

    /// Learns the function's own partition, region and account from the ARN Lambda invoked it
    /// by (`lambda_runtime::Context::invoked_function_arn`): a Lambda handler calls this before
    /// each batch. Every invocation of a function carries the same place, so the first one that
    /// names it is kept; an ARN that is not a function's changes nothing.
    pub fn invoked_as(&self, invoked_function_arn: &str) {
        if let Some(home) = Home::of_function(invoked_function_arn) {
            let _ = self.home.set(home);
        }
    }

    /// Whether a record whose `eventSourceARN` is `record_arn` comes from this processor's
    /// source, read as a source of `kind`.
    fn admit(&self, kind: SourceKind, record_arn: Option<&str>) -> Result<(), String> {
        if self.source.kind() != kind {
            return Err(format!(
                "a {} record, while the processor reads {}",
                kind.what(),
                self.source
            ));
        }
        self.source.admits(record_arn, self.home.get())
    }

    /// The consumer.
    pub fn consumer(&self) -> &C {
        &self.consumer
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The same processor committing through `store` instead: a wrapper that injects faults, a
    /// store with other settings.
    pub fn with_store<T: ConsumerStore>(self, store: T) -> Processor<C, T> {
        Processor {
            consumer: self.consumer,
            store,
            source: self.source,
            home: self.home,
            retention_seconds: self.retention_seconds,
            concurrency: self.concurrency,
            events_per_transaction: self.events_per_transaction,
        }
    }

    /// A batch of DynamoDB stream records as Lambda delivers them.
    pub async fn process_stream(&self, records: &[EventRecord]) -> BatchOutcome {
        let takes = self.consumer.takes();
        let incoming: Vec<(String, Work<C::Payload>)> = records
            .iter()
            .map(|record| {
                let id = record
                    .change
                    .sequence_number
                    .clone()
                    .unwrap_or_else(|| record.event_id.clone());
                (id, self.sort_stream_record(record, &takes))
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
                let header = Header::peek(&item);
                (
                    format!("{}/{}", header.pk, header.sk),
                    self.sort_item(item, &takes),
                )
            })
            .collect();
        self.process(incoming).await
    }

    fn sort_stream_record(&self, record: &EventRecord, takes: &[Takes]) -> Work<C::Payload> {
        if let Err(reason) = self.admit(SourceKind::Table, record.event_source_arn.as_deref()) {
            return Work::Poison {
                reason,
                at: None,
                event: None,
            };
        }
        if record.event_name != "INSERT" {
            return Work::Ignore;
        }
        self.sort_item(record.change.new_image.clone(), takes)
    }

    fn sort_item(&self, item: Item, takes: &[Takes]) -> Work<C::Payload> {
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
        let key = ItemKey {
            pk: header.pk.clone(),
            sk: header.sk.clone(),
        };
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
        let kept = (self.consumer.on_poison() == PoisonPolicy::Park).then(|| item.clone());
        match delivery::decode::<C::Payload>(item, &header) {
            Ok(envelope) => Work::Apply(
                Box::new(Arrived {
                    envelope,
                    item: kept,
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

    async fn process(&self, incoming: Vec<(String, Work<C::Payload>)>) -> BatchOutcome {
        // Group by ordering key; inside a group, by sequence (stable for equal ones).
        let mut ids = Vec::with_capacity(incoming.len());
        let events: Vec<Option<AppliedEvent>> = incoming
            .iter()
            .map(|(_, work)| match work {
                Work::Apply(arrived, _, _) | Work::Once(arrived, _) => Some(AppliedEvent {
                    event_id: arrived.event_id.clone(),
                    aggregate_id: arrived.aggregate_id.clone(),
                    occurred_at: arrived.occurred_at.clone(),
                    trace_context: arrived.trace_context.clone(),
                }),
                _ => None,
            })
            .collect();
        let mut groups: Vec<Vec<(usize, Work<C::Payload>)>> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        for (position, (id, work)) in incoming.into_iter().enumerate() {
            let group = match &work {
                Work::Apply(_, step, _)
                | Work::Skip(step, _, _)
                | Work::Poison {
                    at: Some((step, _)),
                    ..
                } => format!("key:{}", step.ordering_key),
                Work::Once(_, once) | Work::Unreadable(once, ..) => match &once.ordering_key {
                    Some(key) => format!("key:{key}"),
                    // Without an ordering key it is no key's event: it waits for none.
                    None => format!("record:{position}"),
                },
                _ => format!("record:{position}"),
            };
            let slot = *group_of.entry(group).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[slot].push((position, work));
            ids.push(id);
        }
        for group in &mut groups {
            group.sort_by_key(|(_, work)| match work {
                Work::Apply(_, step, _)
                | Work::Skip(step, _, _)
                | Work::Poison {
                    at: Some((step, _)),
                    ..
                } => step.sequence,
                _ => 0,
            });
        }

        let applied: Vec<Applied> = stream::iter(groups)
            .map(|group| self.apply_group(group, &ids))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut by_position: Vec<Option<Outcome>> = (0..ids.len()).map(|_| None).collect();
        let mut marks = Vec::new();
        for group in applied {
            for (position, result) in group.outcomes {
                by_position[position] = Some(result);
            }
            marks.extend(group.marks);
        }
        let mut unmarked = vec![false; ids.len()];
        for (position, step, err) in self.mark(marks).await {
            tracing::warn!(
                consumer = self.consumer.name(), record = %ids[position],
                ordering_key = %step.ordering_key, sequence = step.sequence, error = %err,
                "event applied but its outbox item not marked: reported for retry, which marks it"
            );
            unmarked[position] = true;
        }

        let mut outcome = BatchOutcome::default();
        for (position, result) in by_position.into_iter().enumerate() {
            let Some(result) = result else { continue };
            let counter = match &result {
                Outcome::Refused(_) | Outcome::Poison => &mut outcome.poison,
                Outcome::Applied => &mut outcome.applied,
                Outcome::Duplicate => &mut outcome.duplicates,
                Outcome::Skipped => &mut outcome.skipped,
                Outcome::Ignored => &mut outcome.ignored,
                Outcome::Parked => &mut outcome.parked,
                Outcome::Dropped => &mut outcome.dropped,
                Outcome::Waiting => &mut outcome.waiting,
                Outcome::Failed => &mut outcome.failed,
                Outcome::HeldBack => &mut outcome.held_back,
            };
            *counter += 1;
            if let (Outcome::Applied, Some(event)) = (&result, &events[position]) {
                outcome.applied_events.push(event.clone());
            }
            // An event applied (or found applied) whose mark failed is counted for what it came
            // to, and reported for retry: the redelivery is a duplicate and marks it.
            outcome.unmarked += usize::from(unmarked[position]);
            if unmarked[position]
                || matches!(
                    result,
                    Outcome::Refused(_)
                        | Outcome::Poison
                        | Outcome::Waiting
                        | Outcome::Failed
                        | Outcome::HeldBack
                )
            {
                outcome.failures.push(ids[position].clone());
            }
        }
        outcome
    }

    /// Marks the outbox items whose events the batch committed (or found committed before), all
    /// after the commits, `concurrency` at a time: a mark is on no key's chain, so a key's next
    /// run never waits for the one before it to be marked. A crash or a failure between a commit
    /// and its mark leaves the item waiting for this consumer; its redelivery (the record is
    /// reported, or the sweeper finds it pending) is a duplicate and marks it then. Returns the
    /// marks that failed.
    async fn mark(&self, marks: Vec<Mark>) -> Vec<(usize, Step, StoreError)> {
        let consumer = self.consumer.name();
        let expires_at = OffsetDateTime::now_utc()
            .unix_timestamp()
            .saturating_add(self.retention_seconds);
        stream::iter(marks)
            .map(|(position, step, key)| async move {
                let marked = self.store.complete(consumer, &key, expires_at).await;
                marked.err().map(|err| (position, step, err))
            })
            .buffer_unordered(self.concurrency)
            .filter_map(|failed| async move { failed })
            .collect()
            .await
    }

    async fn apply_group(&self, group: Vec<(usize, Work<C::Payload>)>, ids: &[String]) -> Applied {
        let mut results = Vec::with_capacity(group.len());
        let mut marks = Vec::new();
        let mut pending: VecDeque<(usize, Work<C::Payload>)> = group.into();
        let mut blocked = false;
        // Events to apply one at a time before trying to combine again: those of a run that did
        // not commit as one (never a second try at combining them), or a run of one.
        let mut singles = 0usize;
        while let Some((position, work)) = pending.pop_front() {
            if blocked {
                let held = match work {
                    Work::Ignore => Outcome::Ignored,
                    _ => Outcome::HeldBack,
                };
                results.push((position, held));
                continue;
            }
            if singles == 0 && matches!(work, Work::Apply(..)) {
                let run = take_run((position, work), &mut pending, self.events_per_transaction);
                if run.len() > 1 {
                    if let Some(outcomes) = self.apply_run(&run, ids).await {
                        blocked |= outcomes.iter().any(|(_, o)| o.blocks());
                        for ((position, outcome), (_, work)) in outcomes.iter().zip(&run) {
                            if let (true, Some((step, key))) = (outcome.committed(), work.place()) {
                                marks.push((*position, step.clone(), key.clone()));
                            }
                        }
                        results.extend(outcomes);
                        continue;
                    }
                }
                singles = run.len();
                for item in run.into_iter().rev() {
                    pending.push_front(item);
                }
                continue;
            }
            singles = singles.saturating_sub(1);
            let place = work.place().map(|(step, key)| (step.clone(), key.clone()));
            let result = self.apply_one(position, work, ids).await;
            blocked |= result.blocks();
            if let (true, Some((step, key))) = (result.committed(), place) {
                marks.push((position, step, key));
            }
            results.push((position, result));
        }
        Applied {
            outcomes: results,
            marks,
        }
    }

    /// Commits a run of one key's consecutive events in one transaction: their effects merged
    /// (several additions to one item become one addition of their sum, as DynamoDB allows one
    /// action per item), the progress moved from the first event's predecessor to the last
    /// event. `None` when the run must go one event at a time: an effect failed or does not
    /// combine, a condition refused, the database refused the transaction as a whole, or the
    /// consumer had applied part of the run already.
    async fn apply_run(
        &self,
        run: &[(usize, Work<C::Payload>)],
        ids: &[String],
    ) -> Option<Vec<(usize, Outcome)>> {
        let mut effects = Vec::with_capacity(run.len());
        let mut steps = Vec::with_capacity(run.len());
        for (_, work) in run {
            let Work::Apply(envelope, step, _) = work else {
                return None;
            };
            effects.push(self.consumer.effect(envelope).await.ok()?);
            steps.push(step);
        }
        let merged = Effect::merge(&effects)?;
        let (first, last) = (steps[0], steps[steps.len() - 1]);
        let span = Step {
            ordering_key: first.ordering_key.clone(),
            sequence: last.sequence,
            after: first.after,
        };
        let consumer = self.consumer.name();
        let all = |outcome: fn() -> Outcome| run.iter().map(|(p, _)| (*p, outcome())).collect();
        match self.store.commit(consumer, &span, &merged).await {
            Ok(Committed::Applied) => Some(all(|| Outcome::Applied)),
            Ok(Committed::Duplicate) => Some(all(|| Outcome::Duplicate)),
            Ok(Committed::Waiting { applied }) if applied < first.after => {
                tracing::warn!(
                    consumer, ordering_key = %span.ordering_key, from = first.sequence,
                    to = last.sequence, applied, "events wait for an earlier event of their key"
                );
                Some(all(|| Outcome::Waiting))
            }
            Ok(_) => None,
            // Refused whole (larger than DynamoDB's 4 MB, say): one event at a time, each says
            // for itself whether it is the cause.
            Err(StoreError::Failed(_) | StoreError::Invalid(_)) => None,
            Err(err) => {
                self.store_failure(&ids[run[0].0], &span, &err);
                Some(all(|| Outcome::Failed))
            }
        }
    }

    async fn apply_one(&self, position: usize, work: Work<C::Payload>, ids: &[String]) -> Outcome {
        let id = &ids[position];
        match work {
            Work::Ignore => Outcome::Ignored,
            Work::Once(arrived, once) => self.apply_once(id, *arrived, once).await,
            Work::Unreadable(once, reason, event) => {
                self.poison_once(id, reason, &once, event).await
            }
            Work::Skipped(what, entity) => self.skip_once(id, &what, entity).await,
            Work::Drop(reason) => {
                tracing::error!(
                    consumer = self.consumer.name(), record = %id, %reason,
                    "{DROPPED_LOG_MESSAGE}"
                );
                Outcome::Dropped
            }
            Work::Poison { reason, at, event } => self.poison(id, reason, at, event).await,
            Work::Skip(step, _, what) => {
                tracing::info!(
                    consumer = self.consumer.name(), record = %id, sequence = step.sequence,
                    event = %what, "event skipped: not taken by this consumer"
                );
                match self.commit(id, &step, &Effect::new()).await {
                    Outcome::Applied | Outcome::Duplicate => Outcome::Skipped,
                    Outcome::Refused(_) => Outcome::Poison,
                    other => other,
                }
            }
            Work::Apply(arrived, step, key) => {
                let Arrived { envelope, item } = *arrived;
                match self.consumer.effect(&envelope).await {
                    Ok(effect) => match self.commit(id, &step, &effect).await {
                        Outcome::Refused(reason) => {
                            self.poison(id, reason, Some((step, key)), item).await
                        }
                        other => other,
                    },
                    Err(error @ HandlerError::Poison(_)) => {
                        self.poison(id, error.reason(), Some((step, key)), item)
                            .await
                    }
                    Err(error @ HandlerError::Transient(_)) => {
                        tracing::warn!(
                            consumer = self.consumer.name(), event_id = %envelope.event_id,
                            sequence = step.sequence, error = %error.reason(),
                            "event not applied: reported for retry"
                        );
                        Outcome::Failed
                    }
                }
            }
        }
    }

    /// Commits an effect with the progress (the batch marks the outbox item afterwards).
    async fn commit(&self, id: &str, step: &Step, effect: &Effect) -> Outcome {
        let consumer = self.consumer.name();
        match self.store.commit(consumer, step, effect).await {
            Ok(Committed::Applied) => Outcome::Applied,
            Ok(Committed::Duplicate) => Outcome::Duplicate,
            Ok(Committed::Waiting { applied }) => {
                tracing::warn!(
                    consumer, record = %id, ordering_key = %step.ordering_key,
                    sequence = step.sequence, after = step.after, applied,
                    "event waits for an earlier event of its key: reported for retry"
                );
                Outcome::Waiting
            }
            Ok(Committed::Refused(reason)) => Outcome::Refused(reason),
            Err(StoreError::Invalid(why)) => Outcome::Refused(why),
            Err(err) => self.store_failure(id, step, &err),
        }
    }

    fn store_failure(&self, id: &str, step: &Step, err: &StoreError) -> Outcome {
        tracing::warn!(
            consumer = self.consumer.name(), record = %id, ordering_key = %step.ordering_key,
            sequence = step.sequence, error = %err, "event not applied: reported for retry"
        );
        Outcome::Failed
    }

    /// A poison event: reported (the key waits), or parked (the key goes on), by policy.
    async fn poison(
        &self,
        id: &str,
        reason: String,
        at: Option<(Step, ItemKey)>,
        event: Option<Item>,
    ) -> Outcome {
        let consumer = self.consumer.name();
        let parkable = self.consumer.on_poison() == PoisonPolicy::Park;
        let (Some((step, key)), Some(event)) = (at.filter(|_| parkable), event) else {
            tracing::error!(consumer, record = %id, %reason, "poison event: reported as a batch item failure");
            return Outcome::Poison;
        };
        let parked_at = now_rfc3339();
        let event_id = Header::peek(&event).name();
        let record = ParkedEvent {
            consumer,
            ordering_key: Some(&step.ordering_key),
            event_id: &event_id,
            reason: &reason,
            parked_at: &parked_at,
            source: Some(&key),
            event,
        }
        .record();
        let effect = Effect::new().put(self.store.table(), record);
        match self.commit(id, &step, &effect).await {
            Outcome::Applied => {
                tracing::error!(consumer, record = %id, %event_id, sequence = step.sequence, %reason, "{PARKED_LOG_MESSAGE}");
                Outcome::Parked
            }
            Outcome::Refused(_) => Outcome::Poison,
            other => other,
        }
    }

    /// Applies this consumer's parked events again, up to `limit` of them, oldest first: for
    /// each, the effect is computed anew and committed in one transaction with the deletion of
    /// the parked record, on the condition that the record still exists. So a fixed event is
    /// applied exactly once, even when two redrives race (the loser finds it a duplicate).
    ///
    /// **Out of key order, by design**: parking let the key's later events go on, so a redriven
    /// event lands after them. Only park events whose effect does not depend on that order.
    ///
    /// An event still poison stays parked with its new reason and one more attempt (counted in
    /// `parked`, named in `failures` by its record's sort key); a transient failure leaves it as
    /// it is (`failed`); an event this consumer no longer takes is dropped with no effect
    /// (`skipped`). Effects outside DynamoDB run again on every attempt: at least once.
    pub async fn redrive_parked(&self, limit: usize) -> BatchOutcome {
        let consumer = self.consumer.name();
        let mut outcome = BatchOutcome::default();
        let parked = match self.store.parked(consumer, limit).await {
            Ok(parked) => parked,
            Err(err) => {
                tracing::warn!(consumer, error = %err, "parked events not read: nothing redriven");
                outcome.failed = 1;
                outcome.failures.push(schema::parked_pk(consumer));
                return outcome;
            }
        };
        let takes = self.consumer.takes();
        for parked in parked {
            match self.redrive(&parked, &takes).await {
                Outcome::Applied => outcome.applied += 1,
                Outcome::Duplicate => outcome.duplicates += 1,
                Outcome::Skipped => outcome.skipped += 1,
                Outcome::Parked => {
                    outcome.parked += 1;
                    outcome.failures.push(parked.record.sk.clone());
                }
                _ => {
                    outcome.failed += 1;
                    outcome.failures.push(parked.record.sk.clone());
                }
            }
        }
        outcome
    }

    async fn redrive(&self, parked: &Parked, takes: &[Takes]) -> Outcome {
        let consumer = self.consumer.name();
        let header = Header::peek(&parked.event);
        let (effect, done) = if taken(takes, &header) {
            let effect = match delivery::decode::<C::Payload>(parked.event.clone(), &header) {
                Ok(envelope) => self.consumer.effect(&envelope).await,
                Err(reason) => Err(HandlerError::poison(reason)),
            };
            match effect {
                Ok(effect) => (effect, Outcome::Applied),
                Err(error @ HandlerError::Poison(_)) => {
                    return self.repark(parked, &error.reason()).await
                }
                Err(error @ HandlerError::Transient(_)) => {
                    tracing::warn!(consumer, parked = %parked.record.sk, error = %error.reason(), "parked event not redriven: left parked");
                    return Outcome::Failed;
                }
            }
        } else {
            (Effect::new(), Outcome::Skipped)
        };
        match self.store.commit_parked(&parked.record, &effect).await {
            Ok(Committed::Applied) => {
                tracing::info!(consumer, parked = %parked.record.sk, event_id = %header.name(), "parked event redriven");
                done
            }
            Ok(Committed::Duplicate) => Outcome::Duplicate,
            Ok(Committed::Refused(reason)) => self.repark(parked, &reason).await,
            Ok(Committed::Waiting { .. }) => Outcome::Failed,
            Err(err) => {
                tracing::warn!(consumer, parked = %parked.record.sk, error = %err, "parked event not redriven: left parked");
                Outcome::Failed
            }
        }
    }

    async fn repark(&self, parked: &Parked, reason: &str) -> Outcome {
        let consumer = self.consumer.name();
        match self.store.repark(&parked.record, reason).await {
            Ok(()) => {
                tracing::error!(consumer, parked = %parked.record.sk, %reason, attempts = parked.attempts + 1, "parked event still poison: left parked");
                Outcome::Parked
            }
            Err(err) => {
                tracing::warn!(consumer, parked = %parked.record.sk, error = %err, "parked event's new reason not recorded");
                Outcome::Failed
            }
        }
    }
}

/// Whether the consumer takes the event's type in its schema version.
fn taken(takes: &[Takes], header: &Header) -> bool {
    takes.iter().any(|t| {
        Some(t.event_type.as_str()) == header.event_type.as_deref()
            && header
                .schema_version
                .is_some_and(|v| t.versions.contains(&v))
    })
}

/// The events at the front of a key's group that form a chain after `first` (each one's
/// predecessor is the one before it), up to `limit`: what one transaction may commit.
fn take_run<P>(
    first: (usize, Work<P>),
    pending: &mut VecDeque<(usize, Work<P>)>,
    limit: usize,
) -> Vec<(usize, Work<P>)> {
    let Work::Apply(_, step, _) = &first.1 else {
        return vec![first];
    };
    let mut last = step.sequence;
    let mut run = vec![first];
    while let Some((_, Work::Apply(_, next, _))) = pending.front() {
        if next.after != last || run.len() >= limit {
            break;
        }
        last = next.sequence;
        run.extend(pending.pop_front());
    }
    run
}
