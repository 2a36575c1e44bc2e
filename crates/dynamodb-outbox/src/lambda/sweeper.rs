//! The sweeper function: a scheduled invocation applies the events still pending after a grace
//! period ([`Processor::sweep`]); an operator's `{"action": "redrive-parked"}` puts the parked
//! events back through the consumer ([`Processor::redrive_parked`]). Either run ends in one
//! `sweep done` log line and its metrics; the [`SweepReport`] is the function's result.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use lambda_runtime::{Error, LambdaEvent, Service};
use serde_json::Value;

use super::sweep_report::{SweepAction, SweepReport};
use crate::dynamodb::PendingEvents;
use crate::{Consumer, ConsumerStore, Processor};

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
/// emits the run's metrics under `function`: a sweep counts the old pending events it found, a
/// redrive the parked events it took back.
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
