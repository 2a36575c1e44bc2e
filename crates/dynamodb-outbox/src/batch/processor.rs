//! The processor and its settings: what a batch is applied with.

use std::sync::OnceLock;

use crate::consumer::Consumer;
use crate::source::{Home, Source, SourceKind};
use crate::store::ConsumerStore;

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
/// // A look inside the store: the `testing` feature's `Inspect`.
/// use dynamodb_outbox::testing::Inspect;
/// assert_eq!(store.number("totals", "ACCOUNT#a", "TOTAL", "cents").await.unwrap(), 12);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Processor<C, S> {
    pub(super) consumer: C,
    pub(super) store: S,
    /// Where the records must come from.
    source: Source,
    /// The function's own place, where a source configured by name is.
    home: OnceLock<Home>,
    pub(super) retention_seconds: i64,
    pub(super) concurrency: usize,
    pub(super) events_per_transaction: usize,
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
    ///
    /// # Panics
    ///
    /// When the consumer's upcasters cannot be chained ([`crate::Takes::upcast`]): a gap, two
    /// from one version, or one from a version it handles as it is. The message names the
    /// consumer, the event type and the version to add; nothing is processed with a chain that
    /// would skip the versions it was meant to lift.
    pub fn new(consumer: C, store: S, source: Source) -> Self {
        for takes in consumer.takes() {
            if let Err(why) = takes.check() {
                panic!("consumer {:?} cannot be built: {why}", consumer.name());
            }
        }
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
    pub(super) fn admit(&self, kind: SourceKind, record_arn: Option<&str>) -> Result<(), String> {
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
}
