//! `POST /orders` and `GET /orders/{order_id}`: the order service's HTTP API.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use http::{Method, StatusCode};
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;

use dynamodb_outbox::TraceContext;
use service_runtime::http::{
    body_bytes, caller, header, json, parse_json, route, with_header, ApiError, Caller,
};
use service_runtime::metrics::{self, MetricSet};
use service_runtime::trace;

use crate::domain::{Order, OrderError, OrderRequest, OrderView, StoreError};
use crate::service::{self, Placed};
use crate::store::OrderStore;

pub async fn handle<S: OrderStore>(
    store: &S,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    counted(event, async |req, trace| respond(store, req, trace).await).await
}

/// The answer `respond` gives the request, with a `POST /orders`'s placement metrics emitted.
pub(crate) async fn counted(
    event: LambdaEvent<ApiGatewayV2httpRequest>,
    respond: impl AsyncFnOnce(
        &ApiGatewayV2httpRequest,
        Option<String>,
    ) -> Result<ApiGatewayV2httpResponse, ApiError>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    let trace = event.context.xray_trace_id.clone();
    let placing = matches!(order_route(&event.payload), Ok(OrderRoute::Place));
    let result = respond(&event.payload, trace).await;
    if placing {
        placement_metrics(&result).emit();
    }
    Ok(result.unwrap_or_else(ApiError::into_response))
}

/// What a `POST /orders` came to: placed now, answered from an earlier write, or refused (with
/// the error code, a fixed set, as the `Reason` dimension).
pub fn placement_metrics(result: &Result<ApiGatewayV2httpResponse, ApiError>) -> MetricSet {
    let set = MetricSet::new(metrics::ORDER_WRITER);
    match result {
        Ok(response) => {
            let replay = response.headers.contains_key("idempotent-replayed");
            set.count(metrics::ORDERS_PLACED, usize::from(!replay))
                .count(metrics::ORDER_REPLAYS, usize::from(replay))
                .count(metrics::ORDERS_REJECTED, 0)
        }
        Err(err) => set.count(metrics::ORDERS_REJECTED, 1).reason(err.code),
    }
}

/// The whole API without the Lambda context: what tests and local tools call.
pub async fn respond<S: OrderStore>(
    store: &S,
    req: &ApiGatewayV2httpRequest,
    xray_trace_id: Option<String>,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    match order_route(req)? {
        OrderRoute::Place => post_order(store, Posted::read(req, xray_trace_id)?).await,
        OrderRoute::Get(order_id) => {
            let view = visible_order(store, caller(req)?, order_id)
                .await
                .map_err(api_error)?;
            Ok(json(StatusCode::OK, &view))
        }
    }
}

/// The order `order_id` as `caller` may see it, as both patterns answer a `GET`: another
/// customer's order is [`OrderError::NotFound`], so a caller cannot tell it exists.
pub(crate) async fn visible_order<S: OrderStore>(
    store: &S,
    caller: Caller<'_>,
    order_id: &str,
) -> Result<OrderView, OrderError> {
    let view = service::get_order(store, order_id).await?;
    if !caller.may_access(&view.order.customer_id) {
        return Err(OrderError::NotFound);
    }
    Ok(view)
}

/// The order API's two routes, as both patterns serve them.
pub(crate) enum OrderRoute<'r> {
    /// `POST /orders`.
    Place,
    /// `GET /orders/{order_id}`.
    Get(&'r str),
}

/// The route a request takes; another method on a route, or another path, is its error.
pub(crate) fn order_route(req: &ApiGatewayV2httpRequest) -> Result<OrderRoute<'_>, ApiError> {
    match route(req) {
        (Method::POST, path) if path == ["orders"] => Ok(OrderRoute::Place),
        (_, path) if path == ["orders"] => Err(ApiError::method_not_allowed("POST")),
        (Method::GET, path) if path.len() == 2 && path[0] == "orders" => {
            Ok(OrderRoute::Get(path[1]))
        }
        (_, path) if path.len() == 2 && path[0] == "orders" => {
            Err(ApiError::method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The 201 body: the order without its line items and internal fingerprint.
#[derive(Serialize)]
struct Created<'a> {
    order_id: &'a str,
    customer_id: &'a str,
    currency: &'a str,
    total_cents: i64,
    points: i64,
    created_at: &'a str,
}

impl<'a> From<&'a Order> for Created<'a> {
    fn from(o: &'a Order) -> Self {
        Self {
            order_id: &o.order_id,
            customer_id: &o.customer_id,
            currency: &o.currency,
            total_cents: o.total_cents,
            points: o.points,
            created_at: &o.created_at,
        }
    }
}

/// A `POST /orders` as both patterns read it.
pub(crate) struct Posted<'r> {
    pub request: OrderRequest,
    pub key: Option<&'r str>,
    pub trace: Option<TraceContext>,
}

impl<'r> Posted<'r> {
    pub fn read(
        req: &'r ApiGatewayV2httpRequest,
        xray_trace_id: Option<String>,
    ) -> Result<Self, ApiError> {
        let caller = caller(req)?;
        let bytes = body_bytes(req)?;
        let mut request: OrderRequest = parse_json(&req.headers, &bytes)?;
        // With an authorizer, the customer is the token's: the body may omit it, not contradict it.
        if let Caller::Customer(customer) = caller {
            if request.customer_id.is_empty() {
                request.customer_id = customer.to_owned();
            } else if request.customer_id != customer {
                return Err(ApiError::forbidden());
            }
        }
        let key = header(&req.headers, "idempotency-key")?;
        let traceparent = header(&req.headers, "traceparent")?.map(str::to_owned);
        Ok(Self {
            request,
            key,
            trace: trace::checked(traceparent, xray_trace_id),
        })
    }
}

async fn post_order<S: OrderStore>(
    store: &S,
    posted: Posted<'_>,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    let (key, trace) = (posted.key, posted.trace);
    let link = trace.as_ref().and_then(trace::link);
    let placed = match service::place_order(store, posted.request, key, trace).await {
        Ok(placed) => placed,
        Err(OrderError::Store(err)) => return Err(write_outcome_unknown(err, key)),
        Err(err) => return Err(api_error(err)),
    };
    let order = placed.order();
    tracing::info!(
        order_id = %order.order_id,
        customer_id = %order.customer_id,
        replayed = matches!(placed, Placed::Replayed(_)),
        trace_id = link.as_ref().map(|l| l.trace_id.as_str()).unwrap_or_default(),
        xray_trace_id = link.as_ref().map(|l| l.xray_trace_id.as_str()).unwrap_or_default(),
        "order placed"
    );
    let location = format!("/orders/{}", order.order_id);
    let response = with_header(
        json(StatusCode::CREATED, &Created::from(order)),
        "location",
        &location,
    );
    Ok(match (&placed, key) {
        (Placed::Replayed(_), Some(_)) => with_header(response, "idempotent-replayed", "true"),
        _ => response,
    })
}

/// A write whose outcome is unknown: the database may have committed it although no answer
/// came back (a lost response looks exactly like a failure), so the body must not say that
/// nothing was written. What is safe depends on whether the client sent an Idempotency-Key.
pub fn write_outcome_unknown(err: StoreError, idempotency_key: Option<&str>) -> ApiError {
    outcome_unknown(
        err,
        idempotency_key,
        "the database is busy or unreachable, and the order may or may not have been written",
        "it returns the order if it was written and writes it once if not",
    )
}

/// An unavailable store's error, its message saying the order's fate is unknown (`doubt`) and
/// whether a retry is safe (with a key: `retry` says why).
pub(crate) fn outcome_unknown(
    err: StoreError,
    idempotency_key: Option<&str>,
    doubt: &str,
    retry: &str,
) -> ApiError {
    let unavailable = matches!(err, StoreError::Unavailable(_));
    let mut api = ApiError::from(err);
    if unavailable {
        api.message = match idempotency_key {
            Some(_) => format!("{doubt}. Retrying with the same Idempotency-Key is safe: {retry}"),
            None => format!(
                "{doubt}. This request had no Idempotency-Key, so a retry may place a second \
                 order: send an Idempotency-Key with every order to make retries safe"
            ),
        };
    }
    api
}

/// The one mapping from the order service's errors to HTTP statuses.
fn api_error(e: OrderError) -> ApiError {
    match e {
        OrderError::Invalid(v) => v.into(),
        OrderError::IdempotencyConflict => ApiError {
            field: Some("Idempotency-Key".into()),
            ..ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", e.to_string())
        },
        OrderError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        OrderError::Store(s) => s.into(),
    }
}
