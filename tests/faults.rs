//! Faults injected between the functions and the real local server: whatever fails, retries or
//! gets lost on the way, every order exists once and every reward is applied once.

use devkit::proxy::{Fault, FaultPlan, FaultProxy};
use devkit::LocalDynamo;
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use order_service::store::dynamodb::DynamoOrderStore;
use outbox_tests::*;
use rewards_service::service;

/// The order-writer's store, reaching the local server through the proxy.
async fn store_via(stack: &Stack, proxy: &FaultProxy) -> DynamoOrderStore {
    DynamoOrderStore::new(
        stack.dynamo.client_via(&proxy.endpoint).await,
        &stack.tables.orders,
    )
}

async fn post(store: &DynamoOrderStore, body: &str, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = key
        .map(|k| vec![("idempotency-key", k)])
        .unwrap_or_default();
    let req = post_order(body, &headers);
    reply(
        order_api::handle(store, LambdaEvent::new(req, Context::default()))
            .await
            .unwrap(),
    )
}

/// Every answer lost: the transactions' and the writer's reads that would tell whether one
/// committed, so the outcome stays unknown.
fn lose_every_answer(strip_token: bool) -> FaultPlan {
    FaultPlan {
        operations: vec!["TransactWriteItems".into(), "GetItem".into()],
        ..lose_first_transaction(strip_token, 100)
    }
}

fn lose_first_transaction(strip_token: bool, losses: u64) -> FaultPlan {
    FaultPlan {
        lose_response: 1.0,
        operations: vec!["TransactWriteItems".into()],
        max_faults: Some(losses),
        strip_client_request_token: strip_token,
        ..FaultPlan::none()
    }
}

#[tokio::test]
async fn a_lost_response_retried_by_the_sdk_is_recognised_as_our_own_write() {
    for strip_token in [false, true] {
        for key in [None, Some("k-lost")] {
            let stack = stack().await;
            let proxy = FaultProxy::start(
                &stack.dynamo.endpoint,
                lose_first_transaction(strip_token, 1),
            )
            .await
            .unwrap();
            let store = store_via(&stack, &proxy).await;
            let r = post(&store, &order_body("c-1", &[("A", 1, 700)]), key).await;

            let case = format!("token stripped: {strip_token}, key: {key:?}");
            assert_eq!(r.status, 201, "{case}: {:?}", r.json);
            let stats = proxy.stats();
            assert_eq!(stats.fault(Fault::LostResponse), 1, "{case}");
            assert_eq!(
                stats.requests["TransactWriteItems"], 2,
                "{case}: the SDK retried once"
            );
            assert_eq!(
                stats.tokens_stripped,
                if strip_token { 2 } else { 0 },
                "{case}"
            );
            let (orders, events) = orders_and_events(&stack).await;
            assert_eq!((orders.len(), events.len()), (1, 1), "{case}");
            assert_eq!(
                s(&orders[0], "order_id"),
                r.json["order_id"].as_str(),
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn a_client_resending_its_key_after_a_timeout_gets_its_order_not_a_conflict() {
    for strip_token in [false, true] {
        let stack = stack().await;
        // Every attempt commits and every answer is lost, the read-back's too: the SDK gives up,
        // the client sees 503.
        let proxy = FaultProxy::start(&stack.dynamo.endpoint, lose_every_answer(strip_token))
            .await
            .unwrap();
        let store = store_via(&stack, &proxy).await;
        let body = order_body("c-1", &[("A", 2, 350)]);
        let first = post(&store, &body, Some("k-timeout")).await;
        assert_eq!(first.status, 503, "{:?}", first.json);
        let message = first.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("may or may not have been written")
                && message.contains("same Idempotency-Key is safe")
                && !message.contains("nothing was written"),
            "the 503 tells the truth: {message}"
        );
        let (orders, _) = orders_and_events(&stack).await;
        assert_eq!(
            orders.len(),
            1,
            "the first attempt committed although nobody heard of it"
        );

        proxy.set_plan(FaultPlan::none());
        let again = post(&store, &body, Some("k-timeout")).await;
        assert_eq!(again.status, 201, "{:?}", again.json);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.json["order_id"].as_str(), s(&orders[0], "order_id"));
        let (orders, events) = orders_and_events(&stack).await;
        assert_eq!((orders.len(), events.len()), (1, 1));
    }
}

#[tokio::test]
async fn a_503_without_an_idempotency_key_says_the_order_may_exist_and_why_to_send_a_key() {
    let stack = stack().await;
    let proxy = FaultProxy::start(&stack.dynamo.endpoint, lose_every_answer(true))
        .await
        .unwrap();
    let store = store_via(&stack, &proxy).await;
    let r = post(&store, &order_body("c-1", &[("A", 1, 100)]), None).await;
    assert_unavailable(&r, "");
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("may or may not have been written")
            && message.contains("send an Idempotency-Key"),
        "{message}"
    );
    assert_eq!(
        orders_and_events(&stack).await.0.len(),
        1,
        "the order the 503 was about exists: the old message 'nothing was written' was untrue"
    );
}

fn failing(kind: &str, faults: u64) -> FaultPlan {
    let mut plan = FaultPlan {
        max_faults: Some(faults),
        ..FaultPlan::none()
    };
    match kind {
        "5xx" => plan.server_error = 1.0,
        "throttling" => plan.throttling = 1.0,
        "provisioned" => plan.provisioned_throughput = 1.0,
        "conflict" => plan.transaction_conflict = 1.0,
        _ => unreachable!(),
    }
    plan
}

#[tokio::test]
async fn transient_errors_are_retried_and_persistent_ones_are_a_503_with_nothing_written() {
    for kind in ["5xx", "throttling", "provisioned", "conflict"] {
        let stack = stack().await;
        let proxy = FaultProxy::start(&stack.dynamo.endpoint, failing(kind, 2))
            .await
            .unwrap();
        let store = store_via(&stack, &proxy).await;
        let r = post(&store, &order_body("c-1", &[("A", 1, 100)]), None).await;
        assert_eq!(
            r.status,
            201,
            "{kind}: two failures are retried away: {:?} {:?}",
            r.json,
            proxy.stats()
        );
        assert_eq!(proxy.stats().total_faults(), 2, "{kind}");
        assert_eq!(orders_and_events(&stack).await.0.len(), 1, "{kind}");

        proxy.set_plan(failing(kind, 1_000));
        let r = post(&store, &order_body("c-2", &[("A", 1, 100)]), None).await;
        assert_unavailable(&r, &format!("{kind}: "));
        assert_eq!(
            orders_and_events(&stack).await.0.len(),
            1,
            "{kind}: nothing more was written"
        );
    }
}

#[tokio::test]
async fn the_consumer_recognises_its_own_lost_writes() {
    for strip_token in [false, true] {
        // The consumer's one write: the event waits for the rewards consumer alone, so the
        // effect's transaction also finishes it (a lost mark of a shared event is the engine's
        // contract suite's).
        for operation in ["TransactWriteItems"] {
            let stack = stack().await;
            place(&stack, "c-1", &[("A", 1, 4_200)]).await;
            place(&stack, "c-2", &[("A", 1, 100)]).await;
            let records = stack.stream_records().await.unwrap();
            let proxy = FaultProxy::start(
                &stack.dynamo.endpoint,
                FaultPlan {
                    lose_response: 1.0,
                    operations: vec![operation.into()],
                    max_faults: Some(2),
                    strip_client_request_token: strip_token,
                    ..FaultPlan::none()
                },
            )
            .await
            .unwrap();
            let client = stack.dynamo.client_via(&proxy.endpoint).await;
            let processor =
                service::processor(client, &stack.tables.rewards, stack.tables.orders_source())
                    .retention_seconds(60)
                    .expect("a retention in range")
                    .concurrency(2);
            let outcome = processor.process_stream(&records).await;
            let case = format!("{operation}, token stripped: {strip_token}");
            assert!(outcome.failures.is_empty(), "{case}: {outcome:?}");
            assert_eq!(proxy.stats().fault(Fault::LostResponse), 2, "{case}");
            assert_eq!(balance(&stack, "c-1").await, (42, 1), "{case}");
            assert_eq!(balance(&stack, "c-2").await, (1, 1), "{case}");
            let (_, events) = orders_and_events(&stack).await;
            assert!(
                events.iter().all(|e| n(e, "expires_at").is_some()),
                "{case}"
            );
        }
    }
}

/// The SDK reads `AWS_ENDPOINT_URL` with a higher precedence than an endpoint on the shared
/// config; were that to win, the clients built for the proxy would bypass it, no fault would be
/// injected and the suites above would fail. They run again here, in a child process (the
/// environment of this multi-threaded one must not change), with `AWS_ENDPOINT_URL` naming
/// another server: the assertions on the proxy's counts must hold there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_suites_go_through_the_proxy_when_aws_endpoint_url_names_another_server() {
    const THIS_TEST: &str =
        "the_fault_suites_go_through_the_proxy_when_aws_endpoint_url_names_another_server";
    let server = LocalDynamo::embedded("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = server.endpoint.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "--skip", THIS_TEST, "--test-threads", "2"])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for suite in [
        "a_lost_response_retried_by_the_sdk_is_recognised_as_our_own_write",
        "a_client_resending_its_key_after_a_timeout_gets_its_order_not_a_conflict",
        "transient_errors_are_retried_and_persistent_ones_are_a_503_with_nothing_written",
        "the_consumer_recognises_its_own_lost_writes",
    ] {
        assert!(
            stdout.contains(&format!("test {suite} ... ok")),
            "{suite} did not pass with AWS_ENDPOINT_URL set:\n{stdout}"
        );
    }
    // The child's tables were created on this server, so it really was the one named.
    let tables = server.client.list_tables().send().await.unwrap();
    assert!(
        tables.table_names().len() >= 8,
        "each of the child's stacks created its two tables here: {:?}",
        tables.table_names()
    );
}

/// The answer to a request the database did not answer: 503 `unavailable`.
fn assert_unavailable(r: &Reply, case: &str) {
    assert_eq!(
        (r.status, r.error_code()),
        (503, "unavailable"),
        "{case}{:?}",
        r.json
    );
}
