//! The nearest-neighbour fill: the paper's visualisation of an observation
//! set (Fig. 4, row 2) and the simplest reconstruction baseline.

use pixel_transformer::{Error, Observations, Result};

use crate::Image;

/// A `width × height` image in which every pixel takes the value of the
/// observation closest to its centre.
///
/// Distances are measured in pixels (normalised offsets scaled by `W/2` and
/// `H/2`), so the fill is the Voronoi diagram of the observations on the
/// picture as shown, also for non-square images. On a tie the observation
/// that comes first in the set wins, so the result is deterministic.
/// Brute force, `O(W·H·|S|)`: 2 million distance checks for a 32×32 image at
/// `|S| = 2048`, a few milliseconds.
pub fn nearest_fill<const V: usize>(
    observed: &Observations<2, V>,
    width: usize,
    height: usize,
) -> Result<Image<V>> {
    observed.validate()?;
    if observed.is_empty() {
        return Err(Error::invalid(
            "the nearest-neighbour fill needs at least one observation",
        ));
    }
    let (sx, sy) = (width as f32 / 2.0, height as f32 / 2.0);
    let grid = pixel_transformer::Grid::new([width, height]);
    let pixels = (0..grid.len())
        .map(|i| {
            let p = grid.position(i);
            let mut best = (f32::INFINITY, 0);
            for (k, q) in observed.positions.iter().enumerate() {
                let (dx, dy) = ((p[0] - q[0]) * sx, (p[1] - q[1]) * sy);
                let d = dx * dx + dy * dy;
                if d < best.0 {
                    best = (d, k);
                }
            }
            observed.values[best.1]
        })
        .collect();
    Image::new(width, height, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pixel_takes_the_closest_observation() {
        // 4 × 4 image, centres at ±0.25, ±0.75. A on pixel (0, 0), B on pixel
        // (3, 2). In pixel units a pixel (i, j) is A's when i² + j² < (i − 3)² + (j − 2)².
        let s = Observations::from_pairs(vec![[-0.75, -0.75], [0.75, 0.25]], vec![[0.1], [0.9]])
            .unwrap();
        let img = nearest_fill(&s, 4, 4).unwrap();
        #[rustfmt::skip]
        let expected = [
            0.1, 0.1, 0.1, 0.9,
            0.1, 0.1, 0.9, 0.9,
            0.1, 0.9, 0.9, 0.9,
            0.1, 0.9, 0.9, 0.9,
        ];
        let got: Vec<f32> = img.pixels().iter().map(|p| p[0]).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn distances_are_measured_in_pixels_on_wide_images() {
        // 8 × 2: a pixel is 0.25 wide but 1.0 tall in normalised units. A sits
        // on pixel (3, 0), B on pixel (4, 1). Pixel (3, 1) is one pixel from
        // each: a tie, which goes to A (first); in normalised units B would be
        // four times closer.
        let s = Observations::from_pairs(vec![[-0.125, -0.5], [0.125, 0.5]], vec![[0.0], [1.0]])
            .unwrap();
        let img = nearest_fill(&s, 8, 2).unwrap();
        assert_eq!(img.pixel(3, 1), [0.0]);
        assert_eq!(img.pixel(4, 0), [0.0]);
        assert_eq!(img.pixel(5, 1), [1.0]);
    }

    #[test]
    fn ties_go_to_the_first_observation_and_empty_sets_are_refused() {
        // Two observations symmetric about the centre column line of a 2 × 1 image… and
        // a pixel exactly between them: 3 × 1, middle pixel at x = 0.
        let s = Observations::from_pairs(
            vec![[-2.0 / 3.0, 0.0], [2.0 / 3.0, 0.0]],
            vec![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
        )
        .unwrap();
        let img = nearest_fill(&s, 3, 1).unwrap();
        assert_eq!(
            img.pixels(),
            &[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
        );
        assert!(nearest_fill(&Observations::<2, 1>::new(), 3, 3).is_err());
    }
}
