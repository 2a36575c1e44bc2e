//! `docs/patterns.svg`: end-to-end latency percentiles and the monthly cost, per pattern.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::doc::pattern_title;
use super::figures::Figures;
use crate::chart::legend;

/// One series of bars: its name, its colour, and a pattern's value (from its figures and the
/// shard count).
type Series = (&'static str, RGBColor, fn(&Figures, usize) -> f64);

const BLUE_: RGBColor = RGBColor(70, 130, 180);

pub fn draw(path: &Path, figures: &[Figures], shards: usize) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(560);
    let percentiles: [Series; 3] = [
        ("p50", BLUE_, |f, _| f.p50),
        ("p95", RGBColor(240, 160, 60), |f, _| f.p95),
        ("p99", RGBColor(200, 60, 60), |f, _| f.p99),
    ];
    let caption = "end to end: API answer → reward visible (ms)";
    pane(&left, caption, "ms", figures, shards, &percentiles, false).map_err(|e| err(&e))?;
    // Every term of `Figures::month_total`, so each bar is as high as the headline's total.
    let parts: [Series; 4] = [
        ("DynamoDB requests", BLUE_, |f, _| {
            f.month_dynamodb_requests()
        }),
        ("Kinesis", RGBColor(120, 180, 90), |f, s| f.month_kinesis(s)),
        ("EventBridge + SQS", RGBColor(150, 110, 190), |f, _| {
            f.month_broker()
        }),
        ("storage", RGBColor(160, 160, 160), |f, _| f.month_storage()),
    ];
    let caption = "a month at 1M orders a day (USD)";
    pane(&right, caption, "USD", figures, shards, &parts, true).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A chart of one group of bars a pattern, the pattern's name above it: the series side by
/// side (each to its own value), or `stacked` (the last on top, the group as high as their sum).
/// The y axis is in `unit`; the x axis has no numbers.
fn pane(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    unit: &str,
    figures: &[Figures],
    shards: usize,
    series: &[Series],
    stacked: bool,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let value = |f: &Figures, s: &Series| s.2(f, shards);
    let top = |f: &Figures| {
        let values = series.iter().map(|s| value(f, s));
        if stacked {
            values.sum()
        } else {
            values.fold(0.0, f64::max)
        }
    };
    let max = figures.iter().map(top).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..figures.len() as f64, 0.0..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc(unit)
        .draw()?;
    let mut base = vec![0.0; figures.len()];
    for (s, item) in series.iter().enumerate() {
        let &(name, color, _) = item;
        let bars = figures.iter().enumerate().map(|(i, f)| {
            let (x, v) = (i as f64, value(f, item));
            let bar = if stacked {
                [(x + 0.25, base[i]), (x + 0.75, base[i] + v)]
            } else {
                let x0 = x + 0.15 + s as f64 * 0.23;
                [(x0, 0.0), (x0 + 0.21, v)]
            };
            base[i] += v;
            Rectangle::new(bar, color.filled())
        });
        chart
            .draw_series(bars.collect::<Vec<_>>())?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart.draw_series(figures.iter().enumerate().map(|(i, f)| {
        let at = (i as f64 + 0.2, top(f) + max * 0.03);
        Text::new(
            pattern_title(f.pattern).to_owned(),
            at,
            ("sans-serif", 14).into_font(),
        )
    }))?;
    legend(&mut chart)
}
