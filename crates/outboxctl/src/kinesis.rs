//! A Kinesis record as Lambda delivers it, and what a stream's ARN says.

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::Record;
use base64::Engine as _;
use serde_json::{json, Value as Json};

/// A GetRecords record in Lambda's Kinesis event shape, and what a mapping's filter sees of it
/// (the metadata and, when it is JSON, the data itself, as Lambda's filters do).
/// `invoke_identity_arn` is the role a mapping invokes with, when there is one.
pub fn lambda_record(
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

/// The region, account and stream name of a stream ARN (events carry the first two).
pub fn parse_stream_arn(arn: &str) -> Result<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("kinesis"), Some(region), Some(account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        bail!("{arn} is not a Kinesis stream ARN");
    };
    let name = rest
        .strip_prefix("stream/")
        .with_context(|| format!("{arn} is not a Kinesis stream ARN"))?;
    Ok((region, account, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_arn_reads_into_region_account_and_name() {
        assert_eq!(
            parse_stream_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/orders").unwrap(),
            ("eu-west-1", "123456789012", "orders")
        );
        assert!(parse_stream_arn("arn:aws:dynamodb:us-east-1:1:table/t").is_err());
        assert!(parse_stream_arn("orders").is_err());
    }
}
