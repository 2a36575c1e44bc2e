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

/// Issues an invoice: the invoice item (new, never overwritten) and its event, together.
pub async fn issue(outbox: &Outbox, invoice: InvoiceIssued) -> Result<(), WriteError> {
    let item = HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S(format!("INVOICE#{}", invoice.invoice_id)),
        ),
        ("sk".to_owned(), AttributeValue::S("INVOICE".into())),
        (
            "account_id".to_owned(),
            AttributeValue::S(invoice.account_id.clone()),
        ),
        (
            "amount_cents".to_owned(),
            AttributeValue::N(invoice.amount_cents.to_string()),
        ),
    ]);
    let put = Put::builder()
        .table_name(outbox.table())
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .expect("table, item and condition are set");
    // The account orders the events: a void never overtakes its issue.
    let event = Envelope::new(invoice.clone()).with_ordering_key(&invoice.account_id);
    outbox
        .transaction()
        .write(TransactWriteItem::builder().put(put).build())
        .event(&event)?
        .commit()
        .await
        .map(|_| ())
}

/// Voids an invoice (here without a state change of its own, to keep the example short).
pub async fn void(outbox: &Outbox, voided: InvoiceVoided) -> Result<(), WriteError> {
    let event = Envelope::new(voided.clone()).with_ordering_key(&voided.account_id);
    outbox
        .transaction()
        .event(&event)?
        .commit()
        .await
        .map(|_| ())
}
