//! `devkit`: run the project on one machine. See `devkit --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use devkit::stack::{in_process, Stack};
use devkit::{samples, LocalDynamo, Template};

#[derive(Parser)]
#[command(
    about = "Local tools for the DynamoDB outbox: embedded DynamoDB, stream trigger, demo, samples"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Place orders, run the stream into the consumer, print balances (the README's main job).
    Demo {
        /// outbox, cdc or self-read: the pattern whose template and functions run.
        #[arg(long, default_value_t = devkit::Pattern::Outbox)]
        pattern: devkit::Pattern,
        #[arg(long, default_value_t = 30)]
        orders: usize,
        #[arg(long, default_value_t = 5)]
        customers: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = service_runtime::config::DEFAULT_CONCURRENCY)]
        concurrency: usize,
    },
    /// Serve the embedded DynamoDB with the template's tables, for `sam local invoke`, the AWS
    /// CLI and any SDK; optionally with real-time TTL sweeps and the stream trigger running.
    Ddb {
        #[arg(long, default_value = devkit::local::DDB_DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Run a TTL sweep this often (seconds); 0 turns sweeps off.
        #[arg(long, default_value_t = 60)]
        ttl_every: u64,
        /// Also run the stream trigger, delivering outbox events to the consumer in process.
        #[arg(long)]
        trigger: bool,
        /// outbox, cdc or self-read: whose template's tables to serve.
        #[arg(long, default_value_t = devkit::Pattern::Outbox)]
        pattern: devkit::Pattern,
    },
    /// Serve kinesalite (the local Kinesis of pattern 3) with the template's Kinesis streams.
    Kinesis {
        #[arg(long, default_value_t = devkit::kinesis::KINESIS_DEFAULT_PORT)]
        port: u16,
    },
    /// The local event source mapping, against `make ddb` (or the server in AWS_ENDPOINT_URL).
    Trigger {
        /// Keep polling instead of draining once.
        #[arg(long)]
        follow: bool,
        /// Invoke the consumer over the Lambda Invoke API (e.g. `cargo lambda watch`'s
        /// http://127.0.0.1:9000/2015-03-31/functions/stream-consumer/invocations) instead of in process.
        #[arg(long)]
        invoke_url: Option<String>,
        /// Append on-failure destination messages to this file.
        #[arg(long, default_value = ".local/stream-failures.jsonl")]
        on_failure_file: PathBuf,
    },
    /// Orders under injected faults, duplicates, races and crashes; then the invariants. On the
    /// embedded DynamoDB, or on AWS_ENDPOINT_URL's server (in two new tables) to test that server.
    Chaos {
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write to an endpoint that is not on this machine without asking first.
        #[arg(long)]
        yes: bool,
        /// Which of the patterns: outbox, cdc or self-read.
        #[arg(long, default_value = "outbox")]
        pattern: devkit::Pattern,
    },
    /// Regenerate the sample events in events/ from the code.
    Events,
    /// Rewrite the pattern templates' entries copied from template.yaml (their headers name them).
    Templates {
        /// Only check: fail, naming them, when a pattern template's copies differ.
        #[arg(long)]
        check: bool,
    },
    /// Run the bootstraps `sam build` made (under an emulator for arm64) against the embedded
    /// DynamoDB with the sample events, checking their answers (`make smoke-arm64`).
    Smoke {
        #[arg(long, default_value = ".aws-sam/build")]
        build_dir: PathBuf,
        /// Where `make build` put pattern 3's template's build.
        #[arg(long, default_value = ".aws-sam/build-self-read")]
        self_read_build_dir: PathBuf,
        /// The emulator command line the bootstraps run under, split at spaces, e.g.
        /// "qemu-aarch64 -L /usr/aarch64-linux-gnu"; empty runs them directly.
        #[arg(long, default_value = "")]
        runner: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The local server logs every refused condition; the chaos run makes thousands of failures
    // on purpose and reports them in its summary instead. Set before any thread starts.
    if std::env::var_os("RUST_LOG").is_none() {
        let quiet = match cli.command {
            Command::Chaos { .. } => {
                "error,dynoxide=off,aws_smithy_runtime=off,aws_sdk_dynamodb=off"
            }
            _ => "warn,dynoxide=error,aws_smithy_runtime=error,aws_sdk_dynamodb=error,aws_sdk_kinesis=error",
        };
        std::env::set_var("RUST_LOG", quiet);
    }
    service_runtime::config::init_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo {
            pattern,
            orders,
            customers,
            seed,
            concurrency,
        } => {
            let options = devkit::demo::DemoOptions {
                pattern,
                orders,
                customers,
                seed,
                concurrency,
            };
            devkit::demo::run(options).await
        }
        Command::Ddb {
            listen,
            trigger,
            pattern: devkit::Pattern::SelfRead,
            ..
        } => self_read_ddb(listen, trigger).await,
        Command::Ddb {
            listen,
            ttl_every,
            trigger,
            pattern,
        } => ddb(listen, ttl_every, trigger, pattern).await,
        Command::Kinesis { port } => kinesis(port).await,
        Command::Trigger {
            follow,
            invoke_url,
            on_failure_file,
        } => run_trigger(follow, invoke_url, on_failure_file).await,
        Command::Chaos {
            orders,
            seed,
            yes,
            pattern,
        } => chaos(pattern, orders, seed, yes).await,
        Command::Smoke {
            build_dir,
            self_read_build_dir,
            runner,
        } => {
            let options = devkit::smoke::SmokeOptions {
                build_dir,
                self_read_build_dir,
                runner: runner.split_whitespace().map(str::to_owned).collect(),
            };
            for line in devkit::smoke::run(options).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Templates { check } => templates(check),
        Command::Events => {
            let root = devkit::template::default_path()
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default();
            for path in samples::write_all(&root, &Template::load_default()?)? {
                println!("wrote {path}");
            }
            Ok(())
        }
    }
}

/// Rewrites the pattern templates' copies of template.yaml's entries, or with `check` only
/// names those that differ.
fn templates(check: bool) -> Result<()> {
    if !check {
        for path in devkit::template_copies::write_all()? {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    let stale = devkit::template_copies::stale()?;
    for path in &stale {
        println!("{}: copies differ from template.yaml", path.display());
    }
    anyhow::ensure!(stale.is_empty(), "run `make templates`");
    Ok(())
}

/// The chaos run of `pattern`, after asking before it writes to a server elsewhere.
async fn chaos(pattern: devkit::Pattern, orders: usize, seed: u64, yes: bool) -> Result<()> {
    if let Some(endpoint) = devkit::local::external_endpoint() {
        if !devkit::local::is_local_endpoint(&endpoint) && !yes {
            confirm_remote_writes(&endpoint, orders)?;
        }
    }
    let options = devkit::chaos::ChaosOptions::new(orders, seed);
    devkit::chaos::print_run(pattern, options).await
}

/// A chaos run creates two tables and writes thousands of items, billed on a real account: it
/// goes ahead there only when someone at the terminal says so (or `--yes` does).
fn confirm_remote_writes(endpoint: &str, orders: usize) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    eprintln!(
        "WARNING: {endpoint} is not on this machine. The chaos run will create two new tables there \
         (named after template.yaml's, with a random suffix), write {orders} orders and their \
         rewards through injected faults, and leave the tables behind for inspection."
    );
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "not writing to {endpoint} without a confirmation: run it from a terminal, or pass --yes"
    );
    eprint!("Type yes to go on: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    anyhow::ensure!(
        answer.trim().eq_ignore_ascii_case("yes"),
        "not confirmed: nothing was written to {endpoint}"
    );
    Ok(())
}

async fn kinesis(port: u16) -> Result<()> {
    let kinesis = devkit::kinesis::LocalKinesis::serve_on(port).await?;
    println!("Kinesis (kinesalite) listening on {}", kinesis.endpoint);
    let template_path = devkit::Pattern::SelfRead.template_path();
    let streams = Template::load(&template_path)?.kinesis_streams()?;
    if streams.is_empty() {
        println!(
            "{} declares no AWS::Kinesis::Stream: no streams created",
            template_path.display()
        );
    }
    for spec in streams {
        let stream = kinesis.create_stream(&spec.name, spec.shard_count).await?;
        println!("stream: {} ({} shards)", stream.arn, stream.shard_ids.len());
    }
    println!("use it with: AWS_ENDPOINT_URL_KINESIS={} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local", kinesis.endpoint);
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// `make ddb PATTERN=self-read`: the pattern's two tables, without a stream or TTL (its
/// consumers read Kinesis: `make kinesis`).
async fn self_read_ddb(listen: SocketAddr, with_trigger: bool) -> Result<()> {
    if with_trigger {
        println!(
            "no stream trigger: pattern 3's consumers read the Kinesis stream of make kinesis"
        );
    }
    let dynamo = LocalDynamo::embedded(listen).await?;
    let template = Template::load(&devkit::Pattern::SelfRead.template_path())?;
    println!(
        "DynamoDB (embedded dynoxide) listening on {}",
        dynamo.endpoint
    );
    for logical_id in [
        devkit::local::ORDERS_TABLE_ID,
        devkit::local::REWARDS_TABLE_ID,
    ] {
        let spec = template.table(logical_id)?;
        devkit::local::create_table(&dynamo.client, &spec, &spec.name).await?;
        println!("table: {}", spec.name);
    }
    println!("from sam local (Docker): sam local invoke -t patterns/self-read/template.yaml <Function> -e events/... --env-vars events/patterns/self-read/env.json (with make kinesis)");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

async fn ddb(
    listen: SocketAddr,
    ttl_every: u64,
    with_trigger: bool,
    pattern: devkit::Pattern,
) -> Result<()> {
    let dynamo = LocalDynamo::embedded(listen).await?;
    let stack = Stack::on_pattern(dynamo, pattern).await?;
    println!(
        "DynamoDB (embedded dynoxide) listening on {}",
        stack.dynamo.endpoint
    );
    println!(
        "tables: {} (stream {}), {}",
        stack.tables.orders, stack.tables.orders_stream_arn, stack.tables.rewards
    );
    println!("use it with: AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local", stack.dynamo.endpoint);
    let (env_json, _) = devkit::samples::env_paths(pattern);
    let template_flag = match pattern {
        devkit::Pattern::Outbox => String::new(),
        other => format!("-t patterns/{other}/template.yaml "),
    };
    println!("from sam local (Docker): sam local invoke {template_flag}<Function> -e events/... --env-vars {env_json}");
    if ttl_every > 0 {
        let db = stack.dynamo.database();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(ttl_every));
            loop {
                every.tick().await;
                if let Some(db) = &db {
                    let db = db.clone();
                    match tokio::task::spawn_blocking(move || db.sweep_ttl()).await {
                        Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "TTL sweep"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "TTL sweep failed"),
                        _ => {}
                    }
                }
            }
        });
    }
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if with_trigger {
        println!("stream trigger: delivering outbox events to the stream consumer in process");
        let concurrency = service_runtime::config::DEFAULT_CONCURRENCY;
        let failures: PathBuf = ".local/stream-failures.jsonl".into();
        if pattern == devkit::Pattern::Cdc {
            let consumer = devkit::stack::in_process_changes(stack.service(), concurrency);
            let mut trigger = stack.trigger(consumer)?.with_on_failure_file(failures);
            trigger.follow(stop).await?;
        } else {
            let mut trigger = stack
                .trigger(in_process(stack.service(), concurrency))?
                .with_on_failure_file(failures);
            trigger.follow(stop).await?;
        }
    } else {
        stop.await;
    }
    Ok(())
}

async fn run_trigger(
    follow: bool,
    invoke_url: Option<String>,
    on_failure_file: PathBuf,
) -> Result<()> {
    let dynamo = LocalDynamo::running().await?;
    let stack = Stack::on_existing(dynamo)
        .await
        .context("is `make ddb` running (or AWS_ENDPOINT_URL set to another DynamoDB)?")?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match invoke_url {
        Some(url) => {
            let mut trigger = stack
                .trigger(devkit::invoke::LambdaInvokeApi::new(&url)?)?
                .with_on_failure_file(on_failure_file);
            drive(&mut trigger, follow, stop).await
        }
        None => {
            let mut trigger = stack
                .trigger(in_process(
                    stack.service(),
                    service_runtime::config::DEFAULT_CONCURRENCY,
                ))?
                .with_on_failure_file(on_failure_file);
            drive(&mut trigger, follow, stop).await
        }
    }
}

async fn drive<I: devkit::Invoke>(
    trigger: &mut devkit::Trigger<I>,
    follow: bool,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if follow {
        trigger.follow(stop).await.context("stream trigger")?;
    } else {
        trigger.drain().await?;
    }
    println!("{:?}", trigger.stats);
    Ok(())
}
