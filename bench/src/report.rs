//! The one table `make bench` prints, and the figures it writes into `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::machine::Machine;

/// Whether a figure meets its goal.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Met,
    /// Missed, and by how much.
    Missed(String),
    /// No goal: reported for information.
    Info,
}

/// The goal of a bounded figure.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    AtMost(f64),
    AtLeast(f64),
}

impl Limit {
    /// `≤ 4 MB`, `≥ 15×`.
    fn goal(self, unit: &str) -> String {
        let (sign, limit) = match self {
            Limit::AtMost(limit) => ("≤", limit),
            Limit::AtLeast(limit) => ("≥", limit),
        };
        format!("{sign} {}{}", trim(limit), spaced(unit))
    }
}

/// `unit` as it follows a number: `MB` stands apart from it, `×` (a ratio) next to it.
fn spaced(unit: &str) -> String {
    match unit {
        "" | "×" => unit.to_owned(),
        unit => format!(" {unit}"),
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub measured: String,
    pub goal: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn info(figure: impl Into<String>, measured: impl Into<String>) -> Self {
        Self::holds(figure, measured, "informative", true, "").with(Verdict::Info)
    }

    /// A figure whose goal bounds its `value`, in the figure's own unit. A missed upper bound
    /// also says by what share.
    pub fn bounded(
        figure: impl Into<String>,
        measured: String,
        value: f64,
        limit: Limit,
        unit: &str,
    ) -> Self {
        let (ok, by) = match limit {
            Limit::AtMost(limit) => {
                let over = (value / limit - 1.0) * 100.0;
                let by = format!("by {}{} ({over:.0} %)", trim(value - limit), spaced(unit));
                (value <= limit, by)
            }
            Limit::AtLeast(limit) => (
                value >= limit,
                format!("by {}{}", trim(limit - value), spaced(unit)),
            ),
        };
        Self::holds(figure, measured, limit.goal(unit), ok, by)
    }

    /// [`Row::bounded`] of a measurement's words and value; a measurement that failed is
    /// [not measured](Row::not_measured), against the same goal.
    pub fn measured(
        figure: impl Into<String>,
        measurement: anyhow::Result<(String, f64)>,
        limit: Limit,
        unit: &str,
    ) -> Self {
        match measurement {
            Ok((measured, value)) => Self::bounded(figure, measured, value, limit, unit),
            Err(e) => Self::not_measured(figure, limit.goal(unit), format!("{e:#}")),
        }
    }

    /// A yes/no goal.
    pub fn holds(
        figure: impl Into<String>,
        measured: impl Into<String>,
        goal: impl Into<String>,
        ok: bool,
        otherwise: impl Into<String>,
    ) -> Self {
        let verdict = if ok {
            Verdict::Met
        } else {
            Verdict::Missed(otherwise.into())
        };
        let (figure, measured, goal) = (figure.into(), measured.into(), goal.into());
        Self {
            figure,
            measured,
            goal,
            verdict,
        }
    }

    /// A figure that could not be measured in this run: its goal counts as missed.
    pub fn not_measured(
        figure: impl Into<String>,
        goal: impl Into<String>,
        why: impl std::fmt::Display,
    ) -> Self {
        Self::holds(
            figure,
            format!("not measured: {why}"),
            goal,
            false,
            "not measured",
        )
    }

    fn with(self, verdict: Verdict) -> Self {
        Self { verdict, ..self }
    }

    fn met_cell(&self) -> String {
        match &self.verdict {
            Verdict::Met => "yes".into(),
            Verdict::Missed(by) => format!("**no**, {by}"),
            Verdict::Info => "—".into(),
        }
    }
}

/// `12.0` → `12`, `0.5` → `0.5`.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    match v {
        v if v >= 100.0 => thousands(v.round() as u64),
        v if v >= 10.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    match values.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

/// A titled group of rows (the table keeps one header, the groups become bold separator rows),
/// and the notes said under the table about them: how a figure was taken, why a goal is missed.
#[derive(Default)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Section {
    pub fn new(title: &str) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }
}

pub struct Report {
    pub sections: Vec<Section>,
    pub chart_data: String,
    pub machine: Machine,
    pub mode: String,
    pub started: String,
    pub duration: Duration,
}

impl Report {
    fn rows(&self) -> impl Iterator<Item = &Row> {
        self.sections.iter().flat_map(|s| &s.rows)
    }

    pub fn table(&self) -> String {
        let mut out =
            String::from("| figure | measured | goal | met? |\n| --- | --- | --- | --- |\n");
        for section in &self.sections {
            let _ = writeln!(out, "| **{}** | | | |", section.title);
            for r in &section.rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    r.figure,
                    r.measured,
                    r.goal,
                    r.met_cell()
                );
            }
        }
        out
    }

    pub fn summary(&self) -> String {
        let goals = self.rows().filter(|r| r.verdict != Verdict::Info).count();
        let met = self.rows().filter(|r| r.verdict == Verdict::Met).count();
        format!("{met} of {goals} goals met")
    }

    /// The regions of `docs/benchmarks.md` the report writes (the engine's batch shapes are
    /// written apart, by `make bench-consumer` too).
    pub const REGIONS: [&str; 4] = ["summary", "notes", "consumer-chart", "machine"];

    /// Each region's figures, as `crate::regions` writes them into the document.
    pub fn regions(&self) -> Vec<(&'static str, String)> {
        let summary = format!(
            "Written by `make bench` ({}) on {}, in {:.0} s; {}.\n\n{}",
            self.mode,
            self.started,
            self.duration.as_secs_f64(),
            self.summary(),
            self.table()
        );
        let notes: Vec<String> = self
            .sections
            .iter()
            .flat_map(|s| &s.notes)
            .map(|n| format!("- {n}"))
            .collect();
        let [s, n, c, m] = Self::REGIONS;
        vec![
            (s, summary),
            (n, notes.join("\n")),
            (c, self.chart_data.clone()),
            (m, self.machine.markdown()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::Limit::*;
    use super::*;

    #[test]
    fn verdicts_say_by_how_much_a_goal_is_missed() {
        let m = || String::from("m");
        assert_eq!(
            Row::bounded("f", m(), 4.0, AtMost(4.0), "MB").verdict,
            Verdict::Met
        );
        assert_eq!(
            Row::bounded("f", m(), 4.0, AtMost(4.0), "MB").goal,
            "≤ 4 MB"
        );
        assert_eq!(Row::bounded("f", m(), 2.5, AtMost(2.0), "").goal, "≤ 2");
        let missed = |s: &str| Verdict::Missed(s.into());
        assert_eq!(
            Row::bounded("f", m(), 5.0, AtMost(4.0), "MB").verdict,
            missed("by 1 MB (25 %)")
        );
        assert_eq!(
            Row::bounded("f", m(), 16.0, AtLeast(15.0), "×").verdict,
            Verdict::Met
        );
        assert_eq!(
            Row::bounded("f", m(), 12.5, AtLeast(15.0), "×").verdict,
            missed("by 2.5×")
        );
        assert_eq!(
            Row::not_measured("f", "≤ 4 MB", "gone").met_cell(),
            "**no**, not measured"
        );
        assert_eq!(Row::info("f", "m").met_cell(), "—");
        let failed = Row::measured("f", Err(anyhow::anyhow!("gone")), AtMost(4.0), "MB");
        assert_eq!(
            (failed.measured, failed.goal),
            ("not measured: gone".into(), "≤ 4 MB".into())
        );
        let ok = Row::measured("f", Ok((m(), 5.0)), AtMost(4.0), "MB");
        assert_eq!(ok.verdict, missed("by 1 MB (25 %)"));
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(ms(Duration::from_micros(5_103_400)), "5,103");
        assert_eq!(ms(Duration::from_micros(31_260)), "31.3");
        assert_eq!(ms(Duration::from_micros(2_750)), "2.75");
        assert_eq!(
            median(&mut [3, 1, 2].map(Duration::from_millis)),
            Duration::from_millis(2)
        );
        assert_eq!(
            median(&mut [4, 1, 2, 3].map(Duration::from_millis)),
            Duration::from_micros(2500)
        );
    }

    #[test]
    fn a_report_fills_every_region_of_the_benchmarks_document() {
        let mut section = Section::new("Binary size");
        section.rows.push(Row::bounded(
            "size",
            "3.9 MB".into(),
            3.9,
            AtMost(4.0),
            "MB",
        ));
        section.rows.push(Row::info("others", "x"));
        section.notes.push("a note".into());
        let report = Report {
            sections: vec![section],
            chart_data: "| records |".into(),
            machine: Machine::describe(),
            mode: "full run".into(),
            started: "2026-01-01T00:00:00Z".into(),
            duration: Duration::from_secs(3),
        };
        let path = crate::workspace_root().join("docs").join("benchmarks.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let mut regions = report.regions();
        regions.push((crate::consumer::ledger::REGION, String::new()));
        let written = crate::regions::replace_all(&doc, &regions).unwrap();
        assert!(
            written.contains("in 3 s; 1 of 1 goals met.\n\n| figure | measured | goal | met? |")
        );
        assert!(written.contains("| **Binary size** | | | |\n| size | 3.9 MB | ≤ 4 MB | yes |\n"));
        assert!(written.contains("<!-- begin: notes -->\n- a note\n<!-- end: notes -->"));
    }
}
