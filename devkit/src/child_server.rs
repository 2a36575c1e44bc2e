//! What the local servers run as child processes (kinesalite, moto's server) share: where
//! their program is installed, and how a test says it skipped when one cannot start.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

/// A local server's program: `variable`'s path when set, else `installed` below the checkout
/// (where the Makefile's install targets put it).
pub fn tool_path(variable: &str, installed: &str) -> PathBuf {
    match std::env::var_os(variable).filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(installed),
    }
}

/// For tests of a local server: the server `started`, else `Ok(None)` after saying on the
/// terminal that `test` was skipped and why, when the environment gives a reason in `variable`;
/// without one, why it could not start, so the test fails instead of passing unseen.
pub fn skip_or_fail<T>(
    test: &str,
    started: Result<T, impl Display>,
    variable: &str,
) -> Result<Option<T>> {
    let unavailable = match started {
        Ok(server) => return Ok(Some(server)),
        Err(unavailable) => unavailable,
    };
    match std::env::var(variable) {
        Ok(why) if !why.trim().is_empty() => {
            // Straight to the process's stderr: the test harness captures `eprintln!` of passing
            // tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {unavailable} ({variable}={why})"
            );
            Ok(None)
        }
        _ => Err(anyhow!(
            "{unavailable}; to skip these tests on purpose, set {variable}=<reason>"
        )),
    }
}
