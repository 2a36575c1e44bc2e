//! The invoices example as its template deploys it, on the embedded DynamoDB: the tables from
//! `examples/invoices/template.yaml`, invoices issued and voided through the producer's HTTP
//! handler, and each consumer's handler invoked by the local event source mapping with its
//! function's settings and filter from the same template.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use devkit::local::table_arn;
use devkit::template::Template;
use devkit::trigger::{DynamoStream, Invoke, Trigger, TriggerStats};
use dynamodb_outbox::dynamodb::DynamoConsumerStore;
use dynamodb_outbox::lambda::{BatchReport, OutboxStream};
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{Consumer, Processor, Source};
use invoices_example::ledger::{self, Ledger};
use invoices_example::notifications::{self, Notifications};
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Context, LambdaEvent};
use outbox_tests::{assert_counts, invoices_template, n, reply, request, s, InvoiceTables, Item};
use serde_json::{json, Value};

/// The example's tables as its template declares them, and its template.
struct Deployed {
    tables: InvoiceTables,
    template: Template,
}

impl std::ops::Deref for Deployed {
    type Target = InvoiceTables;
    fn deref(&self) -> &InvoiceTables {
        &self.tables
    }
}

impl Deployed {
    async fn start() -> Self {
        let tables = InvoiceTables::start(true).await;
        Self {
            tables,
            template: invoices_template(),
        }
    }

    /// `POST /invoices` with `command` through the producer's handler: its status.
    async fn call(&self, command: Value) -> i64 {
        let req = request("POST", "/invoices", Some(&command.to_string()), &[]);
        let event = LambdaEvent::new(req, Context::default());
        reply(invoices_example::api(&self.outbox, event).await.unwrap()).status
    }

    async fn issue(&self, invoice: &str, account: &str, cents: i64) -> i64 {
        let invoice = json!({"invoice_id": invoice, "account_id": account, "amount_cents": cents});
        self.call(json!({ "issue": invoice })).await
    }

    async fn void(&self, invoice: &str, account: &str, cents: i64) -> i64 {
        let invoice = json!({"invoice_id": invoice, "account_id": account, "amount_cents": cents});
        self.call(json!({ "void": invoice })).await
    }

    /// The consumer's function as `src/main.rs` serves it (the engine's handler under its batch
    /// report), over a processor of `consumer` placed where the local server's tables are.
    fn handler<C: Consumer + 'static>(
        &self,
        function: &'static str,
        consumer: C,
        table: &str,
    ) -> impl Invoke {
        let store = DynamoConsumerStore::new(self.dynamo.client.clone(), table, &self.invoices);
        // Given by the ARN the local server puts in its records, as the local environment
        // gives it: a function's own ARN is not where the local tables are.
        let source = Source::table(&table_arn(&self.invoices)).unwrap();
        let processor = Processor::new(consumer, store, source);
        let processor = Arc::new(processor);
        move |event: Event| {
            let processor = processor.clone();
            async move {
                let mut handler = BatchReport::new(function).layer(OutboxStream::new(&*processor));
                let invocation = LambdaEvent::new(event, Context::default());
                handler.call(invocation).await.map_err(|e| e.to_string())
            }
        }
    }

    /// A local event source mapping of `function` (its settings and filter from the template),
    /// reading the stream from its start.
    fn mapping<I: Invoke>(&self, function: &str, handler: I) -> Trigger<I> {
        let source = self.template.stream_source(function).unwrap();
        let stream = DynamoStream {
            client: self.stream.clone(),
            arn: self.stream_arn.clone(),
        };
        Trigger::new(source, stream, handler)
    }

    /// The ledger's function as `src/main.rs` serves it.
    fn ledger_handler(&self) -> impl Invoke {
        self.handler(ledger::NAME, Ledger::new(&self.ledger), &self.ledger)
    }

    /// `function`'s mapping, draining the stream from its start through `handler`: its counts.
    async fn drain<I: Invoke>(&self, function: &str, handler: I) -> TriggerStats {
        let mut mapping = self.mapping(function, handler);
        mapping.drain().await.unwrap().clone()
    }

    async fn balance(&self, account: &str) -> Option<i64> {
        let item = self
            .item(&self.ledger, &format!("ACCOUNT#{account}"), "BALANCE")
            .await;
        item.and_then(|i| n(&i, ledger::BALANCE))
    }

    async fn scan(&self, table: &str) -> Vec<Item> {
        devkit::local::scan_all(&self.dynamo.client, table)
            .await
            .unwrap()
    }

    async fn outbox_events(&self) -> Vec<Item> {
        let mut items = self.scan(&self.invoices).await;
        items.retain(|i| s(i, schema::ENTITY) == Some(schema::ENTITY_OUTBOX_EVENT));
        items
    }
}

#[tokio::test]
async fn invoices_from_the_api_reach_each_consumer_once_in_account_order_through_the_mapping() {
    let app = Deployed::start().await;
    assert_eq!(app.issue("a-1", "acme", 1_000).await, 200);
    assert_eq!(app.issue("a-2", "acme", 250).await, 200);
    assert_eq!(app.issue("g-1", "globex", 40).await, 200);
    assert_eq!(app.void("a-1", "acme", 1_000).await, 200);
    // A client's retries are refused as done already: nothing is issued or voided twice.
    assert_eq!(app.issue("a-2", "acme", 250).await, 409);
    assert_eq!(app.void("a-1", "acme", 1_000).await, 409);
    assert_eq!(app.outbox_events().await.len(), 4);

    // The void arrives alone, before the account's earlier events (as after a shard split):
    // the ledger holds it back, reported for retry, and applies nothing.
    let ledger_handler = app.ledger_handler();
    let shard = &app.stream.shard_ids(&app.stream_arn).await.unwrap()[0];
    let records = app
        .stream
        .read(&app.stream_arn, shard, None, 100)
        .await
        .unwrap();
    let void = records
        .iter()
        .rev()
        .find(|r| r.json["dynamodb"]["NewImage"]["event_type"]["S"] == "InvoiceVoided")
        .unwrap();
    let early: Event = serde_json::from_value(json!({"Records": [void.json]})).unwrap();
    let held = ledger_handler.invoke(early).await.unwrap();
    assert_eq!(
        held.batch_item_failures.len(),
        1,
        "the void waits for its issue"
    );
    assert_eq!(app.balance("acme").await, None);

    let stats = app.drain("LedgerFunction", ledger_handler).await;
    assert_counts!(stats, [records_delivered = 4, partial_failures = 0]);
    assert!(
        stats.filtered_out >= 4,
        "the invoice items' INSERTs never reach the ledger: {stats:?}"
    );
    assert_eq!(app.balance("acme").await, Some(250));
    assert_eq!(app.balance("globex").await, Some(40));

    // The void was routed to the ledger alone and is done; the issues wait for notifications.
    for event in app.outbox_events().await {
        let done = s(&event, schema::STATUS) == Some(schema::STATUS_PROCESSED);
        assert_eq!(
            done,
            s(&event, "event_type") == Some("InvoiceVoided"),
            "{event:?}"
        );
        assert_eq!(
            done,
            event.contains_key(schema::EXPIRES_AT),
            "never expires unprocessed"
        );
    }

    let notifications = Notifications::new(&app.notifications);
    let notifications_handler = app.handler(notifications::NAME, notifications, &app.notifications);
    let stats = app
        .drain("NotificationsFunction", notifications_handler)
        .await;
    assert_eq!(
        stats.records_delivered, 3,
        "its filter passes the issues only: {stats:?}"
    );
    let sent = |account: &'static str| {
        let app = &app;
        async move {
            let item = app
                .item(
                    &app.notifications,
                    &format!("ACCOUNT#{account}"),
                    "NOTIFICATIONS",
                )
                .await;
            item.and_then(|i| n(&i, notifications::SENT))
        }
    };
    assert_eq!(
        (sent("acme").await, sent("globex").await),
        (Some(2), Some(1))
    );
    for event in app.outbox_events().await {
        assert_eq!(
            s(&event, schema::STATUS),
            Some(schema::STATUS_PROCESSED),
            "{event:?}"
        );
        assert!(event.contains_key(schema::EXPIRES_AT) && !event.contains_key(schema::PENDING_PK));
    }

    // The mapping loses its checkpoint and delivers every batch again: all duplicates.
    let stats = app.drain("LedgerFunction", app.ledger_handler()).await;
    assert_eq!(stats.records_delivered, 4, "{stats:?}");
    assert_eq!(stats.partial_failures, 0, "{stats:?}");
    assert_eq!(app.balance("acme").await, Some(250), "applied once");
    assert_eq!(app.balance("globex").await, Some(40));
    let lines = app.scan(&app.ledger).await;
    let lines = lines
        .iter()
        .filter(|i| s(i, "sk").is_some_and(|sk| sk.starts_with("LINE#")));
    assert_eq!(lines.count(), 4, "one ledger line per event");
}

#[tokio::test]
async fn a_mistaken_invoice_is_parked_through_the_mapping_and_the_account_goes_on() {
    let app = Deployed::start().await;
    assert_eq!(app.issue("ok-1", "acme", 100).await, 200);
    // Over the ledger's limit: taken for a mistake, poison (an order no retry changes).
    assert_eq!(app.issue("huge", "acme", 500_000_000).await, 200);
    assert_eq!(app.issue("ok-2", "acme", 20).await, 200);

    let stats = app.drain("LedgerFunction", app.ledger_handler()).await;
    assert_counts!(stats, [partial_failures = 0, batches_to_on_failure = 0]);
    assert_eq!(
        app.balance("acme").await,
        Some(120),
        "the later invoice was not held back"
    );
    let parked: Vec<Item> = app
        .scan(&app.ledger)
        .await
        .into_iter()
        .filter(|i| s(i, "pk") == Some(schema::parked_pk(ledger::NAME).as_str()))
        .collect();
    assert_eq!(
        parked.len(),
        1,
        "the mistaken invoice waits for an operator: {parked:?}"
    );
    let reason = s(&parked[0], schema::PARKED_REASON).unwrap_or_default();
    assert!(reason.contains("500000000 cents"), "{reason}");
}
