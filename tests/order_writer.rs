//! The order-writer against the local DynamoDB, through its real Lambda handler.

use dynamodb_outbox::testing::schema;
use order_service::domain::{OrderRequest, Timestamp};
use order_service::store::OrderStore;
use outbox_tests::*;
use serde_json::json;

/// An order id no order has.
const UNKNOWN_ORDER: &str = "/orders/6f1c1c8e-2b0f-4b8e-9d0b-1a2b3c4d5e6f";

/// `POST /orders` of `customer`'s order of `items`, with `headers`.
async fn post(
    stack: &Stack,
    customer: &str,
    items: &[(&str, i64, i64)],
    headers: &[(&str, &str)],
) -> Reply {
    call_orders(stack, post_order(&order_body(customer, items), headers)).await
}

/// An order of `items` each, under one idempotency key `key`, from `customers`, one after the
/// other: the answers to the first and to the second.
async fn twice_under_key(
    stack: &Stack,
    key: &str,
    customers: [&str; 2],
    items: [&[(&str, i64, i64)]; 2],
) -> (Reply, Reply) {
    let key = [("idempotency-key", key)];
    let first = post(stack, customers[0], items[0], &key).await;
    (first, post(stack, customers[1], items[1], &key).await)
}

/// `method path` without a body.
async fn call(stack: &Stack, method: &str, path: &str) -> Reply {
    call_orders(stack, request(method, path, None, &[])).await
}

#[tokio::test]
async fn a_valid_order_writes_one_order_and_one_pending_outbox_event() {
    let stack = stack().await;
    let r = place(&stack, "c-1", &[("A-1", 2, 1250), ("B-2", 1, 99)]).await;

    assert_eq!(r.json["customer_id"], "c-1");
    assert_eq!(r.json["currency"], "USD");
    assert_eq!(r.json["total_cents"], 2599);
    assert_eq!(r.json["points"], 25);
    let order_id = r.json["order_id"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/orders/{order_id}").as_str())
    );

    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!((orders.len(), events.len()), (1, 1));
    let event = &events[0];
    assert_eq!(s(event, "event_type"), Some("OrderPlaced"));
    assert_eq!(n(event, "schema_version"), Some(2));
    assert_eq!(s(event, "aggregate_type"), Some("Order"));
    assert_eq!(s(event, "aggregate_id"), Some(order_id));
    assert_eq!(s(event, schema::STATUS), Some(schema::STATUS_PENDING));
    assert!(
        event.get(schema::EXPIRES_AT).is_none(),
        "a pending event must never expire"
    );
    assert!(
        event.get(schema::PENDING_PK).is_some(),
        "pending events are in the sweeper's index"
    );
    let payload = event["payload"].as_m().unwrap();
    assert_eq!(payload["order_id"].as_s().unwrap(), order_id);
    assert_eq!(payload["customer_id"].as_s().unwrap(), "c-1");
    assert_eq!(payload["amount_cents"].as_n().unwrap(), "2599");
    assert_eq!(payload["channel"].as_s().unwrap(), "api");
    assert_eq!(payload["points"].as_n().unwrap(), "25");
}

#[tokio::test]
async fn the_trace_context_travels_in_the_event() {
    let stack = stack().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = call_orders(
        &stack,
        post_order(
            &order_body("c-1", &[("A", 1, 100)]),
            &[("traceparent", traceparent)],
        ),
    )
    .await;
    assert_eq!(r.status, 201);
    let (_, events) = orders_and_events(&stack).await;
    let trace = events[0]["trace_context"].as_m().unwrap();
    assert_eq!(trace["traceparent"].as_s().unwrap(), traceparent);
}

#[tokio::test]
async fn malformed_or_oversized_trace_headers_are_dropped_not_stored() {
    let stack = stack().await;
    let cases = [
        ("420 KiB", "0".repeat(420 * 1024)),
        ("9 KiB", "a".repeat(9 * 1024)),
        ("not W3C", "hello-world".to_owned()),
        (
            "all-zero trace id",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
        ),
    ];
    for (i, (case, traceparent)) in cases.iter().enumerate() {
        let r = call_orders(
            &stack,
            post_order(
                &order_body(&format!("c-{i}"), &[("A", 1, 100)]),
                &[("traceparent", traceparent)],
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{case}: {:?}", r.json);
    }
    let (_, events) = orders_and_events(&stack).await;
    assert_eq!(events.len(), cases.len());
    for event in events {
        assert!(
            !event.contains_key("trace_context"),
            "nothing of a bad header is stored: {:?}",
            event.get("trace_context")
        );
    }
}

#[tokio::test]
async fn a_failing_outbox_put_leaves_no_order_behind() {
    let stack = stack().await;
    let request: OrderRequest =
        serde_json::from_str(&order_body("c-1", &[("A-1", 1, 500)])).unwrap();
    let new = request
        .into_new_order(uuid::Uuid::new_v4().to_string(), Timestamp::now(), None)
        .unwrap();
    // Something already sits at the key of the customer's first outbox event, so the event's
    // put fails its condition.
    occupy_first_event_key(&stack, &new.event.ordering_key).await;

    let err = stack.orders.put_order(&new).await.unwrap_err();
    assert!(err.to_string().contains("ConditionalCheckFailed"), "{err}");
    let (orders, _) = orders_and_events(&stack).await;
    assert!(
        orders.is_empty(),
        "the order must not exist without its event"
    );
    assert!(stack
        .orders
        .get_order(&new.order.order_id)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn an_idempotency_key_replays_the_original_order() {
    let stack = stack().await;
    let items: &[_] = &[("A-1", 3, 1000)];
    let customers = ["c-1", "c-1"];
    let (first, second) = twice_under_key(&stack, "checkout-7f3a", customers, [items; 2]).await;

    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(
        first.json, second.json,
        "the replay returns the original order"
    );
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!(
        (orders.len(), events.len()),
        (1, 1),
        "no second write, no second event"
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_a_conflict() {
    let stack = stack().await;
    let items: [&[_]; 2] = [&[("A-1", 1, 1000)], &[("A-1", 2, 1000)]];
    let (first, other) = twice_under_key(&stack, "checkout-1", ["c-1", "c-1"], items).await;
    assert_eq!(first.status, 201);
    assert_eq!(other.status, 409);
    assert_eq!(other.error_code(), "idempotency_conflict");
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!((orders.len(), events.len()), (1, 1));
}

#[tokio::test]
async fn the_same_key_from_two_customers_makes_two_orders() {
    let stack = stack().await;
    let items: &[_] = &[("A", 1, 100)];
    let (a, b) = twice_under_key(&stack, "k-1", ["c-1", "c-2"], [items; 2]).await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_ne!(a.json["order_id"], b.json["order_id"]);
}

#[tokio::test]
async fn without_a_key_every_post_is_a_new_order() {
    let stack = stack().await;
    let body = order_body("c-1", &[("A-1", 1, 1000)]);
    let a = call_orders(&stack, post_order(&body, &[])).await;
    let b = call_orders(&stack, post_order(&body, &[])).await;
    assert_ne!(a.json["order_id"], b.json["order_id"]);
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!((orders.len(), events.len()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_create_one_order() {
    let stack = std::sync::Arc::new(stack().await);
    let body = order_body("c-1", &[("A-1", 1, 4200)]);
    let calls = (0..12).map(|_| {
        let stack = stack.clone();
        let body = body.clone();
        tokio::spawn(async move {
            call_orders(
                &stack,
                post_order(&body, &[("idempotency-key", "same-click")]),
            )
            .await
        })
    });
    let replies: Vec<Reply> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| r.json["order_id"].to_string())
        .collect();
    assert!(replies.iter().all(|r| r.status == 201), "{replies:?}");
    assert_eq!(ids.len(), 1, "every caller sees the one order");
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.header("idempotent-replayed").is_none())
            .count(),
        1
    );
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!((orders.len(), events.len()), (1, 1));
}

#[tokio::test]
async fn every_validation_rule_answers_400_with_the_field_and_writes_nothing() {
    let stack = stack().await;
    let item = json!({"sku": "A-1", "quantity": 1, "unit_price_cents": 100});
    let base = json!({"customer_id": "c-1", "currency": "USD", "items": [item]});
    let with = |path: &str, value: serde_json::Value| {
        let mut b = base.clone();
        let mut target = &mut b;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            target = match p.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*p],
            };
        }
        target[parts[parts.len() - 1]] = value;
        b
    };
    let many_items: Vec<_> = (0..101).map(|_| item.clone()).collect();
    let total_too_large = json!([
        {"sku": "A", "quantity": 1_000_000, "unit_price_cents": 9_007_199_254_740_i64},
        {"sku": "B", "quantity": 1_000_000, "unit_price_cents": 9_007_199_254_740_i64}
    ]);
    let price = "items.0.unit_price_cents";
    // (where the body changes, the values each make a case, the code, the field it names)
    let cases: Vec<(&str, Vec<serde_json::Value>, &str, &str)> = vec![
        (
            "customer_id",
            vec![
                json!(""),
                json!("x".repeat(65)),
                json!("c 1"),
                json!("c/1"),
                json!("ｃ-1"),
            ],
            "invalid_id",
            "customer_id",
        ),
        (
            "currency",
            vec![json!("usd"), json!("US"), json!("USDT")],
            "invalid_currency",
            "currency",
        ),
        (
            "items",
            vec![json!([]), json!(many_items)],
            "invalid_items",
            "items",
        ),
        ("items.0.sku", vec![json!("")], "invalid_id", "items[0].sku"),
        (
            "items.0.quantity",
            vec![json!(0), json!(-3), json!(1_000_001)],
            "invalid_quantity",
            "items[0].quantity",
        ),
        (
            price,
            vec![json!(-1), json!(9_007_199_254_740_992_i64)],
            "invalid_price",
            "items[0].unit_price_cents",
        ),
        ("items", vec![total_too_large], "total_too_large", "items"),
        (
            "items.0.quantity",
            vec![json!("1"), json!(1.5)],
            "invalid_field",
            "items[0].quantity",
        ),
        (
            price,
            vec![json!(1e30)],
            "invalid_field",
            "items[0].unit_price_cents",
        ),
        (
            "customer_id",
            vec![json!(7)],
            "invalid_field",
            "customer_id",
        ),
        ("extra", vec![json!(1)], "invalid_field", "."),
    ];
    for (path, values, code, field) in cases {
        for value in values {
            let body = with(path, value);
            let r = call_orders(&stack, post_order(&body.to_string(), &[])).await;
            assert_eq!(r.status, 400, "{body}: {:?}", r.json);
            assert_eq!(r.error_code(), code, "{body}: {:?}", r.json);
            if field != "." {
                assert_eq!(r.json["error"]["field"], field, "{body}");
            }
            assert!(r.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!((orders.len(), events.len()), (0, 0));
}

#[tokio::test]
async fn malformed_bodies_are_4xx_and_write_nothing() {
    let stack = stack().await;
    let deep = "[".repeat(10_000);
    let huge = format!(r#"{{"customer_id":"{}"}}"#, "a".repeat(70 * 1024));
    let corpus: Vec<(&str, i64)> = vec![
        ("", 400),
        ("   ", 400),
        ("{", 400),
        ("null", 400),
        ("[]", 400),
        ("\"order\"", 400),
        ("{}", 400),
        (r#"{"customer_id":"c-1"}"#, 400),
        (
            r#"{"customer_id":"c-1","currency":"USD","items":[{"sku":"A","quantity":1}]}"#,
            400,
        ),
        (
            r#"{"customer_id":"c-1","currency":"USD","items":[]} trailing"#,
            400,
        ),
        (
            r#"{"customer_id":"c-1","customer_id":"c-2","currency":"USD","items":[{"sku":"A","quantity":1,"unit_price_cents":1}]}"#,
            400,
        ),
        (
            r#"{"customer_id":"c-1","currency":"USD","items":[{"sku":"A","quantity":99999999999999999999999,"unit_price_cents":1}]}"#,
            400,
        ),
        (
            r#"{"customer_id":"c-1","currency":"USD","items":{"sku":"A"}}"#,
            400,
        ),
        (
            r#"{"customer_id":"\ud800","currency":"USD","items":[]}"#,
            400,
        ),
        (deep.as_str(), 400),
        (huge.as_str(), 413),
    ];
    for (body, status) in corpus {
        let r = call_orders(&stack, post_order(body, &[])).await;
        assert_eq!(r.status, status, "{:.80}: {:?}", body, r.json);
        assert!(r.json["error"]["code"].is_string());
    }
    let r = call_orders(
        &stack,
        request(
            "POST",
            "/orders",
            Some("customer_id=c-1"),
            &[("content-type", "application/x-www-form-urlencoded")],
        ),
    )
    .await;
    assert_eq!(r.status, 415);
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!((orders.len(), events.len()), (0, 0));
}

#[tokio::test]
async fn a_base64_body_is_decoded() {
    use base64::Engine;
    let stack = stack().await;
    let body =
        base64::engine::general_purpose::STANDARD.encode(order_body("c-9", &[("A", 2, 150)]));
    let mut req = post_order(&body, &[]);
    req.is_base64_encoded = true;
    let r = call_orders(&stack, req).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["points"], 3);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let stack = stack().await;
    let r = call(&stack, "GET", "/nope").await;
    assert_eq!(r.status, 404);
    let r = call(&stack, "DELETE", "/orders").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = call(&stack, "PUT", UNKNOWN_ORDER).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn get_order_shows_the_order_and_its_pending_event() {
    let stack = stack().await;
    let placed = place(&stack, "c-1", &[("A-1", 2, 1250)]).await;
    let id = placed.json["order_id"].as_str().unwrap();

    let r = call(&stack, "GET", &format!("/orders/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["order_id"], id);
    assert_eq!(r.json["total_cents"], 2500);
    assert_eq!(r.json["items"][0]["sku"], "A-1");
    assert_eq!(r.json["outbox_pending"], true);

    let unknown = call(&stack, "GET", UNKNOWN_ORDER).await;
    assert_eq!(unknown.status, 404);
    let bad = call(&stack, "GET", "/orders/not-a-uuid").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn a_named_stage_prefix_in_the_raw_path_is_routed() {
    let stack = stack().await;
    let mut req = post_order(&order_body("c-1", &[("A", 1, 100)]), &[]);
    req.raw_path = Some("/dev/orders".into());
    req.request_context.stage = Some("dev".into());
    let r = call_orders(&stack, req).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
}

#[tokio::test]
async fn an_unreachable_database_is_a_503_with_a_reason() {
    // Nothing listens on this port: every attempt fails to connect, the SDK retries, then gives up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let stack = stack().await;
    let store = order_service::store::dynamodb::DynamoOrderStore::new(
        stack.dynamo.client_via(&dead).await,
        &stack.tables.orders,
    );
    let req = post_order(&order_body("c-1", &[("A", 1, 100)]), &[]);
    let r = call_order_api(&store, req).await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    assert_eq!(r.error_code(), "unavailable");
}

#[test]
fn a_missing_table_variable_fails_with_a_clear_message() {
    // A name nobody sets, so the test does not depend on the environment it runs in.
    let message = service_runtime::config::required("OUTBOX_TEST_NEVER_SET_TABLE")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("OUTBOX_TEST_NEVER_SET_TABLE is not set"),
        "{message}"
    );
}
