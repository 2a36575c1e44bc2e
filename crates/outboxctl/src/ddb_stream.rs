//! The replay of a range a DynamoDB stream's event source mapping gave up on. Its on-failure
//! message names the range only (`DDBStreamBatchInfo`: stream, shard, first and last sequence
//! number); the records are read back with the DynamoDB Streams API while the stream keeps them
//! (24 hours) and shaped as Lambda delivers them, the function's `FilterCriteria` applied.
//!
//! The API is called as signed JSON rather than through the Streams SDK: GetRecords returns
//! records that are Lambda's `Records[]` entries but for `eventSourceARN`, so passing them
//! through keeps every field the function reads.

use anyhow::{bail, Context, Result};
use aws_config::SdkConfig;
use bytes::Bytes;
use serde_json::{json, Value as Json};

use crate::replay::{Cut, Range};
use crate::signed::SignedHttp;

/// Where an on-failure message names the range of a DynamoDB stream's batch: its stream, shard,
/// first and last sequence number ([`Range::from_info`]).
pub const BATCH_INFO: &str = "DDBStreamBatchInfo";

/// The region of the DynamoDB stream `stream_arn`
/// (`arn:aws:dynamodb:<region>:<account>:table/<t>/stream/<label>`).
pub fn region(stream_arn: &str) -> Result<&str> {
    let mut parts = stream_arn.split(':');
    match (parts.next(), parts.nth(1), parts.next()) {
        (Some("arn"), Some("dynamodb"), Some(region)) => Ok(region),
        _ => bail!("{stream_arn} is not a DynamoDB stream ARN"),
    }
}

/// The DynamoDB Streams API, signed.
#[derive(Clone)]
pub struct StreamsApi {
    http: SignedHttp,
}

impl StreamsApi {
    /// The Streams API of the DynamoDB at `endpoint` (AWS's Streams endpoint for AWS's
    /// DynamoDB endpoint; emulators serve both APIs on one).
    pub fn new(endpoint: &str, region: &str, config: &SdkConfig) -> Result<Self> {
        let http = SignedHttp::new(&streams_endpoint(endpoint), "dynamodb", region, config)?;
        Ok(Self { http })
    }

    /// One call of the API: `operation` (`GetRecords`) with `body`.
    pub async fn call(&self, operation: &str, body: Json) -> Result<Json> {
        let target = format!("DynamoDBStreams_20120810.{operation}");
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target.as_str()),
        ];
        let body = Bytes::from(serde_json::to_vec(&body)?);
        let response = self
            .http
            .post("/", &headers, body)
            .await
            .context(operation.to_owned())?;
        let (status, body) = (response.status(), response.body());
        if !status.is_success() {
            bail!("{operation}: {status}: {}", String::from_utf8_lossy(body));
        }
        Ok(serde_json::from_slice(body)?)
    }
}

/// The DynamoDB stream event (`{"Records": [...]}`) of `range`'s records that pass
/// `filter_patterns` (none: every record). Fails when the shard no longer holds the whole range.
pub async fn replay_event(
    api: &StreamsApi,
    range: &Range,
    filter_patterns: &[Json],
) -> Result<Json> {
    let body = json!({"StreamArn": range.stream_arn, "ShardId": range.shard,
        "ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": range.first});
    let opened = api.call("GetShardIterator", body).await?;
    let mut iterator = opened["ShardIterator"].as_str().map(str::to_owned);
    let (mut cut, mut empty_pages) = (Cut::new(range, filter_patterns), 0);
    while let Some(current) = iterator.take() {
        let page = api
            .call(
                "GetRecords",
                json!({"ShardIterator": current, "Limit": 1000}),
            )
            .await?;
        let read = page["Records"].as_array().cloned().unwrap_or_default();
        empty_pages = if read.is_empty() { empty_pages + 1 } else { 0 };
        for record in &read {
            if !cut.admits(record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("")) {
                break;
            }
            let record = lambda_shape(record, &range.stream_arn);
            cut.keep(record.clone(), &record);
        }
        // An open shard answers empty pages at its end, with a next iterator, for ever.
        if cut.reached_last() || empty_pages >= 3 {
            break;
        }
        iterator = page["NextShardIterator"].as_str().map(str::to_owned);
    }
    cut.event("past its 24 hours?")
}

/// A GetRecords record as Lambda delivers it: plus `eventSourceARN`, and `userIdentity` with
/// Lambda's lower-case keys (AWS's GetRecords capitalises them).
pub fn lambda_shape(record: &Json, stream_arn: &str) -> Json {
    let mut json = record.clone();
    json["eventSourceARN"] = json!(stream_arn);
    if let Some(identity) = record.get("userIdentity").and_then(Json::as_object) {
        let field = |lower: &str, upper: &str| {
            identity
                .get(lower)
                .or_else(|| identity.get(upper))
                .cloned()
                .unwrap_or(Json::Null)
        };
        json["userIdentity"] = json!({
            "type": field("type", "Type"),
            "principalId": field("principalId", "PrincipalId"),
        });
    }
    json
}

/// On AWS the Streams API has its own host; emulators serve both APIs on one endpoint.
pub fn streams_endpoint(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    match endpoint.strip_prefix("https://dynamodb.") {
        Some(rest) if rest.ends_with(".amazonaws.com") => {
            format!("https://streams.dynamodb.{rest}")
        }
        _ => endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamodb_stream_message_reads_into_its_range_and_others_are_not_its() {
        let message = json!({"DDBStreamBatchInfo": {"shardId": "shardId-1",
            "startSequenceNumber": "100", "endSequenceNumber": "200", "batchSize": 2,
            "streamArn": "arn:aws:dynamodb:eu-west-1:1:table/t/stream/2026-01-01T00:00:00.000"}});
        let range = Range::from_info(&message, BATCH_INFO).unwrap().unwrap();
        assert_eq!((range.first.as_str(), range.last.as_str()), ("100", "200"));
        assert_eq!(region(&range.stream_arn).unwrap(), "eu-west-1");
        let kinesis = json!({"KinesisBatchInfo": {"shardId": "s"}});
        assert_eq!(Range::from_info(&kinesis, BATCH_INFO).unwrap(), None);
        let partial = json!({"DDBStreamBatchInfo": {"shardId": "s"}});
        assert!(Range::from_info(&partial, BATCH_INFO).is_err());
    }

    #[test]
    fn aws_streams_have_their_own_host() {
        assert_eq!(
            streams_endpoint("https://dynamodb.eu-west-1.amazonaws.com/"),
            "https://streams.dynamodb.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            streams_endpoint("http://127.0.0.1:8000"),
            "http://127.0.0.1:8000"
        );
    }
}
