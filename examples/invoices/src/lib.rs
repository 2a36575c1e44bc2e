//! A new aggregate and its consumers on the outbox engine, in a few lines each: an invoice
//! service that issues and voids invoices ([`invoices`]), a ledger that keeps each account's
//! balance ([`ledger`]), and a notifications counter ([`notifications`]) that only cares about
//! issued invoices. Events of one account are ordered (the account is the ordering key).

pub mod api;
pub mod entity;
pub mod invoices;
pub mod ledger;
pub mod notifications;

use dynamodb_outbox::dynamodb::Routes;

/// Who takes what: the one routing table the writer and the consumers agree on, from the
/// consumers' own declarations (a consumer's name and types do not depend on its table).
pub fn routes() -> Routes {
    Routes::new()
        .consumer(&ledger::Ledger::new(""))
        .consumer(&notifications::Notifications {
            table: String::new(),
        })
}
