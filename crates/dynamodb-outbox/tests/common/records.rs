//! Records as Lambda delivers them: a Kinesis stream's and an SQS queue's.

use aws_lambda_events::kinesis::KinesisEventRecord;
use aws_lambda_events::sqs::SqsMessage;
use dynamodb_outbox::{kinesis_put, Envelope};
use serde::Serialize;

/// The records the stream `arn` holds after these puts, numbered in put order.
pub fn stream<P: Serialize>(arn: &str, events: &[&Envelope<P>]) -> Vec<KinesisEventRecord> {
    let numbered = events.iter().enumerate();
    numbered
        .map(|(i, event)| put_at(arn, &format!("{:05}", i + 1), event))
        .collect()
}

/// `event`'s record at `sequence` in the stream `arn`, as its producer would have put it.
pub fn put_at<P: Serialize>(arn: &str, sequence: &str, event: &Envelope<P>) -> KinesisEventRecord {
    let put = kinesis_put(event).unwrap();
    record(arn, sequence, &put.data, &put.partition_key)
}

/// A record of the stream `arn` carrying `data`, whatever it is.
pub fn record(arn: &str, sequence: &str, data: &[u8], partition_key: &str) -> KinesisEventRecord {
    let mut record = KinesisEventRecord::default();
    record.event_source_arn = Some(arn.into());
    record.kinesis.sequence_number = sequence.into();
    record.kinesis.partition_key = partition_key.into();
    *record.kinesis.data = data.to_vec();
    record
}

/// A message of `queue` named `id`, in FIFO group `group` when there is one.
pub fn message(queue: &str, id: &str, body: String, group: Option<&str>) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.into());
    message.receipt_handle = Some(format!("handle-{id}"));
    message.body = Some(body);
    message.event_source_arn = Some(queue.into());
    message.event_source = Some("aws:sqs".into());
    if let Some(group) = group {
        message
            .attributes
            .insert("MessageGroupId".into(), group.into());
    }
    message
}
