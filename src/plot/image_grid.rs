//! Grids of small pictures with a title per row and per column.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::*;
use crate::error::PlotError;

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
    /// A colour bar at the right, for tiles that map a number to a colour.
    pub colour_bar: Option<ColourBar>,
}

/// A vertical colour scale: what the colours of some tiles mean.
#[derive(Debug, Clone, PartialEq)]
pub struct ColourBar {
    /// What the colours measure, e.g. `std`.
    pub label: String,
    /// The value of the bottom colour.
    pub low: f32,
    /// The value of the top colour.
    pub high: f32,
    /// The colours from `low` to `high`, evenly spaced.
    pub colours: Vec<[u8; 3]>,
}

impl ColourBar {
    /// The [`heat`] scale from 0 to `high`, labelled `label`.
    pub fn heat(label: impl Into<String>, high: f32) -> Self {
        Self {
            label: label.into(),
            low: 0.0,
            high,
            colours: (0..=64)
                .map(|k| heat(k as f32 / 64.0).map(|c| (c * 255.0).round() as u8))
                .collect(),
        }
    }
}

/// A "hot" colour map for uncertainty, `t` from 0 to 1: black, then red,
/// yellow, white. Brightness grows monotonically, so the map also reads in
/// grey print; outside `[0, 1]` it saturates, and NaN is black.
pub fn heat(t: f32) -> [f32; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    [
        (3.0 * t).min(1.0),
        (3.0 * t - 1.0).clamp(0.0, 1.0),
        (3.0 * t - 2.0).clamp(0.0, 1.0),
    ]
}

/// Extra width a colour bar takes.
const COLOUR_BAR_WIDTH: u32 = 90;

pub(super) const GRID_TITLE_HEIGHT: u32 = 34;
pub(super) const GRID_COLUMN_TITLE_HEIGHT: u32 = 26;
pub(super) const GRID_ROW_TITLE_WIDTH: u32 = 90;
pub(super) const GRID_GAP: u32 = 6;
/// Tiles are enlarged by a whole factor towards this side, so every pixel
/// stays a crisp square.
pub(super) const GRID_TILE_TARGET: u32 = 96;

/// The size in pixels of an [`ImageGrid`] of `rows × cols` tiles of at
/// most `tile_width × tile_height` pixels.
pub fn image_grid_size(
    rows: usize,
    cols: usize,
    tile_width: usize,
    tile_height: usize,
) -> (u32, u32) {
    let scale = (GRID_TILE_TARGET / tile_width.max(tile_height).max(1) as u32).max(1);
    let cell = (tile_width as u32 * scale, tile_height as u32 * scale);
    (
        GRID_ROW_TITLE_WIDTH + cols as u32 * (cell.0 + GRID_GAP) + GRID_GAP,
        GRID_TITLE_HEIGHT + GRID_COLUMN_TITLE_HEIGHT + rows as u32 * (cell.1 + GRID_GAP),
    )
}

/// Where the tile at `(row, col)` of an [`ImageGrid`] of tiles of at most
/// `tile_width × tile_height` pixels is drawn: `(x, y, width, height)` in
/// the picture's pixels (for reading pictures back, in tests say).
pub fn image_grid_cell(
    tile_width: usize,
    tile_height: usize,
    row: usize,
    col: usize,
) -> (u32, u32, u32, u32) {
    let scale = (GRID_TILE_TARGET / tile_width.max(tile_height).max(1) as u32).max(1);
    let cell = (tile_width as u32 * scale, tile_height as u32 * scale);
    (
        GRID_ROW_TITLE_WIDTH + col as u32 * (cell.0 + GRID_GAP),
        GRID_TITLE_HEIGHT + GRID_COLUMN_TITLE_HEIGHT + row as u32 * (cell.1 + GRID_GAP),
        cell.0,
        cell.1,
    )
}

/// Writes an [`ImageGrid`] as PNG or SVG.
pub fn plot_image_grid(path: &Path, grid: &ImageGrid) -> Result<(), PlotError> {
    render(path, &grid_figure(path, grid)?)
}

/// Draws an [`ImageGrid`] in memory: `(width, height, RGB bytes)` (for
/// animations, whose frames are pictures too).
pub fn image_grid_rgb(grid: &ImageGrid) -> Result<(u32, u32, Vec<u8>), PlotError> {
    let path = Path::new("<image grid in memory>");
    render_rgb(path, &grid_figure(path, grid)?)
}

fn grid_figure<'a>(path: &Path, grid: &'a ImageGrid) -> Result<GridFigure<'a>, PlotError> {
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
    Ok(GridFigure {
        grid,
        cell: (side.0 as u32 * scale, side.1 as u32 * scale),
        scale,
    })
}

pub(super) struct GridFigure<'a> {
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
        let bar = if self.grid.colour_bar.is_some() {
            COLOUR_BAR_WIDTH
        } else {
            0
        };
        (
            GRID_ROW_TITLE_WIDTH + cols * (self.cell.0 + GRID_GAP) + GRID_GAP + bar,
            GRID_TITLE_HEIGHT + GRID_COLUMN_TITLE_HEIGHT + rows * (self.cell.1 + GRID_GAP),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let text = |size: f64| TextStyle::from((FONT, size).into_font()).color(&BLACK);
        let centred = |size: f64| text(size).pos(Pos::new(HPos::Center, VPos::Center));
        let width = self.size().0 as i32;
        // A long title is set smaller rather than cut off (DejaVu Sans
        // averages about 0.55 em per character).
        let chars = self.grid.title.chars().count().max(1) as f64;
        let title_size = (f64::from(width - 12) / (0.55 * chars)).clamp(9.0, 17.0);
        root.draw_text(
            &self.grid.title,
            &centred(title_size),
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
        if let Some(bar) = &self.grid.colour_bar {
            let rows = self.grid.row_titles.len() as u32;
            let (x0, y0) = (
                self.size().0 as i32 - COLOUR_BAR_WIDTH as i32 + 10,
                top(0) + 14,
            );
            let height = (rows * (self.cell.1 + GRID_GAP)) as i32 - GRID_GAP as i32 - 28;
            let n = bar.colours.len().max(1) as i32;
            for y in 0..height.max(1) {
                // Top is `high`: the last colour.
                let k = ((height - 1 - y) * n / height.max(1)).clamp(0, n - 1) as usize;
                let [r, g, b] = bar.colours.get(k).copied().unwrap_or([0, 0, 0]);
                root.draw(&Rectangle::new(
                    [(x0, y0 + y), (x0 + 16, y0 + y + 1)],
                    RGBColor(r, g, b).filled(),
                ))
                .map_err(err)?;
            }
            let left_text = text(11.0).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw_text(&bar.label, &centred(12.0), (x0 + 8, y0 - 10))
                .map_err(err)?;
            root.draw_text(&format!("{:.3}", bar.high), &left_text, (x0 + 20, y0 + 4))
                .map_err(err)?;
            root.draw_text(
                &format!("{:.3}", bar.low),
                &left_text,
                (x0 + 20, y0 + height - 4),
            )
            .map_err(err)?;
        }
        Ok(())
    }
}
