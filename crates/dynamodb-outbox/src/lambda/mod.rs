//! The Lambda side of a consumer, written once (feature `lambda`): batch handlers as
//! `tower::Service`s over the events Lambda sends, the report of a batch as one layer, and a
//! sweeper function.
//!
//! - [`OutboxStream`], [`EntityChanges`], [`KinesisStream`] and [`SqsQueue`] run a
//!   [`Processor`](crate::Processor) over one invocation's records and answer the partial batch
//!   response ([`Processed`]).
//! - [`BatchReport`] is the layer that says what a batch came to: one `batch done` log line, one
//!   [`APPLIED_LOG_MESSAGE`] line per event applied with the link to the trace that wrote it
//!   ([`TraceLink`]), and the batch's metrics in CloudWatch's Embedded Metric Format
//!   ([`metrics`], [`MetricSet`]).
//! - [`ScheduledSweep`] runs a [`SweepJob`] (usually [`OutboxSweep`]) per scheduled invocation,
//!   or redrives parked events when an operator asks ([`REDRIVE_PARKED`]).
//! - [`OutboxConsumer`] serves a consumer of an outbox table as one function with two triggers,
//!   its stream mapping and its schedule ([`ConsumerFunction`] tells their payloads apart);
//!   [`InboxConsumer`] serves a consumer of an SQS queue, and its operator's redrives.
//! - [`dynamodb_client`] is the function's DynamoDB client, built from its environment;
//!   [`env_var`] reads a setting, its error naming the variable.
//!
//! A consumer function's `main`:
//!
//! ```no_run
//! use dynamodb_outbox::lambda::{self, BatchReport, OutboxStream};
//! use dynamodb_outbox::memory::MemoryStore;
//! use dynamodb_outbox::{Consumer, Effect, Envelope, HandlerError, Processor, Source, Takes};
//!
//! struct Audit;
//! impl Consumer for Audit {
//!     type Payload = serde_json::Value;
//!     fn name(&self) -> &str { "audit" }
//!     fn takes(&self) -> Vec<Takes> { vec![Takes::versions("Paid", 1..=1)] }
//!     async fn effect(&self, _: &Envelope<serde_json::Value>) -> Result<Effect, HandlerError> {
//!         Ok(Effect::new())
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     lambda::init_metrics();
//!     let processor = Processor::new(Audit, MemoryStore::new("audit"), Source::table("outbox")?);
//!     lambda::run(BatchReport::new("audit-consumer"), OutboxStream::new(&processor)).await
//! }
//! ```
//!
//! A test calls the same service with an event and reads the metrics it emitted:
//!
//! ```
//! # use dynamodb_outbox::lambda::{self, BatchReport, OutboxStream};
//! # use dynamodb_outbox::memory::MemoryStore;
//! # use dynamodb_outbox::{Consumer, Effect, Envelope, HandlerError, Processor, Source, Takes};
//! # struct Audit;
//! # impl Consumer for Audit {
//! #     type Payload = serde_json::Value;
//! #     fn name(&self) -> &str { "audit" }
//! #     fn takes(&self) -> Vec<Takes> { vec![Takes::versions("Paid", 1..=1)] }
//! #     async fn effect(&self, _: &Envelope<serde_json::Value>) -> Result<Effect, HandlerError> {
//! #         Ok(Effect::new())
//! #     }
//! # }
//! use lambda_runtime::tower::{Layer, Service};
//! use lambda_runtime::{Context, LambdaEvent};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let processor = Processor::new(Audit, MemoryStore::new("audit"), Source::table("outbox").unwrap());
//! let mut handler = BatchReport::new("audit-consumer").layer(OutboxStream::new(&processor));
//! let event = LambdaEvent::new(Default::default(), Context::default());
//! let (response, lines) = lambda::capture_metrics(handler.call(event)).await;
//! assert!(response.unwrap().batch_item_failures.is_empty());
//! assert!(lines[0].contains(r#""Function":"audit-consumer""#));
//! # });
//! ```

use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;

mod applied;
mod batch_or_action;
mod client;
mod consumer_function;
mod emf;
mod env;
mod handlers;
mod inbox;
pub mod metrics;
mod report;
mod sink;
mod sweep_report;
mod sweeper;
mod tls;
mod trace;

pub use applied::APPLIED_LOG_MESSAGE;
pub use client::{dynamodb_client, endpoint_url, retry_config, timeout_config};
pub use consumer_function::{ConsumerFunction, OutboxConsumer};
pub use emf::MetricSet;
pub use env::{env_var, EnvError};
pub use handlers::{EntityChanges, KinesisStream, OutboxStream, Processed, SqsQueue};
pub use inbox::InboxConsumer;
pub use report::BatchReport;
use report::Reported;
pub use sink::{capture_metrics, init_metrics, init_metrics_to};
pub use sweep_report::{SweepAction, SweepReport, REDRIVE_PARKED};
pub use sweeper::{OutboxSweep, ScheduledSweep, SweepJob};
pub use tls::{https_client, CA_BUNDLE_FILES};
pub use trace::{is_valid_traceparent, link, TraceLink};

/// Serves a consumer function: each invocation's batch goes through `handler` and is reported
/// by `report`, until the runtime stops.
pub async fn run<E, R, H>(report: BatchReport, handler: H) -> Result<(), Error>
where
    H: Service<LambdaEvent<E>, Response = Processed<R>, Error = Error>,
    E: DeserializeOwned,
    R: Serialize,
{
    lambda_runtime::run(report.layer(handler)).await
}

/// Serves a sweeper function: each invocation runs `job` ([`ScheduledSweep`]), its metrics
/// under the `Function` dimension `function`.
///
/// ```no_run
/// use std::time::Duration;
///
/// use dynamodb_outbox::dynamodb::{DynamoConsumerStore, PendingEvents};
/// use dynamodb_outbox::lambda::{self, OutboxSweep};
/// use dynamodb_outbox::{Consumer, Effect, Envelope, HandlerError, Processor, Source, Takes};
/// # struct Audit;
/// # impl Consumer for Audit {
/// #     type Payload = serde_json::Value;
/// #     fn name(&self) -> &str { "audit" }
/// #     fn takes(&self) -> Vec<Takes> { vec![Takes::versions("Paid", 1..=1)] }
/// #     async fn effect(&self, _: &Envelope<serde_json::Value>) -> Result<Effect, HandlerError> {
/// #         Ok(Effect::new())
/// #     }
/// # }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), lambda_runtime::Error> {
///     lambda::init_metrics();
///     let config = aws_sdk_dynamodb::Config::builder().behavior_version_latest().build();
///     let client = aws_sdk_dynamodb::Client::from_conf(config);
///     let store = DynamoConsumerStore::new(client.clone(), "audit", "outbox");
///     let processor = Processor::new(Audit, store, Source::table("outbox")?);
///     let pending = PendingEvents::new(client, "outbox");
///     let job = OutboxSweep {
///         processor: &processor,
///         pending: &pending,
///         older_than: Duration::from_secs(300),
///         limit: 500,
///     };
///     lambda::run_sweeper(&job, "audit-sweeper").await
/// }
/// ```
pub async fn run_sweeper<J: SweepJob>(job: &J, function: &'static str) -> Result<(), Error> {
    lambda_runtime::run(ScheduledSweep::new(job, function)).await
}
