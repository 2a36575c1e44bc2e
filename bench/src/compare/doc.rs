//! `docs/patterns.md`'s figures: the tables of one run, written into the document's marked
//! regions (`crate::regions`). The prose around them, how the figures were taken, what they mean
//! and what they cannot show, is written by hand in the document.

use std::fmt::Write as _;

use devkit::Pattern;

use super::figures::{month_of, Figures};
use super::prices::*;
use super::watch::WATCH_INTERVAL;
use super::{Options, PatternRun};

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

/// A table with one column a pattern, one row a figure: `cells` gives each figure's label and
/// a pattern's cell, the same labels in the same order for every pattern.
fn by_pattern(
    corner: &str,
    figures: &[Figures],
    cells: impl Fn(&Figures) -> Vec<(&'static str, String)>,
) -> String {
    let cols: Vec<&str> = figures.iter().map(|f| pattern_title(f.pattern)).collect();
    let rule = vec!["---:"; figures.len()].join(" | ");
    let corner = if corner.is_empty() {
        " ".to_owned()
    } else {
        format!(" {corner} ")
    };
    let mut out = format!("|{corner}| {} |\n| --- | {rule} |\n", cols.join(" | "));
    let columns: Vec<_> = figures.iter().map(cells).collect();
    for (row, (label, _)) in columns.first().into_iter().flatten().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|c| c[row].1.as_str()).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
    out
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

/// The shards of the Kinesis stream the runs published to (0: none did).
pub fn kinesis_shards(runs: &[PatternRun]) -> usize {
    runs.iter()
        .find_map(|r| r.kinesis.as_ref().map(|k| k.shards))
        .unwrap_or(0)
}

pub fn headline(figures: &[Figures], shards: usize) -> String {
    let two = |x: f64| format!("{x:.2}");
    // The writer's share, the consumers', and both.
    let sides = |w: f64, c: f64| format!("{w:.2} + {c:.2} = {:.2}", w + c);
    let ms = |(a, b, c): (f64, f64, f64)| format!("{a:.0} / {b:.0} / {c:.0}");
    by_pattern("per order, unless said", figures, |f| {
        let read_gap = f.read_gap.map_or_else(|| "0 (none missed)".into(), ms);
        let broker = format!("{} + {}", two(f.broker_events), two(f.sqs_requests));
        let readable = format!("{:.1} %", f.readable_at_once * 100.0);
        let stored = format!("{:.0} / {:.0}", f.kept_bytes, f.expiring_bytes);
        vec![
            ("requests, writer side (API)", two(f.writer_requests)),
            (
                "requests, consumer side (DynamoDB)",
                two(f.consumer_requests),
            ),
            (
                "WRU writer + consumers",
                sides(f.writer_wru, f.consumer_wru),
            ),
            (
                "RRU writer + consumers",
                sides(f.writer_rru, f.consumer_rru),
            ),
            ("Kinesis PUT payload units", two(f.put_units)),
            ("EventBridge events + SQS requests", broker),
            ("end-to-end p50 / p95 / p99, ms", ms((f.p50, f.p95, f.p99))),
            (
                "`GET /orders/{id}` finds the order right after the answer",
                readable,
            ),
            ("read-your-writes gap p50 / p95 / p99, ms", read_gap),
            ("bytes stored one day later: kept / expiring later", stored),
            (
                "**a month at 1,000,000 orders a day**",
                format!("**{}**", money(f.month_total(shards))),
            ),
            (
                "… of which DynamoDB requests",
                money(f.month_dynamodb_requests()),
            ),
            (
                "… of which Kinesis (provisioned)",
                money(f.month_kinesis(shards)),
            ),
            ("… of which EventBridge and SQS", money(f.month_broker())),
            (
                "… of which DynamoDB storage (first month)",
                money(f.month_storage()),
            ),
        ]
    })
}

/// When, where and with what settings the figures were taken.
fn run(runs: &[PatternRun], figures: &[Figures], ctx: &Context<'_>) -> String {
    let opts = ctx.opts;
    let (latency, rate, seed) = (opts.latency.as_millis(), opts.rate_per_second, opts.seed);
    let (orders, customers) = (opts.orders, opts.customers);
    let mut out = format!(
        "| this run | |\n| --- | --- |\n\
         | date, commit, duration | {}, `{}`, {:.0} s |\n\
         | orders | {orders} over {customers} customers (the busiest placed {}), seed {seed} |\n\
         | arrival rate | {rate} orders a second |\n\
         | latency added to every request | {latency} ms |\n\
         | consumer concurrency | {} |\n\
         | watcher's polling interval | {} ms |\n",
        ctx.date,
        ctx.commit,
        ctx.elapsed_seconds,
        ctx.hottest_customer_orders,
        opts.consumer_concurrency,
        WATCH_INTERVAL.as_millis(),
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {}: polling | {} |",
            pattern_title(run.pattern),
            run.polling
        );
    }
    let capacity = if figures.iter().all(|f| f.capacity_reported) {
        "reported for every side"
    } else {
        "**some sides got no capacity figure from the local server; their units read 0**"
    };
    let chaos = match (ctx.chaos.is_empty(), ctx.chaos_orders) {
        (true, _) => "none given (`--chaos-dir`)".into(),
        (false, Some(n)) => format!("{n} orders a pattern"),
        (false, None) => "given, order count not said (`--chaos-orders`)".into(),
    };
    let _ = writeln!(
        out,
        "| capacity figures | {capacity} |\n| chaos runs | {chaos} |\n| command line | \
         `patterns-compare --orders {orders} --customers {customers} --latency-ms {latency} --rate {rate} --seed {seed}` |"
    );
    out
}

/// `op n` of every operation, joined by `sep`; `none` when there is no operation.
fn joined<'a>(ops: impl Iterator<Item = (&'a String, String)>, sep: &str, none: &str) -> String {
    let ops: Vec<String> = ops.map(|(op, n)| format!("{op} {n}")).collect();
    if ops.is_empty() {
        none.into()
    } else {
        ops.join(sep)
    }
}

/// Requests and capacity per order by side, and what pattern 3 published.
fn requests(runs: &[PatternRun]) -> String {
    let mut out = String::from(
        "| pattern | side | requests per order (by operation) | WRU | RRU |\n| --- | --- | --- | ---: | ---: |\n",
    );
    for run in runs {
        let (title, orders) = (pattern_title(run.pattern), run.seen.answered.max(1) as f64);
        let broker = run.broker.as_ref().map(super::broker::side);
        for side in std::iter::once(&run.writer)
            .chain(&run.consumers)
            .chain(&broker)
        {
            let per = |n: f64| format!("{:.2}", n / orders);
            let ops = joined(
                side.requests.iter().map(|(op, n)| (op, per(*n as f64))),
                " + ",
                "none",
            );
            let (total, wru, rru) = (
                per(side.total_requests() as f64),
                per(side.units.write),
                per(side.units.read),
            );
            let _ = writeln!(
                out,
                "| {title} | {} | {total}: {ops} | {wru} | {rru} |",
                side.name
            );
        }
        let reads = joined(
            run.stream_reads.iter().map(|(op, n)| (op, n.to_string())),
            ", ",
            "",
        );
        let side = "stream reads by the mappings, whole run (not per order: polling)";
        let _ = writeln!(out, "| {title} | {side} | {reads} | - | - |");
    }
    let published = runs
        .iter()
        .filter_map(|run| Some((run, run.kinesis.as_ref()?)));
    for (i, (run, k)) in published.enumerate() {
        if i == 0 {
            out.push_str("\n| pattern | records published | orders | bytes | bytes a record | PUT payload units | shards |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        }
        let per_record = k.bytes as f64 / k.records.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {per_record:.0} | {} | {} |",
            pattern_title(run.pattern),
            k.records,
            run.seen.answered,
            k.bytes,
            k.payload_units,
            k.shards
        );
    }
    out
}

fn latency(runs: &[PatternRun], figures: &[Figures]) -> String {
    let mut out = String::from(
        "| pattern | orders watched | p50 ms | p95 ms | p99 ms | max ms | mapping invocations (records) |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for (run, f) in runs.iter().zip(figures) {
        let e2e = &run.seen.end_to_end_ms;
        let max = e2e.iter().copied().fold(0.0, f64::max);
        let invocations: Vec<String> = (run.mappings.iter())
            .map(|(name, s)| format!("{name}: {} ({})", s.invocations, s.records_delivered))
            .collect();
        let (title, watched, invocations) = (
            pattern_title(run.pattern),
            e2e.len(),
            invocations.join("; "),
        );
        let (p50, p95, p99) = (f.p50, f.p95, f.p99);
        let _ = writeln!(
            out,
            "| {title} | {watched} | {p50:.0} | {p95:.0} | {p99:.0} | {max:.0} | {invocations} |"
        );
    }
    out
}

fn storage(runs: &[PatternRun]) -> String {
    let mut out = String::from(
        "| pattern | table | key shape (pk / sk) | items per order | bytes per order | TTL |\n| --- | --- | --- | ---: | ---: | --- |\n",
    );
    for run in runs {
        let (title, orders) = (pattern_title(run.pattern), run.seen.answered.max(1) as f64);
        for ((table, shape), kind) in &run.storage {
            let ttl = match kind.expires_within_days {
                None => "kept".to_owned(),
                Some(days) if kind.expiring_items == kind.items => {
                    format!("deleted within the day ({days:.1} d)")
                }
                Some(days) => format!("expires in {days:.1} days"),
            };
            let pending = match kind.in_pending_index {
                0 => String::new(),
                n => format!("; {n} still in the pending index"),
            };
            let items = kind.items as f64 / orders;
            let bytes = (kind.bytes - kind.expiring_bytes) as f64 / orders;
            let _ = writeln!(
                out,
                "| {title} | {table} | `{shape}` | {items:.2} | {bytes:.0} | {ttl}{pending} |"
            );
        }
    }
    out
}

fn cost(figures: &[Figures], shards: usize) -> String {
    let month = |units: f64, price: f64| money(month_of(units, price));
    by_pattern("", figures, |f| {
        let wru = month(f.wru(), DYNAMODB_WRU_PER_MILLION);
        let rru = month(f.rru(), DYNAMODB_RRU_PER_MILLION);
        let total = format!("**{}**", money(f.month_total(shards)));
        let kept = format!("{:.1} GB", f.kept_gb_per_month());
        vec![
            ("DynamoDB write request units", wru),
            ("DynamoDB read request units", rru),
            (
                "Kinesis shard-hours + PUT payload units",
                money(f.month_kinesis(shards)),
            ),
            ("EventBridge events + SQS requests", money(f.month_broker())),
            ("DynamoDB storage, first month", money(f.month_storage())),
            ("**total**", total),
            ("storage added for good each month", kept),
        ]
    })
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
#[path = "doc_tests.rs"]
mod tests;
