//! The composition figure (the paper's Fig. 5): the observed pixels come
//! from two different test images, the top half from one and the bottom half
//! from the other, and the model is asked for an image that agrees with both.
//!
//! `composition.png` has one column per pair of test images and the rows:
//! 1. the source of the top half,
//! 2. the source of the bottom half,
//! 3. the composed image `S` is drawn from (top of 1 over bottom of 2; the
//!    paper's first row),
//! 4. the nearest-neighbour fill of `S`,
//! 5. the mean image given `S`,
//! 6. and below: samples given `S`.

use std::path::{Path, PathBuf};

use pixel_transformer::Backend;
use pixel_transformer::{
    Domain, Model, OutputDistribution, Result, RunOptions, SampleOptions, Split,
};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::figure::Mosaic;
use crate::render::{figure_sampling, observe};
use crate::{nearest_fill, Image, ImageDomain};

/// Observed pixels of the composition (capped at the pixel count), spread
/// uniformly over the image, so each half gets about half of them.
pub const COMPOSE_OBSERVED: usize = 128;
/// Pairs of test images shown (columns).
pub const COMPOSE_PAIRS: usize = 4;
/// Samples per pair.
pub const COMPOSE_SAMPLES: usize = 2;
/// Rows of the figure: two sources, the composed image, nearest fill, mean, samples.
pub const COMPOSE_ROWS: usize = 5 + COMPOSE_SAMPLES;

/// The rows `0 .. height/2` of `top` over the remaining rows of `bottom`.
pub fn compose<const V: usize>(top: &Image<V>, bottom: &Image<V>) -> Result<Image<V>> {
    crate::metrics::mse(top, bottom)?; // same size, or a clear error
    let (w, h) = (top.width(), top.height());
    let pixels = (0..w * h)
        .map(|i| {
            if i / w < h / 2 {
                top.pixels()[i]
            } else {
                bottom.pixels()[i]
            }
        })
        .collect();
    Image::new(w, h, pixels)
}

/// Draws the composition figure into `out_dir/composition.png`.
pub(crate) fn render_composition<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &ImageDomain<V>,
    model: &Model<2, V, D, O>,
    out_dir: &Path,
    options: &RunOptions,
) -> Result<PathBuf> {
    let seed = options.seed;
    let size = domain.size();
    let grid = domain.grid();
    let positions = grid.positions();
    let n = COMPOSE_OBSERVED.min(grid.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0_4905e);
    let mut fig = Mosaic::new(COMPOSE_ROWS, COMPOSE_PAIRS, size, size);
    for col in 0..COMPOSE_PAIRS {
        let top = domain.draw_signal(Split::Test, &mut rng);
        let bottom = domain.draw_signal(Split::Test, &mut rng);
        let composed = compose(&top, &bottom)?;
        let mut order: Vec<usize> = (0..grid.len()).collect();
        order.shuffle(&mut rng);
        let s = observe(&composed, &order, n);
        let mean = model.mean_field(&s, &positions)?;
        let (autoregressive, temperature) = figure_sampling(options, grid.len());
        let samples = model.sample(
            &s,
            &positions,
            &SampleOptions {
                samples: COMPOSE_SAMPLES,
                autoregressive: Some(autoregressive),
                temperature,
                seed: seed.wrapping_add(1000 + col as u64),
                ..SampleOptions::default()
            },
        )?;
        fig.put(0, col, &top)?;
        fig.put(1, col, &bottom)?;
        fig.put(2, col, &composed)?;
        fig.put(3, col, &nearest_fill(&s, size, size)?)?;
        fig.put(4, col, &Image::new(size, size, mean)?)?;
        for (k, values) in samples.into_iter().enumerate() {
            fig.put(5 + k, col, &Image::new(size, size, values)?)?;
        }
    }
    let (autoregressive, temperature) = figure_sampling(options, grid.len());
    let fig = fig.titled(
        format!(
            "S: {n} pixels of the top half of one image over the bottom half of another \
             (samples: {autoregressive} drawn one at a time, temperature {temperature})"
        ),
        [
            "top source",
            "bottom source",
            "composed (S from it)",
            "nearest fill of S",
            "mean",
        ]
        .into_iter()
        .map(str::to_string)
        .chain((1..=COMPOSE_SAMPLES).map(|k| format!("sample {k}")))
        .collect(),
        (1..=COMPOSE_PAIRS).map(|k| format!("pair {k}")).collect(),
    )?;
    let path = out_dir.join("composition.png");
    fig.write(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_half_comes_from_the_first_image() {
        let a = Image::<1>::filled(3, 5, [0.0]).unwrap();
        let b = Image::<1>::filled(3, 5, [1.0]).unwrap();
        let c = compose(&a, &b).unwrap();
        // Rows 0 and 1 (5 / 2 = 2 rows) from a, rows 2 to 4 from b.
        let rows: Vec<f32> = (0..5).map(|y| c.pixel(1, y)[0]).collect();
        assert_eq!(rows, [0.0, 0.0, 1.0, 1.0, 1.0]);
        assert!(compose(&a, &Image::<1>::filled(3, 4, [1.0]).unwrap()).is_err());
    }
}
