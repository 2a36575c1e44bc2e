//! `outboxctl`: the operator's command for a deployed outbox. See `outboxctl --help`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use aws_config::{Region, SdkConfig};
use clap::{Args, Parser, Subcommand};
use outboxctl::invoke::LambdaClient;
use outboxctl::kinesis::parse_stream_arn;
use outboxctl::replay::{filter_patterns, replay_event, Range};
use serde_json::{json, Value as Json};
use service_runtime::config::{endpoint_url, sdk_defaults, KINESIS};

#[derive(Parser)]
#[command(
    about = "The operator's command for a deployed outbox: against AWS with the usual credential \
             chain (environment, profile, role), or any endpoint through AWS_ENDPOINT_URL"
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
    /// Pattern 3's replay of a range a Kinesis mapping gave up on: reads the range the on-failure
    /// message names back from the stream (while the stream retains it), keeps what the
    /// function's mapping would deliver, and builds the Kinesis event to invoke the function
    /// with; `--invoke` invokes it. The consumers apply an event once by its id, so a replay is
    /// safe to repeat.
    Replay(Replay),
}

#[derive(Args)]
struct Replay {
    /// A file holding the on-failure message (the SQS message's body).
    #[arg(long)]
    message: PathBuf,
    /// The function's logical id in the template, whose FilterCriteria the replay applies
    /// (RewardsKinesisConsumerFunction or OrderHistoryFunction).
    #[arg(long)]
    function: String,
    /// The SAM template the function was deployed from.
    #[arg(long, default_value = "patterns/self-read/template.yaml")]
    template: PathBuf,
    /// Invoke this deployed function (name or ARN) with the event instead of printing it
    /// (AWS_ENDPOINT_URL_LAMBDA, then AWS_ENDPOINT_URL, else AWS).
    #[arg(long)]
    invoke: Option<String>,
    /// Write to an endpoint that is not on this machine (AWS) without asking first.
    #[arg(long)]
    yes: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            match cli.command {
                Command::Replay(replay) => run_replay(replay, cli.json).await,
            }
        })
}

async fn run_replay(args: Replay, json_output: bool) -> Result<()> {
    let text = std::fs::read_to_string(&args.message)
        .with_context(|| format!("reading {}", args.message.display()))?;
    let message: Json = serde_json::from_str(&text).context("the message is not JSON")?;
    let range = Range::from_message(&message)?;
    let (region, _, _) = parse_stream_arn(&range.stream_arn)?;
    let config = aws_config(region).await;
    let lambda = match &args.invoke {
        Some(_) => Some(writable_lambda(&config, args.yes)?),
        None => None,
    };
    let filter = filter_patterns(&args.template, &args.function)?;
    let event = replay_event(&kinesis_client(&config), &range, &filter).await?;
    let records = event["Records"].as_array().map_or(0, Vec::len);
    let summary = format!(
        "{records} records of {} from {} to {} pass {}'s filter",
        range.shard, range.first, range.last, args.function
    );
    let (Some(lambda), Some(function)) = (lambda, &args.invoke) else {
        if json_output {
            println!("{}", serde_json::to_string_pretty(&event)?);
        } else {
            println!("{summary}; to apply them: --invoke <function name>, or --json for the event");
        }
        return Ok(());
    };
    let response = lambda.invoke(function, &event).await?;
    let failures = response["batchItemFailures"].as_array().map_or(0, Vec::len);
    if json_output {
        let out = json!({"records": records, "function": function, "response": response});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if failures == 0 {
        println!("{summary}; {function} applied them all (or had before): delete the message");
    } else {
        println!("{summary}; {function} reported {failures} failed: {response}");
    }
    if failures > 0 {
        bail!("{failures} records were not applied");
    }
    Ok(())
}

/// The SDK's configuration in the stream's region. On this machine without credentials, the
/// local servers' placeholder ones.
async fn aws_config(region: &str) -> SdkConfig {
    let mut loader = sdk_defaults().region(Region::new(region.to_owned()));
    let local = endpoint_url(KINESIS).is_some_and(|e| outboxctl::is_local_endpoint(&e));
    if local && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        let credentials =
            aws_credential_types::Credentials::new("local", "local", None, None, "outboxctl");
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

fn kinesis_client(config: &SdkConfig) -> aws_sdk_kinesis::Client {
    let mut builder = aws_sdk_kinesis::config::Builder::from(config);
    if let Some(endpoint) = endpoint_url(KINESIS) {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_kinesis::Client::from_conf(builder.build())
}

/// A Lambda client, refused for an endpoint off this machine unless the operator said `--yes`.
fn writable_lambda(config: &SdkConfig, yes: bool) -> Result<LambdaClient> {
    let lambda = LambdaClient::new(config)?;
    if !yes && !outboxctl::is_local_endpoint(lambda.endpoint()) {
        bail!(
            "--invoke would invoke a function at {} (not this machine): add --yes to go ahead",
            lambda.endpoint()
        );
    }
    Ok(lambda)
}
