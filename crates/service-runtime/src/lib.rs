//! What every function of the reference application shares, so that each service crate holds
//! only its own domain, store and handlers:
//!
//! - [`config`]: settings read once per cold start, the DynamoDB client, the JSON logs;
//! - [`metrics`]: the functions' metric names, as EMF log lines through the engine's writer;
//! - [`http`]: API Gateway HTTP API plumbing (routing, bodies, the caller's identity, errors);
//! - [`trace`]: carrying a request's trace into an event and linking a consumer's work to it;
//! - [`error`] and [`time`]: the errors and the timestamps both services use;
//! - [`start`]: what every function's `main` does first.

pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod time;
pub mod trace;

pub use error::{validate_id, StoreError, ValidationError};
pub use time::Timestamp;

/// A function's cold start: its JSON logs ([`config::init_tracing`]), its EMF metrics
/// ([`metrics::init`]) and its DynamoDB client ([`config::dynamodb_client`]). A `main` whose
/// settings need no client reads them first: deployed with a wrong one, it fails before
/// building anything.
pub async fn start() -> aws_sdk_dynamodb::Client {
    config::init_tracing();
    metrics::init();
    config::dynamodb_client().await
}
