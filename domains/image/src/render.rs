//! The `sample` pictures, as the paper's figures, written as PNG:
//! - `means.png` (Fig. 3): per test image (rows), the truth and the mean
//!   image for growing `|S|` (columns);
//! - `samples.png` (Fig. 4): per test image (columns), the truth, the
//!   nearest-neighbour fill of `S` and three samples, at `|S| = 32`;
//! - `std.png`: per-pixel standard deviation for the same sets as
//!   `means.png`, on one shared scale, showing the uncertainty shrink;
//! - `composition.png` (Fig. 5): `S` from the top of one test image and the
//!   bottom of another (see [`crate::compose`]);
//! - `figures.json`: what the pictures show (sizes, the std scale).
//!
//! Observations are distinct pixel centres, nested across the columns (the
//! set at `|S| = 16` contains the one at 4), so columns differ only by what
//! was added.

use std::path::{Path, PathBuf};

use pixel_transformer::Backend;
use pixel_transformer::{
    io::write_atomic, Domain, Model, Observations, OutputDistribution, Result, RunOptions,
    SampleOptions, Split,
};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::figure::{heat, Mosaic};
use crate::{nearest_fill, Image, ImageDomain};

/// Observation-set sizes of the mean and std figures (capped at the pixel count).
pub const MEAN_SIZES: [usize; 4] = [4, 16, 64, 256];
/// Observed pixels in the samples figure (the paper's Fig. 4).
pub const SAMPLE_OBSERVED: usize = 32;
/// Samples per test image.
pub const SAMPLES: usize = 3;
/// Pixels drawn one at a time per sample before the rest take the mean (the
/// paper's hybrid rule with a small `N'`, so a CPU draws samples in seconds;
/// the paper uses 2048). `--sample-autoregressive` changes it.
pub const SAMPLE_AUTOREGRESSIVE: usize = 64;

/// Test images shown.
const IMAGES: usize = 4;
/// Temperature of the bin choice when sampling (the paper's evaluation).
pub(crate) const TEMPERATURE: f32 = 0.9;

/// How the figures draw samples of `pixels` pixels: the hybrid rule's count
/// (`--sample-autoregressive`, else [`SAMPLE_AUTOREGRESSIVE`]; past the pixel
/// count there is nothing left to draw) and the temperature
/// (`--sample-temperature`, else the paper's 0.9).
pub(crate) fn figure_sampling(options: &RunOptions, pixels: usize) -> (usize, f32) {
    (
        options
            .sample_autoregressive
            .unwrap_or(SAMPLE_AUTOREGRESSIVE)
            .min(pixels),
        options.sample_temperature.unwrap_or(TEMPERATURE),
    )
}

/// The first `n` pixels of `order` as observations of `img`.
pub(crate) fn observe<const V: usize>(
    img: &Image<V>,
    order: &[usize],
    n: usize,
) -> Observations<2, V> {
    let grid = img.grid();
    let mut s = Observations::new();
    for &i in order.iter().take(n) {
        s.push(grid.position(i), img.pixels()[i]);
    }
    s
}

/// Root-mean-square over channels: one uncertainty number per pixel.
fn scalar_std<const V: usize>(s: &[f32; V]) -> f32 {
    (s.iter().map(|x| x * x).sum::<f32>() / V as f32).sqrt()
}

pub(crate) fn render<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &ImageDomain<V>,
    model: &Model<2, V, D, O>,
    out_dir: &Path,
    options: &RunOptions,
) -> Result<Vec<PathBuf>> {
    let seed = options.seed;
    let size = domain.size();
    let grid = domain.grid();
    let positions = grid.positions();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1a6e_5eed);
    let images: Vec<Image<V>> = (0..options.render_count.unwrap_or(IMAGES).max(1))
        .map(|_| domain.draw_signal(Split::Test, &mut rng))
        .collect();
    let orders: Vec<Vec<usize>> = images
        .iter()
        .map(|_| {
            let mut o: Vec<usize> = (0..grid.len()).collect();
            o.shuffle(&mut rng);
            o
        })
        .collect();
    let sizes: Vec<usize> = MEAN_SIZES.iter().map(|&n| n.min(grid.len())).collect();

    // Fig. 3: means; and the std maps from the same marginals.
    let count = images.len();
    let image_rows: Vec<String> = (1..=count).map(|k| format!("test image {k}")).collect();
    let size_cols = |first: Option<&str>| -> Vec<String> {
        first
            .map(str::to_string)
            .into_iter()
            .chain(sizes.iter().map(|n| format!("|S| = {n}")))
            .collect()
    };
    let mut means = Mosaic::new(count, 1 + sizes.len(), size, size);
    let mut stds: Vec<Vec<f32>> = Vec::new();
    for (row, (img, order)) in images.iter().zip(&orders).enumerate() {
        means.put(row, 0, img)?;
        for (col, &n) in sizes.iter().enumerate() {
            let m = model.marginals(&observe(img, order, n), &positions)?;
            means.put(row, col + 1, &Image::new(size, size, m.means())?)?;
            stds.push(m.stds().iter().map(scalar_std).collect());
        }
    }
    // One scale for the whole figure, so maps compare across |S|.
    let std_max = stds
        .iter()
        .flatten()
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0f32, f32::max)
        .max(1e-6);
    let mut std_fig = Mosaic::new(count, sizes.len(), size, size);
    for (k, map) in stds.iter().enumerate() {
        let img = Image::new(size, size, map.iter().map(|&s| heat(s / std_max)).collect())?;
        std_fig.put(k / sizes.len(), k % sizes.len(), &img)?;
    }
    let means = means.titled(
        "mean image given |S| observed pixels",
        image_rows.clone(),
        size_cols(Some("truth")),
    )?;
    let std_fig = std_fig
        .titled(
            "per-pixel standard deviation given |S| observed pixels",
            image_rows,
            size_cols(None),
        )?
        .with_colour_bar(pixel_transformer::plot::ColourBar::heat("std", std_max));

    // Fig. 4: truth, nearest-neighbour fill of S, samples; one test image per column.
    let n = SAMPLE_OBSERVED.min(grid.len());
    // Every pixel is drawn, the observed ones too (the model predicts them
    // almost surely).
    let (autoregressive, temperature) = figure_sampling(options, grid.len());
    let mut samples_fig = Mosaic::new(2 + SAMPLES, count, size, size);
    for (col, (img, order)) in images.iter().zip(&orders).enumerate() {
        let s = observe(img, order, n);
        samples_fig.put(0, col, img)?;
        samples_fig.put(1, col, &nearest_fill(&s, size, size)?)?;
        let drawn = model.sample(
            &s,
            &positions,
            &SampleOptions {
                samples: SAMPLES,
                autoregressive: Some(autoregressive),
                temperature,
                seed: seed.wrapping_add(col as u64),
                // Exact one-value-at-a-time steps for the autoregressive part.
                ..SampleOptions::default()
            },
        )?;
        for (k, values) in drawn.into_iter().enumerate() {
            samples_fig.put(2 + k, col, &Image::new(size, size, values)?)?;
        }
    }

    let samples_fig = samples_fig.titled(
        format!(
            "samples given |S| = {n} pixels ({autoregressive} drawn one at a time, temperature {temperature})"
        ),
        ["truth".to_string(), "nearest fill of S".into()]
            .into_iter()
            .chain((1..=SAMPLES).map(|k| format!("sample {k}")))
            .collect(),
        (1..=count).map(|k| format!("test image {k}")).collect(),
    )?;
    let mut written = Vec::new();
    for (name, fig) in [
        ("means.png", &means),
        ("samples.png", &samples_fig),
        ("std.png", &std_fig),
    ] {
        let path = out_dir.join(name);
        fig.write(&path)?;
        written.push(path);
    }
    written.push(crate::compose::render_composition(
        domain, model, out_dir, options,
    )?);
    let info = serde_json::json!({
        "means_png": "rows: test images; columns: truth, then the mean image for each |S|",
        "samples_png": "columns: test images; rows: truth, nearest-neighbour fill of S, samples",
        "composition_png": "columns: pairs of test images; rows: top source, bottom source, the composed image S is drawn from (top half of the first over the bottom half of the second), nearest-neighbour fill of S, mean, samples",
        "composition_observed": crate::compose::COMPOSE_OBSERVED.min(grid.len()),
        "composition_samples": crate::compose::COMPOSE_SAMPLES,
        "std_png": "rows: test images; columns: per-pixel std (RMS over channels) for each |S|; black = 0, white = std_max",
        "mean_sizes": sizes,
        "sample_observed": n,
        "samples": SAMPLES,
        "sample_autoregressive": autoregressive,
        "temperature": temperature,
        "std_max": std_max,
        "seed": seed,
    });
    let path = out_dir.join("figures.json");
    let text = serde_json::to_string_pretty(&info).expect("plain JSON serialises");
    write_atomic(&path, text.as_bytes())?;
    written.push(path);
    Ok(written)
}
