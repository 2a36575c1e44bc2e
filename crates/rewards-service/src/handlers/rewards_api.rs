//! `GET /customers/{customer_id}/rewards`: the rewards service's read API.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use http::{Method, StatusCode};
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;

use service_runtime::http::{caller, json, route, ApiError};

use crate::domain::{LedgerEntry, ValidationError};
use crate::service::{self, RewardsQueryError};
use crate::store::RewardsStore;

pub async fn handle<R: RewardsStore>(
    store: &R,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    Ok(respond(store, &event.payload)
        .await
        .unwrap_or_else(ApiError::into_response))
}

#[derive(Serialize)]
struct RewardsView<'a> {
    customer_id: &'a str,
    points: i64,
    ledger: Vec<LedgerLine<'a>>,
    next: Option<String>,
}

#[derive(Serialize)]
struct LedgerLine<'a> {
    order_id: &'a str,
    points: i64,
    applied_at: &'a str,
}

impl<'a> From<&'a LedgerEntry> for LedgerLine<'a> {
    fn from(e: &'a LedgerEntry) -> Self {
        Self {
            order_id: &e.order_id,
            points: e.points,
            applied_at: &e.applied_at,
        }
    }
}

pub async fn respond<R: RewardsStore>(
    store: &R,
    req: &ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    let caller = caller(req)?;
    let (method, path) = route(req);
    let customer_id = match path.as_slice() {
        ["customers", id, "rewards"] if method == Method::GET => *id,
        ["customers", _, "rewards"] => return Err(ApiError::method_not_allowed("GET")),
        _ => return Err(ApiError::not_found()),
    };
    if !caller.may_access(customer_id) {
        return Err(ApiError::forbidden());
    }
    let query = &req.query_string_parameters;
    let limit = match query.first("limit") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ValidationError::new("invalid_limit", "limit", "must be a whole number")
        })?),
    };
    let page = service::rewards_of(store, customer_id, limit, query.first("next"))
        .await
        .map_err(|e| match e {
            RewardsQueryError::Invalid(v) => ApiError::from(v),
            RewardsQueryError::Store(s) => ApiError::from(s),
        })?;
    let view = RewardsView {
        customer_id,
        points: page.points,
        ledger: page.entries.iter().map(LedgerLine::from).collect(),
        next: page.next.clone(),
    };
    Ok(json(StatusCode::OK, &view))
}
