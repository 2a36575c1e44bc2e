//! The SDK's configuration as the operator's environment gives it, the clients built on it, and
//! the one question every writing verb asks before it acts on an endpoint off this machine.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use aws_config::{Region, SdkConfig};
use service_runtime::config::{endpoint_url, sdk_defaults, DYNAMODB, KINESIS};

use crate::invoke::LAMBDA;

/// The region of a local stack when the environment names none.
const LOCAL_REGION: &str = "us-east-1";

/// The SDK's configuration from the usual sources (environment, profile, role), in `region` when
/// given. When every endpoint the environment names is on this machine and no credentials are
/// set, the local servers' placeholder credentials (they check that a request is signed, not
/// by whom), and a default region.
pub async fn config(region: Option<&str>) -> SdkConfig {
    let mut loader = sdk_defaults();
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if all_local() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        let credentials =
            aws_credential_types::Credentials::new("local", "local", None, None, "outboxctl");
        loader = loader.credentials_provider(credentials);
    }
    let config = loader.load().await;
    if config.region().is_none() && all_local() {
        return config
            .to_builder()
            .region(Region::new(LOCAL_REGION))
            .build();
    }
    config
}

/// Whether the environment names endpoints for these services and all of them are on this
/// machine (a local stack, where AWS's credential chain has nothing to find).
fn all_local() -> bool {
    let named: Vec<String> = [DYNAMODB, KINESIS, LAMBDA]
        .iter()
        .filter_map(|service| endpoint_url(service))
        .collect();
    !named.is_empty() && named.iter().all(|e| crate::is_local_endpoint(e))
}

/// A DynamoDB client at `AWS_ENDPOINT_URL_DYNAMODB` (then `AWS_ENDPOINT_URL`), else AWS's.
pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(config);
    if let Some(endpoint) = endpoint_url(DYNAMODB) {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// A Kinesis client at `AWS_ENDPOINT_URL_KINESIS` (then `AWS_ENDPOINT_URL`), else AWS's.
pub fn kinesis(config: &SdkConfig) -> aws_sdk_kinesis::Client {
    let mut builder = aws_sdk_kinesis::config::Builder::from(config);
    if let Some(endpoint) = endpoint_url(KINESIS) {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_kinesis::Client::from_conf(builder.build())
}

/// Goes ahead with `what` (a sentence: "invoke outbox-sweeper") at `endpoint` when the endpoint
/// is on this machine, when the operator said `--yes`, or when they answer yes at the terminal.
/// Otherwise refuses before anything was sent: a script without `--yes` never writes to an
/// account by accident.
pub fn confirm_write(what: &str, endpoint: &str, yes: bool) -> Result<()> {
    if yes || crate::is_local_endpoint(endpoint) {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() && std::io::stderr().is_terminal() {
        eprint!("{what} at {endpoint} (not this machine)? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
        bail!("not confirmed: nothing was done");
    }
    bail!("this would {what} at {endpoint} (not this machine): add --yes to go ahead")
}
