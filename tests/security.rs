//! With the JWT authorizer on, the customer is the token's: a caller cannot act as, or read,
//! another customer.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use outbox_tests::*;
use serde_json::{json, Value};

/// A request as API Gateway passes it on after its JWT authorizer accepted the token.
fn as_customer(mut req: ApiGatewayV2httpRequest, sub: &str) -> ApiGatewayV2httpRequest {
    let mut value = serde_json::to_value(&req).unwrap();
    value["requestContext"]["authorizer"] =
        json!({"jwt": {"claims": {"sub": sub, "iss": "https://issuer.example"}, "scopes": null}});
    req = serde_json::from_value(value).unwrap();
    req
}

#[tokio::test]
async fn the_customer_comes_from_the_token() {
    let stack = stack().await;
    let body =
        json!({"currency": "USD", "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 900}]})
            .to_string();
    let r = call_orders(&stack, as_customer(post_order(&body, &[]), "c-7")).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["customer_id"], "c-7");

    let other = call_orders(
        &stack,
        as_customer(post_order(&order_body("c-8", &[("A", 1, 100)]), &[]), "c-7"),
    )
    .await;
    assert_eq!((other.status, other.error_code()), (403, "forbidden"));
    let same = call_orders(
        &stack,
        as_customer(post_order(&order_body("c-7", &[("A", 1, 100)]), &[]), "c-7"),
    )
    .await;
    assert_eq!(same.status, 201);
    let (orders, _) = orders_and_events(&stack).await;
    assert_eq!(orders.len(), 2, "the forbidden order was not written");

    let without_token = call_orders(&stack, post_order(&body, &[])).await;
    assert_eq!(
        (without_token.status, without_token.error_code()),
        (400, "invalid_id"),
        "no token, no customer"
    );
}

#[tokio::test]
async fn a_caller_cannot_read_another_customers_order_or_rewards() {
    let stack = stack().await;
    let placed = place(&stack, "c-1", &[("A", 1, 100)]).await;
    let path = format!("/orders/{}", placed.json["order_id"].as_str().unwrap());

    assert_eq!(
        call_orders(&stack, as_customer(request("GET", &path, None, &[]), "c-1"))
            .await
            .status,
        200
    );
    assert_eq!(
        call_orders(&stack, as_customer(request("GET", &path, None, &[]), "c-2"))
            .await
            .status,
        404
    );
    let own = call_rewards(
        &stack,
        as_customer(request("GET", "/customers/c-1/rewards", None, &[]), "c-1"),
    )
    .await;
    assert_eq!(own.status, 200);
    let other = call_rewards(
        &stack,
        as_customer(request("GET", "/customers/c-1/rewards", None, &[]), "c-2"),
    )
    .await;
    assert_eq!((other.status, other.error_code()), (403, "forbidden"));
}

/// A request as API Gateway passes it on with these JWT claims (`None`: an authorizer context
/// without a JWT, as another kind of authorizer would leave it).
fn with_claims(req: ApiGatewayV2httpRequest, claims: Option<Value>) -> ApiGatewayV2httpRequest {
    let mut value = serde_json::to_value(&req).unwrap();
    value["requestContext"]["authorizer"] = match claims {
        Some(claims) => json!({"jwt": {"claims": claims, "scopes": null}}),
        None => json!({"lambda": {"principal": "someone"}}),
    };
    serde_json::from_value(value).unwrap()
}

/// Which claim names the customer, for every shape a token can take; `None`: refused with this
/// status, whatever the request.
fn claim_cases() -> Vec<(&'static str, Option<Value>, Result<&'static str, i64>)> {
    vec![
        (
            "only customer_id",
            Some(json!({"customer_id": "c-1"})),
            Ok("c-1"),
        ),
        ("only sub", Some(json!({"sub": "c-1"})), Ok("c-1")),
        (
            "both: customer_id wins",
            Some(json!({"customer_id": "c-1", "sub": "c-2"})),
            Ok("c-1"),
        ),
        (
            "empty customer_id: sub",
            Some(json!({"customer_id": "", "sub": "c-1"})),
            Ok("c-1"),
        ),
        (
            "both empty",
            Some(json!({"customer_id": "", "sub": ""})),
            Err(401),
        ),
        (
            "neither claim",
            Some(json!({"iss": "https://issuer.example"})),
            Err(401),
        ),
        ("no claims at all", Some(json!({})), Err(401)),
        ("authorizer without a JWT", None, Err(401)),
        (
            "invalid customer_id does not fall through to sub",
            Some(json!({"customer_id": "c 1", "sub": "c-1"})),
            Err(403),
        ),
        ("invalid sub", Some(json!({"sub": "c/1"})), Err(403)),
    ]
}

#[tokio::test]
async fn with_an_authorizer_the_customer_is_the_first_non_empty_claim_and_anything_else_is_refused()
{
    let stack = stack().await;
    // c-1 and c-2 each have an order and a reward to find.
    let own = place(&stack, "c-1", &[("A", 1, 500)]).await;
    let others = place(&stack, "c-2", &[("A", 1, 700)]).await;
    drain_to_rewards(&stack).await;
    let id_of = |r: &Reply| r.json["order_id"].as_str().unwrap().to_owned();
    let (own_id, others_id) = (id_of(&own), id_of(&others));

    for (case, claims, expected) in claim_cases() {
        let before = scan(&stack, &stack.tables.orders).await.len();
        let anonymous_body =
            json!({"currency": "USD", "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 100}]})
                .to_string();
        let post = call_orders(
            &stack,
            with_claims(post_order(&anonymous_body, &[]), claims.clone()),
        )
        .await;
        let get = |path: &str| with_claims(request("GET", path, None, &[]), claims.clone());
        let get_own = call_orders(&stack, get(&format!("/orders/{own_id}"))).await;
        let get_other = call_orders(&stack, get(&format!("/orders/{others_id}"))).await;
        let rewards_own = call_rewards(&stack, get("/customers/c-1/rewards")).await;
        let rewards_other = call_rewards(&stack, get("/customers/c-2/rewards")).await;
        match expected {
            Ok(customer) => {
                assert_eq!(customer, "c-1", "the cases are written for c-1");
                assert_eq!(post.status, 201, "{case}: {:?}", post.json);
                assert_eq!(post.json["customer_id"], customer, "{case}");
                assert_eq!(get_own.status, 200, "{case}");
                assert_eq!(get_other.status, 404, "{case}");
                assert_eq!(rewards_own.status, 200, "{case}");
                assert_eq!(rewards_own.json["points"], 5, "{case}");
                assert_eq!(rewards_other.status, 403, "{case}");
            }
            Err(status) => {
                for (what, reply) in [
                    ("POST /orders", &post),
                    ("GET own order", &get_own),
                    ("GET other order", &get_other),
                    ("GET own rewards", &rewards_own),
                    ("GET other rewards", &rewards_other),
                ] {
                    assert_eq!(reply.status, status, "{case}: {what}: {:?}", reply.json);
                    assert!(
                        reply.json.get("order_id").is_none(),
                        "{case}: {what} leaked an order"
                    );
                    assert!(
                        reply.json.get("points").is_none(),
                        "{case}: {what} leaked rewards"
                    );
                }
                let after = scan(&stack, &stack.tables.orders).await.len();
                assert_eq!(before, after, "{case}: nothing written");
            }
        }
    }
}
