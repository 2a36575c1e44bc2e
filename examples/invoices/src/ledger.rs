//! A consumer: each account's balance, exactly once per event, in the account's order.

use std::collections::HashMap;

use dynamodb_outbox::{
    Consumer, Counter, Effect, Envelope, HandlerError, ItemKey, PoisonPolicy, Takes,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

use crate::invoices::{InvoiceIssued, InvoiceVoided};

pub const NAME: &str = "ledger";
pub const BALANCE: &str = "balance_cents";

/// What the ledger reads of either event it takes (both carry these fields); the envelope's
/// `event_type` says which one it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoiceAmount {
    pub account_id: String,
    pub amount_cents: i64,
}

/// Balances (and one line per event) in the ledger's own table.
pub struct Ledger {
    pub table: String,
    /// Larger invoices are taken for mistakes and parked.
    pub largest_cents: i64,
}

impl Ledger {
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            largest_cents: 100_000_000,
        }
    }
}

impl Consumer for Ledger {
    type Payload = InvoiceAmount;

    fn name(&self) -> &str {
        NAME
    }

    fn takes(&self) -> Vec<Takes> {
        vec![
            Takes::versions(InvoiceIssued::TYPE, 1..=1),
            Takes::versions(InvoiceVoided::TYPE, 1..=1),
        ]
    }

    /// A bad invoice must not hold up the account's later invoices.
    fn on_poison(&self) -> PoisonPolicy {
        PoisonPolicy::Park
    }

    async fn effect(&self, event: &Envelope<InvoiceAmount>) -> Result<Effect, HandlerError> {
        let amount = event.payload.amount_cents;
        let change = match event.event_type.as_str() {
            InvoiceIssued::TYPE => amount,
            InvoiceVoided::TYPE => -amount,
            other => {
                return Err(HandlerError::poison(format!(
                    "not an invoice event: {other}"
                )))
            }
        };
        let account = &event.payload.account_id;
        if !(0..=self.largest_cents).contains(&amount) {
            return Err(HandlerError::poison(format!(
                "{amount} cents is not a real invoice"
            )));
        }
        let pk = format!("ACCOUNT#{account}");
        let line = Item::from(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.clone())),
            (
                "sk".to_owned(),
                AttributeValue::S(format!("LINE#{}", event.event_id)),
            ),
            (
                "change_cents".to_owned(),
                AttributeValue::N(change.to_string()),
            ),
        ]));
        // The line is a function of the event: it doubles as the idempotency record where the
        // event has no outbox sequence (Kinesis), so no extra item is written there.
        let balance = Counter {
            table: self.table.clone(),
            key: ItemKey {
                pk,
                sk: "BALANCE".into(),
            },
            attribute: BALANCE.into(),
        };
        Ok(Effect::new()
            .put_new_as_record(&self.table, line)
            .add(balance, change))
    }
}
