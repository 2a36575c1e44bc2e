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

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use devkit::Tables;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use devkit::runtime_api::{lambda_environment, RuntimeStub, StubCounts};

/// One function: its binary's name and the sample events it is invoked with.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: &'static str,
    pub events: &'static [&'static str],
}

/// The functions of the three patterns' templates (the outbox's four, then pattern 3's), each
/// with the sample events of `events/<name>/`. Pattern 2 runs the outbox's binaries.
pub const FUNCTIONS: &[Function] = &[
    Function {
        name: "order-writer",
        events: &[
            "order-writer/place-order.json",
            "order-writer/place-order-base64.json",
            "order-writer/idempotent-replay.json",
            "order-writer/get-order.json",
            "order-writer/invalid-order.json",
        ],
    },
    Function {
        name: "stream-consumer",
        events: &[
            "stream-consumer/outbox-insert-batch.json",
            "stream-consumer/mixed-batch.json",
            "stream-consumer/duplicate-batch.json",
        ],
    },
    Function {
        name: "rewards-api",
        events: &["rewards-api/get-rewards.json"],
    },
    Function {
        name: "outbox-sweeper",
        events: &["outbox-sweeper/scheduled.json"],
    },
    Function {
        name: "order-publisher",
        events: &[
            "order-publisher/place-order.json",
            "order-publisher/place-order-keyed.json",
            "order-publisher/get-order.json",
            "order-publisher/invalid-order.json",
        ],
    },
    Function {
        name: "order-history",
        events: &["order-history/order-events.json"],
    },
    Function {
        name: "rewards-kinesis-consumer",
        events: &["rewards-kinesis-consumer/order-events.json"],
    },
];

/// `cargo build --release` arguments for every binary in [`FUNCTIONS`].
pub const BUILD_ALL: &str = "cargo build --release -p order-writer -p stream-consumer -p rewards-api -p outbox-sweeper -p order-publisher -p order-history -p rewards-kinesis-consumer";

impl Function {
    /// Pattern 3's functions, which need the Kinesis stream's name (and the publisher a server).
    pub fn reads_stream(&self) -> bool {
        matches!(
            self.name,
            "order-publisher" | "order-history" | "rewards-kinesis-consumer"
        )
    }

    pub fn binary(&self) -> PathBuf {
        crate::target_dir().join("release").join(self.name)
    }

    pub fn load_events(&self) -> Result<Vec<Bytes>> {
        self.events
            .iter()
            .map(|e| {
                let path = crate::workspace_root().join("events").join(e);
                std::fs::read(&path)
                    .map(Bytes::from)
                    .with_context(|| format!("reading {}", path.display()))
            })
            .collect()
    }

    /// The environment Lambda gives the function (template.yaml's variables, the runtime's
    /// own), pointed at the local DynamoDB. Nothing is inherited from this process.
    fn environment(
        &self,
        runtime_api: &str,
        dynamo: &str,
        tables: &Tables,
    ) -> Vec<(String, String)> {
        let mut env = lambda_environment(runtime_api, self.name);
        env.extend(
            [
                ("AWS_REGION", "us-east-1"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "local"),
                ("AWS_SECRET_ACCESS_KEY", "local"),
                ("AWS_SESSION_TOKEN", "local"),
                ("AWS_ENDPOINT_URL", dynamo),
                ("RUST_LOG", "info"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.push(("ORDERS_TABLE".into(), tables.orders.clone()));
        env.push(("REWARDS_TABLE".into(), tables.rewards.clone()));
        env
    }

    fn spawn(
        &self,
        runtime_api: &str,
        dynamo: &str,
        tables: &Tables,
        extra_env: &[(String, String)],
    ) -> Result<Child> {
        let binary = self.binary();
        ensure_exists(&binary)?;
        Command::new(&binary)
            .env_clear()
            .envs(self.environment(runtime_api, dynamo, tables))
            .envs(extra_env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))
    }
}

fn ensure_exists(binary: &Path) -> Result<()> {
    if !binary.is_file() {
        bail!(
            "{} is missing: build it with `{BUILD_ALL}`",
            binary.display()
        );
    }
    Ok(())
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

/// Spawn-to-first-`next` times of `samples` fresh processes, with `extra_env` added to the
/// function's environment.
pub async fn cold_starts(
    function: &Function,
    samples: usize,
    dynamo: &str,
    tables: &Tables,
    extra_env: &[(String, String)],
) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let stub = RuntimeStub::start(function.load_events()?, 0).await?;
        let spawned = Instant::now();
        let child = function.spawn(&stub.runtime_api(), dynamo, tables, extra_env)?;
        let first = stub.first_next(Duration::from_secs(10)).await;
        let stderr = stop(child).await;
        let first = first.with_context(|| format!("{}: {stderr}", function.name))?;
        times.push(first.duration_since(spawned));
    }
    Ok(times)
}

/// Where the functions' TLS trust roots come from, for the cold-start comparison: the functions'
/// default (the system's bundle file, read once), what rustls-native-certs loads when asked for
/// a directory (the bundle and every file of the certificate directory: the default before),
/// or one Amazon root (DynamoDB's certificates chain to Amazon's roots), set through
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`.
pub fn root_variants(empty_dir: &Path) -> Vec<(&'static str, Vec<(String, String)>)> {
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
    if let Some(bundle) = existing(service_runtime::config::CA_BUNDLE_FILES) {
        if Path::new("/etc/ssl/certs").is_dir() {
            variants.push((
                "bundle and directory (rustls-native-certs)",
                file_and_dir(bundle, "/etc/ssl/certs".into()),
            ));
        }
    }
    if let Some(amazon) = existing(&["/etc/ssl/certs/Amazon_Root_CA_1.pem"]) {
        variants.push((
            "Amazon Root CA 1 only",
            file_and_dir(amazon, empty_dir.display().to_string()),
        ));
    }
    variants
}

/// What serving many invocations came to.
#[derive(Debug, Clone, Copy)]
pub struct RssRun {
    pub invocations: usize,
    pub counts: StubCounts,
    /// `VmHWM`: the most resident memory the process ever had.
    pub peak_rss_bytes: u64,
    pub mean_invocation: Duration,
}

/// Serves `invocations` events to one process and reads its peak RSS.
pub async fn peak_rss(
    function: &Function,
    invocations: usize,
    dynamo: &str,
    tables: &Tables,
    extra_env: &[(String, String)],
) -> Result<RssRun> {
    let stub = RuntimeStub::start(function.load_events()?, invocations).await?;
    let child = function.spawn(&stub.runtime_api(), dynamo, tables, extra_env)?;
    let pid = child.id().context("the function exited at once")?;
    let answered = stub.all_answered(Duration::from_secs(120)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
    let stderr = stop(child).await;
    let counts = answered.with_context(|| format!("{}: {stderr}", function.name))?;
    if counts.init_errors > 0 {
        bail!("{} failed to initialise: {stderr}", function.name);
    }
    // A batch the function refuses whole measures its error path, not its work.
    if counts.item_failures > 0 {
        bail!(
            "{}: {} of {} responses reported failed records, so the run did not do the function's work: {stderr}",
            function.name,
            counts.item_failures,
            counts.responses
        );
    }
    Ok(RssRun {
        invocations,
        counts,
        peak_rss_bytes: vm_hwm(&status.context("reading /proc/<pid>/status")?)
            .context("no VmHWM in /proc/<pid>/status")?,
        mean_invocation: stub.mean_invocation(),
    })
}

/// `VmHWM:   12345 kB` in bytes.
pub fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  100 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 12000 kB\n";
        assert_eq!(vm_hwm(status), Some(12345 * 1024));
        assert_eq!(vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn every_function_has_sample_events() {
        for f in FUNCTIONS {
            let events = f.load_events().expect("the sample events are in events/");
            assert!(!events.is_empty(), "{}", f.name);
        }
    }
}
