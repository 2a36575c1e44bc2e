//! The outbox engine (`crates/dynamodb-outbox`) end to end on the local DynamoDB, through the
//! invoice example: the producer's transaction, the real stream, two consumers with their own
//! progress, per-key order across parallel batches, retries and the sweeper.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use devkit::local::create_table;
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Outbox, PendingEvents};
use dynamodb_outbox::testing::Parked;
use dynamodb_outbox::testing::StoreOps;
use dynamodb_outbox::testing::{schema, CrashPoint, Crashing, Recording};
use dynamodb_outbox::{BatchOutcome, Consumer, ConsumerStore, Home, Processor, Source};
use invoices_example::invoices::{self, InvoiceIssued, InvoiceVoided};
use invoices_example::ledger::{self, Ledger};
use invoices_example::notifications::{self, Notifications};
use outbox_tests::{assert_counts, invoices_table, n, s, InvoiceTables, Item};

/// The invoices example's tables without the notifications table (a test creates it when it
/// needs it).
struct Invoicing(InvoiceTables);

impl std::ops::Deref for Invoicing {
    type Target = InvoiceTables;
    fn deref(&self) -> &InvoiceTables {
        &self.0
    }
}

/// `n` invoices of 100 cents through `outbox`, each on an account of its own.
async fn issue_on_distinct_accounts(outbox: &Outbox, n: u64) {
    for i in 0..n {
        let invoice = issued(&format!("inv-{i}"), &format!("acct-{i}"), 100);
        invoices::issue(outbox, invoice).await.unwrap();
    }
}

impl Invoicing {
    async fn start() -> Self {
        Self(InvoiceTables::start(false).await)
    }

    /// Where the local server says its tables are: what a consumer configured by a table's
    /// name is in (a function learns it from the ARN it is invoked by).
    fn home(&self) -> Home {
        Home::of_arn(&self.stream_arn).unwrap()
    }

    fn store(&self, table: &str) -> DynamoConsumerStore {
        DynamoConsumerStore::new(self.dynamo.client.clone(), table, &self.invoices)
    }

    fn ledger(&self, store: Recorded) -> Processor<Ledger, Recorded> {
        self.consumer(Ledger::new(&self.ledger), store)
            .concurrency(4)
    }

    /// `consumer` of the invoices table's stream, committing through `store`.
    fn consumer<C: Consumer, S: ConsumerStore>(&self, consumer: C, store: S) -> Processor<C, S> {
        Processor::new(consumer, store, source(&self.invoices)).home(self.home())
    }

    async fn issue(&self, invoice: &str, account: &str, cents: i64) {
        invoices::issue(&self.outbox, issued(invoice, account, cents))
            .await
            .unwrap();
    }

    async fn void(&self, invoice: &str, account: &str, cents: i64) {
        let voided = InvoiceVoided {
            invoice_id: invoice.into(),
            account_id: account.into(),
            amount_cents: cents,
        };
        invoices::void(&self.outbox, voided).await.unwrap();
    }

    /// An account's balance in the ledger.
    async fn balance(&self, account: &str) -> Option<i64> {
        self.item(&self.ledger, &format!("ACCOUNT#{account}"), "BALANCE")
            .await
            .and_then(|i| n(&i, ledger::BALANCE))
    }

    /// What the ledger consumer parked.
    async fn parked_by_ledger(&self) -> Vec<Parked> {
        self.store(&self.ledger)
            .parked(ledger::NAME, 10)
            .await
            .unwrap()
    }

    /// The requests `consumer`, its store behind `proxy`, sends to apply every one of `records`.
    async fn requests_for<C: Consumer>(
        &self,
        proxy: &devkit::proxy::FaultProxy,
        consumer: C,
        table: &str,
        records: &[EventRecord],
    ) -> std::collections::BTreeMap<String, u64> {
        let client = self.dynamo.client_via(&proxy.endpoint).await;
        let store = DynamoConsumerStore::new(client, table, &self.invoices);
        proxy.reset_stats();
        let processor = self.consumer(consumer, store);
        assert_eq!(
            processor.process_stream(records).await.applied,
            records.len(),
            "{} applies every event",
            std::any::type_name::<C>()
        );
        proxy.stats().requests
    }

    /// The outbox INSERT records of the stream so far, in stream order: what a mapping with
    /// the engine's filter (`eventName` INSERT, `entity` OutboxEvent) delivers.
    async fn records(&self) -> Vec<EventRecord> {
        let mut all = self.stream_records(&self.stream_arn).await;
        all.retain(|r| {
            r.event_name == "INSERT"
                && matches!(r.change.new_image.get(schema::ENTITY),
                    Some(serde_dynamo::AttributeValue::S(e)) if e == schema::ENTITY_OUTBOX_EVENT)
        });
        all
    }

    /// Every record of a table's stream so far, in stream order.
    async fn stream_records(&self, stream_arn: &str) -> Vec<EventRecord> {
        let from_start = &mut HashMap::new();
        let all = self.stream.read_all(stream_arn, from_start).await.unwrap();
        all.iter().map(|r| r.to_event_record().unwrap()).collect()
    }

    async fn outbox_events(&self) -> Vec<Item> {
        devkit::local::scan_all(&self.dynamo.client, &self.invoices)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| s(i, schema::ENTITY) == Some(schema::ENTITY_OUTBOX_EVENT))
            .collect()
    }
}

/// The real DynamoDB consumer store, recording every commit that applied.
type Recorded = Recording<DynamoConsumerStore>;

/// The sequences applied on `key`, in the order the database committed them. Concurrent tasks
/// record in the order their answers arrive, which is not always the order the database
/// committed in; the database's order is the chain the records form, because each commit was
/// conditional on the progress it starts from: the commits chained from progress 0, each
/// starting where the one before it ended. A commit that skipped, repeated or reordered an
/// event breaks the chain (and fails here). Every invoice event reaches the ledger, so a commit
/// from `after` to `sequence` applied each sequence in between.
fn order_of(recorded: &Recorded, key: &str) -> Vec<u64> {
    let mut spans: Vec<(u64, u64)> = recorded
        .applied()
        .iter()
        .filter(|c| c.ordering_key == key)
        .map(|c| (c.after, c.sequence))
        .collect();
    spans.sort_unstable();
    let mut order = Vec::new();
    let mut progress = 0;
    for (from, to) in spans {
        assert_eq!(
            from, progress,
            "{key}: a commit did not start where the last ended"
        );
        order.extend(from + 1..=to);
        progress = to;
    }
    order
}

fn issued(invoice: &str, account: &str, cents: i64) -> InvoiceIssued {
    InvoiceIssued {
        invoice_id: invoice.into(),
        account_id: account.into(),
        amount_cents: cents,
    }
}

#[tokio::test]
async fn two_consumers_keep_their_own_progress_and_an_event_expires_only_after_both() {
    let app = Invoicing::start().await;
    app.issue("i-1", "acme", 1_000).await;
    app.issue("i-2", "acme", 250).await;
    app.void("i-1", "acme", 1_000).await;
    app.issue("i-3", "globex", 40).await;
    let records = app.records().await;

    let ledger = app.ledger(Recording::new(app.store(&app.ledger)));
    let applied = ledger.process_stream(&records).await;
    assert_counts!(applied, [applied = 4, failures = 0]);

    // The notifications consumer's table does not exist yet: every one of its commits fails.
    let notifications = app.consumer(
        Notifications::new(&app.notifications),
        app.store(&app.notifications),
    );
    let failing = notifications.process_stream(&records).await;
    assert_eq!(failing.applied, 0, "{failing:?}");
    assert!(
        failing.failed >= 1 && failing.failures.len() == 3,
        "{failing:?}"
    );

    assert_eq!(app.balance("acme").await, Some(250), "the ledger went on");
    assert_eq!(app.balance("globex").await, Some(40));
    for event in app.outbox_events().await {
        let waiting = event
            .get(schema::WAITING_CONSUMERS)
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        match s(&event, "event_type") {
            Some(InvoiceVoided::TYPE) => {
                assert_eq!(s(&event, schema::STATUS), Some(schema::STATUS_PROCESSED));
                assert!(
                    event.contains_key(schema::EXPIRES_AT),
                    "its only consumer is done"
                );
            }
            _ => {
                assert_eq!(waiting, vec![notifications::NAME.to_owned()], "{event:?}");
                assert_eq!(s(&event, schema::STATUS), Some(schema::STATUS_PENDING));
                assert!(
                    !event.contains_key(schema::EXPIRES_AT),
                    "never expires unprocessed"
                );
            }
        }
    }

    app.create_notifications_table().await;
    let retried = notifications.process_stream(&records).await;
    assert_counts!(
        retried,
        [applied = 3, ignored = 1, failures = 0],
        "the void was never routed to notifications"
    );
    let sent = app
        .item(&app.notifications, "ACCOUNT#acme", "NOTIFICATIONS")
        .await
        .and_then(|i| n(&i, notifications::SENT));
    assert_eq!(sent, Some(2));
    for event in app.outbox_events().await {
        assert_eq!(s(&event, schema::STATUS), Some(schema::STATUS_PROCESSED));
        assert!(event.contains_key(schema::EXPIRES_AT));
        assert!(
            !event.contains_key(schema::PENDING_PK),
            "out of the pending index"
        );
    }
    let again = ledger.process_stream(&records).await;
    assert_eq!(
        again.duplicates, 4,
        "redelivery applies nothing twice: {again:?}"
    );
}

#[tokio::test]
async fn per_key_order_holds_across_parallel_batches_retries_and_the_sweeper() {
    let app = Invoicing::start().await;
    let accounts = ["a", "b", "c"];
    let mut expected: HashMap<&str, i64> = HashMap::new();
    for i in 0..24 {
        let account = accounts[i % 3];
        let cents = 10 + i as i64;
        app.issue(&format!("inv-{i}"), account, cents).await;
        *expected.entry(account).or_default() += cents;
    }
    let records = app.records().await;
    assert_eq!(records.len(), 24, "an outbox event per invoice");

    let recorder = Recording::new(app.store(&app.ledger));
    let ledger = app.ledger(recorder.clone());
    // Two "shards", each taking every other record in reverse: each key's events are split
    // between them and come in the wrong order, as they could after a partition split.
    let odd: Vec<EventRecord> = records.iter().skip(1).step_by(2).rev().cloned().collect();
    let even: Vec<EventRecord> = records.iter().step_by(2).rev().cloned().collect();
    let mut waited = 0;
    // The first four records of the "even" shard (its latest events) never get through, as if
    // the retry cap had dropped them: only the sweeper can apply them.
    let mut shards = [odd, even[4..].to_vec()];
    for _round in 0..30 {
        let (x, y) = tokio::join!(
            ledger.process_stream(&shards[0]),
            ledger.process_stream(&shards[1])
        );
        waited += x.waiting + y.waiting;
        let retry = |outcome: &BatchOutcome, shard: &[EventRecord]| -> Vec<EventRecord> {
            shard
                .iter()
                .filter(|r| {
                    outcome
                        .failures
                        .contains(r.change.sequence_number.as_ref().unwrap())
                })
                .cloned()
                .collect()
        };
        shards = [retry(&x, &shards[0]), retry(&y, &shards[1])];
        if shards.iter().all(Vec::is_empty) {
            break;
        }
    }
    assert!(waited > 0, "events did arrive before their predecessors");

    // The sweeper finds what the stream dropped and applies it through the same path.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let pending = PendingEvents::new(app.dynamo.client.clone(), &app.invoices);
    let mut redriven = 0;
    for _run in 0..5 {
        let items = pending.waiting_for(ledger::NAME, &now, 100).await.unwrap();
        if items.is_empty() {
            break;
        }
        redriven += ledger.process_items(items).await.applied;
    }
    assert!(
        redriven >= 4,
        "the sweeper applied what the stream dropped: {redriven}"
    );
    assert!(pending
        .waiting_for(ledger::NAME, &now, 100)
        .await
        .unwrap()
        .is_empty());

    let parked = devkit::local::scan_all(&app.dynamo.client, &app.ledger)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| s(i, "pk") == Some(schema::parked_pk(ledger::NAME).as_str()))
        .count();
    assert_eq!(parked, 0, "nothing parked: every event is a good one");
    for account in accounts {
        assert_eq!(
            order_of(&recorder, account),
            (1..=8).collect::<Vec<u64>>(),
            "{account}'s events applied once each, in write order"
        );
        assert_eq!(app.balance(account).await, Some(expected[account]));
    }
}

/// What the sequence design costs, counted at a proxy in front of the local DynamoDB: requests
/// per event for the producer and for each consumer, and actions per transaction.
#[tokio::test]
async fn the_engines_requests_per_event_are_counted_at_the_proxy() {
    use devkit::proxy::{FaultPlan, FaultProxy};
    let app = Invoicing::start().await;
    app.create_notifications_table().await;
    let proxy = FaultProxy::start(&app.dynamo.endpoint, FaultPlan::none())
        .await
        .unwrap();
    let client = app.dynamo.client_via(&proxy.endpoint).await;
    let outbox = Outbox::new(client.clone(), &app.invoices, invoices_example::routes());
    let invoices: u64 = 20;
    issue_on_distinct_accounts(&outbox, invoices).await;
    let producer = proxy.stats().requests;
    assert_eq!(
        producer.get("TransactWriteItems"),
        Some(&invoices),
        "one transaction per event: the invoice, the outbox item, the counter"
    );
    assert_eq!(
        producer.values().sum::<u64>(),
        invoices,
        "no counter read: a key's first event expects no counter yet"
    );

    let records = app.records().await;
    assert_eq!(records.len(), invoices as usize);
    let first = app
        .requests_for(&proxy, Ledger::new(&app.ledger), &app.ledger, &records)
        .await;
    let last = app
        .requests_for(
            &proxy,
            Notifications::new(&app.notifications),
            &app.notifications,
            &records,
        )
        .await;
    for (consumer, requests, updates, why) in [
        (
            "first consumer",
            &first,
            2 * invoices,
            "a try at finishing the event alone, refused (the other consumer waits), then leaving the waiting set",
        ),
        (
            "last consumer",
            &last,
            invoices,
            "the last consumer leaves the waiting set, takes the item out of the pending index and sets its TTL in one write",
        ),
    ] {
        assert_eq!(
            requests.get("TransactWriteItems"),
            Some(&invoices),
            "{consumer}: effect + progress, one transaction"
        );
        assert_eq!(requests.get("UpdateItem"), Some(&updates), "{consumer}: {why}");
    }
    println!(
        "engine cost per event: producer {producer:?} / {invoices}; first consumer {first:?} / {invoices}; last consumer {last:?} / {invoices}"
    );
}

/// An event's only consumer makes one request per event, counted at the proxy: its transaction
/// holds the effect, the progress and the outbox item's finish (TTL set, out of the pending
/// index), so nothing follows it.
#[tokio::test]
async fn an_events_only_consumer_makes_one_request_per_event() {
    use devkit::proxy::{FaultPlan, FaultProxy};
    use dynamodb_outbox::dynamodb::Routes;
    let app = Invoicing::start().await;
    let proxy = FaultProxy::start(&app.dynamo.endpoint, FaultPlan::none())
        .await
        .unwrap();
    let routes = Routes::new().consumer(&Ledger::new(""));
    let outbox = Outbox::new(app.dynamo.client.clone(), &app.invoices, routes);
    let invoices: u64 = 20;
    issue_on_distinct_accounts(&outbox, invoices).await;
    let records = app.records().await;
    assert_eq!(records.len(), invoices as usize);
    let first = app
        .requests_for(&proxy, Ledger::new(&app.ledger), &app.ledger, &records)
        .await;
    assert_eq!(
        first,
        [("TransactWriteItems".to_owned(), invoices)].into(),
        "one transaction per event, nothing after it"
    );
    for record in &records {
        let header = dynamodb_outbox::testing::Header::peek(&record.change.new_image);
        let item = app
            .item(&app.invoices, &header.pk, &header.sk)
            .await
            .unwrap();
        assert!(
            item.contains_key(schema::EXPIRES_AT) && !item.contains_key(schema::PENDING_PK),
            "finished in the consumer's transaction: {item:?}"
        );
    }
}

#[tokio::test]
async fn the_writer_refuses_what_cannot_commit_and_names_the_callers_failed_item() {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
    use dynamodb_outbox::dynamodb::WriteError;
    use dynamodb_outbox::Envelope;
    let app = Invoicing::start().await;

    // 51 events on 51 keys: 51 puts and 51 counters, past DynamoDB's 100 actions: refused
    // before anything is sent.
    let mut bigger = app.outbox.transaction();
    for i in 0..51 {
        let event = Envelope::new(issued(&format!("big-{i}"), &format!("acct-{i}"), 1));
        bigger = bigger.event(&event).unwrap();
    }
    let err = bigger.commit().await.unwrap_err();
    assert!(
        matches!(err, WriteError::TooManyActions { actions: 102 }),
        "{err:?}"
    );

    // An event type nobody takes would never be processed nor expire.
    let unrouted = Envelope::new(invoices_example::invoices::InvoiceVoided {
        invoice_id: "x".into(),
        account_id: "acme".into(),
        amount_cents: 1,
    });
    let outbox = Outbox::new(
        app.dynamo.client.clone(),
        &app.invoices,
        dynamodb_outbox::dynamodb::Routes::new().route(InvoiceIssued::TYPE, &[ledger::NAME]),
    );
    assert!(matches!(
        outbox.transaction().event(&unrouted),
        Err(WriteError::NoRoute(t)) if t == InvoiceVoided::TYPE
    ));

    // The caller's own condition fails: nothing is written, and its item is named.
    let check = ConditionCheck::builder()
        .table_name(&app.invoices)
        .key("pk", AttributeValue::S("NOTHING".into()))
        .key("sk", AttributeValue::S("HERE".into()))
        .condition_expression("attribute_exists(pk)")
        .build()
        .unwrap();
    let err = app
        .outbox
        .transaction()
        .write(TransactWriteItem::builder().condition_check(check).build())
        .event(&Envelope::new(issued("refused", "acme", 5)))
        .unwrap()
        .commit()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::Cancelled { reasons }
            if reasons == &[Some("ConditionalCheckFailed".to_owned())]),
        "{err:?}"
    );
    assert!(
        app.outbox_events().await.is_empty(),
        "no event without the caller's write"
    );
}

#[tokio::test]
async fn concurrent_producers_on_one_key_get_distinct_consecutive_sequences() {
    let app = Invoicing::start().await;
    // One round of conflicts per winner: four writers fit in the writer's five attempts.
    let writers = (0..4).map(|i| {
        let outbox = app.outbox.clone();
        async move { invoices::issue(&outbox, issued(&format!("c-{i}"), "acme", 10 + i)).await }
    });
    for result in futures::future::join_all(writers).await {
        result.unwrap();
    }
    let mut sequences: Vec<i64> = app
        .outbox_events()
        .await
        .iter()
        .map(|e| n(e, schema::SEQUENCE).unwrap())
        .collect();
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        vec![1, 2, 3, 4],
        "no sequence taken twice, none skipped"
    );

    let records = app.records().await;
    let recorder = Recording::new(app.store(&app.ledger));
    let outcome = app.ledger(recorder.clone()).process_stream(&records).await;
    assert_eq!(outcome.applied, 4, "{outcome:?}");
    assert_eq!(order_of(&recorder, "acme"), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_parked_invoice_is_redriven_once_after_the_fix_even_with_its_outbox_item_gone() {
    let app = Invoicing::start().await;
    app.issue("small", "acme", 100).await;
    app.issue("huge", "acme", 500_000_000).await;
    app.issue("later", "acme", 50).await;
    let records = app.records().await;
    let parking = app.consumer(Ledger::new(&app.ledger), app.store(&app.ledger));
    let outcome = parking.process_stream(&records).await;
    assert_counts!(
        outcome,
        [applied = 2, parked = 1, failures = 0],
        "the huge invoice is parked and the account goes on"
    );
    assert_eq!(app.balance("acme").await, Some(150));
    assert_eq!(
        parking.redrive_parked(10).await.parked,
        1,
        "still poison before the fix"
    );
    let parked = app.parked_by_ledger().await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].attempts, 2);
    assert!(parked[0].reason.contains("500000000 cents"), "{parked:?}");

    // The outbox items are gone (TTL, or notifications done long ago): the parked record carries
    // the event itself.
    for event in app.outbox_events().await {
        app.dynamo
            .client
            .delete_item()
            .table_name(&app.invoices)
            .key("pk", event["pk"].clone())
            .key("sk", event["sk"].clone())
            .send()
            .await
            .unwrap();
    }

    // The fix: a release that takes larger invoices. Two redrives race over the parked record.
    let fixed = || {
        let ledger = Ledger {
            largest_cents: 1_000_000_000,
            ..Ledger::new(&app.ledger)
        };
        app.consumer(ledger, app.store(&app.ledger))
    };
    let (one, other) = (fixed(), fixed());
    let (first, second) = tokio::join!(one.redrive_parked(10), other.redrive_parked(10));
    assert_eq!(
        (
            first.applied + second.applied,
            first.failures.len() + second.failures.len()
        ),
        (1, 0),
        "{first:?} {second:?}"
    );
    assert_eq!(
        app.balance("acme").await,
        Some(500_000_150),
        "applied exactly once"
    );
    let again = fixed().redrive_parked(10).await;
    assert_eq!(again, BatchOutcome::default(), "nothing parked any more");
    assert_eq!(app.balance("acme").await, Some(500_000_150));
    assert!(app.parked_by_ledger().await.is_empty());
}

/// The Kinesis records a stream holds after these publishes, as Lambda delivers them: each the
/// envelope as JSON with the ordering key as partition key (`kinesis_put`).
fn kinesis_records<P: serde::Serialize>(
    stream_arn: &str,
    events: &[&dynamodb_outbox::Envelope<P>],
) -> Vec<aws_lambda_events::kinesis::KinesisEventRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let put = dynamodb_outbox::kinesis_put(*event).unwrap();
            let mut record = aws_lambda_events::kinesis::KinesisEventRecord::default();
            record.event_source_arn = Some(stream_arn.into());
            record.kinesis.sequence_number = format!("4959{:020}", i + 1);
            record.kinesis.partition_key = put.partition_key;
            *record.kinesis.data = put.data;
            record
        })
        .collect()
}

#[tokio::test]
async fn kinesis_events_are_applied_once_by_event_id_with_the_ledgers_line_as_the_record() {
    use dynamodb_outbox::Envelope;
    let app = Invoicing::start().await;
    let stream = "invoices-stream";
    let arn = format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}");
    let first = Envelope::new(issued("k-1", "acme", 100)).with_ordering_key("acme");
    let second = Envelope::new(issued("k-2", "acme", 50)).with_ordering_key("acme");
    // The same event id with another amount: not a redelivery, a collision.
    let mut collision = Envelope::new(issued("k-3", "acme", 7)).with_ordering_key("acme");
    collision.event_id = first.event_id.clone();
    // A publish retried after a lost response puts the first event twice.
    let records = kinesis_records(&arn, &[&first, &second, &first, &collision]);

    let ledger = Processor::new(
        Ledger::new(&app.ledger),
        app.store(&app.ledger),
        Source::kinesis_stream(&arn).expect("a stream's ARN"),
    );
    let outcome = ledger.process_kinesis(&records).await;
    assert_counts!(
        outcome,
        [applied = 2, duplicates = 1, parked = 1, failures = 0]
    );
    assert_eq!(app.balance("acme").await, Some(150));
    let parked = app.parked_by_ledger().await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].reason.contains("other content"), "{parked:?}");
    let done = app
        .item(
            &app.ledger,
            &schema::done_pk(ledger::NAME, &second.event_id),
            schema::DONE_SK,
        )
        .await;
    assert!(
        done.is_none(),
        "the ledger's line is the record: no extra item"
    );

    let again = ledger.process_kinesis(&records).await;
    assert_counts!(
        again,
        [duplicates = 4, applied = 0, failures = 0],
        "a redelivered batch, the parked collision included"
    );
    assert_eq!(app.balance("acme").await, Some(150));
    assert!(again.kinesis_response().batch_item_failures.is_empty());

    let elsewhere = kinesis_records(
        "arn:aws:kinesis:us-east-1:123456789012:stream/another",
        &[&second],
    );
    let refused = ledger.process_kinesis(&elsewhere).await;
    assert_eq!(refused.poison, 1, "{refused:?}");
    assert_eq!(
        refused.kinesis_response().batch_item_failures[0]
            .item_identifier
            .as_deref(),
        Some(elsewhere[0].kinesis.sequence_number.as_str())
    );
}

#[tokio::test]
async fn an_entity_tables_inserts_are_events_applied_once_and_the_sweeper_finds_what_was_dropped() {
    use invoices_example::entity::{self, invoice_issued};
    let app = Invoicing::start().await;
    // The invoice table of pattern 2: no outbox, the invoice item is the event.
    let table = format!("{}-entities", app.invoices);
    create_table(&app.dynamo.client, &invoices_table("InvoicesTable"), &table)
        .await
        .unwrap();
    let arn = devkit::local::stream_arn(&app.dynamo.client, &table)
        .await
        .unwrap();
    let at = "2026-11-30T00:00:00Z";
    for (id, account, cents) in [
        ("e-1", "acme", 100),
        ("e-2", "acme", 50),
        ("e-3", "globex", 40),
    ] {
        entity::issue(
            &app.dynamo.client,
            &table,
            &issued(id, account, cents),
            at,
            &[ledger::NAME],
        )
        .await
        .unwrap();
    }
    let records = app.stream_records(&arn).await;
    assert_eq!(records.len(), 3);
    // The last invoice's record never reaches the consumer: only the sweeper can apply it.
    entity::issue(
        &app.dynamo.client,
        &table,
        &issued("e-4", "acme", 7),
        at,
        &[ledger::NAME],
    )
    .await
    .unwrap();

    let store = DynamoConsumerStore::new(app.dynamo.client.clone(), &app.ledger, &table);
    let processor =
        Processor::new(Ledger::new(&app.ledger), store, source(&table)).home(app.home());
    let outcome = processor.process_changes(&records, invoice_issued).await;
    assert_counts!(outcome, [applied = 3, failures = 0]);
    let again = processor.process_changes(&records, invoice_issued).await;
    assert_eq!(
        again.duplicates, 3,
        "a redelivery applies nothing: {again:?}"
    );
    let released = app.item(&table, "INVOICE#e-1", "INVOICE").await.unwrap();
    for gone in [
        schema::WAITING_CONSUMERS,
        schema::PENDING_PK,
        schema::PENDING_SK,
    ] {
        assert!(!released.contains_key(gone), "{gone} left: {released:?}");
    }
    assert!(
        !released.contains_key(schema::EXPIRES_AT),
        "the invoice is the application's data: it never expires"
    );
    assert_eq!(n(&released, "amount_cents"), Some(100));

    // The MODIFY records of the releases are no events.
    let all = app.stream_records(&arn).await;
    let modifies = processor.process_changes(&all[4..], invoice_issued).await;
    assert_counts!(modifies, [ignored = all.len() - 4, applied = 0]);

    let pending = PendingEvents::new(app.dynamo.client.clone(), &table);
    let waiting = pending
        .waiting_for(ledger::NAME, "9999", 100)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1, "only the dropped invoice is pending");
    let swept = processor.process_entities(waiting, invoice_issued).await;
    assert_eq!(swept.applied, 1, "{swept:?}");
    assert!(pending
        .waiting_for(ledger::NAME, "9999", 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(app.balance("acme").await, Some(157));
    assert_eq!(app.balance("globex").await, Some(40));

    // Records from another table's stream are refused; an invoice item whose amount attribute
    // was renamed is poison for this consumer (it is coupled to the item's shape).
    let from_outbox = processor
        .process_changes(&as_if_from(&records[0], &app.stream_arn), invoice_issued)
        .await;
    assert_eq!(from_outbox.poison, 1, "{from_outbox:?}");
    let mut renamed = records[0].clone();
    let image = &mut renamed.change.new_image;
    let amount = image.remove("amount_cents").unwrap();
    image.insert("amount".into(), amount);
    image.insert(
        "invoice_id".into(),
        serde_dynamo::AttributeValue::S("e-9".into()),
    );
    let unreadable = processor.process_changes(&[renamed], invoice_issued).await;
    assert_eq!(unreadable.poison, 1, "{unreadable:?}");
    assert!(
        unreadable.failures.len() == 1,
        "reported for retry: {unreadable:?}"
    );
}

/// A record as if it came from another table's stream.
fn as_if_from(record: &EventRecord, other_stream_arn: &str) -> Vec<EventRecord> {
    let mut copy = record.clone();
    copy.event_source_arn = Some(other_stream_arn.to_owned());
    vec![copy]
}

#[tokio::test]
async fn a_mark_cut_short_between_its_writes_is_found_by_the_sweeper_and_finished() {
    let app = Invoicing::start().await;
    // A void goes to the ledger alone.
    app.void("i-1", "acme", 100).await;
    let records = app.records().await;
    // A process that dies after the effect's commit, before the outbox mark.
    let crashing = Crashing::always(app.store(&app.ledger), CrashPoint::BeforeDone);
    let dying = app.consumer(Ledger::new(&app.ledger), crashing);
    assert_eq!(dying.process_stream(&records).await.failures.len(), 1);
    // The state a mark in two writes left when it was cut between them: nobody waits any more,
    // yet the event is still pending, in the index, without a TTL.
    let key = &records[0].change.keys;
    let text = |name: &str| match key.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    };
    app.dynamo
        .client
        .update_item()
        .table_name(&app.invoices)
        .key(
            schema::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(text(schema::PK)),
        )
        .key(
            schema::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(text(schema::SK)),
        )
        .update_expression("REMOVE #waiting")
        .expression_attribute_names("#waiting", schema::WAITING_CONSUMERS)
        .send()
        .await
        .unwrap();

    let pending = PendingEvents::new(app.dynamo.client.clone(), &app.invoices);
    let far_future = "9999-12-31T00:00:00.000000Z";
    let found = pending
        .waiting_for(ledger::NAME, far_future, 100)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the sweeper finds what nobody finished");
    let ledger = app.consumer(Ledger::new(&app.ledger), app.store(&app.ledger));
    let outcome = ledger.process_items(found).await;
    assert_counts!(outcome, [duplicates = 1, failures = 0]);
    let item = app
        .item(&app.invoices, &text(schema::PK), &text(schema::SK))
        .await
        .unwrap();
    assert_eq!(s(&item, schema::STATUS), Some(schema::STATUS_PROCESSED));
    assert!(n(&item, schema::EXPIRES_AT).is_some(), "{item:?}");
    assert!(!item.contains_key(schema::PENDING_PK), "{item:?}");
    assert!(pending
        .waiting_for(ledger::NAME, far_future, 100)
        .await
        .unwrap()
        .is_empty());
}

/// A table as a consumer's source (by name or ARN).
fn source(table: &str) -> Source {
    Source::table(table).expect("a valid table name or ARN")
}
