//! A local event source mapping for a Kinesis data stream: what Lambda does between the stream and
//! a function, as [`crate::trigger`] does for a DynamoDB stream.
//!
//! One poller per shard, the shards polled concurrently, the records of a shard delivered in
//! order. A poller holds its shard iterator between polls (as Lambda does, so records written
//! later are seen through it) and opens a new one from its checkpoint when it has none or it
//! expired. Batches of up to `BatchSize` records, in Lambda's Kinesis event shape, after the
//! template's `FilterCriteria`; with `ReportBatchItemFailures` a partial failure is retried from
//! the lowest reported sequence number; a function error bisects the batch when
//! `BisectBatchOnFunctionError` is on; after `MaximumRetryAttempts` (or past
//! `MaximumRecordAgeInSeconds`) the batch's metadata goes to the on-failure destination and the
//! checkpoint moves past it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;

use anyhow::{anyhow, Context, Result};
use aws_lambda_events::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::streams::KinesisEventResponse;
use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use aws_sdk_kinesis::Client;
use base64::Engine as _;
use serde_json::{json, Value as Json};

use crate::filter;
use crate::kinesis::{describe_stream, parse_stream_arn, StreamDescription};
use crate::template::{KinesisSource, StartingPosition};
use crate::trigger::TriggerStats;

/// Something that can be invoked with a Kinesis batch: a handler in process, a function behind
/// `cargo lambda watch`, or a test's handler that fails on purpose.
pub trait InvokeKinesis: Send + Sync {
    /// `Err` is a function error (the invocation failed as a whole).
    fn invoke(
        &self,
        event: KinesisEvent,
    ) -> impl Future<Output = Result<KinesisEventResponse, String>> + Send;
}

impl<F, Fut> InvokeKinesis for F
where
    F: Fn(KinesisEvent) -> Fut + Send + Sync,
    Fut: Future<Output = Result<KinesisEventResponse, String>> + Send,
{
    fn invoke(
        &self,
        event: KinesisEvent,
    ) -> impl Future<Output = Result<KinesisEventResponse, String>> + Send {
        self(event)
    }
}

pub struct KinesisTrigger<I> {
    pub source: KinesisSource,
    client: Client,
    stream: StreamDescription,
    /// The role a deployed mapping invokes with; only its account shows in events.
    invoke_identity_arn: String,
    region: String,
    invoker: I,
    shards: HashMap<String, ShardPosition>,
    /// Messages sent to the on-failure destination (as Lambda sends them to SQS, SNS or S3).
    pub on_failure: Vec<Json>,
    pub stats: TriggerStats,
}

/// Where a shard's poller is: the last record it is done with, and the iterator it holds.
#[derive(Debug, Default)]
struct ShardPosition {
    /// The last GetRecords gave as many records as asked: more may be waiting.
    last_read_full: bool,
    checkpoint: Option<String>,
    iterator: Option<String>,
    /// GetRecords answered without a next iterator: the shard was split or merged away.
    closed: bool,
    stats: TriggerStats,
    on_failure: Vec<Json>,
}

/// One record as read from a shard, with its Lambda shape and what filters see of it.
#[derive(Debug, Clone)]
struct ShardRecord {
    sequence_number: String,
    arrival: DateTime,
    lambda_shape: Json,
    filterable: Json,
}

/// What every shard's poller reads and calls, borrowed from the trigger while they run.
struct Shared<'a, I> {
    client: &'a Client,
    source: &'a KinesisSource,
    stream: &'a StreamDescription,
    invoke_identity_arn: &'a str,
    region: &'a str,
    invoker: &'a I,
}

impl<I: InvokeKinesis> KinesisTrigger<I> {
    /// A mapping from `stream_name` to `invoker` with `source`'s settings (from
    /// [`crate::Template::kinesis_source`]).
    pub async fn new(
        source: KinesisSource,
        client: Client,
        stream_name: &str,
        invoker: I,
    ) -> Result<Self> {
        let (_, stream) = describe_stream(&client, stream_name).await?;
        let (region, account, _) = parse_stream_arn(&stream.arn)?;
        Ok(Self {
            invoke_identity_arn: format!("arn:aws:iam::{account}:role/local-event-source-mapping"),
            region: region.to_owned(),
            source,
            client,
            stream,
            invoker,
            shards: HashMap::new(),
            on_failure: Vec::new(),
            stats: TriggerStats::default(),
        })
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream.arn
    }

    /// The sequence number of the last record of `shard` the mapping is done with.
    pub fn checkpoint(&self, shard: &str) -> Option<&str> {
        self.shards.get(shard)?.checkpoint.as_deref()
    }

    /// Delivers everything in every shard after the checkpoints, the shards in parallel, then
    /// returns. A shard's error stops only that shard; the first one is returned.
    pub async fn drain(&mut self) -> Result<&TriggerStats> {
        self.refresh_shards().await?;
        let (shared, shards) = self.split();
        let results = futures::future::join_all(
            shards
                .iter_mut()
                .map(|(shard, position)| position.drain(shard, &shared)),
        )
        .await;
        self.collect_shard_results();
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(&self.stats)
    }

    /// Polls every shard on its own until `stop` resolves; then each shard finishes the batch it
    /// is on. After a batch smaller than `BatchSize` a shard waits `polling_interval` (the
    /// batching window: Lambda invokes when the batch is full or the window has passed), after a
    /// full one it polls again at once. A shard's error ends the run. Shards that appear later
    /// (a reshard) are not followed.
    pub async fn follow(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        self.refresh_shards().await?;
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let result = {
            let (shared, shards) = self.split();
            let shared = &shared;
            let pollers =
                futures::future::try_join_all(shards.iter_mut().map(|(shard, position)| {
                    let mut stopped = stopped.clone();
                    async move {
                        loop {
                            position.poll(shard, shared).await?;
                            if position.last_read_full {
                                continue;
                            }
                            tokio::select! {
                                _ = stopped.changed() => return Ok::<(), anyhow::Error>(()),
                                _ = tokio::time::sleep(shared.source.polling_interval) => {}
                            }
                        }
                    }
                }));
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

    /// What the mapping would pass on from the start of the stream, every shard's records in
    /// Lambda's shape after the filters, without invoking anything or moving a checkpoint: for a
    /// test that invokes a handler by hand, as a crashed or reordered delivery would.
    pub async fn mapped_records(&mut self) -> Result<Vec<KinesisEventRecord>> {
        self.refresh_shards().await?;
        let (shared, shards) = self.split();
        let mut mapped = Vec::new();
        for shard in shards.keys() {
            let mut reader = ShardPosition::default();
            loop {
                let (records, next, behind) = reader.read(shard, &shared).await?;
                let read_any = !records.is_empty();
                for record in records {
                    if filter::passes(&shared.source.filter_patterns, &record.filterable) {
                        mapped.push(
                            serde_json::from_value(record.lambda_shape)
                                .context("a record in Lambda's Kinesis shape")?,
                        );
                    }
                }
                reader.iterator = next;
                if reader.iterator.is_none() || !(read_any || behind) {
                    break;
                }
            }
        }
        Ok(mapped)
    }

    /// Takes back a batch the mapping gave up on, from the message it sent to the on-failure
    /// destination: Lambda sends only the shard and the sequence range, and the records stay in
    /// the stream for its retention period (24 hours in the template), so the range is read
    /// again and delivered with the mapping's own rules (filters, retries, bisect; a batch that
    /// fails again is reported to [`Self::on_failure`] again). The checkpoints do not move.
    pub async fn redrive(&mut self, message: &Json) -> Result<&TriggerStats> {
        let info = &message["KinesisBatchInfo"];
        let field = |name: &str| {
            info[name].as_str().map(str::to_owned).ok_or_else(|| {
                anyhow!("the on-failure message has no KinesisBatchInfo.{name}: {message}")
            })
        };
        let (shard, start, end) = (
            field("shardId")?,
            field("startSequenceNumber")?,
            field("endSequenceNumber")?,
        );
        let (shared, _) = self.split();
        let mut position = ShardPosition {
            iterator: Some(
                shared
                    .client
                    .get_shard_iterator()
                    .stream_name(&shared.stream.name)
                    .shard_id(&shard)
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .starting_sequence_number(&start)
                    .send()
                    .await
                    .map_err(|e| anyhow!("GetShardIterator {shard} at {start}: {}", sdk_error(e)))?
                    .shard_iterator
                    .ok_or_else(|| anyhow!("GetShardIterator {shard}: no iterator"))?,
            ),
            ..ShardPosition::default()
        };
        let mut reached_end = false;
        while !reached_end {
            let (records, next, behind) = position.read(&shard, &shared).await?;
            position.iterator = next;
            if records.is_empty() && (!behind || position.iterator.is_none()) {
                break;
            }
            let mut batch = Vec::new();
            for record in records {
                if reached_end {
                    break;
                }
                reached_end = record.sequence_number == end;
                position.stats.records_read += 1;
                if filter::passes(&shared.source.filter_patterns, &record.filterable) {
                    batch.push(record);
                } else {
                    position.stats.filtered_out += 1;
                }
            }
            if !batch.is_empty() {
                position.deliver(&shard, &shared, batch).await?;
            }
        }
        if !reached_end {
            return Err(anyhow!(
                "{shard} ends before {end}: the batch's records left the stream (past its retention?)"
            ));
        }
        self.stats.add(&position.stats);
        self.on_failure.append(&mut position.on_failure);
        Ok(&self.stats)
    }

    async fn refresh_shards(&mut self) -> Result<()> {
        let (_, stream) = describe_stream(&self.client, &self.stream.name).await?;
        for shard in &stream.shard_ids {
            self.shards.entry(shard.clone()).or_default();
        }
        self.stream = stream;
        Ok(())
    }

    /// What the pollers share, and the shards they each own, borrowed apart.
    fn split(&mut self) -> (Shared<'_, I>, &mut HashMap<String, ShardPosition>) {
        let shared = Shared {
            client: &self.client,
            source: &self.source,
            stream: &self.stream,
            invoke_identity_arn: &self.invoke_identity_arn,
            region: &self.region,
            invoker: &self.invoker,
        };
        (shared, &mut self.shards)
    }

    fn collect_shard_results(&mut self) {
        for position in self.shards.values_mut() {
            self.stats.add(&std::mem::take(&mut position.stats));
            self.on_failure.append(&mut position.on_failure);
        }
    }
}

impl ShardPosition {
    async fn drain<I: InvokeKinesis>(&mut self, shard: &str, shared: &Shared<'_, I>) -> Result<()> {
        while self.poll(shard, shared).await? {}
        Ok(())
    }

    /// One GetRecords and the batch it gives; false when the shard had nothing new.
    async fn poll<I: InvokeKinesis>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, I>,
    ) -> Result<bool> {
        if self.closed {
            return Ok(false);
        }
        let (records, next_iterator, behind) = self.read(shard, shared).await?;
        self.last_read_full = records.len() >= shared.source.batch_size;
        let Some(last) = records.last().map(|r| r.sequence_number.clone()) else {
            self.iterator = next_iterator;
            self.closed = self.iterator.is_none();
            // Kinesis may answer an empty page while records lie further on.
            return Ok(behind && !self.closed);
        };
        let max_age = shared.source.maximum_record_age_seconds;
        let now = DateTime::from(std::time::SystemTime::now()).as_secs_f64();
        let mut expired = Vec::new();
        let mut batch = Vec::new();
        for record in records {
            self.stats.records_read += 1;
            if max_age >= 0 && now - record.arrival.as_secs_f64() > max_age as f64 {
                expired.push(record);
            } else if filter::passes(&shared.source.filter_patterns, &record.filterable) {
                batch.push(record);
            } else {
                self.stats.filtered_out += 1;
            }
        }
        if !expired.is_empty() {
            self.send_to_on_failure(shard, shared, &expired, "RecordAgeExceeded", 0);
        }
        if !batch.is_empty() {
            self.deliver(shard, shared, batch).await?;
        }
        // Only now that the batch is done: after an error the next poll reopens at the
        // checkpoint and reads the batch again.
        self.checkpoint = Some(last);
        self.iterator = next_iterator;
        self.closed = self.iterator.is_none();
        Ok(true)
    }

    /// Up to `BatchSize` records from the held iterator (or a new one), the next iterator, and
    /// whether Kinesis says the shard has more.
    async fn read<I>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, I>,
    ) -> Result<(Vec<ShardRecord>, Option<String>, bool)> {
        let limit = i32::try_from(shared.source.batch_size.clamp(1, 10_000))?;
        let iterator = match self.iterator.take() {
            Some(held) => held,
            None => self.open_iterator(shard, shared).await?,
        };
        let out = match shared
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(limit)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_expired_iterator_exception()) =>
            {
                // Iterators last five minutes; a poller that waited longer starts again from
                // its checkpoint.
                let fresh = self.open_iterator(shard, shared).await?;
                shared
                    .client
                    .get_records()
                    .shard_iterator(fresh)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(|e| anyhow!("GetRecords {shard}: {}", sdk_error(e)))?
            }
            Err(e) => return Err(anyhow!("GetRecords {shard}: {}", sdk_error(e))),
        };
        let behind = out.millis_behind_latest.is_some_and(|ms| ms > 0);
        let records = out
            .records
            .iter()
            .map(|record| shard_record(record, shard, shared))
            .collect::<Result<Vec<_>>>()?;
        Ok((records, out.next_shard_iterator, behind))
    }

    async fn open_iterator<I>(&self, shard: &str, shared: &Shared<'_, I>) -> Result<String> {
        let request = shared
            .client
            .get_shard_iterator()
            .stream_name(&shared.stream.name)
            .shard_id(shard);
        let request = match (&self.checkpoint, shared.source.starting_position) {
            (Some(sequence), _) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
            (None, StartingPosition::TrimHorizon) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, StartingPosition::Latest) => {
                request.shard_iterator_type(ShardIteratorType::Latest)
            }
        };
        request
            .send()
            .await
            .map_err(|e| anyhow!("GetShardIterator {shard}: {}", sdk_error(e)))?
            .shard_iterator
            .ok_or_else(|| anyhow!("GetShardIterator {shard}: no iterator"))
    }

    /// Invokes until the batch is done or given up, with the retry rules of the template.
    async fn deliver<I: InvokeKinesis>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, I>,
        batch: Vec<ShardRecord>,
    ) -> Result<()> {
        let source = shared.source;
        let may_retry = |attempts: i64| {
            source.maximum_retry_attempts < 0 || attempts < source.maximum_retry_attempts
        };
        let mut queue: VecDeque<(Vec<ShardRecord>, i64)> = VecDeque::from([(batch, 0)]);
        while let Some((records, attempts)) = queue.pop_front() {
            let event: KinesisEvent = serde_json::from_value(json!({
                "Records": records.iter().map(|r| &r.lambda_shape).collect::<Vec<_>>()
            }))
            .context("building the Lambda Kinesis event")?;
            self.stats.invocations += 1;
            self.stats.records_delivered += records.len();
            let retry_from = match shared.invoker.invoke(event).await {
                Ok(_) if !source.report_batch_item_failures => None,
                Ok(response) if response.batch_item_failures.is_empty() => None,
                Ok(response) => {
                    self.stats.partial_failures += 1;
                    // An identifier that names no record of the batch fails the whole batch.
                    let lowest = response.batch_item_failures.iter().try_fold(
                        usize::MAX,
                        |lowest, failure| {
                            let at = records.iter().position(|r| {
                                Some(r.sequence_number.as_str())
                                    == failure.item_identifier.as_deref()
                            })?;
                            Some(lowest.min(at))
                        },
                    );
                    Some(lowest.unwrap_or(0))
                }
                Err(error) => {
                    self.stats.function_errors += 1;
                    tracing::warn!(%error, %shard, records = records.len(), "Kinesis consumer failed");
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
                self.send_to_on_failure(shard, shared, &remaining, condition, attempts + 1);
            }
        }
        Ok(())
    }

    /// The metadata Lambda sends to a Kinesis mapping's on-failure destination (not the records).
    fn send_to_on_failure<I>(
        &mut self,
        shard: &str,
        shared: &Shared<'_, I>,
        records: &[ShardRecord],
        condition: &str,
        invoke_count: i64,
    ) {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return;
        };
        self.stats.batches_to_on_failure += 1;
        self.stats.records_to_on_failure += records.len();
        let arrival = |record: &ShardRecord| {
            record
                .arrival
                .fmt(DateTimeFormat::DateTime)
                .unwrap_or_default()
        };
        tracing::error!(%condition, %shard, records = records.len(), start = %first.sequence_number, "Kinesis batch sent to the on-failure destination");
        self.on_failure.push(json!({
            "version": "1.0",
            "requestContext": { "condition": condition, "approximateInvokeCount": invoke_count },
            "KinesisBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": last.sequence_number,
                "approximateArrivalOfFirstRecord": arrival(first),
                "approximateArrivalOfLastRecord": arrival(last),
                "batchSize": records.len(),
                "streamArn": shared.stream.arn,
            }
        }));
    }
}

/// A GetRecords record as Lambda delivers it in a Kinesis event's `Records[]`.
fn shard_record<I>(record: &Record, shard: &str, shared: &Shared<'_, I>) -> Result<ShardRecord> {
    let arrival = record
        .approximate_arrival_timestamp
        .ok_or_else(|| anyhow!("record {} has no arrival time", record.sequence_number))?;
    let (lambda_shape, filterable) = lambda_record(
        record,
        shard,
        &shared.stream.arn,
        shared.region,
        Some(shared.invoke_identity_arn),
    )?;
    Ok(ShardRecord {
        sequence_number: record.sequence_number.clone(),
        arrival,
        filterable,
        lambda_shape,
    })
}

/// A GetRecords record in Lambda's Kinesis event shape, and what a mapping's filter sees of it
/// (the metadata and, when it is JSON, the data itself, as Lambda's filters do).
pub(crate) fn lambda_record(
    record: &Record,
    shard: &str,
    stream_arn: &str,
    region: &str,
    invoke_identity_arn: Option<&str>,
) -> Result<(Json, Json)> {
    let arrival = record
        .approximate_arrival_timestamp
        .ok_or_else(|| anyhow!("record {} has no arrival time", record.sequence_number))?;
    let data = record.data.as_ref();
    let mut kinesis = json!({
        "kinesisSchemaVersion": "1.0",
        "partitionKey": record.partition_key,
        "sequenceNumber": record.sequence_number,
        "data": base64::engine::general_purpose::STANDARD.encode(data),
        "approximateArrivalTimestamp": millisecond_seconds(&arrival),
    });
    if let Some(encryption) = &record.encryption_type {
        kinesis["encryptionType"] = json!(encryption.as_str());
    }
    let mut filterable = kinesis.clone();
    filterable["data"] = serde_json::from_slice(data).unwrap_or(Json::Null);
    let mut lambda_shape = json!({
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{shard}:{}", record.sequence_number),
        "eventName": "aws:kinesis:record",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    });
    if let Some(arn) = invoke_identity_arn {
        lambda_shape["invokeIdentityArn"] = json!(arn);
    }
    Ok((lambda_shape, filterable))
}

/// Seconds since the epoch with milliseconds, as Lambda writes `approximateArrivalTimestamp`.
fn millisecond_seconds(time: &DateTime) -> f64 {
    (time.to_millis().unwrap_or(0) as f64) / 1000.0
}

fn sdk_error<
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    error: aws_sdk_kinesis::error::SdkError<E, R>,
) -> String {
    aws_sdk_kinesis::error::DisplayErrorContext(error).to_string()
}
