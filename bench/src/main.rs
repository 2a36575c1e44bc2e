//! `outbox-bench`: runs the benchmark suite, prints one table, and writes it, its notes and the
//! machine into the marked regions of `docs/benchmarks.md` (the prose there is written by hand),
//! and the consumer chart to `docs/consumer-latency.svg`. `make bench` builds everything it
//! needs first (see the Makefile); `make bench-consumer` is `--consumer-only`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::builder::FalseyValueParser;
use clap::Parser;
use outbox_bench::consumer::{ledger, rewards};
use outbox_bench::machine::Machine;
use outbox_bench::report::Report;
use outbox_bench::{
    accounting, cpu, functions, producer, regions, size, throughput, workspace_root,
};
use service_runtime::config;

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

fn progress(what: &str) {
    eprintln!("bench: {what}");
}

/// What every part of a run needs.
struct Run {
    concurrency: usize,
    repeats: usize,
    cold_starts: usize,
    orders: usize,
    mode: &'static str,
    machine: Machine,
    started: String,
    clock: Instant,
    path: PathBuf,
    /// The document, read first: a missing region fails now, not after minutes of measuring.
    doc: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (repeats, cold_starts, orders) = if args.quick {
        (1, 5, 500)
    } else {
        (3, 20, 1000)
    };
    if args.functions_only {
        progress("cold start and peak RSS of the function binaries");
        let sections = [
            functions::section(cold_starts, 1000).await?,
            size::section(),
        ];
        for row in sections.iter().flat_map(|s| &s.rows) {
            println!("{row:?}");
        }
        return Ok(());
    }
    let path = workspace_root().join("docs").join("benchmarks.md");
    let names = [&Report::REGIONS[..], &[ledger::REGION]].concat();
    let doc = (!args.no_write)
        .then(|| regions::read(&path, &names))
        .transpose()?;
    let run = Run {
        concurrency: config::CONSUMER_CONCURRENCY.read()?,
        repeats,
        cold_starts,
        orders,
        mode: if args.quick {
            "BENCH_QUICK=1"
        } else {
            "full run"
        },
        machine: Machine::describe(),
        started: outbox_bench::machine::now(),
        clock: Instant::now(),
        path,
        doc,
    };
    progress("the engine's consumer on three batch shapes");
    let shapes = ledger::Shapes::measure(repeats).await?;
    if args.consumer_only {
        consumer_only(run, shapes)
    } else {
        full(run, shapes).await
    }
}

/// `make bench-consumer`: the engine's batch shapes alone, into their region.
fn consumer_only(run: Run, shapes: ledger::Shapes) -> Result<()> {
    let Run {
        mode,
        started,
        machine: m,
        ..
    } = &run;
    let section = shapes.markdown(&format!(
        "Written by `make bench-consumer` ({mode}) on {started}, in {:.0} s, on {} × {} (1-minute load \
         average at the start: {}; the machine below is the last full run's)",
        run.clock.elapsed().as_secs_f64(),
        m.cpus,
        m.cpu_model,
        m.load_at_start,
    ));
    println!("{section}");
    if let Some(doc) = &run.doc {
        std::fs::write(&run.path, regions::replace(doc, ledger::REGION, &section)?)?;
        progress("rewrote the engine batch shapes in docs/benchmarks.md");
    }
    Ok(())
}

/// `make bench`: every section, then the table, the notes, the chart and the machine.
async fn full(run: Run, shapes: ledger::Shapes) -> Result<()> {
    let (mode, started) = (run.mode, &run.started);
    let written = run.clock.elapsed().as_secs_f64();
    let shapes = shapes.markdown(&format!(
        "Written by `make bench` ({mode}) on {started}, in {written:.0} s of the run"
    ));
    progress("consumer batch latency through the latency-injecting proxy");
    let chart = run
        .doc
        .as_ref()
        .map(|_| run.path.with_file_name("consumer-latency.svg"));
    let (consumer, chart_data) =
        rewards::section(run.concurrency, run.repeats, chart.as_deref()).await?;
    progress("requests, capacity and connections per order");
    let costs = accounting::section(100, run.concurrency).await?;
    progress("the producer on the compare workload, one customer at once, a hot key");
    let producer = producer::section(run.repeats == 1).await?;
    progress("handler CPU (criterion estimates)");
    let cpu = cpu::section();
    progress("cold start and peak RSS of the function binaries");
    let functions = functions::section(run.cold_starts, 1000).await?;
    progress("binary sizes");
    let sizes = size::section();
    progress("end-to-end throughput");
    let end_to_end = throughput::section(run.orders, 16, run.concurrency, &run.machine).await?;
    let report = Report {
        sections: vec![consumer, costs, producer, cpu, functions, sizes, end_to_end],
        chart_data,
        machine: run.machine,
        mode: mode.into(),
        started: run.started,
        duration: run.clock.elapsed(),
    };
    println!("{}", report.table());
    println!("{}", report.summary());
    if let Some(doc) = run.doc {
        let mut figures = report.regions();
        figures.push((ledger::REGION, shapes));
        std::fs::write(&run.path, regions::replace_all(&doc, &figures)?)?;
        progress("wrote the figures into docs/benchmarks.md, and docs/consumer-latency.svg");
    }
    Ok(())
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
