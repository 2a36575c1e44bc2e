//! Bad input never panics, never writes, and always gets a 4xx with a reason: a corpus of more
//! than 200 hostile requests, and property-based tests over requests and outbox envelopes.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::dynamodb::EventRecord;
use base64::Engine;
use dynamodb_outbox::testing::schema;
use order_service::domain::OrderRequest;
use outbox_tests::*;
use proptest::prelude::*;
use rewards_service::schema as rewards;
use serde_json::{json, Value};

const FIELDS: &[&str] = &[
    "customer_id",
    "currency",
    "items",
    "items.0",
    "items.0.sku",
    "items.0.quantity",
    "items.0.unit_price_cents",
];

fn valid() -> Value {
    json!({"customer_id": "c-1", "currency": "USD", "items": [{"sku": "A-1", "quantity": 1, "unit_price_cents": 100}]})
}

fn set(mut body: Value, path: &str, value: Value) -> Value {
    let parts: Vec<&str> = path.split('.').collect();
    let mut target = &mut body;
    for p in &parts[..parts.len() - 1] {
        target = match p.parse::<usize>() {
            Ok(i) => &mut target[i],
            Err(_) => &mut target[*p],
        };
    }
    let last = parts[parts.len() - 1];
    match last.parse::<usize>() {
        Ok(i) => target[i] = value,
        Err(_) => target[last] = value,
    }
    body
}

fn b64(bytes: &[u8]) -> ApiGatewayV2httpRequest {
    let mut req = post_order(
        &base64::engine::general_purpose::STANDARD.encode(bytes),
        &[],
    );
    req.is_base64_encoded = true;
    req
}

/// (what it is, the request)
fn corpus() -> Vec<(String, ApiGatewayV2httpRequest)> {
    let mut c: Vec<(String, ApiGatewayV2httpRequest)> = Vec::new();
    let mut body = |name: String, text: String| c.push((name, post_order(&text, &[])));

    // Wrong types, in every field.
    let wrong = [
        json!(null),
        json!(true),
        json!(1.5),
        json!(-1),
        json!("text"),
        json!([]),
        json!({}),
        json!([1, 2]),
        json!({"a": 1}),
    ];
    for field in FIELDS {
        for (i, w) in wrong.iter().enumerate() {
            let is_string_field = matches!(*field, "customer_id" | "currency" | "items.0.sku");
            if is_string_field && w.is_string() {
                continue;
            }
            body(
                format!("wrong type {i} in {field}"),
                set(valid(), field, w.clone()).to_string(),
            );
        }
    }
    // Huge and odd numbers.
    for n in [
        "1e308",
        "1e400",
        "-1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "9223372036854775807",
        "-9223372036854775808",
        "0.0",
        "1e2",
        "1.0000000000000000001",
        "0x10",
        "01",
        "+1",
        "NaN",
        "Infinity",
        ".5",
        "5.",
        "1_000",
    ] {
        for field in ["quantity", "unit_price_cents"] {
            body(
                format!("number {n} in {field}"),
                valid().to_string().replace(
                    &format!(
                        "\"{field}\":{}",
                        if field == "quantity" { "1" } else { "100" }
                    ),
                    &format!("\"{field}\":{n}"),
                ),
            );
        }
    }
    // Deep nesting.
    for depth in [64usize, 127, 128, 129, 1_000, 100_000] {
        body(
            format!("{depth} nested arrays in items"),
            format!(
                r#"{{"customer_id":"c-1","currency":"USD","items":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        );
        body(
            format!("{depth} nested objects"),
            format!("{}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)),
        );
    }
    // JSON that is not JSON.
    for text in [
        "",
        " ",
        "\n\t",
        "{",
        "}",
        "[",
        "{\"customer_id\":\"c-1\",}",
        "{'customer_id':'c-1'}",
        "{customer_id:\"c-1\"}",
        "/* comment */{}",
        "{}{}",
        "{} trailing",
        "nul",
        "tru",
        "\"\\u12\"",
        "\"\\x41\"",
        "{\"a\":\"unterminated}",
        "[1,2,]",
    ] {
        body(format!("not JSON: {text:?}"), text.to_owned());
    }
    // Duplicate keys, top level and inside an item.
    for key in ["customer_id", "currency", "items"] {
        let v = valid();
        body(
            format!("duplicate {key}"),
            format!("{{\"{key}\":{},{}", v[key], &v.to_string()[1..]),
        );
    }
    for key in ["sku", "quantity", "unit_price_cents"] {
        let item = &valid()["items"][0];
        body(
            format!("duplicate item {key}"),
            format!(
                r#"{{"customer_id":"c-1","currency":"USD","items":[{{"{key}":{},{}]}}"#,
                item[key],
                &item.to_string()[1..]
            ),
        );
    }
    // Unicode edge cases in every string field.
    let tricky = [
        "c\u{202e}1",
        "c\u{200d}1",
        "c\u{0301}1",
        "c😀1",
        "c\u{0000}1",
        "ｃ１",
        "с-1",
        "c\u{00a0}1",
        "\u{feff}c1",
        "c\u{2028}1",
        "ÅÅÅ",
        "ЅD",
        "U\u{0301}SD",
        "İSD",
    ];
    for t in tricky {
        for field in ["customer_id", "currency", "items.0.sku"] {
            body(
                format!("unicode {t:?} in {field}"),
                set(valid(), field, json!(t)).to_string(),
            );
        }
    }
    for currency in ["usd", "Usd", "US", "USDD", "U$D", "123"] {
        body(
            format!("currency {currency:?}"),
            set(valid(), "currency", json!(currency)).to_string(),
        );
    }
    // Keys and injection-shaped ids.
    for id in [
        "c-1#ORDER",
        "CUSTOMER#c-2",
        "ORDER#x",
        "../../etc/passwd",
        "' OR 1=1 --",
        "${jndi:ldap://x}",
        "<script>",
        "a b",
        "a\nb",
        "%00",
    ] {
        body(
            format!("id {id:?}"),
            set(valid(), "customer_id", json!(id)).to_string(),
        );
        body(
            format!("sku {id:?}"),
            set(valid(), "items.0.sku", json!(id)).to_string(),
        );
    }
    // Sizes.
    let items: Vec<Value> = (0..101).map(|_| valid()["items"][0].clone()).collect();
    body(
        "101 items".into(),
        set(valid(), "items", json!(items)).to_string(),
    );
    let items: Vec<Value> = (0..5_000).map(|_| valid()["items"][0].clone()).collect();
    body(
        "5,000 items (over 64 KiB)".into(),
        set(valid(), "items", json!(items)).to_string(),
    );
    body(
        "65 KiB customer id".into(),
        set(valid(), "customer_id", json!("c".repeat(65 * 1024))).to_string(),
    );
    body(
        "65-character id".into(),
        set(valid(), "customer_id", json!("c".repeat(65))).to_string(),
    );
    body(
        "unknown field".into(),
        set(valid(), "discount", json!(100)).to_string(),
    );
    body(
        "unknown item field".into(),
        set(valid(), "items.0.note", json!("x")).to_string(),
    );

    // Bytes that are not UTF-8, through API Gateway's base64 encoding.
    let order = valid().to_string();
    for (name, bytes) in [
        ("0xff", b"\xff".to_vec()),
        (
            "invalid continuation",
            b"{\"customer_id\":\"\xc3\x28\"}".to_vec(),
        ),
        ("overlong slash", b"{\"customer_id\":\"\xc0\xaf\"}".to_vec()),
        ("surrogate", b"{\"customer_id\":\"\xed\xa0\x80\"}".to_vec()),
        ("truncated", b"{\"customer_id\":\"\xe2\x82\"}".to_vec()),
        (
            "latin-1 body",
            order
                .replace("c-1", "c\u{e9}")
                .chars()
                .map(|c| c as u8)
                .collect(),
        ),
        (
            "utf-16 body",
            order.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
        ),
        (
            "BOM",
            [b"\xef\xbb\xbf".as_slice(), order.as_bytes()].concat(),
        ),
        ("NUL bytes", vec![0; 16]),
        ("65 KiB of zeros", vec![0; 65 * 1024]),
    ] {
        c.push((format!("bytes: {name}"), b64(&bytes)));
    }
    let mut bad_b64 = post_order("not base64!!", &[]);
    bad_b64.is_base64_encoded = true;
    c.push(("invalid base64".into(), bad_b64));

    // Header tricks.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        "json",
        "*/*",
    ] {
        c.push((
            format!("content-type {ct}"),
            request("POST", "/orders", Some(&order), &[("content-type", ct)]),
        ));
    }
    for key in ["", &"k".repeat(256), "key with spaces", "key\twith\ttabs"] {
        c.push((
            format!("idempotency key {key:.20?}"),
            post_order(&order, &[("idempotency-key", key)]),
        ));
    }
    let mut non_ascii_key = post_order(&order, &[]);
    non_ascii_key.headers.insert(
        "idempotency-key",
        http::HeaderValue::from_bytes(b"cl\xe9").unwrap(),
    );
    c.push(("non-ASCII idempotency key".into(), non_ascii_key));
    for (method, path) in [
        ("GET", "/orders"),
        ("PUT", "/orders"),
        ("PATCH", "/orders"),
        ("DELETE", "/orders"),
        ("POST", "/orders/x"),
        ("POST", "/order"),
        ("POST", "/orders/../customers"),
        ("POST", "/"),
    ] {
        c.push((
            format!("{method} {path}"),
            request(
                method,
                path,
                Some(&order),
                &[("content-type", "application/json")],
            ),
        ));
    }
    c
}

#[tokio::test]
async fn a_corpus_of_hostile_requests_gets_4xx_with_a_reason_and_writes_nothing() {
    let stack = stack().await;
    let corpus = corpus();
    assert!(
        corpus.len() >= 200,
        "the corpus has {} requests",
        corpus.len()
    );
    for (name, req) in corpus {
        let r = call_orders(&stack, req).await;
        assert!(
            (400..500).contains(&r.status),
            "{name}: {} {:?}",
            r.status,
            r.json
        );
        assert!(
            r.json["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{name}: {:?}",
            r.json
        );
        assert!(
            r.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    let (orders, events) = orders_and_events(&stack).await;
    assert_eq!(
        (orders.len(), events.len()),
        (0, 0),
        "hostile input wrote something"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("customer_id"),
            Just("currency"),
            Just("items"),
            Just("sku"),
            Just("USD"),
            Just("c-1")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("customer_id".to_owned()),
                    Just("currency".to_owned()),
                    Just("items".to_owned()),
                    Just("sku".to_owned()),
                    Just("quantity".to_owned()),
                    Just("unit_price_cents".to_owned()),
                    ".{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Order-shaped requests whose values range over valid and invalid ones.
fn arb_order() -> impl Strategy<Value = Value> {
    let id = prop_oneof!["[A-Za-z0-9._:-]{1,64}", ".{0,70}"];
    let currency = prop_oneof!["[A-Z]{3}", ".{0,5}"];
    let item = (
        id.clone(),
        any::<i64>(),
        any::<i64>(),
        0i64..5,
        0i64..100_000,
    )
        .prop_map(|(sku, q, p, small_q, small_p)| {
            let (q, p) = if q % 3 == 0 {
                (q, p)
            } else {
                (small_q, small_p)
            };
            json!({"sku": sku, "quantity": q, "unit_price_cents": p})
        });
    (id, currency, prop::collection::vec(item, 0..4))
        .prop_map(|(c, cur, items)| json!({"customer_id": c, "currency": cur, "items": items}))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics_and_a_refusal_writes_nothing(body in arb_json()) {
        runtime().block_on(async {
            let stack = stack().await;
            let r = call_orders(&stack, post_order(&body.to_string(), &[])).await;
            let (orders, events) = orders_and_events(&stack).await;
            match r.status {
                201 => assert_eq!((orders.len(), events.len()), (1, 1)),
                400..=499 => assert_eq!((orders.len(), events.len()), (0, 0), "{body}"),
                other => panic!("{other} for {body}"),
            }
        });
    }

    #[test]
    fn arbitrary_strings_are_refused_with_a_4xx(text in ".{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        runtime().block_on(async {
            let stack = stack().await;
            for req in [post_order(&text, &[]), b64(&bytes)] {
                let r = call_orders(&stack, req).await;
                assert!((400..500).contains(&r.status), "{} for {text:?} / {bytes:?}", r.status);
            }
            assert_eq!(orders_and_events(&stack).await.0.len(), 0);
        });
    }

    #[test]
    fn an_order_is_written_if_and_only_if_it_is_valid(body in arb_order()) {
        runtime().block_on(async {
            let stack = stack().await;
            let valid = serde_json::from_value::<OrderRequest>(body.clone()).ok().is_some_and(|r| r.validate().is_ok());
            let r = call_orders(&stack, post_order(&body.to_string(), &[])).await;
            let (orders, events) = orders_and_events(&stack).await;
            if valid {
                assert_eq!(r.status, 201, "{body}: {:?}", r.json);
                assert_eq!((orders.len(), events.len()), (1, 1));
            } else {
                assert_eq!(r.status, 400, "{body}: {:?}", r.json);
                assert_eq!((orders.len(), events.len()), (0, 0));
            }
        });
    }

    #[test]
    fn arbitrary_outbox_images_are_applied_or_reported_never_half_applied(
        event_id in prop_oneof![Just(None), ".{0,10}".prop_map(Some)],
        version in prop_oneof![Just(json!({"N": "1"})), Just(json!({"N": "2"})), Just(json!({"S": "1"})), Just(json!({"NULL": true}))],
        customer in prop_oneof!["[a-z0-9-]{1,10}", ".{0,70}"],
        points in prop_oneof![Just("25".to_owned()), Just("-5".to_owned()), Just("1e3".to_owned()), Just("abc".to_owned()), any::<i64>().prop_map(|n| n.to_string())],
        drop_payload in any::<bool>(),
    ) {
        runtime().block_on(async {
            let stack = stack().await;
            // Version 2's payload renamed total_cents and added channel; version 1's is upcast.
            let v2 = version == json!({"N": "2"});
            let mut image = json!({
                schema::PK: {"S": "OUTBOX#c"}, schema::SK: {"S": "EVENT#00000000000000000001"}, schema::ENTITY: {"S": schema::ENTITY_OUTBOX_EVENT},
                "event_type": {"S": "OrderPlaced"}, "schema_version": version, "aggregate_type": {"S": "Order"},
                "aggregate_id": {"S": "o-1"}, "ordering_key": {"S": "c"}, "occurred_at": {"S": "2026-11-26T00:00:00.000000Z"},
                schema::SEQUENCE: {"N": "1"}, schema::AFTER: {"M": {"rewards": {"N": "0"}}},
                "payload": {"M": {"order_id": {"S": "o-1"}, "customer_id": {"S": customer}, "currency": {"S": "USD"},
                                  "total_cents": {"N": "2500"}, "points": {"N": points}}}
            });
            if v2 {
                let payload = image["payload"]["M"].as_object_mut().unwrap();
                let total = payload.remove("total_cents").unwrap();
                payload.insert("amount_cents".into(), total);
                payload.insert("channel".into(), json!({"S": "api"}));
            }
            if let Some(id) = &event_id { image["event_id"] = json!({"S": id}); }
            if drop_payload { image.as_object_mut().unwrap().remove("payload"); }
            let record: EventRecord = serde_json::from_value(json!({
                "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "eventSourceARN": stack.tables.orders_stream_arn,
                "dynamodb": {"Keys": {}, "NewImage": image, "SequenceNumber": "100", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}
            })).unwrap();
            let outcome = stack.service().process_stream(&[record]).await;
            let items = scan(&stack, &stack.tables.rewards).await;
            let effect: Vec<&Item> = items.iter().filter(|i| !s(i, schema::PK).unwrap().starts_with("OUTBOX#")).collect();
            // A copy that not even the store takes (a number that is not one, which DynamoDB's
            // own stream never carries) cannot be parked either: it is reported for retry.
            let one = outcome.applied + outcome.skipped + outcome.parked + outcome.poison + outcome.failed;
            assert_eq!(one, 1, "the record came to exactly one thing: {outcome:?}");
            if outcome.applied == 1 {
                assert_eq!(effect.len(), 3, "reward record, ledger entry and balance: {effect:?}");
                let balance = effect.iter().find(|i| s(i, schema::SK) == Some(rewards::BALANCE_SK)).unwrap();
                assert_eq!(n(balance, rewards::POINTS), Some(25));
            } else {
                assert!(effect.is_empty(), "a refused event changed nothing: {effect:?}");
                if outcome.poison + outcome.failed == 1 {
                    assert_eq!(outcome.failures, vec!["100".to_owned()], "{outcome:?}");
                }
            }
        });
    }
}
