//! `docs/consumer-latency.svg`: consumer batch latency against batch size, concurrent against
//! sequential, with the floor the concurrent consumer is measured against.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One series: (records in the batch, milliseconds).
pub type Points = Vec<(usize, f64)>;

/// Draws `[concurrent, sequential, floor]` into `path`.
pub fn draw(path: &Path, title: &str, concurrent_label: &str, series: &[Points; 3]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let all = || series.iter().flatten();
    let max_x = all().map(|p| p.0).max().unwrap_or(100);
    let max_y = all().map(|p| p.1).fold(1.0, f64::max);
    let min_y = all().map(|p| p.1).fold(max_y, f64::min).max(0.1);

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut plot = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            0usize..max_x + max_x / 20 + 1,
            (min_y / 1.5..max_y * 1.5).log_scale(),
        )
        .map_err(|e| err(&e))?;
    plot.configure_mesh()
        .x_desc("records in the batch (one customer each)")
        .y_desc("batch latency, ms (log scale)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;

    let [concurrent, sequential, floor] = series;
    let series: [(&Points, &str, RGBColor); 3] = [
        (sequential, "sequential (concurrency 1)", RED),
        (concurrent, concurrent_label, BLUE),
        (
            floor,
            "floor: the longest chain of round trips",
            RGBColor(140, 140, 140),
        ),
    ];
    for (points, label, color) in series {
        plot.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        plot.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| err(&e))?;
    }
    legend(&mut plot).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The series' legend in the upper left corner, as every chart of the bench draws it.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    plot: &mut ChartContext<'a, DB, CT>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
}
