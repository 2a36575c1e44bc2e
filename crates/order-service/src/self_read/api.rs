//! Pattern 3's order API: `POST /orders` publishes and answers `202 Accepted`;
//! `GET /orders/{order_id}` reads what order-history wrote, `404` with `Retry-After` until then.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use dynamodb_outbox::kinesis_put;
use http::StatusCode;
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;
use uuid::Uuid;

use service_runtime::http::{caller, json, with_header, ApiError};

use super::order_placed;
use super::publish::EventPublisher;
use crate::domain::order::validate_idempotency_key;
use crate::domain::{Order, OrderError, StoreError, Timestamp};
use crate::handlers::order_api::{
    counted, order_route, outcome_unknown, visible_order, OrderRoute, Posted,
};
use crate::service::idempotent_order_id;
use crate::store::OrderStore;

/// Seconds a client waits before asking again for an order order-history has not written yet:
/// the Kinesis mappings poll each shard every second.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// The Lambda entry point: `publisher` takes the events, `history` is the order-history table.
pub async fn handle<P: EventPublisher, H: OrderStore>(
    publisher: &P,
    history: &H,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    counted(event, async |req, trace| {
        respond(publisher, history, req, trace).await
    })
    .await
}

/// The whole API without the Lambda context: what tests and local tools call.
pub async fn respond<P: EventPublisher, H: OrderStore>(
    publisher: &P,
    history: &H,
    req: &ApiGatewayV2httpRequest,
    xray_trace_id: Option<String>,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    match order_route(req)? {
        OrderRoute::Place => post_order(publisher, Posted::read(req, xray_trace_id)?).await,
        OrderRoute::Get(order_id) => get_order(history, req, order_id).await,
    }
}

/// The 202 body: what was accepted and where it will be.
#[derive(Serialize)]
struct Accepted<'a> {
    order_id: &'a str,
    status: &'static str,
    customer_id: &'a str,
    total_cents: i64,
    points: i64,
    /// Where the order appears once order-history has written it.
    location: &'a str,
}

async fn post_order<P: EventPublisher>(
    publisher: &P,
    Posted {
        request,
        key,
        trace,
    }: Posted<'_>,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    let order_id = match key {
        Some(key) => {
            validate_idempotency_key(key).map_err(ApiError::from)?;
            idempotent_order_id(&request.customer_id, key)
        }
        None => Uuid::new_v4().to_string(),
    };
    let order = request
        .into_new_order(order_id, Timestamp::now(), None)
        .map_err(ApiError::from)?
        .order;
    let event = order_placed(&order, trace);
    let record = kinesis_put(&event).map_err(|why| ApiError::from(StoreError::Failed(why)))?;
    publisher
        .publish(&record)
        .await
        .map_err(|err| publish_outcome_unknown(err, key))?;
    tracing::info!(
        order_id = %order.order_id, customer_id = %order.customer_id, event_id = %event.event_id,
        "order accepted: OrderPlaced published"
    );
    Ok(accepted(&order))
}

fn accepted(order: &Order) -> ApiGatewayV2httpResponse {
    let location = format!("/orders/{}", order.order_id);
    let body = Accepted {
        order_id: &order.order_id,
        status: "accepted",
        customer_id: &order.customer_id,
        total_cents: order.total_cents,
        points: order.points,
        location: &location,
    };
    with_header(json(StatusCode::ACCEPTED, &body), "location", &location)
}

/// A publish that failed: Kinesis refused it (nothing was written anywhere), or its answer was
/// lost (the record may be on the stream). The client cannot tell which, so the message says
/// what a retry does.
pub fn publish_outcome_unknown(err: StoreError, idempotency_key: Option<&str>) -> ApiError {
    outcome_unknown(
        err,
        idempotency_key,
        "the event stream is busy or unreachable, and the order may or may not have been accepted",
        "the order is recorded once either way",
    )
}

async fn get_order<H: OrderStore>(
    history: &H,
    req: &ApiGatewayV2httpRequest,
    order_id: &str,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    match visible_order(history, caller(req)?, order_id).await {
        Ok(view) => Ok(json(StatusCode::OK, &view.order)),
        Err(OrderError::NotFound) => Ok(with_header(
            not_yet(order_id).into_response(),
            "retry-after",
            RETRY_AFTER_SECONDS,
        )),
        Err(OrderError::Invalid(v)) => Err(v.into()),
        Err(OrderError::Store(err)) => Err(err.into()),
        Err(OrderError::IdempotencyConflict) => Err(ApiError::not_found()),
    }
}

/// Not in the order history: never placed, or accepted moments ago and not written yet (the
/// read-your-writes gap of this pattern). The API cannot tell the two apart, so both answer 404
/// with `Retry-After`.
fn not_yet(order_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "order {order_id} is not in the order history: an order accepted moments ago appears \
             once the order-history consumer has read it; retry after {RETRY_AFTER_SECONDS} s"
        ),
    )
}
