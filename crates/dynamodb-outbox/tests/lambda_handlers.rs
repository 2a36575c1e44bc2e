//! The Lambda side (feature `lambda`): a batch handler under the report layer answers Lambda's
//! partial batch response, logs the batch and each applied event with the link to its writer's
//! trace, and emits the batch's metrics; the sweeper function runs what the payload asks and
//! reports it; a consumer's one function tells its stream batches from its sweeps; the inbox's
//! handler answers the message ids to keep.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::sqs::SqsEvent;
use dynamodb_outbox::lambda::{
    self, BatchReport, ConsumerFunction, KinesisStream, ScheduledSweep, SqsQueue, SweepAction,
    SweepJob, SweepReport,
};
use dynamodb_outbox::memory::MemoryStore;
use dynamodb_outbox::{Envelope, Home, Processor, Source, TraceContext};
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Context, Error, LambdaEvent};
use serde_json::{json, Value};

#[path = "common/accounts.rs"]
mod accounts;
#[path = "common/ledger.rs"]
mod ledger;
#[path = "common/records.rs"]
mod records;

use accounts::{deposit, Deposited};
use ledger::{Ledger, TABLE};
use records::{message, stream};

const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/deposits";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The ledger over a memory store, reading `source`: a negative deposit is poison and waits,
/// reported for retry.
fn processor_of(source: Source) -> Processor<Ledger, MemoryStore> {
    Processor::new(Ledger::default(), MemoryStore::new(TABLE), source)
}

/// The ledger reading the Kinesis stream of [`batch`].
fn processor() -> Processor<Ledger, MemoryStore> {
    processor_of(Source::kinesis_stream("deposits").unwrap()).home(Home::of_arn(ARN).unwrap())
}

fn batch(deposits: &[&Envelope<Deposited>]) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = stream(ARN, deposits);
    event
}

fn invocation<T>(payload: T, trace_id: &str) -> LambdaEvent<T> {
    let mut context = Context::default();
    context.xray_trace_id = Some(trace_id.into());
    LambdaEvent::new(payload, context)
}

type Line = HashMap<String, String>;

/// Every log line of this test binary, each as its fields: one global subscriber, so no log
/// site's cached interest depends on which test reached it first.
fn logs() -> &'static Mutex<Vec<Line>> {
    struct Collect(&'static Mutex<Vec<Line>>);
    struct Fields<'a>(&'a mut Line);
    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().into(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
    }
    impl tracing::Subscriber for Collect {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut line = Line::new();
            event.record(&mut Fields(&mut line));
            self.0.lock().unwrap().push(line);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    static LOGS: OnceLock<&'static Mutex<Vec<Line>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<Line>> = Box::leak(Box::default());
        tracing::subscriber::set_global_default(Collect(logs)).unwrap();
        logs
    })
}

fn lines_of(trace_id: &str) -> Vec<Line> {
    let logs = logs().lock().unwrap();
    let of = |l: &&Line| l.get("trace_id").map(String::as_str) == Some(trace_id);
    logs.iter().filter(of).cloned().collect()
}

/// The `batch done` line among `logs`.
fn batch_done(logs: &[Line]) -> &Line {
    logs.iter().find(|l| l["message"] == "batch done").unwrap()
}

#[tokio::test]
async fn a_reported_batch_answers_its_failures_logs_each_applied_event_and_emits_its_metrics() {
    logs();
    let trace_id = "Root=1-6759e988-cd862e3fe1be46a994272793";
    let traced = deposit("a", 5).with_trace(Some(TraceContext {
        traceparent: Some(TRACEPARENT.into()),
        xray_trace_id: None,
    }));
    let event = invocation(batch(&[&traced, &deposit("b", -1)]), trace_id);
    let processor = processor();
    let report = BatchReport::new("ledger-consumer").aggregate_field("account_id");
    let mut handler = report.layer(KinesisStream::new(&processor));
    let (response, metrics) = lambda::capture_metrics(handler.call(event)).await;

    let failures = response.unwrap().batch_item_failures;
    let failed: Vec<_> = failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(
        failed,
        [Some("00002".to_owned())],
        "the poison deposit is retried"
    );

    let logs = lines_of(trace_id);
    let done = batch_done(&logs);
    assert_eq!((&done["records"][..], &done["applied"][..]), ("2", "1"));
    assert_eq!(done["function"], "ledger-consumer");
    let applied: Vec<&Line> = logs
        .iter()
        .filter(|l| l["message"] == lambda::APPLIED_LOG_MESSAGE)
        .collect();
    assert_eq!(applied.len(), 1, "{logs:?}");
    assert_eq!(applied[0]["event_id"], traced.event_id);
    assert_eq!(
        applied[0]["account_id"], "a",
        "under the field the report was given"
    );
    assert_eq!(
        applied[0]["link_trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(applied[0]["link_span_id"], "00f067aa0ba902b7");

    assert_eq!(metrics.len(), 1);
    let line: Value = serde_json::from_str(&metrics[0]).unwrap();
    assert_eq!(line["Function"], "ledger-consumer");
    assert_eq!(
        (line["Applied"].as_u64(), line["Poison"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(line["links"], json!(["4bf92f3577b34da6a3ce929d0e0e4736"]));
    assert_eq!(line["trace_id"], trace_id);
    assert_eq!(line["OutboxLag"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_handler_without_the_report_answers_the_same_response_and_emits_nothing() {
    let processor = processor();
    let event = invocation(batch(&[&deposit("a", -1), &deposit("a", 2)]), "Root=1-x");
    let (processed, metrics) =
        lambda::capture_metrics(KinesisStream::new(&processor).call(event)).await;
    let processed = processed.unwrap();
    assert_eq!((processed.records, processed.outcome.held_back), (2, 1));
    assert_eq!(
        serde_json::to_value(&processed).unwrap(),
        serde_json::to_value(&processed.response).unwrap(),
        "what Lambda reads is the response alone"
    );
    assert!(metrics.is_empty());
}

/// Counts the actions it was asked to run; fails a sweep when told to.
#[derive(Default)]
struct Job {
    asked: Mutex<Vec<SweepAction>>,
    fail: bool,
}

impl SweepJob for Job {
    async fn run(&self, action: SweepAction) -> Result<SweepReport, Error> {
        self.asked.lock().unwrap().push(action);
        if self.fail {
            return Err("the pending index is unreachable".into());
        }
        Ok(SweepReport {
            found: 3,
            applied: 2,
            parked: 1,
            lag_millis: vec![10.0, 20.0],
            ..SweepReport::default()
        })
    }
}

#[tokio::test]
async fn the_sweeper_runs_what_the_payload_asks_and_counts_it_under_that_action() {
    let job = Job::default();
    let mut sweeper = ScheduledSweep::new(&job, "sweeper");
    let scheduled = invocation(json!({"source": "aws.scheduler"}), "Root=1-s");
    let (report, sweep) = lambda::capture_metrics(sweeper.call(scheduled)).await;
    assert_eq!(report.unwrap().applied, 2);
    let redrive = invocation(json!({"action": lambda::REDRIVE_PARKED}), "Root=1-r");
    let (_, redriven) = lambda::capture_metrics(sweeper.call(redrive)).await;
    assert_eq!(
        *job.asked.lock().unwrap(),
        [SweepAction::Sweep, SweepAction::RedriveParked]
    );

    let sweep: Value = serde_json::from_str(&sweep[0]).unwrap();
    assert_eq!(
        (
            sweep["OldPendingFound"].as_u64(),
            sweep["Redriven"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert!(sweep.get("Unparked").is_none());
    assert_eq!(sweep["OutboxLag"], json!([10.0, 20.0]));
    let redriven: Value = serde_json::from_str(&redriven[0]).unwrap();
    assert_eq!(
        redriven["Unparked"], 3,
        "a redrive is not an old pending event"
    );
    assert!(redriven.get("OldPendingFound").is_none());
}

#[tokio::test]
async fn a_failed_sweep_is_the_invocations_error_and_emits_nothing() {
    let job = Job {
        fail: true,
        ..Job::default()
    };
    let scheduled = invocation(json!({}), "Root=1-f");
    let (report, metrics) =
        lambda::capture_metrics(ScheduledSweep::new(&job, "sweeper").call(scheduled)).await;
    let error = report.unwrap_err();
    assert!(error.to_string().contains("unreachable"), "{error}");
    assert!(metrics.is_empty());
}

#[tokio::test]
async fn a_consumers_function_runs_a_stream_batch_through_the_report_and_anything_else_as_a_sweep()
{
    let processor = processor_of(Source::table("deposits").unwrap());
    let job = Job::default();
    let mut function = ConsumerFunction::new(BatchReport::new("ledger"), &processor, &job);

    let batch = invocation(json!({"Records": []}), "Root=1-b");
    let (answer, metrics) = lambda::capture_metrics(function.call(batch)).await;
    assert_eq!(answer.unwrap(), json!({"batchItemFailures": []}));
    assert!(job.asked.lock().unwrap().is_empty(), "a batch is no sweep");
    let line: Value = serde_json::from_str(&metrics[0]).unwrap();
    assert_eq!(line["Function"], "ledger");
    assert!(line.get("OldPendingFound").is_none(), "{line}");

    let scheduled = invocation(json!({"source": "aws.scheduler"}), "Root=1-s");
    let (answer, metrics) = lambda::capture_metrics(function.call(scheduled)).await;
    assert_eq!(answer.unwrap()["applied"], 2);
    let redrive = invocation(json!({"action": lambda::REDRIVE_PARKED}), "Root=1-r");
    function.call(redrive).await.unwrap();
    assert_eq!(
        *job.asked.lock().unwrap(),
        [SweepAction::Sweep, SweepAction::RedriveParked]
    );
    let line: Value = serde_json::from_str(&metrics[0]).unwrap();
    assert_eq!(
        (line["Function"].as_str(), line["OldPendingFound"].as_u64()),
        (Some("ledger"), Some(3)),
        "a sweep's metrics, under the consumer's dimension"
    );

    let malformed = invocation(json!({"Records": "none"}), "Root=1-m");
    assert!(function.call(malformed).await.is_err());
    assert_eq!(
        job.asked.lock().unwrap().len(),
        2,
        "nor is a malformed batch"
    );
}

#[tokio::test]
async fn the_inbox_handler_answers_the_message_ids_to_keep_under_the_report() {
    logs();
    let queue = "arn:aws:sqs:eu-west-1:123456789012:deposits";
    let processor = processor_of(Source::sqs_queue(queue).unwrap());
    let body = |event: Envelope<Deposited>| serde_json::to_string(&event).unwrap();
    let mut event = SqsEvent::default();
    event.records = vec![
        message(queue, "m1", body(deposit("a", 5)), None),
        message(queue, "m2", body(deposit("b", -1)), None),
    ];
    let trace_id = "Root=1-6759e988-00000000000000000000000a";
    let mut handler = BatchReport::new("ledger-inbox").layer(SqsQueue::new(&processor));
    let (response, metrics) =
        lambda::capture_metrics(handler.call(invocation(event, trace_id))).await;
    let answer = serde_json::to_value(response.unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}]}),
        "the poison deposit stays in the queue"
    );
    let logs = lines_of(trace_id);
    let done = batch_done(&logs);
    assert_eq!((&done["records"][..], &done["applied"][..]), ("2", "1"));
    let line: Value = serde_json::from_str(&metrics[0]).unwrap();
    assert_eq!(line["Function"], "ledger-inbox");
}
