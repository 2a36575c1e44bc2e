//! Where a [`MetricSet`] goes: nowhere until a process installs a writer ([`init_metrics`] in a
//! function's `main`, [`init_metrics_to`] in a local tool), so tests and tools that call the
//! handlers stay quiet; a test reads what one piece of work emitted with [`capture_metrics`].

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::emf::{Dimensions, MetricSet};

type WriteLine = Box<dyn Fn(&str) + Send + Sync>;

struct Sink {
    dimensions: Dimensions,
    write: WriteLine,
}

static PROCESS_SINK: OnceLock<Sink> = OnceLock::new();

tokio::task_local! {
    static CAPTURE: Arc<Mutex<Vec<String>>>;
}

impl MetricSet {
    /// Writes the set to the task's capture or the process's writer; without either, nothing is
    /// built.
    pub fn emit(&self) {
        if CAPTURE
            .try_with(|captured| {
                let lines = self.to_lines(&Dimensions::from_env(), now_millis());
                captured
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(lines);
            })
            .is_ok()
        {
            return;
        }
        if let Some(sink) = PROCESS_SINK.get() {
            for line in self.to_lines(&sink.dimensions, now_millis()) {
                (sink.write)(&line);
            }
        }
    }
}

/// A function's metrics: EMF lines on stdout, beside its JSON logs, in the same log stream, under
/// the namespace and `Service` of its environment (`METRICS_NAMESPACE`, default `Outbox`;
/// `METRICS_SERVICE`).
pub fn init_metrics() {
    init_metrics_to(|line| {
        // A lost metric line must not fail the invocation that produced it.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    });
}

/// Every EMF line this process emits goes to `write` (a local tool collects them). The first
/// writer installed stays.
pub fn init_metrics_to(write: impl Fn(&str) + Send + Sync + 'static) {
    let _ = PROCESS_SINK.set(Sink {
        dimensions: Dimensions::from_env(),
        write: Box::new(write),
    });
}

/// Runs `work` and returns, with its output, the EMF lines it emitted, whatever the process's
/// writer: concurrent tests each see their own lines.
pub async fn capture_metrics<F: Future>(work: F) -> (F::Output, Vec<String>) {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let output = CAPTURE.scope(captured.clone(), work).await;
    let lines = std::mem::take(&mut *captured.lock().unwrap_or_else(|p| p.into_inner()));
    (output, lines)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_capture_sees_the_lines_of_its_own_work_only() {
        let ((), lines) = capture_metrics(async {
            MetricSet::new("writer").count("Placed", 1).emit();
        })
        .await;
        assert_eq!(lines.len(), 1);
        let ((), outside) = capture_metrics(async {}).await;
        assert!(outside.is_empty());
    }
}
