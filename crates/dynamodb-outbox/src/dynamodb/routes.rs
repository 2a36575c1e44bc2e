//! Which consumers take each event type, and the stream filter each consumer's mapping needs.

use std::collections::BTreeMap;

use crate::consumer::Consumer;
use crate::schema;

/// Which consumers take each event type: the routing of an outbox, in one place. The writer
/// records it on each event, so an event waits for exactly these consumers, and each consumer
/// knows which earlier event of the key it must have applied first.
///
/// Built from the consumers themselves, a consumer's name and the types it takes are written
/// once, in its own `impl Consumer`:
///
/// ```
/// # use dynamodb_outbox::{Consumer, Effect, Envelope, HandlerError, Takes};
/// # struct Ledger;
/// # impl Consumer for Ledger {
/// #     type Payload = serde_json::Value;
/// #     fn name(&self) -> &str { "ledger" }
/// #     fn takes(&self) -> Vec<Takes> {
/// #         vec![Takes::versions("InvoiceIssued", 1..=1), Takes::versions("InvoiceVoided", 1..=1)]
/// #     }
/// #     async fn effect(&self, _: &Envelope<Self::Payload>) -> Result<Effect, HandlerError> {
/// #         Ok(Effect::new())
/// #     }
/// # }
/// use dynamodb_outbox::dynamodb::Routes;
/// let routes = Routes::new().consumer(&Ledger);
/// assert_eq!(routes.consumers_of("InvoiceVoided"), ["ledger"]);
/// // A producer that cannot link its consumers names them:
/// let routes = Routes::new().route("InvoiceIssued", &["ledger", "notifications"]);
/// assert_eq!(routes.consumers_of("InvoiceIssued").len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(BTreeMap<String, Vec<String>>);

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `event_type` to `consumers`, replacing its earlier route. A consumer named more
    /// than once is routed once: an event that listed it twice would be its own predecessor and
    /// wait forever.
    pub fn route(mut self, event_type: &str, consumers: &[&str]) -> Self {
        let mut distinct: Vec<String> = Vec::with_capacity(consumers.len());
        for consumer in consumers {
            if !distinct.iter().any(|c| c == consumer) {
                distinct.push((*consumer).to_owned());
            }
        }
        self.0.insert(event_type.to_owned(), distinct);
        self
    }

    /// Routes every event type `consumer` takes to it (by its `name()`), besides the consumers
    /// those types already have.
    pub fn consumer<C: Consumer>(mut self, consumer: &C) -> Self {
        let name = consumer.name();
        for takes in consumer.takes() {
            let route = self.0.entry(takes.event_type).or_default();
            if !route.iter().any(|c| c == name) {
                route.push(name.to_owned());
            }
        }
        self
    }

    /// The consumers of `event_type` (empty when it has no route).
    pub fn consumers_of(&self, event_type: &str) -> &[String] {
        self.0.get(event_type).map_or(&[], Vec::as_slice)
    }

    /// Every consumer some event type is routed to, each once, in name order: the consumers
    /// that each need a mapping on the outbox table's stream.
    pub fn consumers(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.0.values().flatten().map(String::as_str).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The `FilterCriteria` pattern (JSON) of `consumer`'s event source mapping on the outbox
    /// table's stream: the outbox INSERTs routed to it, which the writer marks with the
    /// consumer's predecessor under `outbox_after`. Without it the mapping would also invoke the
    /// consumer with the table's other changes and other consumers' events, each a skip that
    /// costs an invocation.
    pub fn filter_pattern(consumer: &str) -> String {
        // serde_json quotes and escapes the name as JSON needs.
        let name = serde_json::Value::from(consumer).to_string();
        format!(
            r#"{{"eventName": ["INSERT"], "dynamodb": {{"NewImage": {{"{entity}": {{"S": ["{outbox_event}"]}}, "{after}": {{"M": {{{name}: {{"N": [{{"exists": true}}]}}}}}}}}}}}}"#,
            entity = schema::ENTITY,
            outbox_event = schema::ENTITY_OUTBOX_EVENT,
            after = schema::AFTER,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Effect, Envelope, HandlerError, Takes};

    struct Named(&'static str, &'static [&'static str]);

    impl Consumer for Named {
        type Payload = serde_json::Value;
        fn name(&self) -> &str {
            self.0
        }
        fn takes(&self) -> Vec<Takes> {
            self.1.iter().map(|t| Takes::versions(t, 1..=2)).collect()
        }
        async fn effect(&self, _: &Envelope<Self::Payload>) -> Result<Effect, HandlerError> {
            Ok(Effect::new())
        }
    }

    #[test]
    fn routes_from_consumers_equal_the_routes_written_by_hand() {
        let ledger = Named("ledger", &["Issued", "Voided"]);
        let notifications = Named("notifications", &["Issued", "Issued"]);
        let derived = Routes::new().consumer(&ledger).consumer(&notifications);
        let written = Routes::new()
            .route("Issued", &["ledger", "notifications"])
            .route("Voided", &["ledger"]);
        assert_eq!(derived, written);
        assert_eq!(derived.consumers(), ["ledger", "notifications"]);
    }

    #[test]
    fn the_filter_pattern_is_json_naming_the_consumer_under_outbox_after() {
        let pattern: serde_json::Value =
            serde_json::from_str(&Routes::filter_pattern("a \"quoted\" name")).unwrap();
        assert_eq!(
            pattern,
            serde_json::json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {
                "entity": {"S": ["OutboxEvent"]},
                "outbox_after": {"M": {"a \"quoted\" name": {"N": [{"exists": true}]}}}
            }}})
        );
    }
}
