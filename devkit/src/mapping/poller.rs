//! One shard's poller: the rules a mapping applies to a shard's records, the same for every
//! [`Source`].

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{json, Value as Json};

use super::{Invoke, Position, Record, Source, TriggerStats};
use crate::template::EventSource;

/// What every shard's poller reads and calls, borrowed from the mapping while they run.
pub(super) struct Shared<'a, S, I> {
    pub stream: &'a S,
    pub source: &'a EventSource,
    pub invoker: &'a I,
    pub on_failure_file: Option<&'a Path>,
}

/// Where a shard's poller is, and what it did since the mapping last collected it.
#[derive(Debug, Default)]
pub(super) struct Poller<C> {
    /// The last record the mapping is done with.
    pub checkpoint: Option<String>,
    cursor: C,
    closed: bool,
    /// The last poll found more than it could take: poll again at once.
    more: bool,
    pub stats: TriggerStats,
    pub on_failure: Vec<Json>,
}

/// A batch and how many times it was invoked.
type Attempt = (Vec<Record>, i64);

impl<C: Default + Send> Poller<C> {
    pub async fn drain<S, I>(&mut self, shard: &str, shared: &Shared<'_, S, I>) -> Result<()>
    where
        S: Source<Cursor = C>,
        I: Invoke<S::Event>,
    {
        while self.poll(shard, shared).await? {}
        Ok(())
    }

    pub async fn follow<S, I>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, S, I>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> Result<()>
    where
        S: Source<Cursor = C>,
        I: Invoke<S::Event>,
    {
        loop {
            self.poll(shard, shared).await?;
            let wait = if self.more {
                Duration::ZERO
            } else {
                shared.source.polling_interval
            };
            tokio::select! {
                _ = stopped.changed() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One batch from the shard; false when the shard had nothing new.
    async fn poll<S, I>(&mut self, shard: &str, shared: &Shared<'_, S, I>) -> Result<bool>
    where
        S: Source<Cursor = C>,
        I: Invoke<S::Event>,
    {
        if self.closed {
            return Ok(false);
        }
        let polled = self.poll_once(shard, shared).await;
        if polled.is_err() {
            // The checkpoint moves only once a batch is done: the next poll reads it again.
            self.cursor = C::default();
        }
        polled
    }

    async fn poll_once<S, I>(&mut self, shard: &str, shared: &Shared<'_, S, I>) -> Result<bool>
    where
        S: Source<Cursor = C>,
        I: Invoke<S::Event>,
    {
        let source = shared.source;
        let (mut batch, mut expired, mut examined) = (Vec::new(), Vec::new(), None::<String>);
        let now = now_seconds();
        while batch.len() < source.batch_size && !self.closed {
            let want = source.batch_size - batch.len();
            let after = examined.as_deref().or(self.checkpoint.as_deref());
            let from = after.map_or(Position::Start(source.starting_position), Position::After);
            let page = shared
                .stream
                .read(shard, &mut self.cursor, from, want)
                .await?;
            self.closed = page.closed;
            // Fewer than asked: the read reached the end of the shard. Lambda invokes with what
            // it has then; reading on while a writer keeps adding would hold the first records
            // back until the batch is full.
            let at_end = page.records.len() < want;
            self.more = page.behind || !at_end;
            for record in page.records {
                self.stats.records_read += 1;
                examined = Some(record.sequence_number.clone());
                let max_age = source.maximum_record_age_seconds;
                if max_age >= 0 && now - record.arrival > max_age as f64 {
                    expired.push(record);
                } else if record.passes(&source.filter_patterns) {
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
            // A stream may answer an empty page while records lie further on.
            return Ok(self.more && !self.closed);
        };
        if !expired.is_empty() {
            self.send_to_on_failure(shard, shared, &expired, "RecordAgeExceeded", 0)?;
        }
        if !batch.is_empty() {
            self.deliver(shard, shared, batch).await?;
        }
        self.checkpoint = Some(last);
        Ok(true)
    }

    /// Delivers the records from `start` to `end` with the mapping's rules; false when the shard
    /// ends before `end`.
    pub async fn redrive<S, I>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, S, I>,
        start: &str,
        end: &str,
    ) -> Result<bool>
    where
        S: Source<Cursor = C>,
        I: Invoke<S::Event>,
    {
        let limit = shared.source.batch_size;
        loop {
            let from = self
                .checkpoint
                .as_deref()
                .map_or(Position::At(start), Position::After);
            let page = shared
                .stream
                .read(shard, &mut self.cursor, from, limit)
                .await?;
            if page.records.is_empty() && (!page.behind || page.closed) {
                return Ok(false);
            }
            let (mut batch, mut reached_end) = (Vec::new(), false);
            for record in page.records {
                if reached_end {
                    break;
                }
                reached_end = record.sequence_number == end;
                self.checkpoint = Some(record.sequence_number.clone());
                self.stats.records_read += 1;
                if record.passes(&shared.source.filter_patterns) {
                    batch.push(record);
                } else {
                    self.stats.filtered_out += 1;
                }
            }
            if !batch.is_empty() {
                self.deliver(shard, shared, batch).await?;
            }
            if reached_end || page.closed {
                return Ok(reached_end);
            }
        }
    }

    /// Invokes until the batch is done or given up, with the retry rules of the template.
    async fn deliver<S, I>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, S, I>,
        batch: Vec<Record>,
    ) -> Result<()>
    where
        S: Source<Cursor = C>,
        I: Invoke<S::Event>,
    {
        let source = shared.source;
        let may_retry = |attempts: i64| {
            source.maximum_retry_attempts < 0 || attempts < source.maximum_retry_attempts
        };
        let mut queue: VecDeque<Attempt> = VecDeque::from([(batch, 0)]);
        while let Some((records, attempts)) = queue.pop_front() {
            let event: S::Event = serde_json::from_value(json!({
                "Records": records.iter().map(|r| &r.lambda_shape).collect::<Vec<_>>()
            }))
            .context("building the Lambda event")?;
            self.stats.invocations += 1;
            self.stats.records_delivered += records.len();
            let retry_from = match shared.invoker.invoke(event).await {
                Ok(_) if !source.report_batch_item_failures => None,
                Ok(response) => self.lowest_failed(&records, &serde_json::to_value(response)?),
                Err(error) => {
                    self.stats.function_errors += 1;
                    tracing::warn!(%error, %shard, records = records.len(), "consumer failed");
                    if source.bisect_on_function_error && records.len() > 1 && may_retry(attempts) {
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
            if may_retry(attempts) {
                self.stats.retries += 1;
                queue.push_front((remaining, attempts + 1));
            } else {
                let condition = "RetryAttemptsExhausted";
                self.send_to_on_failure(shard, shared, &remaining, condition, attempts + 1)?;
            }
        }
        Ok(())
    }

    /// Where a partial failure's retry starts: the lowest record the response names (`None`:
    /// no failure). An identifier that names no record of the batch fails the whole batch.
    fn lowest_failed(&mut self, records: &[Record], response: &Json) -> Option<usize> {
        let failures = response["batchItemFailures"].as_array()?;
        if failures.is_empty() {
            return None;
        }
        self.stats.partial_failures += 1;
        let lowest = failures.iter().try_fold(usize::MAX, |lowest, failure| {
            let id = failure["itemIdentifier"].as_str();
            let at = records
                .iter()
                .position(|r| Some(r.sequence_number.as_str()) == id)?;
            Some(lowest.min(at))
        });
        Some(lowest.unwrap_or(0))
    }

    /// The metadata Lambda sends to a stream's on-failure destination (not the records).
    fn send_to_on_failure<S: Source, I>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, S, I>,
        records: &[Record],
        condition: &str,
        invoke_count: i64,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        self.stats.batches_to_on_failure += 1;
        self.stats.records_to_on_failure += records.len();
        tracing::error!(%condition, %shard, records = records.len(), start = %first.sequence_number, "batch sent to the on-failure destination");
        let mut message = json!({
            "version": "1.0",
            "requestContext": { "condition": condition, "approximateInvokeCount": invoke_count },
        });
        message[S::BATCH_INFO] = json!({
                "shardId": shard,
                "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": last.sequence_number,
                "approximateArrivalOfFirstRecord": S::arrival_json(first.arrival),
                "approximateArrivalOfLastRecord": S::arrival_json(last.arrival),
                "batchSize": records.len(),
                "streamArn": shared.stream.arn(),
        });
        if let Some(path) = shared.on_failure_file {
            append_line(path, &message).with_context(|| format!("writing {}", path.display()))?;
        }
        self.on_failure.push(message);
        Ok(())
    }
}

fn append_line(path: &Path, message: &Json) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{message}")
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
