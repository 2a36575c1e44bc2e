//! A local event source mapping: what Lambda does between a stream and a function, written once
//! for every stream it reads ([`Source`]: a DynamoDB stream in [`crate::trigger`], a Kinesis data
//! stream in [`crate::kinesis_trigger`]).
//!
//! One poller per shard, each resuming from its checkpoint (the last record it is done with).
//! A poll reads up to `BatchSize` records, sends those older than `MaximumRecordAgeInSeconds` to
//! the on-failure destination, keeps those the template's `FilterCriteria` pass, and invokes the
//! function with them in Lambda's event shape. With `ReportBatchItemFailures` a partial failure is
//! retried from the lowest reported sequence number; a function error bisects the batch when
//! `BisectBatchOnFunctionError` is on; after `MaximumRetryAttempts` the batch's metadata (never
//! the records) goes to the on-failure destination and the checkpoint moves past it, as on AWS.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::streams::{DynamoDbEventResponse, KinesisEventResponse};
use lambda_runtime::{Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use crate::filter;
use crate::template::{EventSource, StartingPosition};

mod poller;
/// An SQS queue's mapping: no shards or checkpoints, the queue keeps what is not deleted.
pub mod sqs;

use poller::{Poller, Shared};

/// An event a mapping invokes a function with, and the answer it reads back from the function
/// (`batchItemFailures`): the pairing Lambda makes for each kind of source.
pub trait Batch: Send + 'static {
    type Response: Serialize + Send;
}

impl Batch for Event {
    type Response = DynamoDbEventResponse;
}

impl Batch for KinesisEvent {
    type Response = KinesisEventResponse;
}

impl Batch for SqsEvent {
    type Response = SqsBatchResponse;
}

/// A function a mapping invokes with a batch of `E`: a handler in process, a function behind
/// `cargo lambda watch`, or a test's handler that fails on purpose. `E` is a table stream's event
/// unless named (`Invoke<KinesisEvent>`, `Invoke<SqsEvent>`), so `impl Invoke` is a stream
/// consumer.
pub trait Invoke<E: Batch = Event>: Send + Sync {
    /// `Err` is a function error (the invocation failed as a whole).
    fn invoke(&self, event: E) -> impl Future<Output = Result<E::Response, String>> + Send;
}

impl<E, F, Fut> Invoke<E> for F
where
    E: Batch,
    F: Fn(E) -> Fut + Send + Sync,
    Fut: Future<Output = Result<E::Response, String>> + Send,
{
    fn invoke(&self, event: E) -> impl Future<Output = Result<E::Response, String>> + Send {
        self(event)
    }
}

/// A function's handler invoked in process with `processor`, as the Lambda runtime calls it:
/// `handle` is the function's own entry point, so its logs and metrics are the deployed
/// function's.
pub fn handler<E, P, Er, Fut>(
    processor: P,
    handle: impl Fn(Arc<P>, LambdaEvent<E>) -> Fut + Send + Sync,
) -> impl Invoke<E>
where
    E: Batch,
    P: Send + Sync,
    Er: std::fmt::Display,
    Fut: Future<Output = Result<E::Response, Er>> + Send,
{
    let processor = Arc::new(processor);
    move |event: E| {
        let answer = handle(
            processor.clone(),
            LambdaEvent::new(event, Context::default()),
        );
        async move { answer.await.map_err(|e| e.to_string()) }
    }
}

/// Where a read starts in a shard.
#[derive(Debug, Clone, Copy)]
pub enum Position<'a> {
    /// No checkpoint yet: where the mapping's `StartingPosition` says.
    Start(StartingPosition),
    After(&'a str),
    At(&'a str),
}

impl<'a> Position<'a> {
    /// The `ShardIteratorType` that opens an iterator here, and its sequence number: the
    /// DynamoDB Streams and Kinesis APIs name them alike.
    pub fn iterator(self) -> (&'static str, Option<&'a str>) {
        match self {
            Position::After(sequence) => ("AFTER_SEQUENCE_NUMBER", Some(sequence)),
            Position::At(sequence) => ("AT_SEQUENCE_NUMBER", Some(sequence)),
            Position::Start(StartingPosition::TrimHorizon) => ("TRIM_HORIZON", None),
            Position::Start(StartingPosition::Latest) => ("LATEST", None),
        }
    }
}

/// One record as read from a shard.
#[derive(Debug, Clone)]
pub struct Record {
    pub sequence_number: String,
    /// Seconds since the epoch at which the stream took the record.
    pub arrival: f64,
    /// The record as Lambda puts it in the event's `Records[]`.
    pub lambda_shape: Json,
    /// What the filters see when it differs from the Lambda shape (Kinesis: the data decoded).
    pub filterable: Option<Json>,
}

impl Record {
    fn passes(&self, patterns: &[Json]) -> bool {
        filter::passes(
            patterns,
            self.filterable.as_ref().unwrap_or(&self.lambda_shape),
        )
    }
}

/// What one read of a shard gave.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// The stream says more records lie further on, even if this page is short or empty.
    pub behind: bool,
    /// The shard was split or merged away: nothing more will come from it.
    pub closed: bool,
}

/// A stream a mapping reads: its shards, their records from a position, and the shape of what
/// Lambda sends for it (event, response, on-failure message).
pub trait Source: Send + Sync {
    /// The event a function receives.
    type Event: Batch + DeserializeOwned;
    /// One record of [`Self::Event`], for [`Mapping::mapped_records`].
    type Record: DeserializeOwned;
    /// What a poller keeps of its shard between reads (an open iterator, or nothing).
    type Cursor: Default + Send;
    /// The key of the on-failure message's batch description (`DDBStreamBatchInfo`).
    const BATCH_INFO: &'static str;
    /// Whether [`Mapping::drain`] polls the shards at the same time (Kinesis), or one after the
    /// other in the order described, so a parent shard is drained before its children
    /// (DynamoDB). [`Mapping::follow`] polls every shard on its own either way.
    const PARALLEL_SHARDS: bool;

    fn arn(&self) -> &str;
    fn shard_ids(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Up to `limit` records of `shard`: from the cursor when it holds a place, else from `from`.
    fn read(
        &self,
        shard: &str,
        cursor: &mut Self::Cursor,
        from: Position<'_>,
        limit: usize,
    ) -> impl Future<Output = Result<Page>> + Send;
    /// A record's arrival as the on-failure message writes it.
    fn arrival_json(seconds: f64) -> Json;
}

/// Counters of what the mapping did, for the demo, tests and benchmarks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TriggerStats {
    pub records_read: usize,
    pub filtered_out: usize,
    pub invocations: usize,
    pub records_delivered: usize,
    pub partial_failures: usize,
    pub function_errors: usize,
    pub retries: usize,
    pub bisections: usize,
    pub batches_to_on_failure: usize,
    pub records_to_on_failure: usize,
}

impl TriggerStats {
    /// Adds another mapping's (or shard's) counts to these.
    pub fn add(&mut self, other: &TriggerStats) {
        self.records_read += other.records_read;
        self.filtered_out += other.filtered_out;
        self.invocations += other.invocations;
        self.records_delivered += other.records_delivered;
        self.partial_failures += other.partial_failures;
        self.function_errors += other.function_errors;
        self.retries += other.retries;
        self.bisections += other.bisections;
        self.batches_to_on_failure += other.batches_to_on_failure;
        self.records_to_on_failure += other.records_to_on_failure;
    }
}

/// Each shard's poller, by shard id.
type Shards<C> = Vec<(String, Poller<C>)>;

/// A mapping from the stream `S` to the function `I`, with a template's settings.
pub struct Mapping<S: Source, I> {
    /// The template's settings; a test may change them before it drains.
    pub source: EventSource,
    stream: S,
    invoker: I,
    /// In the order the stream describes them.
    shards: Shards<S::Cursor>,
    /// Messages sent to the on-failure destination (as Lambda sends them to SQS, SNS or S3).
    pub on_failure: Vec<Json>,
    on_failure_file: Option<PathBuf>,
    pub stats: TriggerStats,
}

impl<S, I> Mapping<S, I>
where
    S: Source,
    I: Invoke<S::Event>,
{
    pub fn new(source: EventSource, stream: S, invoker: I) -> Self {
        Self {
            source,
            stream,
            invoker,
            shards: Vec::new(),
            on_failure: Vec::new(),
            on_failure_file: None,
            stats: TriggerStats::default(),
        }
    }

    /// Also append on-failure messages to a JSON-lines file (the local stand-in for the queue).
    pub fn with_on_failure_file(mut self, path: PathBuf) -> Self {
        self.on_failure_file = Some(path);
        self
    }

    pub fn stream_arn(&self) -> &str {
        self.stream.arn()
    }

    /// The sequence number of the last record of `shard` the mapping is done with.
    pub fn checkpoint(&self, shard: &str) -> Option<&str> {
        let (_, poller) = self.shards.iter().find(|(id, _)| id == shard)?;
        poller.checkpoint.as_deref()
    }

    /// Delivers everything in every shard after the checkpoints, then returns. A shard's error
    /// stops only that shard; the first one is returned.
    pub async fn drain(&mut self) -> Result<&TriggerStats> {
        self.refresh_shards().await?;
        let (shared, shards) = self.split();
        let results = if S::PARALLEL_SHARDS {
            let drains = shards.iter_mut().map(|(id, p)| p.drain(id, &shared));
            futures::future::join_all(drains).await
        } else {
            let mut results = Vec::new();
            for (id, poller) in shards.iter_mut() {
                results.push(poller.drain(id, &shared).await);
            }
            results
        };
        self.collect_shard_results();
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(&self.stats)
    }

    /// Polls every shard on its own until `stop` resolves; then each shard finishes the batch it
    /// is on. After a batch smaller than `BatchSize` a shard waits `polling_interval` (the
    /// batching window: Lambda invokes when the batch is full or the window has passed), after a
    /// full one it polls again at once, so a backlog drains without waiting. A shard's error
    /// ends the run. Shards that appear later (a reshard) are not followed.
    pub async fn follow(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        self.refresh_shards().await?;
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let result = {
            let (shared, shards) = self.split();
            let shared = &shared;
            let pollers = futures::future::try_join_all(
                shards
                    .iter_mut()
                    .map(|(id, poller)| poller.follow(id, shared, stopped.clone())),
            );
            tokio::pin!(pollers, stop);
            tokio::select! {
                result = &mut pollers => result,
                _ = &mut stop => {
                    let _ = stopping.send(true);
                    pollers.await
                }
            }
        };
        self.collect_shard_results();
        result.map(drop)
    }

    /// What the mapping would pass on from its starting position, every shard's records in
    /// Lambda's shape after the filters, without invoking anything or moving a checkpoint: for a
    /// test that invokes a handler by hand, as a crashed or reordered delivery would.
    pub async fn mapped_records(&mut self) -> Result<Vec<S::Record>> {
        self.refresh_shards().await?;
        let mut mapped = Vec::new();
        for (shard, _) in &self.shards {
            let (mut cursor, mut after) = (S::Cursor::default(), None);
            loop {
                let start = Position::Start(self.source.starting_position);
                let from = after.as_deref().map_or(start, Position::After);
                let limit = self.source.batch_size;
                let page = self.stream.read(shard, &mut cursor, from, limit).await?;
                let read_any = !page.records.is_empty();
                for record in page.records {
                    after = Some(record.sequence_number.clone());
                    if record.passes(&self.source.filter_patterns) {
                        mapped.push(serde_json::from_value(record.lambda_shape)?);
                    }
                }
                if page.closed || !(read_any || page.behind) {
                    break;
                }
            }
        }
        Ok(mapped)
    }

    /// Takes back a batch the mapping gave up on, from the message it sent to the on-failure
    /// destination: Lambda sends only the shard and the sequence range, and the records stay in
    /// the stream for its retention period (24 hours), so the range is read again and delivered
    /// with the mapping's own rules (filters, retries, bisect; a batch that fails again is
    /// reported to [`Self::on_failure`] again). The checkpoints do not move.
    pub async fn redrive(&mut self, message: &Json) -> Result<&TriggerStats> {
        let info = &message[S::BATCH_INFO];
        let field = |name: &str| {
            info[name].as_str().map(str::to_owned).ok_or_else(|| {
                anyhow!(
                    "the on-failure message has no {}.{name}: {message}",
                    S::BATCH_INFO
                )
            })
        };
        let shard = field("shardId")?;
        let (start, end) = (field("startSequenceNumber")?, field("endSequenceNumber")?);
        let (shared, _) = self.split();
        let mut poller = Poller::default();
        let reached_end = poller.redrive(&shard, &shared, &start, &end).await?;
        self.stats.add(&poller.stats);
        self.on_failure.append(&mut poller.on_failure);
        if !reached_end {
            return Err(anyhow!(
                "{shard} ends before {end}: the batch's records left the stream (past its retention?)"
            ));
        }
        Ok(&self.stats)
    }

    async fn refresh_shards(&mut self) -> Result<()> {
        for shard in self.stream.shard_ids().await? {
            if !self.shards.iter().any(|(id, _)| *id == shard) {
                self.shards.push((shard, Poller::default()));
            }
        }
        Ok(())
    }

    /// What the pollers share, and the shards they each own, borrowed apart.
    fn split(&mut self) -> (Shared<'_, S, I>, &mut Shards<S::Cursor>) {
        let shared = Shared {
            stream: &self.stream,
            source: &self.source,
            invoker: &self.invoker,
            on_failure_file: self.on_failure_file.as_deref(),
        };
        (shared, &mut self.shards)
    }

    fn collect_shard_results(&mut self) {
        for (_, poller) in &mut self.shards {
            self.stats.add(&std::mem::take(&mut poller.stats));
            self.on_failure.append(&mut poller.on_failure);
        }
    }
}
