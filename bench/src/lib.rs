//! `make bench`: measured speed and cost of the outbox, with every comparison a ratio taken in the
//! same run (absolute times on a shared machine are noisy).
//!
//! The harness binary (`src/main.rs`) runs the scenarios below and writes `docs/benchmarks.md`
//! and `docs/consumer-latency.svg`; the criterion benches (`benches/handlers.rs`) measure handler
//! CPU, and the harness reads their estimates back.
//!
//! - [`consumer`]: stream-consumer batch latency through a latency-injecting proxy, concurrent
//!   against the same code path with concurrency 1 (the `outbox` crate's pipeline).
//! - [`engine_consumer`]: the engine's `Processor` on three batch shapes (distinct keys, spread,
//!   one hot key) through the same proxy, its defaults against one request at a time.
//! - [`accounting`]: DynamoDB requests, write capacity and TCP connections per order;
//!   [`capacity`]: the capacity meter it and `compare` share.
//! - [`cpu`]: the workloads criterion times, on an HTTP client that never leaves the process.
//! - [`functions`]: cold start and peak RSS of the real Lambda binaries against a local stub of
//!   the Lambda Runtime API (`devkit::runtime_api`); [`size`]: their stripped sizes.
//! - [`throughput`]: orders placed and rewarded end to end through the local stream trigger.
//! - [`compare`]: the three patterns side by side (`make compare`,
//!   `docs/patterns.md`).
//! - [`report`], [`chart`], [`machine`]: the table, the chart and the machine they came from;
//!   [`regions`]: the marked regions of a hand-written document that the tools rewrite.

pub mod accounting;
pub mod capacity;
pub mod chart;
pub mod compare;
pub mod consumer;
pub mod cpu;
pub mod criterion_results;
pub mod engine_consumer;
pub mod functions;
pub mod machine;
pub mod records;
pub mod regions;
pub mod replay;
pub mod report;
pub mod size;
pub mod throughput;

/// The workspace root (this crate lives in `bench/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// The shared target directory: `CARGO_TARGET_DIR` when set, else `<root>/target`.
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}
