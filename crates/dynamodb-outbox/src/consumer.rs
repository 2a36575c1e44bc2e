//! What a consumer writes: a name, the events it takes, and the effect of one event.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::RangeInclusive;

use serde::de::DeserializeOwned;
use serde_dynamo::Item;

use crate::envelope::Envelope;
use crate::store::ItemKey;

/// One consumer of an outbox: given an event, its effect.
///
/// The engine does the rest: decoding, skipping what the consumer does not take, per-key order,
/// committing the effect together with the consumer's progress (exactly once), hold-back after a
/// failure, partial batch responses, and marking the outbox item once every consumer is done.
///
/// ```
/// use dynamodb_outbox::{Consumer, Counter, Effect, Envelope, Event, HandlerError, ItemKey, Takes};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)]
/// # struct InvoiceIssued { invoice_id: String, account_id: String, amount_cents: i64 }
/// # impl Event for InvoiceIssued {
/// #     const EVENT_TYPE: &'static str = "InvoiceIssued";
/// #     const SCHEMA_VERSION: u32 = 1;
/// #     const AGGREGATE_TYPE: &'static str = "Invoice";
/// #     fn aggregate_id(&self) -> String { self.invoice_id.clone() }
/// # }
///
/// struct Ledger { table: String }
///
/// impl Consumer for Ledger {
///     type Payload = InvoiceIssued;
///     fn name(&self) -> &str { "ledger" }
///     fn takes(&self) -> Vec<Takes> { vec![Takes::versions("InvoiceIssued", 1..=1)] }
///     async fn effect(&self, event: &Envelope<InvoiceIssued>) -> Result<Effect, HandlerError> {
///         let balance = Counter {
///             table: self.table.clone(),
///             key: ItemKey { pk: format!("ACCOUNT#{}", event.payload.account_id), sk: "BALANCE".into() },
///             attribute: "balance_cents".into(),
///         };
///         Ok(Effect::new().add(balance, event.payload.amount_cents))
///     }
/// }
/// ```
pub trait Consumer: Send + Sync {
    /// The payload of the events this consumer takes.
    type Payload: DeserializeOwned + Send + Sync;

    /// The consumer's name: its progress, its place in an event's routing, its logs.
    fn name(&self) -> &str;

    /// The event types and schema versions this consumer applies, older versions brought up to
    /// the one it handles by upcasters ([`Takes::upcast`]). Events routed to it that it does not
    /// take (a newer version, a type it dropped) are skipped and counted, never poison, so a
    /// newer producer cannot block an older consumer.
    fn takes(&self) -> Vec<Takes>;

    /// What to do with the later events of a key after one of its events proved poison.
    fn on_poison(&self) -> PoisonPolicy {
        PoisonPolicy::Wait
    }

    /// The effect of one event. When the effect is DynamoDB writes, return them: the engine
    /// commits them in one transaction with this consumer's progress, so they happen exactly
    /// once. Anything done here outside DynamoDB (publishing) happens at least once: deduplicate
    /// downstream by `event.event_id`.
    fn effect(
        &self,
        event: &Envelope<Self::Payload>,
    ) -> impl Future<Output = Result<Effect, HandlerError>> + Send;

    /// How the processor publishes this consumer's outbox batches when its effect is a
    /// publication: the engine's relays say it (`relay::Relay`); every other consumer keeps
    /// `None`, and its effects go through `effect`.
    #[cfg(feature = "relay")]
    #[doc(hidden)]
    fn publisher(&self) -> Option<&dyn crate::relay::hook::Publish<Self::Payload>> {
        None
    }
}

/// An event type and the schema versions of it that a consumer applies: the versions it
/// handles as they are, and older ones it brings up to those ([`Takes::upcast`]).
///
/// Two are equal when they take the same versions of the same type through upcasters from the
/// same versions (the upcasters' functions are not compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takes {
    pub(crate) event_type: String,
    pub(crate) versions: RangeInclusive<u32>,
    pub(crate) upcasters: Vec<crate::upcast::Upcaster>,
}

impl Takes {
    /// `event_type` in the given schema versions, which the consumer's payload decodes as they
    /// are.
    pub fn versions(event_type: &str, versions: RangeInclusive<u32>) -> Self {
        Self {
            event_type: event_type.to_owned(),
            versions,
            upcasters: Vec::new(),
        }
    }
}

/// What happens to a key's later events after one of them is poison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonPolicy {
    /// Strict order: the key waits. The poison event and every later event of its key are
    /// reported as failures until the poison is fixed (or the source gives up on them and the
    /// sweeper redrives them later).
    Wait,
    /// The poison event is parked (recorded with the reason in the consumer's table, counted as
    /// applied with no effect) and the key's later events go on.
    Park,
}

/// Any error, kept whole (with its own sources) inside a [`HandlerError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a consumer could not produce an effect, and so what the engine does with the event.
///
/// Any error converts into one with `?`: as [`HandlerError::Transient`], because retrying an
/// event that could have been applied is safe and dropping one is not. Say
/// [`HandlerError::poison`] when retrying cannot help.
///
/// ```
/// use dynamodb_outbox::HandlerError;
///
/// fn amount(text: &str) -> Result<i64, HandlerError> {
///     // A payload that does not parse will never parse: poison, with the parse error kept.
///     let cents: i64 = text.parse().map_err(HandlerError::poison)?;
///     if cents < 0 {
///         return Err(HandlerError::poison("a negative amount"));
///     }
///     Ok(cents)
/// }
/// assert!(matches!(amount("-1"), Err(HandlerError::Poison(_))));
/// assert!(matches!(amount("x"), Err(HandlerError::Poison(_))));
/// ```
#[derive(Debug)]
pub enum HandlerError {
    /// The event can never be applied as it is: retrying will not help. The engine parks it
    /// or holds its key, as the consumer's [`PoisonPolicy`] says.
    Poison(BoxError),
    /// A transient failure (a dependency down): the engine reports the event for retry.
    Transient(BoxError),
}

impl HandlerError {
    /// The event can never be applied as it is (see [`HandlerError::Poison`]).
    pub fn poison(error: impl Into<BoxError>) -> Self {
        HandlerError::Poison(error.into())
    }

    /// The event may apply later (see [`HandlerError::Transient`]).
    pub fn transient(error: impl Into<BoxError>) -> Self {
        HandlerError::Transient(error.into())
    }
}

// Not `std::error::Error` itself, so that every error converts with `?` (the blanket `From`
// below would otherwise overlap `From<T> for T`), as `anyhow::Error` does.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::Transient(Box::new(error))
    }
}

impl HandlerError {
    /// The error and the chain of its sources, so a log line and a parked event's reason keep
    /// the cause (`"the ledger entry does not encode: invalid type: ..."`).
    pub(crate) fn reason(&self) -> String {
        let (HandlerError::Poison(error) | HandlerError::Transient(error)) = self;
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        reason
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            HandlerError::Poison(_) => "poison event",
            HandlerError::Transient(_) => "transient failure",
        };
        write!(f, "{what}: {}", self.reason())
    }
}

/// A number attribute of one item: what [`Effect::add`] adds to. Its parts are named, so a
/// table, a key and an attribute cannot trade places unnoticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The table holding the item.
    pub table: String,
    /// The item's key.
    pub key: ItemKey,
    /// The numeric attribute.
    pub attribute: String,
}

/// The DynamoDB writes one event causes, committed atomically with the consumer's progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effect {
    pub(crate) writes: Vec<Write>,
    /// The write named as the event's idempotency record (see [`Effect::put_new_as_record`]).
    pub(crate) record: Option<usize>,
}

/// One write of an [`Effect`]. Conditions are part of the effect: when one fails, nothing is
/// written and the event is poison, with the write named in the reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write {
    /// Puts `item` (which carries `pk` and `sk`) into `table`; with `if_absent`, only when no
    /// item has that key.
    Put {
        /// The table.
        table: String,
        /// The item, keys included.
        item: Item,
        /// Refuse the effect if the item exists.
        if_absent: bool,
    },
    /// Adds `amount` to the number `counter` names, creating the item at 0; with
    /// `at_most`, only when the result stays at or below it.
    Add {
        /// The table, the item's key and the numeric attribute.
        counter: Counter,
        /// What to add (may be negative).
        amount: i64,
        /// The largest value the attribute may reach.
        at_most: Option<i64>,
    },
}

impl Write {
    /// Why an effect was refused when this write's condition failed: a parked event's reason,
    /// the same from every store.
    pub(crate) fn refusal(&self) -> String {
        format!("the effect's {}: its condition failed", self.describe())
    }

    /// The write and the condition that refuses it, for a parked event's reason and the logs:
    /// `put of pk/sk into table (an item with that key exists)`.
    pub(crate) fn describe(&self) -> String {
        let key_of = |item: &Item| {
            let text = |name: &str| match item.get(name) {
                Some(serde_dynamo::AttributeValue::S(v)) => v.clone(),
                _ => "?".to_owned(),
            };
            format!("{}/{}", text(crate::schema::PK), text(crate::schema::SK))
        };
        match self {
            Write::Put {
                table,
                item,
                if_absent,
            } => {
                let condition = if *if_absent {
                    " (an item with that key exists)"
                } else {
                    ""
                };
                format!("put of {} into {table}{condition}", key_of(item))
            }
            Write::Add {
                counter,
                amount,
                at_most,
            } => {
                let Counter {
                    table,
                    key: ItemKey { pk, sk },
                    attribute,
                } = counter;
                let condition = at_most
                    .map(|max| format!(" (the result would pass {max})"))
                    .unwrap_or_default();
                format!("add of {amount} to {attribute} of {pk}/{sk} in {table}{condition}")
            }
        }
    }
}

impl Effect {
    /// No writes: the event only advances the consumer's progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `item` into `table`, refused if an item with its key exists.
    pub fn put_new(mut self, table: &str, item: Item) -> Self {
        self.writes.push(Write::Put {
            table: table.to_owned(),
            item,
            if_absent: true,
        });
        self
    }

    /// Adds a put of `item` into `table`, refused if an item with its key exists, and names it
    /// the event's idempotency record, to save the engine's own record for sources without an
    /// outbox sequence (Kinesis, an entity table's changes): the event is applied once because
    /// this item can be put once. When the item exists already, the event is a duplicate if the
    /// existing item has every attribute of `item` with the same value, and poison otherwise (an
    /// item with this key and other content: a collision, not a redelivery). So `item` must be
    /// a function of the event only (no clock, no random id). One per effect: the last named
    /// counts. For outbox events (which the progress makes idempotent) it is a plain
    /// [`Effect::put_new`].
    pub fn put_new_as_record(mut self, table: &str, item: Item) -> Self {
        self.record = Some(self.writes.len());
        self.put_new(table, item)
    }

    /// The write named as the event's idempotency record, if any.
    pub(crate) fn idempotency_record(&self) -> Option<&Write> {
        self.record.and_then(|index| self.writes.get(index))
    }

    /// Adds a put of `item` into `table`, replacing any item with its key.
    pub fn put(mut self, table: &str, item: Item) -> Self {
        self.writes.push(Write::Put {
            table: table.to_owned(),
            item,
            if_absent: false,
        });
        self
    }

    /// Adds `amount` to the number `counter` names, creating it at 0.
    ///
    /// ```
    /// use dynamodb_outbox::{Counter, Effect, ItemKey};
    ///
    /// let balance = Counter {
    ///     table: "ledger".into(),
    ///     key: ItemKey { pk: "ACCOUNT#a-1".into(), sk: "BALANCE".into() },
    ///     attribute: "balance_cents".into(),
    /// };
    /// let effect = Effect::new().add(balance, 1_250);
    /// # let _ = effect;
    /// ```
    pub fn add(self, counter: Counter, amount: i64) -> Self {
        self.addition(counter, amount, None)
    }

    /// Adds `amount` to the number `counter` names, refused if the result would pass
    /// `at_most`: the event is then poison, with this write named in the reason.
    pub fn add_at_most(self, counter: Counter, amount: i64, at_most: i64) -> Self {
        self.addition(counter, amount, Some(at_most))
    }

    fn addition(mut self, counter: Counter, amount: i64, at_most: Option<i64>) -> Self {
        self.writes.push(Write::Add {
            counter,
            amount,
            at_most,
        });
        self
    }

    /// The writes, in order.
    pub(crate) fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// The effects of several events as one, when one transaction can carry them: additions to
    /// the same number become one addition of their sum, every other write must touch an item no
    /// other write touches. `None` when they do not combine.
    ///
    /// Merging never changes which events are applied: the merged addition's limit is the
    /// tightest of the conditions each event's own addition puts on the value it would have seen
    /// alone (the value before the run plus the additions before it), so the merged effect
    /// commits exactly when every event's own condition holds in turn. A run that one event's
    /// limit refuses is refused whole, and the engine applies its events one at a time.
    pub(crate) fn merge(effects: &[Effect]) -> Option<Effect> {
        let mut merged: Vec<Write> = Vec::new();
        // For each merged addition (by its index in `merged`): the sum so far, and the largest
        // value the number may hold before the run (`None`: no limit).
        let mut sums: HashMap<usize, (i64, Option<i64>)> = HashMap::new();
        let mut touched: HashSet<(String, String, String)> = HashSet::new();
        for write in effects.iter().flat_map(|e| e.writes.iter()) {
            if let Write::Add {
                counter,
                amount,
                at_most,
            } = write
            {
                let same = merged
                    .iter()
                    .position(|w| matches!(w, Write::Add { counter: c, .. } if c == counter));
                let (index, prefix_before) = match same {
                    Some(index) => (index, sums[&index].0),
                    None => {
                        if !touched.insert(write.item_key()) {
                            return None;
                        }
                        merged.push(write.clone());
                        sums.insert(merged.len() - 1, (0, None));
                        (merged.len() - 1, 0)
                    }
                };
                let prefix = prefix_before.checked_add(*amount)?;
                let (sum, room) = sums.get_mut(&index)?;
                *sum = prefix;
                if let Some(limit) = at_most {
                    // This event alone: value before the run + prefix <= limit.
                    let own = limit.checked_sub(prefix)?;
                    *room = Some(room.map_or(own, |r: i64| r.min(own)));
                }
                continue;
            }
            if !touched.insert(write.item_key()) {
                return None;
            }
            merged.push(write.clone());
        }
        for (index, (sum, room)) in sums {
            if let Some(Write::Add {
                amount, at_most, ..
            }) = merged.get_mut(index)
            {
                *amount = sum;
                // The store checks `value + amount <= at_most`, i.e. `value <= room`.
                *at_most = match room {
                    Some(room) => Some(room.checked_add(sum)?),
                    None => None,
                };
            }
        }
        (merged.len() < 100).then_some(Effect {
            writes: merged,
            record: None,
        })
    }
}

impl Write {
    /// The item a write touches: (table, pk, sk).
    fn item_key(&self) -> (String, String, String) {
        match self {
            Write::Put { table, item, .. } => {
                let text = |name: &str| match item.get(name) {
                    Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
                    _ => String::new(),
                };
                (
                    table.clone(),
                    text(crate::schema::PK),
                    text(crate::schema::SK),
                )
            }
            Write::Add { counter, .. } => (
                counter.table.clone(),
                counter.key.pk.clone(),
                counter.key.sk.clone(),
            ),
        }
    }
}
