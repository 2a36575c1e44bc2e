//! The real Lambda binaries (`target/release/<function>`, built for this machine), run as Lambda
//! runs them: a process whose only way in is the Runtime API, here devkit's local [`RuntimeStub`].
//!
//! - Cold start: from spawning the process (fork and exec) to its first `next` poll, which is
//!   when Lambda considers the init phase over. Everything the function does at start-up is in
//!   it: loading, logging set-up, reading the environment, building the DynamoDB client.
//! - Peak RSS: the process's high-water mark (`VmHWM`) after serving 1,000 invocations of the
//!   sample events against the local DynamoDB.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::Bytes;
use devkit::kinesis::LocalKinesis;
use devkit::runtime_api::{lambda_environment, RuntimeStub, StubCounts};
use devkit::{LocalDynamo, Stack, Tables};
use service_runtime::config::ORDERS_TABLE;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::report::{median, ms, thousands, Limit::AtMost, Row, Section};

/// The functions of the three patterns' templates (the outbox's four, then pattern 3's, which
/// read their Kinesis stream's name), each with its sample events (`events/<name>/<event>.json`,
/// the names apart by spaces). Pattern 2 runs the outbox's binaries.
pub const FUNCTIONS: [Function; 7] = [
    (
        "order-writer",
        "place-order place-order-base64 idempotent-replay get-order invalid-order",
    ),
    (
        "stream-consumer",
        "outbox-insert-batch mixed-batch duplicate-batch",
    ),
    ("rewards-api", "get-rewards"),
    ("outbox-sweeper", "scheduled"),
    (
        "order-publisher",
        "place-order place-order-keyed get-order invalid-order",
    ),
    ("order-history", "order-events"),
    ("rewards-kinesis-consumer", "order-events"),
];

/// A function's name and its sample events.
pub type Function = (&'static str, &'static str);

/// Pattern 3's functions: they need the Kinesis stream's name (and the publisher a server).
fn reads_stream(name: &str) -> bool {
    FUNCTIONS[4..].iter().any(|(f, _)| *f == name)
}

/// This machine's release binary of `name`.
pub fn binary(name: &str) -> PathBuf {
    crate::target_dir().join("release").join(name)
}

fn load_events((name, events): Function) -> Result<Vec<Bytes>> {
    let dir = crate::workspace_root().join("events").join(name);
    let read = |e: &str| {
        let path = dir.join(format!("{e}.json"));
        std::fs::read(&path)
            .map(Bytes::from)
            .with_context(|| format!("reading {}", path.display()))
    };
    events.split_whitespace().map(read).collect()
}

/// The local DynamoDB the functions talk to, with the template's tables, and the environment
/// pattern 3's functions get besides.
struct Local {
    dynamo: String,
    tables: Tables,
    stream_env: Vec<(String, String)>,
}

impl Local {
    /// The embedded DynamoDB with the template's tables, and kinesalite with pattern 3's stream
    /// when installed (`make kinesalite`): its functions read the stream's name at start-up, and
    /// the publisher puts to it. The stream is the self-read template's, which the sample Kinesis
    /// events come from: a consumer refuses records of another stream. Says in `notes` when
    /// there is no Kinesis.
    async fn start(notes: &mut Vec<String>) -> Result<(Self, Stack, Option<LocalKinesis>)> {
        let stack = Stack::on(LocalDynamo::embedded("127.0.0.1:0".parse()?).await?).await?;
        let stream = devkit::Template::load(&devkit::Pattern::SelfRead.template_path())?
            .kinesis_streams()?
            .into_iter()
            .next()
            .context("patterns/self-read/template.yaml has no Kinesis stream")?;
        let variable = service_runtime::config::ORDER_EVENTS_STREAM;
        let stream_arn = devkit::samples::local_source(variable, &stream.name);
        let mut stream_env = vec![(variable.to_owned(), stream_arn)];
        let kinesis = match LocalKinesis::start().await {
            Ok(local) => {
                local
                    .create_stream(&stream.name, stream.shard_count)
                    .await?;
                stream_env.push((
                    "AWS_ENDPOINT_URL_KINESIS".to_owned(),
                    local.endpoint.clone(),
                ));
                Some(local)
            }
            Err(why) => {
                notes.push(format!("No local Kinesis ({why}): order-publisher's publishes fail, so its peak RSS is not measured."));
                None
            }
        };
        let (dynamo, tables) = (stack.dynamo.endpoint.clone(), stack.tables.clone());
        Ok((
            Self {
                dynamo,
                tables,
                stream_env,
            },
            stack,
            kinesis,
        ))
    }

    /// Starts function `name`: the environment Lambda gives it (the template's variables, the
    /// runtime's own), pointed at the local DynamoDB, and `extra`. Nothing is inherited.
    fn spawn(&self, name: &str, runtime_api: &str, extra: &[(String, String)]) -> Result<Child> {
        let binary = binary(name);
        if !binary.is_file() {
            let all: Vec<&str> = FUNCTIONS.iter().map(|(f, _)| *f).collect();
            bail!(
                "{} is missing: build it with `cargo build --release -p {}`",
                binary.display(),
                all.join(" -p ")
            );
        }
        // The sources by the ARNs the local servers give them, as `make watch` and `sam local`
        // get them (`devkit::samples::local_source`): the sample events' records name those
        // streams, and a consumer admits records of its own source only.
        let orders = devkit::samples::local_source(ORDERS_TABLE, &self.tables.orders);
        let fixed = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local"),
            ("AWS_SESSION_TOKEN", "local"),
            ("AWS_ENDPOINT_URL", self.dynamo.as_str()),
            ("RUST_LOG", "info"),
            (ORDERS_TABLE, orders.as_str()),
            ("REWARDS_TABLE", self.tables.rewards.as_str()),
        ];
        let stream_env = if reads_stream(name) {
            &self.stream_env[..]
        } else {
            &[]
        };
        Command::new(&binary)
            .env_clear()
            .envs(lambda_environment(runtime_api, name))
            .envs(fixed)
            .envs(stream_env.iter().chain(extra).cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))
    }

    /// Spawn-to-first-`next` times of `samples` fresh processes.
    async fn cold_starts(
        &self,
        f @ (name, _): Function,
        samples: usize,
        extra: &[(String, String)],
    ) -> Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let stub = RuntimeStub::start(load_events(f)?, 0).await?;
            let spawned = Instant::now();
            let child = self.spawn(name, &stub.runtime_api(), extra)?;
            let first = stub.first_next(Duration::from_secs(10)).await;
            let stderr = stop(child).await;
            times.push(
                first
                    .with_context(|| format!("{name}: {stderr}"))?
                    .duration_since(spawned),
            );
        }
        Ok(times)
    }

    /// Serves `invocations` events to one process: what it answered, its peak RSS (`VmHWM`,
    /// the most resident memory it ever had) in bytes, and the mean invocation.
    async fn peak_rss(
        &self,
        f @ (name, _): Function,
        invocations: usize,
    ) -> Result<(StubCounts, u64, Duration)> {
        let stub = RuntimeStub::start(load_events(f)?, invocations).await?;
        let child = self.spawn(name, &stub.runtime_api(), &[])?;
        let pid = child.id().context("the function exited at once")?;
        let answered = stub.all_answered(Duration::from_secs(120)).await;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
        let stderr = stop(child).await;
        let counts = answered.with_context(|| format!("{name}: {stderr}"))?;
        ensure!(
            counts.init_errors == 0,
            "{name} failed to initialise: {stderr}"
        );
        // A batch the function refuses whole measures its error path, not its work.
        ensure!(
            counts.item_failures == 0,
            "{name}: {} of {} responses reported failed records, so the run did not do the function's work: {stderr}",
            counts.item_failures,
            counts.responses
        );
        let peak = vm_hwm(&status.context("reading /proc/<pid>/status")?)
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok((counts, peak, stub.mean_invocation()))
    }

    /// What the cold start is made of: most of it was loading the TLS trust roots.
    async fn by_roots(&self, cold_starts: usize) -> Result<Row> {
        let empty = crate::target_dir().join("bench-empty-cert-dir");
        std::fs::create_dir_all(&empty)?;
        let mut by_roots = Vec::new();
        for (label, env) in root_variants(&empty) {
            let mut times = self.cold_starts(FUNCTIONS[0], cold_starts, &env).await?;
            by_roots.push(format!("{label} {} ms", ms(median(&mut times))));
        }
        let figure = "cold start, order-writer, by where the TLS trust roots come from";
        Ok(Row::info(figure, by_roots.join("; ")))
    }
}

/// Ends the process and returns what it wrote to stderr (a panic, an init error).
async fn stop(mut child: Child) -> String {
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    stderr
}

/// Where the functions' TLS trust roots come from, for the cold-start comparison: the functions'
/// default (the system's bundle file, read once), what rustls-native-certs loads when asked for
/// a directory (the bundle and every file of the certificate directory: the default before),
/// or one Amazon root (DynamoDB's certificates chain to Amazon's roots), set through
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`.
fn root_variants(empty_dir: &Path) -> Vec<(&'static str, Vec<(String, String)>)> {
    let existing = |paths: &[&str]| {
        paths
            .iter()
            .find(|p| Path::new(p).is_file())
            .map(|p| p.to_string())
    };
    let file_and_dir = |file: String, dir: String| {
        vec![
            ("SSL_CERT_FILE".to_owned(), file),
            ("SSL_CERT_DIR".to_owned(), dir),
        ]
    };
    let mut variants = vec![("bundle file (the functions' default)", Vec::new())];
    let bundle = existing(service_runtime::config::CA_BUNDLE_FILES);
    if let Some(bundle) = bundle.filter(|_| Path::new("/etc/ssl/certs").is_dir()) {
        let env = file_and_dir(bundle, "/etc/ssl/certs".into());
        variants.push(("bundle and directory (rustls-native-certs)", env));
    }
    if let Some(amazon) = existing(&["/etc/ssl/certs/Amazon_Root_CA_1.pem"]) {
        variants.push((
            "Amazon Root CA 1 only",
            file_and_dir(amazon, empty_dir.display().to_string()),
        ));
    }
    variants
}

/// `VmHWM:   12345 kB` in bytes.
fn vm_hwm(status: &str) -> Option<u64> {
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

const COLD_START_MS: f64 = 4.0;
const PEAK_RSS_MB: f64 = 40.0;

/// Cold start (`cold_starts` of each function) and peak RSS (after `invocations`) of every
/// function, then the order-writer's cold start by where its trust roots come from.
pub async fn section(cold_starts: usize, invocations: usize) -> Result<Section> {
    let mut section = Section::new("Lambda binaries: cold start and memory");
    let (local, _stack, kinesis) = Local::start(&mut section.notes).await?;
    let mut rss = Vec::new();
    for f @ (name, _) in FUNCTIONS {
        let started = local
            .cold_starts(f, cold_starts, &[])
            .await
            .map(|mut times| {
                let max = times.iter().copied().max().unwrap_or_default();
                let (mid, starts) = (median(&mut times), times.len());
                let measured = format!(
                    "{} ms median, {} ms max of {starts} starts",
                    ms(mid),
                    ms(max)
                );
                (measured, mid.as_secs_f64() * 1000.0)
            });
        let figure = format!("cold start, {name} (spawn → first `next` poll)");
        let limit = AtMost(COLD_START_MS);
        section
            .rows
            .push(Row::measured(figure, started, limit, "ms"));
        let figure = format!(
            "peak RSS, {name} ({} invocations)",
            thousands(invocations as u64)
        );
        let peak = if name == "order-publisher" && kinesis.is_none() {
            Err(anyhow!("no local Kinesis to publish to (make kinesalite)"))
        } else {
            local.peak_rss(f, invocations).await.map(|(counts, peak, mean)| {
                let (mb, responses, errors) = (crate::size::mb(peak), counts.responses, counts.errors);
                let mean = ms(mean);
                (format!("{mb:.1} MB ({responses} responses, {errors} function errors, {mean} ms per invocation)"), mb)
            })
        };
        rss.push(Row::measured(figure, peak, AtMost(PEAK_RSS_MB), "MB"));
    }
    section.rows.push(local.by_roots(cold_starts).await?);
    section.notes.push(format!(
        "Cold start and RSS run this machine's release binaries (`target/release/<function>`) \
         against a local stub of the Lambda Runtime API (`devkit/src/runtime_api.rs`) with the template's \
         environment and fake credentials; cold start is from spawn (fork + exec) to the first \
         `GET /runtime/invocation/next`, the median of {cold_starts} starts; peak RSS is `VmHWM` after \
         {} invocations cycling through the function's sample events in `events/`, against the \
         embedded DynamoDB. On Lambda, an arm64 128 MB function has a fraction of a vCPU, so its \
         init takes longer than here; the ratio between functions carries over.",
        thousands(invocations as u64)
    ));
    section.rows.extend(rss);
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_vm_hwm_and_every_function_has_sample_events() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  100 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 12000 kB\n";
        assert_eq!(vm_hwm(status), Some(12345 * 1024));
        assert_eq!(vm_hwm("Name:\tx\n"), None);
        for f @ (name, events) in FUNCTIONS {
            let count = events.split_whitespace().count();
            assert_eq!(load_events(f).unwrap().len(), count, "{name}");
        }
    }
}
