//! A new aggregate and its consumers on the outbox engine, in a few lines each: an invoice
//! service that issues and voids invoices ([`invoices`]), a ledger that keeps each account's
//! balance ([`ledger`]), and a notifications counter ([`notifications`]) that only cares about
//! issued invoices. Events of one account are ordered (the account is the ordering key).
//!
//! The rest of this file and `src/main.rs` are the glue to Lambda: the routes, the HTTP API.

pub mod entity;
pub mod invoices;
pub mod ledger;
pub mod notifications;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use dynamodb_outbox::dynamodb::{Outbox, Routes, WriteError};
use lambda_runtime::LambdaEvent;

/// Who takes what: the one routing table the writer and the consumers agree on, from the
/// consumers' own declarations (a consumer's name and types do not depend on its table).
pub fn routes() -> Routes {
    Routes::new()
        .consumer(&ledger::Ledger::new(""))
        .consumer(&notifications::Notifications::new(""))
}

/// `POST /invoices` with a [`invoices::Command`]. The status says what the client should do:
/// 409, it was done already (a retry); 503, retry (a retry is safe: see 409).
pub async fn api(
    outbox: &Outbox,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, lambda_runtime::Error> {
    let body = event.payload.body.unwrap_or_default();
    let (status, message) = match serde_json::from_str(&body) {
        Err(e) => (400, e.to_string()),
        Ok(command) => match invoices::apply(outbox, command).await {
            Ok(()) => (200, "done".into()),
            Err(WriteError::Cancelled { .. }) => (409, "done already".into()),
            Err(e @ (WriteError::Store(_) | WriteError::OutcomeUnknown(_))) => (503, e.to_string()),
            Err(e) => (400, e.to_string()),
        },
    };
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.body = Some(serde_json::json!({ "message": message }).to_string().into());
    Ok(response)
}
