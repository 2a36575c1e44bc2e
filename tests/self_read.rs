//! Pattern 3, self-read, on real components: the order API publishing to kinesalite, both
//! consumers (order-history, rewards) behind the local Kinesis mappings with the settings of
//! `patterns/self-read/template.yaml`, on the embedded DynamoDB: what only this pattern promises
//! (202 with where to look, 404 with `Retry-After` until order-history caught up, a failed
//! publish writes nothing, a retried publish is absorbed, order-history writes each order once,
//! an undecodable event is parked). The guarantees every pattern makes (duplicates, racing
//! consumers, a crash after the commit, poison parked and redriven, redrive of what the mapping
//! gave up on, per-key order) are `tests/guarantees.rs`'s `self_read::…`.
//!
//! Without Node.js or `make kinesalite` every test here fails and says which; with
//! `OUTBOX_SKIP_KINESIS=<reason>` they print `SKIPPED` with the reason instead.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use devkit::demo::api_request;
use devkit::invariants::{check_source, EventSource};
use devkit::kinesis::client_for;
use devkit::kinesis_trigger::KinesisTrigger;
use devkit::patterns::self_read::{
    history_in_process, rewards_in_process, SelfReadStack, ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION,
};
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::Invoke;
use lambda_runtime::{Context, LambdaEvent};
use order_service::self_read::kinesis::KinesisPublisher;
use outbox_tests::assert_counts;
use outboxctl::replay::{filter_patterns, replay_event, Range};
use rewards_service::handlers::sweeper::REDRIVE_PARKED;
use serde_json::{json, Value as Json};

async fn stack(test: &str) -> Option<SelfReadStack> {
    SelfReadStack::start_or_skip(test)
        .await
        .expect("the self-read stack (kinesalite and the embedded DynamoDB)")
}

fn order_body(customer: &str, quantity: i64) -> String {
    json!({"customer_id": customer, "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": quantity, "unit_price_cents": 1000}]})
    .to_string()
}

fn body_json(response: &ApiGatewayV2httpResponse) -> Json {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap_or(Json::Null),
        _ => Json::Null,
    }
}

/// The order id an accepted order's answer names.
fn order_id(response: &ApiGatewayV2httpResponse) -> String {
    body_json(response)["order_id"]
        .as_str()
        .expect("an accepted order's answer names it")
        .to_owned()
}

/// `data` put on the stream under customer c-1's partition key, as any producer could.
async fn put_data(stack: &SelfReadStack, data: Vec<u8>) {
    stack
        .kinesis
        .client
        .put_record()
        .stream_name(&stack.stream.name)
        .partition_key("c-1")
        .data(Blob::new(data))
        .send()
        .await
        .unwrap();
}

/// The rewards consumer's local mapping, its settings from the template.
async fn rewards_mapping(stack: &SelfReadStack) -> KinesisTrigger<impl Invoke<KinesisEvent>> {
    let consumer = rewards_in_process(stack.rewards_processor());
    stack.trigger(REWARDS_FUNCTION, consumer).await.unwrap()
}

/// The order-history consumer's local mapping, its settings from the template.
async fn history_mapping(stack: &SelfReadStack) -> KinesisTrigger<impl Invoke<KinesisEvent>> {
    let consumer = history_in_process(stack.history_processor());
    stack
        .trigger(ORDER_HISTORY_FUNCTION, consumer)
        .await
        .unwrap()
}

/// How many of `items` are `consumer`'s parked records.
fn parked_count(items: &[devkit::Item], consumer: &str) -> usize {
    let pk = dynamodb_outbox::testing::schema::parked_pk(consumer);
    items
        .iter()
        .filter(|item| item.get("pk").and_then(|v| v.as_s().ok()) == Some(&pk))
        .count()
}

async fn place(
    stack: &SelfReadStack,
    publisher: &KinesisPublisher,
    body: &str,
    key: Option<&str>,
) -> ApiGatewayV2httpResponse {
    let headers: Vec<(&str, &str)> = key
        .map(|k| vec![("idempotency-key", k)])
        .unwrap_or_default();
    let request = api_request("POST", "/orders", Some(body.to_owned()), &headers).unwrap();
    stack.call(publisher, request).await
}

/// The order API's publisher, its requests to Kinesis going through a proxy that injects `plan`.
async fn publisher_through(
    stack: &SelfReadStack,
    plan: FaultPlan,
) -> (KinesisPublisher, FaultProxy) {
    let proxy = FaultProxy::start(&stack.kinesis.endpoint, plan)
        .await
        .unwrap();
    let publisher = KinesisPublisher::new(client_for(&proxy.endpoint).await, &stack.stream.name);
    (publisher, proxy)
}

async fn get(stack: &SelfReadStack, order_id: &str) -> ApiGatewayV2httpResponse {
    let request = api_request("GET", &format!("/orders/{order_id}"), None, &[]).unwrap();
    stack.call(&stack.publisher(), request).await
}

/// The records of one shard, from its start.
async fn shard_records(stack: &SelfReadStack, shard: &str) -> Vec<aws_sdk_kinesis::types::Record> {
    let iterator = stack
        .kinesis
        .client
        .get_shard_iterator()
        .stream_name(&stack.stream.name)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator;
    stack
        .kinesis
        .client
        .get_records()
        .set_shard_iterator(iterator)
        .send()
        .await
        .unwrap()
        .records
}

/// Every record on the stream, as JSON, in shard order.
async fn stream_records(stack: &SelfReadStack) -> Vec<Json> {
    let mut all = Vec::new();
    for shard in &stack.stream.shard_ids {
        for record in shard_records(stack, shard).await {
            all.push(serde_json::from_slice(record.data.as_ref()).unwrap_or(Json::Null));
        }
    }
    all
}

async fn scan(stack: &SelfReadStack, table: &str) -> Vec<devkit::Item> {
    devkit::local::scan_all(&stack.dynamo.client, table)
        .await
        .unwrap()
}

async fn balance(stack: &SelfReadStack, customer: &str) -> (i64, usize) {
    let page = rewards_service::service::rewards_of(&stack.rewards, customer, Some(100), None)
        .await
        .unwrap();
    (page.points, page.entries.len())
}

/// The shared invariants and this pattern's own, on the tables, for the orders answered 202.
async fn assert_invariants(stack: &SelfReadStack, accepted: &[String]) {
    let orders = scan(stack, &stack.orders_table).await;
    let rewards = scan(stack, &stack.rewards_table).await;
    let accepted = accepted.iter().cloned().collect();
    let violations = check_source(&orders, &rewards, &accepted, EventSource::Stream);
    assert!(violations.is_empty(), "self-read: {violations:?}");
}

#[tokio::test]
async fn an_order_is_accepted_with_where_to_look_and_readable_once_order_history_caught_up() {
    let Some(stack) = stack("self-read: accepted, then readable").await else {
        return;
    };
    let publisher = stack.publisher();
    let response = place(&stack, &publisher, &order_body("c-1", 3), None).await;
    assert_eq!(response.status_code, 202, "self-read: {:?}", response.body);
    let body = body_json(&response);
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["location"], format!("/orders/{order_id}"));
    assert_eq!(response.headers["location"], format!("/orders/{order_id}"));
    assert!(
        scan(&stack, &stack.orders_table).await.is_empty(),
        "self-read: the API wrote to DynamoDB"
    );

    let before = get(&stack, &order_id).await;
    assert_eq!(
        before.status_code, 404,
        "self-read: GET before order-history"
    );
    assert_eq!(before.headers["retry-after"], "1");

    stack.deliver_all().await.unwrap();
    let after = get(&stack, &order_id).await;
    assert_eq!(after.status_code, 200, "self-read: GET after order-history");
    let order = body_json(&after);
    assert_eq!(order["order_id"], order_id.as_str());
    assert_eq!(order["items"][0]["quantity"], 3);
    assert_eq!(balance(&stack, "c-1").await, (30, 1));
    assert_invariants(&stack, &[order_id]).await;
}

#[tokio::test]
async fn a_publish_kinesis_refuses_answers_503_and_nothing_is_written_anywhere() {
    let Some(stack) = stack("self-read: refused publish").await else {
        return;
    };
    let plan = FaultPlan {
        server_error: 1.0,
        ..FaultPlan::none()
    };
    let (publisher, proxy) = publisher_through(&stack, plan).await;
    let response = place(&stack, &publisher, &order_body("c-1", 1), Some("k-1")).await;
    assert_eq!(response.status_code, 503, "self-read: {:?}", response.body);
    assert!(body_json(&response)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("same Idempotency-Key is safe"));
    assert!(proxy.stats().total_faults() >= 1);
    assert!(
        stream_records(&stack).await.is_empty(),
        "self-read: a refused publish is on the stream"
    );
    stack.deliver_all().await.unwrap();
    assert!(scan(&stack, &stack.orders_table).await.is_empty());
    assert!(scan(&stack, &stack.rewards_table).await.is_empty());
}

#[tokio::test]
async fn a_publish_whose_response_was_lost_is_retried_and_its_duplicate_absorbed_by_both_consumers()
{
    let Some(stack) = stack("self-read: lost publish response").await else {
        return;
    };
    let plan = FaultPlan {
        lose_response: 1.0,
        max_faults: Some(1),
        ..FaultPlan::none()
    };
    let (publisher, _proxy) = publisher_through(&stack, plan).await;
    let response = place(&stack, &publisher, &order_body("c-1", 2), None).await;
    assert_eq!(
        response.status_code, 202,
        "self-read: the SDK retries a lost response"
    );
    let records = stream_records(&stack).await;
    assert_eq!(
        records.len(),
        2,
        "self-read: the retried PutRecord is on the stream twice"
    );
    assert_eq!(records[0]["event_id"], records[1]["event_id"]);

    stack.deliver_all().await.unwrap();
    assert_eq!(balance(&stack, "c-1").await, (20, 1));
    let order_id = order_id(&response);
    assert_eq!(get(&stack, &order_id).await.status_code, 200);
    assert_invariants(&stack, &[order_id]).await;
}

#[tokio::test]
async fn a_client_retry_with_the_same_key_is_the_same_order_and_event_and_another_request_under_it_is_parked(
) {
    let Some(stack) = stack("self-read: idempotency keys").await else {
        return;
    };
    let publisher = stack.publisher();
    let first = place(&stack, &publisher, &order_body("c-1", 1), Some("key-1")).await;
    let retry = place(&stack, &publisher, &order_body("c-1", 1), Some("key-1")).await;
    let other = place(&stack, &publisher, &order_body("c-1", 5), Some("key-1")).await;
    assert_eq!(order_id(&first), order_id(&retry));
    assert_eq!(
        order_id(&first),
        order_id(&other),
        "self-read: the key names the order"
    );
    let records = stream_records(&stack).await;
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0]["event_id"], records[1]["event_id"],
        "self-read: same request, same event id"
    );
    assert_ne!(
        records[0]["event_id"], records[2]["event_id"],
        "self-read: another request, another event id"
    );

    stack.deliver_all().await.unwrap();
    assert_eq!(
        balance(&stack, "c-1").await,
        (10, 1),
        "self-read: the first request's points, once"
    );
    let order = body_json(&get(&stack, &order_id(&first)).await);
    assert_eq!(
        order["items"][0]["quantity"], 1,
        "self-read: the first request's order"
    );
    let orders = scan(&stack, &stack.orders_table).await;
    assert_eq!(parked_count(&orders, "order-history"), 1);
    let rewards = scan(&stack, &stack.rewards_table).await;
    assert_eq!(parked_count(&rewards, "rewards"), 1);
}

#[tokio::test]
async fn the_redrive_function_takes_back_both_consumers_parked_events_and_refuses_to_sweep() {
    let Some(stack) = stack("self-read: the redrive function").await else {
        return;
    };
    let publisher = stack.publisher();
    place(&stack, &publisher, &order_body("c-1", 1), Some("key-1")).await;
    place(&stack, &publisher, &order_body("c-1", 5), Some("key-1")).await;
    stack.deliver_all().await.unwrap();
    let sweeper = stack.sweeper(100);
    let invoke = |payload: Json| {
        rewards_service::handlers::sweeper::handle(
            &sweeper,
            LambdaEvent::new(payload, Context::default()),
        )
    };

    let report = invoke(json!({"action": REDRIVE_PARKED})).await.unwrap();
    assert_counts!(
        report,
        [found = 2, applied = 0, parked = 2],
        "self-read: the second request under key-1, parked by order-history and by rewards, \
         read back by the one function and still refused"
    );
    assert_eq!(balance(&stack, "c-1").await, (10, 1));

    let err = invoke(json!({"source": "aws.events"})).await.unwrap_err();
    assert!(
        err.to_string().contains("nothing is pending to sweep")
            && err.to_string().contains(REDRIVE_PARKED),
        "self-read: a scheduled sweep says what the function is for: {err}"
    );
}

/// What Lambda sends the on-failure destination for a batch it gave up on: the range's
/// coordinates, one message per shard holding records (each shard's whole content here).
async fn on_failure_messages(stack: &SelfReadStack) -> Vec<Json> {
    let mut messages = Vec::new();
    for shard in &stack.stream.shard_ids {
        let records = shard_records(stack, shard).await;
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            continue;
        };
        messages.push(json!({
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
            "KinesisBatchInfo": {"shardId": shard, "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": last.sequence_number, "batchSize": records.len(),
                "streamArn": stack.stream.arn}
        }));
    }
    messages
}

#[tokio::test]
async fn a_range_the_mapping_gave_up_on_is_replayed_once_by_the_operators_tool() {
    let Some(stack) = stack("self-read: the operator's replay of a range").await else {
        return;
    };
    let publisher = stack.publisher();
    for customer in ["c-1", "c-2", "c-1"] {
        let response = place(&stack, &publisher, &order_body(customer, 2), None).await;
        assert_eq!(response.status_code, 202);
    }
    put_data(&stack, b"not an event".to_vec()).await;
    // The rewards mapping gave up on everything: nothing was applied, the queue holds ranges.
    let messages = on_failure_messages(&stack).await;
    assert!(!messages.is_empty());
    let template = devkit::Pattern::SelfRead.template_path();
    let filter = filter_patterns(&template, REWARDS_FUNCTION).unwrap();
    assert_eq!(
        filter,
        stack
            .template
            .kinesis_source(REWARDS_FUNCTION)
            .unwrap()
            .filter_patterns,
        "the operator's replay filters as the deployed mapping does"
    );
    let processor = stack.rewards_processor();
    let mut replayed = 0;
    for round in 0..2 {
        for message in &messages {
            let range = Range::from_message(message).unwrap();
            let event = replay_event(&stack.kinesis.client, &range, &filter)
                .await
                .unwrap();
            let event: KinesisEvent = serde_json::from_value(event).unwrap();
            if round == 0 {
                replayed += event.records.len();
            }
            let response = rewards_service::handlers::kinesis::handle(
                &processor,
                LambdaEvent::new(event, Context::default()),
            )
            .await
            .unwrap();
            assert!(
                response.batch_item_failures.is_empty(),
                "self-read: round {round}: {:?}",
                response.batch_item_failures
            );
        }
    }
    assert_eq!(
        replayed, 3,
        "self-read: the three events, not the record that is not one"
    );
    assert_eq!(
        balance(&stack, "c-1").await,
        (40, 2),
        "self-read: replayed twice, applied once"
    );
    assert_eq!(balance(&stack, "c-2").await, (20, 1));
}

#[tokio::test]
async fn two_racing_order_history_mappings_and_a_redelivery_write_each_accepted_order_once() {
    let Some(stack) = stack("self-read: redelivery and racing mappings").await else {
        return;
    };
    let publisher = stack.publisher();
    let mut accepted = Vec::new();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..30 {
        let customer = format!("c-{}", i % 4);
        let response = place(&stack, &publisher, &order_body(&customer, 1 + i % 3), None).await;
        assert_eq!(response.status_code, 202);
        accepted.push(order_id(&response));
        *expected.entry(customer).or_default() += 10 * (1 + i % 3);
    }
    let mut history_a = history_mapping(&stack).await;
    let mut history_b = history_mapping(&stack).await;
    let (a, b) = tokio::join!(history_a.drain(), history_b.drain());
    a.unwrap();
    b.unwrap();
    stack.deliver_all().await.unwrap();
    for (customer, points) in &expected {
        let (balance, _) = balance(&stack, customer).await;
        assert_eq!(balance, *points, "self-read: {customer}'s balance");
    }
    assert_invariants(&stack, &accepted).await;
}

#[tokio::test]
async fn data_that_is_not_an_event_is_filtered_out_and_a_poison_event_is_parked_while_its_customer_goes_on(
) {
    let Some(stack) = stack("self-read: poison record").await else {
        return;
    };
    put_data(&stack, br#"{"not":"an event"}"#.to_vec()).await;
    let poison = json!({"event_id": "poison-1", "event_type": "OrderPlaced", "schema_version": 1,
        "aggregate_type": "Order", "aggregate_id": "o-1", "ordering_key": "c-1",
        "occurred_at": "2026-11-30T00:00:00.000000Z", "payload": {"order_id": 7}});
    put_data(&stack, poison.to_string().into_bytes()).await;
    let publisher = stack.publisher();
    let response = place(&stack, &publisher, &order_body("c-1", 1), None).await;
    let order_id = order_id(&response);
    let mut rewards = rewards_mapping(&stack).await;
    rewards.drain().await.unwrap();
    assert_eq!(
        rewards.stats.filtered_out, 1,
        "self-read: FilterCriteria drop non-events"
    );
    assert!(
        rewards.on_failure.is_empty(),
        "self-read: {:?}",
        rewards.on_failure
    );
    let mut history = history_mapping(&stack).await;
    history.drain().await.unwrap();
    assert_eq!(
        balance(&stack, "c-1").await,
        (10, 1),
        "self-read: the order behind the poison"
    );
    let rewards = scan(&stack, &stack.rewards_table).await;
    assert_eq!(parked_count(&rewards, "rewards"), 1);
    assert_eq!(get(&stack, &order_id).await.status_code, 200);
}

/// `cargo tree` of `package`'s normal dependencies, one crate a line.
fn cargo_tree(package: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-e", "normal", "-p", package])
        .args(["--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree")
}

#[test]
fn the_outbox_order_writer_does_not_link_the_kinesis_sdk() {
    let output = cargo_tree("order-writer");
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(tree.contains("order-service"), "self-read: {tree}");
    assert!(
        !tree.contains("aws-sdk-kinesis"),
        "self-read: order-writer links aws-sdk-kinesis"
    );
    let publisher = cargo_tree("order-publisher");
    assert!(String::from_utf8_lossy(&publisher.stdout).contains("aws-sdk-kinesis"));
}

/// A Kinesis record of the stream carrying `envelope` (JSON) with sequence number `sequence`.
fn kinesis_record(
    stack: &SelfReadStack,
    envelope: &Json,
    sequence: usize,
) -> aws_lambda_events::kinesis::KinesisEventRecord {
    let mut record = aws_lambda_events::kinesis::KinesisEventRecord::default();
    record.event_source_arn = Some(stack.stream.arn.clone());
    record.kinesis.sequence_number = format!("{sequence:056}");
    record.kinesis.partition_key = envelope["ordering_key"].as_str().unwrap_or("x").to_owned();
    *record.kinesis.data = serde_json::to_vec(envelope).unwrap();
    record
}

#[tokio::test]
async fn both_consumers_of_the_stream_refuse_the_same_malformed_events_for_the_same_reason() {
    use dynamodb_outbox::testing::StoreOps;
    let Some(stack) = stack("self_read: one rule book for both consumers").await else {
        return;
    };
    // A well-formed event as the order API publishes it, for a fresh order of c-1.
    let event = || order_placed("c-1", 2);
    type Break = fn(&mut Json);
    let malformed: [(&str, Break); 8] = [
        ("aggregate_id is another order", |e| {
            e["aggregate_id"] = json!(uuid::Uuid::new_v4().to_string())
        }),
        ("aggregate_type is not Order", |e| {
            e["aggregate_type"] = json!("Customer")
        }),
        ("ordered by another customer", |e| {
            e["ordering_key"] = json!("c-2")
        }),
        ("points do not follow from the total", |e| {
            e["payload"]["points"] = json!(999)
        }),
        ("negative amounts", |e| {
            e["payload"]["total_cents"] = json!(-2000);
            e["payload"]["points"] = json!(-20);
        }),
        ("total past the order limit", |e| {
            e["payload"]["total_cents"] = json!(1_i64 << 53);
            e["payload"]["points"] = json!((1_i64 << 53) / 100);
        }),
        ("currency is not a code", |e| {
            e["payload"]["currency"] = json!("euro")
        }),
        ("customer id is not an id", |e| {
            e["payload"]["customer_id"] = json!("c 1");
            e["ordering_key"] = json!("c 1");
        }),
    ];
    let mut records = Vec::new();
    let mut broken = BTreeMap::new();
    for (i, (what, change)) in malformed.iter().enumerate() {
        let mut envelope = event();
        change(&mut envelope);
        broken.insert(envelope["event_id"].as_str().unwrap().to_owned(), *what);
        records.push(kinesis_record(&stack, &envelope, i + 1));
    }
    let good = event();
    records.push(kinesis_record(&stack, &good, malformed.len() + 1));

    let history = stack.history_processor();
    let rewards = stack.rewards_processor();
    let mut batch = KinesisEvent::default();
    batch.records = records;
    let answer = order_service::self_read::history::handle(
        &history,
        LambdaEvent::new(batch.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert!(answer.batch_item_failures.is_empty(), "parked, not retried");
    let answer = rewards_service::handlers::kinesis::handle(
        &rewards,
        LambdaEvent::new(batch, Context::default()),
    )
    .await
    .unwrap();
    assert!(answer.batch_item_failures.is_empty(), "parked, not retried");

    let parked = |store_parked: Vec<dynamodb_outbox::testing::Parked>| -> BTreeMap<String, String> {
        store_parked
            .into_iter()
            .map(|p| {
                let id = match p.event.get("event_id") {
                    Some(serde_dynamo::AttributeValue::S(id)) => id.clone(),
                    other => panic!("a parked event names its id: {other:?}"),
                };
                (id, p.reason)
            })
            .collect()
    };
    let by_history = parked(
        history
            .store()
            .parked(order_service::self_read::history::NAME, 100)
            .await
            .unwrap(),
    );
    let by_rewards = parked(
        rewards
            .store()
            .parked(rewards_service::consumer::NAME, 100)
            .await
            .unwrap(),
    );
    for (event_id, what) in &broken {
        let (Some(h), Some(r)) = (by_history.get(event_id), by_rewards.get(event_id)) else {
            panic!("{what}: parked by history {by_history:?} and by rewards {by_rewards:?}");
        };
        assert_eq!(h, r, "{what}: the same reason from both consumers");
    }
    assert_eq!(by_history.len(), broken.len(), "{by_history:?}");
    assert_eq!(by_rewards.len(), broken.len(), "{by_rewards:?}");
    let order_id = good["aggregate_id"].as_str().unwrap();
    assert_eq!(
        get(&stack, order_id).await.status_code,
        200,
        "history wrote the good order"
    );
}

/// A well-formed `OrderPlaced` envelope of a fresh order of `customer` for `quantity` of one
/// item, as the order API publishes it.
fn order_placed(customer: &str, quantity: i64) -> Json {
    use order_service::domain::order::LineItem;
    use order_service::domain::{OrderRequest, Timestamp};
    let request = OrderRequest {
        customer_id: customer.into(),
        currency: "EUR".into(),
        items: vec![LineItem {
            sku: "SKU-1".into(),
            quantity,
            unit_price_cents: 1000,
        }],
    };
    let placed = request
        .into_new_order(uuid::Uuid::new_v4().to_string(), Timestamp::now(), None)
        .unwrap();
    serde_json::to_value(order_service::self_read::order_placed(&placed.order, None)).unwrap()
}

/// The metrics a consumer's handler emitted for a batch, which it answered without holding the
/// shard.
async fn metrics_of<E: std::fmt::Debug>(
    who: &str,
    handled: impl std::future::Future<
        Output = Result<aws_lambda_events::streams::KinesisEventResponse, E>,
    >,
) -> devkit::metrics::MetricsSummary {
    let (answer, lines) = service_runtime::metrics::capture(handled).await;
    let answer = answer.unwrap();
    assert!(
        answer.batch_item_failures.is_empty(),
        "{who} holds the shard on {:?}",
        answer.batch_item_failures
    );
    devkit::metrics::MetricsSummary::from_lines(lines.iter().map(String::as_str)).unwrap()
}

/// A Kinesis record of the stream carrying these raw bytes.
fn raw_kinesis_record(
    stack: &SelfReadStack,
    data: &[u8],
    sequence: usize,
) -> aws_lambda_events::kinesis::KinesisEventRecord {
    let mut record = kinesis_record(stack, &json!({}), sequence);
    *record.kinesis.data = data.to_vec();
    record
}

#[tokio::test]
async fn data_that_names_no_event_is_dropped_and_counted_and_an_event_without_ordering_key_is_parked_never_holding_the_shard(
) {
    use dynamodb_outbox::testing::StoreOps;
    let Some(stack) = stack("self-read: data that is not an event").await else {
        return;
    };
    let mut keyless = order_placed("c-1", 1);
    keyless.as_object_mut().unwrap().remove("ordering_key");
    let keyless_id = keyless["event_id"].as_str().unwrap().to_owned();
    let mut long_id = order_placed("c-1", 1);
    long_id["event_id"] = json!("x".repeat(5_000));
    let mut numeric_id = order_placed("c-1", 1);
    numeric_id["event_id"] = json!(42);
    let mut empty_id = order_placed("c-1", 1);
    empty_id["event_id"] = json!("");
    let good = order_placed("c-1", 1);
    let not_events: Vec<Vec<u8>> = vec![
        b"not an event".to_vec(),
        b"[1, 2, 3]".to_vec(),
        b"\"OrderPlaced\"".to_vec(),
        br#"{"not": "an event"}"#.to_vec(),
        serde_json::to_vec(&numeric_id).unwrap(),
        serde_json::to_vec(&empty_id).unwrap(),
        serde_json::to_vec(&long_id).unwrap(),
    ];
    let mut records: Vec<_> = not_events
        .iter()
        .enumerate()
        .map(|(i, data)| raw_kinesis_record(&stack, data, i + 1))
        .collect();
    records.push(kinesis_record(&stack, &keyless, not_events.len() + 1));
    records.push(kinesis_record(&stack, &good, not_events.len() + 2));
    let mut batch = KinesisEvent::default();
    batch.records = records;

    let history = stack.history_processor();
    let rewards = stack.rewards_processor();
    for round in 0..2 {
        let invocation = || LambdaEvent::new(batch.clone(), Context::default());
        let handled = order_service::self_read::history::handle(&history, invocation());
        let metrics = metrics_of(&format!("round {round}: order-history"), handled).await;
        let history_fn = service_runtime::metrics::ORDER_HISTORY;
        assert_eq!(
            metrics.count(history_fn, service_runtime::metrics::DROPPED),
            not_events.len() as f64,
            "round {round}: every record that names no event is counted as dropped"
        );
        assert_eq!(
            metrics.count(history_fn, service_runtime::metrics::POISON),
            0.0
        );

        let handled = rewards_service::handlers::kinesis::handle(&rewards, invocation());
        let metrics = metrics_of(&format!("round {round}: rewards"), handled).await;
        let rewards_fn = service_runtime::metrics::STREAM_CONSUMER;
        assert_eq!(
            metrics.count(rewards_fn, service_runtime::metrics::DROPPED),
            not_events.len() as f64
        );
        let parked_now = if round == 0 { 1.0 } else { 0.0 };
        assert_eq!(
            metrics.count(rewards_fn, service_runtime::metrics::PARKED),
            parked_now,
            "round {round}: the keyless event is parked once, its redelivery a duplicate"
        );
    }

    for (consumer, parked) in [
        (
            order_service::self_read::history::NAME,
            history
                .store()
                .parked(order_service::self_read::history::NAME, 100)
                .await
                .unwrap(),
        ),
        (
            rewards_service::consumer::NAME,
            rewards
                .store()
                .parked(rewards_service::consumer::NAME, 100)
                .await
                .unwrap(),
        ),
    ] {
        assert_eq!(parked.len(), 1, "{consumer}: {parked:?}");
        let parked = &parked[0];
        assert_eq!(
            parked.event.get("event_id"),
            Some(&serde_dynamo::AttributeValue::S(keyless_id.clone())),
            "{consumer}: the parked record keeps the event"
        );
        assert!(
            parked.reason.contains("no ordering key"),
            "{consumer}: {}",
            parked.reason
        );
        assert!(parked.record.sk.ends_with(&keyless_id), "{consumer}");
    }
    assert_eq!(
        balance(&stack, "c-1").await,
        (10, 1),
        "the good event applied once"
    );
    let order_id = good["aggregate_id"].as_str().unwrap();
    assert_eq!(get(&stack, order_id).await.status_code, 200);
}

#[tokio::test]
async fn the_templates_filter_discards_what_is_not_an_envelope_before_either_consumer() {
    let Some(stack) = stack("self-read: the mapping's filter").await else {
        return;
    };
    let without = |field: &str| {
        let mut e = order_placed("c-1", 1);
        e.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&e).unwrap()
    };
    let with = |field: &str, value: Json| {
        let mut e = order_placed("c-1", 1);
        e[field] = value;
        serde_json::to_vec(&e).unwrap()
    };
    let not_envelopes = [
        b"not an event".to_vec(),
        b"[1, 2, 3]".to_vec(),
        br#"{"event_type": "OrderPlaced"}"#.to_vec(),
        without("event_id"),
        without("ordering_key"),
        without("schema_version"),
        with("event_type", json!("OrderCancelled")),
    ];
    for data in &not_envelopes {
        put_data(&stack, data.clone()).await;
    }
    let good = order_placed("c-1", 1);
    put_data(&stack, serde_json::to_vec(&good).unwrap()).await;

    let mut rewards = rewards_mapping(&stack).await;
    rewards.drain().await.unwrap();
    assert_eq!(rewards.stats.filtered_out, not_envelopes.len());
    assert!(rewards.on_failure.is_empty(), "{:?}", rewards.on_failure);
    let mut history = history_mapping(&stack).await;
    history.drain().await.unwrap();
    assert_eq!(history.stats.filtered_out, not_envelopes.len());
    assert!(history.on_failure.is_empty(), "{:?}", history.on_failure);
    assert_eq!(balance(&stack, "c-1").await, (10, 1));
    let order_id = good["aggregate_id"].as_str().unwrap();
    assert_eq!(get(&stack, order_id).await.status_code, 200);
}
