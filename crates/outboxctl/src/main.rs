//! `outboxctl`: the operator's command for a deployed outbox. See `outboxctl --help`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dynamodb_outbox::dynamodb::OutboxView;
use outboxctl::invoke::LambdaClient;
use outboxctl::redrive::{self, ParkedOf};
use outboxctl::show::{self, Tables, READ_CAP};
use outboxctl::{aws, replay_cmd};
use serde_json::{json, Value as Json};

#[derive(Parser)]
#[command(
    about = "The operator's command for a deployed outbox: against AWS with the usual credential \
             chain (environment, profile, role), or any endpoint through AWS_ENDPOINT_URL \
             (AWS_ENDPOINT_URL_DYNAMODB, _LAMBDA, _KINESIS for one service). Verbs that write \
             (redrive, sweep, replay --invoke) ask first when the endpoint is not this machine."
)]
struct Cli {
    /// Print JSON instead of sentences.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Per consumer: pending events (how many, the oldest's age), parked events, and lag (how
    /// long ago the oldest event it has yet to apply occurred). Reads the tables only.
    Status(Status),
    /// An event (by event id) or an ordering key's events: the envelope, the sequence, which
    /// consumers are done and which wait, and why a consumer parked it. Reads the tables only.
    Inspect(Inspect),
    /// Applies the parked events again, each exactly once, by invoking the deployed redrive
    /// function (the consumer's code is there) with {"action":"redrive-parked"}; `--dry-run`
    /// lists what it would take and changes nothing.
    Redrive(Redrive),
    /// Invokes the sweeper now, as its schedule does: the events still pending after its grace
    /// period are applied through the consumer's idempotent path.
    Sweep(Sweep),
    /// The replay of a range a stream's event source mapping gave up on: reads the range its
    /// on-failure message names back from the stream (a Kinesis stream, or a DynamoDB stream
    /// through the DynamoDB Streams API) while the stream retains it, keeps what the function's
    /// mapping would deliver, and builds the event to invoke the function with; `--invoke`
    /// invokes it. The consumers apply an event once by its id, so a replay is safe to repeat.
    Replay(Replay),
}

#[derive(Args)]
struct Outbox {
    /// The outbox table (the producer's table, with the pending index).
    #[arg(long)]
    table: String,
    /// The table where the consumers keep their progress and parked events (default: --table).
    #[arg(long)]
    consumer_table: Option<String>,
    /// A consumer, by the name it is routed by (repeat for several).
    #[arg(long = "consumer")]
    consumers: Vec<String>,
}

impl Outbox {
    fn tables(&self) -> Tables<'_> {
        Tables {
            outbox: &self.table,
            consumers: self.consumer_table.as_deref().unwrap_or(&self.table),
        }
    }
}

#[derive(Args)]
struct Status {
    #[command(flatten)]
    outbox: Outbox,
}

#[derive(Args)]
struct Inspect {
    #[command(flatten)]
    outbox: Outbox,
    /// An event id, or an ordering key.
    target: String,
}

#[derive(Args)]
struct Redrive {
    /// The deployed redrive function (name or ARN): the sweeper, or under pattern 3 the
    /// ParkedRedriveFunction.
    #[arg(long, required_unless_present = "dry_run")]
    function: Option<String>,
    /// The outbox and the consumers whose parked events to list (required with --dry-run;
    /// without them a redrive reports the function's counts only).
    #[arg(long, required_if_eq("dry_run", "true"))]
    table: Option<String>,
    /// Where the consumers keep their parked events (default: --table).
    #[arg(long)]
    consumer_table: Option<String>,
    /// A consumer whose parked events the function redrives (repeat for several).
    #[arg(long = "consumer")]
    consumers: Vec<String>,
    /// Stop once this many parked events were taken (the function takes up to its own batch
    /// limit a run); with --dry-run, list this many per consumer.
    #[arg(long, default_value_t = READ_CAP)]
    limit: usize,
    /// List the parked events a redrive would take, oldest first, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Invoke a function that is not on this machine (AWS) without asking first.
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
struct Sweep {
    /// The deployed sweeper function (name or ARN).
    #[arg(long)]
    function: String,
    /// Invoke a function that is not on this machine (AWS) without asking first.
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
struct Replay {
    /// A file holding the on-failure message (the SQS message's body).
    #[arg(long)]
    message: PathBuf,
    /// The function's logical id in the template, whose FilterCriteria the replay applies
    /// (StreamConsumerFunction, RewardsKinesisConsumerFunction, OrderHistoryFunction).
    #[arg(long)]
    function: String,
    /// The SAM template the function was deployed from (default: template.yaml for a DynamoDB
    /// stream's message, patterns/self-read/template.yaml for a Kinesis stream's).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Invoke this deployed function (name or ARN) with the event instead of printing it
    /// (AWS_ENDPOINT_URL_LAMBDA, then AWS_ENDPOINT_URL, else AWS).
    #[arg(long)]
    invoke: Option<String>,
    /// Invoke a function that is not on this machine (AWS) without asking first.
    #[arg(long)]
    yes: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let json = cli.json;
            match cli.command {
                Command::Status(args) => run_status(args, json).await,
                Command::Inspect(args) => run_inspect(args, json).await,
                Command::Redrive(args) => run_redrive(args, json).await,
                Command::Sweep(args) => run_sweep(args, json).await,
                Command::Replay(args) => {
                    let replay = replay_cmd::Replay {
                        message: args.message,
                        function: args.function,
                        template: args.template,
                        invoke: args.invoke,
                        yes: args.yes,
                    };
                    replay_cmd::run(replay, json).await
                }
            }
        })
}

fn print(json_output: bool, value: &Json, text: impl FnOnce(&Json) -> String) -> Result<()> {
    if json_output {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text(value));
    }
    Ok(())
}

async fn view(table: &str) -> OutboxView {
    let config = aws::config(None).await;
    OutboxView::new(aws::dynamodb(&config), table)
}

async fn run_status(args: Status, json_output: bool) -> Result<()> {
    let view = view(&args.outbox.table).await;
    let status = show::status(&view, &args.outbox.tables(), &args.outbox.consumers).await?;
    print(json_output, &status, show::status_text)
}

async fn run_inspect(args: Inspect, json_output: bool) -> Result<()> {
    let view = view(&args.outbox.table).await;
    let tables = args.outbox.tables();
    let found = show::inspect(&view, &tables, &args.target, &args.outbox.consumers).await?;
    print(json_output, &found, show::inspect_text)?;
    let none = found["events"].as_array().is_none_or(Vec::is_empty)
        && found["parked_elsewhere"]
            .as_array()
            .is_none_or(Vec::is_empty);
    if none {
        bail!("{} names no event", args.target);
    }
    Ok(())
}

async fn run_redrive(args: Redrive, json_output: bool) -> Result<()> {
    let config = aws::config(None).await;
    let table = args.table.as_deref().unwrap_or_default();
    let parked_of = ParkedOf {
        tables: Tables {
            outbox: table,
            consumers: args.consumer_table.as_deref().unwrap_or(table),
        },
        consumers: &args.consumers,
    };
    let view = OutboxView::new(aws::dynamodb(&config), table);
    let readable = args.table.is_some() && !args.consumers.is_empty();
    if args.dry_run {
        if !readable {
            bail!("--dry-run reads the parked events: name --table and at least one --consumer");
        }
        let parked = parked_of.read(&view, args.limit).await?;
        let listed: Vec<Json> = parked.iter().map(show::parked_json).collect();
        let out = json!({"dry_run": true, "would_redrive": listed});
        return print(json_output, &out, |out| {
            let mut text = format!(
                "{} parked events would be redriven (nothing changed):\n",
                listed.len()
            );
            for event in out["would_redrive"].as_array().into_iter().flatten() {
                text.push_str(&show::parked_line(" ", event));
            }
            text
        });
    }
    let function = args
        .function
        .context("--function names the redrive function")?;
    let lambda = LambdaClient::new(&config)?;
    aws::confirm_write(&format!("invoke {function}"), lambda.endpoint(), args.yes)?;
    let before = match readable {
        true => parked_of.read(&view, args.limit).await?,
        false => Vec::new(),
    };
    let mut report = redrive::redrive(&lambda, &function, args.limit).await?;
    if readable {
        let after = parked_of.read(&view, READ_CAP).await?;
        report["events"] = json!(redrive::outcomes(&before, &after));
    }
    print(json_output, &report, |report| {
        let mut text = redrive::report_text(&function, report);
        for event in report["events"].as_array().into_iter().flatten() {
            let outcome = event["outcome"].as_str().unwrap_or_default();
            text.push_str(&show::parked_line(&format!("  {outcome}:"), event));
        }
        text
    })?;
    redrive::check(&report)
}

async fn run_sweep(args: Sweep, json_output: bool) -> Result<()> {
    let config = aws::config(None).await;
    let lambda = LambdaClient::new(&config)?;
    aws::confirm_write(
        &format!("invoke {}", args.function),
        lambda.endpoint(),
        args.yes,
    )?;
    let report = lambda
        .invoke(&args.function, &redrive::sweep_payload())
        .await?;
    print(json_output, &report, |r| {
        redrive::report_text(&args.function, r)
    })
}
