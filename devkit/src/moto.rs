//! The project's local SQS, SNS and EventBridge: moto's server (`moto[server]` from PyPI,
//! Apache-2.0), run as a child process on a free loopback port for the broker relays and the
//! inbox. `make tools` installs it into `.tools/venv/`; this module starts it, as `kinesis`
//! starts kinesalite, and kills it when the handle is dropped.
//!
//! moto serves DynamoDB too, but it does not isolate concurrent transactions: the project's
//! DynamoDB is always dynoxide, and moto is used for the brokers only.
//!
//! Where it cannot start, [`LocalMoto::start`] says why in a [`MotoUnavailable`];
//! [`LocalMoto::start_or_skip`] turns that into a test failure unless the environment opts out
//! by name ([`SKIP_VARIABLE`]), so a skip is never a silent pass.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use tokio::process::{Child, Command};

use crate::local::LOCAL_REGION;

/// The version `make tools` installs (scripts/install-tools.sh) and this module was checked with.
pub const MOTO_VERSION: &str = "5.2.5";

/// Set to a reason to let broker tests pass as skipped when moto cannot run; never set by
/// `make test` or CI.
pub const SKIP_VARIABLE: &str = "OUTBOX_SKIP_MOTO";

/// Overrides which `moto_server` runs (default: `.tools/venv/bin/moto_server`).
pub const SERVER_VARIABLE: &str = "MOTO_SERVER";

/// The account moto puts in the ARNs of what it creates (its default).
pub const LOCAL_ACCOUNT: &str = "123456789012";

/// How long a start may take: moto imports every service's backend before it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the local brokers are not there, in words that say what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("local SQS/SNS/EventBridge (moto) unavailable: {0}")]
pub struct MotoUnavailable(pub String);

/// A running moto server.
pub struct LocalMoto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Killed when the handle is dropped (`kill_on_drop`).
    _server: Child,
}

/// The `moto_server` that `make tools` installs, or [`SERVER_VARIABLE`]'s.
pub fn server_path() -> PathBuf {
    crate::child_server::tool_path(SERVER_VARIABLE, ".tools/venv/bin/moto_server")
}

/// The ARN moto gives the queue `name`.
pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{name}")
}

impl LocalMoto {
    /// Starts moto's server on a free loopback port and waits until it answers.
    pub async fn start() -> Result<Self, MotoUnavailable> {
        Self::start_with(&server_path(), 0).await
    }

    /// Starts `server` (a `moto_server` executable) on `port` (0: a free one).
    pub async fn start_with(server: &Path, port: u16) -> Result<Self, MotoUnavailable> {
        if !server.exists() {
            return Err(MotoUnavailable(format!(
                "{} is not installed: run `make tools` (it pip-installs moto[server]=={MOTO_VERSION} into .tools/venv)",
                server.display()
            )));
        }
        // moto_server cannot bind port 0 and report it, so a free port is taken from the system
        // and released just before; a start that loses the port to another process is retried.
        let mut last = String::new();
        for _ in 0..3 {
            let port = if port == 0 { free_port()? } else { port };
            match spawn(server, port).await {
                Ok(child) => {
                    return Ok(Self {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        _server: child,
                    })
                }
                Err(why) => last = why,
            }
        }
        Err(MotoUnavailable(last))
    }

    /// For tests: the server, or `None` after saying on the terminal that the test was skipped
    /// and why, when [`SKIP_VARIABLE`] is set. Without it a missing server is an error that names
    /// the cause, so the test fails instead of passing unseen.
    pub async fn start_or_skip(test: &str) -> Result<Option<Self>> {
        crate::child_server::skip_or_fail(test, Self::start().await, SKIP_VARIABLE)
    }

    /// The SDK configuration for this server: the local region, static credentials and the
    /// endpoint set on the shared config, so every client built from it (SQS, SNS, EventBridge)
    /// talks to moto. Its clients wait longer than the functions' (3 s an attempt): they observe
    /// and set up runs, and moto's server, one Python process, answers slowly while it serves a
    /// chaos run's pollers and relays (it reads every message of a queue on each send and
    /// receive).
    pub async fn sdk_config(&self) -> SdkConfig {
        let config = self.sdk_config_via(&self.endpoint).await;
        config
            .into_builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .operation_timeout(Duration::from_secs(300))
                    .build(),
            )
            .build()
    }

    /// As [`Self::sdk_config`], its requests sent to `endpoint` instead: a proxy in front of this
    /// server (`devkit::proxy::FaultProxy`), which records or fails them.
    pub async fn sdk_config_via(&self, endpoint: &str) -> SdkConfig {
        crate::local::local_sdk_config(endpoint).await
    }

    /// An SQS client for this server.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    /// An SQS client for this server through the proxy at `endpoint`.
    pub async fn sqs_via(&self, endpoint: &str) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config_via(endpoint).await)
    }

    /// An SNS client for this server.
    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
    }

    /// An EventBridge client for this server.
    pub async fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk_config().await)
    }

    /// An EventBridge client for this server through the proxy at `endpoint`.
    pub async fn eventbridge_via(&self, endpoint: &str) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk_config_via(endpoint).await)
    }
}

fn free_port() -> Result<u16, MotoUnavailable> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| MotoUnavailable(format!("no free loopback port: {e}")))
}

/// moto's server listening on `port`, or why not.
async fn spawn(server: &Path, port: u16) -> Result<Child, String> {
    let mut child = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", server.display()))?;
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{} exited with {status} before it listened on port {port}",
                server.display()
            ));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.start_kill();
    Err(format!(
        "{} did not listen on port {port} within {START_TIMEOUT:?}",
        server.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_server_says_how_to_install_it() {
        let Err(unavailable) =
            LocalMoto::start_with(Path::new("/nonexistent/moto_server"), 0).await
        else {
            panic!("a missing moto_server started")
        };
        assert!(unavailable.0.contains("make tools"), "{unavailable}");
    }

    #[tokio::test]
    async fn a_message_goes_through_a_queue_on_the_started_server() -> Result<()> {
        let Some(moto) = LocalMoto::start_or_skip("moto round trip").await? else {
            return Ok(());
        };
        let sqs = moto.sqs().await;
        let url = sqs
            .create_queue()
            .queue_name("round-trip")
            .send()
            .await?
            .queue_url
            .expect("a created queue has a URL");
        sqs.send_message()
            .queue_url(&url)
            .message_body("hello")
            .send()
            .await?;
        let received = sqs.receive_message().queue_url(&url).send().await?;
        let bodies: Vec<_> = received
            .messages()
            .iter()
            .filter_map(|m| m.body())
            .collect();
        assert_eq!(bodies, ["hello"]);
        Ok(())
    }
}
