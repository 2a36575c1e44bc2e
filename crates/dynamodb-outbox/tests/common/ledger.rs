//! The ledger the tests of the sources (an entity table's changes, a Kinesis stream, an SQS
//! queue, and the Lambda handlers over them) apply deposits with, and where it keeps them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dynamodb_outbox::{
    Consumer, Counter, Effect, Envelope, HandlerError, ItemKey, PoisonPolicy, Takes,
};
use serde_dynamo::{AttributeValue, Item};

use crate::accounts::Deposited;

/// The consumers' table (progress, parked events, and the ledgers' own items).
pub const TABLE: &str = "accounts";

/// A balance and the last deposit applied per account; a negative deposit is poison, a deposit
/// of 13 cents fails while `flaky`. With `own_record`, the journal line is the idempotency
/// record.
#[derive(Clone, Default)]
pub struct Ledger {
    pub own_record: bool,
    pub park: bool,
    pub flaky: Arc<AtomicBool>,
}

impl Ledger {
    /// A ledger that parks its poison.
    // Only the contract suite parks; the Lambda tests include this file too.
    #[allow(dead_code)]
    pub fn parking() -> Self {
        Self {
            park: true,
            ..Self::default()
        }
    }
}

impl Consumer for Ledger {
    type Payload = Deposited;

    fn name(&self) -> &str {
        "ledger"
    }

    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions("Deposited", 1..=1)]
    }

    fn on_poison(&self) -> PoisonPolicy {
        poison_policy(self.park)
    }

    async fn effect(&self, event: &Envelope<Deposited>) -> Result<Effect, HandlerError> {
        let cents = event.payload.cents;
        if cents < 0 {
            return Err(HandlerError::Poison("a negative deposit".into()));
        }
        if cents == 13 && self.flaky.load(Ordering::SeqCst) {
            return Err(HandlerError::Transient("the ledger is down".into()));
        }
        let pk = format!("ACCOUNT#{}", event.payload.account);
        let item = |sk: String, cents: i64| {
            Item::from(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.clone())),
                ("sk".to_owned(), AttributeValue::S(sk)),
                ("cents".to_owned(), AttributeValue::N(cents.to_string())),
            ]))
        };
        let line = item(format!("LINE#{}", event.event_id), cents);
        let effect = if self.own_record {
            Effect::new().put_new_as_record(TABLE, line)
        } else {
            Effect::new().put_new(TABLE, line)
        };
        Ok(effect
            .put(TABLE, item("LAST".into(), cents))
            .add(balance_of(pk.clone()), cents))
    }
}

/// What a test ledger does with poison: parks it when told to `park`, else holds its key back.
pub fn poison_policy(park: bool) -> PoisonPolicy {
    if park {
        PoisonPolicy::Park
    } else {
        PoisonPolicy::Wait
    }
}

/// The `cents` of an account's balance item, keyed `pk`, in the consumers' table.
pub fn balance_of(pk: String) -> Counter {
    Counter {
        table: TABLE.into(),
        key: ItemKey {
            pk,
            sk: "BALANCE".into(),
        },
        attribute: "cents".into(),
    }
}
