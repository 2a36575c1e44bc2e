//! The project's local Kinesis: kinesalite (npm, MIT) run by Node as a child process on a free
//! port, in memory, for pattern 3 (self-read). `make kinesalite` installs it into
//! `.tools/kinesalite/`; this module starts it, as `local` starts the embedded DynamoDB, and kills
//! it when the handle is dropped.
//!
//! Where it cannot start (no Node, not installed), [`LocalKinesis::start`] says why in a
//! [`KinesisUnavailable`]; [`LocalKinesis::start_or_skip`] turns that into a test failure unless
//! the environment opts out by name ([`SKIP_VARIABLE`]), so a skip is never a silent pass.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::{Region, SdkConfig};
use aws_sdk_kinesis::config::Credentials;
use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::local::LOCAL_REGION;

/// The version `make kinesalite` installs and the one this module was checked against.
pub const KINESALITE_VERSION: &str = "3.3.3";

/// Set to a reason to let pattern-3 tests pass as skipped when kinesalite cannot run; never set
/// by `make test` or CI.
pub const SKIP_VARIABLE: &str = "OUTBOX_SKIP_KINESIS";

/// Overrides where kinesalite's `cli.js` is (default: `.tools/kinesalite/` of the repository).
pub const CLI_VARIABLE: &str = "KINESALITE_CLI";

/// How long kinesalite keeps a new stream CREATING; its default is 500 ms, spent by every test.
const CREATE_STREAM_MS: u32 = 10;

/// Why the local Kinesis is not there, in words that say what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("local Kinesis unavailable: {0}")]
pub struct KinesisUnavailable(pub String);

/// A running kinesalite and a client for it.
pub struct LocalKinesis {
    pub endpoint: String,
    pub client: Client,
    /// Killed when the handle is dropped (`kill_on_drop`).
    _server: Child,
}

/// A stream as the trigger needs it: its name, ARN and shards.
#[derive(Debug, Clone)]
pub struct StreamDescription {
    pub name: String,
    pub arn: String,
    pub shard_ids: Vec<String>,
}

/// Where `make kinesalite` puts kinesalite's entry point, or [`CLI_VARIABLE`]'s path.
pub fn cli_path() -> PathBuf {
    if let Some(path) = std::env::var_os(CLI_VARIABLE).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".tools/kinesalite/node_modules/kinesalite/cli.js")
}

impl LocalKinesis {
    /// Starts kinesalite on a free port and waits until it listens: `node` (or `$NODE`) running
    /// [`cli_path`].
    pub async fn start() -> Result<Self, KinesisUnavailable> {
        let node = std::env::var_os("NODE").unwrap_or_else(|| "node".into());
        Self::start_with(&node, &cli_path()).await
    }

    /// Starts kinesalite from `cli` with the Node.js binary `node`.
    pub async fn start_with(node: &OsStr, cli: &Path) -> Result<Self, KinesisUnavailable> {
        if !cli.exists() {
            return Err(KinesisUnavailable(format!(
                "kinesalite is not installed at {}: run `make kinesalite` (it needs Node.js and npm)",
                cli.display()
            )));
        }
        // Another process can take the free port between our probe and kinesalite's bind; then
        // it exits with EADDRINUSE and a second port is tried.
        let mut last_failure = String::new();
        for _ in 0..3 {
            let port = free_port().map_err(|e| KinesisUnavailable(format!("no free port: {e}")))?;
            match spawn(node, cli, port).await {
                Ok(server) => {
                    let endpoint = format!("http://127.0.0.1:{port}");
                    return Ok(Self {
                        client: client_for(&endpoint).await,
                        endpoint,
                        _server: server,
                    });
                }
                Err(Spawn::Fatal(reason)) => return Err(KinesisUnavailable(reason)),
                Err(Spawn::Retry(reason)) => last_failure = reason,
            }
        }
        Err(KinesisUnavailable(last_failure))
    }

    /// For tests: the server, or `None` after saying on the terminal that the test was skipped
    /// and why, when [`SKIP_VARIABLE`] is set. Without it a missing server is an error that
    /// names the cause, so the test fails instead of passing unseen.
    pub async fn start_or_skip(test: &str) -> Result<Option<Self>> {
        match Self::start().await {
            Ok(kinesis) => Ok(Some(kinesis)),
            Err(unavailable) => match std::env::var(SKIP_VARIABLE) {
                Ok(why) if !why.trim().is_empty() => {
                    // Straight to the process's stderr: the test harness captures `eprintln!`
                    // of passing tests, and a skip must be seen.
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED {test}: {unavailable} ({SKIP_VARIABLE}={why})"
                    );
                    Ok(None)
                }
                _ => Err(anyhow!(
                    "{unavailable}; to skip the Kinesis tests on purpose, set {SKIP_VARIABLE}=<reason>"
                )),
            },
        }
    }

    /// Creates a stream with `shards` shards and waits until it is ACTIVE.
    pub async fn create_stream(&self, name: &str, shards: i32) -> Result<StreamDescription> {
        self.client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "CreateStream {name}: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            })?;
        for _ in 0..600 {
            let description = describe_stream(&self.client, name).await?;
            if description.0 == StreamStatus::Active {
                return Ok(description.1);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("stream {name} did not become ACTIVE")
    }
}

/// A stream's status and description, every page of shards read.
pub async fn describe_stream(
    client: &Client,
    name: &str,
) -> Result<(StreamStatus, StreamDescription)> {
    let mut shard_ids = Vec::new();
    let mut exclusive_start: Option<String> = None;
    loop {
        let out = client
            .describe_stream()
            .stream_name(name)
            .set_exclusive_start_shard_id(exclusive_start.clone())
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "DescribeStream {name}: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            })?;
        let description = out
            .stream_description
            .ok_or_else(|| anyhow!("DescribeStream {name}: no description"))?;
        shard_ids.extend(description.shards.iter().map(|s| s.shard_id.clone()));
        if !description.has_more_shards || shard_ids.is_empty() {
            return Ok((
                description.stream_status,
                StreamDescription {
                    name: description.stream_name,
                    arn: description.stream_arn,
                    shard_ids,
                },
            ));
        }
        exclusive_start = shard_ids.last().cloned();
    }
}

/// A Kinesis client for `endpoint` with static credentials and the local region. The endpoint is
/// set on the service config, so `AWS_ENDPOINT_URL` (which may name a DynamoDB) does not win.
pub async fn client_for(endpoint: &str) -> Client {
    let shared: SdkConfig = outbox::config::sdk_defaults()
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(Credentials::new("local", "local", None, None, "devkit"))
        .load()
        .await;
    let config = aws_sdk_kinesis::config::Builder::from(&shared)
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

enum Spawn {
    /// Nothing will make it start: say why.
    Fatal(String),
    /// Worth another port.
    Retry(String),
}

async fn spawn(node: &OsStr, cli: &Path, port: u16) -> Result<Child, Spawn> {
    let mut child = Command::new(node)
        .arg(cli)
        .args(["--port", &port.to_string()])
        .args(["--createStreamMs", &CREATE_STREAM_MS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Spawn::Fatal(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "Node.js is not installed ({} not found): install Node.js 18 or later (e.g. `apt-get install nodejs npm`), then `make kinesalite`",
                    node.to_string_lossy()
                )
            } else {
                format!("starting {}: {e}", node.to_string_lossy())
            })
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    match first {
        Ok(Ok(Some(line))) if line.starts_with("Listening at") => {
            // kinesalite writes nothing else to stdout; reading on keeps a later write from
            // failing on a closed pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            if let Some(mut stderr) = child.stderr.take() {
                tokio::spawn(async move {
                    let mut sink = Vec::new();
                    let _ = stderr.read_to_end(&mut sink).await;
                });
            }
            Ok(child)
        }
        Err(_) => Err(Spawn::Fatal(format!(
            "kinesalite did not listen within 30 s on port {port}"
        ))),
        Ok(_) => {
            let _ = child.kill().await;
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            let stderr = stderr.trim();
            if stderr.contains("EADDRINUSE") {
                Err(Spawn::Retry(format!("port {port} was taken: {stderr}")))
            } else {
                Err(Spawn::Fatal(format!("kinesalite exited: {stderr}")))
            }
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The region, account and stream name of a stream ARN (events carry the first two).
pub fn parse_stream_arn(arn: &str) -> Result<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("kinesis"), Some(region), Some(account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        bail!("{arn} is not a Kinesis stream ARN");
    };
    let name = rest
        .strip_prefix("stream/")
        .with_context(|| format!("{arn} is not a Kinesis stream ARN"))?;
    Ok((region, account, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_arn_reads_into_region_account_and_name() {
        assert_eq!(
            parse_stream_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/orders").unwrap(),
            ("eu-west-1", "123456789012", "orders")
        );
        assert!(parse_stream_arn("arn:aws:dynamodb:us-east-1:1:table/t").is_err());
        assert!(parse_stream_arn("orders").is_err());
    }
}
