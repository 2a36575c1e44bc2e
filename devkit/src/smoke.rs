//! `make smoke-arm64`: the bootstraps `make build` (sam build of each template) left in
//! `.aws-sam/build/` and `.aws-sam/build-self-read/` (what gets deployed), run as Lambda runs
//! them, under an emulator such as qemu-user, against the embedded DynamoDB (and, for pattern 3,
//! kinesalite). Each function of each template gets its template's environment and its sample
//! events, and each answer is checked against [`crate::expected`], the table the sample-events
//! test checks the handlers against; on top of that, the orders the order-writer placed are
//! read from the real stream, applied by the consumer and read back by the rewards API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::Bytes;
use serde_json::{json, Value as Json};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::expected;
use crate::kinesis::LocalKinesis;
use crate::patterns::self_read::SelfReadStack;
use crate::runtime_api::{lambda_environment, Answer, RuntimeStub};
use crate::samples::local_environment;
use crate::stack::{Stack, CONSUMER_FUNCTION};
use crate::{filter, LocalDynamo};

/// How long one function may take for all its events; qemu runs arm64 code several times slower.
const FUNCTION_DEADLINE: Duration = Duration::from_secs(120);

/// Pattern 3's order API, the one function of its template with no twin in the root template.
const ORDER_PUBLISHER_FUNCTION: &str = "OrderPublisherFunction";
/// Pattern 3's sweeper binary, which there only redrives parked events.
const PARKED_REDRIVE_FUNCTION: &str = "ParkedRedriveFunction";

/// Where the builds are, and what runs them.
#[derive(clap::Args)]
pub struct SmokeOptions {
    /// `.aws-sam/build`: one folder per function logical id of `template.yaml`, each with its
    /// `bootstrap`.
    #[arg(long, default_value = ".aws-sam/build")]
    pub build_dir: PathBuf,
    /// `.aws-sam/build-self-read`: the same for `patterns/self-read/template.yaml`.
    #[arg(long, default_value = ".aws-sam/build-self-read")]
    pub self_read_build_dir: PathBuf,
    /// The emulator command line the bootstraps run under, split at spaces, e.g.
    /// "qemu-aarch64 -L /usr/aarch64-linux-gnu"; empty runs them directly.
    #[arg(long, default_value = "")]
    pub runner: String,
}

type Environments = BTreeMap<String, BTreeMap<String, String>>;

/// One invocation and what its answer must satisfy.
struct Check {
    event: Bytes,
    what: String,
    expect: Box<dyn Fn(&Json) -> bool>,
}

impl Check {
    fn new(
        event: &Json,
        what: impl Into<String>,
        expect: impl Fn(&Json) -> bool + 'static,
    ) -> Result<Self> {
        Ok(Self {
            event: serde_json::to_vec(event)?.into(),
            what: what.into(),
            expect: Box::new(expect),
        })
    }

    fn sample(path: &str, expect: impl Fn(&Json) -> bool + 'static) -> Result<Self> {
        Self::new(&read_sample(path)?, path, expect)
    }

    /// A request sample whose answer must carry `expected` as its status.
    fn status(path: &str, expected: i64) -> Result<Self> {
        Self::sample(path, move |a| status(a) == expected)
    }

    /// A batch sample, its records pointed at this run's stream `arn` (the samples name the
    /// stream of `events/env.json`), whose answer must report `failures` records for retry.
    fn batch(path: &str, arn: &str, failures: usize) -> Result<Self> {
        let mut event = read_sample(path)?;
        for record in event["Records"].as_array_mut().into_iter().flatten() {
            record["eventSourceARN"] = json!(arn);
        }
        Self::new(&event, path, move |a| {
            a["batchItemFailures"].as_array().map(Vec::len) == Some(failures)
        })
    }
}

fn read_sample(path: &str) -> Result<Json> {
    let file = crate::template::repo_path(path);
    let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", file.display()))
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

fn http_samples(prefix: &str) -> Result<Vec<Check>> {
    expected::HTTP
        .iter()
        .filter(|(path, _)| path.starts_with(prefix))
        .map(|(path, code)| Check::status(path, *code))
        .collect()
}

fn redrive(expected: (&str, usize, usize, usize)) -> Result<Check> {
    let (path, found, applied, parked) = expected;
    Check::sample(path, move |a| {
        let count = |name: &str| a[name].as_u64().map(|n| n as usize);
        (count("found"), count("applied"), count("parked"))
            == (Some(found), Some(applied), Some(parked))
    })
}

/// Runs every function of every template; returns one line per function, or the first failure.
pub async fn run(options: SmokeOptions) -> Result<Vec<String>> {
    let mut report = Vec::new();
    root_template(&options, &mut report).await?;
    cdc_template(&options, &mut report).await?;
    self_read_template(&options, &mut report).await?;
    Ok(report)
}

/// The functions of one template's build, each started with its template's environment; their
/// lines of the report start with `label`.
struct Build<'a> {
    options: &'a SmokeOptions,
    dir: &'a Path,
    environments: Environments,
    label: &'static str,
    report: &'a mut Vec<String>,
}

/// `template.yaml`'s four functions (pattern 2's template runs the same four binaries).
async fn root_template(options: &SmokeOptions, report: &mut Vec<String>) -> Result<()> {
    let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
    // The stub invokes every function as one in us-east-1, and the embedded server's stream is
    // elsewhere: the local environment names the table by the server's ARN for it, so the
    // consumer admits its records.
    let environments = local_environment(&stack.template, &stack.dynamo.endpoint, "")?;
    let mut build = Build {
        options,
        dir: &options.build_dir,
        environments,
        label: "",
        report,
    };
    let writer = http_samples("events/order-writer/")?;
    let answers = build.run("OrderWriterFunction", writer).await?;
    // The orders the samples placed, by id (a replay answers with the original order).
    let mut placed: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for answer in answers.iter().filter(|a| status(a) == 201) {
        let order = body(answer);
        let (Some(id), Some(customer), Some(points)) = (
            order["order_id"].as_str(),
            order["customer_id"].as_str(),
            order["points"].as_i64(),
        ) else {
            bail!("OrderWriterFunction: a 201 without an order: {answer}");
        };
        placed.insert(id.to_owned(), (customer.to_owned(), points));
    }

    // The consumer gets the real stream, filtered by the template's FilterCriteria as the
    // event source mapping would, then a replay of it, then the sample batches.
    let outbox_inserts = outbox_records(&stack).await?;
    let delivered = outbox_inserts.len();
    let orders = placed.len();
    ensure!(
        delivered == orders,
        "the stream should hold the {orders} orders' outbox events, not {delivered}"
    );
    let stream_batch = json!({ "Records": outbox_inserts });
    let no_failures = |a: &Json| *a == json!({"batchItemFailures": []});
    let mut consumer = vec![
        Check::new(
            &stream_batch,
            format!("the stream's {delivered} outbox events"),
            no_failures,
        )?,
        Check::new(&stream_batch, "the same events again", no_failures)?,
    ];
    for (path, _, _, _, _, failures) in expected::STREAM {
        consumer.push(Check::batch(
            path,
            &stack.tables.orders_stream_arn,
            *failures,
        )?);
    }
    build.run(CONSUMER_FUNCTION, consumer).await?;
    check_balances(&stack.rewards, expected::STREAM_BALANCES).await?;

    // Each placed order's points, applied once, as the rewards API shows them.
    let rewards = http_samples("events/rewards-api/")?;
    for answer in build.run("RewardsApiFunction", rewards).await? {
        let rewards = body(&answer);
        let customer = rewards["customer_id"].as_str().unwrap_or_default();
        let points = placed
            .values()
            .filter(|(c, _)| c == customer)
            .map(|(_, points)| *points);
        let (count, sum) = points.fold((0, 0), |(n, sum), p| (n + 1, sum + p));
        ensure!(
            rewards["points"].as_i64() == Some(sum) && rewards["ledger"].as_array().map(Vec::len) == Some(count),
            "RewardsApiFunction: {customer} should have the points of its {count} orders placed above, once: {answer}"
        );
    }
    let sweeper = vec![
        Check::sample(expected::SWEEP, |a| a["failed"] == 0)?,
        redrive(expected::REDRIVE)?,
    ];
    build.run("OutboxSweeperFunction", sweeper).await?;
    Ok(())
}

/// Pattern 2's template runs the root's binaries with `OUTBOX_PATTERN=cdc`: its consumer reads
/// the order items' own INSERTs, so it gets pattern 2's sample batch.
async fn cdc_template(options: &SmokeOptions, report: &mut Vec<String>) -> Result<()> {
    let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
    let stack = Stack::on_pattern(dynamo, crate::Pattern::Cdc).await?;
    let environments = local_environment(&stack.template, &stack.dynamo.endpoint, "")?;
    let consumer = vec![Check::batch(
        expected::CDC_STREAM.0,
        &stack.tables.orders_stream_arn,
        0,
    )?];
    let mut build = Build {
        options,
        dir: &options.build_dir,
        environments,
        label: "pattern 2 (cdc): ",
        report,
    };
    build.run(CONSUMER_FUNCTION, consumer).await?;
    check_balances(&stack.rewards, expected::CDC_BALANCES).await
}

/// Pattern 3's template: the order-publisher, both Kinesis consumers, its rewards API and its
/// redrive, on kinesalite and the embedded DynamoDB.
async fn self_read_template(options: &SmokeOptions, report: &mut Vec<String>) -> Result<()> {
    let kinesis = LocalKinesis::start().await.map_err(|e| anyhow!("{e}"))?;
    let dynamo = LocalDynamo::embedded("127.0.0.1:0".parse()?).await?;
    let stack = SelfReadStack::on(dynamo, kinesis).await?;
    let (template, endpoint) = (&stack.template, &stack.dynamo.endpoint);
    let environments = local_environment(template, endpoint, &stack.kinesis.endpoint)?;
    let mut build = Build {
        options,
        dir: &options.self_read_build_dir,
        environments,
        label: "",
        report,
    };
    let publisher = expected::SELF_READ_HTTP
        .iter()
        .map(|(path, code)| Check::status(path, *code));
    build
        .run(ORDER_PUBLISHER_FUNCTION, publisher.collect::<Result<_>>()?)
        .await?;
    for (function, path, _, _) in expected::SELF_READ_KINESIS {
        build
            .run(function, vec![Check::batch(path, &stack.stream.arn, 0)?])
            .await?;
    }
    check_balances(&stack.rewards, expected::SELF_READ_BALANCES).await?;
    // The order order-history wrote is what the order API reads now.
    let (path, code, customer) = expected::SELF_READ_GET;
    let get = Check::sample(path, move |a| {
        status(a) == code && body(a)["customer_id"] == customer
    })?;
    build.run(ORDER_PUBLISHER_FUNCTION, vec![get]).await?;
    build
        .run("RewardsApiFunction", http_samples("events/rewards-api/")?)
        .await?;
    build
        .run(
            PARKED_REDRIVE_FUNCTION,
            vec![redrive(expected::SELF_READ_REDRIVE)?],
        )
        .await?;
    Ok(())
}

/// Each customer's balance and number of ledger entries, read from the rewards table.
async fn check_balances(
    rewards: &rewards_service::store::dynamodb::DynamoRewardsStore,
    expected: &[(&str, i64, usize)],
) -> Result<()> {
    for (customer, points, ledger) in expected {
        let page = rewards_service::service::rewards_of(rewards, customer, Some(100), None)
            .await
            .map_err(|e| anyhow!("reading {customer}'s rewards: {e}"))?;
        ensure!(
            (page.points, page.entries.len()) == (*points, *ledger),
            "{customer} should have {points} points in {ledger} ledger entries, not {} in {}",
            page.points,
            page.entries.len()
        );
    }
    Ok(())
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

impl Build<'_> {
    /// Starts the function's bootstrap with the template's environment, serves it the checks'
    /// events one after another through the Runtime API, and checks each answer; its answers.
    /// Its line goes to the report.
    async fn run(&mut self, function: &str, checks: Vec<Check>) -> Result<Vec<Json>> {
        let binary = self.dir.join(function).join("bootstrap");
        ensure!(
            binary.is_file(),
            "{} is missing: run `make build` first",
            binary.display()
        );
        let environment = self
            .environments
            .get(function)
            .with_context(|| format!("the template has no function {function}"))?;
        let events = checks.iter().map(|c| c.event.clone()).collect();
        let stub = RuntimeStub::start(events, checks.len()).await?;
        let runner: Vec<&str> = self.options.runner.split_whitespace().collect();
        let mut command = match runner.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
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
            .with_context(|| format!("starting {}", binary.display()))?;
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
        let mut answers = Vec::new();
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
            answers.push(json);
        }
        self.report.push(format!(
            "{}{function}: {} invocations answered as expected ({})",
            self.label,
            checks.len(),
            binary.display()
        ));
        Ok(answers)
    }
}
