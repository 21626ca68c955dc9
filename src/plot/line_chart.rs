//! Line charts with optional log axes: training curves, and metrics against
//! the number of observations.

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::canvas::*;
use crate::error::PlotError;

/// Size of a line chart, in pixels.
pub(super) const LINE_CHART_SIZE: (u32, u32) = (900, 600);
/// Series with at most this many drawable points also get a marker at every point,
/// so sparse curves (e.g. a metric at a handful of |S| values) stay readable.
pub(super) const MARKER_THRESHOLD: usize = 40;

/// A named line for a line chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points break the line.
    pub points: Vec<(f64, f64)>,
    /// Draw the line dashed (e.g. for reference values).
    pub dashed: bool,
}

/// Options of a line chart.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// Chart title.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Use a logarithmic x axis (non-positive x values are skipped).
    pub log_x: bool,
    /// Use a logarithmic y axis (non-positive y values are skipped).
    pub log_y: bool,
    /// The lines to draw, each in its own colour.
    pub series: Vec<Series>,
}

/// Line chart (training curves, eval metrics vs |S| on a log axis). Skips non-positive values on log axes.
///
/// Non-finite points (and non-positive ones on a log axis) break the line. A series
/// with no drawable point is left out, legend included; a chart with no drawable point
/// at all is an error. Short series also get a marker at each point. `path` must end
/// in `.png` or `.svg`.
pub fn plot_lines(path: &Path, chart: &LineChart) -> Result<(), PlotError> {
    let invalid = |message: String| PlotError::InvalidInput {
        path: path.to_path_buf(),
        message,
    };
    if chart.series.is_empty() {
        return Err(invalid("no series to draw".into()));
    }
    let drawable = |&(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!chart.log_x || x > 0.0) && (!chart.log_y || y > 0.0)
    };
    // Each series becomes a list of runs of consecutive drawable points.
    let runs: Vec<Vec<Vec<(f64, f64)>>> = chart
        .series
        .iter()
        .map(|s| split_runs(&s.points, drawable))
        .collect();
    let all = runs.iter().flatten().flatten();
    let x_range = data_range(all.clone().map(|p| p.0), chart.log_x, 0.02);
    let y_range = data_range(all.map(|p| p.1), chart.log_y, 0.05);
    let (Some(x_range), Some(y_range)) = (x_range, y_range) else {
        return Err(invalid(if chart.log_x || chart.log_y {
            "no finite (and, on log axes, positive) points in any series".into()
        } else {
            "no finite points in any series".into()
        }));
    };
    render(
        path,
        &LineFigure {
            chart,
            runs,
            x_range,
            y_range,
        },
    )
}

// ---------------------------------------------------------------------------
// Line chart.
// ---------------------------------------------------------------------------

pub(super) struct LineFigure<'a> {
    chart: &'a LineChart,
    /// Per series, its runs of drawable points.
    runs: Vec<Vec<Vec<(f64, f64)>>>,
    x_range: (f64, f64),
    y_range: (f64, f64),
}

impl Figure for LineFigure<'_> {
    fn size(&self) -> (u32, u32) {
        LINE_CHART_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let ((x0, x1), (y0, y1)) = (self.x_range, self.y_range);
        let linear = |a: f64, b: f64| -> RangedCoordf64 { (a..b).into() };
        let log = |a: f64, b: f64| -> LogCoord<f64> { (a..b).log_scale().into() };
        // The coordinate type differs per axis kind, so the chart code is generic over it.
        match (self.chart.log_x, self.chart.log_y) {
            (false, false) => self.draw_on(root, linear(x0, x1), linear(y0, y1)),
            (true, false) => self.draw_on(root, log(x0, x1), linear(y0, y1)),
            (false, true) => self.draw_on(root, linear(x0, x1), log(y0, y1)),
            (true, true) => self.draw_on(root, log(x0, x1), log(y0, y1)),
        }
    }
}

impl LineFigure<'_> {
    fn draw_on<DB, X, Y>(&self, root: &DrawingArea<DB, Shift>, x: X, y: Y) -> Result<(), String>
    where
        DB: DrawingBackend,
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let chart_spec = self.chart;
        let mut chart = ChartBuilder::on(root)
            .caption(&chart_spec.title, (FONT, 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        let ((x0, x1), (y0, y1)) = (self.x_range, self.y_range);
        let x_fmt = |v: &f64| {
            if chart_spec.log_x {
                format_log_tick(*v, (x1 / x0).log10())
            } else {
                format_tick(*v, x1 - x0)
            }
        };
        let y_fmt = |v: &f64| {
            if chart_spec.log_y {
                format_log_tick(*v, (y1 / y0).log10())
            } else {
                format_tick(*v, y1 - y0)
            }
        };
        chart
            .configure_mesh()
            .x_desc(&chart_spec.x_label)
            .y_desc(&chart_spec.y_label)
            .axis_desc_style((FONT, 17))
            .label_style((FONT, 14))
            .light_line_style(BLACK.mix(0.04))
            .bold_line_style(BLACK.mix(0.12))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .map_err(err)?;

        for (i, (series, runs)) in chart_spec.series.iter().zip(&self.runs).enumerate() {
            if runs.is_empty() {
                continue;
            }
            let colour = PALETTE[i % PALETTE.len()];
            let style = colour.stroke_width(2);
            let anno = if series.dashed {
                chart.draw_series(
                    runs.iter()
                        .map(|r| DashedPathElement::new(r.clone(), 8, 5, style)),
                )
            } else {
                chart.draw_series(runs.iter().map(|r| PathElement::new(r.clone(), style)))
            }
            .map_err(err)?;
            anno.label(series.name.clone());
            if series.dashed {
                anno.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (9, 0)], style)
                        + PathElement::new(vec![(14, 0), (22, 0)], style)
                });
            } else {
                anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
            }
            // Markers for short series, and for isolated points a line cannot show.
            let n_points: usize = runs.iter().map(Vec::len).sum();
            let markers = runs
                .iter()
                .filter(|r| n_points <= MARKER_THRESHOLD || r.len() == 1)
                .flatten();
            chart
                .draw_series(markers.map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(err)?;
        }

        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        Ok(())
    }
}
