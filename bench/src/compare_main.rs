//! `patterns-compare` (`make compare`): the three patterns on one workload with the same added
//! latency; prints the headline table and writes `docs/patterns.md` and `docs/patterns.svg`.
//!
//! Usage: `patterns-compare [--orders N] [--customers N] [--latency-ms N] [--rate N] [--seed N]
//! [--chaos-dir DIR --chaos-orders N] [--no-write]`. `--chaos-dir` holds `chaos-<pattern>.log`
//! from `make chaos` runs (the Makefile's `compare` target makes them first).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use devkit::Pattern;
use outbox_bench::compare::doc::{self, Figures};
use outbox_bench::compare::workload::{hottest_customer_orders, zipf_orders};
use outbox_bench::compare::{chart, dynamo, self_read, Options};
use outbox_bench::machine::Machine;
use outbox_bench::workspace_root;

struct Args {
    opts: Options,
    chaos_dir: Option<PathBuf>,
    chaos_orders: Option<usize>,
    write: bool,
}

fn parse() -> Result<Args> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let number = |name: &str, default: f64| -> Result<f64> {
        value(name).map_or(Ok(default), |v| {
            v.parse::<f64>()
                .with_context(|| format!("{name} takes a number, not {v:?}"))
        })
    };
    let orders = number("--orders", 2000.0)? as usize;
    let customers = number("--customers", 200.0)? as usize;
    if orders == 0 || customers == 0 {
        bail!("--orders and --customers must be at least 1");
    }
    Ok(Args {
        opts: Options {
            orders,
            customers,
            seed: number("--seed", 7.0)? as u64,
            latency: Duration::from_millis(number("--latency-ms", 10.0)? as u64),
            rate_per_second: number("--rate", 50.0)?,
            consumer_concurrency: service_runtime::config::CONSUMER_CONCURRENCY.read()?,
            settle_timeout: Duration::from_secs(120),
        },
        chaos_dir: value("--chaos-dir").map(PathBuf::from),
        chaos_orders: value("--chaos-orders").and_then(|v| v.parse().ok()),
        write: !args.iter().any(|a| a == "--no-write"),
    })
}

/// The summary of a chaos run: its verdict lines, and the consumer metrics that say what was
/// delayed (held back, retried, the lag from write to apply).
fn chaos_summary(dir: &std::path::Path, pattern: Pattern) -> Vec<String> {
    let path = dir.join(format!("chaos-{}.log", pattern.name()));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return vec![format!("(no chaos log at {})", path.display())];
    };
    const KEPT: [&str; 5] = ["HeldBack", "Retried", "OutboxLag", "Duplicates", "Parked"];
    text.lines()
        .filter(|l| {
            l.starts_with("chaos:")
                || l.starts_with('(')
                || l.starts_with("Kinesis proxy")
                || KEPT.iter().any(|k| l.contains(k))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse()?;
    let opts = &args.opts;
    let machine = Machine::describe();
    let date = time::OffsetDateTime::now_utc();
    let clock = Instant::now();
    let orders = zipf_orders(opts.orders, opts.customers, opts.seed);
    let mut runs = Vec::new();
    for pattern in Pattern::ALL {
        eprintln!("compare: {} orders through pattern {pattern}", opts.orders);
        let run = match pattern {
            Pattern::SelfRead => self_read::run(opts, &orders).await,
            _ => dynamo::run(pattern, opts, &orders).await,
        }
        .with_context(|| format!("pattern {pattern}"))?;
        eprintln!(
            "compare: {pattern} done in {:.1} s",
            run.elapsed.as_secs_f64()
        );
        runs.push(run);
    }
    let chaos = match &args.chaos_dir {
        Some(dir) => Pattern::ALL
            .iter()
            .map(|p| (*p, chaos_summary(dir, *p)))
            .collect(),
        None => Vec::new(),
    };
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let ctx = doc::Context {
        opts,
        date: date
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        commit,
        machine: machine.markdown(),
        hottest_customer_orders: hottest_customer_orders(&orders),
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        chaos,
        chaos_orders: args.chaos_orders,
    };
    let text = doc::render(&runs, &ctx);
    println!("{}", text.split("\n## ").next().unwrap_or_default());
    if args.write {
        let docs = workspace_root().join("docs");
        std::fs::create_dir_all(&docs)?;
        let figures: Vec<Figures> = runs.iter().map(Figures::of).collect();
        let shards = runs
            .iter()
            .find_map(|r| r.kinesis.as_ref().map(|k| k.shards))
            .unwrap_or(0);
        chart::draw(&docs.join("patterns.svg"), &figures, shards)?;
        std::fs::write(docs.join("patterns.md"), text)?;
        eprintln!("compare: wrote docs/patterns.md and docs/patterns.svg");
    }
    Ok(())
}
