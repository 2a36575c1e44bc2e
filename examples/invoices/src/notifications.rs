//! A second consumer of the same outbox: counts the invoice notifications each account got.

use dynamodb_outbox::{Consumer, Counter, Effect, Envelope, HandlerError, ItemKey, Takes};

use crate::invoices::InvoiceIssued;

pub const NAME: &str = "notifications";
pub const SENT: &str = "sent";

pub struct Notifications {
    pub table: String,
}

impl Notifications {
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
        }
    }
}

impl Consumer for Notifications {
    type Payload = InvoiceIssued;

    fn name(&self) -> &str {
        NAME
    }

    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions(InvoiceIssued::TYPE, 1..=1)]
    }

    /// Sending an email would happen here, at least once (deduplicated by `event.event_id`
    /// downstream); the counter is written exactly once, with the consumer's progress.
    async fn effect(&self, event: &Envelope<InvoiceIssued>) -> Result<Effect, HandlerError> {
        let sent = Counter {
            table: self.table.clone(),
            key: ItemKey {
                pk: format!("ACCOUNT#{}", event.payload.account_id),
                sk: "NOTIFICATIONS".into(),
            },
            attribute: SENT.into(),
        };
        Ok(Effect::new().add(sent, 1))
    }
}
