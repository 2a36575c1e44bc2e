//! Reads a table's stream with the DynamoDB Streams API (DescribeStream, GetShardIterator,
//! GetRecords) and hands records over in the exact shape Lambda delivers them.
//!
//! The API is called as signed JSON over HTTP rather than through the Streams SDK: GetRecords
//! returns records that are already Lambda's `Records[]` entries but for `eventSourceARN`, so
//! passing them through keeps every field (the SDK's types would drop what they do not model, and
//! read dynoxide's `userIdentity` as empty).

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::EventRecord;
use outboxctl::ddb_stream::StreamsApi;
use serde_json::{json, Value as Json};

use crate::mapping::Position;
use crate::template::StartingPosition;

/// The operator's client of the Streams API (`outboxctl replay` reads with it too).
#[derive(Clone)]
pub struct StreamClient {
    api: StreamsApi,
}

/// One record as read from the stream: its sequence number and its Lambda-shaped JSON.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub sequence_number: String,
    pub json: Json,
}

impl RawRecord {
    pub fn to_event_record(&self) -> Result<EventRecord> {
        serde_json::from_value(self.json.clone()).context("stream record is not a Lambda record")
    }
}

impl StreamClient {
    pub fn new(endpoint: &str, config: &SdkConfig) -> Result<Self> {
        let region = config
            .region()
            .map_or("us-east-1".into(), |r| r.to_string());
        Ok(Self {
            api: StreamsApi::new(endpoint, &region, config)?,
        })
    }

    pub async fn shard_ids(&self, stream_arn: &str) -> Result<Vec<String>> {
        let mut shards = Vec::new();
        loop {
            let mut body = json!({ "StreamArn": stream_arn });
            if let Some(last) = shards.last() {
                body["ExclusiveStartShardId"] = json!(last);
            }
            let out = self.api.call("DescribeStream", body).await?;
            let description = &out["StreamDescription"];
            let listed = description["Shards"].as_array().into_iter().flatten();
            shards.extend(listed.filter_map(|shard| shard["ShardId"].as_str().map(str::to_owned)));
            if description["LastEvaluatedShardId"].is_null() {
                return Ok(shards);
            }
        }
    }

    /// Every record of stream `arn` past `after` (each shard's last record read, by shard id),
    /// shard by shard in stream order; `after` moves past them. An empty `after` reads the
    /// stream from its start.
    pub async fn read_all(
        &self,
        arn: &str,
        after: &mut HashMap<String, String>,
    ) -> Result<Vec<RawRecord>> {
        let mut records = Vec::new();
        for shard in self.shard_ids(arn).await? {
            loop {
                let from = after.get(&shard).map(String::as_str);
                let page = self.read(arn, &shard, from, 1000).await?;
                let Some(last) = page.last() else { break };
                after.insert(shard.clone(), last.sequence_number.clone());
                records.extend(page);
            }
        }
        Ok(records)
    }

    /// Up to `limit` records after `after` (from the start of the shard when `None`).
    pub async fn read(
        &self,
        stream_arn: &str,
        shard_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawRecord>> {
        let from = after.map_or(
            Position::Start(StartingPosition::TrimHorizon),
            Position::After,
        );
        self.read_from(stream_arn, shard_id, from, limit).await
    }

    /// Up to `limit` records of a shard from `from`.
    ///
    /// The iterator is opened afresh on every call: a held iterator that reached the end of a
    /// shard does not see later records on every server, and Lambda's poller also resumes from
    /// its checkpoint.
    pub async fn read_from(
        &self,
        stream_arn: &str,
        shard_id: &str,
        from: Position<'_>,
        limit: usize,
    ) -> Result<Vec<RawRecord>> {
        let (kind, sequence) = from.iterator();
        let mut body =
            json!({ "StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": kind });
        if let Some(sequence) = sequence {
            body["SequenceNumber"] = json!(sequence);
        }
        let iterator = self.api.call("GetShardIterator", body).await?;
        let Some(iterator) = iterator["ShardIterator"].as_str() else {
            return Ok(Vec::new());
        };
        let body = json!({ "ShardIterator": iterator, "Limit": limit.clamp(1, 1000) });
        let out = self.api.call("GetRecords", body).await?;
        let records = out["Records"].as_array().into_iter().flatten();
        records.map(|r| lambda_shape(r, stream_arn)).collect()
    }
}

/// A GetRecords record as Lambda delivers it (the operator's replay shapes them alike).
fn lambda_shape(record: &Json, stream_arn: &str) -> Result<RawRecord> {
    let json = outboxctl::ddb_stream::lambda_shape(record, stream_arn);
    let sequence_number = json["dynamodb"]["SequenceNumber"]
        .as_str()
        .ok_or_else(|| anyhow!("stream record without a sequence number"))?
        .to_owned();
    Ok(RawRecord {
        sequence_number,
        json,
    })
}
