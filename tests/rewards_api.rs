//! The rewards read API, on a ledger written by the real consumer.

use outbox_tests::*;

async fn rewarded(stack: &Stack, orders: &[(&str, i64)]) {
    for (customer, cents) in orders {
        place(stack, customer, &[("SKU", 1, *cents)]).await;
    }
    drain_to_rewards(stack).await;
}

fn get(path: &str) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
    request("GET", path, None, &[])
}

#[tokio::test]
async fn a_customer_sees_points_and_ledger_newest_first_across_pages() {
    let stack = stack().await;
    let amounts = [100, 200, 300, 400, 500];
    rewarded(
        &stack,
        &amounts.iter().map(|a| ("c-1", *a)).collect::<Vec<_>>(),
    )
    .await;

    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            None => "/customers/c-1/rewards?limit=2".to_owned(),
            Some(token) => format!("/customers/c-1/rewards?limit=2&next={token}"),
        };
        let r = call_rewards(&stack, get(&path)).await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        assert_eq!(r.json["customer_id"], "c-1");
        assert_eq!(r.json["points"], 15);
        let page = r.json["ledger"].as_array().unwrap().clone();
        assert!(page.len() <= 2);
        for line in &page {
            assert!(line["order_id"].is_string() && line["applied_at"].is_string());
        }
        seen.extend(page.iter().map(|l| l["points"].as_i64().unwrap()));
        match r.json["next"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
        assert!(seen.len() <= amounts.len(), "pagination must end");
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1], "every entry once, newest first");
}

#[tokio::test]
async fn an_unknown_customer_has_zero_points_and_an_empty_ledger() {
    let stack = stack().await;
    let r = call_rewards(&stack, get("/customers/nobody/rewards")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json,
        serde_json::json!({"customer_id": "nobody", "points": 0, "ledger": [], "next": null})
    );
}

#[tokio::test]
async fn bad_ids_limits_cursors_and_routes_are_refused() {
    let stack = stack().await;
    for (path, status, code) in [
        ("/customers/bad%20id/rewards", 400, "invalid_id"),
        ("/customers/c-1/rewards?limit=0", 400, "invalid_limit"),
        ("/customers/c-1/rewards?limit=101", 400, "invalid_limit"),
        ("/customers/c-1/rewards?limit=ten", 400, "invalid_limit"),
        ("/customers/c-1/rewards?next=%%%", 400, "invalid_cursor"),
        ("/customers/c-1/rewards?next=Zm9v", 400, "invalid_cursor"),
        ("/customers/c-1", 404, "not_found"),
        ("/orders", 404, "not_found"),
    ] {
        let r = call_rewards(&stack, get(path)).await;
        assert_eq!(
            (r.status, r.error_code()),
            (status, code),
            "{path}: {:?}",
            r.json
        );
    }
    let r = call_rewards(&stack, request("POST", "/customers/c-1/rewards", None, &[])).await;
    assert_eq!(r.status, 405);
}
