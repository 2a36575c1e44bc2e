//! The replay of a range a Kinesis event source mapping gave up on (pattern 3). Lambda sends the
//! on-failure destination only the range's coordinates (`KinesisBatchInfo`: stream, shard, first
//! and last sequence number), never the records, and nothing applies them by itself. This reads
//! the range back from the stream while it is retained (24 hours by default), keeps the records
//! the function's mapping would deliver (its `FilterCriteria`), and builds the Kinesis event the
//! function receives. The operator invokes the function with it (`outboxctl replay`, the
//! runbook's `DeadLetterQueueAlarm`); the consumers apply each event once by its id, so records
//! that were applied before are duplicates.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use serde_json::{json, Value as Json};

use crate::filter;
use crate::kinesis::{lambda_record, parse_stream_arn};

/// Where an on-failure message names the range of a Kinesis stream's batch.
pub const BATCH_INFO: &str = "KinesisBatchInfo";

/// The coordinates an on-failure message gives of the batch the mapping gave up on: a Kinesis
/// stream's ([`BATCH_INFO`]) or a DynamoDB stream's ([`crate::ddb_stream::BATCH_INFO`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The stream's ARN.
    pub stream_arn: String,
    /// The shard.
    pub shard: String,
    /// The first record's sequence number.
    pub first: String,
    /// The last record's sequence number.
    pub last: String,
}

impl Range {
    /// From the on-failure message (the SQS message's body) Lambda sent for a Kinesis stream.
    pub fn from_message(message: &Json) -> Result<Self> {
        Self::from_info(message, BATCH_INFO)?
            .ok_or_else(|| anyhow!("the on-failure message has no {BATCH_INFO}: {message}"))
    }

    /// From the on-failure message's `info` (its kind of stream's `...BatchInfo`); None when the
    /// message has none, being another kind of stream's.
    pub fn from_info(message: &Json, info: &str) -> Result<Option<Self>> {
        let batch = &message[info];
        if batch.is_null() {
            return Ok(None);
        }
        let field = |name: &str| {
            batch[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("the on-failure message has no {info}.{name}: {message}"))
        };
        Ok(Some(Self {
            stream_arn: field("streamArn")?,
            shard: field("shardId")?,
            first: field("startSequenceNumber")?,
            last: field("endSequenceNumber")?,
        }))
    }
}

/// What a replay keeps of the records it reads from a range's shard, page by page: those up to
/// the range's last that pass the mapping's filter, and whether the last was reached (a shard
/// that ends before it no longer holds the whole range).
pub(crate) struct Cut<'a> {
    range: &'a Range,
    filter_patterns: &'a [Json],
    records: Vec<Json>,
    reached_last: bool,
}

impl<'a> Cut<'a> {
    pub(crate) fn new(range: &'a Range, filter_patterns: &'a [Json]) -> Self {
        Self {
            range,
            filter_patterns,
            records: Vec::new(),
            reached_last: false,
        }
    }

    /// Whether the record at `sequence` is in the range: false once past its last, where the
    /// reading stops.
    pub(crate) fn admits(&mut self, sequence: &str) -> bool {
        if !at_or_before(sequence, &self.range.last) {
            self.reached_last = true;
            return false;
        }
        self.reached_last = sequence == self.range.last;
        true
    }

    /// Keeps an admitted record in Lambda's shape when its filter passes what it sees of it.
    pub(crate) fn keep(&mut self, lambda_shape: Json, filterable: &Json) {
        if filter::passes(self.filter_patterns, filterable) {
            self.records.push(lambda_shape);
        }
    }

    pub(crate) fn reached_last(&self) -> bool {
        self.reached_last
    }

    /// The event of the records kept; an error when the shard ended before the range's last
    /// (`lost`: why the records may have left the stream).
    pub(crate) fn event(self, lost: &str) -> Result<Json> {
        if !self.reached_last {
            bail!(
                "shard {} ends before {}: the range's records left the stream ({lost})",
                self.range.shard,
                self.range.last
            );
        }
        Ok(json!({ "Records": self.records }))
    }
}

/// The `FilterCriteria` patterns of `function`'s event source mappings in the SAM template at
/// `template` (every event's, as a deployed function has one mapping per event): what the replay
/// keeps, as the mapping would have. None: the function filters nothing.
pub fn filter_patterns(template: &Path, function: &str) -> Result<Vec<Json>> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let root: serde_yaml::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not YAML", template.display()))?;
    let resource = &root["Resources"][function];
    if resource.is_null() {
        bail!("{} has no resource {function}", template.display());
    }
    let mut patterns = Vec::new();
    let events = resource["Properties"]["Events"]
        .as_mapping()
        .into_iter()
        .flatten();
    for (_, event) in events {
        let filters = event["Properties"]["FilterCriteria"]["Filters"].as_sequence();
        for filter in filters.into_iter().flatten() {
            let text = filter["Pattern"]
                .as_str()
                .ok_or_else(|| anyhow!("{function}: a filter without a Pattern string"))?;
            patterns.push(
                serde_json::from_str(text)
                    .with_context(|| format!("{function}: FilterCriteria pattern {text}"))?,
            );
        }
    }
    Ok(patterns)
}

/// Whether sequence number `a` comes at or before `b` in a shard: they are decimal strings past
/// 2^64, so compared by length, then digit by digit.
pub fn at_or_before(a: &str, b: &str) -> bool {
    (a.len(), a) <= (b.len(), b)
}

/// The Kinesis event (`{"Records": [...]}`) of `range`'s records that pass `filter_patterns`
/// (the function's mapping's `FilterCriteria` patterns; none: every record), read from the
/// stream with `client`. Fails when the shard no longer holds the whole range.
pub async fn replay_event(
    client: &Client,
    range: &Range,
    filter_patterns: &[Json],
) -> Result<Json> {
    let (region, _, stream) = parse_stream_arn(&range.stream_arn)?;
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(&range.shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&range.first)
        .send()
        .await
        .with_context(|| format!("GetShardIterator {} at {}", range.shard, range.first))?
        .shard_iterator;
    let mut cut = Cut::new(range, filter_patterns);
    while let Some(current) = iterator.take() {
        let page = client
            .get_records()
            .shard_iterator(current)
            .limit(10_000)
            .send()
            .await
            .with_context(|| format!("GetRecords {}", range.shard))?;
        for record in page.records() {
            if !cut.admits(&record.sequence_number) {
                break;
            }
            let (lambda_shape, filterable) =
                lambda_record(record, &range.shard, &range.stream_arn, region, None)?;
            cut.keep(lambda_shape, &filterable);
        }
        let caught_up = page.millis_behind_latest.is_none_or(|ms| ms == 0);
        if cut.reached_last() || (page.records().is_empty() && caught_up) {
            break;
        }
        iterator = page.next_shard_iterator;
    }
    cut.event("past its retention?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_the_large_decimals_they_are() {
        let small = "49590338271490256608559692538361571095921575989136588898";
        let larger = "49590338271490256608559692540925702759324208523137515618";
        assert!(at_or_before(small, larger));
        assert!(at_or_before(small, small));
        assert!(!at_or_before(larger, small));
        assert!(at_or_before("9", "10"), "a shorter number is smaller");
    }

    #[test]
    fn a_message_without_the_range_is_refused_by_name() {
        let message = json!({"KinesisBatchInfo": {"shardId": "s", "startSequenceNumber": "1",
            "streamArn": "arn:aws:kinesis:us-east-1:1:stream/x"}});
        let err = Range::from_message(&message).unwrap_err().to_string();
        assert!(err.contains("KinesisBatchInfo.endSequenceNumber"), "{err}");
    }
}
