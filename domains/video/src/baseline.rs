//! The nearest-neighbour fill in space-time: the visualisation of an
//! observation set and the baseline the mean video is scored against.

use pixel_transformer::{Error, Grid, Observations, Result};

use crate::Clip;

/// A `width × height × frames` clip in which every voxel takes the value of
/// the observation closest to its centre.
///
/// Distances are measured in voxels: normalised offsets are scaled by
/// `W/2`, `H/2` and `T/2`, so one frame apart counts as much as one pixel
/// apart, whatever the clip's shape. Ties go to the observation that comes
/// first in the set. Brute force, `O(W·H·T·|S|)`: 34 million distance checks
/// for a 32 × 32 × 16 clip at `|S| = 2048`, a few tens of milliseconds.
pub fn nearest_fill<const V: usize>(
    observed: &Observations<3, V>,
    width: usize,
    height: usize,
    frames: usize,
) -> Result<Clip<V>> {
    observed.validate()?;
    if observed.is_empty() {
        return Err(Error::invalid(
            "the nearest-neighbour fill needs at least one observation",
        ));
    }
    let scale = [width as f32 / 2.0, height as f32 / 2.0, frames as f32 / 2.0];
    let scaled: Vec<[f32; 3]> = observed
        .positions
        .iter()
        .map(|p| std::array::from_fn(|a| p[a] * scale[a]))
        .collect();
    let grid = Grid::new([width, height, frames]);
    let voxels = (0..grid.len())
        .map(|i| {
            let p = grid.position(i);
            let p: [f32; 3] = std::array::from_fn(|a| p[a] * scale[a]);
            let mut best = (f32::INFINITY, 0);
            for (k, q) in scaled.iter().enumerate() {
                let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2);
                if d < best.0 {
                    best = (d, k);
                }
            }
            observed.values[best.1]
        })
        .collect();
    Clip::from_voxels(width, height, frames, voxels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_voxel_takes_the_closest_observation_in_voxel_units() {
        // 4 × 1 pixels × 8 frames: a voxel is 0.5 wide but 0.25 long in
        // normalised units. A on voxel (x 0, t 0), B on voxel (x 3, t 2).
        // Voxel (x 1, t 2): A is √(1 + 4), B is 2 voxels away → B, although
        // in normalised units A (√(0.25 + 0.25)) would be closer than B (1.0).
        let g = Grid::new([4, 1, 8]);
        let s = Observations::from_pairs(
            vec![g.position(0), g.position(3 + 2 * 4)],
            vec![[0.0], [1.0]],
        )
        .unwrap();
        let clip = nearest_fill(&s, 4, 1, 8).unwrap();
        let v = clip.voxels();
        assert_eq!(v[1 + 2 * 4], [1.0]);
        assert_eq!(v[0], [0.0]);
        assert_eq!(v[1], [0.0]);
        assert_eq!(v[3 + 7 * 4], [1.0]);
        assert!(nearest_fill(&Observations::<3, 1>::new(), 2, 2, 2).is_err());
    }
}
