//! The local Kinesis of pattern 3: kinesalite itself (shards, partition keys, held iterators) and
//! the local Kinesis event source mapping in front of a handler (Lambda's event shape, retries
//! from the first reported failure, bisection, the retry cap), all on a real kinesalite.
//!
//! Without Node.js or `make kinesalite` every test here fails and says which; with
//! `OUTBOX_SKIP_KINESIS=<reason>` they print `SKIPPED` with the reason instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine as _;
use devkit::kinesis::{LocalKinesis, StreamDescription};
use devkit::kinesis_trigger::KinesisTrigger;
use devkit::template::{EventSource, StartingPosition};
use devkit::Invoke;
use devkit::Template;
use serde_json::json;

const CONSUMER: &str = "OrderHistoryFunction";

/// A consumer reading a two-shard stream as SAM declares it (`Type: Kinesis`).
const TEMPLATE: &str = r#"
Parameters:
  Stage:
    Type: String
    Default: test
  KinesisBatchSize:
    Type: Number
    Default: 10
Resources:
  OrderEvents:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub order-events-${Stage}
      ShardCount: 2
  OrderHistoryFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        OrderEvents:
          Type: Kinesis
          Properties:
            Stream: !GetAtt OrderEvents.Arn
            StartingPosition: TRIM_HORIZON
            BatchSize: !Ref KinesisBatchSize
            MaximumBatchingWindowInSeconds: 2
            MaximumRetryAttempts: 2
            MaximumRecordAgeInSeconds: 3600
            BisectBatchOnFunctionError: true
            FunctionResponseTypes:
              - ReportBatchItemFailures
"#;

async fn kinesis(test: &str) -> Option<LocalKinesis> {
    LocalKinesis::start_or_skip(test)
        .await
        .expect("the local Kinesis (kinesalite)")
}

/// Kinesalite with the template's stream created on it with `shards` shards (the template says
/// 2), and the consumer's mapping settings; `None` when the test is skipped.
async fn stream_and_source(
    test: &str,
    shards: i32,
) -> Option<(LocalKinesis, StreamDescription, EventSource)> {
    let kinesis = kinesis(test).await?;
    let template = Template::parse(TEMPLATE).unwrap();
    let spec = template.kinesis_streams().unwrap().remove(0);
    let stream = kinesis.create_stream(&spec.name, shards).await.unwrap();
    Some((kinesis, stream, template.kinesis_source(CONSUMER).unwrap()))
}

/// The consumer's mapping over a one-shard stream, drained once: what a test of its retries
/// looks at.
struct OneShard<I> {
    kinesis: LocalKinesis,
    stream: StreamDescription,
    /// The records put before the mapping started, in put order.
    sequences: Vec<String>,
    trigger: KinesisTrigger<I>,
    log: Arc<Mutex<Vec<KinesisEvent>>>,
}

/// Puts each of `data` under one key on a one-shard stream, then drains the mapping to a
/// [`recording`] handler that answers as `answer_for(the records' sequence numbers)` says.
async fn one_shard<F>(
    test: &str,
    data: &[impl AsRef<str>],
    answer_for: impl FnOnce(&[String]) -> F,
) -> Option<OneShard<impl Invoke<KinesisEvent>>>
where
    F: Fn(usize, &KinesisEvent) -> Result<KinesisEventResponse, String> + Send + Sync,
{
    let (kinesis, stream, source) = stream_and_source(test, 1).await?;
    let sequences = put_all(&kinesis, &stream.name, "k", data.iter().map(AsRef::as_ref)).await;
    let (handler, log) = recording(answer_for(&sequences));
    let trigger = drained(&kinesis, source, &stream.name, handler).await;
    Some(OneShard {
        kinesis,
        stream,
        sequences,
        trigger,
        log,
    })
}

impl<I> OneShard<I> {
    /// Each invocation's sequence numbers, in order.
    fn batches(&self) -> Vec<Vec<String>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(sequence_numbers)
            .collect()
    }
}

/// Puts `data` under `key` and returns the record's shard and sequence number.
async fn put(kinesis: &LocalKinesis, stream: &str, key: &str, data: &str) -> (String, String) {
    let out = kinesis
        .client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data.as_bytes()))
        .send()
        .await
        .unwrap();
    (out.shard_id, out.sequence_number)
}

/// Puts each of `data` under `key`, in order: their sequence numbers.
async fn put_all<'a>(
    kinesis: &LocalKinesis,
    stream: &str,
    key: &str,
    data: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut sequences = Vec::new();
    for data in data {
        sequences.push(put(kinesis, stream, key, data).await.1);
    }
    sequences
}

/// `n` records' data: `r0`, `r1`, ...
fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

/// The mapping of `source` from `stream` to `handler`, after it delivered all there is.
async fn drained<I: Invoke<KinesisEvent>>(
    kinesis: &LocalKinesis,
    source: EventSource,
    stream: &str,
    handler: I,
) -> KinesisTrigger<I> {
    let mut trigger = KinesisTrigger::open(source, kinesis.client.clone(), stream, handler)
        .await
        .unwrap();
    trigger.drain().await.unwrap();
    trigger
}

/// A handler that keeps every event it gets and answers with `answer(invocation, event)`.
fn recording<F>(answer: F) -> (impl Invoke<KinesisEvent>, Arc<Mutex<Vec<KinesisEvent>>>)
where
    F: Fn(usize, &KinesisEvent) -> Result<KinesisEventResponse, String> + Send + Sync,
{
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let handler = move |event: KinesisEvent| {
        let answer = {
            let mut log = seen.lock().unwrap();
            let answer = answer(log.len(), &event);
            log.push(event);
            answer
        };
        async move { answer }
    };
    (handler, log)
}

fn sequence_numbers(event: &KinesisEvent) -> Vec<String> {
    event
        .records
        .iter()
        .map(|r| r.kinesis.sequence_number.clone())
        .collect()
}

fn failing(sequence_numbers: &[impl AsRef<str>]) -> KinesisEventResponse {
    let mut response = KinesisEventResponse::default();
    for sequence in sequence_numbers {
        response.add_failure(sequence.as_ref());
    }
    response
}

/// An answer that reports `sequence_numbers` as failed on the first invocation, and no failure
/// after it.
fn failing_first_time(
    sequence_numbers: Vec<String>,
) -> impl Fn(usize, &KinesisEvent) -> Result<KinesisEventResponse, String> + Send + Sync {
    move |invocation, _| match invocation {
        0 => Ok(failing(&sequence_numbers)),
        _ => Ok(KinesisEventResponse::default()),
    }
}

fn data_of(record: &aws_lambda_events::kinesis::KinesisEventRecord) -> String {
    String::from_utf8(record.kinesis.data.to_vec()).unwrap()
}

#[test]
fn the_kinesis_mapping_reads_sams_property_names_and_lambdas_defaults() {
    let template = Template::parse(TEMPLATE).unwrap();
    let source = template.kinesis_source(CONSUMER).unwrap();
    assert_eq!(source.logical_id, "OrderEvents");
    assert_eq!(source.starting_position, StartingPosition::TrimHorizon);
    assert_eq!(source.batch_size, 10, "BatchSize through a !Ref parameter");
    assert_eq!(source.maximum_retry_attempts, 2);
    assert_eq!(source.maximum_record_age_seconds, 3600);
    assert!(source.bisect_on_function_error && source.report_batch_item_failures);
    assert_eq!(source.polling_interval, std::time::Duration::from_secs(2));
    let streams = template.kinesis_streams().unwrap();
    assert_eq!(
        (streams[0].name.as_str(), streams[0].shard_count),
        ("order-events-test", 2)
    );

    let bare = TEMPLATE
        .lines()
        .filter(|line| {
            ![
                "BatchSize",
                "MaximumRetry",
                "MaximumRecord",
                "Bisect",
                "MaximumBatching",
            ]
            .iter()
            .any(|setting| line.trim_start().starts_with(setting))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let defaults = Template::parse(&bare)
        .unwrap()
        .kinesis_source(CONSUMER)
        .unwrap();
    assert_eq!(defaults.batch_size, 100);
    assert_eq!(
        defaults.maximum_retry_attempts, -1,
        "Lambda retries until the record expires"
    );
    assert!(!defaults.bisect_on_function_error);
    assert_eq!(defaults.polling_interval, std::time::Duration::from_secs(1));

    let other_position = TEMPLATE.replace("TRIM_HORIZON", "AT_TIMESTAMP");
    let refused = Template::parse(&other_position)
        .unwrap()
        .kinesis_source(CONSUMER)
        .unwrap_err();
    assert!(refused.to_string().contains("AT_TIMESTAMP"), "{refused}");
}

#[tokio::test]
async fn a_missing_node_or_kinesalite_is_named_with_what_to_install() {
    let package = devkit::kinesis::package_path();
    let no_node = LocalKinesis::start_with("node-is-not-installed-here".as_ref(), &package, 0)
        .await
        .err()
        .expect("no server without Node.js");
    if package.exists() {
        assert!(no_node.0.contains("install Node.js"), "{no_node}");
    }
    let not_installed =
        LocalKinesis::start_with("node".as_ref(), "/nowhere/kinesalite".as_ref(), 0)
            .await
            .err()
            .expect("no server without kinesalite");
    assert!(
        not_installed.0.contains("make kinesalite"),
        "{not_installed}"
    );
}

#[tokio::test]
async fn kinesalite_puts_each_keys_records_in_order_on_one_of_two_shards() {
    let Some(kinesis) =
        kinesis("kinesalite_puts_each_keys_records_in_order_on_one_of_two_shards").await
    else {
        return;
    };
    let stream = kinesis.create_stream("orders", 2).await.unwrap();
    assert_eq!(stream.shard_ids.len(), 2);
    assert!(stream.arn.starts_with("arn:aws:kinesis:us-east-1:"));
    assert!(stream.arn.ends_with(":stream/orders"));

    let keys: Vec<String> = (0..8).map(|k| format!("customer-{k}")).collect();
    let mut put_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut shard_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    for round in 0..5 {
        for key in &keys {
            let data = format!("{key}/{round}");
            let (shard, _) = put(&kinesis, "orders", key, &data).await;
            shard_of.entry(key.clone()).or_default().insert(shard);
            put_order.entry(key.clone()).or_default().push(data);
        }
    }
    for (key, shards) in &shard_of {
        assert_eq!(shards.len(), 1, "{key} went to {shards:?}");
    }

    let mut read_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut keys_per_shard: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for shard in &stream.shard_ids {
        let iterator = kinesis
            .client
            .get_shard_iterator()
            .stream_name("orders")
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let out = kinesis
            .client
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        for record in out.records {
            let key = record.partition_key.unwrap();
            let data = String::from_utf8(record.data.into_inner()).unwrap();
            assert!(data.starts_with(&format!("{key}/")));
            keys_per_shard
                .entry(shard.clone())
                .or_default()
                .insert(key.clone());
            read_order.entry(key).or_default().push(data);
        }

        // Lambda holds its iterator: a record written after it reached the end is seen with it.
        let held = out.next_shard_iterator.unwrap();
        let key = keys_per_shard[shard].first().unwrap().clone();
        put(&kinesis, "orders", &key, "later").await;
        let later = kinesis
            .client
            .get_records()
            .shard_iterator(held)
            .send()
            .await
            .unwrap();
        let later: Vec<Vec<u8>> = later
            .records
            .into_iter()
            .map(|r| r.data.into_inner())
            .collect();
        assert_eq!(later, vec![b"later".to_vec()]);
    }
    assert_eq!(
        read_order, put_order,
        "every record, each key's in put order"
    );
    assert_eq!(
        keys_per_shard.len(),
        2,
        "both shards hold keys: {keys_per_shard:?}"
    );
}

#[tokio::test]
async fn the_trigger_delivers_every_record_in_lambdas_kinesis_shape() {
    let Some((kinesis, stream, source)) = stream_and_source(
        "the_trigger_delivers_every_record_in_lambdas_kinesis_shape",
        2,
    )
    .await
    else {
        return;
    };
    let mut put_records = HashMap::new();
    let mut put_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..5 {
        for key in ["a", "b", "c", "d", "e"] {
            let data = json!({ "key": key, "round": round }).to_string();
            let (shard, sequence) = put(&kinesis, &stream.name, key, &data).await;
            put_records.insert(sequence, (shard, key, data.clone()));
            put_order.entry(key.to_owned()).or_default().push(data);
        }
    }
    let (handler, log) = recording(|_, _| Ok(KinesisEventResponse::default()));
    let mut trigger = drained(&kinesis, source, &stream.name, handler).await;

    let events = log.lock().unwrap().clone();
    let mut delivered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for event in &events {
        assert!(event.records.len() <= 10, "at most BatchSize records");
        let shards: BTreeSet<&str> = event
            .records
            .iter()
            .map(|r| r.event_id.as_deref().unwrap().split(':').next().unwrap())
            .collect();
        assert_eq!(shards.len(), 1, "a batch comes from one shard");
        for record in &event.records {
            let sequence = &record.kinesis.sequence_number;
            let (shard, key, data) = &put_records[sequence];
            assert!(seen.insert(sequence.clone()), "{sequence} delivered twice");
            assert_eq!(
                record.event_id.as_deref(),
                Some(format!("{shard}:{sequence}").as_str())
            );
            assert_eq!(record.event_name.as_deref(), Some("aws:kinesis:record"));
            assert_eq!(record.event_source.as_deref(), Some("aws:kinesis"));
            assert_eq!(record.event_version.as_deref(), Some("1.0"));
            assert_eq!(
                record.event_source_arn.as_deref(),
                Some(stream.arn.as_str())
            );
            assert_eq!(record.aws_region.as_deref(), Some("us-east-1"));
            assert_eq!(record.kinesis.partition_key, *key);
            assert_eq!(data_of(record), *data);
            assert_eq!(
                record.kinesis.kinesis_schema_version.as_deref(),
                Some("1.0")
            );
            assert!(record.kinesis.approximate_arrival_timestamp.0.timestamp() > 1_700_000_000);
            delivered
                .entry(key.to_string())
                .or_default()
                .push(data.clone());
        }
    }
    assert_eq!(
        delivered, put_order,
        "every record once, each key's in order"
    );
    assert_eq!(trigger.stats.records_delivered, 25);

    // As Lambda serialises it: base64 data and the capitalised ARN and ID keys.
    let wire = serde_json::to_value(&events[0]).unwrap();
    let first = &wire["Records"][0];
    assert!(first["eventSourceARN"].is_string() && first["eventID"].is_string());
    let encoded = first["kinesis"]["data"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(decoded, events[0].records[0].kinesis.data.to_vec());

    let (later_shard, later) = put(&kinesis, &stream.name, "a", "after the checkpoint").await;
    trigger.drain().await.unwrap();
    let events = log.lock().unwrap().clone();
    assert_eq!(
        events.len() - 1,
        events
            .iter()
            .position(|e| sequence_numbers(e) == [later.clone()])
            .unwrap(),
        "only the new record, in an invocation of its own"
    );
    assert_eq!(trigger.checkpoint(&later_shard), Some(later.as_str()));
}

#[tokio::test]
async fn a_reported_failure_is_retried_from_the_lowest_reported_record() {
    let test = "a_reported_failure_is_retried_from_the_lowest_reported_record";
    let Some(run) = one_shard(test, &numbered(6), |sequences| {
        failing_first_time(vec![sequences[5].clone(), sequences[3].clone()])
    })
    .await
    else {
        return;
    };
    let sequences = &run.sequences;
    assert_eq!(
        run.batches(),
        vec![sequences.clone(), sequences[3..].to_vec()]
    );
    assert_eq!(run.trigger.stats.partial_failures, 1);
    assert!(run.trigger.on_failure.is_empty());
    assert_eq!(
        run.trigger.checkpoint(&run.stream.shard_ids[0]),
        Some(sequences[5].as_str())
    );
}

#[tokio::test]
async fn an_unknown_failure_identifier_retries_the_whole_batch() {
    let test = "an_unknown_failure_identifier_retries_the_whole_batch";
    let unknown = || failing_first_time(vec!["not-a-sequence-number".to_owned()]);
    let Some(run) = one_shard(test, &numbered(3), |_| unknown()).await else {
        return;
    };
    assert_eq!(
        run.batches(),
        vec![run.sequences.clone(), run.sequences.clone()]
    );
}

#[tokio::test]
async fn the_retry_cap_sends_the_rest_of_the_batch_to_the_on_failure_destination() {
    let test = "the_retry_cap_sends_the_rest_of_the_batch_to_the_on_failure_destination";
    let Some(mut run) = one_shard(test, &numbered(5), |sequences| {
        let stuck = sequences[2].clone();
        move |_, _| Ok(failing(&[&stuck]))
    })
    .await
    else {
        return;
    };
    let (sequences, stream) = (run.sequences.clone(), &run.stream);
    let rest = sequences[2..].to_vec();
    assert_eq!(
        run.batches(),
        vec![sequences.clone(), rest.clone(), rest],
        "one invocation and MaximumRetryAttempts (2) retries from the failed record"
    );
    assert_eq!(run.trigger.on_failure.len(), 1);
    let message = &run.trigger.on_failure[0];
    assert_eq!(
        message["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(message["requestContext"]["approximateInvokeCount"], 3);
    let info = &message["KinesisBatchInfo"];
    assert_eq!(info["shardId"], stream.shard_ids[0]);
    assert_eq!(info["startSequenceNumber"], sequences[2]);
    assert_eq!(info["endSequenceNumber"], sequences[4]);
    assert_eq!(info["batchSize"], 3);
    assert_eq!(info["streamArn"], stream.arn);
    assert_eq!(
        run.trigger.checkpoint(&stream.shard_ids[0]),
        Some(sequences[4].as_str()),
        "the mapping moves past what it gave up on"
    );

    let next = put(&run.kinesis, &stream.name, "k", "next").await.1;
    run.trigger.drain().await.unwrap();
    assert_eq!(
        run.log.lock().unwrap().last().map(sequence_numbers),
        Some(vec![next])
    );
}

#[tokio::test]
async fn a_function_error_bisects_the_batch_down_to_the_poison_record() {
    let test = "a_function_error_bisects_the_batch_down_to_the_poison_record";
    let data = ["ok-0", "ok-1", "ok-2", "poison"];
    let Some(run) = one_shard(test, &data, |_| {
        |_, event: &KinesisEvent| {
            if event.records.iter().any(|r| data_of(r) == "poison") {
                Err("cannot handle poison".to_owned())
            } else {
                Ok(KinesisEventResponse::default())
            }
        }
    })
    .await
    else {
        return;
    };
    let records = |range: std::ops::Range<usize>| run.sequences[range].to_vec();
    assert_eq!(
        run.batches(),
        vec![
            records(0..4),
            records(0..2),
            records(2..4),
            records(2..3),
            records(3..4)
        ],
        "halved on each function error while retries last"
    );
    assert_eq!(run.trigger.on_failure.len(), 1);
    let info = &run.trigger.on_failure[0]["KinesisBatchInfo"];
    assert_eq!(
        (&info["startSequenceNumber"], &info["batchSize"]),
        (&json!(run.sequences[3]), &json!(1))
    );
}

#[tokio::test]
async fn the_shards_are_polled_in_parallel() {
    let Some((kinesis, stream, source)) =
        stream_and_source("the_shards_are_polled_in_parallel", 2).await
    else {
        return;
    };
    let mut shards_with_a_record = BTreeSet::new();
    for key in (0..64).map(|k| format!("key-{k}")) {
        if shards_with_a_record.len() == 2 {
            break;
        }
        let (shard, _) = put(&kinesis, &stream.name, &key, "x").await;
        shards_with_a_record.insert(shard);
    }
    assert_eq!(shards_with_a_record.len(), 2);
    // Each shard's invocation waits for the other's: only pollers running side by side finish.
    let both_invoked = Arc::new(tokio::sync::Barrier::new(2));
    let handler = move |_: KinesisEvent| {
        let both_invoked = both_invoked.clone();
        async move {
            both_invoked.wait().await;
            Ok(KinesisEventResponse::default())
        }
    };
    let mut trigger = KinesisTrigger::open(source, kinesis.client.clone(), &stream.name, handler)
        .await
        .unwrap();
    let drained = tokio::time::timeout(std::time::Duration::from_secs(60), trigger.drain()).await;
    assert!(
        drained.is_ok(),
        "the second shard was not invoked while the first one's invocation ran"
    );
    assert_eq!(trigger.stats.invocations, 2);
}

#[tokio::test]
async fn filter_criteria_see_the_records_json_data_and_the_checkpoint_passes_what_they_drop() {
    let Some(kinesis) = kinesis(
        "filter_criteria_see_the_records_json_data_and_the_checkpoint_passes_what_they_drop",
    )
    .await
    else {
        return;
    };
    let filtered = TEMPLATE.replace(
        "            FunctionResponseTypes:",
        "            FilterCriteria:\n              Filters:\n                - Pattern: '{\"data\": {\"type\": [\"OrderPlaced\"]}}'\n            FunctionResponseTypes:",
    );
    let template = Template::parse(&filtered).unwrap();
    let source = template.kinesis_source(CONSUMER).unwrap();
    assert_eq!(source.filter_patterns.len(), 1);
    let stream = kinesis.create_stream("filtered", 1).await.unwrap();
    let mut kept = Vec::new();
    let mut last = String::new();
    for data in [
        r#"{"type": "OrderPlaced", "n": 1}"#,
        r#"{"type": "OrderCancelled", "n": 2}"#,
        "not json",
        r#"{"type": "OrderPlaced", "n": 3}"#,
        r#"{"type": "Other", "n": 4}"#,
    ] {
        last = put(&kinesis, "filtered", "k", data).await.1;
        if data.contains("OrderPlaced") {
            kept.push(last.clone());
        }
    }
    let (handler, log) = recording(|_, _| Ok(KinesisEventResponse::default()));
    let trigger = drained(&kinesis, source, "filtered", handler).await;
    let delivered: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .flat_map(sequence_numbers)
        .collect();
    assert_eq!(delivered, kept);
    assert_eq!(trigger.stats.filtered_out, 3);
    assert_eq!(
        trigger.checkpoint(&stream.shard_ids[0]),
        Some(last.as_str())
    );
}

#[tokio::test]
async fn following_a_stream_delivers_records_written_after_it_started_then_stops() {
    let Some((kinesis, stream, mut source)) = stream_and_source(
        "following_a_stream_delivers_records_written_after_it_started_then_stops",
        2,
    )
    .await
    else {
        return;
    };
    source.polling_interval = std::time::Duration::from_millis(20);
    let mut written = BTreeSet::new();
    for key in ["a", "b"] {
        written.insert(put(&kinesis, &stream.name, key, "before").await.1);
    }
    let all_seen = Arc::new(tokio::sync::Notify::new());
    let delivered = Arc::new(Mutex::new(BTreeSet::new()));
    let handler = {
        let (all_seen, delivered) = (all_seen.clone(), delivered.clone());
        move |event: KinesisEvent| {
            let mut delivered = delivered.lock().unwrap();
            delivered.extend(sequence_numbers(&event));
            if delivered.len() == 6 {
                all_seen.notify_one();
            }
            async { Ok(KinesisEventResponse::default()) }
        }
    };
    let mut trigger = KinesisTrigger::open(source, kinesis.client.clone(), &stream.name, handler)
        .await
        .unwrap();
    let writer = async {
        let mut later = Vec::new();
        for key in ["a", "b", "c", "d"] {
            later.push(put(&kinesis, &stream.name, key, "after").await.1);
        }
        later
    };
    let following = trigger.follow(all_seen.notified());
    let run = async { tokio::join!(following, writer) };
    let (followed, later) = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the records written while following were never delivered");
    followed.unwrap();
    written.extend(later);
    assert_eq!(*delivered.lock().unwrap(), written);
    assert_eq!(trigger.stats.records_delivered, 6, "each record once");
}
