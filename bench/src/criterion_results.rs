//! Criterion's estimates, read back from `target/criterion/` after `cargo bench` wrote them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Where criterion keeps `group/function`: `CRITERION_HOME`, else `<target>/criterion`.
fn estimates_path(group: &str, function: &str) -> PathBuf {
    let home = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::target_dir().join("criterion"));
    home.join(group)
        .join(function)
        .join("new")
        .join("estimates.json")
}

/// The median time of one iteration of `group/function`, and when criterion measured it.
pub fn median(group: &str, function: &str) -> Result<(Duration, std::time::SystemTime)> {
    let path = estimates_path(group, function);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} (run `cargo bench -p outbox-bench` first)",
            path.display()
        )
    })?;
    let estimates: Estimates = serde_json::from_str(&text)?;
    let measured_at = std::fs::metadata(&path)?.modified()?;
    Ok((
        Duration::from_secs_f64(estimates.median.point_estimate / 1e9),
        measured_at,
    ))
}
