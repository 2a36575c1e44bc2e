//! A local event source mapping: what Lambda does between a DynamoDB stream and a function.
//!
//! It polls the stream from a per-shard checkpoint, applies the template's `FilterCriteria`,
//! delivers batches of up to `BatchSize` records shaped as Lambda delivers them, and honours the
//! answer: with `ReportBatchItemFailures`, a partial failure is retried from the lowest reported
//! sequence number; a function error bisects the batch when `BisectBatchOnFunctionError` is on;
//! after `MaximumRetryAttempts` (or past `MaximumRecordAgeInSeconds`) the batch's metadata goes
//! to the on-failure destination and the checkpoint moves past it, as on AWS.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use serde_json::{json, Value as Json};

use crate::filter;
use crate::stream::{RawRecord, StreamClient};
use crate::template::StreamSource;

/// Something that can be invoked with a stream batch: the handler in process, a function behind
/// `cargo lambda watch`, or a test double that fails on purpose.
pub trait Invoke: Send + Sync {
    /// `Err` is a function error (the invocation failed as a whole).
    fn invoke(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<DynamoDbEventResponse, String>> + Send;
}

impl<F, Fut> Invoke for F
where
    F: Fn(Event) -> Fut + Send + Sync,
    Fut: Future<Output = Result<DynamoDbEventResponse, String>> + Send,
{
    fn invoke(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<DynamoDbEventResponse, String>> + Send {
        self(event)
    }
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

pub struct Trigger<I> {
    pub source: StreamSource,
    stream: StreamClient,
    stream_arn: String,
    invoker: I,
    checkpoints: HashMap<String, String>,
    /// Messages sent to the on-failure destination (as Lambda sends them to SQS).
    pub on_failure: Vec<Json>,
    on_failure_file: Option<PathBuf>,
    pub stats: TriggerStats,
    /// The last poll filled a batch: more may be waiting.
    last_batch_full: bool,
}

impl<I: Invoke> Trigger<I> {
    pub fn new(source: StreamSource, stream: StreamClient, stream_arn: &str, invoker: I) -> Self {
        Self {
            source,
            stream,
            stream_arn: stream_arn.to_owned(),
            invoker,
            checkpoints: HashMap::new(),
            on_failure: Vec::new(),
            on_failure_file: None,
            stats: TriggerStats::default(),
            last_batch_full: false,
        }
    }

    /// Also append on-failure messages to a JSON-lines file (the local stand-in for the queue).
    pub fn with_on_failure_file(mut self, path: PathBuf) -> Self {
        self.on_failure_file = Some(path);
        self
    }

    pub fn checkpoint(&self, shard: &str) -> Option<&str> {
        self.checkpoints.get(shard).map(String::as_str)
    }

    /// Delivers everything in the stream after the checkpoints, then returns.
    pub async fn drain(&mut self) -> Result<&TriggerStats> {
        for shard in self.stream.shard_ids(&self.stream_arn).await? {
            while self.poll_shard(&shard).await? {}
        }
        Ok(&self.stats)
    }

    /// Polls every shard until `stop` resolves: after batches smaller than `BatchSize` it waits
    /// `interval` (the batching window: Lambda invokes when the batch is full or the window has
    /// passed), after a full one it polls again at once, so a backlog drains without waiting.
    pub async fn follow(
        &mut self,
        interval: std::time::Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(stop);
        loop {
            let mut any_full = false;
            for shard in self.stream.shard_ids(&self.stream_arn).await? {
                self.last_batch_full = false;
                self.poll_shard(&shard).await?;
                any_full |= self.last_batch_full;
            }
            let wait = if any_full {
                std::time::Duration::ZERO
            } else {
                interval
            };
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One batch from one shard; false when the shard had nothing new.
    async fn poll_shard(&mut self, shard: &str) -> Result<bool> {
        let mut batch: Vec<RawRecord> = Vec::new();
        let mut examined: Option<String> = None;
        let mut expired: Vec<RawRecord> = Vec::new();
        let now = now_seconds();
        while batch.len() < self.source.batch_size {
            let after = examined
                .as_deref()
                .or(self.checkpoint(shard))
                .map(str::to_owned);
            let want = self.source.batch_size - batch.len();
            let page = self
                .stream
                .read(&self.stream_arn, shard, after.as_deref(), want)
                .await?;
            if page.is_empty() {
                break;
            }
            // Fewer than asked: the read reached the end of the shard. Lambda invokes with what
            // it has then; reading on while a writer keeps adding would hold the first records
            // back until the batch is full.
            let at_end = page.len() < want;
            for record in page {
                self.stats.records_read += 1;
                examined = Some(record.sequence_number.clone());
                let max_age = self.source.maximum_record_age_seconds;
                if max_age >= 0 && now - record.created_at() > max_age as f64 {
                    expired.push(record);
                } else if filter::passes(&self.source.filter_patterns, &record.json) {
                    batch.push(record);
                } else {
                    self.stats.filtered_out += 1;
                }
            }
            if at_end {
                break;
            }
        }
        let Some(last) = examined else {
            return Ok(false);
        };
        self.last_batch_full = batch.len() >= self.source.batch_size;
        if !expired.is_empty() {
            self.send_to_on_failure(shard, &expired, "RecordAgeExceeded", 0)?;
        }
        if !batch.is_empty() {
            self.deliver(shard, batch).await?;
        }
        self.checkpoints.insert(shard.to_owned(), last);
        Ok(true)
    }

    /// Invokes until the batch is done or given up, with the retry rules of the template.
    async fn deliver(&mut self, shard: &str, batch: Vec<RawRecord>) -> Result<()> {
        let mut queue: VecDeque<(Vec<RawRecord>, i64)> = VecDeque::from([(batch, 0)]);
        while let Some((records, attempts)) = queue.pop_front() {
            let event: Event = serde_json::from_value(json!({
                "Records": records.iter().map(|r| &r.json).collect::<Vec<_>>()
            }))
            .context("building the Lambda event")?;
            self.stats.invocations += 1;
            self.stats.records_delivered += records.len();
            let retry_from = match self.invoker.invoke(event).await {
                Ok(response) if !self.source.report_batch_item_failures => {
                    drop(response);
                    None
                }
                Ok(response) => {
                    let failed: Vec<Option<&str>> = response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.as_deref())
                        .collect();
                    if failed.is_empty() {
                        None
                    } else {
                        self.stats.partial_failures += 1;
                        // An identifier that names no record of the batch fails the whole batch.
                        let lowest = failed.iter().try_fold(usize::MAX, |low, id| {
                            let at = records
                                .iter()
                                .position(|r| Some(r.sequence_number.as_str()) == *id)?;
                            Some(low.min(at))
                        });
                        Some(lowest.unwrap_or(0))
                    }
                }
                Err(error) => {
                    self.stats.function_errors += 1;
                    tracing::warn!(%error, records = records.len(), "stream consumer failed");
                    if self.source.bisect_on_function_error
                        && records.len() > 1
                        && self.may_retry(attempts)
                    {
                        self.stats.bisections += 1;
                        let mut first = records;
                        let second = first.split_off(first.len() / 2);
                        queue.push_front((second, attempts + 1));
                        queue.push_front((first, attempts + 1));
                        continue;
                    }
                    Some(0)
                }
            };
            let Some(from) = retry_from else {
                continue;
            };
            let remaining = records[from..].to_vec();
            if self.may_retry(attempts) {
                self.stats.retries += 1;
                queue.push_front((remaining, attempts + 1));
            } else {
                self.send_to_on_failure(shard, &remaining, "RetryAttemptsExhausted", attempts + 1)?;
            }
        }
        Ok(())
    }

    fn may_retry(&self, attempts: i64) -> bool {
        let max = self.source.maximum_retry_attempts;
        max < 0 || attempts < max
    }

    /// The metadata Lambda sends to a stream's on-failure destination (not the records).
    fn send_to_on_failure(
        &mut self,
        shard: &str,
        records: &[RawRecord],
        condition: &str,
        invoke_count: i64,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        self.stats.batches_to_on_failure += 1;
        self.stats.records_to_on_failure += records.len();
        let message = json!({
            "version": "1.0",
            "requestContext": { "condition": condition, "approximateInvokeCount": invoke_count },
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": last.sequence_number,
                "approximateArrivalOfFirstRecord": first.created_at(),
                "approximateArrivalOfLastRecord": last.created_at(),
                "batchSize": records.len(),
                "streamArn": self.stream_arn,
            }
        });
        tracing::error!(%condition, records = records.len(), start = %first.sequence_number, "batch sent to the on-failure destination");
        if let Some(path) = &self.on_failure_file {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(file, "{message}")?;
        }
        self.on_failure.push(message);
        Ok(())
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
