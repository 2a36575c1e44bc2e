//! The sweeper function: a scheduled invocation applies the events still pending after a grace
//! period ([`Processor::sweep`]); an operator's `{"action": "redrive-parked"}` puts the parked
//! events back through the consumer ([`Processor::redrive_parked`]). Either run ends in one
//! `sweep done` log line and its metrics; the [`SweepReport`] is the function's result.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use lambda_runtime::{Error, LambdaEvent, Service};
use serde::Serialize;
use serde_json::Value;

use super::emf::MetricSet;
use super::metrics::{self, lag_millis};
use crate::dynamodb::PendingEvents;
use crate::{BatchOutcome, Consumer, ConsumerStore, Processor};

/// The `action` of the payload that redrives parked events:
/// `aws lambda invoke --function-name <sweeper> --payload '{"action":"redrive-parked"}' out.json`.
pub const REDRIVE_PARKED: &str = "redrive-parked";

/// What one invocation of a sweeper asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepAction {
    /// Apply the events still pending after the grace period: a scheduled event, or any payload
    /// that asks for nothing else.
    Sweep,
    /// Put the parked events back through the consumer, after a fix.
    RedriveParked,
}

impl SweepAction {
    /// The action `payload` asks for.
    pub fn of(payload: &Value) -> Self {
        match payload.get("action").and_then(Value::as_str) {
            Some(REDRIVE_PARKED) => Self::RedriveParked,
            _ => Self::Sweep,
        }
    }

    /// Its name in the `sweep done` log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sweep => "sweep",
            Self::RedriveParked => REDRIVE_PARKED,
        }
    }
}

/// What one run of a sweeper found and did.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct SweepReport {
    /// Events read: pending past the grace period, or parked (a redrive).
    pub found: usize,
    /// Events applied now.
    pub applied: usize,
    /// Events the consumer had applied before.
    pub already_applied: usize,
    /// Events that can never be applied as they are: parked with their reason, out of the
    /// way of the events behind them.
    pub parked: usize,
    /// Events not applied now for a reason that may pass (or that wait for an earlier event of
    /// their key): still pending, retried by the next run.
    pub failed: usize,
    /// The events not applied, by item key (the engine logs each with its reason).
    pub problems: Vec<String>,
    /// The outbox lag of every event applied now, for the metrics (not part of the result).
    #[serde(skip)]
    pub lag_millis: Vec<f64>,
}

impl From<&BatchOutcome> for SweepReport {
    /// Each event read lands in exactly one of the outcome's counts.
    fn from(outcome: &BatchOutcome) -> Self {
        let not_applied = outcome.poison + outcome.waiting + outcome.failed + outcome.held_back;
        Self {
            found: outcome.applied
                + outcome.duplicates
                + outcome.skipped
                + outcome.ignored
                + outcome.parked
                + not_applied,
            applied: outcome.applied,
            already_applied: outcome.duplicates + outcome.skipped,
            parked: outcome.parked,
            failed: not_applied,
            problems: outcome.failures.clone(),
            lag_millis: lag_millis(outcome),
        }
    }
}

impl SweepReport {
    /// Adds another consumer's run to this one.
    pub fn add(&mut self, other: SweepReport) {
        self.found += other.found;
        self.applied += other.applied;
        self.already_applied += other.already_applied;
        self.parked += other.parked;
        self.failed += other.failed;
        self.problems.extend(other.problems);
        self.lag_millis.extend(other.lag_millis);
    }

    /// The run's metrics: a sweep counts the old pending events it found (the stream did not
    /// deliver them within the grace period: alarmed); a redrive counts the parked events it
    /// took back instead.
    pub fn metrics(&self, function: &'static str, action: SweepAction, millis: f64) -> MetricSet {
        let found = match action {
            SweepAction::Sweep => metrics::OLD_PENDING_FOUND,
            SweepAction::RedriveParked => metrics::UNPARKED,
        };
        MetricSet::new(function)
            .count(found, self.found)
            .count(metrics::REDRIVEN, self.applied)
            .count(metrics::DUPLICATES, self.already_applied)
            .count(metrics::PARKED, self.parked)
            .count(metrics::STILL_PENDING, self.failed)
            .milliseconds(metrics::BATCH_DURATION, vec![millis])
            .milliseconds(metrics::OUTBOX_LAG, self.lag_millis.clone())
    }
}

/// What a sweeper runs for each action: [`OutboxSweep`] for one consumer of an outbox, or the
/// application's own choice (several consumers, an entity table's pending items).
pub trait SweepJob: Send + Sync {
    /// One run of `action`.
    fn run(&self, action: SweepAction) -> impl Future<Output = Result<SweepReport, Error>> + Send;
}

/// One consumer's sweep of an outbox's pending index, and its redrive of parked events.
#[derive(Debug)]
pub struct OutboxSweep<'a, C, S> {
    /// The consumer and where its progress lives.
    pub processor: &'a Processor<C, S>,
    /// The outbox's pending index.
    pub pending: &'a PendingEvents,
    /// Age after which a pending event is redriven.
    pub older_than: Duration,
    /// Events read per run.
    pub limit: usize,
}

impl<C: Consumer, S: ConsumerStore> SweepJob for OutboxSweep<'_, C, S> {
    async fn run(&self, action: SweepAction) -> Result<SweepReport, Error> {
        let (processor, limit) = (self.processor, self.limit);
        Ok(SweepReport::from(&match action {
            SweepAction::Sweep => {
                processor
                    .sweep(self.pending, self.older_than, limit)
                    .await?
            }
            SweepAction::RedriveParked => processor.redrive_parked(limit).await,
        }))
    }
}

/// The sweeper function over a [`SweepJob`]: reads the action, runs it, logs `sweep done` and
/// emits the run's metrics under `function` ([`SweepReport::metrics`]).
#[derive(Debug)]
pub struct ScheduledSweep<'a, J> {
    job: &'a J,
    function: &'static str,
}

impl<'a, J> ScheduledSweep<'a, J> {
    /// The sweeper running `job`, its metrics under the `Function` dimension `function`.
    pub fn new(job: &'a J, function: &'static str) -> Self {
        Self { job, function }
    }
}

impl<'a, J: SweepJob> Service<LambdaEvent<Value>> for ScheduledSweep<'a, J> {
    type Response = SweepReport;
    type Error = Error;
    type Future = BoxFuture<'a, Result<SweepReport, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<Value>) -> Self::Future {
        let (job, function) = (self.job, self.function);
        Box::pin(async move {
            let started = Instant::now();
            let action = SweepAction::of(&event.payload);
            let report = job.run(action).await?;
            tracing::info!(
                action = action.as_str(),
                found = report.found,
                applied = report.applied,
                already_applied = report.already_applied,
                parked = report.parked,
                failed = report.failed,
                "sweep done"
            );
            let millis = started.elapsed().as_secs_f64() * 1000.0;
            report.metrics(function, action, millis).emit();
            Ok(report)
        })
    }
}
