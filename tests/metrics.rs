//! The functions' metrics, read back from the EMF lines their real handlers emit on the embedded
//! DynamoDB (parsed as CloudWatch would, never recomputed), and the trace link from an order's
//! writer to the consumer's work for it.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use devkit::metrics::MetricsSummary;
use lambda_runtime::{Context, LambdaEvent};
use outbox_tests::*;
use rewards_service::handlers::{stream, sweeper};
use serde_dynamo::AttributeValue;
use serde_json::{json, Value};
use service_runtime::metrics::{self as m, capture};
use service_runtime::Timestamp;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn summary(lines: &[String]) -> MetricsSummary {
    MetricsSummary::from_lines(lines.iter().map(String::as_str)).expect("valid EMF lines")
}

async fn consume(stack: &Stack, records: Vec<EventRecord>) -> MetricsSummary {
    let mut event = Event::default();
    event.records = records;
    let invocation = LambdaEvent::new(event, Context::default());
    let (response, lines) = capture(stream::handle(&stack.service(), invocation)).await;
    response.expect("the consumer answers");
    summary(&lines)
}

#[tokio::test]
async fn a_replayed_batch_of_three_reports_duplicates_3_and_no_new_lag() {
    let stack = stack().await;
    for customer in ["c-1", "c-2", "c-3"] {
        place(&stack, customer, &[("A", 1, 1_000)]).await;
    }
    let batch = outbox_batch(&stack).await;
    assert_eq!(batch.len(), 3);

    let first = consume(&stack, batch.clone()).await;
    let consumer = m::STREAM_CONSUMER;
    assert_eq!(first.count(consumer, m::APPLIED), 3.0);
    assert_eq!(first.count(consumer, m::DUPLICATES), 0.0);
    let lag = first.get(consumer, m::OUTBOX_LAG).expect("a lag per event");
    assert_eq!(lag.values.len(), 3);
    assert!(
        lag.values.iter().all(|v| (0.0..60_000.0).contains(v)),
        "{lag:?}"
    );
    assert_eq!(
        first.get(consumer, m::BATCH_DURATION).unwrap().values.len(),
        1
    );

    let replay = consume(&stack, batch).await;
    assert_eq!(replay.count(consumer, m::DUPLICATES), 3.0);
    assert_eq!(replay.count(consumer, m::APPLIED), 0.0);
    assert!(
        replay.get(consumer, m::OUTBOX_LAG).is_none(),
        "a duplicate commits nothing"
    );

    // The unfiltered stream: the orders' own INSERTs and the consumer's MODIFY marks are skipped.
    let everything = stack.stream_records().await.unwrap();
    let skipped = everything.len() - 3;
    let unfiltered = consume(&stack, everything).await;
    assert_eq!(unfiltered.count(consumer, m::SKIPPED), skipped as f64);
    assert_eq!(unfiltered.count(consumer, m::DUPLICATES), 3.0);
}

#[tokio::test]
async fn a_poison_event_is_counted_parked_and_its_customers_next_event_applied() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 2_000)]).await;
    place(&stack, "c-1", &[("A", 1, 3_000)]).await;
    let mut batch = outbox_batch(&stack).await;
    // The first event of c-1 claims points its total does not give: poison. The rewards
    // consumer parks it, so the second event of c-1 goes on.
    edit_image(&mut batch[0], |image| {
        let Some(AttributeValue::M(payload)) = image.get_mut("payload") else {
            panic!("an outbox image has a payload map")
        };
        payload.insert("points".into(), AttributeValue::N("999".into()));
    });

    let run = consume(&stack, batch).await;
    let consumer = m::STREAM_CONSUMER;
    assert_eq!(
        (
            run.count(consumer, m::PARKED),
            run.count(consumer, m::POISON),
            run.count(consumer, m::HELD_BACK),
            run.count(consumer, m::RETRIED),
            run.count(consumer, m::APPLIED)
        ),
        (1.0, 0.0, 0.0, 0.0, 1.0)
    );
}

#[tokio::test]
async fn orders_placed_replayed_and_rejected_by_reason() {
    let stack = stack().await;
    let body = order_body("c-1", &[("A", 1, 1_000)]);
    let ((), lines) = capture(async {
        let key = [("idempotency-key", "k-1")];
        assert_eq!(
            call_orders(&stack, post_order(&body, &key)).await.status,
            201
        );
        assert_eq!(
            call_orders(&stack, post_order(&body, &key)).await.status,
            201
        );
        let usd = body.replace("USD", "usd");
        assert_eq!(call_orders(&stack, post_order(&usd, &[])).await.status, 400);
        let other = order_body("c-1", &[("B", 2, 1_000)]);
        assert_eq!(
            call_orders(&stack, post_order(&other, &key)).await.status,
            409
        );
    })
    .await;
    let run = summary(&lines);
    let writer = m::ORDER_WRITER;
    assert_eq!(run.count(writer, m::ORDERS_PLACED), 1.0);
    assert_eq!(run.count(writer, m::ORDER_REPLAYS), 1.0);
    assert_eq!(run.count(writer, m::ORDERS_REJECTED), 2.0);
    let reasons: Vec<(&str, f64)> = run
        .series
        .iter()
        .filter(|(k, _)| k.metric == m::ORDERS_REJECTED && k.reason.is_some())
        .map(|(k, s)| (k.reason.as_deref().unwrap(), s.sum()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().all(|(_, n)| *n == 1.0), "{reasons:?}");
    for line in &lines {
        assert!(
            !line.contains("c-1"),
            "a customer id in a metric line: {line}"
        );
    }
}

#[tokio::test]
async fn the_sweeper_reports_old_pending_events_what_it_redrove_parked_and_their_lag() {
    let stack = stack().await;
    let day_ago = Timestamp::now().plus_seconds(-86_400);
    let good = outbox_event("c-1", "old-good", day_ago, 1);
    let stuck = poison_outbox_event("c-2", "old-stuck", day_ago, 1);
    put_items(&stack, &stack.tables.orders, vec![good, stuck]).await;

    let sweeper = std::sync::Arc::new(stack.sweeper(0, 100));
    let run = |payload: Value| {
        let sweeper = sweeper.clone();
        async move {
            let invocation = LambdaEvent::new(payload, Context::default());
            let (report, lines) = capture(sweeper::handle(&sweeper, invocation)).await;
            report.expect("the sweeper runs");
            summary(&lines)
        }
    };
    let sweep = run(json!({"source": "aws.scheduler"})).await;
    let s = m::OUTBOX_SWEEPER;
    assert_eq!(
        (
            sweep.count(s, m::OLD_PENDING_FOUND),
            sweep.count(s, m::REDRIVEN),
            sweep.count(s, m::PARKED),
            sweep.count(s, m::STILL_PENDING)
        ),
        (2.0, 1.0, 1.0, 0.0)
    );
    let lag = &sweep.get(s, m::OUTBOX_LAG).unwrap().values;
    assert_eq!(lag.len(), 1);
    assert!(
        lag[0] >= 86_400_000.0,
        "the lag is the event's real age: {lag:?}"
    );

    let redrive = run(json!({"action": "redrive-parked"})).await;
    assert_eq!(
        (
            redrive.count(s, m::UNPARKED),
            redrive.count(s, m::PARKED),
            redrive.count(s, m::OLD_PENDING_FOUND)
        ),
        (1.0, 1.0, 0.0),
        "still poison: parked again; a redrive is not an old pending event"
    );
}

/// The JSON log lines the handlers write while `work` runs on this thread.
///
/// One global subscriber writes every line to the buffer of the thread that logged it. A
/// per-test `set_default` would race: tracing caches each log site's interest across all
/// dispatchers, and a site first reached by a parallel test with no subscriber can be cached as
/// disabled while this test's subscriber registers, so the line is silently lost.
async fn logs_of<F: std::future::Future>(work: F) -> (F::Output, Vec<Value>) {
    thread_local! {
        static CAPTURED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
    }
    struct ThisThread;
    impl std::io::Write for ThisThread {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with(|c| {
                if let Some(buffer) = c.borrow_mut().as_mut() {
                    buffer.extend_from_slice(bytes);
                }
            });
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        tracing::subscriber::set_global_default(service_runtime::config::json_logs_to(|| {
            ThisThread
        }))
        .expect("no other subscriber in this test binary");
    });
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let output = work.await;
    let bytes = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    let lines = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (output, lines)
}

#[tokio::test(flavor = "current_thread")]
async fn the_consumers_work_for_an_order_is_found_from_the_writers_trace_id() {
    let stack = stack().await;
    let body = order_body("c-9", &[("A", 1, 1_000)]);
    let (placed, writer_logs) = logs_of(call_orders(
        &stack,
        post_order(&body, &[("traceparent", TRACEPARENT)]),
    ))
    .await;
    assert_eq!(placed.status, 201);
    let order_id = placed.json["order_id"].as_str().unwrap().to_owned();
    let writer_line = writer_logs
        .iter()
        .find(|l| l["fields"]["message"] == "order placed")
        .expect("the writer logs the order");
    let trace_id = writer_line["fields"]["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");

    let batch = outbox_batch(&stack).await;
    let ((), consumer_logs) = logs_of(async {
        let mut event = Event::default();
        event.records = batch;
        let mut context = Context::default();
        context.xray_trace_id = Some("Root=1-6759e988-cd862e3fe1be46a994272793".into());
        let (response, lines) = capture(stream::handle(
            &stack.service(),
            LambdaEvent::new(event, context),
        ))
        .await;
        response.unwrap();
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            line["links"],
            json!([trace_id]),
            "the metrics line links the writer's trace"
        );
        assert_eq!(line["trace_id"], "Root=1-6759e988-cd862e3fe1be46a994272793");
    })
    .await;
    // The Logs Insights query of the README: filter link_trace_id = <the writer's trace id>.
    let work: Vec<&Value> = consumer_logs
        .iter()
        .filter(|l| l["fields"]["link_trace_id"] == trace_id.as_str())
        .collect();
    assert_eq!(work.len(), 1, "{consumer_logs:?}");
    let fields = &work[0]["fields"];
    assert_eq!(fields["message"], "outbox event applied");
    assert_eq!(fields["order_id"], order_id.as_str());
    assert_eq!(
        fields["link_xray_trace_id"],
        "1-4bf92f35-77b34da6a3ce929d0e0e4736"
    );
    assert_eq!(fields["link_span_id"], "00f067aa0ba902b7");
    assert_eq!(
        fields["trace_id"], "Root=1-6759e988-cd862e3fe1be46a994272793",
        "the consumer's own trace, which the link goes out from"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_poison_record_without_an_event_id_is_logged_by_its_item_key() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 1_000)]).await;
    let mut batch = outbox_batch(&stack).await;
    let keys: Vec<String> = ["pk", "sk"]
        .iter()
        .map(|k| match batch[0].change.keys.get(*k) {
            Some(serde_dynamo::AttributeValue::S(v)) => v.clone(),
            other => panic!("a record carries its keys: {other:?}"),
        })
        .collect();
    edit_image(&mut batch[0], |image| {
        image.remove("event_id");
    });
    let ((), logs) = logs_of(async {
        let mut event = Event::default();
        event.records = batch;
        stream::handle(
            &stack.service(),
            LambdaEvent::new(event, Context::default()),
        )
        .await
        .unwrap();
    })
    .await;
    let poison = logs
        .iter()
        .find(|l| l["fields"]["message"] == dynamodb_outbox::PARKED_LOG_MESSAGE)
        .expect("the poison record is logged");
    assert_eq!(
        poison["fields"]["event_id"],
        format!("item {}/{}", keys[0], keys[1]).as_str(),
        "{poison}"
    );
}
