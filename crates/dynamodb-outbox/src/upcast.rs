//! Events that evolve: a consumer handles one schema version of an event and declares how each
//! older version becomes the next, so events written before a change still apply after it.
//!
//! The chain runs on the payload as JSON, after the engine has read the event and before the
//! consumer decodes it: the stored event is never rewritten (a parked event keeps its version,
//! and a redrive upcasts it again).

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_dynamo::{AttributeValue, Item};
use serde_json::Value;

use crate::consumer::{BoxError, HandlerError, Takes};
use crate::delivery::{self, Header};
use crate::envelope::Envelope;
use crate::schema;

type Lift = dyn Fn(Value) -> Result<Value, BoxError> + Send + Sync;

/// One step of a chain: the payload of version `from` as the payload of version `from + 1`.
#[derive(Clone)]
pub(crate) struct Upcaster {
    pub(crate) from: u32,
    lift: Arc<Lift>,
}

impl fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Upcaster(v{} → v{})",
            self.from,
            self.from.saturating_add(1)
        )
    }
}

// Functions do not compare: two chains are the same when they lift the same versions.
impl PartialEq for Upcaster {
    fn eq(&self, other: &Self) -> bool {
        self.from == other.from
    }
}

impl Eq for Upcaster {}

impl Takes {
    /// Also takes version `from` of the event, turned into version `from + 1` by `upcaster`, a
    /// pure function of the payload as JSON, before the consumer decodes it. Chained, the
    /// upcasters bring every older version up to the lowest one the consumer handles
    /// (`versions`' start): the consumer then takes every version from the oldest it can lift
    /// to the newest it handles. Versions above that stay not taken (skipped).
    ///
    /// An upcaster's `Err` makes the event poison, with the reason (parked or waited on, as the
    /// consumer's [`PoisonPolicy`](crate::PoisonPolicy) says). The event is stored as it was
    /// written: only the consumer sees it upcast, with the `schema_version` it was brought to.
    ///
    /// A chain with a gap (`v1 → v2` for a consumer handling `v3`, with nothing from `v2`), two
    /// upcasters from one version, or one from a version the consumer handles or above, is
    /// refused when the consumer's [`Processor`](crate::Processor) is built.
    ///
    /// ```
    /// use dynamodb_outbox::dynamodb::Routes;
    /// use dynamodb_outbox::memory::{MemoryOutbox, MemoryStore};
    /// use dynamodb_outbox::{Consumer, Counter, Effect, Envelope, Event, HandlerError, ItemKey};
    /// use dynamodb_outbox::{Processor, Source, Takes};
    /// use serde::{Deserialize, Serialize};
    ///
    /// // Version 2: `total_cents` renamed `amount_cents`, `currency` added.
    /// #[derive(Serialize, Deserialize)]
    /// struct InvoiceIssued { invoice_id: String, account_id: String, amount_cents: i64, currency: String }
    /// # impl Event for InvoiceIssued {
    /// #     const EVENT_TYPE: &'static str = "InvoiceIssued";
    /// #     const SCHEMA_VERSION: u32 = 2;
    /// #     const AGGREGATE_TYPE: &'static str = "Invoice";
    /// #     fn aggregate_id(&self) -> String { self.invoice_id.clone() }
    /// # }
    ///
    /// struct Ledger;
    /// impl Consumer for Ledger {
    ///     type Payload = InvoiceIssued;
    ///     fn name(&self) -> &str { "ledger" }
    ///     fn takes(&self) -> Vec<Takes> {
    ///         vec![Takes::versions("InvoiceIssued", 2..=2).upcast(1, |mut payload| {
    ///             let fields = payload.as_object_mut().ok_or("the payload is not an object")?;
    ///             let amount = fields.remove("total_cents").ok_or("v1 carries total_cents")?;
    ///             fields.insert("amount_cents".into(), amount);
    ///             // Every invoice of version 1 was in euros.
    ///             fields.insert("currency".into(), "EUR".into());
    ///             Ok(payload)
    ///         })]
    ///     }
    ///     async fn effect(&self, e: &Envelope<InvoiceIssued>) -> Result<Effect, HandlerError> {
    ///         let balance = Counter {
    ///             table: "ledger".into(),
    ///             key: ItemKey { pk: format!("ACCOUNT#{}", e.payload.account_id), sk: "BALANCE".into() },
    ///             attribute: "cents".into(),
    ///         };
    ///         Ok(Effect::new().add(balance, e.payload.amount_cents))
    ///     }
    /// }
    ///
    /// // What a producer wrote before the change.
    /// #[derive(Serialize, Deserialize)]
    /// struct InvoiceIssuedV1 { invoice_id: String, account_id: String, total_cents: i64 }
    /// # impl Event for InvoiceIssuedV1 {
    /// #     const EVENT_TYPE: &'static str = "InvoiceIssued";
    /// #     const SCHEMA_VERSION: u32 = 1;
    /// #     const AGGREGATE_TYPE: &'static str = "Invoice";
    /// #     fn aggregate_id(&self) -> String { self.invoice_id.clone() }
    /// # }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new("ledger");
    /// let mut outbox = MemoryOutbox::new(Routes::new().consumer(&Ledger));
    /// let old = InvoiceIssuedV1 { invoice_id: "i-1".into(), account_id: "a".into(), total_cents: 900 };
    /// let item = outbox.write(&Envelope::new(old), &store).unwrap();
    /// let processor = Processor::new(Ledger, store.clone(), Source::table("outbox").unwrap());
    /// assert_eq!(processor.process_items(vec![item]).await.applied, 1);
    /// use dynamodb_outbox::testing::Inspect;
    /// assert_eq!(store.number("ledger", "ACCOUNT#a", "BALANCE", "cents").await.unwrap(), 900);
    /// # });
    /// ```
    pub fn upcast<F>(mut self, from: u32, upcaster: F) -> Self
    where
        F: Fn(Value) -> Result<Value, BoxError> + Send + Sync + 'static,
    {
        self.upcasters.push(Upcaster {
            from,
            lift: Arc::new(upcaster),
        });
        self
    }

    /// Why this chain cannot be built: a gap, two upcasters from one version, or one from a
    /// version the consumer handles as it is or above.
    pub(crate) fn check(&self) -> Result<(), String> {
        let (start, end) = (*self.versions.start(), *self.versions.end());
        let what = &self.event_type;
        let mut froms: Vec<u32> = self.upcasters.iter().map(|u| u.from).collect();
        froms.sort_unstable();
        if let Some(twice) = froms.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "{what} has two upcasters from v{}: keep one",
                twice[0]
            ));
        }
        if start > end && !froms.is_empty() {
            return Err(format!(
                "{what} is upcast, but the versions it takes ({start}..={end}) are empty: name the version the upcasters lead to"
            ));
        }
        if let Some(high) = froms.iter().find(|&&from| from >= start) {
            return Err(format!(
                "{what} has an upcaster from v{high}, but v{start} and above are taken as they are: an upcaster lifts a version below v{start}"
            ));
        }
        let Some(&lowest) = froms.first() else {
            return Ok(());
        };
        match (lowest..start).find(|v| !froms.contains(v)) {
            Some(gap) => Err(format!(
                "{what}'s upcasters from v{lowest} do not reach v{start}, the lowest version taken: nothing upcasts v{gap} to v{}; add an upcaster from v{gap}",
                gap + 1
            )),
            None => Ok(()),
        }
    }

    /// The lowest version this consumer takes: the oldest its upcasters lift, step by step, to
    /// the lowest it handles as it is (a chain with a gap reaches no lower than the gap).
    fn lowest(&self) -> u32 {
        let mut lowest = *self.versions.start();
        while let Some(below) = lowest.checked_sub(1) {
            if !self.upcasters.iter().any(|u| u.from == below) {
                break;
            }
            lowest = below;
        }
        lowest
    }

    /// Whether this takes `event_type` in `version`, as it is or through upcasters.
    pub(crate) fn reaches(&self, event_type: Option<&str>, version: Option<u32>) -> bool {
        Some(self.event_type.as_str()) == event_type
            && version.is_some_and(|v| (self.lowest()..=*self.versions.end()).contains(&v))
    }

    /// Whether this takes `event_type` in `version` as it is, without upcasting.
    pub(crate) fn handles(&self, event_type: Option<&str>, version: Option<u32>) -> bool {
        Some(self.event_type.as_str()) == event_type
            && version.is_some_and(|v| self.versions.contains(&v))
    }

    /// The same versions, taken as they are: for a consumer that passes events on unread (a
    /// relay publishes an event as it was written).
    #[cfg(any(feature = "relay", test))]
    pub(crate) fn into_as_written(self) -> Self {
        Self {
            versions: self.lowest()..=*self.versions.end(),
            event_type: self.event_type,
            upcasters: Vec::new(),
        }
    }

    /// `payload` of `version` brought up to the lowest version handled, step by step.
    fn lift(&self, version: u32, mut payload: Value) -> Result<Value, String> {
        for from in version..*self.versions.start() {
            let upcaster = self
                .upcasters
                .iter()
                .find(|u| u.from == from)
                .ok_or_else(|| format!("nothing upcasts {} v{from}", self.event_type))?;
            payload = (upcaster.lift)(payload).map_err(|e| {
                format!(
                    "upcasting {} v{from} to v{} failed: {}",
                    self.event_type,
                    from + 1,
                    HandlerError::poison(e).reason()
                )
            })?;
        }
        Ok(payload)
    }
}

/// Whether the consumer takes the event's type in its schema version, through upcasters or not.
pub(crate) fn taken(takes: &[Takes], header: &Header) -> bool {
    takes
        .iter()
        .any(|t| t.reaches(header.event_type.as_deref(), header.schema_version))
}

/// Decodes the envelope the writer stored as the consumer takes it: a version older than the
/// ones the consumer handles is upcast first (its payload, and its `schema_version` set to the
/// version it was brought to). An upcast that fails is an `Err` naming the event and the step.
pub(crate) fn decode<P: DeserializeOwned>(
    mut item: Item,
    header: &Header,
    takes: &[Takes],
) -> Result<Envelope<P>, String> {
    let (event_type, version) = (header.event_type.as_deref(), header.schema_version);
    // A version some `Takes` handles as it is is never lifted by another.
    let handled = takes.iter().any(|t| t.handles(event_type, version));
    let lifting = takes
        .iter()
        .find(|t| !handled && t.reaches(event_type, version));
    if let (Some(takes), Some(version)) = (lifting, version) {
        let name = header.name();
        let payload = match item.remove(schema::PAYLOAD) {
            Some(payload) => serde_dynamo::from_attribute_value::<_, Value>(payload)
                .map_err(|e| format!("the payload of event {name} does not read as JSON: {e}"))?,
            None => return Err(format!("event {name} has no {}", schema::PAYLOAD)),
        };
        let lifted = takes
            .lift(version, payload)
            .map_err(|reason| format!("event {name}: {reason}"))?;
        let lifted: AttributeValue = serde_dynamo::to_attribute_value(lifted)
            .map_err(|e| format!("event {name}: the upcast payload does not encode: {e}"))?;
        item.insert(schema::PAYLOAD.to_owned(), lifted);
        item.insert(
            schema::SCHEMA_VERSION.to_owned(),
            AttributeValue::N(takes.versions.start().to_string()),
        );
    }
    delivery::decode(item, header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::{Consumer, Effect, HandlerError, Processor, Source};

    fn same(payload: Value) -> Result<Value, BoxError> {
        Ok(payload)
    }

    fn invoices(versions: std::ops::RangeInclusive<u32>) -> Takes {
        Takes::versions("InvoiceIssued", versions)
    }

    struct Ledger(Takes);

    impl Consumer for Ledger {
        type Payload = Value;
        fn name(&self) -> &str {
            "ledger"
        }
        fn takes(&self) -> Vec<Takes> {
            vec![self.0.clone()]
        }
        async fn effect(&self, _: &Envelope<Value>) -> Result<Effect, HandlerError> {
            Ok(Effect::new())
        }
    }

    #[test]
    fn a_chain_reaches_from_its_oldest_version_to_the_newest_handled() {
        let takes = invoices(3..=4).upcast(1, same).upcast(2, same);
        assert_eq!(takes.check(), Ok(()));
        let reached: Vec<u32> = (0..=6)
            .filter(|v| takes.reaches(Some("InvoiceIssued"), Some(*v)))
            .collect();
        assert_eq!(
            reached,
            [1, 2, 3, 4],
            "versions above the handled stay not taken"
        );
        assert!(!takes.reaches(Some("InvoiceVoided"), Some(3)));
        assert!(!takes.reaches(Some("InvoiceIssued"), None));
        assert!(takes.handles(Some("InvoiceIssued"), Some(3)));
        assert!(!takes.handles(Some("InvoiceIssued"), Some(2)));
    }

    #[test]
    fn a_chain_with_a_gap_reaches_no_lower_than_the_gap_and_is_refused() {
        let takes = invoices(3..=3).upcast(1, same);
        let why = takes.check().unwrap_err();
        assert!(
            why.contains("nothing upcasts v2 to v3; add an upcaster from v2"),
            "{why}"
        );
        assert!(!takes.reaches(Some("InvoiceIssued"), Some(1)));
        assert!(takes.reaches(Some("InvoiceIssued"), Some(3)));
    }

    #[test]
    #[should_panic(expected = "consumer \"ledger\" cannot be built: InvoiceIssued's upcasters")]
    fn a_processor_is_not_built_on_a_chain_with_a_gap() {
        let takes = invoices(4..=4).upcast(3, same).upcast(1, same);
        let _ = Processor::new(
            Ledger(takes),
            MemoryStore::new("ledger"),
            Source::table("outbox").unwrap(),
        );
    }

    #[test]
    fn two_upcasters_from_one_version_or_one_from_a_handled_version_are_refused() {
        let twice = invoices(2..=2).upcast(1, same).upcast(1, same);
        assert!(twice.check().unwrap_err().contains("two upcasters from v1"));
        let handled = invoices(1..=2).upcast(1, same);
        assert!(handled
            .check()
            .unwrap_err()
            .contains("an upcaster from v1, but v1 and above are taken as they are"));
        let above = invoices(1..=2).upcast(5, same);
        assert!(above.check().is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let empty = invoices(3..=2).upcast(2, same);
        assert!(empty.check().unwrap_err().contains("are empty"));
    }

    #[test]
    fn taken_as_written_keeps_the_versions_and_drops_the_upcasters() {
        let takes = invoices(3..=3)
            .upcast(2, same)
            .upcast(1, same)
            .into_as_written();
        assert_eq!(takes, invoices(1..=3));
        assert!(takes.upcasters.is_empty());
    }

    #[test]
    fn an_upcast_payload_is_decoded_with_the_version_it_was_brought_to() {
        let takes = [invoices(2..=2).upcast(1, |mut payload| {
            payload["amount_cents"] = payload["total_cents"].take();
            Ok(payload)
        })];
        let v1 = Envelope {
            event_id: "e-1".into(),
            event_type: "InvoiceIssued".into(),
            schema_version: 1,
            aggregate_type: "Invoice".into(),
            aggregate_id: "i-1".into(),
            ordering_key: "a".into(),
            occurred_at: crate::envelope::now_rfc3339(),
            trace_context: None,
            payload: serde_json::json!({"total_cents": 5}),
        };
        let item: Item = serde_dynamo::to_item(&v1).unwrap();
        let header = Header::peek(&item);
        let decoded: Envelope<Value> = decode(item.clone(), &header, &takes).unwrap();
        assert_eq!(decoded.schema_version, 2);
        assert_eq!(decoded.payload["amount_cents"], 5);
        let failing = [invoices(2..=2).upcast(1, |_| Err("no amount".into()))];
        let why = decode::<Value>(item, &header, &failing).unwrap_err();
        assert_eq!(
            why,
            "event e-1: upcasting InvoiceIssued v1 to v2 failed: no amount"
        );
    }
}
