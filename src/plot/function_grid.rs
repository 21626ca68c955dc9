//! A grid of 1-D function panels in the style of the paper's Figure 9:
//! ground truth, the predicted mean with a ±2σ band, sampled functions, an
//! optional reference mean (e.g. the exact Bayes posterior) and the observed
//! points.

use std::path::Path;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::*;
use crate::error::PlotError;

/// Size of one panel of a function grid, in pixels.
pub(super) const PANEL_SIZE: (u32, u32) = (420, 320);
/// Height of the legend strip above a function grid, in pixels.
pub(super) const LEGEND_HEIGHT: u32 = 44;
/// Colour roles in the function grid.
pub(super) const MEAN_COLOUR: RGBColor = PALETTE[0];
pub(super) const REFERENCE_COLOUR: RGBColor = PALETTE[2];
pub(super) const OBSERVED_COLOUR: RGBColor = PALETTE[3];
/// Samples cycle through the palette entries not used for the other roles.
pub(super) const SAMPLE_COLOURS: [RGBColor; 7] = [
    PALETTE[1], PALETTE[4], PALETTE[5], PALETTE[6], PALETTE[7], PALETTE[8], PALETTE[9],
];

/// One panel of a 1-D function plot (the paper's Figure 9): truth, predicted mean with a ±2σ band, sampled functions and observed points.
///
/// All per-x vectors must have the same length as `xs`. Non-finite values are left
/// out of the drawing (lines break there), but a panel needs at least one point where
/// both `xs` and `mean` are finite.
#[derive(Debug, Clone, Default)]
pub struct FunctionPanel {
    /// Panel title.
    pub title: String,
    /// Dense x grid, ascending.
    pub xs: Vec<f64>,
    /// Ground truth at `xs`, if known.
    pub truth: Option<Vec<f64>>,
    /// Predicted mean at `xs`.
    pub mean: Vec<f64>,
    /// Predicted standard deviation at `xs`; the band is `mean ± 2·std`.
    pub std: Vec<f64>,
    /// Sampled functions, each evaluated at `xs`.
    pub samples: Vec<Vec<f64>>,
    /// A reference mean at `xs` (e.g. the exact Bayes posterior mean), drawn dashed.
    pub reference_mean: Option<Vec<f64>>,
    /// Observed `(x, y)` points the prediction is conditioned on.
    pub observed: Vec<(f64, f64)>,
}

/// Draw panels in a grid with `columns` columns; shared y range per figure (clip to a sensible range computed from truth/observed with margin, so a wild sample doesn't squash the plot). Legend once.
///
/// The y range covers the ground truth, the observed points and the reference mean
/// of every panel (or, if none of those are given, the predicted band), plus a margin;
/// anything outside is clipped. The legend is drawn once, in a strip above the grid,
/// and lists only the elements present in some panel. `path` must end in `.png` or
/// `.svg`.
pub fn plot_function_grid(
    path: &Path,
    panels: &[FunctionPanel],
    columns: usize,
) -> Result<(), PlotError> {
    let invalid = |message: String| PlotError::InvalidInput {
        path: path.to_path_buf(),
        message,
    };
    if panels.is_empty() {
        return Err(invalid("no panels to draw".into()));
    }
    if columns == 0 {
        return Err(invalid("the grid needs at least one column".into()));
    }
    for (i, panel) in panels.iter().enumerate() {
        validate_panel(panel)
            .map_err(|m| invalid(format!("panel {i} ({:?}): {m}", panel.title)))?;
    }
    let columns = columns.min(panels.len());
    let rows = panels.len().div_ceil(columns);
    let y_range = shared_y_range(panels).ok_or_else(|| invalid("no finite y values".into()))?;
    let figure = FunctionGrid {
        panels,
        columns,
        rows,
        y_range,
    };
    render(path, &figure)
}

pub(super) fn validate_panel(panel: &FunctionPanel) -> Result<(), String> {
    let n = panel.xs.len();
    if n == 0 {
        return Err("`xs` is empty".into());
    }
    let check = |name: &str, len: usize| {
        if len == n {
            Ok(())
        } else {
            Err(format!("`{name}` has {len} values but `xs` has {n}"))
        }
    };
    check("mean", panel.mean.len())?;
    check("std", panel.std.len())?;
    if let Some(truth) = &panel.truth {
        check("truth", truth.len())?;
    }
    if let Some(reference) = &panel.reference_mean {
        check("reference_mean", reference.len())?;
    }
    for (i, s) in panel.samples.iter().enumerate() {
        check(&format!("samples[{i}]"), s.len())?;
    }
    if panel.std.iter().any(|&s| s < 0.0) {
        return Err("`std` has negative values".into());
    }
    let has_finite_mean = panel
        .xs
        .iter()
        .zip(&panel.mean)
        .any(|(x, m)| x.is_finite() && m.is_finite());
    if !has_finite_mean {
        return Err("no point with finite x and mean".into());
    }
    Ok(())
}

/// The y range shared by all panels of a grid: the values that define the "true"
/// picture (truth, observations, reference), plus a margin. Predictions and samples are
/// deliberately left out so a single wild sample cannot squash everything else; they
/// only set the range when nothing else is available.
pub(super) fn shared_y_range(panels: &[FunctionPanel]) -> Option<(f64, f64)> {
    let anchors = panels.iter().flat_map(|p| {
        let truth = p.truth.iter().flatten().copied();
        let reference = p.reference_mean.iter().flatten().copied();
        let observed = p.observed.iter().filter(|o| o.0.is_finite()).map(|o| o.1);
        truth.chain(reference).chain(observed)
    });
    let band = panels.iter().flat_map(|p| {
        p.mean.iter().zip(&p.std).flat_map(|(m, s)| {
            let s = if s.is_finite() { *s } else { 0.0 };
            [m - 2.0 * s, m + 2.0 * s]
        })
    });
    data_range(anchors, false, 0.2).or_else(|| data_range(band, false, 0.1))
}

/// Clips a segment to `lo ≤ y ≤ hi`; `None` if it lies entirely outside.
pub(super) fn clip_segment(
    p: (f64, f64),
    q: (f64, f64),
    lo: f64,
    hi: f64,
) -> Option<((f64, f64), (f64, f64))> {
    let dy = q.1 - p.1;
    if dy == 0.0 {
        return (lo..=hi).contains(&p.1).then_some((p, q));
    }
    let (t_a, t_b) = ((lo - p.1) / dy, (hi - p.1) / dy);
    let t_enter = t_a.min(t_b).max(0.0);
    let t_exit = t_a.max(t_b).min(1.0);
    if t_enter > t_exit {
        return None;
    }
    let at = |t: f64| (p.0 + t * (q.0 - p.0), p.1 + t * dy);
    // Keep the original endpoints bit-exact so consecutive segments chain up.
    let a = if t_enter == 0.0 { p } else { at(t_enter) };
    let b = if t_exit == 1.0 { q } else { at(t_exit) };
    Some((a, b))
}

/// Turns `ys` sampled at `xs` into polylines clipped to `lo ≤ y ≤ hi`. Lines break at
/// non-finite values and wherever they leave the range (plotters itself does not clip).
pub(super) fn clipped_polylines(xs: &[f64], ys: &[f64], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut lines = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let points: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
    for pair in points.windows(2) {
        let (p, q) = (pair[0], pair[1]);
        let clipped = if finite(&p) && finite(&q) {
            clip_segment(p, q, lo, hi)
        } else {
            None
        };
        match clipped {
            Some((a, b)) => {
                if current.last() != Some(&a) && !current.is_empty() {
                    lines.push(std::mem::take(&mut current));
                }
                if current.is_empty() {
                    current.push(a);
                }
                current.push(b);
            }
            None => {
                if !current.is_empty() {
                    lines.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// Polygons of the band `mean ± 2·std`, clamped to `[lo, hi]`, one per run of finite
/// values.
pub(super) fn band_polygons(panel: &FunctionPanel, lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let mut polygons = Vec::new();
    let mut upper: Vec<(f64, f64)> = Vec::new();
    let mut lower: Vec<(f64, f64)> = Vec::new();
    let mut flush = |upper: &mut Vec<(f64, f64)>, lower: &mut Vec<(f64, f64)>| {
        if upper.len() >= 2 {
            let mut polygon = std::mem::take(upper);
            polygon.extend(lower.drain(..).rev());
            polygons.push(polygon);
        }
        upper.clear();
        lower.clear();
    };
    for ((&x, &m), &s) in panel.xs.iter().zip(&panel.mean).zip(&panel.std) {
        if x.is_finite() && m.is_finite() && s.is_finite() {
            upper.push((x, (m + 2.0 * s).clamp(lo, hi)));
            lower.push((x, (m - 2.0 * s).clamp(lo, hi)));
        } else {
            flush(&mut upper, &mut lower);
        }
    }
    flush(&mut upper, &mut lower);
    polygons
}

// ---------------------------------------------------------------------------
// Function grid.
// ---------------------------------------------------------------------------

pub(super) struct FunctionGrid<'a> {
    panels: &'a [FunctionPanel],
    columns: usize,
    rows: usize,
    y_range: (f64, f64),
}

/// What a legend entry's little picture looks like.
pub(super) enum LegendGlyph {
    Line(RGBColor, u32),
    Dashed(RGBColor),
    Band(RGBColor),
    Point(RGBColor),
}

impl Figure for FunctionGrid<'_> {
    fn size(&self) -> (u32, u32) {
        (
            PANEL_SIZE.0 * self.columns as u32,
            PANEL_SIZE.1 * self.rows as u32 + LEGEND_HEIGHT,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (legend, body) = root.split_vertically(LEGEND_HEIGHT);
        self.draw_legend(&legend)?;
        let cells = body.split_evenly((self.rows, self.columns));
        for (panel, cell) in self.panels.iter().zip(&cells) {
            self.draw_panel(cell, panel)?;
        }
        Ok(())
    }
}

impl FunctionGrid<'_> {
    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let any = |f: fn(&FunctionPanel) -> bool| self.panels.iter().any(f);
        let mut entries = Vec::new();
        if any(|p| p.truth.is_some()) {
            entries.push(("truth", LegendGlyph::Line(BLACK, 2)));
        }
        entries.push(("predicted mean", LegendGlyph::Line(MEAN_COLOUR, 2)));
        entries.push(("±2σ", LegendGlyph::Band(MEAN_COLOUR)));
        if any(|p| !p.samples.is_empty()) {
            entries.push(("samples", LegendGlyph::Line(SAMPLE_COLOURS[0], 1)));
        }
        if any(|p| p.reference_mean.is_some()) {
            entries.push(("reference mean", LegendGlyph::Dashed(REFERENCE_COLOUR)));
        }
        if any(|p| !p.observed.is_empty()) {
            entries.push(("observed", LegendGlyph::Point(OBSERVED_COLOUR)));
        }

        let text_style = (FONT, 16)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let glyph_width = 28;
        let gap = 24;
        // Measure first so the row of entries can be centred.
        let mut widths = Vec::with_capacity(entries.len());
        for (label, _) in &entries {
            let (w, _) = area.estimate_text_size(label, &text_style).map_err(err)?;
            widths.push(glyph_width + 6 + w as i32);
        }
        let total: i32 = widths.iter().sum::<i32>() + gap * (entries.len() as i32 - 1);
        let (width, height) = area.dim_in_pixel();
        let y = height as i32 / 2;
        let mut x = ((width as i32 - total) / 2).max(4);
        for ((label, glyph), w) in entries.iter().zip(widths) {
            let (x0, x1) = (x, x + glyph_width);
            match glyph {
                LegendGlyph::Line(colour, width) => area
                    .draw(&PathElement::new(
                        vec![(x0, y), (x1, y)],
                        colour.stroke_width(*width),
                    ))
                    .map_err(err)?,
                LegendGlyph::Dashed(colour) => {
                    for (a, b) in [(x0, x0 + 10), (x0 + 15, x0 + 25)] {
                        area.draw(&PathElement::new(
                            vec![(a, y), (b, y)],
                            colour.stroke_width(2),
                        ))
                        .map_err(err)?;
                    }
                }
                LegendGlyph::Band(colour) => area
                    .draw(&Rectangle::new(
                        [(x0, y - 7), (x1, y + 7)],
                        colour.mix(0.2).filled(),
                    ))
                    .map_err(err)?,
                LegendGlyph::Point(colour) => {
                    let centre = ((x0 + x1) / 2, y);
                    area.draw(&Circle::new(centre, 5, colour.filled()))
                        .map_err(err)?;
                    area.draw(&Circle::new(centre, 5, BLACK.stroke_width(1)))
                        .map_err(err)?;
                }
            }
            area.draw(&Text::new(*label, (x1 + 6, y), text_style.clone()))
                .map_err(err)?;
            x += w + gap;
        }
        Ok(())
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &FunctionPanel,
    ) -> Result<(), String> {
        let (y_lo, y_hi) = self.y_range;
        let observed_x = panel.observed.iter().map(|o| o.0);
        let (x_lo, x_hi) = data_range(panel.xs.iter().copied().chain(observed_x), false, 0.0)
            .ok_or_else(|| format!("panel {:?}: no finite x values", panel.title))?;

        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 17))
            .margin(8)
            // Room for the last x tick label, which is centred on the right edge.
            .margin_right(16)
            .x_label_area_size(26)
            .y_label_area_size(44)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(err)?;
        let (x_span, y_span) = (x_hi - x_lo, y_hi - y_lo);
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(6)
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .label_style((FONT, 13))
            .x_label_formatter(&|v| format_tick(*v, x_span))
            .y_label_formatter(&|v| format_tick(*v, y_span))
            .draw()
            .map_err(err)?;

        // Back to front: band, samples, reference, truth, mean, observations.
        chart
            .draw_series(
                band_polygons(panel, y_lo, y_hi)
                    .into_iter()
                    .map(|poly| Polygon::new(poly, MEAN_COLOUR.mix(0.2).filled())),
            )
            .map_err(err)?;
        for (i, sample) in panel.samples.iter().enumerate() {
            let colour = SAMPLE_COLOURS[i % SAMPLE_COLOURS.len()].mix(0.75);
            let lines = clipped_polylines(&panel.xs, sample, y_lo, y_hi);
            chart
                .draw_series(
                    lines
                        .into_iter()
                        .map(|l| PathElement::new(l, colour.stroke_width(1))),
                )
                .map_err(err)?;
        }
        if let Some(reference) = &panel.reference_mean {
            let lines = clipped_polylines(&panel.xs, reference, y_lo, y_hi);
            chart
                .draw_series(
                    lines
                        .into_iter()
                        .map(|l| DashedPathElement::new(l, 8, 5, REFERENCE_COLOUR.stroke_width(2))),
                )
                .map_err(err)?;
        }
        if let Some(truth) = &panel.truth {
            let lines = clipped_polylines(&panel.xs, truth, y_lo, y_hi);
            chart
                .draw_series(
                    lines
                        .into_iter()
                        .map(|l| PathElement::new(l, BLACK.stroke_width(2))),
                )
                .map_err(err)?;
        }
        let lines = clipped_polylines(&panel.xs, &panel.mean, y_lo, y_hi);
        chart
            .draw_series(
                lines
                    .into_iter()
                    .map(|l| PathElement::new(l, MEAN_COLOUR.stroke_width(2))),
            )
            .map_err(err)?;
        let inside =
            |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite() && (y_lo..=y_hi).contains(&y);
        chart
            .draw_series(panel.observed.iter().filter(inside).map(|&p| {
                // A dark outline keeps the points visible on top of the band.
                EmptyElement::at(p)
                    + Circle::new((0, 0), 5, OBSERVED_COLOUR.filled())
                    + Circle::new((0, 0), 5, BLACK.stroke_width(1))
            }))
            .map_err(err)?;
        Ok(())
    }
}
