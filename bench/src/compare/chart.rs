//! `docs/patterns.svg`: end-to-end latency percentiles and the monthly cost, per pattern.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::doc::{pattern_title, Figures};
use crate::chart::legend;

/// One layer of a cost bar: a pattern's figures and the shard count to its dollars.
type CostPart = fn(&Figures, usize) -> f64;

pub fn draw(path: &Path, figures: &[Figures], shards: usize) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(560);
    let n = figures.len() as f64;

    let max_ms = figures.iter().map(|f| f.p99).fold(1.0, f64::max) * 1.15;
    let caption = "end to end: API answer → reward visible (ms)";
    let mut latency = bars(&left, caption, n, max_ms, "ms").map_err(|e| err(&e))?;
    let series = [
        ("p50", RGBColor(70, 130, 180)),
        ("p95", RGBColor(240, 160, 60)),
        ("p99", RGBColor(200, 60, 60)),
    ];
    for (s, &(name, color)) in series.iter().enumerate() {
        let bars = figures.iter().enumerate().map(|(i, f)| {
            let value = [f.p50, f.p95, f.p99][s];
            let x0 = i as f64 + 0.15 + s as f64 * 0.23;
            Rectangle::new([(x0, 0.0), (x0 + 0.21, value)], color.filled())
        });
        latency
            .draw_series(bars)
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    latency
        .draw_series(
            figures
                .iter()
                .enumerate()
                .map(|(i, f)| name_above(f, i, f.p99, max_ms)),
        )
        .map_err(|e| err(&e))?;
    legend(&mut latency).map_err(|e| err(&e))?;

    let max_cost = figures
        .iter()
        .map(|f| f.month_total(shards))
        .fold(1.0, f64::max)
        * 1.15;
    let caption = "a month at 1M orders a day (USD)";
    let mut cost = bars(&right, caption, n, max_cost, "USD").map_err(|e| err(&e))?;
    let parts: [(&str, RGBColor, CostPart); 3] = [
        ("DynamoDB requests", RGBColor(70, 130, 180), |f, _| {
            f.month_dynamodb_requests()
        }),
        ("Kinesis", RGBColor(120, 180, 90), |f, s| f.month_kinesis(s)),
        ("storage", RGBColor(160, 160, 160), |f, _| f.month_storage()),
    ];
    let mut base = vec![0.0; figures.len()];
    for (name, color, value) in parts {
        let bars: Vec<_> = figures
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let v = value(f, shards);
                let bar = Rectangle::new(
                    [(i as f64 + 0.25, base[i]), (i as f64 + 0.75, base[i] + v)],
                    color.filled(),
                );
                base[i] += v;
                bar
            })
            .collect();
        cost.draw_series(bars)
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    cost.draw_series(
        figures
            .iter()
            .enumerate()
            .map(|(i, f)| name_above(f, i, f.month_total(shards), max_cost)),
    )
    .map_err(|e| err(&e))?;
    legend(&mut cost).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Bars<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart of `n` groups of bars up to `max`, its y axis in `unit` (the x axis has no numbers).
fn bars<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    n: f64,
    max: f64,
    unit: &str,
) -> Result<Bars<'a, 'b>, DrawingAreaErrorKind<std::io::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..n, 0.0..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc(unit)
        .draw()?;
    Ok(chart)
}

/// The pattern's name above its group of bars (the x axis has no numbers to show).
fn name_above(f: &Figures, i: usize, top: f64, max: f64) -> Text<'static, (f64, f64), String> {
    Text::new(
        pattern_title(f.pattern).to_owned(),
        (i as f64 + 0.2, top + max * 0.03),
        ("sans-serif", 14).into_font(),
    )
}
