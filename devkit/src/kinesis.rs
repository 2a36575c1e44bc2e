//! The project's local Kinesis: kinesalite (npm, MIT) run by Node as a child process on a free
//! port, in memory, for pattern 3 (self-read). `make kinesalite` installs it into
//! `.tools/kinesalite/`; this module starts it, as `local` starts the embedded DynamoDB, and kills
//! it when the handle is dropped.
//!
//! Where it cannot start (no Node, not installed), [`LocalKinesis::start`] says why in a
//! [`KinesisUnavailable`]; [`LocalKinesis::start_or_skip`] turns that into a test failure unless
//! the environment opts out by name ([`SKIP_VARIABLE`]), so a skip is never a silent pass.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::local::{sdk_error, LOCAL_REGION};

pub use outboxctl::kinesis::parse_stream_arn;

/// The version `make kinesalite` installs and the one this module was checked against.
pub const KINESALITE_VERSION: &str = "3.3.3";

/// Set to a reason to let pattern-3 tests pass as skipped when kinesalite cannot run; never set
/// by `make test` or CI.
pub const SKIP_VARIABLE: &str = "OUTBOX_SKIP_KINESIS";

/// Overrides where the kinesalite package is (default: under `.tools/kinesalite/`).
pub const PACKAGE_VARIABLE: &str = "KINESALITE_PACKAGE";

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

impl StreamDescription {
    /// The stream as a consumer's source, by its ARN.
    pub fn source(&self) -> dynamodb_outbox::Source {
        dynamodb_outbox::Source::kinesis_stream(&self.arn)
            .expect("kinesalite names its streams by valid ARNs")
    }
}

/// The account kinesalite puts in its streams' ARNs (its default, pinned when it starts).
pub const LOCAL_ACCOUNT: &str = "000000000000";

/// The ARN kinesalite, as this module starts it, gives the stream `name`: the local region
/// and [`LOCAL_ACCOUNT`]. kinesalite takes both from its own environment (`AWS_REGION`,
/// `AWS_ACCOUNT_ID`), which [`spawn`] sets, so a user's AWS settings cannot move the ARN away
/// from the one the local environment names the stream by.
pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stream/{name}")
}

/// Where `make kinesis` serves kinesalite unless told otherwise (kinesalite's own default).
pub const KINESIS_DEFAULT_PORT: u16 = 4567;

/// The kinesalite package `make kinesalite` installs, or [`PACKAGE_VARIABLE`]'s folder.
pub fn package_path() -> PathBuf {
    crate::child_server::tool_path(
        PACKAGE_VARIABLE,
        ".tools/kinesalite/node_modules/kinesalite",
    )
}

/// Runs kinesalite's library entry rather than its `cli.js`, which listens on every interface
/// and cannot take port 0: here it listens on loopback only, on the port asked for (0: one the
/// system picks, so no other process can take it between a probe and the bind), says which on
/// its first line, and exits when its stdin closes, so a test process killed outright leaves no
/// server behind. Arguments: package folder, port, CREATING time in ms.
const LAUNCHER: &str = r#"
const [pkg, port, createStreamMs] = process.argv.slice(1);
const server = require(pkg)({ createStreamMs: Number(createStreamMs) });
server.listen(Number(port), "127.0.0.1", () => {
  console.log("Listening at http://127.0.0.1:" + server.address().port);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
"#;

impl LocalKinesis {
    /// Starts kinesalite on a free port and waits until it listens: `node` (or `$NODE`) running
    /// the package at [`package_path`].
    pub async fn start() -> Result<Self, KinesisUnavailable> {
        Self::serve_on(0).await
    }

    /// Starts kinesalite on `port` (for `make kinesis`, whose port the functions' environment
    /// can name).
    pub async fn serve_on(port: u16) -> Result<Self, KinesisUnavailable> {
        Self::start_with(&node(), &package_path(), port).await
    }

    /// Starts kinesalite from the package folder `package` with the Node.js binary `node` on
    /// `port` (0: a free one).
    pub async fn start_with(
        node: &OsStr,
        package: &Path,
        port: u16,
    ) -> Result<Self, KinesisUnavailable> {
        installed_version(package)?;
        let (server, port) = spawn(node, package, port).await?;
        let endpoint = format!("http://127.0.0.1:{port}");
        Ok(Self {
            client: client_for(&endpoint).await,
            endpoint,
            _server: server,
        })
    }

    /// For tests: the server, or `None` after saying on the terminal that the test was skipped
    /// and why, when [`SKIP_VARIABLE`] is set. Without it a missing server is an error that
    /// names the cause, so the test fails instead of passing unseen.
    pub async fn start_or_skip(test: &str) -> Result<Option<Self>> {
        crate::child_server::skip_or_fail(test, Self::start().await, SKIP_VARIABLE)
    }

    /// Creates a stream with `shards` shards and waits until it is ACTIVE.
    pub async fn create_stream(&self, name: &str, shards: i32) -> Result<StreamDescription> {
        let request = self
            .client
            .create_stream()
            .stream_name(name)
            .shard_count(shards);
        request
            .send()
            .await
            .map_err(|e| sdk_error(format!("CreateStream {name}"), e))?;
        for _ in 0..600 {
            let (status, description) = describe_stream(&self.client, name).await?;
            if status == StreamStatus::Active {
                return Ok(description);
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
    loop {
        let request = client.describe_stream().stream_name(name);
        let request = request.set_exclusive_start_shard_id(shard_ids.last().cloned());
        let out = request
            .send()
            .await
            .map_err(|e| sdk_error(format!("DescribeStream {name}"), e))?;
        let description = out
            .stream_description
            .with_context(|| format!("DescribeStream {name}: no description"))?;
        shard_ids.extend(description.shards.iter().map(|s| s.shard_id.clone()));
        if !description.has_more_shards || shard_ids.is_empty() {
            let (name, arn) = (description.stream_name, description.stream_arn);
            return Ok((
                description.stream_status,
                StreamDescription {
                    name,
                    arn,
                    shard_ids,
                },
            ));
        }
    }
}

/// A Kinesis client for `endpoint` with static credentials and the local region. The endpoint is
/// set on the service config, so `AWS_ENDPOINT_URL` (which may name a DynamoDB) does not win.
pub async fn client_for(endpoint: &str) -> Client {
    let shared = crate::local::local_sdk_config(endpoint).await;
    let config = aws_sdk_kinesis::config::Builder::from(&shared)
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// The pinned version's package at `package`, or what `make kinesalite` would fix.
fn installed_version(package: &Path) -> Result<(), KinesisUnavailable> {
    let manifest = package.join("package.json");
    let version = std::fs::read(&manifest)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| json["version"].as_str().map(str::to_owned));
    match version {
        Some(version) if version == KINESALITE_VERSION => Ok(()),
        Some(other) => Err(KinesisUnavailable(format!(
            "kinesalite {other} is in {}, this project runs {KINESALITE_VERSION}: run `make kinesalite`",
            package.display()
        ))),
        None => Err(KinesisUnavailable(format!(
            "kinesalite is not installed in {}: run `make kinesalite` (it needs Node.js and npm)",
            package.display()
        ))),
    }
}

fn node() -> std::ffi::OsString {
    std::env::var_os("NODE").unwrap_or_else(|| "node".into())
}

/// kinesalite running, and the port it listens on.
async fn spawn(
    node: &OsStr,
    package: &Path,
    port: u16,
) -> Result<(Child, u16), KinesisUnavailable> {
    let node_name = node.to_string_lossy();
    let mut child = Command::new(node)
        .args(["-e", LAUNCHER])
        .arg(package)
        .arg(port.to_string())
        .arg(CREATE_STREAM_MS.to_string())
        .env("AWS_REGION", LOCAL_REGION)
        .env("AWS_ACCOUNT_ID", LOCAL_ACCOUNT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            KinesisUnavailable(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "Node.js is not installed ({node_name} not found): install Node.js 18 or later with npm (e.g. `apt-get install nodejs npm`), then `make kinesalite`"
                )
            } else {
                format!("starting {node_name}: {e}")
            })
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    let listening = match &first {
        Ok(Ok(Some(line))) => line
            .strip_prefix("Listening at http://127.0.0.1:")
            .and_then(|port| port.trim().parse::<u16>().ok()),
        _ => None,
    };
    if let Some(port) = listening {
        // kinesalite writes nothing more to stdout; reading on keeps a later write from failing
        // on a closed pipe, and its stderr is drained for the same reason.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let Some(mut stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut ignored = Vec::new();
                let _ = stderr.read_to_end(&mut ignored).await;
            });
        }
        return Ok((child, port));
    }
    let _ = child.start_kill();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ =
            tokio::time::timeout(Duration::from_secs(5), pipe.read_to_string(&mut stderr)).await;
    }
    let said = match first {
        Err(_) => "nothing within 30 s".to_owned(),
        Ok(Ok(Some(line))) => line,
        Ok(_) => "nothing".to_owned(),
    };
    // Node's own error line (e.g. EADDRINUSE) is the useful one; the stack under it is not.
    let error = stderr
        .lines()
        .find(|line| line.starts_with("Error") || line.contains("Error:"))
        .unwrap_or(stderr.trim());
    Err(KinesisUnavailable(format!(
        "kinesalite did not start (it said {said:?}): {error}"
    )))
}
