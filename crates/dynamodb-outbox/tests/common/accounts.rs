//! The events the engine's own tests deliver: deposits on accounts, and an event type no consumer
//! of theirs was taught.

use dynamodb_outbox::{Envelope, Event};
use serde::{Deserialize, Serialize};

/// An account's event, keyed by the account.
macro_rules! account_event {
    ($name:ident, $event_type:literal) => {
        impl Event for $name {
            const EVENT_TYPE: &'static str = $event_type;
            const SCHEMA_VERSION: u32 = 1;
            const AGGREGATE_TYPE: &'static str = "Account";
            fn aggregate_id(&self) -> String {
                self.account.clone()
            }
        }
    };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposited {
    pub account: String,
    pub cents: i64,
}

account_event!(Deposited, "Deposited");

/// A newer event type the consumers were never taught.
// Only the contract suite writes one; the Lambda tests include this file too.
#[allow(dead_code)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frozen {
    pub account: String,
}

account_event!(Frozen, "Frozen");

pub fn deposit(account: &str, cents: i64) -> Envelope<Deposited> {
    Envelope::new(Deposited {
        account: account.into(),
        cents,
    })
}
