//! What a batch came to: each record's outcome, their count, and the responses Lambda expects.

use aws_lambda_events::streams::{
    DynamoDbBatchItemFailure, DynamoDbEventResponse, KinesisEventResponse,
};

use super::Work;
#[cfg(doc)]
use crate::consumer::PoisonPolicy;

/// What a batch came to: counts for logs, metrics and tests, and the records to report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Effects committed now.
    pub applied: usize,
    /// Events this consumer had applied before.
    pub duplicates: usize,
    /// Events routed to this consumer in a type or version it does not take: progress moved on.
    pub skipped: usize,
    /// Records that carry no event for this consumer (other items, updates, deletions, events
    /// routed elsewhere).
    pub ignored: usize,
    /// Poison events parked under [`PoisonPolicy::Park`].
    pub parked: usize,
    /// Poison events reported for retry under [`PoisonPolicy::Wait`], and records refused for
    /// where they come from or for what no order can be given to (reported under both policies).
    pub poison: usize,
    /// Records of the source that are not events and name none (no usable event id, not JSON,
    /// not an object): nothing to apply, park or retry, so they are logged with their record
    /// identifier and why, counted here, and not reported: a retry would bring the same bytes.
    pub dropped: usize,
    /// Events whose predecessor on their key has not been applied yet.
    pub waiting: usize,
    /// Transient failures.
    pub failed: usize,
    /// Events not tried because an earlier event of their key failed in this batch.
    pub held_back: usize,
    /// Of the events counted above as applied, duplicate, skipped or parked, those whose outbox
    /// item could not be marked: reported for retry (in `failures`), whose redelivery marks it.
    pub unmarked: usize,
    /// Identifiers of the records to report as batch item failures, in input order.
    pub failures: Vec<String>,
    /// The events applied now, in input order: for the consumer's logs and metrics (how long
    /// each took from being written to being applied, which trace wrote it).
    pub applied_events: Vec<AppliedEvent>,
}

impl BatchOutcome {
    /// The partial batch response Lambda expects from a Kinesis consumer (with
    /// `ReportBatchItemFailures` on the mapping): the sequence numbers to retry.
    pub fn kinesis_response(&self) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        response.set_failures(self.failures.iter().cloned());
        response
    }

    /// The partial batch response Lambda expects from a DynamoDB stream consumer (with
    /// `ReportBatchItemFailures` on the mapping): the records to retry.
    pub fn stream_response(&self) -> DynamoDbEventResponse {
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

/// The log message of every event a consumer parks: what an operator's log query for parked
/// events filters on (the record's `event_id` field names the event, or its item key).
pub const PARKED_LOG_MESSAGE: &str = "poison event parked; its key goes on";

/// The log message of every record a consumer drops as not an event (see
/// [`BatchOutcome::dropped`]); its `record` field names the record (a Kinesis sequence number).
pub const DROPPED_LOG_MESSAGE: &str = "record dropped: not an event, and it names none";

/// An event a batch applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEvent {
    /// The event's id.
    pub event_id: String,
    /// The aggregate the event is about.
    pub aggregate_id: String,
    /// When the producer wrote it (RFC 3339).
    pub occurred_at: String,
    /// The producer's trace, when it had one.
    pub trace_context: Option<crate::TraceContext>,
}

/// What one record came to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Refused(String),
    Applied,
    Duplicate,
    Skipped,
    Ignored,
    Parked,
    Poison,
    Dropped,
    Waiting,
    Failed,
    HeldBack,
}

impl Outcome {
    /// The consumer's progress is at or past the event: its outbox item can be marked.
    pub(super) fn committed(&self) -> bool {
        matches!(
            self,
            Outcome::Applied | Outcome::Duplicate | Outcome::Skipped | Outcome::Parked
        )
    }

    /// The key's later events of the batch are held back after it.
    pub(super) fn blocks(&self) -> bool {
        matches!(
            self,
            Outcome::Refused(_) | Outcome::Poison | Outcome::Waiting | Outcome::Failed
        )
    }
}

/// The event a record carries, for [`BatchOutcome::applied_events`] should it be applied.
pub(super) fn applied_event<P>(work: &Work<P>) -> Option<AppliedEvent> {
    match work {
        Work::Apply(arrived, _, _) | Work::Once(arrived, _) => Some(AppliedEvent {
            event_id: arrived.event_id.clone(),
            aggregate_id: arrived.aggregate_id.clone(),
            occurred_at: arrived.occurred_at.clone(),
            trace_context: arrived.trace_context.clone(),
        }),
        _ => None,
    }
}

/// Counts each record's outcome (a position without one counts for nothing) and lists the
/// records to report, in input order: `events`, `unmarked` and `ids` are by position.
pub(super) fn tally(
    outcomes: Vec<Option<Outcome>>,
    events: &[Option<AppliedEvent>],
    unmarked: &[bool],
    ids: &[String],
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    for (position, result) in outcomes.into_iter().enumerate() {
        let Some(result) = result else { continue };
        let counter = match &result {
            Outcome::Refused(_) | Outcome::Poison => &mut outcome.poison,
            Outcome::Applied => &mut outcome.applied,
            Outcome::Duplicate => &mut outcome.duplicates,
            Outcome::Skipped => &mut outcome.skipped,
            Outcome::Ignored => &mut outcome.ignored,
            Outcome::Parked => &mut outcome.parked,
            Outcome::Dropped => &mut outcome.dropped,
            Outcome::Waiting => &mut outcome.waiting,
            Outcome::Failed => &mut outcome.failed,
            Outcome::HeldBack => &mut outcome.held_back,
        };
        *counter += 1;
        if let (Outcome::Applied, Some(event)) = (&result, &events[position]) {
            outcome.applied_events.push(event.clone());
        }
        // An event applied (or found applied) whose mark failed is counted for what it came
        // to, and reported for retry: the redelivery is a duplicate and marks it.
        outcome.unmarked += usize::from(unmarked[position]);
        if unmarked[position]
            || matches!(
                result,
                Outcome::Refused(_)
                    | Outcome::Poison
                    | Outcome::Waiting
                    | Outcome::Failed
                    | Outcome::HeldBack
            )
        {
            outcome.failures.push(ids[position].clone());
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Arrived;
    use crate::envelope::Envelope;
    use crate::store::{ItemKey, Step};

    /// The tally of a batch given one record a row: what came of it, the event it applied, and
    /// whether its outbox item was left unmarked. Record ids are `record-<position>`.
    fn tally_rows(rows: Vec<(Option<Outcome>, Option<AppliedEvent>, bool)>) -> BatchOutcome {
        let ids: Vec<String> = (0..rows.len())
            .map(|position| format!("record-{position}"))
            .collect();
        let mut outcomes = Vec::new();
        let (mut events, mut unmarked) = (Vec::new(), Vec::new());
        for (outcome, event, left_unmarked) in rows {
            outcomes.push(outcome);
            events.push(event);
            unmarked.push(left_unmarked);
        }
        tally(outcomes, &events, &unmarked, &ids)
    }

    fn event(id: &str) -> AppliedEvent {
        AppliedEvent {
            event_id: id.into(),
            aggregate_id: "a".into(),
            occurred_at: "2026-01-01T00:00:00Z".into(),
            trace_context: None,
        }
    }

    #[test]
    fn each_outcome_is_counted_once_and_only_records_to_retry_are_reported_in_input_order() {
        let outcomes = vec![
            Some(Outcome::Applied),
            Some(Outcome::Failed),
            Some(Outcome::Ignored),
            Some(Outcome::HeldBack),
            Some(Outcome::Waiting),
            Some(Outcome::Duplicate),
            Some(Outcome::Refused("too large".into())),
            Some(Outcome::Poison),
            Some(Outcome::Parked),
            Some(Outcome::Skipped),
            Some(Outcome::Dropped),
            None,
        ];
        let tallied = tally_rows(outcomes.into_iter().map(|o| (o, None, false)).collect());
        let expected = BatchOutcome {
            applied: 1,
            duplicates: 1,
            skipped: 1,
            ignored: 1,
            parked: 1,
            poison: 2,
            dropped: 1,
            waiting: 1,
            failed: 1,
            held_back: 1,
            unmarked: 0,
            failures: ["record-1", "record-3", "record-4", "record-6", "record-7"]
                .map(String::from)
                .to_vec(),
            applied_events: vec![],
        };
        assert_eq!(tallied, expected);
    }

    #[test]
    fn an_event_whose_outbox_item_was_not_marked_counts_for_what_it_came_to_and_is_reported() {
        let tallied = tally_rows(vec![
            (Some(Outcome::Applied), None, false),
            (Some(Outcome::Duplicate), None, true),
        ]);
        assert_eq!((tallied.applied, tallied.duplicates), (1, 1));
        assert_eq!(tallied.unmarked, 1);
        assert_eq!(tallied.failures, ["record-1"]);
    }

    #[test]
    fn only_events_applied_now_are_listed_as_applied_events() {
        let tallied = tally_rows(vec![
            (Some(Outcome::Duplicate), Some(event("e0")), false),
            (Some(Outcome::Applied), Some(event("e1")), false),
            (Some(Outcome::Applied), None, false),
        ]);
        assert_eq!(tallied.applied, 2);
        assert_eq!(tallied.applied_events, [event("e1")]);
    }

    #[test]
    fn a_record_carries_an_event_to_list_only_when_it_has_an_envelope() {
        let envelope = Envelope {
            event_id: "e1".into(),
            event_type: "Happened".into(),
            schema_version: 1,
            aggregate_type: "Thing".into(),
            aggregate_id: "a".into(),
            ordering_key: "a".into(),
            occurred_at: "2026-01-01T00:00:00Z".into(),
            trace_context: None,
            payload: (),
        };
        let step = Step {
            ordering_key: "a".into(),
            sequence: 1,
            after: 0,
        };
        let key = ItemKey {
            pk: "OUTBOX#a".into(),
            sk: "SEQ#1".into(),
        };
        let arrived = Box::new(Arrived {
            envelope,
            item: None,
            alone: true,
        });
        assert_eq!(
            applied_event(&Work::Apply(arrived, step.clone(), key.clone())),
            Some(event("e1"))
        );
        assert_eq!(
            applied_event(&Work::<()>::Skip(step, key, "Other v1".into())),
            None
        );
        assert_eq!(applied_event(&Work::<()>::Ignore), None);
    }

    #[test]
    fn the_lambda_responses_name_the_records_to_retry_in_order() {
        let outcome = BatchOutcome {
            failures: vec!["3".into(), "1".into()],
            ..BatchOutcome::default()
        };
        // As Lambda reads them: the three responses are three types with one wire form.
        let expected = serde_json::json!({
            "batchItemFailures": [{ "itemIdentifier": "3" }, { "itemIdentifier": "1" }]
        });
        for (source, response) in [
            ("kinesis", serde_json::to_value(outcome.kinesis_response())),
            ("stream", serde_json::to_value(outcome.stream_response())),
            ("sqs", serde_json::to_value(outcome.sqs_response())),
        ] {
            assert_eq!(response.unwrap(), expected, "{source}");
        }
    }
}
