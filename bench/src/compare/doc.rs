//! `docs/patterns.md`: the figures of one run, how they were taken, and what they cannot show.

use std::fmt::Write as _;

use devkit::Pattern;

use super::prices::*;
use super::watch::{percentile, WATCH_INTERVAL};
use super::{Options, PatternRun};

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

/// Everything the document needs besides the runs.
pub struct Context<'a> {
    pub opts: &'a Options,
    pub date: String,
    pub commit: String,
    pub machine: String,
    pub hottest_customer_orders: usize,
    pub elapsed_seconds: f64,
    /// (pattern, chaos summary lines, orders) per pattern, when the chaos runs were given.
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

pub fn render(runs: &[PatternRun], ctx: &Context<'_>) -> String {
    let figures: Vec<Figures> = runs.iter().map(Figures::of).collect();
    let shards = runs
        .iter()
        .find_map(|r| r.kinesis.as_ref().map(|k| k.shards))
        .unwrap_or(0);
    let opts = ctx.opts;
    let mut d = String::new();
    let cols = figures
        .iter()
        .map(|f| pattern_title(f.pattern))
        .collect::<Vec<_>>()
        .join(" | ");
    let rule = figures
        .iter()
        .map(|_| "---:")
        .collect::<Vec<_>>()
        .join(" | ");
    let row = |d: &mut String, label: &str, cell: &dyn Fn(&Figures) -> String| {
        let cells = figures.iter().map(cell).collect::<Vec<_>>().join(" | ");
        let _ = writeln!(d, "| {label} | {cells} |");
    };

    let _ = writeln!(d, "# The three patterns, measured side by side\n");
    let _ = writeln!(
        d,
        "Written by `make compare` from one run on {} (commit `{}`, {:.0} s). Every figure below \
         is from that run unless it says otherwise; the machine is at the end. The same workload \
         and the same added latency went to every pattern.\n",
        ctx.date, ctx.commit, ctx.elapsed_seconds
    );
    let _ = writeln!(
        d,
        "![end-to-end latency and monthly cost per pattern](patterns.svg)\n"
    );
    let _ = writeln!(d, "| per order, unless said | {cols} |\n| --- | {rule} |");
    row(&mut d, "requests, writer side (API)", &|f| {
        format!("{:.2}", f.writer_requests)
    });
    row(&mut d, "requests, consumer side (DynamoDB)", &|f| {
        format!("{:.2}", f.consumer_requests)
    });
    row(&mut d, "WRU writer + consumers", &|f| {
        format!(
            "{:.2} + {:.2} = {:.2}",
            f.writer_wru,
            f.consumer_wru,
            f.wru()
        )
    });
    row(&mut d, "RRU writer + consumers", &|f| {
        format!(
            "{:.2} + {:.2} = {:.2}",
            f.writer_rru,
            f.consumer_rru,
            f.rru()
        )
    });
    row(&mut d, "Kinesis PUT payload units", &|f| {
        format!("{:.2}", f.put_units)
    });
    row(&mut d, "end-to-end p50 / p95 / p99, ms", &|f| {
        format!("{:.0} / {:.0} / {:.0}", f.p50, f.p95, f.p99)
    });
    row(
        &mut d,
        "`GET /orders/{id}` finds the order right after the answer",
        &|f| format!("{:.1} %", f.readable_at_once * 100.0),
    );
    row(
        &mut d,
        "read-your-writes gap p50 / p95 / p99, ms",
        &|f| match f.read_gap {
            Some((a, b, c)) => format!("{a:.0} / {b:.0} / {c:.0}"),
            None => "0 (none missed)".into(),
        },
    );
    row(
        &mut d,
        "bytes stored one day later: kept / expiring later",
        &|f| format!("{:.0} / {:.0}", f.kept_bytes, f.expiring_bytes),
    );
    row(&mut d, "**a month at 1,000,000 orders a day**", &|f| {
        format!("**{}**", money(f.month_total(shards)))
    });
    row(&mut d, "… of which DynamoDB requests", &|f| {
        money(f.month_dynamodb_requests())
    });
    row(&mut d, "… of which Kinesis (provisioned)", &|f| {
        money(f.month_kinesis(shards))
    });
    row(
        &mut d,
        "… of which DynamoDB storage (first month)",
        &|f| money(f.month_storage()),
    );
    let _ = writeln!(d);

    // Workload and method.
    let _ = writeln!(d, "## Workload and method\n");
    let _ = writeln!(
        d,
        "- **Orders**: {} orders over {} customers, customer *k* drawn with weight 1/*k* (Zipf, \
         exponent 1; the busiest customer placed {} orders), seed {}, one item of 1-3 units each. \
         The same orders, in the same order, at the same arrival times for every pattern: {} \
         orders a second, open loop (an order does not wait for the previous answer).",
        opts.orders, opts.customers, ctx.hottest_customer_orders, opts.seed, opts.rate_per_second
    );
    let _ = writeln!(
        d,
        "- **Latency**: {} ms added to every request to every AWS-compatible server, by the \
         project's fault proxy (`devkit/src/proxy.rs`, `FaultPlan::latency`, no faults): one \
         proxy per function and per stream reader, so each side's requests are counted apart. \
         DynamoDB is the embedded dynoxide, Kinesis is kinesalite 3.3.3.",
        opts.latency.as_millis()
    );
    let _ = writeln!(
        d,
        "- **Handlers**: each pattern's real handlers, in process: the order API \
         (`order_api::respond` on the pattern's order store, or the self-read API publishing to \
         Kinesis), the consumers behind the local event source mappings (`devkit::Trigger`, \
         `devkit::kinesis_trigger`) with the settings of the pattern's SAM template, consumer \
         concurrency {}.",
        opts.consumer_concurrency
    );
    for run in runs {
        let _ = writeln!(d, "  - {}: {}.", pattern_title(run.pattern), run.polling);
    }
    let _ = writeln!(
        d,
        "- **Capacity**: every DynamoDB request of the functions asks for `ReturnConsumedCapacity: \
         TOTAL` (an SDK interceptor) and the answers are summed per side: WRU and RRU are what the \
         server reports, as on-demand bills them.{}",
        if figures.iter().all(|f| f.capacity_reported) {
            ""
        } else {
            " **Some sides got no capacity figure from the local server; their units read 0.**"
        }
    );
    let _ = writeln!(
        d,
        "- **Kinesis PUT payload units**: computed from the records in the stream after the run \
         (data plus partition key, in 25 KB units, at least one per record), as Kinesis bills a put."
    );
    let _ = writeln!(
        d,
        "- **End to end**: from the moment the API's answer returned to the moment a watcher saw \
         the order's entry in the rewards API (`rewards_of`, the `GET /customers/{{id}}/rewards` \
         handler's read), polling every {} ms on a direct client (not through the proxies, so \
         neither delayed nor counted): the resolution of every latency here is that interval.",
        WATCH_INTERVAL.as_millis()
    );
    let _ = writeln!(
        d,
        "- **Read-your-writes**: right after each answer one `GET /orders/{{id}}` read (the \
         pattern's `OrderStore::get_order`, strongly consistent); the orders it missed were \
         watched until found.\n"
    );

    // Requests and capacity per side.
    let _ = writeln!(d, "## Requests and capacity per order, by side\n");
    let _ = writeln!(d, "| pattern | side | requests per order (by operation) | WRU | RRU |\n| --- | --- | --- | ---: | ---: |");
    for run in runs {
        let orders = run.seen.answered.max(1) as f64;
        for side in std::iter::once(&run.writer).chain(&run.consumers) {
            let breakdown = side
                .requests
                .iter()
                .map(|(op, n)| format!("{op} {:.2}", *n as f64 / orders))
                .collect::<Vec<_>>()
                .join(" + ");
            let _ = writeln!(
                d,
                "| {} | {} | {:.2}: {} | {:.2} | {:.2} |",
                pattern_title(run.pattern),
                side.name,
                side.total_requests() as f64 / orders,
                if breakdown.is_empty() {
                    "none".into()
                } else {
                    breakdown
                },
                side.units.write / orders,
                side.units.read / orders
            );
        }
        let reads = run
            .stream_reads
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            d,
            "| {} | stream reads by the mappings, whole run (not per order: polling) | {} | - | - |",
            pattern_title(run.pattern),
            reads
        );
    }
    let _ = writeln!(d);
    for run in runs {
        if let Some(k) = &run.kinesis {
            let _ = writeln!(
                d,
                "{}: {} records published for {} orders, {} bytes ({:.0} bytes a record), {} PUT payload units, {} shards.\n",
                pattern_title(run.pattern),
                k.records,
                run.seen.answered,
                k.bytes,
                k.bytes as f64 / k.records.max(1) as f64,
                k.payload_units,
                k.shards
            );
        }
    }
    let _ = writeln!(
        d,
        "Stream reads are not billed per request: Lambda's reads of a DynamoDB stream are free, \
         and a provisioned Kinesis stream's reads are within its shard-hours (with two \
         consumers, pattern 3 reads every record twice; five reads a second per shard is the \
         shared limit).\n"
    );

    // Latency.
    let _ = writeln!(d, "## End-to-end latency\n");
    let _ = writeln!(d, "| pattern | orders watched | p50 ms | p95 ms | p99 ms | max ms | mapping invocations (records) |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (run, f) in runs.iter().zip(&figures) {
        let max = run.seen.end_to_end_ms.iter().copied().fold(0.0, f64::max);
        let invocations = run
            .mappings
            .iter()
            .map(|(name, s)| format!("{name}: {} ({})", s.invocations, s.records_delivered))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            d,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            pattern_title(run.pattern),
            run.seen.end_to_end_ms.len(),
            f.p50,
            f.p95,
            f.p99,
            max,
            invocations
        );
    }
    let _ = writeln!(
        d,
        "\nThe polling interval is most of it: a record waits on average half an interval for \
         the next poll (a mapping that has caught up sleeps one interval between polls), then \
         the consumer's round trips. On AWS, Lambda's own pollers add their own delay, which \
         these local mappings do not reproduce.\n"
    );

    // Storage.
    let _ = writeln!(d, "## Stored bytes per order one day later\n");
    let _ = writeln!(
        d,
        "Every item of the pattern's tables after the run, sized by DynamoDB's rules (attribute \
         names plus values) plus the 100 bytes of overhead DynamoDB bills per item, grouped by \
         key shape; an item whose `expires_at` falls within the day is counted as deleted by \
         TTL (the \"day later\" is simulated by that test, not waited for; DynamoDB's TTL \
         deletes usually within a few days of expiry, so real storage may lag). Kinesis keeps \
         every record 24 hours (the template's `RetentionPeriodHours`) within its shard-hours.\n"
    );
    let _ = writeln!(d, "| pattern | table | key shape (pk / sk) | items per order | bytes per order | TTL |\n| --- | --- | --- | ---: | ---: | --- |");
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
            let _ = writeln!(
                d,
                "| {} | {table} | `{shape}` | {:.2} | {:.0} | {ttl}{} |",
                pattern_title(run.pattern),
                kind.items as f64 / orders,
                (kind.bytes - kind.expiring_bytes) as f64 / orders,
                if kind.in_pending_index > 0 {
                    format!("; {} still in the pending index", kind.in_pending_index)
                } else {
                    String::new()
                }
            );
        }
    }
    let _ = writeln!(d);

    // Cost.
    let _ = writeln!(d, "## A month at 1,000,000 orders a day\n");
    let _ = writeln!(
        d,
        "Per-order units from this run × 1,000,000 × {DAYS_PER_MONTH:.2} days, at on-demand \
         DynamoDB prices; pattern 3's Kinesis stream as its template deploys it (provisioned, \
         {shards} shards: 11.6 orders a second need one shard's 1,000 records a second, the \
         template asks for {shards}). Storage: what TTL keeps at steady state, plus half a month \
         of what is kept for good (the ledger and reward records grow by the figure below every \
         month and cost it again every month after). Not counted, the same or close in all three: \
         Lambda invocations and duration, API Gateway, CloudWatch; pattern 3 runs one more \
         consumer function.\n"
    );
    let _ = writeln!(d, "| | {cols} |\n| --- | {rule} |");
    row(&mut d, "DynamoDB write request units", &|f| {
        money(f.wru() * ORDERS_PER_DAY * DAYS_PER_MONTH * DYNAMODB_WRU_PER_MILLION / 1e6)
    });
    row(&mut d, "DynamoDB read request units", &|f| {
        money(f.rru() * ORDERS_PER_DAY * DAYS_PER_MONTH * DYNAMODB_RRU_PER_MILLION / 1e6)
    });
    row(&mut d, "Kinesis shard-hours + PUT payload units", &|f| {
        money(f.month_kinesis(shards))
    });
    row(&mut d, "DynamoDB storage, first month", &|f| {
        money(f.month_storage())
    });
    row(&mut d, "**total**", &|f| {
        format!("**{}**", money(f.month_total(shards)))
    });
    row(&mut d, "storage added for good each month", &|f| {
        format!("{:.1} GB", f.kept_gb_per_month())
    });
    let _ = writeln!(d, "\nPrices used, with their sources:\n\n{SOURCES}\n");

    // Faults.
    let _ = writeln!(d, "## Under the same faults\n");
    match ctx.chaos_orders {
        Some(n) => {
            let _ = writeln!(
                d,
                "`make chaos PATTERN=<p> ORDERS={n} YES=1` for each pattern, in the same `make \
                 compare` (the chaos tool's own seed and fault probabilities per request: 5xx, \
                 throttling, lost responses, transaction conflicts, racing mappings, crashes \
                 between writes, applied to the requests each pattern makes; pattern 3's writer \
                 faults are on `PutRecord`). No added latency here. Its summary lines (`OutboxLag` \
                 is the time from the write to the apply):\n"
            );
            for (pattern, lines) in &ctx.chaos {
                let _ = writeln!(
                    d,
                    "**{}**\n\n```text\n{}\n```\n",
                    pattern_title(*pattern),
                    lines.join("\n")
                );
            }
        }
        None => {
            let _ = writeln!(d, "No chaos runs were given to this run (`--chaos-dir`).\n");
        }
    }
    let _ = writeln!(d, "{FAULTS}\n");
    let _ = writeln!(
        d,
        "## Which pattern when\n\n{}\n",
        which_when(&figures, shards)
    );
    let _ = writeln!(d, "{LIMITS}\n");
    let _ = writeln!(d, "## Machine\n\n{}", ctx.machine);
    let _ = writeln!(
        d,
        "Reproduce: `make compare` (COMPARE_ORDERS, COMPARE_CUSTOMERS, COMPARE_LATENCY_MS, \
         COMPARE_RATE, CHAOS_ORDERS); this run: `--orders {} --customers {} --latency-ms {} --rate {} --seed {}`.",
        opts.orders,
        opts.customers,
        opts.latency.as_millis(),
        opts.rate_per_second,
        opts.seed
    );
    d
}

/// What each pattern does when something fails, from its code and tests (the chaos runs above
/// show it holding under load).
const FAULTS: &str = "What is delayed, and what needs the sweeper, by pattern:

- **1 outbox.** A failed or throttled write answers the client with an error and writes nothing
  (the order and its event are one transaction). A delivery the stream consumer cannot finish is
  retried by the mapping; a customer's later events wait for the earlier ones (per-customer
  sequence), so one customer's stuck event delays that customer only. An event the stream never
  delivers (a batch past the retry cap) stays in the sparse `PendingOutbox` index, and the
  **sweeper** applies it after the grace period: the sweeper is the redrive.
- **2 CDC.** The same as the outbox for the consumer side (the order item carries the pending
  marker, the **sweeper** reads the same index), with one write fewer on the writer side. No
  order across a customer's orders: a redelivered early order is applied late, nothing waits
  (`tests/guarantees.rs` `cdc::one_customers_orders_are_applied_in_the_promised_order`).
- **3 self-read.** A publish Kinesis refuses answers 503 and nothing is written; a lost response
  is the client's to retry (with an Idempotency-Key, safe). There is **no sweeper**: a batch a
  mapping gives up on goes to the on-failure queue as a shard and sequence range and stays
  readable in the stream for 24 hours; an operator replays it. Both consumers, order-history and
  rewards, are delayed together when a shard stalls, and `GET /orders/{id}` answers 404 until
  order-history catches up (the read-your-writes gap above).

**A schema change of the order item** (pattern 2, `tests/cdc.rs`): an attribute the order item
gains changes nothing for the rewards consumer
(`an_attribute_the_order_item_gains_changes_nothing_for_the_rewards_consumer`); one renamed is
*reported*, not parked: the adapter cannot build the event, the order stays marked pending, the
stream retries it to the retry cap, every sweep reports its key, and once the adapter learns the
new name the next sweep applies it once
(`an_attribute_renamed_in_the_order_item_is_reported_not_parked_until_the_adapter_learns_it`).
Patterns 1 and 3 publish a versioned event, so the order item's shape is the order service's
own business.";

/// What this run cannot show.
const LIMITS: &str = "## What the local servers cannot show

- **Absolute latency on AWS.** The added latency is a constant per request; AWS's varies, and
  Lambda's pollers, cold starts and the batching of a real event source mapping add their own
  time. The ranking by polling interval and round trips carries over; the milliseconds do not.
- **Capacity and throttling.** dynoxide reports `ConsumedCapacity` by DynamoDB's rules but never
  throttles; kinesalite does not enforce the shard limits (1,000 records or 1 MB a second in,
  five reads a second per shard, shared by pattern 3's two consumers).
- **TTL timing.** The day is simulated: items expiring within it are counted as deleted;
  DynamoDB deletes expired items usually within a few days.
- **Streams.** dynoxide has one stream shard; DynamoDB splits a busy table's stream into many,
  which changes batch sizes and parallelism. Kinesis resharding is not exercised.
- **Prices.** Stated with their sources above, not fetched from AWS at run time.";

/// Which pattern when, from the figures of this run: each sentence names the figure it rests on.
fn which_when(figures: &[Figures], shards: usize) -> String {
    let by = |key: &dyn Fn(&Figures) -> f64| -> Option<&Figures> {
        figures.iter().min_by(|a, b| key(a).total_cmp(&key(b)))
    };
    let mut out = Vec::new();
    if let Some(cheapest) = by(&|f| f.month_total(shards)) {
        let dearest = figures
            .iter()
            .map(|f| f.month_total(shards))
            .fold(0.0, f64::max);
        out.push(format!(
            "**Cost first:** {} is the cheapest here ({} a month at a million orders a day against up to {}), because it makes the fewest write units per order ({:.2} WRU).",
            pattern_title(cheapest.pattern),
            money(cheapest.month_total(shards)),
            money(dearest),
            cheapest.wru()
        ));
    }
    if let Some(fastest) = by(&|f| f.p99) {
        out.push(format!(
            "**Latency first:** {} shows the reward soonest (p99 {:.0} ms); the rest of the differences are mostly each mapping's polling interval, a setting, not the pattern.",
            pattern_title(fastest.pattern),
            fastest.p99
        ));
    }
    let gaps: Vec<&Figures> = figures.iter().filter(|f| f.read_gap.is_some()).collect();
    for f in gaps {
        if let Some((_, _, p99)) = f.read_gap {
            out.push(format!(
                "**Read-your-writes:** {} is the only pattern whose API answers before the order can be read ({:.1} % found right after the answer; p99 {:.0} ms until readable); a client that reads its order back right away needs pattern 1 or 2, or must honour `Retry-After`.",
                pattern_title(f.pattern),
                f.readable_at_once * 100.0,
                p99
            ));
        }
    }
    if let Some(least_stored) = by(&|f| f.kept_bytes + f.expiring_bytes) {
        out.push(format!(
            "**Storage:** {} keeps the least a day later ({:.0} bytes an order, what is kept for good and what TTL deletes later together).",
            pattern_title(least_stored.pattern),
            least_stored.kept_bytes + least_stored.expiring_bytes
        ));
    }
    out.push(
        "**Coupling and order:** pattern 2's savings come with its consumer reading the order \
         item's own attributes (a rename is a coordinated change, above) and with no order across \
         one customer's orders; pattern 1 is the one that keeps a per-customer sequence and a \
         versioned event. Choose 2 when the consumers are few, owned by the same team, and do not \
         need per-customer order (rewards add up in any order); choose 1 when they need either; \
         choose 3 when the API may answer before the write is readable and a stream of events is \
         wanted anyway (several consumers, replay for 24 hours)."
            .to_owned(),
    );
    out.join("\n\n")
}

pub fn pattern_title(pattern: Pattern) -> &'static str {
    match pattern {
        Pattern::Outbox => "1 outbox",
        Pattern::Cdc => "2 CDC",
        Pattern::SelfRead => "3 self-read",
    }
}
