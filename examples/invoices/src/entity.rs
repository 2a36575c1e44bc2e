//! The same invoices without an outbox (the article's pattern 2): the service writes only the
//! invoice item, with a pending marker for the sweeper, and consumers read the item's creation
//! from the invoice table's stream, through [`invoice_issued`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb_outbox::{pending_marker, Envelope, Event};
use serde::de::DeserializeOwned;
use serde_dynamo::Item;

use crate::invoices::InvoiceIssued;

/// Stores an invoice (new, never overwritten) as the event itself, waiting for `consumers`.
pub async fn issue(
    client: &Client,
    table: &str,
    invoice: &InvoiceIssued,
    issued_at: &str,
    consumers: &[&str],
) -> Result<(), String> {
    let event_id = event_id(&invoice.invoice_id);
    let marker = pending_marker(&invoice.account_id, issued_at, &event_id, consumers);
    let mut item: HashMap<String, AttributeValue> = marker.into();
    let text = |v: &str| AttributeValue::S(v.to_owned());
    item.extend([
        (
            "pk".to_owned(),
            text(&format!("INVOICE#{}", invoice.invoice_id)),
        ),
        ("sk".to_owned(), text("INVOICE")),
        ("invoice_id".to_owned(), text(&invoice.invoice_id)),
        ("account_id".to_owned(), text(&invoice.account_id)),
        (
            "amount_cents".to_owned(),
            AttributeValue::N(invoice.amount_cents.to_string()),
        ),
        ("issued_at".to_owned(), text(issued_at)),
    ]);
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

/// One invoice, one event: the id is derived from the invoice, so every delivery of its
/// creation carries the same one.
fn event_id(invoice_id: &str) -> String {
    format!("InvoiceIssued#{invoice_id}")
}

/// The adapter from an invoice item to the `InvoiceIssued` event, read as the consumer's
/// payload `P`: `None` for items that are not invoices, `Err` for an invoice this code cannot
/// read (the consumer is coupled to the item's shape: renaming `amount_cents` lands here).
pub fn invoice_issued<P: DeserializeOwned>(item: &Item) -> Option<Result<Envelope<P>, String>> {
    let text = |name: &str| match item.get(name) {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    if text("sk").as_deref() != Some("INVOICE") {
        return None;
    }
    let (Some(invoice_id), Some(account_id), Some(issued_at)) =
        (text("invoice_id"), text("account_id"), text("issued_at"))
    else {
        return Some(Err("an invoice item without its id, account or date".into()));
    };
    let payload = match serde_dynamo::from_item(item.clone()) {
        Ok(payload) => payload,
        Err(e) => return Some(Err(format!("invoice {invoice_id}: {e}"))),
    };
    Some(Ok(Envelope {
        event_id: event_id(&invoice_id),
        event_type: InvoiceIssued::TYPE.to_owned(),
        schema_version: InvoiceIssued::SCHEMA_VERSION,
        aggregate_type: InvoiceIssued::AGGREGATE_TYPE.to_owned(),
        aggregate_id: invoice_id,
        ordering_key: account_id,
        occurred_at: issued_at,
        trace_context: None,
        payload,
    }))
}
