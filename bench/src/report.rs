//! The one table `make bench` prints, and `docs/benchmarks.md` around it.

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

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub measured: String,
    pub goal: String,
    pub verdict: Verdict,
}

impl Row {
    fn new(
        figure: impl Into<String>,
        measured: impl Into<String>,
        goal: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Self {
            figure: figure.into(),
            measured: measured.into(),
            goal: goal.into(),
            verdict,
        }
    }

    pub fn info(figure: impl Into<String>, measured: impl Into<String>) -> Self {
        Self::new(figure, measured, "informative", Verdict::Info)
    }

    /// A figure whose goal is an upper bound (`value ≤ limit`), in the figure's own unit.
    pub fn at_most(
        figure: impl Into<String>,
        measured: impl Into<String>,
        value: f64,
        limit: f64,
        unit: &str,
    ) -> Self {
        let verdict = if value <= limit {
            Verdict::Met
        } else {
            let unit = if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            };
            Verdict::Missed(format!(
                "by {}{unit} ({:.0} %)",
                trim(value - limit),
                (value / limit - 1.0) * 100.0
            ))
        };
        let goal = format!("≤ {} {unit}", trim(limit)).trim_end().to_owned();
        Self::new(figure, measured, goal, verdict)
    }

    /// A figure whose goal is a lower bound (`value ≥ limit`).
    pub fn at_least(
        figure: impl Into<String>,
        measured: impl Into<String>,
        value: f64,
        limit: f64,
        unit: &str,
    ) -> Self {
        let verdict = if value >= limit {
            Verdict::Met
        } else {
            Verdict::Missed(format!("by {}{unit}", trim(limit - value)))
        };
        Self::new(
            figure,
            measured,
            format!("≥ {}{unit}", trim(limit)),
            verdict,
        )
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
        Self::new(figure, measured, goal, verdict)
    }

    /// A figure that could not be measured in this run: its goal counts as missed.
    pub fn not_measured(figure: impl Into<String>, goal: impl Into<String>, why: String) -> Self {
        let measured = format!("not measured: {why}");
        Self::new(
            figure,
            measured,
            goal,
            Verdict::Missed("not measured".into()),
        )
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
    if v >= 100.0 {
        thousands(v.round() as u64)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
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

/// A titled group of rows: the table keeps one header, the groups become bold separator rows.
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
}

pub struct Report {
    pub sections: Vec<Section>,
    /// Said under the table: how a figure was taken, why a goal is missed.
    pub notes: Vec<String>,
    pub chart_data: String,
    /// Sections written whole by their own code (each with its own table), after the notes.
    pub blocks: Vec<String>,
    pub machine: Machine,
    pub mode: String,
    pub started: String,
    pub duration: Duration,
}

impl Report {
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
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

    pub fn document(&self, commands: &str) -> String {
        let mut doc = String::new();
        let _ = writeln!(
            doc,
            "# Benchmarks\n\n\
             Written by `make bench` ({}) on {}, in {:.0} s; {}. Rerun it rather than editing this \
             file. Absolute times on a shared machine are noisy, so every comparison is a ratio of \
             two figures measured in the same run, and each time is the median of its repeats.\n",
            self.mode,
            self.started,
            self.duration.as_secs_f64(),
            self.summary()
        );
        let _ = writeln!(doc, "{}", self.table());
        if !self.notes.is_empty() {
            let _ = writeln!(doc, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(doc, "- {n}");
            }
            doc.push('\n');
        }
        for block in &self.blocks {
            let _ = writeln!(doc, "{block}");
        }
        let _ = writeln!(
            doc,
            "## Consumer batch latency against batch size\n\n\
             ![consumer batch latency, concurrent against sequential](consumer-latency.svg)\n\n{}",
            self.chart_data
        );
        let _ = writeln!(doc, "## Machine\n\n{}", self.machine.markdown());
        let _ = writeln!(doc, "## Reproduce\n\n{commands}");
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_say_by_how_much_a_goal_is_missed() {
        assert_eq!(Row::at_most("f", "m", 4.0, 4.0, "MB").verdict, Verdict::Met);
        assert_eq!(
            Row::at_most("f", "m", 5.0, 4.0, "MB").verdict,
            Verdict::Missed("by 1 MB (25 %)".into())
        );
        assert_eq!(
            Row::at_least("f", "m", 16.0, 15.0, "×").verdict,
            Verdict::Met
        );
        assert_eq!(
            Row::at_least("f", "m", 12.5, 15.0, "×").verdict,
            Verdict::Missed("by 2.5×".into())
        );
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(ms(Duration::from_micros(5_103_400)), "5,103");
        assert_eq!(ms(Duration::from_micros(31_260)), "31.3");
        assert_eq!(
            median(&mut [3, 1, 2].map(Duration::from_millis)),
            Duration::from_millis(2)
        );
        assert_eq!(
            median(&mut [4, 1, 2, 3].map(Duration::from_millis)),
            Duration::from_micros(2500)
        );
    }
}
