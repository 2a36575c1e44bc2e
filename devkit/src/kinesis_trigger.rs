//! The local event source mapping of a Kinesis data stream ([`crate::mapping`] over the Kinesis
//! API): what Lambda does between the stream and a function.
//!
//! A shard's poller holds its shard iterator between polls (as Lambda does, so records written
//! later are seen through it) and opens a new one from its checkpoint when it has none or it
//! expired. The shards are polled at the same time.

use anyhow::{anyhow, Result};
use aws_lambda_events::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use aws_sdk_kinesis::types::{Record as KinesisRecord, ShardIteratorType};
use aws_sdk_kinesis::Client;
use serde_json::{json, Value as Json};

use outboxctl::kinesis::lambda_record;

use crate::kinesis::{describe_stream, parse_stream_arn, StreamDescription};
use crate::local::sdk_error;
use crate::mapping::{Invoke, Mapping, Page, Position, Record, Source};
use crate::template::EventSource;

/// A mapping from a Kinesis data stream to a function.
pub type KinesisTrigger<I> = Mapping<KinesisStream, I>;

/// A Kinesis data stream, read with the Kinesis API.
pub struct KinesisStream {
    client: Client,
    stream: StreamDescription,
    /// The role a deployed mapping invokes with; only its account shows in events.
    invoke_identity_arn: String,
    region: String,
}

impl<I: Invoke<KinesisEvent>> KinesisTrigger<I> {
    /// A mapping from `stream_name` to `invoker` with `source`'s settings (from
    /// [`crate::Template::kinesis_source`]).
    pub async fn open(
        source: EventSource,
        client: Client,
        stream_name: &str,
        invoker: I,
    ) -> Result<Self> {
        let (_, stream) = describe_stream(&client, stream_name).await?;
        let (region, account, _) = parse_stream_arn(&stream.arn)?;
        let kinesis = KinesisStream {
            invoke_identity_arn: format!("arn:aws:iam::{account}:role/local-event-source-mapping"),
            region: region.to_owned(),
            client,
            stream,
        };
        Ok(Mapping::new(source, kinesis, invoker))
    }
}

impl Source for KinesisStream {
    type Event = KinesisEvent;
    type Record = KinesisEventRecord;
    /// The shard iterator the poller holds.
    type Cursor = Option<String>;
    const BATCH_INFO: &'static str = "KinesisBatchInfo";
    const PARALLEL_SHARDS: bool = true;

    fn arn(&self) -> &str {
        &self.stream.arn
    }

    async fn shard_ids(&self) -> Result<Vec<String>> {
        let (_, stream) = describe_stream(&self.client, &self.stream.name).await?;
        Ok(stream.shard_ids)
    }

    async fn read(
        &self,
        shard: &str,
        cursor: &mut Option<String>,
        from: Position<'_>,
        limit: usize,
    ) -> Result<Page> {
        let limit = i32::try_from(limit.clamp(1, 10_000))?;
        let iterator = match cursor.take() {
            Some(held) => held,
            None => self.open_iterator(shard, from).await?,
        };
        let get = |iterator: String| {
            self.client
                .get_records()
                .shard_iterator(iterator)
                .limit(limit)
                .send()
        };
        let out = match get(iterator).await {
            // Iterators last five minutes; a poller that waited longer starts again from its
            // checkpoint.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_expired_iterator_exception()) =>
            {
                get(self.open_iterator(shard, from).await?).await
            }
            other => other,
        };
        let out = out.map_err(|e| sdk_error(format!("GetRecords {shard}"), e))?;
        let records = out.records.iter().map(|record| self.record(record, shard));
        *cursor = out.next_shard_iterator.clone();
        Ok(Page {
            records: records.collect::<Result<_>>()?,
            behind: out.millis_behind_latest.is_some_and(|ms| ms > 0),
            closed: out.next_shard_iterator.is_none(),
        })
    }

    /// An ISO 8601 time, as Lambda writes a Kinesis batch's arrival times.
    fn arrival_json(seconds: f64) -> Json {
        let time = DateTime::from_millis((seconds * 1000.0).round() as i64);
        json!(time.fmt(DateTimeFormat::DateTime).unwrap_or_default())
    }
}

impl KinesisStream {
    async fn open_iterator(&self, shard: &str, from: Position<'_>) -> Result<String> {
        let (kind, sequence) = from.iterator();
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream.name)
            .shard_id(shard);
        let request = request
            .shard_iterator_type(ShardIteratorType::from(kind))
            .set_starting_sequence_number(sequence.map(str::to_owned));
        let what = format!("GetShardIterator {shard}");
        let out = request.send().await.map_err(|e| sdk_error(&what, e))?;
        out.shard_iterator
            .ok_or_else(|| anyhow!("{what}: no iterator"))
    }

    /// A GetRecords record as Lambda delivers it in a Kinesis event's `Records[]`.
    fn record(&self, record: &KinesisRecord, shard: &str) -> Result<Record> {
        let (arn, identity) = (&self.stream.arn, Some(self.invoke_identity_arn.as_str()));
        let (lambda_shape, filterable) = lambda_record(record, shard, arn, &self.region, identity)?;
        Ok(Record {
            sequence_number: record.sequence_number.clone(),
            arrival: lambda_shape["kinesis"]["approximateArrivalTimestamp"]
                .as_f64()
                .unwrap_or(0.0),
            lambda_shape,
            filterable: Some(filterable),
        })
    }
}
