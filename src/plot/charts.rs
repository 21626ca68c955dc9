//! Plotting helpers that take plain data (no model types) and write PNG or SVG files.
//!
//! Two kinds of figure are supported:
//!
//! * [`plot_function_grid`]: a grid of 1-D function panels in the style of the
//!   PixelTransformer paper's Figure 9 — ground truth, the predicted mean with a ±2σ
//!   band, sampled functions, an optional reference mean (e.g. the exact Bayes
//!   posterior) and the observed points.
//! * [`plot_lines`]: a line chart with optional log axes, for training curves and
//!   evaluation metrics against the number of observations.
//!
//! The output format follows the file extension (`.png` or `.svg`). Files are written
//! atomically: the figure is rendered to a hidden sibling temporary file which is then
//! renamed over the destination, so readers never see a half-written image.
//!
//! Text is drawn with an embedded copy of DejaVu Sans, so rendering does not depend on
//! the fonts installed on the machine.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

pub use crate::error::PlotError;

/// The embedded font, registered with plotters as "sans-serif".
static FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));
static FONT_ONCE: Once = Once::new();
static FONT_OK: AtomicBool = AtomicBool::new(false);

/// Font family used for every piece of text (the one the embedded font is registered as).
const FONT: &str = "sans-serif";

/// Size of one panel of a function grid, in pixels.
const PANEL_SIZE: (u32, u32) = (420, 320);
/// Height of the legend strip above a function grid, in pixels.
const LEGEND_HEIGHT: u32 = 44;
/// Size of a line chart, in pixels.
const LINE_CHART_SIZE: (u32, u32) = (900, 600);
/// Series with at most this many drawable points also get a marker at every point,
/// so sparse curves (e.g. a metric at a handful of |S| values) stay readable.
const MARKER_THRESHOLD: usize = 40;

/// Matplotlib's "tab10" colours: distinct, and familiar to readers of ML plots.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Colour roles in the function grid.
const MEAN_COLOUR: RGBColor = PALETTE[0];
const REFERENCE_COLOUR: RGBColor = PALETTE[2];
const OBSERVED_COLOUR: RGBColor = PALETTE[3];
/// Samples cycle through the palette entries not used for the other roles.
const SAMPLE_COLOURS: [RGBColor; 7] = [
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
// Rendering plumbing shared by both figure kinds.
// ---------------------------------------------------------------------------

/// A figure that can be drawn on any plotters backend; lets [`render`] pick the backend
/// from the file extension without duplicating the drawing code.
trait Figure {
    /// Canvas size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto a canvas that has already been cleared to white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

fn format_of(path: &Path) -> Result<Format, PlotError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(PlotError::UnsupportedFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// `dir/name.png` → `dir/.name.png.tmp.png`: same directory (so the rename is atomic),
/// hidden, and still ending in the real extension because the bitmap backend chooses
/// the encoder from it.
fn temp_path(path: &Path) -> Result<PathBuf, PlotError> {
    let name = path.file_name().ok_or_else(|| PlotError::InvalidInput {
        path: path.to_path_buf(),
        message: "the path has no file name".into(),
    })?;
    let ext = path.extension().unwrap_or_default();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp.");
    tmp_name.push(ext);
    Ok(path.with_file_name(tmp_name))
}

/// Registers the embedded font once per process; plotters' ab_glyph text support
/// only knows fonts registered this way.
fn ensure_font(path: &Path) -> Result<(), PlotError> {
    FONT_ONCE.call_once(|| {
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok();
        FONT_OK.store(ok, Ordering::SeqCst);
    });
    if FONT_OK.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(PlotError::Render {
            path: path.to_path_buf(),
            message: "the embedded DejaVu Sans font could not be loaded".into(),
        })
    }
}

fn render(path: &Path, figure: &impl Figure) -> Result<(), PlotError> {
    let format = format_of(path)?;
    ensure_font(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let tmp = temp_path(path)?;
    // Each backend lives only inside its arm: it is dropped (and has flushed, or given
    // up on, the temporary file) before we rename or delete that file.
    let result = match format {
        Format::Png => {
            let root = BitMapBackend::new(&tmp, figure.size()).into_drawing_area();
            draw_and_present(&root, figure)
        }
        Format::Svg => {
            let root = SVGBackend::new(&tmp, figure.size()).into_drawing_area();
            draw_and_present(&root, figure)
        }
    };
    if let Err(message) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(PlotError::Render {
            path: path.to_path_buf(),
            message,
        });
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        PlotError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn draw_and_present<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &impl Figure,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    figure.draw(root)?;
    root.present().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Data helpers.
// ---------------------------------------------------------------------------

/// Splits `points` into maximal runs of consecutive points accepted by `keep`.
fn split_runs(points: &[(f64, f64)], keep: impl Fn(&(f64, f64)) -> bool) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for p in points {
        if keep(p) {
            current.push(*p);
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Range of the finite `values` widened by `margin` (a fraction of the span; on a log
/// axis, of the span in decades), never empty. `None` if there is no usable value.
fn data_range(values: impl Iterator<Item = f64>, log: bool, margin: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .map(|v| if log { v.log10() } else { v })
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })?;
    let span = hi - lo;
    if !span.is_finite() {
        return None;
    }
    // A single value (or a flat line) still needs a non-empty axis.
    let pad = if span > 0.0 {
        span * margin
    } else {
        (lo.abs() * 0.1).max(0.5)
    };
    let (lo, hi) = (lo - pad, hi + pad);
    Some(if log {
        (10f64.powf(lo), 10f64.powf(hi))
    } else {
        (lo, hi)
    })
}

fn validate_panel(panel: &FunctionPanel) -> Result<(), String> {
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
fn shared_y_range(panels: &[FunctionPanel]) -> Option<(f64, f64)> {
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
fn clip_segment(
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
fn clipped_polylines(xs: &[f64], ys: &[f64], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
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
fn band_polygons(panel: &FunctionPanel, lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
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

/// Tick label with as many decimals as the axis span calls for, without trailing zeros.
fn format_tick(v: f64, span: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs();
    if !(1e-3..1e5).contains(&magnitude) {
        return format!("{v:.1e}");
    }
    let decimals = (2.0 - span.abs().log10().floor()).clamp(0.0, 6.0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Tick label on a log axis spanning `decades` powers of ten. Plotters proposes a tick
/// at every integer multiple of each power of ten, which crowds the axis, so only
/// 1-2-5 mantissas are labelled (only powers of ten on wide axes); the rest get an
/// empty label but keep their grid line.
fn format_log_tick(v: f64, decades: f64) -> String {
    if v.is_nan() || v <= 0.0 {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    // 10 is listed because rounding can put a power of ten just below itself.
    let labelled: &[f64] = if decades > 3.0 {
        &[1.0, 10.0]
    } else {
        &[1.0, 2.0, 5.0, 10.0]
    };
    if labelled.iter().any(|k| (mantissa - k).abs() < 1e-6 * k) {
        format_tick(v, v * 10.0)
    } else {
        String::new()
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

// ---------------------------------------------------------------------------
// Function grid.
// ---------------------------------------------------------------------------

struct FunctionGrid<'a> {
    panels: &'a [FunctionPanel],
    columns: usize,
    rows: usize,
    y_range: (f64, f64),
}

/// What a legend entry's little picture looks like.
enum LegendGlyph {
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

// ---------------------------------------------------------------------------
// Line chart.
// ---------------------------------------------------------------------------

struct LineFigure<'a> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A fresh, empty directory under the system temp dir (no tempfile crate here).
    fn scratch_dir(name: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "pixel-transformer-plot-{}-{name}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{path:?} is not a PNG"
        );
    }

    fn assert_svg(path: &Path) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("<svg"), "{path:?} is not an SVG");
    }

    /// Only the requested file is left behind: no temporary files.
    fn assert_only(dir: &Path, names: &[&str]) {
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    fn poly(x: f64) -> f64 {
        0.5 + x - 1.5 * x * x + 0.8 * x.powi(5)
    }

    fn panel(title: &str, n_obs: usize) -> FunctionPanel {
        let xs: Vec<f64> = (0..=200).map(|i| -1.0 + i as f64 / 100.0).collect();
        let truth: Vec<f64> = xs.iter().map(|&x| poly(x)).collect();
        let spread = 1.0 / (1.0 + n_obs as f64);
        let mean: Vec<f64> = xs
            .iter()
            .map(|&x| poly(x) + spread * (3.0 * x).sin())
            .collect();
        let std: Vec<f64> = xs.iter().map(|&x| spread * (1.0 + x * x)).collect();
        let samples = (0..3)
            .map(|k| {
                xs.iter()
                    .zip(&mean)
                    .map(|(&x, &m)| m + spread * ((k as f64 + 1.0) * 4.0 * x).cos())
                    .collect()
            })
            .collect();
        let reference_mean = Some(mean.iter().map(|m| m + 0.05).collect());
        let observed = (0..n_obs)
            .map(|i| {
                let x = -0.9 + 1.8 * i as f64 / n_obs.max(2) as f64;
                (x, poly(x))
            })
            .collect();
        FunctionPanel {
            title: title.into(),
            xs,
            truth: Some(truth),
            mean,
            std,
            samples,
            reference_mean,
            observed,
        }
    }

    #[test]
    fn function_grid_png_and_svg() {
        let dir = scratch_dir("grid");
        let mut panels: Vec<FunctionPanel> = [1, 2, 4, 8]
            .iter()
            .map(|&n| panel(&format!("|S| = {n}"), n))
            .collect();
        // A wild sample and some NaNs must neither panic nor squash the y range.
        panels[0].samples[0][50] = 1e6;
        panels[1].mean[10] = f64::NAN;
        panels[1].samples[1][20] = f64::INFINITY;
        let png = dir.join("grid.png");
        let svg = dir.join("grid.svg");
        plot_function_grid(&png, &panels, 2).unwrap();
        plot_function_grid(&svg, &panels, 3).unwrap();
        assert_png(&png);
        assert_svg(&svg);
        assert_only(&dir, &["grid.png", "grid.svg"]);
        // Overwriting an existing file works.
        plot_function_grid(&png, &panels[..1], 1).unwrap();
        assert_png(&png);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn minimal_panel_without_optional_parts() {
        let dir = scratch_dir("minimal");
        let panels = [FunctionPanel {
            title: "flat".into(),
            xs: vec![0.0, 1.0],
            mean: vec![2.0, 2.0],
            std: vec![0.0, 0.0],
            ..Default::default()
        }];
        let png = dir.join("flat.PNG");
        plot_function_grid(&png, &panels, 4).unwrap();
        assert_png(&png);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn function_grid_rejects_bad_input() {
        let dir = scratch_dir("grid-errors");
        let png = dir.join("bad.png");
        let good = panel("ok", 3);

        let e = plot_function_grid(&png, &[], 2).unwrap_err();
        assert!(matches!(e, PlotError::InvalidInput { .. }), "{e}");
        assert!(e.to_string().contains("bad.png"), "{e}");

        assert!(plot_function_grid(&png, std::slice::from_ref(&good), 0).is_err());

        let mut short = good.clone();
        short.std.pop();
        let e = plot_function_grid(&png, &[good.clone(), short], 2).unwrap_err();
        assert!(e.to_string().contains("std"), "{e}");

        let mut short_sample = good.clone();
        short_sample.samples[2].truncate(5);
        assert!(plot_function_grid(&png, &[short_sample], 2).is_err());

        let mut bad_truth = good.clone();
        bad_truth.truth = Some(vec![0.0]);
        assert!(plot_function_grid(&png, &[bad_truth], 2).is_err());

        let mut all_nan = good.clone();
        all_nan.mean.iter_mut().for_each(|m| *m = f64::NAN);
        assert!(plot_function_grid(&png, &[all_nan], 2).is_err());

        let empty = FunctionPanel::default();
        assert!(plot_function_grid(&png, &[empty], 2).is_err());

        let e =
            plot_function_grid(&dir.join("grid.jpg"), std::slice::from_ref(&good), 1).unwrap_err();
        assert!(matches!(e, PlotError::UnsupportedFormat { .. }), "{e}");
        assert!(e.to_string().contains("grid.jpg"), "{e}");
        assert!(plot_function_grid(&dir.join("noext"), &[good], 1).is_err());

        assert_only(&dir, &[]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_directories_are_created_and_unwritable_ones_name_the_file() {
        let dir = scratch_dir("missing");
        // A folder that does not exist yet is created (users pass fresh --out folders).
        let png = dir.join("no-such-dir").join("grid.png");
        plot_function_grid(&png, &[panel("x", 2)], 1).unwrap();
        assert!(png.exists());
        // A "folder" that is really a file cannot be created: the error names the target.
        let blocker = dir.join("a-file");
        std::fs::write(&blocker, b"x").unwrap();
        let e = plot_function_grid(&blocker.join("grid.png"), &[panel("x", 2)], 1).unwrap_err();
        assert!(e.to_string().contains("grid.png"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn curves() -> LineChart {
        let loss: Vec<(f64, f64)> = (1..=500)
            .map(|i| (i as f64, 2.0 / (i as f64).sqrt() + 0.1))
            .collect();
        let mut noisy = loss.clone();
        noisy[100].1 = f64::NAN;
        noisy.iter_mut().for_each(|p| p.1 *= 1.2);
        let sizes: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
        let metric = sizes.iter().map(|&s| (s, 1.5 - s.ln())).collect();
        LineChart {
            title: "Test chart".into(),
            x_label: "step".into(),
            y_label: "loss (nats)".into(),
            log_x: false,
            log_y: false,
            series: vec![
                Series {
                    name: "train".into(),
                    points: loss,
                    dashed: false,
                },
                Series {
                    name: "validation".into(),
                    points: noisy,
                    dashed: false,
                },
                Series {
                    name: "metric".into(),
                    points: metric,
                    dashed: true,
                },
            ],
        }
    }

    #[test]
    fn line_chart_png_and_svg_all_axis_kinds() {
        let dir = scratch_dir("lines");
        let mut names = Vec::new();
        for (log_x, log_y) in [(false, false), (true, false), (false, true), (true, true)] {
            let chart = LineChart {
                log_x,
                log_y,
                ..curves()
            };
            let stem = format!("lines-{log_x}-{log_y}");
            let png = dir.join(format!("{stem}.png"));
            let svg = dir.join(format!("{stem}.svg"));
            plot_lines(&png, &chart).unwrap();
            plot_lines(&svg, &chart).unwrap();
            assert_png(&png);
            assert_svg(&svg);
            names.push(format!("{stem}.png"));
            names.push(format!("{stem}.svg"));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_only(&dir, &names);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_axes_skip_non_positive_values() {
        let dir = scratch_dir("log");
        let chart = LineChart {
            title: "log".into(),
            log_x: true,
            log_y: true,
            series: vec![
                Series {
                    name: "mixed".into(),
                    points: vec![(0.0, 1.0), (1.0, -2.0), (2.0, 3.0), (4.0, 5.0)],
                    dashed: false,
                },
                Series {
                    name: "never positive".into(),
                    points: vec![(1.0, -1.0), (2.0, 0.0)],
                    dashed: true,
                },
            ],
            ..Default::default()
        };
        let png = dir.join("log.png");
        plot_lines(&png, &chart).unwrap();
        assert_png(&png);

        // Nothing drawable at all is an error.
        let nothing = LineChart {
            series: vec![chart.series[1].clone()],
            ..chart.clone()
        };
        let e = plot_lines(&dir.join("nothing.svg"), &nothing).unwrap_err();
        assert!(matches!(e, PlotError::InvalidInput { .. }), "{e}");
        assert_only(&dir, &["log.png"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_chart_rejects_bad_input() {
        let dir = scratch_dir("lines-errors");
        let empty = LineChart::default();
        assert!(plot_lines(&dir.join("a.png"), &empty).is_err());
        let nan_only = LineChart {
            series: vec![Series {
                name: "nan".into(),
                points: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
                dashed: false,
            }],
            ..Default::default()
        };
        assert!(plot_lines(&dir.join("b.svg"), &nan_only).is_err());
        let e = plot_lines(&dir.join("c.pdf"), &curves()).unwrap_err();
        assert!(matches!(e, PlotError::UnsupportedFormat { .. }));
        assert_only(&dir, &[]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn single_point_series_is_drawn() {
        let dir = scratch_dir("single");
        let chart = LineChart {
            series: vec![Series {
                name: "one".into(),
                points: vec![(3.0, 3.0)],
                dashed: false,
            }],
            ..Default::default()
        };
        plot_lines(&dir.join("one.svg"), &chart).unwrap();
        assert_svg(&dir.join("one.svg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_path_keeps_extension_and_directory() {
        let tmp = temp_path(Path::new("out/fig.png")).unwrap();
        assert_eq!(tmp, Path::new("out/.fig.png.tmp.png"));
        assert!(temp_path(Path::new("/")).is_err());
    }

    #[test]
    fn clipping_breaks_lines_at_the_range() {
        let xs = [0.0, 1.0, 2.0, 3.0, 4.0];
        let ys = [0.0, 2.0, 0.0, f64::NAN, 0.5];
        let lines = clipped_polylines(&xs, &ys, -1.0, 1.0);
        assert_eq!(
            lines,
            vec![vec![(0.0, 0.0), (0.5, 1.0)], vec![(1.5, 1.0), (2.0, 0.0)]]
        );
        // Fully inside: one unbroken line.
        let lines = clipped_polylines(&xs[..3], &[0.1, 0.2, 0.3], -1.0, 1.0);
        assert_eq!(lines, vec![vec![(0.0, 0.1), (1.0, 0.2), (2.0, 0.3)]]);
        // Fully outside: nothing.
        assert!(clipped_polylines(&xs[..2], &[5.0, 6.0], -1.0, 1.0).is_empty());
    }

    #[test]
    fn shared_range_ignores_wild_samples() {
        let mut p = panel("p", 3);
        p.samples[0][0] = 1e9;
        let (lo, hi) = shared_y_range(&[p]).unwrap();
        assert!(lo > -10.0 && hi < 10.0, "{lo}..{hi}");
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(format_tick(0.5, 2.0), "0.5");
        assert_eq!(format_tick(2.0, 2.0), "2");
        assert_eq!(format_tick(0.0, 2.0), "0");
        assert_eq!(format_tick(1234.0, 1000.0), "1234");
        assert_eq!(format_tick(1e6, 1e6), "1.0e6");
        assert_eq!(format_log_tick(0.01, 2.0), "0.01");
        assert_eq!(format_log_tick(100.0, 2.0), "100");
        assert_eq!(format_log_tick(0.2, 2.0), "0.2");
        assert_eq!(format_log_tick(0.3, 2.0), "");
        assert_eq!(format_log_tick(0.2, 5.0), "");
        assert_eq!(format_log_tick(0.9999999999, 5.0), "1");
    }
}

// ---------------------------------------------------------------------------
// Image grids.
// ---------------------------------------------------------------------------

/// One picture of an [`ImageGrid`]: `width × height` RGB pixels, row-major
/// from the top left.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width · height` colours.
    pub rgb: Vec<[u8; 3]>,
}

/// A grid of pictures with a title per row and per column (e.g. one test
/// signal per row; truth, observations, mean, uncertainty and samples across).
#[derive(Debug, Clone, Default)]
pub struct ImageGrid {
    /// Title above the grid.
    pub title: String,
    /// One title per row, drawn at its left.
    pub row_titles: Vec<String>,
    /// One title per column, drawn above it.
    pub column_titles: Vec<String>,
    /// `rows × columns` tiles, row-major; `None` leaves a cell empty.
    pub tiles: Vec<Option<Tile>>,
}

const GRID_TITLE_HEIGHT: u32 = 34;
const GRID_COLUMN_TITLE_HEIGHT: u32 = 26;
const GRID_ROW_TITLE_WIDTH: u32 = 90;
const GRID_GAP: u32 = 6;
/// Tiles are enlarged by a whole factor towards this side, so every pixel
/// stays a crisp square.
const GRID_TILE_TARGET: u32 = 96;

/// Writes an [`ImageGrid`] as PNG or SVG.
pub fn plot_image_grid(path: &Path, grid: &ImageGrid) -> Result<(), PlotError> {
    let invalid = |message: String| PlotError::InvalidInput {
        path: path.to_path_buf(),
        message,
    };
    let (rows, cols) = (grid.row_titles.len(), grid.column_titles.len());
    if rows == 0 || cols == 0 || grid.tiles.len() != rows * cols {
        return Err(invalid(format!(
            "{} tiles for {rows} row titles and {cols} column titles",
            grid.tiles.len()
        )));
    }
    let mut side = (1, 1);
    for tile in grid.tiles.iter().flatten() {
        if tile.width == 0 || tile.height == 0 || tile.rgb.len() != tile.width * tile.height {
            return Err(invalid(format!(
                "a {}×{} tile with {} pixels",
                tile.width,
                tile.height,
                tile.rgb.len()
            )));
        }
        side = (side.0.max(tile.width), side.1.max(tile.height));
    }
    let scale = (GRID_TILE_TARGET / side.0.max(side.1) as u32).max(1);
    render(
        path,
        &GridFigure {
            grid,
            cell: (side.0 as u32 * scale, side.1 as u32 * scale),
            scale,
        },
    )
}

struct GridFigure<'a> {
    grid: &'a ImageGrid,
    cell: (u32, u32),
    scale: u32,
}

impl Figure for GridFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = (
            self.grid.row_titles.len() as u32,
            self.grid.column_titles.len() as u32,
        );
        (
            GRID_ROW_TITLE_WIDTH + cols * (self.cell.0 + GRID_GAP) + GRID_GAP,
            GRID_TITLE_HEIGHT + GRID_COLUMN_TITLE_HEIGHT + rows * (self.cell.1 + GRID_GAP),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let text = |size: f64| TextStyle::from((FONT, size).into_font()).color(&BLACK);
        let centred = |size: f64| text(size).pos(Pos::new(HPos::Center, VPos::Center));
        let width = self.size().0 as i32;
        root.draw_text(
            &self.grid.title,
            &centred(17.0),
            (width / 2, GRID_TITLE_HEIGHT as i32 / 2),
        )
        .map_err(err)?;
        let cols = self.grid.column_titles.len();
        let left = |c: usize| (GRID_ROW_TITLE_WIDTH + c as u32 * (self.cell.0 + GRID_GAP)) as i32;
        let top = |r: usize| {
            (GRID_TITLE_HEIGHT + GRID_COLUMN_TITLE_HEIGHT + r as u32 * (self.cell.1 + GRID_GAP))
                as i32
        };
        for (c, title) in self.grid.column_titles.iter().enumerate() {
            let at = (
                left(c) + self.cell.0 as i32 / 2,
                (GRID_TITLE_HEIGHT + GRID_COLUMN_TITLE_HEIGHT / 2) as i32,
            );
            root.draw_text(title, &centred(12.0), at).map_err(err)?;
        }
        for (r, title) in self.grid.row_titles.iter().enumerate() {
            let at = (
                GRID_ROW_TITLE_WIDTH as i32 / 2,
                top(r) + self.cell.1 as i32 / 2,
            );
            root.draw_text(title, &centred(12.0), at).map_err(err)?;
        }
        let s = self.scale as i32;
        for (i, tile) in self.grid.tiles.iter().enumerate() {
            let Some(tile) = tile else { continue };
            let (x0, y0) = (left(i % cols), top(i / cols));
            for (j, [r, g, b]) in tile.rgb.iter().enumerate() {
                let (x, y) = (
                    x0 + (j % tile.width) as i32 * s,
                    y0 + (j / tile.width) as i32 * s,
                );
                root.draw(&Rectangle::new(
                    [(x, y), (x + s, y + s)],
                    RGBColor(*r, *g, *b).filled(),
                ))
                .map_err(err)?;
            }
        }
        Ok(())
    }
}
