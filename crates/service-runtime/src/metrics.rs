//! The functions' metrics in CloudWatch's Embedded Metric Format (EMF): one JSON line per
//! invocation, written to the function's own log output, from which CloudWatch extracts the
//! metrics. The writer is the engine's ([`dynamodb_outbox::lambda::MetricSet`]); this module
//! names what each function of the application emits.
//!
//! Nothing is written until a process installs a writer ([`init`] in the functions' `main`,
//! [`init_to`] in a local tool), so tests and tools that call the handlers stay quiet; a test
//! reads what one piece of work emitted with [`capture`].
//!
//! Dimensions are `Service` (a template parameter) and `Function` (the function's role, stable
//! across deployments), plus `Reason` on rejected orders: all bounded sets. Order, customer and
//! event ids never become dimensions; trace ids travel as plain properties of the line.

use dynamodb_outbox::lambda::metrics::{CONSUMER_METRICS, SWEEPER_METRICS};
use dynamodb_outbox::lambda::{BatchReport, Processed};
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Error, LambdaEvent};

pub use dynamodb_outbox::lambda::metrics::{
    APPLIED, BATCH_DURATION, DROPPED, DUPLICATES, HELD_BACK, OLD_PENDING_FOUND, OUTBOX_LAG, PARKED,
    POISON, REDRIVEN, RETRIED, SKIPPED, STILL_PENDING, UNPARKED,
};
pub use dynamodb_outbox::lambda::{
    capture_metrics as capture, init_metrics as init, init_metrics_to as init_to, MetricSet,
};

/// The `Function` dimension of each function.
pub const ORDER_WRITER: &str = "order-writer";
pub const STREAM_CONSUMER: &str = "stream-consumer";
pub const OUTBOX_SWEEPER: &str = "outbox-sweeper";
/// Pattern 3's order-history consumer (the rewards consumer is [`STREAM_CONSUMER`] whatever its
/// source, so one set of alarms serves every pattern).
pub const ORDER_HISTORY: &str = "order-history";
/// The broker deployment's relay of the outbox to the event bus, and its sweeper (the rewards
/// inbox is [`STREAM_CONSUMER`], its redrive [`OUTBOX_SWEEPER`]).
pub const ORDER_RELAY: &str = "order-relay";
pub const RELAY_SWEEPER: &str = "relay-sweeper";

/// order-writer: orders written now; requests answered with an order written before (same
/// `Idempotency-Key`); requests that placed nothing, with the error code as `Reason`.
pub const ORDERS_PLACED: &str = "OrdersPlaced";
pub const ORDER_REPLAYS: &str = "OrderReplays";
pub const ORDERS_REJECTED: &str = "OrdersRejected";

/// Every metric each function emits, by `Function` dimension: what the template's alarms and
/// dashboard may name (a test checks them against this list). The consumers' and the sweeper's
/// are the engine's batch report's.
pub const EMITTED: &[(&str, &[&str])] = &[
    (
        ORDER_WRITER,
        &[ORDERS_PLACED, ORDER_REPLAYS, ORDERS_REJECTED],
    ),
    (STREAM_CONSUMER, CONSUMER_METRICS),
    (ORDER_HISTORY, CONSUMER_METRICS),
    (OUTBOX_SWEEPER, SWEEPER_METRICS),
    (ORDER_RELAY, CONSUMER_METRICS),
    (RELAY_SWEEPER, SWEEPER_METRICS),
];

/// How a consumer function of the application reports its batches, its metrics under
/// `function`: each applied event's aggregate is an order, logged as `order_id` (what the
/// operations guide's log queries filter on).
pub fn batch_report(function: &'static str) -> BatchReport {
    BatchReport::new(function).aggregate_field("order_id")
}

/// One invocation's batch through `handler` (the engine's adapter of the event source over a
/// processor), reported as [`batch_report`] reports `function`'s: what a consumer function
/// serves, and what its tests call.
pub async fn report_batch<E, R, H>(
    function: &'static str,
    handler: H,
    event: LambdaEvent<E>,
) -> Result<R, Error>
where
    H: Service<LambdaEvent<E>, Response = Processed<R>, Error = Error>,
{
    batch_report(function).layer(handler).call(event).await
}
