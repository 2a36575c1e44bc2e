//! The report of a batch, as one layer over any batch handler: one `batch done` log line with
//! the outcome, one line per event applied with the link to the writer's trace
//! ([`APPLIED_LOG_MESSAGE`](super::APPLIED_LOG_MESSAGE)), and the batch's metrics
//! ([`metrics::batch`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use lambda_runtime::tower::Layer;
use lambda_runtime::{LambdaEvent, Service};

use super::handlers::Processed;
use super::{applied, metrics};
use crate::BatchOutcome;

/// How a consumer function reports its batches: its `Function` metric dimension, and the log
/// field naming an applied event's aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    function: &'static str,
    aggregate_field: &'static str,
}

impl BatchReport {
    /// The report of the function whose metrics carry `function` as their `Function`
    /// dimension, under the namespace and `Service` of the process's environment
    /// (`METRICS_NAMESPACE`, `METRICS_SERVICE`).
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            aggregate_field: "aggregate_id",
        }
    }

    /// The `Function` dimension of its metrics.
    pub(crate) fn function(&self) -> &'static str {
        self.function
    }

    /// Logs each applied event's aggregate id under `field` (`aggregate_id` unless set): the
    /// name an operator's log queries use.
    pub fn aggregate_field(mut self, field: &'static str) -> Self {
        self.aggregate_field = field;
        self
    }

    /// Logs and emits the metrics of a batch of `records` records started at `started`, in the
    /// invocation traced as `trace_id`.
    pub(crate) fn report(
        &self,
        outcome: &BatchOutcome,
        records: usize,
        started: Instant,
        trace_id: Option<&str>,
    ) {
        let traced = trace_id;
        let trace_id = trace_id.unwrap_or_default();
        tracing::info!(
            records,
            applied = outcome.applied,
            duplicates = outcome.duplicates,
            skipped = outcome.skipped,
            ignored = outcome.ignored,
            parked = outcome.parked,
            poison = outcome.poison,
            dropped = outcome.dropped,
            waiting = outcome.waiting,
            failed = outcome.failed,
            held_back = outcome.held_back,
            function = self.function,
            trace_id,
            "batch done"
        );
        for event in &outcome.applied_events {
            applied::log(event, self.aggregate_field, trace_id);
        }
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        metrics::batch(self.function, outcome, millis, traced).emit();
    }
}

impl<S> Layer<S> for BatchReport {
    type Service = Reported<S>;

    fn layer(&self, inner: S) -> Reported<S> {
        Reported {
            inner,
            report: self.clone(),
        }
    }
}

/// A batch handler whose batches are reported ([`BatchReport`]); it answers Lambda's response.
#[derive(Debug, Clone)]
pub struct Reported<S> {
    inner: S,
    report: BatchReport,
}

impl<S, E, R> Service<LambdaEvent<E>> for Reported<S>
where
    S: Service<LambdaEvent<E>, Response = Processed<R>>,
{
    type Response = R;
    type Error = S::Error;
    type Future = Reporting<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<E>) -> Self::Future {
        Reporting {
            trace_id: event.context.xray_trace_id.clone(),
            started: Instant::now(),
            inner: Box::pin(self.inner.call(event)),
            report: self.report.clone(),
        }
    }
}

/// The future of a [`Reported`] handler's answer.
pub struct Reporting<F> {
    inner: Pin<Box<F>>,
    started: Instant,
    trace_id: Option<String>,
    report: BatchReport,
}

impl<F, R, E> Future for Reporting<F>
where
    F: Future<Output = Result<Processed<R>, E>>,
{
    type Output = Result<R, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.inner.as_mut().poll(cx).map_ok(|processed| {
            let trace_id = this.trace_id.as_deref();
            let (outcome, records) = (&processed.outcome, processed.records);
            this.report.report(outcome, records, this.started, trace_id);
            processed.response
        })
    }
}
