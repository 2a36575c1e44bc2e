//! The producer's HTTP API: `POST /invoices` issues an invoice, `POST /invoices/{invoice_id}/void`
//! voids one. Each answer says what the client should do: 409, it is done already; 503, retry.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use dynamodb_outbox::dynamodb::{Outbox, WriteError};
use serde::Deserialize;

use crate::invoices::{self, InvoiceIssued, InvoiceVoided};

/// What a void says besides the invoice (the example keeps no invoice state to read it from).
#[derive(Deserialize)]
struct Void {
    account_id: String,
    amount_cents: i64,
}

/// Answers one request of the HTTP API (payload v2).
pub async fn handle(
    outbox: &Outbox,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let body = request.body.as_deref().unwrap_or_default();
    let written = match request.route_key.as_deref() {
        Some("POST /invoices") => match serde_json::from_str::<InvoiceIssued>(body) {
            Ok(invoice) => invoices::issue(outbox, invoice).await,
            Err(e) => return answer(400, &e.to_string()),
        },
        Some("POST /invoices/{invoice_id}/void") => match serde_json::from_str::<Void>(body) {
            Ok(Void {
                account_id,
                amount_cents,
            }) => {
                let invoice_id = request
                    .path_parameters
                    .get("invoice_id")
                    .cloned()
                    .unwrap_or_default();
                invoices::void(
                    outbox,
                    InvoiceVoided {
                        invoice_id,
                        account_id,
                        amount_cents,
                    },
                )
                .await
            }
            Err(e) => return answer(400, &e.to_string()),
        },
        _ => return answer(404, "no such route"),
    };
    match written {
        Ok(()) => answer(200, "done"),
        Err(WriteError::Cancelled { .. }) => answer(409, "done already"),
        // Safe to retry: a write that did happen is refused as done already.
        Err(e @ (WriteError::Store(_) | WriteError::OutcomeUnknown(_))) => {
            answer(503, &e.to_string())
        }
        Err(e) => answer(400, &e.to_string()),
    }
}

fn answer(status: i64, message: &str) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.body = Some(serde_json::json!({ "message": message }).to_string().into());
    response
}
