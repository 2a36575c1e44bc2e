//! `devkit`: run the project on one machine. See `devkit --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use devkit::invoke::LambdaInvokeApi;
use devkit::stack::Stack;
use devkit::{samples, Invoke, LocalDynamo, Pattern, Template, Trigger};
use service_runtime::config::DEFAULT_CONCURRENCY;

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
    Demo(devkit::demo::DemoOptions),
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
        #[arg(long, default_value_t = Pattern::Outbox)]
        pattern: Pattern,
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
        #[arg(long, default_value = FAILURES)]
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
        pattern: Pattern,
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
    Smoke(devkit::smoke::SmokeOptions),
}

/// Where `make trigger` and `make ddb TRIGGER=1` write the on-failure destination's messages.
const FAILURES: &str = ".local/stream-failures.jsonl";

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
        Command::Demo(options) => devkit::demo::run(options).await,
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
        } => {
            let dynamo = LocalDynamo::running().await?;
            let stack = Stack::on_existing(dynamo)
                .await
                .context("is `make ddb` running (or AWS_ENDPOINT_URL set to another DynamoDB)?")?;
            let file = on_failure_file;
            match invoke_url {
                Some(url) => {
                    let function = LambdaInvokeApi::new(&url, &stack.dynamo.sdk_config)?;
                    drive(stack.trigger(function)?, follow, file).await
                }
                None => {
                    let consumer = stack.consumer(stack.service(), DEFAULT_CONCURRENCY);
                    drive(stack.trigger(consumer)?, follow, file).await
                }
            }
        }
        Command::Chaos {
            orders,
            seed,
            yes,
            pattern,
        } => {
            let remote = devkit::local::external_endpoint()
                .filter(|endpoint| !devkit::local::is_local_endpoint(endpoint));
            if let Some(endpoint) = remote.filter(|_| !yes) {
                confirm_remote_writes(&endpoint, orders)?;
            }
            let options = devkit::chaos::ChaosOptions::new(orders, seed);
            devkit::chaos::print_run(pattern, options).await
        }
        Command::Smoke(options) => {
            for line in devkit::smoke::run(options).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Templates { check: false } => {
            for path in devkit::template_copies::write_all()? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Templates { check: true } => {
            let stale = devkit::template_copies::stale()?;
            for path in &stale {
                println!("{}: copies differ from template.yaml", path.display());
            }
            anyhow::ensure!(stale.is_empty(), "run `make templates`");
            Ok(())
        }
        Command::Events => {
            let template = devkit::template::default_path();
            let root = template.parent().map(PathBuf::from).unwrap_or_default();
            for path in samples::write_all(&root, &Template::load(&template)?)? {
                println!("wrote {path}");
            }
            Ok(())
        }
    }
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
    let template_path = Pattern::SelfRead.template_path();
    let streams = Template::load(&template_path)?.kinesis_streams()?;
    if streams.is_empty() {
        let path = template_path.display();
        println!("{path} declares no AWS::Kinesis::Stream: no streams created");
    }
    for spec in streams {
        let stream = kinesis.create_stream(&spec.name, spec.shard_count).await?;
        println!("stream: {} ({} shards)", stream.arn, stream.shard_ids.len());
    }
    println!("use it with: AWS_ENDPOINT_URL_KINESIS={} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local", kinesis.endpoint);
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// `make ddb`: the pattern's tables on the embedded DynamoDB, TTL swept every `ttl_every`
/// seconds, and with `with_trigger` the stream consumer fed in process (pattern 3's consumers
/// read the Kinesis stream of `make kinesis` instead).
async fn ddb(
    listen: SocketAddr,
    ttl_every: u64,
    with_trigger: bool,
    pattern: Pattern,
) -> Result<()> {
    let stack = Stack::on_pattern(LocalDynamo::embedded(listen).await?, pattern).await?;
    let (endpoint, tables) = (&stack.dynamo.endpoint, &stack.tables);
    println!("DynamoDB (embedded dynoxide) listening on {endpoint}");
    match tables.orders_stream_arn.as_str() {
        "" => println!("tables: {}, {}", tables.orders, tables.rewards),
        arn => println!(
            "tables: {} (stream {arn}), {}",
            tables.orders, tables.rewards
        ),
    }
    println!("use it with: AWS_ENDPOINT_URL={endpoint} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local");
    let template_flag = match pattern {
        Pattern::Outbox => String::new(),
        other => format!("-t patterns/{other}/template.yaml "),
    };
    match samples::env_paths(pattern) {
        Some((env_json, _)) => println!("from sam local (Docker): sam local invoke {template_flag}<Function> -e events/... --env-vars {env_json}"),
        None => println!("the {pattern} deployment's functions also call EventBridge and SQS, which this server does not serve: `make demo PATTERN={pattern}` runs it whole, on moto"),
    }
    if let Some(db) = stack.dynamo.database().filter(|_| ttl_every > 0) {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(ttl_every));
            loop {
                every.tick().await;
                let db = db.clone();
                match tokio::task::spawn_blocking(move || db.sweep_ttl()).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "TTL sweep"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "TTL sweep failed"),
                    _ => {}
                }
            }
        });
    }
    match pattern {
        _ if !with_trigger => {}
        Pattern::SelfRead => {
            println!(
                "no stream trigger: pattern 3's consumers read the Kinesis stream of make kinesis"
            )
        }
        Pattern::Broker => {
            println!("no stream trigger: the broker deployment's relay and inbox run locally, on moto, under make demo PATTERN=broker and make chaos PATTERN=broker")
        }
        Pattern::Outbox | Pattern::Cdc => {
            let consumer = stack.consumer(stack.service(), DEFAULT_CONCURRENCY);
            return drive(stack.trigger(consumer)?, true, FAILURES.into()).await;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// Runs `trigger` once through the stream, or with `follow` until Ctrl-C; prints its counts.
async fn drive<I: Invoke>(trigger: Trigger<I>, follow: bool, failures: PathBuf) -> Result<()> {
    let mut trigger = trigger.with_on_failure_file(failures);
    if follow {
        println!("stream trigger: delivering outbox events to the stream consumer");
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        trigger.follow(stop).await.context("stream trigger")?;
    } else {
        trigger.drain().await?;
    }
    println!("{:?}", trigger.stats);
    Ok(())
}
