//! The clip type: `T` frames of `H × W` pixels that is also a continuous
//! 3-D signal over `(x, y, t)`.

use pixel_transformer::{Error, Grid, Result, SpatialSignal};
use pixel_transformer_image::Image;

/// Distance (in frames) within which a time coordinate counts as a frame centre.
const SNAP: f32 = 1e-4;

/// A video clip: `frames` images of one size, values in `[0, 1]`.
///
/// As a [`SpatialSignal`] over `P = 3` it is sampled trilinearly: bilinearly
/// inside each frame (the image domain's [`Image`] sampling) and linearly
/// between the two frames around `t`. Every axis follows the pixel-centre
/// convention of [`Grid`]: column `i` at `x = −1 + (2i + 1)/W`, row `j` at
/// `y = −1 + (2j + 1)/H`, frame `k` at `t = −1 + (2k + 1)/T`, and positions
/// beyond the outermost centres take the border value.
///
/// Voxel `i` of [`Clip::voxels`] sits at `Grid::new([W, H, T]).position(i)`:
/// x fastest, then y, then t, i.e. frame after frame, each row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip<const V: usize> {
    frames: Vec<Image<V>>,
}

impl<const V: usize> Clip<V> {
    /// A clip from its frames; refuses an empty clip and frames of different sizes.
    pub fn new(frames: Vec<Image<V>>) -> Result<Self> {
        let first = frames
            .first()
            .ok_or_else(|| Error::invalid("a clip needs at least one frame"))?;
        let size = (first.width(), first.height());
        if let Some((k, f)) = frames
            .iter()
            .enumerate()
            .find(|(_, f)| (f.width(), f.height()) != size)
        {
            return Err(Error::invalid(format!(
                "frame {k} is {}×{}, but frame 0 is {}×{}",
                f.width(),
                f.height(),
                size.0,
                size.1
            )));
        }
        Ok(Self { frames })
    }

    /// A clip from voxels in [`Grid`] order (x fastest, then y, then t).
    pub fn from_voxels(
        width: usize,
        height: usize,
        frames: usize,
        voxels: Vec<[f32; V]>,
    ) -> Result<Self> {
        let per_frame = width.saturating_mul(height);
        if frames == 0 || per_frame.checked_mul(frames) != Some(voxels.len()) {
            return Err(Error::invalid(format!(
                "a {width}×{height}×{frames} clip needs {} voxels, got {}",
                per_frame.saturating_mul(frames),
                voxels.len()
            )));
        }
        let frames = voxels
            .chunks_exact(per_frame.max(1))
            .map(|px| Image::new(width, height, px.to_vec()))
            .collect::<Result<Vec<_>>>()?;
        Self::new(frames)
    }

    /// Frame width in pixels.
    pub fn width(&self) -> usize {
        self.frames[0].width()
    }

    /// Frame height in pixels.
    pub fn height(&self) -> usize {
        self.frames[0].height()
    }

    /// Number of frames `T`.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Always false: a clip has at least one frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames in time order.
    pub fn frames(&self) -> &[Image<V>] {
        &self.frames
    }

    /// The space-time grid of voxel centres, `[W, H, T]`.
    pub fn grid(&self) -> Grid<3> {
        Grid::new([self.width(), self.height(), self.len()])
    }

    /// All voxels in [`Grid`] order (x fastest, then y, then t).
    pub fn voxels(&self) -> Vec<[f32; V]> {
        self.frames
            .iter()
            .flat_map(|f| f.pixels().iter().copied())
            .collect()
    }
}

/// The two frames around time coordinate `t` of a clip of `n` frames and
/// the weight of the second (clamped to the outermost frame centres).
fn time_weights(t: f32, n: usize) -> (usize, usize, f32) {
    let u = ((t + 1.0) * n as f32 - 1.0) * 0.5;
    // As for pixels: `−1 + (2k + 1)/T` and back is a few ulps off `k`, and a
    // frame centre must give that frame exactly, not a 1e-7 blend.
    let u = if (u - u.round()).abs() < SNAP {
        u.round()
    } else {
        u
    };
    let u = u.clamp(0.0, (n - 1) as f32);
    let k0 = (u.floor() as usize).min(n - 1);
    let k1 = (k0 + 1).min(n - 1);
    (k0, k1, u - k0 as f32)
}

impl<const V: usize> SpatialSignal<3, V> for Clip<V> {
    fn value_at(&self, position: [f32; 3]) -> [f32; V] {
        let [x, y, t] = position.map(|c| if c.is_finite() { c } else { 0.0 });
        let (k0, k1, w) = time_weights(t, self.len());
        let a = self.frames[k0].value_at([x, y]);
        if w == 0.0 {
            return a;
        }
        let b = self.frames[k1].value_at([x, y]);
        std::array::from_fn(|c| a[c] + (b[c] - a[c]) * w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 × 2 pixels × 4 frames, value = column + 10 · row + 100 · frame.
    fn ramp() -> Clip<1> {
        let voxels = (0..24)
            .map(|i| [(i % 3) as f32 + 10.0 * ((i / 3) % 2) as f32 + 100.0 * (i / 6) as f32])
            .collect();
        Clip::from_voxels(3, 2, 4, voxels).unwrap()
    }

    #[test]
    fn trilinear_sampling_is_exact_at_voxel_centres() {
        let clip = ramp();
        let voxels = clip.voxels();
        for (i, p) in clip.grid().positions().iter().enumerate() {
            assert_eq!(clip.value_at(*p), voxels[i], "voxel {i} at {p:?}");
        }
        // Explicit convention check: column 2, row 1, frame 3 of a 3 × 2 × 4 clip.
        assert_eq!(clip.value_at([2.0 / 3.0, 0.5, 0.75]), [312.0]);
    }

    #[test]
    fn trilinear_sampling_interpolates_in_time_and_space_and_clamps() {
        let clip = ramp();
        // Halfway between frames 1 and 2 (t = 0), on pixel (0, 0).
        let v = clip.value_at([-2.0 / 3.0, -0.5, 0.0])[0];
        assert!((v - 150.0).abs() < 1e-4, "{v}");
        // The centre of the 2 × 2 × 2 cube between columns 0–1, rows 0–1, frames 1–2.
        let v = clip.value_at([-1.0 / 3.0, 0.0, 0.0])[0];
        assert!((v - 155.5).abs() < 1e-4, "{v}");
        // A quarter of the way from frame 0 to frame 1.
        let v = clip.value_at([-2.0 / 3.0, -0.5, -0.75 + 0.125])[0];
        assert!((v - 25.0).abs() < 1e-4, "{v}");
        // Outside the centres: the border frame.
        assert_eq!(clip.value_at([-1.0, -1.0, -1.0]), [0.0]);
        assert_eq!(clip.value_at([1.0, 1.0, 5.0]), [312.0]);
        assert_eq!(clip.value_at([f32::NAN, 0.0, 0.0]).len(), 1);
    }

    #[test]
    fn construction_checks_sizes() {
        assert!(Clip::<1>::new(vec![]).is_err());
        let a = Image::<1>::filled(2, 2, [0.0]).unwrap();
        let b = Image::<1>::filled(3, 2, [0.0]).unwrap();
        let err = Clip::new(vec![a.clone(), b]).unwrap_err().to_string();
        assert!(err.contains("frame 1 is 3×2"), "{err}");
        assert!(Clip::<1>::from_voxels(2, 2, 2, vec![[0.0]; 7]).is_err());
        assert!(Clip::<1>::from_voxels(2, 2, 0, vec![]).is_err());
        assert_eq!(Clip::new(vec![a; 5]).unwrap().len(), 5);
    }
}
