//! Start-up configuration: environment variables, the DynamoDB client, logging. Everything here
//! runs once per cold start, never per invocation.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Region, SharedHttpClient};
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use dynamodb_outbox::dynamodb::TransientCancellation;
use dynamodb_outbox::Source;
/// What a source variable names, for [`required_source`] and [`required_name`].
pub use dynamodb_outbox::SourceKind;

/// The variable naming the order service's table (its orders and its outbox).
pub const ORDERS_TABLE: &str = "ORDERS_TABLE";
/// The variable naming the rewards service's table (balances, ledgers, the consumer's progress).
pub const REWARDS_TABLE: &str = "REWARDS_TABLE";
/// The variable naming the Kinesis data stream of pattern 3 (self-read): the order API publishes
/// `OrderPlaced` to it, order-history and rewards read it.
pub const ORDER_EVENTS_STREAM: &str = "ORDER_EVENTS_STREAM";

/// A numeric setting read from the environment at start-up: its variable, its default, and the
/// range a value must fall in. A value outside the range stops the function at start-up with a
/// sentence naming both, instead of misbehaving (or panicking in time arithmetic) later.
/// `template.yaml` gives each matching parameter the same `MinValue`/`MaxValue` (a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub variable: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

/// How long a processed outbox event is kept before DynamoDB's TTL may delete it: up to a year.
pub const OUTBOX_RETENTION_SECONDS: Setting = Setting {
    variable: "OUTBOX_RETENTION_SECONDS",
    default: 7 * 24 * 60 * 60,
    min: 0,
    max: 365 * 24 * 60 * 60,
};
/// Customers applied at a time in one stream batch (and outbox items marked at once): a
/// 100-record batch of distinct customers goes in one wave of round trips
/// (docs/benchmarks.md), and the connections and CPU of a 128 MB function stay bounded.
pub const CONSUMER_CONCURRENCY: Setting = Setting {
    variable: "CONSUMER_CONCURRENCY",
    default: 100,
    min: 1,
    max: 256,
};
/// Age after which the sweeper redrives a pending event: up to 7 days (the stream keeps records
/// for 24 hours, so a longer grace only delays the redrive of what it dropped).
pub const SWEEPER_GRACE_SECONDS: Setting = Setting {
    variable: "SWEEPER_GRACE_SECONDS",
    default: 15 * 60,
    min: 0,
    max: 7 * 24 * 60 * 60,
};
/// Pending events one sweeper run reads, spread evenly over the pending index's shards.
pub const SWEEPER_BATCH_LIMIT: Setting = Setting {
    variable: "SWEEPER_BATCH_LIMIT",
    default: 1000,
    min: 1,
    max: 10_000,
};

/// The variable choosing which of the article's patterns a function of the reference application
/// runs: the same binary serves the outbox, CDC on the order table, and self-read.
pub const OUTBOX_PATTERN: &str = "OUTBOX_PATTERN";

/// How the order service's events reach the rewards consumer (read from [`OUTBOX_PATTERN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboxPattern {
    /// Pattern 1: the order and an outbox event in one transaction, the outbox's stream.
    #[default]
    Outbox,
    /// Pattern 2: only the order item (with a pending marker); its INSERT on the table's stream
    /// is the event.
    Cdc,
    /// Pattern 3: the event published to a Kinesis stream, which the order service reads too.
    SelfRead,
}

impl OutboxPattern {
    /// Every pattern with the value that names it.
    pub const ALL: [(OutboxPattern, &'static str); 3] = [
        (OutboxPattern::Outbox, "outbox"),
        (OutboxPattern::Cdc, "cdc"),
        (OutboxPattern::SelfRead, "self-read"),
    ];

    /// The value of [`OUTBOX_PATTERN`] naming this pattern.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(pattern, _)| *pattern == self)
            .map_or("outbox", |(_, name)| name)
    }

    /// The pattern from the environment; [`OutboxPattern::Outbox`] when unset.
    pub fn read() -> Result<Self, ConfigError> {
        Self::read_from(|name| std::env::var(name).ok())
    }

    /// The pattern from `lookup` (the environment, or a test's map).
    pub fn read_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let Some(value) = lookup(OUTBOX_PATTERN) else {
            return Ok(Self::default());
        };
        Self::ALL
            .iter()
            .find(|(_, name)| *name == value.trim())
            .map(|(pattern, _)| *pattern)
            .ok_or(ConfigError::UnknownPattern { value })
    }

    /// The pattern from the environment when `function` serves it; otherwise a start-up error
    /// that names the patterns it serves, so a function deployed with the wrong pattern fails
    /// closed instead of reading a source that is not there.
    pub fn read_served_by(function: &'static str, served: &[Self]) -> Result<Self, ConfigError> {
        Self::read()?.served_by(function, served)
    }

    /// `self` when `function` serves it (see [`OutboxPattern::read_served_by`]).
    pub fn served_by(self, function: &'static str, served: &[Self]) -> Result<Self, ConfigError> {
        if served.contains(&self) {
            return Ok(self);
        }
        Err(ConfigError::PatternNotServed {
            function,
            pattern: self.name(),
            served: served
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

pub const DEFAULT_RETENTION_SECONDS: i64 = OUTBOX_RETENTION_SECONDS.default;
pub const DEFAULT_CONCURRENCY: usize = CONSUMER_CONCURRENCY.default as usize;
pub const DEFAULT_GRACE_SECONDS: i64 = SWEEPER_GRACE_SECONDS.default;
pub const DEFAULT_SWEEP_LIMIT: usize = SWEEPER_BATCH_LIMIT.default as usize;

#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set: it must name the DynamoDB table")]
    Missing(&'static str),
    #[error("environment variable {0} is not set: it must name the Kinesis data stream")]
    MissingStream(&'static str),
    #[error(
        "environment variable {variable} is {value:?}: it must be a whole number from {min} to {max}"
    )]
    OutOfRange {
        variable: &'static str,
        value: String,
        min: i64,
        max: i64,
    },
    #[error(
        "environment variable {variable} is {value:?}: it must be the name or the ARN of {what}"
    )]
    NotASource {
        variable: &'static str,
        value: String,
        what: &'static str,
    },
    #[error(
        "environment variable OUTBOX_PATTERN is {value:?}: it must be outbox (the default), cdc or self-read"
    )]
    UnknownPattern { value: String },
    #[error("environment variable OUTBOX_PATTERN is {pattern}: {function} serves {served} only")]
    PatternNotServed {
        function: &'static str,
        pattern: &'static str,
        served: String,
    },
}

/// `main` returns this error when start-up fails, and Rust prints a returned error with `Debug`:
/// the sentence is what an operator reading the function's log needs, not the variant's name.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// The name of the Kinesis stream in `name` (pattern 3), read at start-up.
pub fn required_stream(name: &'static str) -> Result<String, ConfigError> {
    required(name).map_err(|_| ConfigError::MissingStream(name))
}

/// The table (`kind` [`SourceKind::Table`]) or Kinesis stream a consumer reads, from the
/// variable `name`: its name (in the function's own account and region) or its ARN, checked at
/// start-up. The value is returned as given: the engine's processor compares each record's
/// source with it ([`dynamodb_outbox::Processor::new`]).
pub fn required_source(name: &'static str, kind: SourceKind) -> Result<String, ConfigError> {
    let value = match kind {
        SourceKind::Table => required(name)?,
        SourceKind::KinesisStream => required_stream(name)?,
    };
    source_from(name, kind, &value)?;
    Ok(value)
}

/// The name of the table (`kind` [`SourceKind::Table`]) or Kinesis stream in the variable
/// `name`, which holds its name or its ARN (checked at start-up as [`required_source`] checks
/// it): what a function addresses it by in its DynamoDB or Kinesis calls, so one value serves
/// the functions that call the table or stream and the consumers that check its records. A
/// table or stream given by ARN is still called by its name, in the function's own account and
/// region (local servers, dynoxide among them, accept no ARN where a name goes).
pub fn required_name(name: &'static str, kind: SourceKind) -> Result<String, ConfigError> {
    let value = required_source(name, kind)?;
    Ok(source_name(kind, &value))
}

/// The name of the table or stream `source` names (by name or by ARN); a value that is neither
/// is returned as it is.
pub fn source_name(kind: SourceKind, source: &str) -> String {
    Source::parse(kind, source.trim())
        .map_or_else(|_| source.to_owned(), |source| source.name().to_owned())
}

/// `value` of the variable `name` as a source of `kind`, or the start-up error naming both.
pub fn source_from(
    name: &'static str,
    kind: SourceKind,
    value: &str,
) -> Result<Source, ConfigError> {
    Source::parse(kind, value.trim()).map_err(|_| ConfigError::NotASource {
        variable: name,
        value: value.to_owned(),
        what: match kind {
            SourceKind::Table => "a DynamoDB table",
            SourceKind::KinesisStream => "a Kinesis data stream",
        },
    })
}

impl Setting {
    /// The setting's value from the environment, its default when unset.
    pub fn read<T: TryFrom<i64>>(&self) -> Result<T, ConfigError> {
        self.read_from(|name| std::env::var(name).ok())
    }

    /// The setting's value from `lookup` (the environment, or a test's map).
    pub fn read_from<T: TryFrom<i64>>(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<T, ConfigError> {
        let out_of_range = |value: String| ConfigError::OutOfRange {
            variable: self.variable,
            value,
            min: self.min,
            max: self.max,
        };
        let number = match lookup(self.variable) {
            None => self.default,
            Some(value) => match value.trim().parse::<i64>() {
                Ok(n) if (self.min..=self.max).contains(&n) => n,
                _ => return Err(out_of_range(value)),
            },
        };
        T::try_from(number).map_err(|_| out_of_range(number.to_string()))
    }
}

/// The service part of `AWS_ENDPOINT_URL_<SERVICE>` for DynamoDB.
pub const DYNAMODB: &str = "DYNAMODB";
/// The service part of `AWS_ENDPOINT_URL_<SERVICE>` for Kinesis.
pub const KINESIS: &str = "KINESIS";

/// The endpoint the environment names for `service` (e.g. [`DYNAMODB`], [`KINESIS`]), with the
/// SDK's precedence: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`; none when
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`. Every client this project builds from the
/// environment asks here, so no client follows a rule of its own.
pub fn endpoint_url(service: &str) -> Option<String> {
    endpoint_url_from(service, |name| std::env::var(name).ok())
}

/// [`endpoint_url`] from `lookup` (the environment, or a test's map). An empty value counts as
/// unset.
pub fn endpoint_url_from(service: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return None;
    }
    set(&format!("AWS_ENDPOINT_URL_{service}")).or_else(|| set("AWS_ENDPOINT_URL"))
}

/// The DynamoDB client of a function, built once per cold start from the environment Lambda
/// gives it: `AWS_REGION`, the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and, to run against a local DynamoDB, the
/// endpoint [`endpoint_url`] finds; the same binary talks to AWS or to a local server. Read directly rather than through aws-config's provider chains (profiles, SSO, STS,
/// IMDS, containers), which a function never needs: they stay out of its binary (about 0.6 MB)
/// and its cold start. Local tools that may need them start from [`sdk_defaults`].
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
    if let Some(endpoint) = endpoint_url(DYNAMODB) {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

/// The project's SDK settings on aws-config's standard sources (environment, profiles, ...), for
/// the local tools and tests; the functions use the same settings in [`dynamodb_client`].
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .http_client(https_client())
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

/// The SDK's HTTP client (hyper, pooled connections, HTTP/1.1 to DynamoDB) with rustls on ring:
/// one TLS stack, and the smaller one (aws-lc, the SDK's default, adds about 0.7 MB). What ring
/// lacks, a FIPS mode and post-quantum key exchange, this project does not require; a deployment
/// that must have them switches to `CryptoMode::AwsLc` with the `rustls-aws-lc` feature.
pub fn https_client() -> SharedHttpClient {
    https_client_trusting(trust_store(|name| std::env::var_os(name)))
}

fn https_client_trusting(roots: tls::TrustStore) -> SharedHttpClient {
    let context = tls::TlsContext::builder()
        .with_trust_store(roots)
        .build()
        .unwrap_or_default();
    SharedHttpClient::new(RootsParsedOnce(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(context)
            .build_https(),
    ))
}

/// The SDK's HTTPS client without its start-up warm-up. When a client is built, the SDK builds
/// a connector and drops it, so that the system's roots (which it caches) load during init; roots
/// given as PEM are not cached, so the warm-up parsed the whole bundle for nothing and the first
/// request parsed it again (about 1 ms of CPU of the 2.8 ms before the first poll here,
/// docs/benchmarks.md). Skipping it parses the bundle once, when the first request builds the
/// connector it keeps; every request is served exactly as before.
#[derive(Debug)]
struct RootsParsedOnce(SharedHttpClient);

impl HttpClient for RootsParsedOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The system's CA bundle files, in the order distributions place them: Amazon Linux and
/// Fedora (the Lambda `provided.al2023` runtime), Debian and Ubuntu, Alpine and others.
pub const CA_BUNDLE_FILES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
];

/// The roots the functions trust: the one bundle file, not the system default. The default
/// (rustls-native-certs) reads the bundle *and* every file of the certificate directory, the
/// same certificates again one file at a time: most of a cold start (docs/benchmarks.md). The
/// bundle holds every root the system trusts, so nothing is lost; AWS endpoints chain to the
/// Amazon Trust Services roots (and Starfield's, cross-signing them), which it contains.
/// `SSL_CERT_FILE` still names another bundle; with `SSL_CERT_DIR`, or no bundle file at all,
/// the system default decides, as before.
fn trust_store(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> aws_smithy_http_client::tls::TrustStore {
    use aws_smithy_http_client::tls::TrustStore;
    if env("SSL_CERT_DIR").is_some() {
        return TrustStore::default();
    }
    let bundle = match env("SSL_CERT_FILE") {
        Some(file) => std::fs::read(file)
            .ok()
            .map(|pem| parsable_certificates(&pem)),
        None => CA_BUNDLE_FILES.iter().find_map(|f| std::fs::read(f).ok()),
    };
    match bundle {
        Some(pem) if !pem.is_empty() => TrustStore::empty().with_pem_certificate(pem),
        _ => TrustStore::default(),
    }
}

/// The certificates of an operator's `SSL_CERT_FILE` that rustls accepts as roots, as PEM, up to
/// the first section that is not valid PEM. The SDK parses its PEM roots with `expect`, when the
/// first request builds its connector (see [`RootsParsedOnce`]): a bad file would panic there,
/// and every later request with it. The system's bundle, which every TLS library on the machine
/// reads, is handed over as it is: checking it would cost what skipping the warm-up saves.
fn parsable_certificates(pem: &[u8]) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut parsable = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let Ok(certificate) = certificate else { break };
        if rustls::RootCertStore::empty()
            .add(certificate.clone())
            .is_err()
        {
            continue;
        }
        parsable.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in STANDARD.encode(certificate.as_ref()).as_bytes().chunks(64) {
            parsable.extend_from_slice(line);
            parsable.push(b'\n');
        }
        parsable.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    parsable
}

/// A client for an already-loaded configuration, with this project's retry rules added.
pub fn client_from(shared: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_classifier(TransientCancellation)
        .build();
    Client::from_conf(config)
}

/// What is logged unless `RUST_LOG` says otherwise. The SDK logs every 4xx as a warning; a failed
/// condition is an expected outcome here, and this code logs the failures that matter itself.
const DEFAULT_LOG: &str = "info,aws_smithy_runtime=error,aws_sdk_dynamodb=error";

/// JSON logs with ids and outcomes on stdout; request bodies are never logged.
pub fn init_tracing() {
    init_tracing_to(std::io::stdout);
}

/// The functions' logging, written to `writer` (the benchmarks format into a sink). `RUST_LOG` is
/// a level or `target=level` pairs (`tracing_subscriber::filter::Targets`: no span or field
/// filters, whose regex engine would add about 0.3 MB to every binary).
pub fn init_tracing_to<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = json_logs_to(writer).try_init();
}

/// The functions' log subscriber, not installed: a test sets it as its thread's default to read
/// what the handlers log.
pub fn json_logs_to<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| DEFAULT_LOG.parse().expect("the default filter parses"));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .with_writer(writer);
    tracing_subscriber::registry().with(filter).with(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_outbox_unless_named_and_another_value_is_refused_with_the_choices() {
        assert_eq!(
            OutboxPattern::read_from(|_| None).unwrap(),
            OutboxPattern::Outbox
        );
        for (pattern, name) in OutboxPattern::ALL {
            let read = OutboxPattern::read_from(|_| Some(name.to_owned())).unwrap();
            assert_eq!((read, read.name()), (pattern, name));
        }
        let err = OutboxPattern::read_from(|_| Some("CDC2".to_owned())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable OUTBOX_PATTERN is \"CDC2\": it must be outbox (the default), cdc or self-read"
        );
    }

    #[test]
    fn the_service_endpoint_variable_wins_over_the_general_one_and_the_opt_out_clears_both() {
        type Environment<'a> = &'a [(&'a str, &'a str)];
        const GENERAL: (&str, &str) = ("AWS_ENDPOINT_URL", "http://general");
        let cases: [(&str, Environment, Option<&str>); 6] = [
            (DYNAMODB, &[], None),
            (DYNAMODB, &[GENERAL], Some("http://general")),
            (
                KINESIS,
                &[GENERAL, ("AWS_ENDPOINT_URL_KINESIS", "http://kinesis")],
                Some("http://kinesis"),
            ),
            (
                DYNAMODB,
                &[GENERAL, ("AWS_ENDPOINT_URL_KINESIS", "http://kinesis")],
                Some("http://general"),
            ),
            (
                DYNAMODB,
                &[GENERAL, ("AWS_ENDPOINT_URL_DYNAMODB", " ")],
                Some("http://general"),
            ),
            (
                DYNAMODB,
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

    #[test]
    fn a_function_refuses_a_pattern_it_does_not_serve_by_name() {
        use OutboxPattern::*;
        assert_eq!(
            Cdc.served_by("stream-consumer", &[Outbox, Cdc]).unwrap(),
            Cdc
        );
        let err = SelfRead
            .served_by("stream-consumer", &[Outbox, Cdc])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable OUTBOX_PATTERN is self-read: stream-consumer serves outbox, cdc only"
        );
    }

    #[test]
    fn every_numeric_setting_out_of_range_is_refused_with_a_sentence_naming_it() {
        for setting in [
            OUTBOX_RETENTION_SECONDS,
            CONSUMER_CONCURRENCY,
            SWEEPER_GRACE_SECONDS,
            SWEEPER_BATCH_LIMIT,
        ] {
            for bad in ["1000000000000", "-1", "12abc", "", "9223372036854775808"] {
                let err = setting
                    .read_from::<i64>(|_| Some(bad.to_owned()))
                    .unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "environment variable {} is {bad:?}: it must be a whole number from {} to {}",
                        setting.variable, setting.min, setting.max
                    )
                );
            }
            assert_eq!(setting.read_from::<i64>(|_| None).unwrap(), setting.default);
            let max = setting.max.to_string();
            assert_eq!(
                setting.read_from::<i64>(|_| Some(max.clone())).unwrap(),
                setting.max
            );
        }
    }

    #[test]
    fn the_trust_store_is_the_bundle_file_unless_a_certificate_directory_is_asked_for() {
        let bundle = std::env::temp_dir().join(format!("outbox-roots-{}.pem", std::process::id()));
        std::fs::write(&bundle, AMAZON_ROOT_CA_1).unwrap();
        let file_only = |name: &str| (name == "SSL_CERT_FILE").then(|| bundle.clone().into());
        let store = format!("{:?}", trust_store(file_only));
        assert!(store.contains("enable_native_roots: false"), "{store}");
        assert!(store.contains("CertificatePEM"), "{store}");
        let with_dir = |name: &str| match name {
            "SSL_CERT_DIR" => Some("/etc/ssl/certs".into()),
            "SSL_CERT_FILE" => Some(bundle.clone().into()),
            _ => None,
        };
        let store = format!("{:?}", trust_store(with_dir));
        assert!(store.contains("enable_native_roots: true"), "{store}");
        let missing = |name: &str| (name == "SSL_CERT_FILE").then(|| "/nonexistent/ca.pem".into());
        let store = format!("{:?}", trust_store(missing));
        assert!(
            store.contains("enable_native_roots: true"),
            "an unreadable file falls back to the system default: {store}"
        );
        std::fs::remove_file(&bundle).unwrap();
    }

    /// A real root (Amazon Root CA 1, from the system's bundle): rustls takes it.
    const AMAZON_ROOT_CA_1: &str = "-----BEGIN CERTIFICATE-----
MIIDQTCCAimgAwIBAgITBmyfz5m/jAo54vB4ikPmljZbyjANBgkqhkiG9w0BAQsF
ADA5MQswCQYDVQQGEwJVUzEPMA0GA1UEChMGQW1hem9uMRkwFwYDVQQDExBBbWF6
b24gUm9vdCBDQSAxMB4XDTE1MDUyNjAwMDAwMFoXDTM4MDExNzAwMDAwMFowOTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoTBkFtYXpvbjEZMBcGA1UEAxMQQW1hem9uIFJv
b3QgQ0EgMTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBALJ4gHHKeNXj
ca9HgFB0fW7Y14h29Jlo91ghYPl0hAEvrAIthtOgQ3pOsqTQNroBvo3bSMgHFzZM
9O6II8c+6zf1tRn4SWiw3te5djgdYZ6k/oI2peVKVuRF4fn9tBb6dNqcmzU5L/qw
IFAGbHrQgLKm+a/sRxmPUDgH3KKHOVj4utWp+UhnMJbulHheb4mjUcAwhmahRWa6
VOujw5H5SNz/0egwLX0tdHA114gk957EWW67c4cX8jJGKLhD+rcdqsq08p8kDi1L
93FcXmn/6pUCyziKrlA4b9v7LWIbxcceVOF34GfID5yHI9Y/QCB/IIDEgEw+OyQm
jgSubJrIqg0CAwEAAaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMC
AYYwHQYDVR0OBBYEFIQYzIU07LwMlJQuCFmcx7IQTgoIMA0GCSqGSIb3DQEBCwUA
A4IBAQCY8jdaQZChGsV2USggNiMOruYou6r4lK5IpDB/G/wkjUu0yKGX9rbxenDI
U5PMCCjjmCXPI6T53iHTfIUJrU6adTrCC2qJeHZERxhlbI1Bjjt/msv0tadQ1wUs
N+gDS63pYaACbvXy8MWy7Vu33PqUXHeeE6V/Uq2V8viTO96LXFvKWlJbYK8U90vv
o/ufQJVtMVT8QtPHRh8jrdkPSHCa2XV4cdFyQzR1bldZwgJcJmApzyMZFo6IQ6XU
5MsI+yMRQ+hDKXJioaldXgjUkK642M4UwtBV8ob2xJNDd2ZhwLnoQdeXeGADbkpy
rqXRfboQnoZsG4q5WTP468SQvvG5
-----END CERTIFICATE-----
";

    /// What the SDK made of an `SSL_CERT_FILE` holding a certificate rustls refuses (valid
    /// base64, not a certificate) before the real root: it panicked building its connector.
    #[tokio::test]
    async fn an_operators_bundle_with_a_bad_certificate_keeps_its_good_roots_and_never_panics() {
        let bundle =
            std::env::temp_dir().join(format!("outbox-bad-roots-{}.pem", std::process::id()));
        std::fs::write(
            &bundle,
            format!(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{AMAZON_ROOT_CA_1}"
            ),
        )
        .unwrap();
        let file_only = |name: &str| (name == "SSL_CERT_FILE").then(|| bundle.clone().into());
        let roots = trust_store(file_only);
        let kept = format!("{roots:?}");
        assert!(kept.contains("enable_native_roots: false"), "{kept}");
        assert_eq!(kept.matches("CertificatePEM").count(), 1, "{kept}");

        // The first request builds the connector, parsing the roots: it fails to connect (nothing
        // listens on port 9 over TLS here), it does not panic.
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(RetryConfig::disabled())
            .http_client(https_client_trusting(roots))
            .endpoint_url("https://127.0.0.1:9")
            .build();
        let outcome = Client::from_conf(config).list_tables().send().await;
        assert!(outcome.is_err(), "{outcome:?}");
        std::fs::remove_file(&bundle).unwrap();
    }

    #[test]
    fn a_source_is_a_name_or_an_arn_of_its_kind_and_anything_else_is_refused_naming_the_variable() {
        for good in [
            "outbox-dev-orders",
            "arn:aws:dynamodb:us-east-1:123456789012:table/outbox-dev-orders",
        ] {
            let source = source_from(ORDERS_TABLE, SourceKind::Table, good).unwrap();
            assert_eq!(source.name(), "outbox-dev-orders");
            assert_eq!(source_name(SourceKind::Table, good), "outbox-dev-orders");
        }
        for bad in [
            "arn:aws:dynamodb:us-east-1:123456789012:table/outbox-dev-orders/stream/2026",
            "arn:aws:kinesis:us-east-1:123456789012:stream/outbox-dev-orders",
            "arn:aws:dynamodb:us-east-1:12345:table/outbox-dev-orders",
            "orders table",
        ] {
            let err = source_from(ORDERS_TABLE, SourceKind::Table, bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("environment variable ORDERS_TABLE is {bad:?}: it must be the name or the ARN of a DynamoDB table")
            );
        }
        let err = source_from(
            ORDER_EVENTS_STREAM,
            SourceKind::KinesisStream,
            "arn:aws:dynamodb:us-east-1:123456789012:table/t",
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("environment variable ORDER_EVENTS_STREAM is"));
        assert!(err.to_string().ends_with("a Kinesis data stream"));
    }

    #[test]
    fn a_missing_variable_is_reported_in_a_sentence_at_start_up() {
        let err: lambda_runtime::Error = required("OUTBOX_TEST_NEVER_SET").unwrap_err().into();
        assert_eq!(
            format!("{err:?}"),
            "environment variable OUTBOX_TEST_NEVER_SET is not set: it must name the DynamoDB table"
        );
    }
}
