//! What every chart shares: the embedded font, the palette, drawing any
//! [`Figure`] to PNG or SVG by the file's extension, atomically (a hidden
//! sibling file renamed over the destination, so readers never see a
//! half-written image), and small helpers for ranges and ticks.
//!
//! Text is drawn with an embedded copy of DejaVu Sans, so rendering does
//! not depend on the fonts installed on the machine.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::PlotError;

/// The embedded font, registered with plotters as "sans-serif".
pub(super) static FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));
pub(super) static FONT_ONCE: Once = Once::new();
pub(super) static FONT_OK: AtomicBool = AtomicBool::new(false);

/// Font family used for every piece of text (the one the embedded font is registered as).
pub(super) const FONT: &str = "sans-serif";

/// Matplotlib's "tab10" colours: distinct, and familiar to readers of ML plots.
pub(super) const PALETTE: [RGBColor; 10] = [
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

// ---------------------------------------------------------------------------
// Rendering plumbing shared by every figure kind.
// ---------------------------------------------------------------------------

/// A figure that can be drawn on any plotters backend; lets [`render`] pick the backend
/// from the file extension without duplicating the drawing code.
pub(super) trait Figure {
    /// Canvas size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto a canvas that has already been cleared to white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Png,
    Svg,
}

pub(super) fn format_of(path: &Path) -> Result<Format, PlotError> {
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
pub(super) fn temp_path(path: &Path) -> Result<PathBuf, PlotError> {
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
pub(super) fn ensure_font(path: &Path) -> Result<(), PlotError> {
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

pub(super) fn render(path: &Path, figure: &impl Figure) -> Result<(), PlotError> {
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

/// Draws `figure` into memory: `(width, height, RGB bytes)`.
pub(super) fn render_rgb(
    path: &Path,
    figure: &impl Figure,
) -> Result<(u32, u32, Vec<u8>), PlotError> {
    ensure_font(path)?;
    let (w, h) = figure.size();
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_and_present(&root, figure).map_err(|message| PlotError::Render {
            path: path.to_path_buf(),
            message,
        })?;
    }
    Ok((w, h, buf))
}

pub(super) fn draw_and_present<DB: DrawingBackend>(
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
pub(super) fn split_runs(
    points: &[(f64, f64)],
    keep: impl Fn(&(f64, f64)) -> bool,
) -> Vec<Vec<(f64, f64)>> {
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
pub(super) fn data_range(
    values: impl Iterator<Item = f64>,
    log: bool,
    margin: f64,
) -> Option<(f64, f64)> {
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

/// Tick label with as many decimals as the axis span calls for, without trailing zeros.
pub(super) fn format_tick(v: f64, span: f64) -> String {
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
pub(super) fn format_log_tick(v: f64, decades: f64) -> String {
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

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}
