//! The image type: a pixel grid that is also a continuous 2-D signal.

use pixel_transformer::{Error, Grid, Result, SpatialSignal};

/// A `height × width` image with `V` channels (1 = grey, 3 = RGB), values in `[0, 1]`.
///
/// Pixels are stored row by row, channels interleaved, which is also the
/// order of [`Grid::positions`] for a `[width, height]` grid: pixel `i` of
/// [`Image::pixels`] sits at `Grid::new([width, height]).position(i)`.
///
/// As a [`SpatialSignal`] it is sampled bilinearly: the paper treats
/// positions as continuous so that the model never depends on the
/// resolution. Pixel `(column i, row j)` has its centre at
/// `(−1 + (2i + 1)/W, −1 + (2j + 1)/H)`; x is the column, y the row.
/// Positions beyond the outermost centres take the border value (clamping),
/// so the half-pixel rim of `[-1, 1]²` repeats the edge pixels rather than
/// fading to black.
///
/// A training image drawn with augmentation (`--augment`) also carries a
/// small affine map that [`SpatialSignal::value_at`] applies to the
/// position before sampling: the signal is the stored raster, slightly
/// shifted, scaled and rotated. [`Image::pixels`] is always the stored
/// raster.
#[derive(Debug, Clone, PartialEq)]
pub struct Image<const V: usize> {
    width: usize,
    height: usize,
    pixels: Vec<[f32; V]>,
    warp: Option<Warp>,
}

/// An affine map of positions, `p ↦ matrix · p + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Warp {
    pub(crate) matrix: [[f32; 2]; 2],
    pub(crate) offset: [f32; 2],
}

impl Warp {
    fn apply(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let [[a, b], [c, d]] = self.matrix;
        [
            a * x + b * y + self.offset[0],
            c * x + d * y + self.offset[1],
        ]
    }
}

impl<const V: usize> Image<V> {
    /// An image from row-major pixels; refuses a wrong count, an empty
    /// image, and values that are not finite.
    pub fn new(width: usize, height: usize, pixels: Vec<[f32; V]>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid(format!(
                "an image needs at least one pixel, got {width}×{height}"
            )));
        }
        if width.checked_mul(height) != Some(pixels.len()) {
            return Err(Error::invalid(format!(
                "a {width}×{height} image needs {} pixels, got {}",
                width.saturating_mul(height),
                pixels.len()
            )));
        }
        if pixels.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::invalid("image values must be finite"));
        }
        Ok(Self {
            width,
            height,
            pixels,
            warp: None,
        })
    }

    /// The same raster, read through `warp` (see the type's documentation).
    pub(crate) fn warped(self, warp: Warp) -> Self {
        Self {
            warp: Some(warp),
            ..self
        }
    }

    /// An image of one colour.
    pub fn filled(width: usize, height: usize, value: [f32; V]) -> Result<Self> {
        Self::new(width, height, vec![value; width.saturating_mul(height)])
    }

    /// An image from 8-bit samples with `channels` (1 or 3) interleaved
    /// channels, converted to `V` channels: grey is repeated into RGB, and
    /// RGB becomes grey with the ITU-R 601 luma weights (as PIL and OpenCV
    /// convert to grey), so any data set can feed a grey or a colour model.
    pub fn from_u8(width: usize, height: usize, channels: usize, bytes: &[u8]) -> Result<Self> {
        if !matches!(channels, 1 | 3) || !matches!(V, 1 | 3) {
            return Err(Error::invalid(format!(
                "only grey (1) and RGB (3) channels are supported, got {channels} → {V}"
            )));
        }
        let n = width.saturating_mul(height);
        if n.checked_mul(channels) != Some(bytes.len()) {
            return Err(Error::invalid(format!(
                "a {width}×{height}×{channels} image needs {} bytes, got {}",
                n.saturating_mul(channels),
                bytes.len()
            )));
        }
        let pixels = bytes
            .chunks_exact(channels)
            .map(|px| {
                let f: Vec<f32> = px.iter().map(|&b| b as f32 / 255.0).collect();
                convert_channels::<V>(&f)
            })
            .collect();
        Self::new(width, height, pixels)
    }

    /// Width in pixels (columns).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels (rows).
    pub fn height(&self) -> usize {
        self.height
    }

    /// All pixels, row by row: the stored raster (an augmented training
    /// image's [`SpatialSignal::value_at`] reads it through a distortion).
    pub fn pixels(&self) -> &[[f32; V]] {
        &self.pixels
    }

    /// The pixel in column `x`, row `y` (panics outside the image, like slice indexing).
    pub fn pixel(&self, x: usize, y: usize) -> [f32; V] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) outside"
        );
        self.pixels[y * self.width + x]
    }

    /// The grid of pixel centres (x = column fastest), matching [`Image::pixels`].
    pub fn grid(&self) -> Grid<2> {
        Grid::new([self.width, self.height])
    }

    /// The 8-bit samples, `V` per pixel, values clamped to `[0, 1]` and rounded.
    pub fn to_u8(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .flatten()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect()
    }

    /// The same image with `W` channels (grey ↔ RGB as in [`Image::from_u8`]).
    pub fn to_channels<const W: usize>(&self) -> Image<W> {
        Image {
            width: self.width,
            height: self.height,
            pixels: self
                .pixels
                .iter()
                .map(|p| convert_channels::<W>(p))
                .collect(),
            warp: self.warp,
        }
    }
}

/// Grey ↔ RGB conversion of one pixel (other channel counts keep what fits).
fn convert_channels<const W: usize>(p: &[f32]) -> [f32; W] {
    match (p.len(), W) {
        (1, _) => [p[0]; W],
        (3, 1) => [0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; W],
        _ => std::array::from_fn(|i| p.get(i).copied().unwrap_or(0.0)),
    }
}

/// Distance (in pixels) within which a position counts as a pixel centre.
const SNAP: f32 = 1e-4;

/// Maps a normalised coordinate to the continuous pixel index along an axis of
/// `n` pixels (centre `i` ↦ `i`), clamped to the outermost centres, and
/// returns the two neighbouring indices with the weight of the second.
fn axis_weights(coordinate: f32, n: usize) -> (usize, usize, f32) {
    let u = ((coordinate + 1.0) * n as f32 - 1.0) * 0.5;
    // f32 rounding in `-1 + (2i + 1)/n` and back leaves centres a few ulps
    // off their index; snapping makes sampling at a centre return the
    // stored pixel exactly instead of a 1e-7 blend with its neighbour.
    let u = if (u - u.round()).abs() < SNAP {
        u.round()
    } else {
        u
    };
    let u = u.clamp(0.0, (n - 1) as f32);
    let i0 = (u.floor() as usize).min(n - 1);
    let i1 = (i0 + 1).min(n - 1);
    (i0, i1, u - i0 as f32)
}

impl<const V: usize> SpatialSignal<2, V> for Image<V> {
    fn value_at(&self, position: [f32; 2]) -> [f32; V] {
        // NaN coordinates would otherwise index pixel 0 silently; the core
        // validates positions, but a signal must not panic either way.
        let position = match &self.warp {
            Some(w) => w.apply(position),
            None => position,
        };
        let [x, y] = position.map(|c| if c.is_finite() { c } else { 0.0 });
        let (x0, x1, tx) = axis_weights(x, self.width);
        let (y0, y1, ty) = axis_weights(y, self.height);
        let at = |xx: usize, yy: usize| &self.pixels[yy * self.width + xx];
        let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
        std::array::from_fn(|k| {
            let top = a[k] + (b[k] - a[k]) * tx;
            let bottom = c[k] + (d[k] - c[k]) * tx;
            top + (bottom - top) * ty
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Image<1> {
        // 4 × 3, value = column + 10 · row.
        let pixels = (0..12)
            .map(|i| [(i % 4) as f32 + 10.0 * (i / 4) as f32])
            .collect();
        Image::new(4, 3, pixels).unwrap()
    }

    #[test]
    fn bilinear_sampling_is_exact_at_pixel_centres() {
        let img = ramp();
        for (i, p) in img.grid().positions().iter().enumerate() {
            assert_eq!(img.value_at(*p), img.pixels()[i], "pixel {i} at {p:?}");
        }
        // Explicit convention check: column 2, row 1 of a 4 × 3 image.
        assert_eq!(img.value_at([0.25, 0.0]), [12.0]);
    }

    #[test]
    fn a_warped_image_reads_its_raster_through_the_warp() {
        // Shift right by one column (2/4 in x) and swap nothing else: pixel
        // (column i, row j) of the warped image shows column i + 1.
        let shifted = ramp().warped(Warp {
            matrix: [[1.0, 0.0], [0.0, 1.0]],
            offset: [0.5, 0.0],
        });
        assert_eq!(shifted.value_at([-0.25, 0.0]), [12.0]);
        assert_eq!(shifted.pixels(), ramp().pixels());
        // A half turn about the centre reads the opposite pixel.
        let turned = ramp().warped(Warp {
            matrix: [[-1.0, 0.0], [0.0, -1.0]],
            offset: [0.0, 0.0],
        });
        let (grid, img) = (ramp().grid(), ramp());
        for i in 0..12 {
            let v = turned.value_at(grid.position(i))[0];
            assert!((v - img.pixels()[11 - i][0]).abs() < 1e-5, "pixel {i}: {v}");
        }
        // Converting channels keeps the warp.
        assert_eq!(shifted.to_channels::<3>().value_at([-0.25, 0.0]), [12.0; 3]);
    }

    #[test]
    fn bilinear_sampling_interpolates_between_centres_and_clamps_outside() {
        let img = ramp();
        // Halfway between columns 1 and 2 (x = 0), on row 0 (y = −2/3).
        let v = img.value_at([0.0, -2.0 / 3.0])[0];
        assert!((v - 1.5).abs() < 1e-5, "{v}");
        // Halfway between rows 0 and 1 on column 0.
        let v = img.value_at([-0.75, -1.0 / 3.0])[0];
        assert!((v - 5.0).abs() < 1e-5, "{v}");
        // The centre of four pixels (columns 1–2, rows 0–1).
        let v = img.value_at([0.0, -1.0 / 3.0])[0];
        assert!((v - 6.5).abs() < 1e-5, "{v}");
        // A quarter of the way from column 0 to column 1.
        let v = img.value_at([-0.75 + 0.125, -2.0 / 3.0])[0];
        assert!((v - 0.25).abs() < 1e-5, "{v}");
        // Outside the centres: the border value.
        assert_eq!(img.value_at([-1.0, -1.0]), [0.0]);
        assert_eq!(img.value_at([1.0, 1.0]), [23.0]);
        assert_eq!(img.value_at([5.0, -7.0]), [3.0]);
        assert_eq!(img.value_at([f32::NAN, 0.0]).len(), 1);
    }

    #[test]
    fn one_pixel_images_are_constant() {
        let img = Image::new(1, 1, vec![[0.5, 0.25, 1.0]]).unwrap();
        assert_eq!(img.value_at([0.3, -0.9]), [0.5, 0.25, 1.0]);
    }

    #[test]
    fn construction_checks_sizes_and_values() {
        assert!(Image::<1>::new(2, 2, vec![[0.0]; 3]).is_err());
        assert!(Image::<1>::new(0, 2, vec![]).is_err());
        assert!(Image::<1>::new(1, 1, vec![[f32::NAN]]).is_err());
        assert!(Image::<3>::from_u8(1, 1, 3, &[255, 0, 0]).is_ok());
        assert!(Image::<3>::from_u8(1, 1, 3, &[255, 0]).is_err());
        assert!(Image::<3>::from_u8(1, 1, 2, &[255, 0]).is_err());
    }

    #[test]
    fn grey_and_colour_convert_both_ways() {
        let grey = Image::<1>::from_u8(2, 1, 1, &[0, 255]).unwrap();
        let rgb: Image<3> = grey.to_channels();
        assert_eq!(rgb.pixels(), &[[0.0; 3], [1.0; 3]]);
        let red = Image::<1>::from_u8(1, 1, 3, &[255, 0, 0]).unwrap();
        assert!((red.pixels()[0][0] - 0.299).abs() < 1e-6);
        assert_eq!(rgb.to_u8(), vec![0, 0, 0, 255, 255, 255]);
    }
}
