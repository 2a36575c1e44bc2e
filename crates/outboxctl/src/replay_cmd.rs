//! `replay`: an on-failure message in, the event of its range out (or invoked). A Kinesis
//! stream's message (`KinesisBatchInfo`) is read back with the Kinesis API ([`crate::replay`]),
//! a DynamoDB stream's (`DDBStreamBatchInfo`) with the DynamoDB Streams API
//! ([`crate::ddb_stream`]).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value as Json};
use service_runtime::config::{endpoint_url, DYNAMODB};

use crate::aws;
use crate::ddb_stream::{self, StreamsApi};
use crate::invoke::LambdaClient;
use crate::kinesis::parse_stream_arn;
use crate::replay::{filter_patterns, replay_event, Range};

/// The replay's arguments, as the command line gives them.
pub struct Replay {
    /// A file holding the on-failure message.
    pub message: PathBuf,
    /// The function's logical id in the template, whose FilterCriteria apply.
    pub function: String,
    /// The template it was deployed from; None: the one of the message's kind of stream.
    pub template: Option<PathBuf>,
    /// The deployed function to invoke with the event, if any.
    pub invoke: Option<String>,
    /// Invoke off this machine without asking.
    pub yes: bool,
}

/// Reads the message's range back and prints its event, or invokes `invoke` with it.
pub async fn run(args: Replay, json_output: bool) -> Result<()> {
    let text = std::fs::read_to_string(&args.message)
        .with_context(|| format!("reading {}", args.message.display()))?;
    let message: Json = serde_json::from_str(&text).context("the message is not JSON")?;
    let (range, dynamodb) = match Range::from_info(&message, ddb_stream::BATCH_INFO)? {
        Some(range) => (range, true),
        None => (Range::from_message(&message)?, false),
    };
    let region = if dynamodb {
        ddb_stream::region(&range.stream_arn)?
    } else {
        parse_stream_arn(&range.stream_arn)?.0
    }
    .to_owned();
    let config = aws::config(Some(&region)).await;
    let lambda = match &args.invoke {
        Some(function) => {
            let lambda = LambdaClient::new(&config)?;
            aws::confirm_write(&format!("invoke {function}"), lambda.endpoint(), args.yes)?;
            Some(lambda)
        }
        None => None,
    };
    let default_template = if dynamodb {
        "template.yaml"
    } else {
        "patterns/self-read/template.yaml"
    };
    let template = args
        .template
        .clone()
        .unwrap_or_else(|| default_template.into());
    let filter = filter_patterns(&template, &args.function)?;
    let event = if dynamodb {
        let endpoint = endpoint_url("DYNAMODB_STREAMS")
            .or_else(|| endpoint_url(DYNAMODB))
            .unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
        let api = StreamsApi::new(&endpoint, &region, &config)?;
        ddb_stream::replay_event(&api, &range, &filter).await?
    } else {
        replay_event(&aws::kinesis(&config), &range, &filter).await?
    };
    finish(&args, &range, event, lambda, json_output).await
}

/// Prints what the range's records (`event`) came to, or invokes the function with them.
async fn finish(
    args: &Replay,
    range: &Range,
    event: Json,
    lambda: Option<LambdaClient>,
    json_output: bool,
) -> Result<()> {
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
