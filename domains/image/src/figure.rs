//! Figures as PNG files: images laid out in a grid of tiles, written atomically.
//!
//! The data sets' images are tiny (28 or 32 pixels), so tiles are enlarged
//! by an integer factor with nearest-neighbour repetition: every model pixel
//! stays a crisp square, nothing is smoothed that the model did not produce.

use std::path::Path;

use image::{codecs::png::PngEncoder, ColorType, ImageEncoder};
use pixel_transformer::plot::{image_grid_rgb, plot_image_grid, ColourBar, ImageGrid, Tile};
use pixel_transformer::{io::write_atomic, Error, Result};

use crate::Image;

/// Target tile side in screen pixels; the enlargement factor is chosen to approach it.
const TILE_TARGET: usize = 112;
/// Gap between tiles, in screen pixels.
const GAP: usize = 4;
/// Colour of the gaps and the margin (light grey, so black and white images both stand out).
const BACKGROUND: [u8; 3] = [220, 220, 220];

/// A grid of equally sized image tiles, optionally with a title and a title
/// per row and per column ([`Mosaic::titled`]).
#[derive(Debug, Clone)]
pub struct Mosaic {
    rows: usize,
    cols: usize,
    tile: (usize, usize),
    scale: usize,
    /// Each tile's RGB bytes, row-major over the grid (`None`: empty).
    tiles: Vec<Option<Vec<u8>>>,
    titles: Option<Titles>,
    colour_bar: Option<ColourBar>,
}

/// What a titled mosaic says about itself.
#[derive(Debug, Clone)]
struct Titles {
    title: String,
    rows: Vec<String>,
    cols: Vec<String>,
}

impl Mosaic {
    /// An empty `rows × cols` grid for images of `tile_width × tile_height` pixels.
    pub fn new(rows: usize, cols: usize, tile_width: usize, tile_height: usize) -> Self {
        let scale = (TILE_TARGET / tile_width.max(tile_height).max(1)).max(1);
        Self {
            rows,
            cols,
            tile: (tile_width, tile_height),
            scale,
            tiles: vec![None; rows * cols],
            titles: None,
            colour_bar: None,
        }
    }

    /// The same grid written with a title above it and a title for each
    /// row and column, so the picture says what it shows.
    pub fn titled(
        mut self,
        title: impl Into<String>,
        rows: Vec<String>,
        cols: Vec<String>,
    ) -> Result<Self> {
        if rows.len() != self.rows || cols.len() != self.cols {
            return Err(Error::invalid(format!(
                "{} row and {} column titles for a {}×{} mosaic",
                rows.len(),
                cols.len(),
                self.rows,
                self.cols
            )));
        }
        self.titles = Some(Titles {
            title: title.into(),
            rows,
            cols,
        });
        Ok(self)
    }

    /// The same grid with a colour bar saying what its colours mean (shown
    /// when it is written with titles).
    pub fn with_colour_bar(mut self, bar: ColourBar) -> Self {
        self.colour_bar = Some(bar);
        self
    }

    /// Size of the untitled picture in pixels.
    pub fn size(&self) -> (usize, usize) {
        (
            GAP + self.cols * (self.tile.0 * self.scale + GAP),
            GAP + self.rows * (self.tile.1 * self.scale + GAP),
        )
    }

    /// Draws `img` (grey or colour) into tile `(row, col)`.
    pub fn put<const V: usize>(&mut self, row: usize, col: usize, img: &Image<V>) -> Result<()> {
        if row >= self.rows || col >= self.cols || (img.width(), img.height()) != self.tile {
            return Err(Error::invalid(format!(
                "tile ({row}, {col}) of a {}×{} mosaic of {:?} tiles cannot take a {}×{} image",
                self.rows,
                self.cols,
                self.tile,
                img.width(),
                img.height()
            )));
        }
        self.tiles[row * self.cols + col] = Some(img.to_channels::<3>().to_u8());
        Ok(())
    }

    /// The untitled picture as PNG bytes (tiles enlarged, grey gaps).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let (width, height) = self.size();
        let mut rgb: Vec<u8> = BACKGROUND
            .iter()
            .copied()
            .cycle()
            .take(width * height * 3)
            .collect();
        for (i, bytes) in self.tiles.iter().enumerate() {
            let Some(bytes) = bytes else { continue };
            let (row, col) = (i / self.cols, i % self.cols);
            let (x0, y0) = (
                GAP + col * (self.tile.0 * self.scale + GAP),
                GAP + row * (self.tile.1 * self.scale + GAP),
            );
            for y in 0..self.tile.1 * self.scale {
                for x in 0..self.tile.0 * self.scale {
                    let src = 3 * ((y / self.scale) * self.tile.0 + x / self.scale);
                    let dst = 3 * ((y0 + y) * width + x0 + x);
                    rgb[dst..dst + 3].copy_from_slice(&bytes[src..src + 3]);
                }
            }
        }
        encode_png(&rgb, width, height, 3)
    }

    /// Writes the picture as a PNG file, atomically: with its titles
    /// through the core's image grid when it has them.
    pub fn write(&self, path: &Path) -> Result<()> {
        match self.grid() {
            Some(grid) => Ok(plot_image_grid(path, &grid)?),
            None => write_atomic(path, &self.to_png()?),
        }
    }

    /// The picture in memory, titled when it has titles: `(width, height,
    /// RGB bytes)`.
    pub fn to_rgb(&self) -> Result<(usize, usize, Vec<u8>)> {
        if let Some(grid) = self.grid() {
            let (w, h, rgb) = image_grid_rgb(&grid)?;
            return Ok((w as usize, h as usize, rgb));
        }
        let png = self.to_png()?;
        let img = image::load_from_memory(&png)
            .map_err(|e| Error::invalid(format!("cannot decode a mosaic: {e}")))?
            .to_rgb8();
        Ok((img.width() as usize, img.height() as usize, img.into_raw()))
    }

    /// The titled picture as the core's image grid (`None` without titles).
    fn grid(&self) -> Option<ImageGrid> {
        let t = self.titles.as_ref()?;
        let tiles = self
            .tiles
            .iter()
            .map(|bytes| {
                bytes.as_ref().map(|b| Tile {
                    width: self.tile.0,
                    height: self.tile.1,
                    rgb: b.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect(),
                })
            })
            .collect();
        Some(ImageGrid {
            title: t.title.clone(),
            row_titles: t.rows.clone(),
            column_titles: t.cols.clone(),
            tiles,
            colour_bar: self.colour_bar.clone(),
        })
    }
}

/// Encodes 8-bit grey (`channels = 1`) or RGB (`3`) pixels as PNG, in memory.
pub fn encode_png(bytes: &[u8], width: usize, height: usize, channels: usize) -> Result<Vec<u8>> {
    let colour = match channels {
        1 => ColorType::L8,
        3 => ColorType::Rgb8,
        _ => return Err(Error::invalid(format!("cannot encode {channels} channels"))),
    };
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(bytes, width as u32, height as u32, colour)
        .map_err(|e| Error::invalid(format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

/// Writes one image as a PNG file at its own resolution, atomically.
pub fn write_png<const V: usize>(path: &Path, img: &Image<V>) -> Result<()> {
    let channels = if V == 1 { 1 } else { 3 };
    let bytes = if V == 1 {
        img.to_u8()
    } else {
        img.to_channels::<3>().to_u8()
    };
    write_atomic(
        path,
        &encode_png(&bytes, img.width(), img.height(), channels)?,
    )
}

/// The core's colour map for uncertainty (black, red, yellow, white).
pub use pixel_transformer::plot::heat;
