//! `patterns-compare` (`make compare`): the three patterns and the broker deployment on one
//! workload with the same added latency; prints the headline table and writes the figures into `docs/patterns.md` (between its
//! region markers: the prose around them is written by hand) and `docs/patterns.svg`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::builder::RangedU64ValueParser;
use clap::Parser;
use devkit::Pattern;
use outbox_bench::compare::doc;
use outbox_bench::compare::figures::Figures;
use outbox_bench::compare::workload::{hottest_customer_orders, zipf_orders};
use outbox_bench::compare::{broker, chart, dynamo, self_read, Options};
use outbox_bench::machine::Machine;
use outbox_bench::{regions, workspace_root};

/// The three patterns and the broker deployment side by side on one workload, with the same latency added to every request.
///
/// The consumers' concurrency is `CONSUMER_CONCURRENCY`, read as the functions read it.
#[derive(Debug, Parser)]
#[command(name = "patterns-compare")]
struct Args {
    /// Orders placed, the same ones for every pattern.
    #[arg(long, default_value_t = 2000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    orders: usize,
    /// Customers the orders are drawn over (Zipf-skewed).
    #[arg(long, default_value_t = 200, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    customers: usize,
    /// Milliseconds added to every request to DynamoDB, DynamoDB Streams and Kinesis.
    #[arg(long, default_value_t = 10)]
    latency_ms: u64,
    /// Orders placed per second (open loop).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seed of the workload.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Holds `chaos-<pattern>.log` from `make chaos` runs (`make compare` makes them first).
    #[arg(long)]
    chaos_dir: Option<PathBuf>,
    /// Orders each of those chaos runs placed.
    #[arg(long)]
    chaos_orders: Option<usize>,
    /// Print the headline table only; write nothing.
    #[arg(long)]
    no_write: bool,
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
                || l.starts_with("broker proxy")
                || KEPT.iter().any(|k| l.contains(k))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let opts = &Options {
        orders: args.orders,
        customers: args.customers,
        seed: args.seed,
        latency: Duration::from_millis(args.latency_ms),
        rate_per_second: args.rate,
        consumer_concurrency: service_runtime::config::CONSUMER_CONCURRENCY.read()?,
        settle_timeout: Duration::from_secs(120),
    };
    let docs = workspace_root().join("docs");
    let path = docs.join("patterns.md");
    let doc = (!args.no_write)
        .then(|| regions::read(&path, &doc::REGIONS))
        .transpose()?;
    let machine = Machine::describe();
    let date = outbox_bench::machine::now();
    let clock = Instant::now();
    let orders = zipf_orders(opts.orders, opts.customers, opts.seed);
    let mut runs = Vec::new();
    for pattern in Pattern::DEPLOYMENTS {
        eprintln!("compare: {} orders through pattern {pattern}", opts.orders);
        let run = match pattern {
            Pattern::SelfRead => self_read::run(opts, &orders).await,
            Pattern::Broker => broker::run(opts, &orders).await,
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
        Some(dir) => Pattern::DEPLOYMENTS
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
        date,
        commit,
        machine: machine.markdown(),
        hottest_customer_orders: hottest_customer_orders(&orders),
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        chaos,
        chaos_orders: args.chaos_orders,
    };
    let figures: Vec<Figures> = runs.iter().map(Figures::of).collect();
    let shards = doc::kinesis_shards(&runs);
    println!("{}", doc::headline(&figures, shards));
    if let Some(text) = doc {
        let text = regions::replace_all(&text, &doc::regions(&runs, &ctx))
            .with_context(|| format!("writing the figures into {}", path.display()))?;
        chart::draw(&docs.join("patterns.svg"), &figures, shards)?;
        std::fs::write(&path, text)?;
        eprintln!("compare: wrote the figures into docs/patterns.md, and docs/patterns.svg");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_makefile_command_line_parses_and_zero_orders_is_refused() {
        let args = Args::try_parse_from(
            "patterns-compare --orders 2000 --customers 200 --latency-ms 10 --rate 50 \
             --chaos-dir .local/compare --chaos-orders 1000"
                .split_whitespace(),
        )
        .unwrap();
        assert_eq!(
            (args.orders, args.customers, args.latency_ms),
            (2000, 200, 10)
        );
        assert_eq!(
            (args.rate, args.seed, args.chaos_orders),
            (50.0, 7, Some(1000))
        );
        assert_eq!(args.chaos_dir, Some(PathBuf::from(".local/compare")));
        assert!(!args.no_write);
        let err = Args::try_parse_from(["patterns-compare", "--orders", "0"]).unwrap_err();
        assert!(err.to_string().contains("--orders"), "{err}");
        assert!(Args::try_parse_from(["patterns-compare", "--customers", "x"]).is_err());
    }
}
