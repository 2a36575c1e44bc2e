//! The producer: an invoice is stored and announced in one transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use dynamodb_outbox::dynamodb::{Outbox, WriteError};
use dynamodb_outbox::{Envelope, Event};
use serde::{Deserialize, Serialize};

/// An invoice was issued to an account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvoiceIssued {
    pub invoice_id: String,
    pub account_id: String,
    pub amount_cents: i64,
}

impl InvoiceIssued {
    pub const TYPE: &'static str = "InvoiceIssued";
}

impl Event for InvoiceIssued {
    const EVENT_TYPE: &'static str = Self::TYPE;
    const SCHEMA_VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Invoice";
    fn aggregate_id(&self) -> String {
        self.invoice_id.clone()
    }
}

/// An issued invoice was voided: its amount no longer counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvoiceVoided {
    pub invoice_id: String,
    pub account_id: String,
    pub amount_cents: i64,
}

impl InvoiceVoided {
    pub const TYPE: &'static str = "InvoiceVoided";
}

impl Event for InvoiceVoided {
    const EVENT_TYPE: &'static str = Self::TYPE;
    const SCHEMA_VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Invoice";
    fn aggregate_id(&self) -> String {
        self.invoice_id.clone()
    }
}

/// What a client asks of the invoice service (the body of `POST /invoices`):
/// `{"issue": {"invoice_id", "account_id", "amount_cents"}}` or `{"void": {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Issue(InvoiceIssued),
    Void(InvoiceVoided),
}

/// Carries out a command: its items and its event, in one transaction.
pub async fn apply(outbox: &Outbox, command: Command) -> Result<(), WriteError> {
    match command {
        Command::Issue(invoice) => issue(outbox, invoice).await,
        Command::Void(voided) => void(outbox, voided).await,
    }
}

/// Issues an invoice: the invoice item (new, never overwritten) and its event, together. A retry
/// of an issue that was written is refused (`WriteError::Cancelled`), never issued twice.
pub async fn issue(outbox: &Outbox, invoice: InvoiceIssued) -> Result<(), WriteError> {
    let item = [
        ("account_id", AttributeValue::S(invoice.account_id.clone())),
        (
            "amount_cents",
            AttributeValue::N(invoice.amount_cents.to_string()),
        ),
    ];
    let put = new_item(outbox, &invoice.invoice_id, "INVOICE", item);
    // The account orders the events: a void never overtakes its issue.
    let event = Envelope::new(invoice.clone()).with_ordering_key(&invoice.account_id);
    commit(outbox, put, &event).await
}

/// Voids an invoice: a void record (new, never overwritten, so an invoice is voided once
/// whatever the client's retries) and its event, together.
pub async fn void(outbox: &Outbox, voided: InvoiceVoided) -> Result<(), WriteError> {
    let put = new_item(outbox, &voided.invoice_id, "VOID", []);
    let event = Envelope::new(voided.clone()).with_ordering_key(&voided.account_id);
    commit(outbox, put, &event).await
}

/// A command's item and its event, in one transaction: both written, or neither.
async fn commit<P: Serialize>(
    outbox: &Outbox,
    put: TransactWriteItem,
    event: &Envelope<P>,
) -> Result<(), WriteError> {
    outbox
        .transaction()
        .write(put)
        .event(event)?
        .commit()
        .await
        .map(|_| ())
}

/// A put of an invoice's item `sk` that fails if the item exists.
fn new_item<const N: usize>(
    outbox: &Outbox,
    invoice_id: &str,
    sk: &str,
    attributes: [(&str, AttributeValue); N],
) -> TransactWriteItem {
    let mut item = HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S(format!("INVOICE#{invoice_id}")),
        ),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ]);
    item.extend(attributes.map(|(name, value)| (name.to_owned(), value)));
    let put = Put::builder()
        .table_name(outbox.table())
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .expect("table, item and condition are set");
    TransactWriteItem::builder().put(put).build()
}
