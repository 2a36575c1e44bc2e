//! The engine's consumer (`dynamodb-outbox`'s `Processor`) on three batch shapes, through the
//! latency-injecting proxy: its defaults against the same code one request at a time.
//!
//! The consumer is the invoice example's `Ledger`, shaped like rewards: one new line per event
//! and one `ADD` to the account's balance, with the account as the ordering key, the only consumer
//! routed to (so it is the last one and also takes the item out of the pending index). The
//! baseline is the same `Processor` with `.concurrency(1).events_per_transaction(1)`: one key at
//! a time, one event per transaction, one mark at a time.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use devkit::local::create_table;
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::template::TableSpec;
use devkit::{LocalDynamo, StreamClient};
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Outbox, Routes};
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::{
    Home, Processor, Source, DEFAULT_CONCURRENCY, DEFAULT_EVENTS_PER_TRANSACTION,
};
use invoices_example::invoices::{self, InvoiceIssued};
use invoices_example::ledger::{self, Ledger};
use serde_json::json;

use crate::records::{timed_batch, StreamCursor};

/// A batch: `keys` accounts with `per_key` invoices each, interleaved in the stream
/// (k0, k1, …, k0, k1, …) as concurrent customers' events would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    pub keys: usize,
    pub per_key: usize,
}

impl BatchShape {
    pub const fn new(keys: usize, per_key: usize) -> Self {
        Self { keys, per_key }
    }

    pub fn records(self) -> usize {
        self.keys * self.per_key
    }

    pub fn label(self) -> String {
        match (self.keys, self.per_key) {
            (keys, 1) => format!("{keys} distinct keys"),
            (1, events) => format!("1 key × {events} records"),
            (keys, events) => format!("{keys} keys × {events} records"),
        }
    }
}

/// How the processor runs: the keys and marks in flight, and the events per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub concurrency: usize,
    pub events_per_transaction: usize,
}

impl Settings {
    /// The engine's defaults.
    pub const DEFAULT: Settings = Settings {
        concurrency: DEFAULT_CONCURRENCY,
        events_per_transaction: DEFAULT_EVENTS_PER_TRANSACTION,
    };
    /// One request at a time, one event per transaction.
    pub const ONE_AT_A_TIME: Settings = Settings {
        concurrency: 1,
        events_per_transaction: 1,
    };
}

/// Requests to mark one outbox item for its only consumer: one write leaves the waiting set and
/// the pending index and sets the TTL.
const MARK_ROUND_TRIPS: usize = 1;

/// The round trips on the longest chain of a batch: the commits of the longest key (its runs, in
/// as many waves as the keys need at this concurrency), then the marks (after all commits, in
/// waves of the concurrency).
pub fn round_trips(shape: BatchShape, settings: Settings) -> usize {
    let waves = |n: usize| n.div_ceil(settings.concurrency.max(1));
    let runs = shape
        .per_key
        .div_ceil(settings.events_per_transaction.max(1));
    waves(shape.keys) * runs + waves(shape.records()) * MARK_ROUND_TRIPS
}

/// An embedded DynamoDB with the invoice example's outbox and ledger tables, a proxy in front of
/// it, and the processors going through the proxy. The invoices are written directly.
pub struct EngineLab {
    pub proxy: FaultProxy,
    dynamo: LocalDynamo,
    outbox: Outbox,
    stream: StreamClient,
    stream_arn: String,
    cursor: StreamCursor,
    through_proxy: Client,
    invoices: String,
    ledger: String,
    batches: usize,
}

/// What one batch took, and whether its effects were exactly once.
#[derive(Debug, Clone, Copy)]
pub struct BatchRun {
    pub elapsed: Duration,
    pub exactly_once: bool,
}

impl EngineLab {
    pub async fn start() -> Result<Self> {
        // Always the embedded server: the figures describe this code on a known server.
        let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
        let (invoices, ledger) = ("invoices".to_owned(), "ledger".to_owned());
        create_table(&dynamo.client, &outbox_table(&invoices), &invoices).await?;
        create_table(&dynamo.client, &keyed_table(&ledger), &ledger).await?;
        let stream_arn = dynamo
            .client
            .describe_table()
            .table_name(&invoices)
            .send()
            .await?
            .table
            .and_then(|t| t.latest_stream_arn)
            .context("the outbox table has no stream")?;
        let stream = StreamClient::new(&dynamo.endpoint, &dynamo.sdk_config)?;
        let proxy = FaultProxy::start(&dynamo.endpoint, FaultPlan::none()).await?;
        // One client for the whole run, as one Lambda container keeps one for its lifetime.
        let through_proxy = dynamo.client_via(&proxy.endpoint).await;
        // The ledger alone, as rewards is the orders outbox's only consumer.
        let routes = Routes::new().route(InvoiceIssued::TYPE, &[ledger::NAME]);
        let outbox = Outbox::new(dynamo.client.clone(), &invoices, routes);
        Ok(Self {
            proxy,
            dynamo,
            outbox,
            stream,
            stream_arn,
            cursor: StreamCursor::default(),
            through_proxy,
            invoices,
            ledger,
            batches: 0,
        })
    }

    fn processor(&self, settings: Settings) -> Processor<Ledger, DynamoConsumerStore> {
        let store =
            DynamoConsumerStore::new(self.through_proxy.clone(), &self.ledger, &self.invoices);
        let ledger = Ledger::new(&self.ledger);
        let home = Home::of_arn(&self.stream_arn).expect("the server's stream ARN");
        let source = Source::table(&self.invoices).expect("a valid table name");
        Processor::new(ledger, store, source)
            .home(home)
            .concurrency(settings.concurrency)
            .events_per_transaction(settings.events_per_transaction)
    }

    /// Issues a fresh batch of `shape` (directly, not through the proxy), then times one
    /// `process_stream` call on its records with `latency` per request.
    pub async fn run(
        &mut self,
        latency: Duration,
        settings: Settings,
        shape: BatchShape,
    ) -> Result<BatchRun> {
        self.batches += 1;
        let batch = self.batches;
        let mut totals: HashMap<String, i64> = HashMap::new();
        for round in 0..shape.per_key {
            for key in 0..shape.keys {
                let account = format!("b{batch}-k{key}");
                let cents = 100 + (round * 7 + key) as i64;
                *totals.entry(account.clone()).or_default() += cents;
                let invoice = InvoiceIssued {
                    invoice_id: format!("{account}-{round}"),
                    account_id: account,
                    amount_cents: cents,
                };
                invoices::issue(&self.outbox, invoice).await?;
            }
        }
        let records = self
            .cursor
            .outbox_inserts(&self.stream, &self.stream_arn)
            .await?;
        ensure!(
            records.len() == shape.records(),
            "batch {batch}: {} records on the stream for {} invoices",
            records.len(),
            shape.records()
        );

        let processor = self.processor(settings);
        let name = batch.to_string();
        let elapsed = timed_batch(&self.proxy, latency, &processor, &records, &name).await?;
        Ok(BatchRun {
            elapsed,
            exactly_once: self.exactly_once(&totals, shape.per_key).await?,
        })
    }

    /// Every account's balance is the sum of its invoices, its progress is at its last event,
    /// and no outbox item is left pending (every mark was made).
    async fn exactly_once(&self, totals: &HashMap<String, i64>, per_key: usize) -> Result<bool> {
        let client = &self.dynamo.client;
        for (account, total) in totals {
            let balance = self
                .number(
                    &format!("ACCOUNT#{account}"),
                    "BALANCE",
                    ledger::BALANCE,
                    client,
                )
                .await?;
            let progress = self
                .number(
                    &schema::progress_pk(ledger::NAME, account),
                    schema::PROGRESS_SK,
                    schema::PROGRESS_SEQUENCE,
                    client,
                )
                .await?;
            if balance != *total || progress != per_key as i64 {
                return Ok(false);
            }
        }
        let pending = client
            .scan()
            .table_name(&self.invoices)
            .index_name(schema::PENDING_INDEX)
            .limit(1)
            .send()
            .await?;
        Ok(pending.items.unwrap_or_default().is_empty())
    }

    async fn number(&self, pk: &str, sk: &str, attribute: &str, client: &Client) -> Result<i64> {
        let item = client
            .get_item()
            .table_name(&self.ledger)
            .key(schema::PK, AttributeValue::S(pk.to_owned()))
            .key(schema::SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await?
            .item
            .unwrap_or_default();
        Ok(item
            .get(attribute)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

/// The batch shapes measured, each with its goal (defaults against one at a time, at 25 ms).
pub const SHAPES: [(BatchShape, f64); 3] = [
    (BatchShape::new(100, 1), 30.0),
    (BatchShape::new(10, 10), 30.0),
    (BatchShape::new(1, 100), 15.0),
];

/// The latency of the goals, and none (what is left is this machine's own work).
pub const LATENCIES: [Duration; 2] = [Duration::from_millis(25), Duration::ZERO];

/// The figures of one shape at one latency: medians of the repeats.
#[derive(Debug, Clone)]
pub struct ShapeFigures {
    pub shape: BatchShape,
    pub goal: f64,
    pub latency: Duration,
    pub defaults: Duration,
    pub one_at_a_time: Duration,
}

impl ShapeFigures {
    pub fn ratio(&self) -> f64 {
        self.one_at_a_time.as_secs_f64() / self.defaults.as_secs_f64()
    }
}

/// Everything the section says.
pub struct ShapesReport {
    pub figures: Vec<ShapeFigures>,
    pub batches: usize,
    pub exactly_once: usize,
    pub repeats: usize,
}

/// Each shape at each latency on a fresh server (the embedded server's cost per request grows
/// with what it holds), the defaults and the baseline back to back so both see the same load on
/// the machine; `repeats` times, medians reported.
pub async fn measure(repeats: usize) -> Result<ShapesReport> {
    let mut times: HashMap<(usize, Duration), (Vec<Duration>, Vec<Duration>)> = HashMap::new();
    let (mut batches, mut exactly_once) = (0, 0);
    for _ in 0..repeats {
        for (index, (shape, _)) in SHAPES.iter().enumerate() {
            for latency in LATENCIES {
                let mut lab = EngineLab::start().await?;
                // Opens the pool's connections and warms the server; not counted.
                lab.run(Duration::ZERO, Settings::DEFAULT, BatchShape::new(100, 1))
                    .await?;
                let defaults = lab.run(latency, Settings::DEFAULT, *shape).await?;
                let baseline = lab.run(latency, Settings::ONE_AT_A_TIME, *shape).await?;
                let entry = times.entry((index, latency)).or_default();
                entry.0.push(defaults.elapsed);
                entry.1.push(baseline.elapsed);
                batches += 2;
                exactly_once +=
                    usize::from(defaults.exactly_once) + usize::from(baseline.exactly_once);
            }
        }
    }
    let mut figures = Vec::new();
    for latency in LATENCIES {
        for (index, (shape, goal)) in SHAPES.iter().enumerate() {
            let (defaults, baseline) = times.get_mut(&(index, latency)).context("measured")?;
            figures.push(ShapeFigures {
                shape: *shape,
                goal: *goal,
                latency,
                defaults: crate::report::median(defaults),
                one_at_a_time: crate::report::median(baseline),
            });
        }
    }
    Ok(ShapesReport {
        figures,
        batches,
        exactly_once,
        repeats,
    })
}

/// The section's region in `docs/benchmarks.md`, so `make bench-consumer` can rewrite it alone.
pub const REGION: &str = "engine-batch-shapes";

impl ShapesReport {
    /// (goals met, goals): each shape's ratio at 25 ms, and exactly once in every batch.
    pub fn goals_met(&self) -> (usize, usize) {
        let timed = self.figures.iter().filter(|f| !f.latency.is_zero());
        let met = timed.clone().filter(|f| f.ratio() >= f.goal).count()
            + usize::from(self.exactly_once == self.batches);
        (met, timed.count() + 1)
    }

    /// This machine's own work, measured: what keeps the defaults above their floor.
    fn own_work(&self) -> String {
        let at = |latency: Duration, shape: BatchShape| {
            self.figures
                .iter()
                .find(|f| f.latency == latency && f.shape == shape)
        };
        let distinct = SHAPES[0].0;
        let Some(idle) = at(Duration::ZERO, distinct) else {
            return String::new();
        };
        let requests = round_trips(distinct, Settings::ONE_AT_A_TIME);
        format!(
            " Measured here, for {}: one at a time at 0 ms, its {requests} requests took {} ms \
             ({:.2} ms of work per request on this machine), the defaults {} ms.",
            distinct.label(),
            crate::report::ms(idle.one_at_a_time),
            idle.one_at_a_time.as_secs_f64() * 1000.0 / requests as f64,
            crate::report::ms(idle.defaults),
        )
    }

    /// The section, for its region of the document.
    pub fn markdown(&self, written: &str) -> String {
        let defaults = Settings::DEFAULT;
        let ms = crate::report::ms;
        let (met, goals) = self.goals_met();
        let mut out = format!(
            "## Consumer batch shapes on the engine\n\n\
             {written}; {met} of {goals} goals met; medians of {} repeats. The consumer is \
             `dynamodb-outbox`'s `Processor` running the invoice example's `Ledger` (one new line \
             per event and one `ADD` to the account's balance, the rewards consumer's shape; the \
             account is the ordering key; the only consumer, so it also takes each item out of the \
             pending index). **defaults**: concurrency {}, {} events per transaction; **one at a \
             time**: the same `Processor` with `.concurrency(1).events_per_transaction(1)`. Each \
             batch is 100 freshly issued invoices read from the local stream, and one \
             `process_stream` call through `FaultProxy` with the latency added to every request.\n\n\
             | batch of 100 records | latency per request | defaults | one at a time | ratio | floor: round trips on the longest chain (defaults / one at a time) | goal | met? |\n\
             | --- | ---: | ---: | ---: | ---: | --- | --- | --- |\n",
            self.repeats, defaults.concurrency, defaults.events_per_transaction,
        );
        for f in &self.figures {
            let (fast, slow) = (
                round_trips(f.shape, defaults),
                round_trips(f.shape, Settings::ONE_AT_A_TIME),
            );
            let floor = if f.latency.is_zero() {
                format!("{fast} / {slow}")
            } else {
                format!(
                    "{fast} / {slow} = {} ms / {} ms",
                    ms(f.latency * fast as u32),
                    ms(f.latency * slow as u32)
                )
            };
            let (goal, verdict) = if f.latency.is_zero() {
                ("informative".to_owned(), "—".to_owned())
            } else if f.ratio() >= f.goal {
                (format!("≥ {}×", f.goal), "yes".to_owned())
            } else {
                (
                    format!("≥ {}×", f.goal),
                    format!("**no**, by {:.1}×", f.goal - f.ratio()),
                )
            };
            out.push_str(&format!(
                "| {} | {} ms | {} ms | {} ms | **{:.1}×** | {floor} | {goal} | {verdict} |\n",
                f.shape.label(),
                f.latency.as_millis(),
                ms(f.defaults),
                ms(f.one_at_a_time),
                f.ratio(),
            ));
        }
        out.push_str(&format!(
            "| exactly once: every balance the sum of its invoices, every key's progress at its \
             last event, no item left pending | | | | | | held | {} |\n\n",
            if self.exactly_once == self.batches {
                format!("yes, in {} of {} batches", self.exactly_once, self.batches)
            } else {
                format!(
                    "**no**, in {} of {} batches",
                    self.exactly_once, self.batches
                )
            }
        ));
        out.push_str(&format!(
            "The floor counts requests that must follow one another: a key's runs of up to {} \
             events commit one after the other (the next run's condition is on the progress the \
             last one wrote), keys beyond the concurrency wait for a slot, and the marks (one \
             write for the only consumer: out of the waiting set and the pending index, TTL set) \
             come after all the commits, off every key's chain. One at a time, each record is a \
             commit and a mark: 200 round trips for any shape. At 0 ms the proxy adds nothing: what is left is this machine's own work (the \
             SDK's CPU and the embedded server, which runs in the same process on the same two \
             cores); it does not shrink with latency and is why a measured ratio stays under the \
             ratio of the floors.{}\n",
            defaults.events_per_transaction,
            self.own_work()
        ));
        out
    }
}

fn keyed_table(name: &str) -> TableSpec {
    TableSpec {
        logical_id: name.to_owned(),
        name: name.to_owned(),
        properties: json!({
            "AttributeDefinitions": [
                {"AttributeName": schema::PK, "AttributeType": "S"},
                {"AttributeName": schema::SK, "AttributeType": "S"}
            ],
            "KeySchema": [
                {"AttributeName": schema::PK, "KeyType": "HASH"},
                {"AttributeName": schema::SK, "KeyType": "RANGE"}
            ]
        }),
    }
}

/// The outbox table the engine's README asks for: keys, stream, TTL, sparse pending index.
fn outbox_table(name: &str) -> TableSpec {
    let mut spec = keyed_table(name);
    let properties = &mut spec.properties;
    properties["AttributeDefinitions"] = json!([
        {"AttributeName": schema::PK, "AttributeType": "S"},
        {"AttributeName": schema::SK, "AttributeType": "S"},
        {"AttributeName": schema::PENDING_PK, "AttributeType": "S"},
        {"AttributeName": schema::PENDING_SK, "AttributeType": "S"}
    ]);
    properties["GlobalSecondaryIndexes"] = json!([{
        "IndexName": schema::PENDING_INDEX,
        "KeySchema": [
            {"AttributeName": schema::PENDING_PK, "KeyType": "HASH"},
            {"AttributeName": schema::PENDING_SK, "KeyType": "RANGE"}
        ],
        "Projection": {"ProjectionType": "ALL"}
    }]);
    properties["StreamSpecification"] = json!({"StreamViewType": "NEW_IMAGE"});
    properties["TimeToLiveSpecification"] =
        json!({"AttributeName": schema::EXPIRES_AT, "Enabled": true});
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_count_runs_waves_and_marks() {
        let (distinct, spread, hot) = (
            BatchShape::new(100, 1),
            BatchShape::new(10, 10),
            BatchShape::new(1, 100),
        );
        // One request at a time: a commit and a mark per record.
        for shape in [distinct, spread, hot] {
            assert_eq!(round_trips(shape, Settings::ONE_AT_A_TIME), 200);
        }
        let defaults = Settings {
            concurrency: 100,
            events_per_transaction: 25,
        };
        assert_eq!(round_trips(distinct, defaults), 1 + 1);
        assert_eq!(round_trips(spread, defaults), 1 + 1);
        assert_eq!(round_trips(hot, defaults), 4 + 1);
        // Fewer keys in flight than keys: waves of commits and of marks.
        let narrow = Settings {
            concurrency: 32,
            events_per_transaction: 25,
        };
        assert_eq!(round_trips(distinct, narrow), 4 + 4);
    }

    #[tokio::test]
    async fn every_batch_read_from_the_stream_is_applied_exactly_once() {
        let mut lab = EngineLab::start().await.unwrap();
        for settings in [Settings::DEFAULT, Settings::ONE_AT_A_TIME] {
            let run = lab
                .run(Duration::from_millis(1), settings, BatchShape::new(3, 2))
                .await
                .unwrap();
            assert!(run.exactly_once, "{settings:?}");
        }
    }
}
