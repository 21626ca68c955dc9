//! Augmentation: small random affine distortions of training images.
//!
//! With 8,000 MNIST digits the `small` model starts to overfit after about
//! 3.5 passes (its held-out loss rises while the training loss keeps
//! falling). Reading each training image through a slightly different
//! affine map each time makes the data set last longer. The distortions are
//! ones a digit could have been written with: shifts of a couple of
//! pixels, a tenth larger or smaller, a few degrees of slant. Positions are
//! mapped continuously, so the raster is sampled once, bilinearly, as
//! without augmentation (no resampled, blurred copy).

use rand::Rng;

use crate::raster::Warp;

/// Largest shift along each axis, in pixels.
pub const MAX_SHIFT_PIXELS: f32 = 2.0;
/// Largest relative change of size: images are scaled by `1 ± MAX_SCALE_CHANGE`.
pub const MAX_SCALE_CHANGE: f32 = 0.1;
/// Largest rotation, in degrees either way.
pub const MAX_ROTATION_DEGREES: f32 = 10.0;

/// A random distortion for a `size × size` image, drawn uniformly within the
/// limits above. It maps a position of the distorted image to the position
/// of the stored raster that is read there.
pub(crate) fn random_warp(size: usize, rng: &mut impl Rng) -> Warp {
    let scale = 1.0 + rng.gen_range(-MAX_SCALE_CHANGE..=MAX_SCALE_CHANGE);
    let angle = rng
        .gen_range(-MAX_ROTATION_DEGREES..=MAX_ROTATION_DEGREES)
        .to_radians();
    // One pixel is 2 / size in the [-1, 1] coordinates.
    let pixel = 2.0 / size as f32;
    let mut shift = || rng.gen_range(-MAX_SHIFT_PIXELS..=MAX_SHIFT_PIXELS) * pixel;
    let offset = [shift(), shift()];
    // Reading the raster at R(angle) · p / scale draws the image scaled by
    // `scale` and rotated by −angle about the centre.
    let (sin, cos) = angle.sin_cos();
    Warp {
        matrix: [[cos / scale, -sin / scale], [sin / scale, cos / scale]],
        offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn warps_are_rotations_and_scalings_within_their_limits() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (mut widest_angle, mut widest_scale, mut widest_shift) = (0f32, 0f32, 0f32);
        let pixel = 2.0 / 28.0;
        for _ in 0..2000 {
            let w = random_warp(28, &mut rng);
            let [[a, b], [c, d]] = w.matrix;
            // A rotation times a scale: [[a, −c], [c, a]].
            assert!((a - d).abs() < 1e-6 && (b + c).abs() < 1e-6, "{w:?}");
            let scale = 1.0 / (a * a + c * c).sqrt();
            let angle = c.atan2(a).to_degrees();
            let shift = w.offset.map(|o| (o / pixel).abs());
            assert!((scale - 1.0).abs() <= MAX_SCALE_CHANGE + 1e-5, "{scale}");
            assert!(angle.abs() <= MAX_ROTATION_DEGREES + 1e-3, "{angle}");
            assert!(
                shift.iter().all(|&s| s <= MAX_SHIFT_PIXELS + 1e-4),
                "{shift:?}"
            );
            widest_angle = widest_angle.max(angle.abs());
            widest_scale = widest_scale.max((scale - 1.0).abs());
            widest_shift = widest_shift.max(shift[0].max(shift[1]));
        }
        // ... and they use their whole range.
        assert!(widest_angle > 0.95 * MAX_ROTATION_DEGREES, "{widest_angle}");
        assert!(widest_scale > 0.95 * MAX_SCALE_CHANGE, "{widest_scale}");
        assert!(widest_shift > 0.95 * MAX_SHIFT_PIXELS, "{widest_shift}");
    }
}
