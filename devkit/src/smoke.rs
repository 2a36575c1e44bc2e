//! `make smoke-arm64`: the bootstraps `sam build` left in `.aws-sam/build/` (what gets
//! deployed), run as Lambda runs them, under an emulator such as qemu-user, against the
//! embedded DynamoDB. Each function gets the template's environment and its sample events,
//! and its answers are checked: an order placed, its event read from the real stream and
//! applied by the consumer, the points read back, the sweeper finding nothing left to do.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use serde_json::{json, Value as Json};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::runtime_api::{lambda_environment, Answer, RuntimeStub};
use crate::samples::local_environment;
use crate::stack::{Stack, CONSUMER_FUNCTION};
use crate::{filter, LocalDynamo};

/// How long one function may take for all its events; qemu runs arm64 code several times slower.
const FUNCTION_DEADLINE: Duration = Duration::from_secs(120);

pub struct SmokeOptions {
    /// `.aws-sam/build`: one folder per function logical id, each with its `bootstrap`.
    pub build_dir: PathBuf,
    /// The emulator and its arguments, e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`; empty
    /// runs the bootstraps directly.
    pub runner: Vec<String>,
}

/// One invocation and what its answer must satisfy.
struct Check {
    event: Bytes,
    what: String,
    expect: Box<dyn Fn(&Json) -> bool>,
}

impl Check {
    fn sample(path: &str, expect: impl Fn(&Json) -> bool + 'static) -> Result<Self> {
        let file = crate::template::default_path()
            .parent()
            .map(|root| root.join(path))
            .unwrap_or_else(|| PathBuf::from(path));
        let event = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        Ok(Self {
            event: event.into(),
            what: path.to_owned(),
            expect: Box::new(expect),
        })
    }
}

fn status(answer: &Json) -> i64 {
    answer["statusCode"].as_i64().unwrap_or_default()
}

fn body(answer: &Json) -> Json {
    answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Json::Null)
}

/// Runs every function's checks; returns one line per function, or the first failure.
pub async fn run(options: SmokeOptions) -> Result<Vec<String>> {
    let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
    let mut environments = local_environment(&stack.template, &stack.dynamo.endpoint)?;
    // The stub invokes every function as one in us-east-1, and the embedded server's stream is
    // elsewhere: the consumer is given its table by ARN, so it admits that table's records.
    if let Some(consumer) = environments.get_mut(CONSUMER_FUNCTION) {
        consumer.insert(
            service_runtime::config::ORDERS_TABLE.to_owned(),
            stack.tables.orders_arn(),
        );
    }
    let mut report = Vec::new();

    let order_writer = vec![
        Check::sample("events/order-writer/place-order.json", |a| {
            status(a) == 201 && body(a)["points"] == 29
        })?,
        Check::sample("events/order-writer/idempotent-replay.json", |a| {
            status(a) == 201
        })?,
        Check::sample("events/order-writer/idempotent-replay.json", |a| {
            status(a) == 201 && a["headers"]["idempotent-replayed"] == "true"
        })?,
        Check::sample("events/order-writer/get-order.json", |a| status(a) == 200)?,
        Check::sample("events/order-writer/invalid-order.json", |a| {
            status(a) == 400
        })?,
        Check::sample("events/order-writer/malformed-json.json", |a| {
            status(a) == 400
        })?,
        Check::sample("events/order-writer/unknown-route.json", |a| {
            status(a) == 405
        })?,
    ];
    report.push(run_function(&options, &environments, "OrderWriterFunction", order_writer).await?);

    // The consumer gets the real stream, filtered by the template's FilterCriteria as the
    // event source mapping would, then a replay of it and the poison sample.
    let outbox_inserts = outbox_records(&stack).await?;
    let delivered = outbox_inserts.len();
    ensure!(
        delivered == 2,
        "the stream should hold the 2 orders' outbox events, not {delivered}"
    );
    let stream_batch = Bytes::from(serde_json::to_vec(&json!({ "Records": outbox_inserts }))?);
    let no_failures = |a: &Json| *a == json!({"batchItemFailures": []});
    let consumer = vec![
        Check {
            event: stream_batch.clone(),
            what: format!("the stream's {delivered} outbox events"),
            expect: Box::new(no_failures),
        },
        Check {
            event: stream_batch,
            what: "the same events again".to_owned(),
            expect: Box::new(no_failures),
        },
        Check::sample("events/stream-consumer/poison-record.json", |a| {
            a["batchItemFailures"].as_array().map(Vec::len) == Some(1)
        })?,
    ];
    report.push(run_function(&options, &environments, CONSUMER_FUNCTION, consumer).await?);

    // 29 points for the placed order and 20 for the idempotent one, each applied once.
    let rewards = vec![Check::sample("events/rewards-api/get-rewards.json", |a| {
        let rewards = body(a);
        status(a) == 200
            && rewards["points"] == 49
            && rewards["ledger"].as_array().map(Vec::len) == Some(2)
    })?];
    report.push(run_function(&options, &environments, "RewardsApiFunction", rewards).await?);

    let sweeper = vec![Check::sample(
        "events/outbox-sweeper/scheduled.json",
        |a| a["failed"] == 0,
    )?];
    report.push(run_function(&options, &environments, "OutboxSweeperFunction", sweeper).await?);
    Ok(report)
}

/// Every record of the orders stream that passes the consumer's filter: a Lambda event's
/// `Records`.
async fn outbox_records(stack: &Stack) -> Result<Vec<Json>> {
    let source = stack.template.stream_source(CONSUMER_FUNCTION)?;
    let mut records = Vec::new();
    for record in stack.stream_records().await? {
        let record = serde_json::to_value(&record)?;
        if filter::passes(&source.filter_patterns, &record) {
            records.push(record);
        }
    }
    Ok(records)
}

fn bootstrap(build_dir: &Path, function: &str) -> Result<PathBuf> {
    let path = build_dir.join(function).join("bootstrap");
    if !path.is_file() {
        bail!("{} is missing: run `make build` first", path.display());
    }
    Ok(path)
}

/// Starts the function's bootstrap with the template's environment, serves it the checks'
/// events one after another through the Runtime API, and checks each answer.
async fn run_function(
    options: &SmokeOptions,
    environments: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    function: &str,
    checks: Vec<Check>,
) -> Result<String> {
    let binary = bootstrap(&options.build_dir, function)?;
    let environment = environments
        .get(function)
        .with_context(|| format!("template.yaml has no function {function}"))?;
    let stub = RuntimeStub::start(
        checks.iter().map(|c| c.event.clone()).collect(),
        checks.len(),
    )
    .await?;
    let (program, args) = match options.runner.split_first() {
        Some((runner, runner_args)) => (PathBuf::from(runner), runner_args.to_vec()),
        None => (binary.clone(), Vec::new()),
    };
    let mut command = Command::new(&program);
    if !options.runner.is_empty() {
        command.args(args).arg(&binary);
    }
    let mut child = command
        .env_clear()
        .envs(lambda_environment(&stub.runtime_api(), function))
        .envs(environment.iter())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let answered = stub.all_answered(FUNCTION_DEADLINE).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let counts = answered.with_context(|| format!("{function}: {stderr}"))?;
    ensure!(
        counts.init_errors == 0,
        "{function} failed to start: {stderr}"
    );
    for (check, answer) in checks.iter().zip(stub.answers()) {
        let Answer::Response(bytes) = answer else {
            bail!("{function}: {} answered an error: {answer:?}", check.what);
        };
        let json: Json = serde_json::from_slice(&bytes)
            .with_context(|| format!("{function}: {} answered no JSON", check.what))?;
        ensure!(
            (check.expect)(&json),
            "{function}: {} answered {json}",
            check.what
        );
    }
    Ok(format!(
        "{function}: {} invocations answered as expected ({})",
        checks.len(),
        binary.display()
    ))
}
