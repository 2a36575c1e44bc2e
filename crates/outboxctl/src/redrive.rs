//! `redrive` and `sweep`: the deployed sweeper function invoked as the operator's hand. The
//! effect of an event is the consumer's code, which lives in the function, so a redrive never
//! applies anything itself: it asks the function (`{"action":"redrive-parked"}`), which commits
//! each parked event's effect with the deletion of its parked record, once, however many
//! redrives race. This side reads the parked events before and after, to say what happened to
//! each.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use dynamodb_outbox::dynamodb::{OutboxView, ParkedRecord};
use dynamodb_outbox::lambda::REDRIVE_PARKED;
use serde_json::{json, Value as Json};

use crate::invoke::LambdaClient;
use crate::show::{parked_json, Tables};

/// The payload of a redrive, as the sweeper function reads it.
pub fn redrive_payload() -> Json {
    json!({"action": REDRIVE_PARKED})
}

/// The payload of a sweep: any payload that asks for nothing else, as the schedule's is.
pub fn sweep_payload() -> Json {
    json!({"action": "sweep"})
}

/// Where a redrive can read the parked events it is about: the consumers' table and names.
pub struct ParkedOf<'a> {
    /// The outbox and consumers' tables.
    pub tables: Tables<'a>,
    /// The consumers whose parked events the function redrives.
    pub consumers: &'a [String],
}

impl ParkedOf<'_> {
    /// The consumers' parked events, oldest first per consumer, at most `limit` each.
    pub async fn read(&self, view: &OutboxView, limit: usize) -> Result<Vec<ParkedRecord>> {
        let mut all = Vec::new();
        for consumer in self.consumers {
            all.extend(view.parked(self.tables.consumers, consumer, limit).await?);
        }
        Ok(all)
    }
}

/// Invokes `function` with a redrive until `limit` parked events were taken, none is left, or a
/// run took none off the park (those left are still poison, or wait on something transient):
/// a function takes at most its own batch limit a run. The sum of the runs' reports.
pub async fn redrive(lambda: &LambdaClient, function: &str, limit: usize) -> Result<Json> {
    let mut total = BTreeMap::<&str, u64>::new();
    let mut problems = Vec::new();
    let mut runs = 0;
    loop {
        let report = lambda.invoke(function, &redrive_payload()).await?;
        runs += 1;
        let count = |name: &str| report[name].as_u64().unwrap_or(0);
        for name in ["found", "applied", "already_applied", "parked", "failed"] {
            *total.entry(name).or_default() += count(name);
        }
        problems.extend(report["problems"].as_array().cloned().unwrap_or_default());
        let taken_off = count("applied") + count("already_applied");
        let found = total["found"];
        if count("found") == 0 || taken_off == 0 || found >= limit as u64 {
            break;
        }
    }
    let mut out = json!(total);
    out["runs"] = json!(runs);
    out["problems"] = json!(problems);
    Ok(out)
}

/// What happened to each event parked `before` a redrive, by what is parked `after` it: gone
/// (applied now, or found applied, or dropped as no longer taken: the function's report counts
/// which), or still parked with its latest reason.
pub fn outcomes(before: &[ParkedRecord], after: &[ParkedRecord]) -> Vec<Json> {
    before
        .iter()
        .map(|event| {
            let mut shown = parked_json(event);
            match after.iter().find(|a| a.key == event.key) {
                None => shown["outcome"] = json!("redriven"),
                Some(still) => {
                    shown["outcome"] = json!("still parked");
                    shown["reason"] = json!(still.reason);
                    shown["attempts"] = json!(still.attempts);
                }
            }
            shown
        })
        .collect()
}

/// A redrive's or a sweep's answer for people.
pub fn report_text(function: &str, report: &Json) -> String {
    let n = |name: &str| report[name].as_u64().unwrap_or(0);
    let mut out = format!(
        "{function}: found {}, applied {}, already applied {}, parked {}, failed {}",
        n("found"),
        n("applied"),
        n("already_applied"),
        n("parked"),
        n("failed")
    );
    if let Some(runs) = report["runs"].as_u64() {
        out.push_str(&format!(" (in {runs} run(s))"));
    }
    out.push('\n');
    // Named by the parked records' keys; a redrive that read them shows each event instead.
    let problems = report["problems"].as_array().into_iter().flatten();
    for problem in problems.filter(|_| report["events"].is_null()) {
        out.push_str(&format!(
            "  not applied: {}\n",
            problem.as_str().unwrap_or_default()
        ));
    }
    out
}

/// Fails (after printing) when the function left events it could not apply now: a script sees
/// it in the exit status.
pub fn check(report: &Json) -> Result<()> {
    let n = |name: &str| report[name].as_u64().unwrap_or(0);
    if n("parked") + n("failed") > 0 {
        bail!(
            "{} events were not applied (still parked or failed): see their reasons above",
            n("parked") + n("failed")
        );
    }
    Ok(())
}
