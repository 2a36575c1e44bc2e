//! The machine a run happened on, for the report: the figures only mean something next to it.

use std::process::Command;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    /// 1-minute load average when the run started: other work on a shared machine shows here.
    pub load_at_start: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cpu_model = lscpu_model()
            .or_else(|| field(&cpuinfo, "model name"))
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            rustc: output("rustc", &["--version"]).unwrap_or_default(),
            load_at_start: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
                .unwrap_or_default(),
        }
    }

    pub fn markdown(&self) -> String {
        format!(
            "- CPU: {} × {} (`nproc`: {}), shared with other work (1-minute load average at the start: {})\n\
             - memory: {:.1} GiB\n\
             - Linux {}, {}\n",
            self.cpus, self.cpu_model, self.cpus, self.load_at_start, self.memory_gib, self.kernel, self.rustc
        )
    }
}

/// Now, as RFC 3339: when a run started.
pub fn now() -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn lscpu_model() -> Option<String> {
    field(&output("lscpu", &[])?, "Model name")
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
