//! The engine's consumer (`dynamodb-outbox`'s `Processor`) on three batch shapes: the invoice
//! example's `Ledger`, shaped like rewards (one new line per event and one `ADD` to the
//! account's balance, the account the ordering key, the only consumer routed to, so it also takes
//! the item out of the pending index), its defaults against the same code one request at a time.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{ensure, Result};
use aws_lambda_events::dynamodb::EventRecord;
use devkit::local::{create_table, stream_arn};
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::{LocalDynamo, StreamClient, Template};
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Outbox, Routes};
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{Home, Processor, Source};
use invoices_example::invoices::{self, InvoiceIssued};
use invoices_example::ledger::{self, Ledger};

use super::{round_trips, Settings, Shape, StreamCursor, Timings, Workload};
use crate::report::ms;

/// An embedded DynamoDB with the invoice example's outbox and ledger tables (as its template
/// declares them), a proxy in front of it, and the processors going through the proxy. The
/// invoices are written directly.
pub struct LedgerLab {
    proxy: FaultProxy,
    dynamo: LocalDynamo,
    outbox: Outbox,
    stream: StreamClient,
    stream_arn: String,
    cursor: StreamCursor,
    through_proxy: aws_sdk_dynamodb::Client,
    /// The last batch: each account's total, and the invoices per account.
    totals: HashMap<String, i64>,
    per_key: usize,
}

const INVOICES: &str = "invoices";
const LEDGER: &str = "ledger";

impl Workload for LedgerLab {
    type Consumer = Ledger;

    async fn start() -> Result<Self> {
        let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
        let template =
            Template::load(&crate::workspace_root().join("examples/invoices/template.yaml"))?;
        for (id, name) in [("InvoicesTable", INVOICES), ("LedgerTable", LEDGER)] {
            create_table(&dynamo.client, &template.table(id)?, name).await?;
        }
        let stream_arn = stream_arn(&dynamo.client, INVOICES).await?;
        let stream = StreamClient::new(&dynamo.endpoint, &dynamo.sdk_config)?;
        let proxy = FaultProxy::start(&dynamo.endpoint, FaultPlan::none()).await?;
        let through_proxy = dynamo.client_via(&proxy.endpoint).await;
        // The ledger alone, as rewards is the orders outbox's only consumer.
        let routes = Routes::new().route(InvoiceIssued::TYPE, &[ledger::NAME]);
        let outbox = Outbox::new(dynamo.client.clone(), INVOICES, routes);
        Ok(Self {
            proxy,
            dynamo,
            outbox,
            stream,
            stream_arn,
            cursor: StreamCursor::default(),
            through_proxy,
            totals: HashMap::new(),
            per_key: 0,
        })
    }

    fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    async fn place(&mut self, batch: usize, shape: Shape) -> Result<Vec<EventRecord>> {
        self.totals.clear();
        self.per_key = shape.per_key;
        for round in 0..shape.per_key {
            for key in 0..shape.keys {
                let account_id = format!("b{batch}-k{key}");
                let amount_cents = 100 + (round * 7 + key) as i64;
                *self.totals.entry(account_id.clone()).or_default() += amount_cents;
                let invoice_id = format!("{account_id}-{round}");
                let invoice = InvoiceIssued {
                    invoice_id,
                    account_id,
                    amount_cents,
                };
                invoices::issue(&self.outbox, invoice).await?;
            }
        }
        let records = self
            .cursor
            .outbox_inserts(&self.stream, &self.stream_arn)
            .await?;
        let (carried, issued) = (records.len(), shape.records());
        ensure!(
            carried == issued,
            "batch {batch}: {carried} records on the stream for {issued} invoices"
        );
        Ok(records)
    }

    fn processor(&self, settings: Settings) -> Processor<Ledger, DynamoConsumerStore> {
        let store = DynamoConsumerStore::new(self.through_proxy.clone(), LEDGER, INVOICES);
        let home = Home::of_arn(&self.stream_arn).expect("the server's stream ARN");
        let source = Source::table(INVOICES).expect("a valid table name");
        Processor::new(Ledger::new(LEDGER), store, source)
            .home(home)
            .concurrency(settings.concurrency)
            .events_per_transaction(settings.events_per_transaction)
    }

    /// Exactly once: every account's balance is the sum of its invoices, its progress is at its
    /// last event, and no outbox item is left pending (every mark was made).
    async fn held(&self) -> Result<bool> {
        for (account, total) in &self.totals {
            let balance = self
                .number(&format!("ACCOUNT#{account}"), "BALANCE", ledger::BALANCE)
                .await?;
            let progress_pk = schema::progress_pk(ledger::NAME, account);
            let progress = self
                .number(&progress_pk, schema::PROGRESS_SK, schema::PROGRESS_SEQUENCE)
                .await?;
            if balance != *total || progress != self.per_key as i64 {
                return Ok(false);
            }
        }
        let pending = (self.dynamo.client.scan().table_name(INVOICES))
            .index_name(schema::PENDING_INDEX)
            .limit(1)
            .send()
            .await?;
        Ok(pending.items.unwrap_or_default().is_empty())
    }
}

impl LedgerLab {
    async fn number(&self, pk: &str, sk: &str, attribute: &str) -> Result<i64> {
        let item = self.dynamo.item(LEDGER, pk, sk).await?.unwrap_or_default();
        let number = item.get(attribute).and_then(|v| v.as_n().ok());
        Ok(number.and_then(|n| n.parse().ok()).unwrap_or(0))
    }
}

/// The batch shapes measured, each with its goal: how many times more latency one at a time
/// pays than the defaults, at 25 ms per request. What latency adds is the time at 25 ms less
/// the time at 0 ms, both measured in the run: the whole times also hold this machine's own work
/// (the SDK and the embedded server, which serialises the transactions on two cores), which
/// latency does not change and which the floors do not count. Since the only consumer finishes
/// its event in its commit, one at a time pays half the round trips it did, and that work is
/// most of the defaults' time, so a ratio of whole times measures the machine more than the
/// engine.
const SHAPES: [(Shape, f64); 3] = [
    (Shape::new(100, 1), 30.0),
    (Shape::new(10, 10), 30.0),
    (Shape::new(1, 100), 15.0),
];

/// The latency of the goals, and none (what is left is this machine's own work).
const LATENCIES: [Duration; 2] = [Duration::from_millis(25), Duration::ZERO];

/// The section's region in `docs/benchmarks.md`, so `make bench-consumer` can rewrite it alone.
pub const REGION: &str = "engine-batch-shapes";

/// Each shape at each latency, `repeats` times: the medians and the exactly-once count.
pub struct Shapes {
    timings: Timings,
    repeats: usize,
}

fn label(shape: Shape) -> String {
    match (shape.keys, shape.per_key) {
        (keys, 1) => format!("{keys} distinct keys"),
        (1, events) => format!("1 key × {events} records"),
        (keys, events) => format!("{keys} keys × {events} records"),
    }
}

impl Shapes {
    pub async fn measure(repeats: usize) -> Result<Self> {
        let plan: Vec<(Duration, Shape)> = SHAPES
            .iter()
            .flat_map(|(shape, _)| LATENCIES.map(|l| (l, *shape)))
            .collect();
        let settings = [Settings::DEFAULT, Settings::ONE_AT_A_TIME];
        let timings =
            Timings::measure::<LedgerLab>(repeats, &plan, settings, Shape::distinct(100)).await?;
        Ok(Self { timings, repeats })
    }

    /// (defaults, one at a time) of `shape` at `latency`.
    fn times(&self, latency: Duration, shape: Shape) -> (Duration, Duration) {
        let t = &self.timings;
        (
            t.median(latency, shape, Settings::DEFAULT),
            t.median(latency, shape, Settings::ONE_AT_A_TIME),
        )
    }

    /// The section, for its region of the document; `written` says when and by what.
    pub fn markdown(&self, written: &str) -> String {
        let defaults = Settings::DEFAULT;
        let mut rows = String::new();
        let (mut met, mut goals) = (0, 1);
        for latency in LATENCIES {
            for (shape, goal) in SHAPES {
                let (fast, slow) = self.times(latency, shape);
                let ratio = slow.as_secs_f64() / fast.as_secs_f64();
                let trips = [defaults, Settings::ONE_AT_A_TIME].map(|s| round_trips(shape, s));
                let mut floor = format!("{} / {}", trips[0], trips[1]);
                let (added, goal, verdict) = if latency.is_zero() {
                    ("—".to_owned(), "informative".to_owned(), "—".to_owned())
                } else {
                    let [a, b] = trips.map(|n| ms(latency * n as u32));
                    floor.push_str(&format!(" = {a} ms / {b} ms"));
                    let (idle_fast, idle_slow) = self.times(Duration::ZERO, shape);
                    let (fast, slow) = (
                        fast.saturating_sub(idle_fast),
                        slow.saturating_sub(idle_slow),
                    );
                    // Under a millisecond added is no latency paid, within the noise.
                    let paid =
                        slow.as_secs_f64() / fast.max(Duration::from_millis(1)).as_secs_f64();
                    goals += 1;
                    met += usize::from(paid >= goal);
                    let verdict = if paid >= goal {
                        "yes".into()
                    } else {
                        format!("**no**, by {:.1}×", goal - paid)
                    };
                    let added = format!("{} ms / {} ms: **{paid:.1}×**", ms(fast), ms(slow));
                    (added, format!("≥ {goal}×"), verdict)
                };
                rows.push_str(&format!(
                    "| {} | {} ms | {} ms | {} ms | {ratio:.1}× | {added} | {floor} | {goal} | {verdict} |\n",
                    label(shape),
                    latency.as_millis(),
                    ms(fast),
                    ms(slow),
                ));
            }
        }
        let (held, batches) = (self.timings.held, self.timings.batches);
        met += usize::from(held == batches);
        let exactly_once = if held == batches { "yes" } else { "**no**" };
        // This machine's own work, measured: what keeps the defaults above their floor.
        let distinct = SHAPES[0].0;
        let (idle_fast, idle_slow) = self.times(Duration::ZERO, distinct);
        let requests = round_trips(distinct, Settings::ONE_AT_A_TIME);
        format!(
            "## Consumer batch shapes on the engine\n\n\
             {written}; {met} of {goals} goals met; medians of {} repeats. The consumer is \
             `dynamodb-outbox`'s `Processor` running the invoice example's `Ledger` (one new line \
             per event and one `ADD` to the account's balance, the rewards consumer's shape; the \
             account is the ordering key; the only consumer, so it also takes each item out of the \
             pending index). **defaults**: concurrency {}, {} events per transaction; **one at a \
             time**: the same `Processor` with `.concurrency(1).events_per_transaction(1)`. Each \
             batch is 100 freshly issued invoices read from the local stream, and one \
             `process_stream` call through `FaultProxy` with the latency added to every request.\n\n\
             | batch of 100 records | latency per request | defaults | one at a time | ratio | latency added, the time less the time at 0 ms (defaults / one at a time) | floor: round trips on the longest chain (defaults / one at a time) | goal | met? |\n\
             | --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- |\n\
             {rows}\
             | exactly once: every balance the sum of its invoices, every key's progress at its \
             last event, no item left pending | | | | | | | held | {exactly_once}, in {held} of {batches} batches |\n\n\
             The floor counts requests that must follow one another: a key's runs of up to {} \
             events commit one after the other (the next run's condition is on the progress the \
             last one wrote), keys beyond the concurrency wait for a slot. There are no marks \
             after them: the only consumer leaves each event (out of the waiting set and the \
             pending index, TTL set) in its commit's transaction. One at a time, each record is \
             one commit: 100 round trips for any shape. At 0 ms the proxy adds nothing: what is left is this machine's own work (the \
             SDK's CPU and the embedded server, which runs in the same process on the same two \
             cores); it does not shrink with latency and is why the ratio of whole times stays \
             under the ratio of the floors. The goals are on the latency added, which the floors \
             predict: the time at 25 ms less the time at 0 ms, of each. Measured here, for {}: one at a time at 0 ms, its {requests} requests took {} ms \
             ({:.2} ms of work per request on this machine), the defaults {} ms.\n",
            self.repeats,
            defaults.concurrency,
            defaults.events_per_transaction,
            defaults.events_per_transaction,
            label(distinct),
            ms(idle_slow),
            idle_slow.as_secs_f64() * 1000.0 / requests as f64,
            ms(idle_fast),
        )
    }
}
