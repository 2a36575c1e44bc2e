//! `docs/patterns.md`'s figures: the tables of one run, written into the document's marked
//! regions (`crate::regions`). The prose around them, how the figures were taken, what they mean
//! and what they cannot show, is written by hand in the document.

use std::fmt::Write as _;

use devkit::Pattern;

use super::prices::*;
use super::watch::{percentile, WATCH_INTERVAL};
use super::{Options, PatternRun};
use crate::regions;

/// A million orders a day.
const ORDERS_PER_DAY: f64 = 1_000_000.0;

/// The per-order and per-month figures of one pattern, derived from its run.
#[derive(Debug, Clone)]
pub struct Figures {
    pub pattern: Pattern,
    pub orders: f64,
    pub writer_requests: f64,
    pub consumer_requests: f64,
    pub writer_wru: f64,
    pub writer_rru: f64,
    pub consumer_wru: f64,
    pub consumer_rru: f64,
    pub put_units: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub readable_at_once: f64,
    pub read_gap: Option<(f64, f64, f64)>,
    /// Bytes per order still stored a day later, kept for good / expiring later by TTL.
    pub kept_bytes: f64,
    pub expiring_bytes: f64,
    pub expiring_days: f64,
    pub capacity_reported: bool,
}

impl Figures {
    pub fn of(run: &PatternRun) -> Self {
        let orders = run.seen.answered.max(1) as f64;
        let per = |n: f64| n / orders;
        let consumers = |f: &dyn Fn(&super::Side) -> f64| run.consumers.iter().map(f).sum::<f64>();
        let (mut kept, mut expiring, mut days) = (0.0, 0.0, 0.0_f64);
        for kind in run.storage.values() {
            let left = (kind.bytes - kind.expiring_bytes) as f64;
            match kind.expires_within_days {
                Some(d) if d > 1.0 => {
                    expiring += left;
                    days = days.max(d);
                }
                Some(_) => {}
                None => kept += left,
            }
        }
        let e2e = &run.seen.end_to_end_ms;
        let gap = &run.seen.read_gap_ms;
        Self {
            pattern: run.pattern,
            orders,
            writer_requests: per(run.writer.total_requests() as f64),
            consumer_requests: per(consumers(&|s| s.total_requests() as f64)),
            writer_wru: per(run.writer.units.write),
            writer_rru: per(run.writer.units.read),
            consumer_wru: per(consumers(&|s| s.units.write)),
            consumer_rru: per(consumers(&|s| s.units.read)),
            put_units: run
                .kinesis
                .as_ref()
                .map_or(0.0, |k| per(k.payload_units as f64)),
            p50: percentile(e2e, 50.0),
            p95: percentile(e2e, 95.0),
            p99: percentile(e2e, 99.0),
            readable_at_once: run.seen.readable_at_once as f64 / orders,
            read_gap: (!gap.is_empty()).then(|| {
                (
                    percentile(gap, 50.0),
                    percentile(gap, 95.0),
                    percentile(gap, 99.0),
                )
            }),
            kept_bytes: per(kept),
            expiring_bytes: per(expiring),
            expiring_days: days,
            capacity_reported: run.writer.units.reports > 0
                || run.consumers.iter().any(|s| s.units.reports > 0),
        }
    }

    pub fn wru(&self) -> f64 {
        self.writer_wru + self.consumer_wru
    }

    pub fn rru(&self) -> f64 {
        self.writer_rru + self.consumer_rru
    }

    /// DynamoDB request units of a month at a million orders a day.
    pub fn month_dynamodb_requests(&self) -> f64 {
        let per_order = self.wru() * DYNAMODB_WRU_PER_MILLION / 1e6
            + self.rru() * DYNAMODB_RRU_PER_MILLION / 1e6;
        per_order * ORDERS_PER_DAY * DAYS_PER_MONTH
    }

    /// Kinesis of a month: the template's shards around the clock, and the PUT payload units.
    pub fn month_kinesis(&self, shards: usize) -> f64 {
        if self.put_units == 0.0 {
            return 0.0;
        }
        shards as f64 * HOURS_PER_MONTH * KINESIS_SHARD_HOUR
            + self.put_units * ORDERS_PER_DAY * DAYS_PER_MONTH * KINESIS_PUT_UNITS_PER_MILLION / 1e6
    }

    /// Storage of the first month: what TTL keeps for `expiring_days` at steady state, plus
    /// half a month of what is kept for good (it grows through the month).
    pub fn month_storage(&self) -> f64 {
        let gb = |bytes: f64| bytes / 1e9;
        let steady = gb(self.expiring_bytes * ORDERS_PER_DAY * self.expiring_days.max(1.0));
        let growing = gb(self.kept_bytes * ORDERS_PER_DAY * DAYS_PER_MONTH) / 2.0;
        (steady + growing) * DYNAMODB_STORAGE_GB_MONTH
    }

    /// What a month's orders add to storage for good, in GB.
    pub fn kept_gb_per_month(&self) -> f64 {
        self.kept_bytes * ORDERS_PER_DAY * DAYS_PER_MONTH / 1e9
    }

    pub fn month_total(&self, shards: usize) -> f64 {
        self.month_dynamodb_requests() + self.month_kinesis(shards) + self.month_storage()
    }
}

/// Everything the document's figures need besides the runs.
pub struct Context<'a> {
    pub opts: &'a Options,
    pub date: String,
    pub commit: String,
    pub machine: String,
    pub hottest_customer_orders: usize,
    pub elapsed_seconds: f64,
    /// Each pattern's chaos summary lines, when the chaos runs were given.
    pub chaos: Vec<(Pattern, Vec<String>)>,
    pub chaos_orders: Option<usize>,
}

fn money(x: f64) -> String {
    if x >= 100.0 {
        format!("${x:.0}")
    } else {
        format!("${x:.2}")
    }
}

/// A Markdown table: `head` is its header and rule lines, each row its cells.
fn table(head: &str, rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = format!("{head}\n");
    for cells in rows {
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// A row of a table by pattern: its label, and its cell from a pattern's figures.
type PatternRow<'a> = (&'a str, &'a dyn Fn(&Figures) -> String);

/// A table with one column a pattern, one row a figure.
fn by_pattern(corner: &str, figures: &[Figures], rows: &[PatternRow<'_>]) -> String {
    let cols: Vec<&str> = figures.iter().map(|f| pattern_title(f.pattern)).collect();
    let rule = vec!["---:"; figures.len()].join(" | ");
    let corner = if corner.is_empty() {
        " ".to_owned()
    } else {
        format!(" {corner} ")
    };
    let head = format!("|{corner}| {} |\n| --- | {rule} |", cols.join(" | "));
    table(
        &head,
        rows.iter().map(|(label, cell)| {
            std::iter::once(label.to_string())
                .chain(figures.iter().map(cell))
                .collect()
        }),
    )
}

/// The regions of `docs/patterns.md` the tool writes, in the document's order.
pub const REGIONS: [&str; 9] = [
    "headline", "run", "requests", "latency", "storage", "cost", "prices", "chaos", "machine",
];

/// The document's regions, each with its figures from these runs.
pub fn regions(runs: &[PatternRun], ctx: &Context<'_>) -> Vec<(&'static str, String)> {
    let figures: Vec<Figures> = runs.iter().map(Figures::of).collect();
    let shards = kinesis_shards(runs);
    let [headline_, run_, requests_, latency_, storage_, cost_, prices, chaos_, machine] = REGIONS;
    vec![
        (headline_, headline(&figures, shards)),
        (run_, run(runs, &figures, ctx)),
        (requests_, requests(runs)),
        (latency_, latency(runs, &figures)),
        (storage_, storage(runs)),
        (cost_, cost(&figures, shards)),
        (prices, SOURCES.to_owned()),
        (chaos_, chaos(ctx)),
        (machine, ctx.machine.clone()),
    ]
}

/// Whether `doc` has every region the tool writes.
pub fn check(doc: &str) -> anyhow::Result<()> {
    regions::check(doc, &REGIONS)
}

/// The shards of the Kinesis stream the runs published to (0: none did).
pub fn kinesis_shards(runs: &[PatternRun]) -> usize {
    runs.iter()
        .find_map(|r| r.kinesis.as_ref().map(|k| k.shards))
        .unwrap_or(0)
}

/// `doc` (the hand-written `docs/patterns.md`) with every region's figures from these runs.
pub fn write_into(doc: &str, runs: &[PatternRun], ctx: &Context<'_>) -> anyhow::Result<String> {
    regions::replace_all(doc, &regions(runs, ctx))
}

pub fn headline(figures: &[Figures], shards: usize) -> String {
    by_pattern(
        "per order, unless said",
        figures,
        &[
            ("requests, writer side (API)", &|f| {
                format!("{:.2}", f.writer_requests)
            }),
            ("requests, consumer side (DynamoDB)", &|f| {
                format!("{:.2}", f.consumer_requests)
            }),
            ("WRU writer + consumers", &|f| {
                format!(
                    "{:.2} + {:.2} = {:.2}",
                    f.writer_wru,
                    f.consumer_wru,
                    f.wru()
                )
            }),
            ("RRU writer + consumers", &|f| {
                format!(
                    "{:.2} + {:.2} = {:.2}",
                    f.writer_rru,
                    f.consumer_rru,
                    f.rru()
                )
            }),
            ("Kinesis PUT payload units", &|f| {
                format!("{:.2}", f.put_units)
            }),
            ("end-to-end p50 / p95 / p99, ms", &|f| {
                format!("{:.0} / {:.0} / {:.0}", f.p50, f.p95, f.p99)
            }),
            (
                "`GET /orders/{id}` finds the order right after the answer",
                &|f| format!("{:.1} %", f.readable_at_once * 100.0),
            ),
            (
                "read-your-writes gap p50 / p95 / p99, ms",
                &|f| match f.read_gap {
                    Some((a, b, c)) => format!("{a:.0} / {b:.0} / {c:.0}"),
                    None => "0 (none missed)".into(),
                },
            ),
            ("bytes stored one day later: kept / expiring later", &|f| {
                format!("{:.0} / {:.0}", f.kept_bytes, f.expiring_bytes)
            }),
            ("**a month at 1,000,000 orders a day**", &|f| {
                format!("**{}**", money(f.month_total(shards)))
            }),
            ("… of which DynamoDB requests", &|f| {
                money(f.month_dynamodb_requests())
            }),
            ("… of which Kinesis (provisioned)", &|f| {
                money(f.month_kinesis(shards))
            }),
            ("… of which DynamoDB storage (first month)", &|f| {
                money(f.month_storage())
            }),
        ],
    )
}

/// When, where and with what settings the figures were taken.
fn run(runs: &[PatternRun], figures: &[Figures], ctx: &Context<'_>) -> String {
    let opts = ctx.opts;
    let mut rows = vec![
        (
            "date, commit, duration".to_owned(),
            format!(
                "{}, `{}`, {:.0} s",
                ctx.date, ctx.commit, ctx.elapsed_seconds
            ),
        ),
        (
            "orders".into(),
            format!(
                "{} over {} customers (the busiest placed {}), seed {}",
                opts.orders, opts.customers, ctx.hottest_customer_orders, opts.seed
            ),
        ),
        (
            "arrival rate".into(),
            format!("{} orders a second", opts.rate_per_second),
        ),
        (
            "latency added to every request".into(),
            format!("{} ms", opts.latency.as_millis()),
        ),
        (
            "consumer concurrency".into(),
            opts.consumer_concurrency.to_string(),
        ),
        (
            "watcher's polling interval".into(),
            format!("{} ms", WATCH_INTERVAL.as_millis()),
        ),
    ];
    rows.extend(runs.iter().map(|run| {
        (
            format!("{}: polling", pattern_title(run.pattern)),
            run.polling.clone(),
        )
    }));
    rows.push((
        "capacity figures".into(),
        if figures.iter().all(|f| f.capacity_reported) {
            "reported for every side".into()
        } else {
            "**some sides got no capacity figure from the local server; their units read 0**".into()
        },
    ));
    rows.push((
        "chaos runs".into(),
        match (ctx.chaos.is_empty(), ctx.chaos_orders) {
            (true, _) => "none given (`--chaos-dir`)".into(),
            (false, Some(n)) => format!("{n} orders a pattern"),
            (false, None) => "given, order count not said (`--chaos-orders`)".into(),
        },
    ));
    rows.push((
        "command line".into(),
        format!(
            "`patterns-compare --orders {} --customers {} --latency-ms {} --rate {} --seed {}`",
            opts.orders,
            opts.customers,
            opts.latency.as_millis(),
            opts.rate_per_second,
            opts.seed
        ),
    ));
    table(
        "| this run | |\n| --- | --- |",
        rows.into_iter().map(|(a, b)| vec![a, b]),
    )
}

/// Requests and capacity per order by side, and what pattern 3 published.
fn requests(runs: &[PatternRun]) -> String {
    let mut rows = Vec::new();
    for run in runs {
        let orders = run.seen.answered.max(1) as f64;
        for side in std::iter::once(&run.writer).chain(&run.consumers) {
            let breakdown = side
                .requests
                .iter()
                .map(|(op, n)| format!("{op} {:.2}", *n as f64 / orders))
                .collect::<Vec<_>>()
                .join(" + ");
            rows.push(vec![
                pattern_title(run.pattern).to_owned(),
                side.name.clone(),
                format!(
                    "{:.2}: {}",
                    side.total_requests() as f64 / orders,
                    if breakdown.is_empty() {
                        "none".into()
                    } else {
                        breakdown
                    }
                ),
                format!("{:.2}", side.units.write / orders),
                format!("{:.2}", side.units.read / orders),
            ]);
        }
        let reads = run
            .stream_reads
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            pattern_title(run.pattern).to_owned(),
            "stream reads by the mappings, whole run (not per order: polling)".into(),
            reads,
            "-".into(),
            "-".into(),
        ]);
    }
    let mut out = table(
        "| pattern | side | requests per order (by operation) | WRU | RRU |\n| --- | --- | --- | ---: | ---: |",
        rows,
    );
    let published: Vec<Vec<String>> = runs
        .iter()
        .filter_map(|run| {
            let k = run.kinesis.as_ref()?;
            Some(vec![
                pattern_title(run.pattern).to_owned(),
                k.records.to_string(),
                run.seen.answered.to_string(),
                k.bytes.to_string(),
                format!("{:.0}", k.bytes as f64 / k.records.max(1) as f64),
                k.payload_units.to_string(),
                k.shards.to_string(),
            ])
        })
        .collect();
    if !published.is_empty() {
        out.push('\n');
        out.push_str(&table(
            "| pattern | records published | orders | bytes | bytes a record | PUT payload units | shards |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            published,
        ));
    }
    out
}

fn latency(runs: &[PatternRun], figures: &[Figures]) -> String {
    table(
        "| pattern | orders watched | p50 ms | p95 ms | p99 ms | max ms | mapping invocations (records) |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        runs.iter().zip(figures).map(|(run, f)| {
            let max = run.seen.end_to_end_ms.iter().copied().fold(0.0, f64::max);
            let invocations = run
                .mappings
                .iter()
                .map(|(name, s)| format!("{name}: {} ({})", s.invocations, s.records_delivered))
                .collect::<Vec<_>>()
                .join("; ");
            vec![
                pattern_title(run.pattern).to_owned(),
                run.seen.end_to_end_ms.len().to_string(),
                format!("{:.0}", f.p50),
                format!("{:.0}", f.p95),
                format!("{:.0}", f.p99),
                format!("{max:.0}"),
                invocations,
            ]
        }),
    )
}

fn storage(runs: &[PatternRun]) -> String {
    let mut rows = Vec::new();
    for run in runs {
        let orders = run.seen.answered.max(1) as f64;
        for ((table, shape), kind) in &run.storage {
            let ttl = match kind.expires_within_days {
                None => "kept".to_owned(),
                Some(days) if kind.expiring_items == kind.items => {
                    format!("deleted within the day ({days:.1} d)")
                }
                Some(days) => format!("expires in {days:.1} days"),
            };
            let pending = if kind.in_pending_index > 0 {
                format!("; {} still in the pending index", kind.in_pending_index)
            } else {
                String::new()
            };
            rows.push(vec![
                pattern_title(run.pattern).to_owned(),
                table.clone(),
                format!("`{shape}`"),
                format!("{:.2}", kind.items as f64 / orders),
                format!("{:.0}", (kind.bytes - kind.expiring_bytes) as f64 / orders),
                format!("{ttl}{pending}"),
            ]);
        }
    }
    table(
        "| pattern | table | key shape (pk / sk) | items per order | bytes per order | TTL |\n| --- | --- | --- | ---: | ---: | --- |",
        rows,
    )
}

fn cost(figures: &[Figures], shards: usize) -> String {
    by_pattern(
        "",
        figures,
        &[
            ("DynamoDB write request units", &|f| {
                money(f.wru() * ORDERS_PER_DAY * DAYS_PER_MONTH * DYNAMODB_WRU_PER_MILLION / 1e6)
            }),
            ("DynamoDB read request units", &|f| {
                money(f.rru() * ORDERS_PER_DAY * DAYS_PER_MONTH * DYNAMODB_RRU_PER_MILLION / 1e6)
            }),
            ("Kinesis shard-hours + PUT payload units", &|f| {
                money(f.month_kinesis(shards))
            }),
            ("DynamoDB storage, first month", &|f| {
                money(f.month_storage())
            }),
            ("**total**", &|f| {
                format!("**{}**", money(f.month_total(shards)))
            }),
            ("storage added for good each month", &|f| {
                format!("{:.1} GB", f.kept_gb_per_month())
            }),
        ],
    )
}

/// Each chaos run's summary lines, or that none were given.
fn chaos(ctx: &Context<'_>) -> String {
    if ctx.chaos.is_empty() {
        return "No chaos runs were given to this run (`--chaos-dir`).".into();
    }
    ctx.chaos
        .iter()
        .map(|(pattern, lines)| {
            format!(
                "**{}**\n\n```text\n{}\n```\n",
                pattern_title(*pattern),
                lines.join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn pattern_title(pattern: Pattern) -> &'static str {
    match pattern {
        Pattern::Outbox => "1 outbox",
        Pattern::Cdc => "2 CDC",
        Pattern::SelfRead => "3 self-read",
        Pattern::Broker => "outbox via EventBridge",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::storage::Kind;
    use super::super::watch::Seen;
    use super::super::{KinesisPuts, Side};
    use super::*;

    fn run(pattern: Pattern, kinesis: Option<KinesisPuts>) -> PatternRun {
        let orders = 4;
        PatternRun {
            pattern,
            writer: Side {
                name: "writer".into(),
                requests: BTreeMap::from([("PutItem".into(), 4)]),
                units: Default::default(),
            },
            consumers: vec![],
            stream_reads: BTreeMap::from([("GetRecords".into(), 9)]),
            kinesis,
            seen: Seen {
                answered: orders,
                end_to_end_ms: vec![100.0, 200.0, 300.0, 400.0],
                readable_at_once: orders,
                read_gap_ms: vec![],
            },
            storage: BTreeMap::from([(
                ("orders".into(), "ORDER#… / ORDER".into()),
                Kind {
                    items: 4,
                    bytes: 2000,
                    ..Default::default()
                },
            )]),
            mappings: vec![],
            polling: "every second".into(),
            elapsed: Duration::from_secs(1),
        }
    }

    fn context(opts: &Options) -> Context<'_> {
        Context {
            opts,
            date: "2026-01-01T00:00:00Z".into(),
            commit: "abc1234".into(),
            machine: "- CPU: test\n".into(),
            hottest_customer_orders: 2,
            elapsed_seconds: 3.0,
            chaos: vec![],
            chaos_orders: None,
        }
    }

    fn options() -> Options {
        Options {
            orders: 4,
            customers: 2,
            seed: 7,
            latency: Duration::from_millis(10),
            rate_per_second: 50.0,
            consumer_concurrency: 100,
            settle_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_document_has_every_region_the_tool_writes() {
        let path = crate::workspace_root().join("docs").join("patterns.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        check(&doc).unwrap();
    }

    #[test]
    fn a_run_rewrites_the_figures_and_keeps_the_prose() {
        let path = crate::workspace_root().join("docs").join("patterns.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let puts = KinesisPuts {
            records: 4,
            payload_units: 4,
            bytes: 2400,
            shards: 2,
        };
        let runs = [
            run(Pattern::Outbox, None),
            run(Pattern::SelfRead, Some(puts)),
        ];
        let opts = options();
        let written = write_into(&doc, &runs, &context(&opts)).unwrap();
        let outside = |text: &str| {
            let mut inside = false;
            text.lines()
                .filter(|line| {
                    if line.starts_with("<!-- begin: ") {
                        inside = true;
                    } else if line.starts_with("<!-- end: ") {
                        inside = false;
                        return false;
                    }
                    !inside
                })
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(outside(&written), outside(&doc));
        assert!(written.contains("| 1 outbox | writer | 1.00: PutItem 1.00 | 0.00 | 0.00 |"));
        assert!(written
            .contains("| end-to-end p50 / p95 / p99, ms | 200 / 400 / 400 | 200 / 400 / 400 |"));
        assert!(written.contains("| 3 self-read | 4 | 4 | 2400 | 600 | 4 | 2 |"));
        assert!(written.contains("No chaos runs were given to this run (`--chaos-dir`)."));
        assert!(written.contains(
            "`patterns-compare --orders 4 --customers 2 --latency-ms 10 --rate 50 --seed 7`"
        ));
        // Written again from the same runs, the document does not change.
        assert_eq!(
            write_into(&written, &runs, &context(&opts)).unwrap(),
            written
        );
    }
}
