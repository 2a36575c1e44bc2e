//! The DynamoDB Streams consumer: outbox INSERTs in, partial batch failures out.
//!
//! Records of different customers are applied concurrently (bounded); records of one customer
//! strictly in stream order. When a record fails, the records after it of the same customer are
//! held back and reported too, so Lambda's retry (from the lowest reported sequence number)
//! replays them in order; the records already applied are replayed as harmless duplicates.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use serde_dynamo::AttributeValue;

use crate::domain::{Applied, EventEnvelope, RewardError};
use crate::schema;
use crate::service::{decode_envelope, RewardsService};
use crate::store::{OutboxStore, RewardsStore};

/// What a batch came to: the response for Lambda plus counts for logs, tools and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub applied: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub failed: usize,
    pub held_back: usize,
    /// Sequence numbers to report, in stream order.
    pub failures: Vec<String>,
}

impl BatchOutcome {
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = self
            .failures
            .iter()
            .map(|id| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(id.clone());
                failure
            })
            .collect();
        response
    }
}

pub async fn handle<R: RewardsStore, O: OutboxStore>(
    service: &RewardsService<R, O>,
    concurrency: usize,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let outcome = process_batch(service, concurrency, &event.payload.records).await;
    tracing::info!(
        records = event.payload.records.len(),
        applied = outcome.applied,
        duplicates = outcome.duplicates,
        ignored = outcome.ignored,
        failed = outcome.failed,
        held_back = outcome.held_back,
        "batch done"
    );
    Ok(outcome.response())
}

/// One record, sorted before any database work.
enum Work {
    Ignore,
    Apply(Box<EventEnvelope>),
    Poison(RewardError),
}

enum RecordResult {
    Applied(Applied),
    Ignored,
    Failed,
    HeldBack,
}

pub async fn process_batch<R: RewardsStore, O: OutboxStore>(
    service: &RewardsService<R, O>,
    concurrency: usize,
    records: &[EventRecord],
) -> BatchOutcome {
    // Group by customer, keeping stream order inside each group.
    let mut groups: Vec<Vec<(usize, Work)>> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    let outbox_table = service.outbox.table_name();
    for (position, record) in records.iter().enumerate() {
        let (key, work) = sort_record(record, outbox_table);
        let slot = *group_of.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push((position, work));
    }

    let results: Vec<Vec<(usize, RecordResult)>> = stream::iter(groups)
        .map(|group| apply_in_order(service, records, group))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    let mut by_position: Vec<(usize, RecordResult)> = results.into_iter().flatten().collect();
    by_position.sort_by_key(|(position, _)| *position);
    let mut outcome = BatchOutcome::default();
    for (position, result) in by_position {
        match result {
            RecordResult::Applied(Applied::Now) => outcome.applied += 1,
            RecordResult::Applied(Applied::AlreadyApplied) => outcome.duplicates += 1,
            RecordResult::Ignored => outcome.ignored += 1,
            RecordResult::Failed | RecordResult::HeldBack => {
                if matches!(result, RecordResult::Failed) {
                    outcome.failed += 1;
                } else {
                    outcome.held_back += 1;
                }
                outcome.failures.push(item_identifier(&records[position]));
            }
        }
    }
    outcome
}

async fn apply_in_order<R: RewardsStore, O: OutboxStore>(
    service: &RewardsService<R, O>,
    records: &[EventRecord],
    group: Vec<(usize, Work)>,
) -> Vec<(usize, RecordResult)> {
    let mut results = Vec::with_capacity(group.len());
    let mut blocked = false;
    for (position, work) in group {
        let result = match work {
            Work::Ignore => RecordResult::Ignored,
            _ if blocked => RecordResult::HeldBack,
            Work::Poison(err) => {
                log_failure(&records[position], None, &err);
                RecordResult::Failed
            }
            Work::Apply(event) => match service.apply_event(&event).await {
                Ok(applied) => RecordResult::Applied(applied),
                Err(err) => {
                    log_failure(&records[position], Some(&event.event_id), &err);
                    RecordResult::Failed
                }
            },
        };
        blocked |= matches!(result, RecordResult::Failed);
        results.push((position, result));
    }
    results
}

/// Decides what a record is, and which ordering group it belongs to. A record that does not come
/// from the outbox table's stream is poison whatever it holds: a mapping wired to the wrong
/// stream must not credit what merely looks like an outbox event.
fn sort_record(record: &EventRecord, outbox_table: &str) -> (String, Work) {
    let own_group = || format!("record:{}", item_identifier(record));
    let source = record.event_source_arn.as_deref().unwrap_or_default();
    if stream_table(source) != Some(outbox_table) {
        let why = format!(
            "record from {source:?}, not from the stream of table {outbox_table:?}: not applied"
        );
        return (own_group(), Work::Poison(RewardError::Poison(why)));
    }
    let image = &record.change.new_image;
    let is_outbox = matches!(
        image.get(schema::ENTITY),
        Some(AttributeValue::S(e)) if e == schema::ENTITY_OUTBOX_EVENT
    );
    // MODIFY (our own processed mark) and REMOVE (TTL expiry) records carry no new event.
    if record.event_name != "INSERT" || !is_outbox {
        return (own_group(), Work::Ignore);
    }
    match decode_envelope(image.clone()) {
        Ok(event) => (
            format!("customer:{}", event.payload.customer_id),
            Work::Apply(Box::new(event)),
        ),
        // Still ordered with its customer when the payload at least names one.
        Err(err) => (
            peek_customer(image).map_or_else(own_group, |c| format!("customer:{c}")),
            Work::Poison(err),
        ),
    }
}

/// The table a DynamoDB stream ARN belongs to:
/// `arn:<partition>:dynamodb:<region>:<account>:table/<table>/stream/<label>`.
fn stream_table(arn: &str) -> Option<&str> {
    let mut fields = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("dynamodb"), Some(_region), Some(_account)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    let resource = fields.next()?.strip_prefix("table/")?;
    let (table, label) = resource.split_once("/stream/")?;
    (!table.is_empty() && !label.is_empty()).then_some(table)
}

fn peek_customer(image: &serde_dynamo::Item) -> Option<String> {
    match image.get("payload") {
        Some(AttributeValue::M(payload)) => match payload.get("customer_id") {
            Some(AttributeValue::S(c)) => Some(c.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn item_identifier(record: &EventRecord) -> String {
    record
        .change
        .sequence_number
        .clone()
        .unwrap_or_else(|| record.event_id.clone())
}

fn log_failure(record: &EventRecord, event_id: Option<&str>, err: &RewardError) {
    let sequence_number = item_identifier(record);
    let event_id = event_id
        .map(str::to_owned)
        .or_else(|| match record.change.new_image.get("event_id") {
            Some(AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        })
        .unwrap_or_default();
    match err {
        RewardError::Poison(why) => tracing::error!(
            %event_id, %sequence_number, error = %why,
            "poison outbox record: reported as a batch item failure"
        ),
        RewardError::Store(why) => tracing::warn!(
            %event_id, %sequence_number, error = %why,
            "outbox record not applied: reported for retry"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::stream_table;

    #[test]
    fn the_table_is_read_from_a_stream_arn_and_nothing_else_passes() {
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/outbox-dev-orders/stream/2026-11-26T00:00:00.000";
        assert_eq!(stream_table(arn), Some("outbox-dev-orders"));
        assert_eq!(
            stream_table("arn:aws-cn:dynamodb:cn-north-1:1:table/t/stream/x"),
            Some("t")
        );
        for other in [
            "",
            "arn:aws:kinesis:us-east-1:123456789012:stream/outbox-dev-orders",
            "arn:aws:dynamodb:us-east-1:123456789012:table/outbox-dev-orders",
            "arn:aws:dynamodb:us-east-1:123456789012:table//stream/x",
            "arn:aws:sqs:us-east-1:123456789012:table/outbox-dev-orders/stream/x",
        ] {
            assert_eq!(stream_table(other), None, "{other}");
        }
    }
}
