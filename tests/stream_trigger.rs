//! The local event source mapping: template settings, checkpoints, retries, bisection and the
//! on-failure destination, with the real consumer behind it.

use std::sync::{Arc, Mutex};

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use devkit::stack::{in_process, CONSUMER_FUNCTION};
use devkit::Invoke;
use dynamodb_outbox::testing::schema;
use outbox_tests::*;
use serde_json::json;

/// Wraps an invoker and remembers the sequence numbers of every batch it was given.
fn recording<I: Invoke + 'static>(inner: I, log: Arc<Mutex<Vec<Vec<String>>>>) -> impl Invoke {
    let inner = Arc::new(inner);
    move |event: Event| {
        let seqs = event
            .records
            .iter()
            .filter_map(|r| r.change.sequence_number.clone())
            .collect();
        log.lock().unwrap().push(seqs);
        let inner = inner.clone();
        async move { inner.invoke(event).await }
    }
}

fn key_names(table: &serde_json::Value) -> Vec<&str> {
    table["KeySchema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["AttributeName"].as_str().unwrap())
        .collect()
}

#[test]
fn the_template_and_the_code_agree_on_keys_and_filters() {
    let template = devkit::Template::load_default().unwrap();
    let orders = template.table("OrdersTable").unwrap().properties;
    assert_eq!(key_names(&orders), [schema::PK, schema::SK]);
    assert_eq!(
        orders["TimeToLiveSpecification"]["AttributeName"],
        schema::EXPIRES_AT
    );
    assert_eq!(orders["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
    let gsi = &orders["GlobalSecondaryIndexes"][0];
    assert_eq!(gsi["IndexName"], schema::PENDING_INDEX);
    assert_eq!(gsi["KeySchema"][0]["AttributeName"], schema::PENDING_PK);
    assert_eq!(gsi["KeySchema"][1]["AttributeName"], schema::PENDING_SK);
    let rewards = template.table("RewardsTable").unwrap().properties;
    assert_eq!(key_names(&rewards), [schema::PK, schema::SK]);

    let source = template.stream_source(CONSUMER_FUNCTION).unwrap();
    assert_eq!(source.logical_id, "OrdersTable");
    assert!(source.report_batch_item_failures && source.bisect_on_function_error);
    assert!(source.maximum_retry_attempts >= 0, "retries must be finite");
    assert_eq!(
        source.filter_patterns,
        vec![json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {
            schema::ENTITY: {"S": [schema::ENTITY_OUTBOX_EVENT]},
            schema::AFTER: {"M": {rewards_service::consumer::NAME: {"N": [{"exists": true}]}}}
        }}})]
    );
}

#[test]
fn the_template_bounds_every_numeric_setting_as_the_code_does() {
    let template = devkit::Template::load_default().unwrap();
    for (parameter, setting) in [
        (
            "OutboxRetentionSeconds",
            service_runtime::config::OUTBOX_RETENTION_SECONDS,
        ),
        (
            "ConsumerConcurrency",
            service_runtime::config::CONSUMER_CONCURRENCY,
        ),
        (
            "SweeperGraceSeconds",
            service_runtime::config::SWEEPER_GRACE_SECONDS,
        ),
        (
            "SweeperBatchLimit",
            service_runtime::config::SWEEPER_BATCH_LIMIT,
        ),
    ] {
        assert_eq!(
            template.parameter_range(parameter),
            Some((setting.min, setting.max)),
            "{parameter} and {}",
            setting.variable
        );
        assert_eq!(
            template.parameter(parameter),
            Some(setting.default.to_string().as_str()),
            "{parameter}'s default"
        );
    }
}

#[tokio::test]
async fn the_checkpoint_moves_on_and_a_new_mapping_starts_from_the_horizon() {
    let stack = stack().await;
    for i in 0..5 {
        place(&stack, &format!("c-{i}"), &[("A", 1, 100)]).await;
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut trigger = stack
        .trigger(recording(in_process(stack.service(), 4), log.clone()))
        .unwrap();
    trigger.source.batch_size = 2;
    trigger.drain().await.unwrap();
    let sizes: Vec<usize> = log.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        vec![2, 2, 1],
        "batches of at most BatchSize matching records"
    );

    for i in 5..8 {
        place(&stack, &format!("c-{i}"), &[("A", 1, 100)]).await;
    }
    trigger.drain().await.unwrap();
    assert_eq!(
        trigger.stats.records_delivered, 8,
        "only the new records after the checkpoint"
    );

    // A second mapping (a new checkpoint) replays the stream: every event is a duplicate.
    let mut fresh = stack.trigger(in_process(stack.service(), 4)).unwrap();
    fresh.drain().await.unwrap();
    assert_eq!(fresh.stats.records_delivered, 8);
    for i in 0..8 {
        assert_eq!(balance(&stack, &format!("c-{i}")).await, (1, 1));
    }
}

#[tokio::test]
async fn a_partial_failure_is_retried_from_the_lowest_reported_record() {
    let stack = stack().await;
    for i in 0..4 {
        place(&stack, &format!("c-{i}"), &[("A", 1, 1_000)]).await;
    }
    let failures_left = Arc::new(Mutex::new(2));
    let real = Arc::new(in_process(stack.service(), 4));
    // Reports the third record failed twice (as a throttled write would), then lets it through.
    let flaky = {
        let failures_left = failures_left.clone();
        move |event: Event| {
            let real = real.clone();
            let failures_left = failures_left.clone();
            async move {
                let third = event
                    .records
                    .get(2)
                    .and_then(|r| r.change.sequence_number.clone());
                let mut left = failures_left.lock().unwrap().to_owned();
                let fail_now = third.is_some() && left > 0;
                if fail_now {
                    left -= 1;
                    *failures_left.lock().unwrap() = left;
                    let mut first_two = event.clone();
                    first_two.records.truncate(2);
                    real.invoke(first_two).await?;
                    let mut response = DynamoDbEventResponse::default();
                    let mut failure =
                        aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
                    failure.item_identifier = third;
                    response.batch_item_failures.push(failure);
                    return Ok(response);
                }
                real.invoke(event).await
            }
        }
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut trigger = stack.trigger(recording(flaky, log.clone())).unwrap();
    trigger.drain().await.unwrap();

    let batches = log.lock().unwrap().clone();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(batches[0].len(), 4);
    assert_eq!(
        batches[1],
        batches[0][2..].to_vec(),
        "the retry starts at the failed record"
    );
    assert_eq!(trigger.stats.retries, 1);
    assert!(trigger.on_failure.is_empty());
    for i in 0..4 {
        assert_eq!(balance(&stack, &format!("c-{i}")).await, (10, 1));
    }
}

#[tokio::test]
async fn an_always_failing_record_goes_on_failure_after_the_retry_cap_and_again_when_redriven() {
    let stack = stack().await;
    place(&stack, "c-1", &[("A", 1, 100)]).await;
    // An outbox event this consumer cannot place: it fails on every delivery.
    let order_id = uuid::Uuid::new_v4().to_string();
    stack
        .dynamo
        .client
        .put_item()
        .table_name(&stack.tables.orders)
        .item(
            schema::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(schema::key_pk(&order_id)),
        )
        .item(
            schema::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(schema::event_sk(1)),
        )
        .item(
            schema::ENTITY,
            aws_sdk_dynamodb::types::AttributeValue::S(schema::ENTITY_OUTBOX_EVENT.into()),
        )
        // Routed to the rewards consumer (so the mapping's filter passes it), but with no
        // sequence: it cannot be placed in its key's order, nor parked.
        .item(
            schema::AFTER,
            aws_sdk_dynamodb::types::AttributeValue::M(
                [(
                    rewards_service::consumer::NAME.to_owned(),
                    aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
                )]
                .into(),
            ),
        )
        .item(
            "event_id",
            aws_sdk_dynamodb::types::AttributeValue::S("bad".into()),
        )
        .item(
            "schema_version",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .item(
            "event_type",
            aws_sdk_dynamodb::types::AttributeValue::S("OrderPlaced".into()),
        )
        .send()
        .await
        .unwrap();
    place(&stack, "c-2", &[("B", 1, 200)]).await;

    let dlq_file = std::env::temp_dir().join(format!("outbox-dlq-{}.jsonl", uuid::Uuid::new_v4()));
    let mut trigger = stack
        .trigger(in_process(stack.service(), 4))
        .unwrap()
        .with_on_failure_file(dlq_file.clone());
    let cap = trigger.source.maximum_retry_attempts as usize;
    trigger.drain().await.unwrap();

    assert_eq!(trigger.stats.retries, cap);
    assert_eq!(trigger.stats.invocations, cap + 1);
    assert_eq!(trigger.on_failure.len(), 1);
    let info = &trigger.on_failure[0]["DDBStreamBatchInfo"];
    let records = stack.stream_records().await.unwrap();
    let bad_seq = records
        .iter()
        .find(|r| matches!(r.change.new_image.get("event_id"), Some(serde_dynamo::AttributeValue::S(e)) if e == "bad"))
        .and_then(|r| r.change.sequence_number.clone())
        .unwrap();
    assert_eq!(info["startSequenceNumber"], bad_seq);
    assert_eq!(
        trigger.on_failure[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(
        std::fs::read_to_string(&dlq_file).unwrap().lines().count(),
        1
    );
    let _ = std::fs::remove_file(dlq_file);
    assert_eq!(
        balance(&stack, "c-1").await,
        (1, 1),
        "the record before it was applied"
    );
    assert_eq!(
        balance(&stack, "c-2").await,
        (2, 1),
        "another customer's record was applied"
    );

    // The mapping has moved past the batch: new orders flow again.
    place(&stack, "c-3", &[("C", 1, 300)]).await;
    trigger.drain().await.unwrap();
    assert_eq!(balance(&stack, "c-3").await, (3, 1));
    assert_eq!(trigger.on_failure.len(), 1);

    // Redriven from its message, the range is read again from the stream and delivered with the
    // same rules: the bad record fails again the same way, and nothing is applied twice.
    let message = trigger.on_failure[0].clone();
    let delivered = trigger.stats.records_delivered;
    trigger.redrive(&message).await.unwrap();
    assert!(
        trigger.stats.records_delivered > delivered,
        "{:?}",
        trigger.stats
    );
    assert_eq!(trigger.on_failure.len(), 2);
    let again = &trigger.on_failure[1]["DDBStreamBatchInfo"];
    assert_eq!(again["startSequenceNumber"], bad_seq);
    assert_eq!(
        again["endSequenceNumber"],
        message["DDBStreamBatchInfo"]["endSequenceNumber"]
    );
    assert_eq!(balance(&stack, "c-1").await, (1, 1));
    assert_eq!(balance(&stack, "c-2").await, (2, 1));
    assert_eq!(balance(&stack, "c-3").await, (3, 1));
}

#[tokio::test]
async fn a_function_error_bisects_the_batch_down_to_the_bad_record() {
    let stack = stack().await;
    for i in 0..8 {
        place(&stack, &format!("c-{i}"), &[("A", 1, 100 * (i + 1))]).await;
    }
    let records = stack.stream_records().await.unwrap();
    let crash_on = records
        .iter()
        .find(|r| matches!(r.change.new_image.get("payload"), Some(serde_dynamo::AttributeValue::M(p)) if matches!(p.get("customer_id"), Some(serde_dynamo::AttributeValue::S(c)) if c == "c-5")))
        .and_then(|r| r.change.sequence_number.clone())
        .unwrap();
    let real = Arc::new(in_process(stack.service(), 4));
    // The whole invocation fails (a crash) whenever the batch holds that one record.
    let crashing = move |event: Event| {
        let real = real.clone();
        let crash_on = crash_on.clone();
        async move {
            if event
                .records
                .iter()
                .any(|r| r.change.sequence_number.as_deref() == Some(&crash_on))
            {
                return Err("function crashed".to_owned());
            }
            real.invoke(event).await
        }
    };
    let mut trigger = stack.trigger(crashing).unwrap();
    trigger.drain().await.unwrap();

    assert!(trigger.stats.bisections >= 3, "{:?}", trigger.stats);
    assert_eq!(trigger.on_failure.len(), 1);
    assert_eq!(
        trigger.on_failure[0]["DDBStreamBatchInfo"]["batchSize"], 1,
        "bisected down to the one record"
    );
    for i in 0..8 {
        let expected = if i == 5 { (0, 0) } else { (i + 1, 1) };
        assert_eq!(
            balance(&stack, &format!("c-{i}")).await,
            (expected.0 as i64, expected.1 as usize)
        );
    }
}
