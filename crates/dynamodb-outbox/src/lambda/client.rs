//! The DynamoDB client of a function: where it connects, how it retries, how long it waits.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::Client;

use super::tls::https_client;
use crate::dynamodb::TransientCancellation;

/// The DynamoDB client of a function, built once per cold start from the environment Lambda
/// gives it: `AWS_REGION`, the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and, to run against a local DynamoDB, the
/// endpoint [`endpoint_url`] finds; the same binary talks to AWS or to a local server. It
/// retries the transaction conflicts the engine meets ([`TransientCancellation`]), with
/// [`retry_config`] and [`timeout_config`], over [`https_client`].
///
/// Read directly rather than through aws-config's provider chains (profiles, SSO, STS, IMDS,
/// containers), which a function never needs: they stay out of its binary (about 0.6 MB) and
/// its cold start. A local tool that needs them loads `aws_config::defaults` with the same
/// settings.
pub async fn dynamodb_client() -> Client {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(
            env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .map(Region::new),
        )
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .http_client(https_client())
        .retry_classifier(TransientCancellation);
    if let Some(endpoint) = endpoint_url("DYNAMODB") {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

/// The endpoint the environment names for `service` (`DYNAMODB`, `KINESIS`, ...), with the
/// SDK's precedence: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`; none when
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`. A function's other clients ask here too, so
/// no client follows a rule of its own.
pub fn endpoint_url(service: &str) -> Option<String> {
    endpoint_url_from(service, |name| std::env::var(name).ok())
}

/// [`endpoint_url`] from `lookup`. An empty value counts as unset.
fn endpoint_url_from(service: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return None;
    }
    set(&format!("AWS_ENDPOINT_URL_{service}")).or_else(|| set("AWS_ENDPOINT_URL"))
}

/// Standard (not adaptive) retries: jittered exponential backoff within the invocation's time.
/// Adaptive mode's client-side rate limiter can hold a retry for many seconds after one throttle,
/// longer than an API caller waits; a Lambda runs one request at a time.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(4)
}

/// Timeouts that turn a lost response into a retry instead of a hung invocation.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_endpoint_variable_wins_over_the_general_one_and_the_opt_out_clears_both() {
        type Environment<'a> = &'a [(&'a str, &'a str)];
        const GENERAL: (&str, &str) = ("AWS_ENDPOINT_URL", "http://general");
        let cases: [(&str, Environment, Option<&str>); 6] = [
            ("DYNAMODB", &[], None),
            ("DYNAMODB", &[GENERAL], Some("http://general")),
            (
                "KINESIS",
                &[GENERAL, ("AWS_ENDPOINT_URL_KINESIS", "http://kinesis")],
                Some("http://kinesis"),
            ),
            (
                "DYNAMODB",
                &[GENERAL, ("AWS_ENDPOINT_URL_KINESIS", "http://kinesis")],
                Some("http://general"),
            ),
            (
                "DYNAMODB",
                &[GENERAL, ("AWS_ENDPOINT_URL_DYNAMODB", " ")],
                Some("http://general"),
            ),
            (
                "DYNAMODB",
                &[
                    GENERAL,
                    ("AWS_ENDPOINT_URL_DYNAMODB", "http://dynamodb"),
                    ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
                ],
                None,
            ),
        ];
        for (service, pairs, want) in cases {
            let lookup = |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            };
            assert_eq!(
                endpoint_url_from(service, lookup).as_deref(),
                want,
                "{service} with {pairs:?}"
            );
        }
    }
}
