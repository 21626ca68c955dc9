//! Moving MNIST (Srivastava et al., 2015), generated from the real MNIST
//! digits embedded in the image crate: no download.
//!
//! Each clip shows one or two digits moving in straight lines and bouncing
//! off the frame's edges. As in the standard 64 × 64 benchmark, a digit
//! takes 28/64 of the frame side (14 pixels at the default 32 × 32), starts
//! anywhere inside the frame with a random direction and a speed of 2–4
//! pixels per frame at 64 pixels (scaled with the frame), and overlapping
//! digits combine by their maximum. Digit positions are kept as real numbers
//! and reflected at the edges, then rounded to whole pixels when drawn, so
//! a digit never leaves the frame or gets clipped.
//!
//! Training clips are drawn from the MNIST training digits, fresh from the
//! RNG at every draw; held-out clips are a fixed, numbered set built from
//! the test digits, so evaluation uses digits the model never saw.

use pixel_transformer::{Error, Result};
use pixel_transformer_image::{mnist, resize, Image};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Clip;

/// Number of distinct held-out clips (clip `i` is a pure function of `i`).
pub const TEST_CLIPS: usize = 1000;
/// Seed of the held-out clips; fixed so every model is scored on the same videos.
const TEST_SEED: u64 = 0x0_1de0_7e57;
/// Digit side relative to the frame side, as in the 64-pixel original (28/64).
const DIGIT_FRACTION: f64 = 28.0 / 64.0;
/// Speed range in pixels per frame for a 64-pixel frame (scaled with the frame).
const SPEED_AT_64: (f32, f32) = (2.0, 4.0);

/// Where one digit's top-left corner is in each frame, in whole pixels.
pub type Trajectory = Vec<(usize, usize)>;

/// A seeded straight-line path of a `digit`-pixel square bouncing inside a
/// `size × size` frame for `frames` frames. Every corner lies in
/// `0..=size − digit` on both axes, so the whole digit is always inside.
pub fn trajectory(size: usize, digit: usize, frames: usize, rng: &mut impl Rng) -> Trajectory {
    let room = size.saturating_sub(digit) as f32;
    let (mut x, mut y) = (rng.gen_range(0.0..=room), rng.gen_range(0.0..=room));
    let angle = rng.gen_range(0.0..std::f32::consts::TAU);
    let scale = size as f32 / 64.0;
    let speed = rng.gen_range(SPEED_AT_64.0..=SPEED_AT_64.1) * scale;
    let (mut vx, mut vy) = (speed * angle.cos(), speed * angle.sin());
    let mut path = Vec::with_capacity(frames);
    for _ in 0..frames {
        path.push((x.round() as usize, y.round() as usize));
        x += vx;
        y += vy;
        // A mirror at each edge; a speed below the room never needs more than
        // one reflection, and the clamp guards a frame barely wider than a digit.
        for (p, v) in [(&mut x, &mut vx), (&mut y, &mut vy)] {
            if *p < 0.0 {
                *p = -*p;
                *v = -*v;
            } else if *p > room {
                *p = 2.0 * room - *p;
                *v = -*v;
            }
            *p = p.clamp(0.0, room);
        }
    }
    path
}

/// Draws `digits` on a blank `size × size × frames` clip along their paths
/// (overlaps take the maximum).
pub fn compose(
    size: usize,
    frames: usize,
    digits: &[&Image<1>],
    paths: &[Trajectory],
) -> Result<Clip<1>> {
    let mut voxels = vec![[0.0f32]; size * size * frames];
    for (digit, path) in digits.iter().zip(paths) {
        let d = digit.width();
        if d > size || digit.height() != d || path.len() != frames {
            return Err(Error::invalid(format!(
                "cannot draw a {}×{} digit on {} frames of {size}×{size} along a {}-frame path",
                d,
                digit.height(),
                frames,
                path.len()
            )));
        }
        for (k, &(x0, y0)) in path.iter().enumerate() {
            if x0 + d > size || y0 + d > size {
                return Err(Error::invalid(format!(
                    "frame {k}: a {d}-pixel digit at ({x0}, {y0}) leaves the {size}-pixel frame"
                )));
            }
            for y in 0..d {
                for x in 0..d {
                    let v = &mut voxels[(k * size + y0 + y) * size + x0 + x][0];
                    *v = v.max(digit.pixel(x, y)[0]);
                }
            }
        }
    }
    Clip::from_voxels(size, size, frames, voxels)
}

/// The Moving MNIST generator: MNIST digits resized for one frame size.
#[derive(Clone)]
pub struct MovingMnist {
    size: usize,
    frames: usize,
    digits: usize,
    train: Vec<Image<1>>,
    test: Vec<Image<1>>,
}

impl std::fmt::Debug for MovingMnist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovingMnist")
            .field("size", &self.size)
            .field("frames", &self.frames)
            .field("digits", &self.digits)
            .field("train_digits", &self.train.len())
            .field("test_digits", &self.test.len())
            .finish()
    }
}

impl MovingMnist {
    /// A generator of `size × size × frames` clips with `digits` (1 or 2)
    /// digits each, from the embedded MNIST digits.
    pub fn new(size: usize, frames: usize, digits: usize) -> Result<Self> {
        if !(16..=crate::MAX_SIZE).contains(&size) {
            return Err(Error::invalid(format!(
                "Moving MNIST frames must be 16 to {} pixels wide, got {size}",
                crate::MAX_SIZE
            )));
        }
        if !(1..=crate::MAX_FRAMES).contains(&frames) {
            return Err(Error::invalid(format!(
                "a clip has 1 to {} frames, got {frames}",
                crate::MAX_FRAMES
            )));
        }
        if !(1..=2).contains(&digits) {
            return Err(Error::invalid(format!(
                "Moving MNIST clips have 1 or 2 digits, got {digits}"
            )));
        }
        let side = Self::digit_side(size);
        let set = mnist::embedded()?;
        let fit = |v: Vec<Image<1>>| -> Result<Vec<Image<1>>> {
            v.into_iter().map(|d| resize(d, side)).collect()
        };
        Ok(Self {
            size,
            frames,
            digits,
            train: fit(set.train)?,
            test: fit(set.test)?,
        })
    }

    /// Digit side in pixels for frames of `size` pixels (28 at 64, 14 at 32).
    pub fn digit_side(size: usize) -> usize {
        ((size as f64 * DIGIT_FRACTION).round() as usize).max(1)
    }

    /// Frame side in pixels.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Frames per clip.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// A clip and its digits' paths, drawn from `digits` with `rng`.
    fn draw_from(&self, digits: &[Image<1>], rng: &mut ChaCha8Rng) -> (Clip<1>, Vec<Trajectory>) {
        let side = Self::digit_side(self.size);
        let chosen: Vec<&Image<1>> = (0..self.digits)
            .map(|_| &digits[rng.gen_range(0..digits.len())])
            .collect();
        let paths: Vec<Trajectory> = (0..self.digits)
            .map(|_| trajectory(self.size, side, self.frames, rng))
            .collect();
        let clip = compose(self.size, self.frames, &chosen, &paths)
            .expect("digits are resized to fit and paths stay inside the frame");
        (clip, paths)
    }

    /// A fresh training clip (MNIST training digits) and its paths.
    pub fn train_clip(&self, rng: &mut ChaCha8Rng) -> (Clip<1>, Vec<Trajectory>) {
        self.draw_from(&self.train, rng)
    }

    /// Held-out clip `index` (MNIST test digits) and its paths; the same index
    /// always gives the same clip. Indices wrap at [`TEST_CLIPS`].
    pub fn test_clip(&self, index: usize) -> (Clip<1>, Vec<Trajectory>) {
        let mut rng = ChaCha8Rng::seed_from_u64(TEST_SEED);
        rng.set_stream((index % TEST_CLIPS) as u64);
        self.draw_from(&self.test, &mut rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_bounce_and_stay_inside() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..500 {
            let path = trajectory(32, 14, 40, &mut rng);
            assert!(path.iter().all(|&(x, y)| x <= 18 && y <= 18), "{path:?}");
            // Steps are at most the top speed (0.5–1 px per frame at 32 px, plus rounding).
            for w in path.windows(2) {
                let dx = w[0].0.abs_diff(w[1].0);
                let dy = w[0].1.abs_diff(w[1].1);
                assert!(dx <= 2 && dy <= 2, "{w:?}");
            }
        }
    }

    #[test]
    fn compose_refuses_digits_that_do_not_fit() {
        let digit = Image::<1>::filled(4, 4, [1.0]).unwrap();
        assert!(compose(8, 1, &[&digit], &[vec![(5, 0)]]).is_err());
        assert!(compose(8, 2, &[&digit], &[vec![(0, 0)]]).is_err());
        let clip = compose(8, 1, &[&digit], &[vec![(4, 4)]]).unwrap();
        assert_eq!(clip.frames()[0].pixel(7, 7), [1.0]);
        assert_eq!(clip.frames()[0].pixel(3, 3), [0.0]);
    }
}
