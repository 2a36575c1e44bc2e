//! What a sweeper run asks for ([`SweepAction`], from the invocation's payload) and what it
//! found and did ([`SweepReport`]: the function's result, and its metrics).

use serde::Serialize;
use serde_json::Value;

use super::emf::MetricSet;
use super::metrics::{self, lag_millis};
use crate::BatchOutcome;

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
    pub(crate) fn of(payload: &Value) -> Self {
        match payload.get("action").and_then(Value::as_str) {
            Some(REDRIVE_PARKED) => Self::RedriveParked,
            _ => Self::Sweep,
        }
    }

    /// Its name in the `sweep done` log line.
    pub(crate) fn as_str(self) -> &'static str {
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
    pub(crate) fn metrics(
        &self,
        function: &'static str,
        action: SweepAction,
        millis: f64,
    ) -> MetricSet {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_redrive_parked_action_redrives_anything_else_sweeps() {
        let of = |payload: Value| SweepAction::of(&payload);
        assert_eq!(
            of(serde_json::json!({"action": REDRIVE_PARKED})),
            SweepAction::RedriveParked
        );
        for other in [
            serde_json::json!({"source": "aws.scheduler"}),
            serde_json::json!({"action": "drop-everything"}),
            serde_json::json!("redrive-parked"),
            Value::Null,
        ] {
            assert_eq!(of(other), SweepAction::Sweep);
        }
    }

    #[test]
    fn each_event_a_run_read_lands_in_exactly_one_count() {
        let outcome = BatchOutcome {
            applied: 1,
            duplicates: 2,
            skipped: 3,
            ignored: 4,
            parked: 5,
            poison: 6,
            waiting: 7,
            failed: 8,
            held_back: 9,
            ..BatchOutcome::default()
        };
        let report = SweepReport::from(&outcome);
        assert_eq!(report.found, 45);
        assert_eq!(
            report.applied + report.already_applied + report.parked + report.failed + 4,
            report.found,
            "the ignored records are found and counted nowhere else"
        );
        assert_eq!((report.already_applied, report.failed), (5, 30));
    }
}
