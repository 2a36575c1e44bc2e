//! The functions' logs: JSON lines on stdout, filtered by `RUST_LOG`.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What is logged unless `RUST_LOG` says otherwise. The SDK logs every 4xx as a warning; a failed
/// condition is an expected outcome here, and this code logs the failures that matter itself.
const DEFAULT_LOG: &str = "info,aws_smithy_runtime=error,aws_sdk_dynamodb=error";

/// JSON logs with ids and outcomes on stdout; request bodies are never logged.
pub fn init_tracing() {
    init_tracing_to(std::io::stdout);
}

/// The functions' logging, written to `writer` (the benchmarks format into a sink). `RUST_LOG` is
/// a level or `target=level` pairs (`tracing_subscriber::filter::Targets`: no span or field
/// filters, whose regex engine would add about 0.3 MB to every binary).
pub fn init_tracing_to<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = json_logs_to(writer).try_init();
}

/// The functions' log subscriber, not installed: a test sets it as its thread's default to read
/// what the handlers log.
pub fn json_logs_to<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| DEFAULT_LOG.parse().expect("the default filter parses"));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .with_writer(writer);
    tracing_subscriber::registry().with(filter).with(json)
}
