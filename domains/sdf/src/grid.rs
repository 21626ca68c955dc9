//! Dense SDF grids: `D × H × W` signed distances over `[-1, 1]³`, sampled trilinearly.

use pixel_transformer::{Error, Grid, Result, SpatialSignal};

/// Largest accepted side of a grid: a 256³ grid of `f32` is already 64 MiB.
pub const MAX_SIDE: usize = 256;

/// A signed distance field stored on a regular grid.
///
/// Values follow the core's [`Grid`] convention: sample `(x, y, z)` sits at
/// the centre of cell `(x, y, z)`, `−1 + (2i + 1)/n` on each axis, and the
/// data are stored with x varying fastest (a C-order NumPy array of shape
/// `(D, H, W)` indexed `[z][y][x]`). Negative values are inside the shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SdfGrid {
    shape: [usize; 3],
    values: Vec<f32>,
}

impl SdfGrid {
    /// A grid with `shape = [W, H, D]` cells (x, y, z) and `W·H·D` finite values, x fastest.
    pub fn new(shape: [usize; 3], values: Vec<f32>) -> Result<Self> {
        if shape.iter().any(|&n| !(2..=MAX_SIDE).contains(&n)) {
            return Err(Error::invalid(format!(
                "an SDF grid needs 2 to {MAX_SIDE} samples per axis, got {shape:?}"
            )));
        }
        let len: usize = shape.iter().product();
        if values.len() != len {
            return Err(Error::invalid(format!(
                "an SDF grid of shape {shape:?} needs {len} values, got {}",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "SDF grid value {i} is not finite: {}",
                values[i]
            )));
        }
        Ok(Self { shape, values })
    }

    /// Evaluates `signal` at every cell centre of a `shape` grid.
    pub fn from_signal<S: SpatialSignal<3, 1> + ?Sized + Sync>(
        signal: &S,
        shape: [usize; 3],
    ) -> Result<Self> {
        let grid = Grid::new(shape);
        let values = grid
            .positions()
            .iter()
            .map(|&p| signal.value_at(p)[0])
            .collect();
        Self::new(shape, values)
    }

    /// Cells along x, y and z.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// All values, x fastest.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The core grid with the same cells (its positions are this grid's sample points).
    pub fn grid(&self) -> Grid<3> {
        Grid::new(self.shape)
    }

    /// Flat index of cell `(x, y, z)`.
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        (z * self.shape[1] + y) * self.shape[0] + x
    }

    /// The value stored at cell `(x, y, z)`.
    pub fn at(&self, x: usize, y: usize, z: usize) -> f32 {
        self.values[self.index(x, y, z)]
    }

    /// The normalised position of cell `(x, y, z)`'s sample.
    pub fn position(&self, x: usize, y: usize, z: usize) -> [f32; 3] {
        [
            Grid::<3>::centre(x, self.shape[0]),
            Grid::<3>::centre(y, self.shape[1]),
            Grid::<3>::centre(z, self.shape[2]),
        ]
    }
}

/// Continuous cell coordinate of normalised `p` on an axis of `n` cells,
/// clamped to the sample range (the field is held constant beyond the outermost samples).
fn cell_coordinate(p: f32, n: usize) -> (usize, f32) {
    let u = ((p + 1.0) * n as f32 - 1.0) / 2.0;
    let u = u.clamp(0.0, (n - 1) as f32);
    let i = (u.floor() as usize).min(n - 2);
    (i, u - i as f32)
}

impl SpatialSignal<3, 1> for SdfGrid {
    /// Trilinear interpolation of the eight surrounding samples.
    fn value_at(&self, p: [f32; 3]) -> [f32; 1] {
        let (x, fx) = cell_coordinate(p[0], self.shape[0]);
        let (y, fy) = cell_coordinate(p[1], self.shape[1]);
        let (z, fz) = cell_coordinate(p[2], self.shape[2]);
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let plane = |z: usize| {
            let row = |y: usize| lerp(self.at(x, y, z), self.at(x + 1, y, z), fx);
            lerp(row(y), row(y + 1), fy)
        };
        [lerp(plane(z), plane(z + 1), fz)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trilinear_sampling_is_exact_on_linear_fields_and_at_samples() {
        let shape = [4, 5, 6];
        struct Linear;
        impl SpatialSignal<3, 1> for Linear {
            fn value_at(&self, p: [f32; 3]) -> [f32; 1] {
                [0.3 * p[0] - 0.7 * p[1] + 0.2 * p[2] + 0.1]
            }
        }
        let f = |p: [f32; 3]| Linear.value_at(p)[0];
        let g = SdfGrid::from_signal(&Linear, shape).unwrap();
        assert_eq!(g.at(1, 2, 3), f(g.position(1, 2, 3)));
        for p in [[0.1, -0.2, 0.33], [0.6, 0.5, -0.55], [-0.7, 0.0, 0.0]] {
            assert!((g.value_at(p)[0] - f(p)).abs() < 1e-5, "{p:?}");
        }
    }

    #[test]
    fn bad_shapes_and_values_are_refused() {
        assert!(SdfGrid::new([1, 2, 2], vec![0.0; 4]).is_err());
        assert!(SdfGrid::new([2, 2, 2], vec![0.0; 7]).is_err());
        let mut v = vec![0.0; 8];
        v[3] = f32::NAN;
        assert!(SdfGrid::new([2, 2, 2], v).is_err());
    }
}
