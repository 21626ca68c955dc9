//! Video output: animated GIFs of clips side by side, and PNG frame strips.
//!
//! Tiles are laid out with the image domain's [`Mosaic`] (integer
//! enlargement, grey gaps), one mosaic per frame; a GIF plays those
//! pictures in a loop and a strip lays a clip's frames out left to right.

use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbImage, RgbaImage};
use pixel_transformer::{io::write_atomic, Error, Result};
use pixel_transformer_image::figure::Mosaic;

use crate::Clip;

/// Display time of one frame in the GIFs (8 frames a second).
pub const FRAME_DELAY_MS: u32 = 125;
/// Quantisation effort of the GIF encoder, 1 (best, slowest) to 30: the
/// pictures are mostly grey levels, which even fast quantisation keeps.
const GIF_SPEED: i32 = 10;

/// Titles for the pictures of [`side_by_side`]: one per row and column;
/// each frame's title says which frame it is.
#[derive(Debug, Clone, Default)]
pub struct Titles {
    /// What the clips show, before `frame k of T`.
    pub title: String,
    /// One per row.
    pub rows: Vec<String>,
    /// One per column.
    pub cols: Vec<String>,
}

/// Lays out `rows` of clips (all of one size and length) side by side and
/// returns one picture per frame, titled when `titles` is given.
pub fn side_by_side<const V: usize>(
    rows: &[Vec<&Clip<V>>],
    titles: Option<&Titles>,
) -> Result<Vec<RgbImage>> {
    let first = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| Error::invalid("nothing to lay out"))?;
    let (w, h, t) = (first.width(), first.height(), first.len());
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut pictures = Vec::with_capacity(t);
    for k in 0..t {
        let mut mosaic = Mosaic::new(rows.len(), cols, w, h);
        for (r, row) in rows.iter().enumerate() {
            for (c, clip) in row.iter().enumerate() {
                if clip.len() != t {
                    return Err(Error::invalid(format!(
                        "clip ({r}, {c}) has {} frames, the first has {t}",
                        clip.len()
                    )));
                }
                mosaic.put(r, c, &clip.frames()[k])?;
            }
        }
        if let Some(names) = titles {
            let title = format!("{} · frame {} of {t}", names.title, k + 1);
            mosaic = mosaic.titled(title, names.rows.clone(), names.cols.clone())?;
        }
        pictures.push(to_rgb(&mosaic)?);
    }
    Ok(pictures)
}

/// A clip's frames left to right, one row per clip: a still "film strip".
pub fn frame_strip<const V: usize>(clips: &[&Clip<V>]) -> Result<Mosaic> {
    let first = clips
        .first()
        .ok_or_else(|| Error::invalid("nothing to lay out"))?;
    let (w, h, t) = (first.width(), first.height(), first.len());
    let mut mosaic = Mosaic::new(clips.len(), t, w, h);
    for (r, clip) in clips.iter().enumerate() {
        for (k, frame) in clip.frames().iter().enumerate() {
            mosaic.put(r, k, frame)?;
        }
    }
    Ok(mosaic)
}

/// The mosaic's pixels.
fn to_rgb(mosaic: &Mosaic) -> Result<RgbImage> {
    let (w, h, rgb) = mosaic.to_rgb()?;
    RgbImage::from_raw(w as u32, h as u32, rgb)
        .ok_or_else(|| Error::invalid("a mosaic's pixels do not fill its size"))
}

/// Encodes pictures of one size as a looping animated GIF, in memory.
pub fn encode_gif(pictures: &[RgbImage], delay_ms: u32) -> Result<Vec<u8>> {
    let first = pictures
        .first()
        .ok_or_else(|| Error::invalid("a GIF needs at least one frame"))?;
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, GIF_SPEED);
        let fail = |e: image::ImageError| Error::invalid(format!("GIF encoding failed: {e}"));
        encoder.set_repeat(Repeat::Infinite).map_err(fail)?;
        for p in pictures {
            if p.dimensions() != first.dimensions() {
                return Err(Error::invalid("GIF frames must all have one size"));
            }
            let rgba = RgbaImage::from_fn(p.width(), p.height(), |x, y| {
                let [r, g, b] = p.get_pixel(x, y).0;
                image::Rgba([r, g, b, 255])
            });
            let delay = Delay::from_numer_denom_ms(delay_ms, 1);
            encoder
                .encode_frame(Frame::from_parts(rgba, 0, 0, delay))
                .map_err(fail)?;
        }
    }
    Ok(out)
}

/// Writes pictures as a looping animated GIF, atomically.
pub fn write_gif(path: &Path, pictures: &[RgbImage], delay_ms: u32) -> Result<()> {
    write_atomic(path, &encode_gif(pictures, delay_ms)?)
}
