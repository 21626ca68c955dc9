//! A procedural colour data set that needs no download: two or three
//! coloured discs and rectangles on a linear gradient background.
//!
//! It exists so the colour (V = 3) path is exercised anywhere, tests
//! included. It is easy enough to learn in minutes on a CPU yet has what
//! the model must learn on real images: smooth regions, sharp edges,
//! occlusion (later shapes cover earlier ones) and colour correlations.
//! Every image is a pure function of its random stream.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Image;

/// Seed of the fixed test images (training images are drawn fresh).
pub const TEST_SEED: u64 = 0x5a4e_7e57;
/// Number of distinct test images.
pub const TEST_IMAGES: usize = 1000;

/// One shape, in normalised coordinates.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Disc { centre: [f32; 2], radius: f32 },
    Rect { centre: [f32; 2], half: [f32; 2] },
}

impl Shape {
    fn contains(&self, p: [f32; 2]) -> bool {
        match *self {
            Shape::Disc { centre, radius } => {
                let (dx, dy) = (p[0] - centre[0], p[1] - centre[1]);
                dx * dx + dy * dy <= radius * radius
            }
            Shape::Rect { centre, half } => {
                (p[0] - centre[0]).abs() <= half[0] && (p[1] - centre[1]).abs() <= half[1]
            }
        }
    }
}

fn colour(rng: &mut impl Rng) -> [f32; 3] {
    std::array::from_fn(|_| rng.gen::<f32>())
}

/// Draws one `size × size` image from `rng`.
pub fn draw(size: usize, rng: &mut impl Rng) -> Image<3> {
    let size = size.max(1);
    // Background: a gradient between two muted colours along a random direction.
    let (c0, c1) = (colour(rng), colour(rng));
    let (c0, c1) = (c0.map(|c| 0.2 + 0.6 * c), c1.map(|c| 0.2 + 0.6 * c));
    let angle = rng.gen_range(0.0..std::f32::consts::TAU);
    let dir = [angle.cos(), angle.sin()];
    let count = rng.gen_range(2..=3);
    let shapes: Vec<(Shape, [f32; 3])> = (0..count)
        .map(|_| {
            let centre = [rng.gen_range(-0.7..0.7), rng.gen_range(-0.7..0.7)];
            let shape = if rng.gen_bool(0.5) {
                Shape::Disc {
                    centre,
                    radius: rng.gen_range(0.15..0.4),
                }
            } else {
                Shape::Rect {
                    centre,
                    half: [rng.gen_range(0.12..0.4), rng.gen_range(0.12..0.4)],
                }
            };
            (shape, colour(rng))
        })
        .collect();
    let grid = pixel_transformer::Grid::new([size, size]);
    let pixels = grid
        .positions()
        .into_iter()
        .map(|p| {
            // Projection on the direction, mapped from [-√2, √2] to [0, 1].
            let t = ((p[0] * dir[0] + p[1] * dir[1]) / std::f32::consts::SQRT_2 + 1.0) * 0.5;
            let mut v: [f32; 3] = std::array::from_fn(|k| c0[k] + (c1[k] - c0[k]) * t);
            for (shape, c) in &shapes {
                if shape.contains(p) {
                    v = *c;
                }
            }
            v
        })
        .collect();
    Image::new(size, size, pixels).expect("a procedural image has size² finite pixels")
}

/// Test image `index` (a pure function of `size` and `index`).
pub fn test_image(size: usize, index: usize) -> Image<3> {
    let mut rng = ChaCha8Rng::seed_from_u64(TEST_SEED);
    rng.set_stream(index as u64);
    draw(size, &mut rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_image_and_others_differ() {
        let a = draw(16, &mut ChaCha8Rng::seed_from_u64(3));
        let b = draw(16, &mut ChaCha8Rng::seed_from_u64(3));
        let c = draw(16, &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(test_image(32, 7), test_image(32, 7));
        assert_ne!(test_image(32, 7), test_image(32, 8));
        assert!(a.pixels().iter().flatten().all(|v| (0.0..=1.0).contains(v)));
        // Colour: the three channels are not all equal (not grey).
        assert!(a.pixels().iter().any(|p| p[0] != p[1] || p[1] != p[2]));
    }
}
