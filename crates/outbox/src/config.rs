//! Start-up configuration: environment variables, the DynamoDB client, logging. Everything here
//! runs once per cold start, never per invocation.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;

use crate::store::dynamodb::TransientCancellation;

pub const ORDERS_TABLE: &str = "ORDERS_TABLE";
pub const REWARDS_TABLE: &str = "REWARDS_TABLE";
pub const OUTBOX_RETENTION_SECONDS: &str = "OUTBOX_RETENTION_SECONDS";
pub const CONSUMER_CONCURRENCY: &str = "CONSUMER_CONCURRENCY";
pub const SWEEPER_GRACE_SECONDS: &str = "SWEEPER_GRACE_SECONDS";
pub const SWEEPER_BATCH_LIMIT: &str = "SWEEPER_BATCH_LIMIT";

pub const DEFAULT_RETENTION_SECONDS: i64 = 7 * 24 * 60 * 60;
pub const DEFAULT_CONCURRENCY: usize = 16;
pub const DEFAULT_GRACE_SECONDS: i64 = 15 * 60;
pub const DEFAULT_SWEEP_LIMIT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set: it must name the DynamoDB table")]
    Missing(&'static str),
    #[error("environment variable {name} is {value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional number, with its default when unset.
pub fn number<T: std::str::FromStr>(
    name: &'static str,
    default: T,
    valid: impl Fn(&T) -> bool,
) -> Result<T, ConfigError> {
    let Ok(value) = std::env::var(name) else {
        return Ok(default);
    };
    match value.trim().parse::<T>() {
        Ok(v) if valid(&v) => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            value,
            why: "not a number in the allowed range",
        }),
    }
}

/// The DynamoDB client, built once per cold start. Region, credentials and endpoint come from the
/// standard AWS sources (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`,
/// `AWS_MAX_ATTEMPTS`, ...), so the same binary talks to AWS or to a local DynamoDB.
pub async fn dynamodb_client() -> Client {
    client_from(&sdk_defaults().load().await)
}

/// The project's SDK settings: retries with backoff for transient errors, and timeouts that turn
/// a lost response into a retry instead of a hung invocation. Local tools start from the same.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        // Standard (not adaptive) retries: jittered exponential backoff within the invocation's
        // time. Adaptive mode's client-side rate limiter can hold a retry for many seconds after
        // one throttle, longer than an API caller waits; a Lambda runs one request at a time.
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
}

/// A client for an already-loaded configuration, with this project's retry rules added.
pub fn client_from(shared: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_classifier(TransientCancellation)
        .build();
    Client::from_conf(config)
}

/// JSON logs with ids and outcomes; request bodies are never logged.
pub fn init_tracing() {
    // The SDK logs every 4xx as a warning; a failed condition is an expected outcome here, and
    // this code logs the failures that matter itself.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_smithy_runtime=error,aws_sdk_dynamodb=error")
    });
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .try_init();
}
