//! The DynamoDB Streams consumer: outbox INSERTs in, partial batch failures out.
//!
//! Records of different customers are applied concurrently (bounded); records of one customer
//! strictly in stream order. When a record fails, the records after it of the same customer are
//! held back and reported too, so Lambda's retry (from the lowest reported sequence number)
//! replays them in order; the records already applied are replayed as harmless duplicates.

use std::collections::HashMap;
use std::time::Instant;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use serde_dynamo::AttributeValue;

use crate::domain::{Applied, EventEnvelope, RewardError, TraceLink};
use crate::metrics::{self, MetricSet};
use crate::schema;
use crate::service::{decode_envelope, Effect, RewardsService};
use crate::store::{OutboxStore, RewardsStore};

/// What a batch came to: the response for Lambda plus counts for logs, metrics, tools and tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchOutcome {
    pub applied: usize,
    pub duplicates: usize,
    pub ignored: usize,
    /// Records that failed: poison ones and ones to retry.
    pub failed: usize,
    /// Of the failed records, those that can never be applied as they are.
    pub poison: usize,
    pub held_back: usize,
    /// Sequence numbers to report, in stream order.
    pub failures: Vec<String>,
    /// The outbox lag of every event applied now, in milliseconds.
    pub lag_millis: Vec<f64>,
    /// The writers' trace ids (W3C notation) of the events applied now or found applied.
    pub links: Vec<String>,
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
    let started = Instant::now();
    let trace_id = event.context.xray_trace_id.as_deref();
    let records = &event.payload.records;
    let outcome = process_traced_batch(service, concurrency, records, trace_id).await;
    let duration_millis = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        records = records.len(),
        applied = outcome.applied,
        duplicates = outcome.duplicates,
        ignored = outcome.ignored,
        failed = outcome.failed,
        poison = outcome.poison,
        held_back = outcome.held_back,
        trace_id = trace_id.unwrap_or_default(),
        "batch done"
    );
    outcome.metrics(duration_millis, trace_id).emit();
    Ok(outcome.response())
}

impl BatchOutcome {
    /// The batch's metrics, with the consumer's own trace and the writers' traces it served
    /// as properties of the line (never dimensions).
    pub fn metrics(&self, duration_millis: f64, trace_id: Option<&str>) -> MetricSet {
        let mut set = MetricSet::new(metrics::STREAM_CONSUMER)
            .count(metrics::APPLIED, self.applied)
            .count(metrics::DUPLICATES, self.duplicates)
            .count(metrics::SKIPPED, self.ignored)
            .count(metrics::POISON, self.poison)
            .count(metrics::RETRIED, self.failed - self.poison)
            .count(metrics::HELD_BACK, self.held_back)
            .milliseconds(metrics::BATCH_DURATION, vec![duration_millis])
            .milliseconds(metrics::OUTBOX_LAG, self.lag_millis.clone());
        if let Some(trace_id) = trace_id {
            set = set.property("trace_id", trace_id);
        }
        if !self.links.is_empty() {
            let shown = self.links.len().min(metrics::MAX_LINKS_PER_LINE);
            set = set.property("links", self.links[..shown].to_vec());
        }
        set
    }
}

/// One record, sorted before any database work.
enum Work {
    Ignore,
    Apply(Box<EventEnvelope>),
    Poison(RewardError),
}

enum RecordResult {
    Applied(Effect, Option<TraceLink>),
    Ignored,
    Failed { poison: bool },
    HeldBack,
}

pub async fn process_batch<R: RewardsStore, O: OutboxStore>(
    service: &RewardsService<R, O>,
    concurrency: usize,
    records: &[EventRecord],
) -> BatchOutcome {
    process_traced_batch(service, concurrency, records, None).await
}

/// [`process_batch`] in the invocation of X-Ray trace `trace_id`: every event's log line names
/// it beside the link to the writer's trace.
async fn process_traced_batch<R: RewardsStore, O: OutboxStore>(
    service: &RewardsService<R, O>,
    concurrency: usize,
    records: &[EventRecord],
    trace_id: Option<&str>,
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
        .map(|group| apply_in_order(service, records, group, trace_id))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    let mut by_position: Vec<(usize, RecordResult)> = results.into_iter().flatten().collect();
    by_position.sort_by_key(|(position, _)| *position);
    let mut outcome = BatchOutcome::default();
    for (position, result) in by_position {
        match result {
            RecordResult::Applied(effect, link) => {
                match effect.applied {
                    Applied::Now => outcome.applied += 1,
                    Applied::AlreadyApplied => outcome.duplicates += 1,
                }
                outcome.lag_millis.extend(effect.lag_millis);
                outcome.links.extend(link.map(|l| l.trace_id));
            }
            RecordResult::Ignored => outcome.ignored += 1,
            RecordResult::Failed { poison } => {
                outcome.failed += 1;
                outcome.poison += usize::from(poison);
                outcome.failures.push(item_identifier(&records[position]));
            }
            RecordResult::HeldBack => {
                outcome.held_back += 1;
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
    trace_id: Option<&str>,
) -> Vec<(usize, RecordResult)> {
    let mut results = Vec::with_capacity(group.len());
    let mut blocked = false;
    for (position, work) in group {
        let result = match work {
            Work::Ignore => RecordResult::Ignored,
            _ if blocked => RecordResult::HeldBack,
            Work::Poison(err) => {
                log_failure(&records[position], None, None, &err);
                RecordResult::Failed { poison: true }
            }
            Work::Apply(event) => {
                let link = event.trace_context.as_ref().and_then(|t| t.link());
                match service.apply_event(&event).await {
                    Ok(effect) => {
                        log_applied(&event, &effect, link.as_ref(), trace_id);
                        RecordResult::Applied(effect, link)
                    }
                    Err(err) => {
                        log_failure(&records[position], Some(&event), link.as_ref(), &err);
                        RecordResult::Failed {
                            poison: matches!(err, RewardError::Poison(_)),
                        }
                    }
                }
            }
        };
        blocked |= matches!(result, RecordResult::Failed { .. });
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
    if dynamodb_outbox::stream_table(source) != Some(outbox_table) {
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

/// One line per event, so the consumer's work for one order is found from the writer's trace id
/// (either notation) or the order id.
fn log_applied(
    event: &EventEnvelope,
    effect: &Effect,
    link: Option<&TraceLink>,
    trace_id: Option<&str>,
) {
    let message = match effect.applied {
        Applied::Now => "outbox event applied",
        Applied::AlreadyApplied => "outbox event already applied: duplicate",
    };
    tracing::info!(
        event_id = %event.event_id,
        order_id = %event.payload.order_id,
        lag_ms = effect.lag_millis,
        trace_id = trace_id.unwrap_or_default(),
        link_trace_id = link.map(|l| l.trace_id.as_str()).unwrap_or_default(),
        link_xray_trace_id = link.map(|l| l.xray_trace_id.as_str()).unwrap_or_default(),
        link_span_id = link.and_then(|l| l.span_id.as_deref()).unwrap_or_default(),
        "{message}"
    );
}

fn log_failure(
    record: &EventRecord,
    event: Option<&EventEnvelope>,
    link: Option<&TraceLink>,
    err: &RewardError,
) {
    let sequence_number = item_identifier(record);
    let link_trace_id = link.map(|l| l.trace_id.as_str()).unwrap_or_default();
    let event_id = event
        .map(|e| e.event_id.clone())
        .or_else(|| match record.change.new_image.get("event_id") {
            Some(AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        })
        // Without an event id, the item's key names it (records always carry their keys).
        .unwrap_or_else(|| {
            let key = |name: &str| match record.change.keys.get(name) {
                Some(AttributeValue::S(v)) => v.clone(),
                _ => String::new(),
            };
            format!("item {}/{}", key(schema::PK), key(schema::SK))
        });
    match err {
        RewardError::Poison(why) => tracing::error!(
            %event_id, %sequence_number, error = %why, link_trace_id,
            "poison outbox record: reported as a batch item failure"
        ),
        RewardError::Store(why) => tracing::warn!(
            %event_id, %sequence_number, error = %why, link_trace_id,
            "outbox record not applied: reported for retry"
        ),
    }
}
