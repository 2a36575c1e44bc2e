//! `outbox-bench`: runs the benchmark suite, prints one table, and writes it, its notes and the
//! machine into the marked regions of `docs/benchmarks.md` (the prose there is written by hand),
//! and the consumer chart to `docs/consumer-latency.svg`. `make bench` builds everything it needs first (see the Makefile).
//!
//! `--help` lists the flags; `make bench-consumer` is `--consumer-only`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::builder::FalseyValueParser;
use clap::Parser;
use devkit::{LocalDynamo, Stack};
use outbox_bench::accounting::{self, Accounting};
use outbox_bench::chart::{self, LatencyChart, Points};
use outbox_bench::consumer::{floor, ConsumerLab};
use outbox_bench::engine_consumer::{self, REGION as ENGINE_SHAPES};
use outbox_bench::functions::{self, FUNCTIONS};
use outbox_bench::machine::Machine;
use outbox_bench::records::Shape;
use outbox_bench::report::{median, ms, thousands, us, Report, Row, Section};
use outbox_bench::{criterion_results, regions, size, throughput, workspace_root};
use service_runtime::config;

/// The bench's goals, in one place.
mod goals {
    pub const SPEEDUP_AT_25MS: f64 = 15.0;
    /// One strongly consistent read of the customer's sequence counter and one transaction: the
    /// counter is what keeps a customer's events in order across shards (the engine's design;
    /// before it the writer made the transaction alone).
    pub const WRITER_REQUESTS: f64 = 2.0;
    pub const CONSUMER_REQUESTS: f64 = 2.0;
    pub const COLD_START_MS: f64 = 4.0;
    pub const ORDER_WRITER_MB: f64 = 4.0;
    pub const PEAK_RSS_MB: f64 = 40.0;
}

/// The order-writer's handler CPU that was once a goal: reported beside the figure, no longer a
/// goal (the SDK's request pipeline is most of it).
const INFORMATIVE_CPU_US: f64 = 50.0;

/// Runs the benchmark suite, prints one table, and writes its figures into `docs/benchmarks.md`
/// and `docs/consumer-latency.svg`.
///
/// The consumer's concurrency is `CONSUMER_CONCURRENCY`, read as the function reads it, so
/// another setting can be measured without a rebuild.
#[derive(Debug, Parser)]
#[command(name = "outbox-bench")]
struct Args {
    /// One repeat instead of three, fewer cold starts, fewer orders end to end.
    #[arg(long, env = "BENCH_QUICK", value_parser = FalseyValueParser::new())]
    quick: bool,
    /// Print the table; write nothing.
    #[arg(long)]
    no_write: bool,
    /// Only the engine's batch shapes: their section of `docs/benchmarks.md` is rewritten, the
    /// rest kept (`make bench-consumer`).
    #[arg(long)]
    consumer_only: bool,
    /// Only the function binaries' cold start, memory and size, printed, not written: the
    /// before/after figures of a change to the functions.
    #[arg(long)]
    functions_only: bool,
}

struct Options {
    quick: bool,
    write: bool,
    concurrency: usize,
    /// Repeats of every consumer measurement (the median is reported).
    repeats: usize,
    cold_starts: usize,
    rss_invocations: usize,
    throughput_orders: usize,
    functions_only: bool,
    consumer_only: bool,
}

impl Options {
    fn parse() -> Result<Self> {
        let args = Args::parse();
        let quick = args.quick;
        Ok(Self {
            quick,
            write: !(args.no_write || args.functions_only),
            concurrency: config::CONSUMER_CONCURRENCY.read()?,
            repeats: if quick { 1 } else { 3 },
            cold_starts: if quick { 5 } else { 20 },
            rss_invocations: 1000,
            throughput_orders: if quick { 500 } else { 1000 },
            functions_only: args.functions_only,
            consumer_only: args.consumer_only,
        })
    }
}

fn progress(what: &str) {
    eprintln!("bench: {what}");
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Options::parse()?;
    let machine = Machine::describe();
    let started = time::OffsetDateTime::now_utc();
    let clock = Instant::now();
    let mut notes = Vec::new();
    let mut sections = Vec::new();

    // The document is read first: a missing region fails now, not after minutes of measuring.
    let path = workspace_root().join("docs").join("benchmarks.md");
    let doc = if opts.write {
        let doc = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut names = Report::REGIONS.to_vec();
        names.push(ENGINE_SHAPES);
        regions::check(&doc, &names)
            .with_context(|| format!("{} cannot take the figures", path.display()))?;
        Some(doc)
    } else {
        None
    };
    if opts.functions_only {
        progress("cold start and peak RSS of the function binaries");
        let functions = functions_section(&opts, &mut notes).await?;
        let sizes = sizes(&mut notes);
        for row in functions.rows.iter().chain(&sizes.rows) {
            println!("{row:?}");
        }
        return Ok(());
    }
    if opts.consumer_only {
        progress("the engine's consumer on three batch shapes");
        let shapes = engine_consumer::measure(opts.repeats).await?;
        let section = shapes.markdown(&format!(
            "Written by `make bench-consumer` ({}) on {}, in {:.0} s, on {} × {} (1-minute load \
             average at the start: {}; the machine below is the last full run's)",
            mode(&opts),
            rfc3339(started),
            clock.elapsed().as_secs_f64(),
            machine.cpus,
            machine.cpu_model,
            machine.load_at_start,
        ));
        println!("{section}");
        if let Some(doc) = doc {
            std::fs::write(&path, regions::replace(&doc, ENGINE_SHAPES, &section)?)?;
            progress("rewrote the engine batch shapes in docs/benchmarks.md");
        }
        return Ok(());
    }
    progress("the engine's consumer on three batch shapes");
    let shapes = engine_consumer::measure(opts.repeats).await?;
    let shapes_written = clock.elapsed();

    progress("consumer batch latency through the latency-injecting proxy");
    let (section, chart_data) = consumer_latency(&opts, &mut notes).await?;
    sections.push(section);

    progress("requests, capacity and connections per order");
    sections.push(costs(
        accounting::measure(100, opts.concurrency).await?,
        &mut notes,
    ));

    progress("handler CPU (criterion estimates)");
    sections.push(cpu(&mut notes));

    progress("cold start and peak RSS of the function binaries");
    sections.push(functions_section(&opts, &mut notes).await?);

    progress("binary sizes");
    sections.push(sizes(&mut notes));

    progress("end-to-end throughput");
    sections.push(end_to_end(&opts, &machine).await?);

    let shapes = shapes.markdown(&format!(
        "Written by `make bench` ({}) on {}, in {:.0} s of the run",
        mode(&opts),
        rfc3339(started),
        shapes_written.as_secs_f64()
    ));
    let report = Report {
        sections,
        notes,
        chart_data,
        machine,
        mode: mode(&opts).into(),
        started: rfc3339(started),
        duration: clock.elapsed(),
    };
    println!("{}", report.table());
    println!("{}", report.summary());
    if let Some(doc) = doc {
        let mut figures = report.regions();
        figures.push((ENGINE_SHAPES, shapes));
        std::fs::write(&path, regions::replace_all(&doc, &figures)?)?;
        progress("wrote the figures into docs/benchmarks.md, and docs/consumer-latency.svg");
    }
    Ok(())
}

fn mode(opts: &Options) -> &'static str {
    if opts.quick {
        "BENCH_QUICK=1"
    } else {
        "full run"
    }
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Concurrent against sequential, at 25, 10 and 0 ms per request, on 100 distinct customers and
/// on 10 customers × 10; then the batch-size sweep at 25 ms for the chart.
async fn consumer_latency(opts: &Options, notes: &mut Vec<String>) -> Result<(Section, String)> {
    let c = opts.concurrency;
    let latencies = [25u64, 10, 0].map(Duration::from_millis);
    let shapes = [Shape::distinct(100), Shape::skewed(10, 10)];
    let sweep = [1usize, 10, 25, 50];
    let mut times: BTreeMap<(Duration, usize, usize, usize), Vec<Duration>> = BTreeMap::new();
    let (mut batches, mut kept) = (0usize, 0usize);

    for _ in 0..opts.repeats {
        let mut plan: Vec<(Duration, Shape)> = Vec::new();
        for latency in latencies {
            plan.extend(shapes.iter().map(|s| (latency, *s)));
        }
        plan.extend(sweep.iter().map(|n| (latencies[0], Shape::distinct(*n))));
        for (latency, shape) in plan {
            // A fresh server for each pair: the embedded DynamoDB's cost per request grows with
            // what it holds, which would make later measurements slower than earlier ones.
            let mut lab = ConsumerLab::start().await?;
            // Open the pool's connections and warm the server; not counted.
            lab.run(Duration::ZERO, c, Shape::distinct(c)).await?;
            // Concurrent and sequential back to back, so both see the same load on the machine.
            for concurrency in [c, 1] {
                let run = lab.run(latency, concurrency, shape).await?;
                batches += 1;
                kept += usize::from(run.order_kept);
                times
                    .entry((latency, shape.customers, shape.per_customer, concurrency))
                    .or_default()
                    .push(run.elapsed);
            }
        }
    }
    let mut median_of = |latency: Duration, shape: Shape, concurrency: usize| {
        median(
            times
                .get_mut(&(latency, shape.customers, shape.per_customer, concurrency))
                .map(Vec::as_mut_slice)
                .unwrap_or_default(),
        )
    };

    let mut rows = Vec::new();
    let mut serial_cost = None;
    for latency in latencies {
        for shape in shapes {
            let concurrent = median_of(latency, shape, c);
            let sequential = median_of(latency, shape, 1);
            let speedup = sequential.as_secs_f64() / concurrent.as_secs_f64();
            let figure = format!("{}, {} ms per request", shape.label(), latency.as_millis());
            let mut measured = format!(
                "{} ms concurrent vs {} ms sequential: **{speedup:.1}×**",
                ms(concurrent),
                ms(sequential)
            );
            if !latency.is_zero() {
                measured.push_str(&format!(" (floor {} ms)", ms(floor(shape, c, latency))));
            } else if shape.per_customer == 1 {
                serial_cost = Some((concurrent, sequential, shape.records()));
            }
            let headline = latency == latencies[0] && shape.per_customer == 1;
            rows.push(if headline {
                Row::at_least(figure, measured, speedup, goals::SPEEDUP_AT_25MS, "×")
            } else {
                Row::info(figure, measured)
            });
        }
    }
    rows.push(Row::holds(
        "per-customer order (ledger order = stream order, `applied_at` increasing)",
        format!("kept in {kept} of {batches} batches"),
        "preserved",
        kept == batches,
        format!("{} batches out of order", batches - kept),
    ));

    notes.push(format!(
        "Consumer: each batch is freshly placed orders (re-delivered records would all be duplicates, \
         a different workload) read from the local stream, and one `process_stream` call of the \
         rewards consumer through `FaultProxy` with the stated latency added to every request; \
         concurrent is the deployed default (`CONSUMER_CONCURRENCY` = {c} customers at a time, a \
         customer's consecutive records in one transaction, the marks after the commits), \
         sequential is the same processor one request at a time (concurrency 1, one event per \
         transaction). The floor is the longest chain of round trips (`bench/src/consumer.rs`, \
         `floor`)."
    ));
    if let Some((concurrent, sequential, n)) = serial_cost {
        let per_record = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
        notes.push(format!(
            "At 0 ms the proxy adds nothing: what remains is the local server's and the client's own \
             work, {:.2} ms per record sequential and {:.2} ms concurrent. That part does not shrink \
             with latency, so it bounds every ratio above (DynamoDB itself serves requests to \
             different items in parallel; the client's CPU is the part that stays, see the CPU \
             notes).",
            per_record(sequential),
            per_record(concurrent),
        ));
    }

    // The chart and its data: the sweep plus the 100-record batch.
    let latency = latencies[0];
    let sizes: Vec<usize> = sweep.iter().copied().chain([100]).collect();
    let mut concurrent: Points = Vec::new();
    let mut sequential: Points = Vec::new();
    let mut floors: Points = Vec::new();
    let mut data = String::from(
        "| records | concurrent (ms) | sequential (ms) | speed-up | floor (ms) |\n| ---: | ---: | ---: | ---: | ---: |\n",
    );
    for n in sizes {
        let shape = Shape::distinct(n);
        let (cc, sq, fl) = (
            median_of(latency, shape, c),
            median_of(latency, shape, 1),
            floor(shape, c, latency),
        );
        let msf = |d: Duration| d.as_secs_f64() * 1000.0;
        concurrent.push((n, msf(cc)));
        sequential.push((n, msf(sq)));
        floors.push((n, msf(fl)));
        data.push_str(&format!(
            "| {n} | {} | {} | {:.1}× | {} |\n",
            ms(cc),
            ms(sq),
            sq.as_secs_f64() / cc.as_secs_f64(),
            ms(fl)
        ));
    }
    let label = format!("concurrent ({c} customers at a time)");
    let title = format!(
        "stream-consumer batch latency, {} ms per DynamoDB request",
        latency.as_millis()
    );
    if opts.write {
        chart::draw(
            &workspace_root().join("docs").join("consumer-latency.svg"),
            &LatencyChart {
                title: &title,
                concurrent_label: &label,
                concurrent: &concurrent,
                sequential: &sequential,
                floor: &floors,
            },
        )?;
    }
    Ok((
        Section {
            title: "Stream-consumer batch latency (proxy in front of the local DynamoDB)".into(),
            rows,
        },
        data,
    ))
}

fn costs(a: Accounting, notes: &mut Vec<String>) -> Section {
    let wcu = |c: &accounting::Cost| {
        c.write_units
            .map_or_else(|| "not reported".to_owned(), |u| format!("{u:.1} WCU"))
    };
    let mut rows = vec![
        Row::at_most(
            "order-writer: DynamoDB requests per order",
            format!(
                "{:.2} ({}); a client retry with the same key: {:.2} ({})",
                a.writer.total_requests(),
                a.writer.breakdown(),
                a.writer_replay.total_requests(),
                a.writer_replay.breakdown()
            ),
            a.writer.total_requests(),
            goals::WRITER_REQUESTS,
            "",
        ),
        Row::at_most(
            "stream-consumer: DynamoDB requests per record",
            format!(
                "{:.2} ({}); a redelivered duplicate: {:.2} ({})",
                a.consumer.total_requests(),
                a.consumer.breakdown(),
                a.redelivery.total_requests(),
                a.redelivery.breakdown()
            ),
            a.consumer.total_requests(),
            goals::CONSUMER_REQUESTS,
            "",
        ),
    ];
    // The writer's one read is the customer's sequence counter (the price of per-key order);
    // anything more, or any read on the consumer's path, would be a regression.
    let reads = a.writer.reads() + a.consumer.reads() + a.redelivery.reads();
    rows.push(Row::holds(
        "reads before writes on the hot paths",
        format!("{reads:.2} reads per order"),
        "the writer's counter read only (1 per order); none on the consumer's path",
        a.writer.reads() <= 1.0 && a.consumer.reads() == 0.0 && a.redelivery.reads() == 0.0,
        format!(
            "writer {:.2}, consumer {:.2}, redelivery {:.2} per order",
            a.writer.reads(),
            a.consumer.reads(),
            a.redelivery.reads()
        ),
    ));
    rows.push(Row::info(
        "write capacity per order (`ConsumedCapacity`, as the local server reports it)",
        format!(
            "order-writer {}, stream-consumer {}",
            wcu(&a.writer),
            wcu(&a.consumer)
        ),
    ));
    let [writer, first, second, again] = a.connections;
    rows.push(Row::holds(
        "TCP connections opened (one client per process, pooled)",
        format!(
            "{writer} for {} sequential orders; consumer batch 1: {first}, batch 2: {second}, redelivery: {again}",
            a.orders
        ),
        "opened once (about the concurrency), then reused",
        // A few more than the concurrency may open in the first batch: a request that starts
        // while another's connection is still on its way back to the pool gets a new one.
        first <= 2 * a.concurrency as u64 && second == 0 && again == 0,
        if second + again > 0 {
            format!("{} new connections after the first batch", second + again)
        } else {
            format!("{first} connections for a concurrency of {}", a.concurrency)
        },
    ));
    notes.push(format!(
        "Requests are counted per operation at the proxy over {} orders; capacity comes from \
         `ConsumedCapacity` (a metering interceptor asks for it, in this pass only). A transaction \
         cancelled by its condition (replay, duplicate) returns no capacity. Connections are counted \
         by a TCP forwarder in front of the proxy; one client (one pool) serves the writer and then \
         three consumer batches, as one Lambda container keeps its client across invocations; the \
         first batch may open a few more connections than its concurrency, when a request starts \
         while another's connection is still on its way back to the pool. \
         Capacity follows DynamoDB's rules: a transactional write costs twice a standard one (and \
         a global secondary index entry is one more write): the writer's transaction is the order, \
         the outbox event (with its pending-index entry) and the customer's sequence counter, after \
         one strongly consistent read of that counter; the consumer's transaction is the reward \
         record, the ledger line, the balance and its progress, then one write marks the event \
         (and removes its index entry).",
        a.orders
    ));
    Section {
        title: "DynamoDB requests and capacity per order (counted at the proxy)".into(),
        rows,
    }
}

fn cpu(notes: &mut Vec<String>) -> Section {
    let figure = "order-writer handler CPU per request, no network";
    let goal = "informative".to_owned();
    let mut rows = Vec::new();
    let writer = ["handler", "invocation", "store_write"]
        .map(|f| criterion_results::median("order_writer", f).map(|(median, _)| median));
    match writer {
        [Ok(handler), Ok(invocation), Ok(store_write)] => {
            rows.push(Row::info(
                figure,
                format!(
                    "{} µs handler, of which {} µs the store's `TransactWriteItems` call (item \
                     encoding, the SDK's pipeline, SigV4); {} µs with the event's JSON parsed and \
                     the response serialized",
                    us(handler),
                    us(store_write),
                    us(invocation)
                ),
            ));
            let handler_us = handler.as_secs_f64() * 1e6;
            if handler_us > INFORMATIVE_CPU_US {
                notes.push(format!(
                    "Handler CPU is {:.0} µs above the 50 µs once set as a goal (dropped: meeting \
                     it would mean hand-rolling the SDK), and the split says why: the \
                     store's write, encoding the two items and the SDK's `TransactWriteItems` \
                     (answered in process), is {:.0} % of the handler ({} µs). Its profile (perf) \
                     is mostly the SDK's request pipeline and it is flat: allocation, hashing \
                     in the config bag, interceptor and runtime-component bookkeeping, header \
                     building, SHA-256 and HMAC for SigV4, JSON escaping, each a few percent, with \
                     no single hot spot to remove from outside the SDK. The project's own work \
                     (parse, validate, fingerprint, build the items, respond, log) is the other \
                     {} µs. Size optimisation is not the cause: built at `opt-level = 3` the \
                     handler measured 144 µs against 158 µs at `\"z\"` (wall-clock, one session) while \
                     tuning, within the noise of this shared machine, so the functions stay \
                     small.",
                    handler_us - INFORMATIVE_CPU_US,
                    store_write.as_secs_f64() / handler.as_secs_f64() * 100.0,
                    us(store_write),
                    us(handler.saturating_sub(store_write)),
                ));
            }
        }
        [a, b, c] => {
            let why = [a, b, c]
                .into_iter()
                .find_map(Result::err)
                .map(|e| e.to_string())
                .unwrap_or_default();
            rows.push(Row::not_measured(figure, goal, why));
        }
    }
    match criterion_results::median("stream_consumer", "batch_100") {
        Ok((batch, _)) => {
            rows.push(Row::info(
                "stream-consumer CPU per record, no network",
                format!(
                    "{} µs ({} µs per 100-record batch; two SDK calls per record)",
                    us(batch / 100),
                    us(batch)
                ),
            ));
            // Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
            let at_128_mb = batch.as_secs_f64() * 1769.0 / 128.0 * 1000.0;
            notes.push(format!(
                "On a 128 MB function (128/1,769 of a vCPU) the consumer's own CPU for a \
                 100-record batch, {:.0} ms here, would take about {at_128_mb:.0} ms: more than \
                 the 200 ms floor of the concurrent batch at 25 ms per request. There the batch \
                 is bound by CPU rather than by round trips, and more memory (so more CPU) \
                 shortens it more than more concurrency does; 128 MB is justified by memory \
                 (peak RSS below) but not by consumer latency, if that matters.",
                batch.as_secs_f64() * 1000.0
            ));
        }
        Err(e) => rows.push(Row::info(
            "stream-consumer CPU per record, no network",
            format!("not measured: {e}"),
        )),
    }
    Section {
        title: "Handler CPU (criterion)".into(),
        rows,
    }
}

async fn functions_section(opts: &Options, notes: &mut Vec<String>) -> Result<Section> {
    // The functions talk to an embedded DynamoDB with the template's tables.
    let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
    let endpoint = stack.dynamo.endpoint.clone();
    // Pattern 3's functions read their stream's name at start-up, and the publisher puts to it:
    // kinesalite, when installed (`make kinesalite`).
    // The stream is the self-read template's, which the sample Kinesis events come from: a
    // consumer refuses records of another stream.
    let stream = devkit::Template::load(&devkit::Pattern::SelfRead.template_path())?
        .kinesis_streams()?
        .into_iter()
        .next()
        .context("patterns/self-read/template.yaml has no Kinesis stream")?;
    let kinesis = devkit::kinesis::LocalKinesis::start().await;
    let mut stream_env = vec![("ORDER_EVENTS_STREAM".to_owned(), stream.name.clone())];
    match &kinesis {
        Ok(local) => {
            local.create_stream(&stream.name, stream.shard_count).await?;
            stream_env.push(("AWS_ENDPOINT_URL_KINESIS".to_owned(), local.endpoint.clone()));
        }
        Err(why) => notes.push(format!(
            "No local Kinesis ({why}): order-publisher's publishes fail, so its peak RSS is not measured."
        )),
    }
    let mut cold = Vec::new();
    let mut rss = Vec::new();
    for f in FUNCTIONS {
        let extra_env: &[(String, String)] = if f.reads_stream() { &stream_env } else { &[] };
        match functions::cold_starts(f, opts.cold_starts, &endpoint, &stack.tables, extra_env).await
        {
            Ok(mut times) => {
                let max = times.iter().copied().max().unwrap_or_default();
                let mid = median(&mut times);
                cold.push(Row::at_most(
                    format!("cold start, {} (spawn → first `next` poll)", f.name),
                    format!(
                        "{} ms median, {} ms max of {} starts",
                        ms(mid),
                        ms(max),
                        times.len()
                    ),
                    mid.as_secs_f64() * 1000.0,
                    goals::COLD_START_MS,
                    "ms",
                ));
            }
            Err(e) => cold.push(Row::not_measured(
                format!("cold start, {}", f.name),
                format!("≤ {} ms", goals::COLD_START_MS),
                format!("{e:#}"),
            )),
        }
        if f.name == "order-publisher" && kinesis.is_err() {
            rss.push(Row::not_measured(
                format!("peak RSS, {}", f.name),
                format!("≤ {} MB", goals::PEAK_RSS_MB),
                "no local Kinesis to publish to (make kinesalite)".to_owned(),
            ));
            continue;
        }
        match functions::peak_rss(f, opts.rss_invocations, &endpoint, &stack.tables, extra_env)
            .await
        {
            Ok(run) => {
                let mb = size::mb(run.peak_rss_bytes);
                rss.push(Row::at_most(
                    format!(
                        "peak RSS, {} ({} invocations)",
                        f.name,
                        thousands(run.invocations as u64)
                    ),
                    format!(
                        "{mb:.1} MB ({} responses, {} function errors, {} ms per invocation)",
                        run.counts.responses,
                        run.counts.errors,
                        ms(run.mean_invocation)
                    ),
                    mb,
                    goals::PEAK_RSS_MB,
                    "MB",
                ));
            }
            Err(e) => rss.push(Row::not_measured(
                format!("peak RSS, {}", f.name),
                format!("≤ {} MB", goals::PEAK_RSS_MB),
                format!("{e:#}"),
            )),
        }
    }
    // What the cold start is made of: most of it is loading the TLS trust roots.
    let empty = outbox_bench::target_dir().join("bench-empty-cert-dir");
    std::fs::create_dir_all(&empty)?;
    let mut by_roots = Vec::new();
    for (label, env) in functions::root_variants(&empty) {
        let mut times = functions::cold_starts(
            &FUNCTIONS[0],
            opts.cold_starts,
            &endpoint,
            &stack.tables,
            &env,
        )
        .await?;
        by_roots.push(format!("{label} {} ms", ms(median(&mut times))));
    }
    cold.push(Row::info(
        "cold start, order-writer, by where the TLS trust roots come from",
        by_roots.join("; "),
    ));
    notes.push(format!(
        "Cold start and RSS run this machine's release binaries (`target/release/<function>`) \
         against a local stub of the Lambda Runtime API (`devkit/src/runtime_api.rs`) with the template's \
         environment and fake credentials; cold start is from spawn (fork + exec) to the first \
         `GET /runtime/invocation/next`, the median of {} starts; peak RSS is `VmHWM` after \
         {} invocations cycling through the function's sample events in `events/`, against the \
         embedded DynamoDB. On Lambda, an arm64 128 MB function has a fraction of a vCPU, so its \
         init takes longer than here; the ratio between functions carries over.",
        opts.cold_starts,
        thousands(opts.rss_invocations as u64)
    ));
    cold.extend(rss);
    Ok(Section {
        title: "Lambda binaries: cold start and memory".into(),
        rows: cold,
    })
}

fn sizes(notes: &mut Vec<String>) -> Section {
    let mut rows = Vec::new();
    let arm: Vec<(&str, Option<size::Binary>)> = FUNCTIONS
        .iter()
        .map(|f| {
            (
                f.name,
                size::lambda_bootstrap(f.name).and_then(|p| size::inspect(&p).ok()),
            )
        })
        .collect();
    let describe = |b: &size::Binary| {
        format!(
            "{:.2} MB ({} bytes, {}, {}; unwind tables {:.2} MB of it)",
            size::mb(b.bytes),
            thousands(b.bytes),
            b.arch,
            if b.stripped {
                "stripped"
            } else {
                "NOT stripped"
            },
            size::mb(b.unwind_bytes)
        )
    };
    match &arm[0].1 {
        Some(b) if b.arch == "arm64" => rows.push(Row::at_most(
            "order-writer `bootstrap`, arm64 (cargo lambda build --release --arm64)",
            describe(b),
            size::mb(b.bytes),
            goals::ORDER_WRITER_MB,
            "MB",
        )),
        _ => {
            // No cross build here: the host binary stands in, and says so.
            let host = size::inspect(&FUNCTIONS[0].binary());
            match host {
                Ok(b) => {
                    rows.push(Row::at_most(
                        "order-writer release binary (host stand-in: no arm64 `bootstrap` was built)",
                        describe(&b),
                        size::mb(b.bytes),
                        goals::ORDER_WRITER_MB,
                        "MB",
                    ));
                    notes.push("No `target/lambda/order-writer/bootstrap` was built (no cargo-lambda in .tools/, or no aarch64 Rust target), so the size row is this machine's release binary instead.".into());
                }
                Err(e) => rows.push(Row::not_measured(
                    "order-writer binary",
                    "≤ 4 MB",
                    e.to_string(),
                )),
            }
        }
    }
    let others: Vec<String> = arm[1..]
        .iter()
        .filter_map(|(name, b)| {
            b.as_ref()
                .map(|b| format!("{name} {:.2} MB", size::mb(b.bytes)))
        })
        .collect();
    if !others.is_empty() {
        rows.push(Row::info("other `bootstrap`s, arm64", others.join(", ")));
    }
    let host: Vec<String> = FUNCTIONS
        .iter()
        .filter_map(|f| {
            size::inspect(&f.binary())
                .ok()
                .map(|b| format!("{} {:.2} MB", f.name, size::mb(b.bytes)))
        })
        .collect();
    if !host.is_empty() {
        rows.push(Row::info(
            "release binaries on this machine (x86_64)",
            host.join(", "),
        ));
    }
    Section {
        title: "Binary size".into(),
        rows,
    }
}

async fn end_to_end(opts: &Options, machine: &Machine) -> Result<Section> {
    let t = throughput::measure(opts.throughput_orders, 16, opts.concurrency).await?;
    Ok(Section {
        title: "End to end".into(),
        rows: vec![Row::info(
            "orders placed and rewarded through the local stream trigger",
            format!(
                "**{:.0} orders/s**: {} orders placed in {} ms (16 at a time), rewarded in {} ms ({} invocations); {} × {}",
                t.per_second(),
                thousands(t.orders as u64),
                ms(t.place),
                ms(t.reward),
                t.invocations,
                machine.cpus,
                machine.cpu_model
            ),
        )],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test owns BENCH_QUICK in this binary's tests: the cases run in turn.
    #[test]
    fn bench_quick_in_the_environment_or_the_flag_makes_a_quick_run() {
        for (value, quick) in [("1", true), ("yes", true), ("0", false), ("", false)] {
            std::env::set_var("BENCH_QUICK", value);
            let args = Args::try_parse_from(["outbox-bench"]).unwrap();
            assert_eq!(args.quick, quick, "BENCH_QUICK={value:?}");
        }
        std::env::remove_var("BENCH_QUICK");
        assert!(!Args::try_parse_from(["outbox-bench"]).unwrap().quick);
        // What `make bench` and `make bench-consumer` pass.
        let args = Args::try_parse_from(["outbox-bench", "--consumer-only", "--quick"]).unwrap();
        assert!(args.quick && args.consumer_only && !args.no_write && !args.functions_only);
        assert!(Args::try_parse_from(["outbox-bench", "--fast"]).is_err());
    }
}
