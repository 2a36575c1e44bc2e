//! With the JWT authorizer on, the customer is the token's: a caller cannot act as, or read,
//! another customer.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use outbox_tests::*;
use serde_json::json;

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
