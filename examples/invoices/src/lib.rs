//! A new aggregate and its consumers on the outbox engine, in a few lines each: an invoice
//! service that issues and voids invoices ([`invoices`]), a ledger that keeps each account's
//! balance ([`ledger`]), and a notifications counter ([`notifications`]) that only cares about
//! issued invoices. Events of one account are ordered (the account is the ordering key).

pub mod entity;
pub mod invoices;
pub mod ledger;
pub mod notifications;

use dynamodb_outbox::dynamodb::Routes;

/// Who takes what: the one routing table the writer and the consumers agree on.
pub fn routes() -> Routes {
    Routes::new()
        .route(
            invoices::InvoiceIssued::TYPE,
            &[ledger::NAME, notifications::NAME],
        )
        .route(invoices::InvoiceVoided::TYPE, &[ledger::NAME])
}
