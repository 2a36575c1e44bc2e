//! Start-up configuration: the settings in the environment, the DynamoDB client, the roots its
//! TLS trusts, logging. Everything here runs once per cold start, never per invocation.

mod client;
mod logging;
mod settings;

pub use client::{
    client_from, dynamodb_client, endpoint_url, https_client, retry_config, sdk_defaults,
    timeout_config, CA_BUNDLE_FILES, DYNAMODB, KINESIS,
};
pub use logging::{init_tracing, init_tracing_to, json_logs_to};
pub use settings::{
    required, required_name, required_source, required_stream, source, source_from, source_name,
    ConfigError, OutboxPattern, Setting, SourceKind, CONSUMER_CONCURRENCY, DEFAULT_CONCURRENCY,
    DEFAULT_GRACE_SECONDS, DEFAULT_RETENTION_SECONDS, DEFAULT_SWEEP_LIMIT, ORDERS_TABLE,
    ORDER_EVENTS_STREAM, OUTBOX_PATTERN, OUTBOX_RETENTION_SECONDS, REWARDS_TABLE,
    SWEEPER_BATCH_LIMIT, SWEEPER_GRACE_SECONDS,
};
