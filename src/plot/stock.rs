//! Stock pictures of a model's predictions, so a new domain draws nothing
//! itself: curves for 1-D signals (truth, mean, ±2σ band, samples,
//! observations) and image grids for 2-D ones (truth, observations, mean,
//! uncertainty, a sample). [`crate::Domain::render`] uses them by default;
//! a domain that wants more (say, a reference answer on each curve) builds
//! on [`curve_panels`] or [`rows`].

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::function_grid::{plot_function_grid, FunctionPanel};
use super::image_grid::{heat, plot_image_grid, ColourBar, ImageGrid, Tile};
use crate::error::{Error, Result};
use crate::infer::RunOptions;
use crate::signal::{random_position, Grid, Observations, SpatialSignal};
use crate::{Backend, Model, OutputDistribution, SampleOptions};

/// Test signals a stock picture shows, one per row, unless `--render-count` says otherwise.
pub const SIGNALS: usize = 3;
/// Samples drawn per 1-D panel.
pub const CURVE_SAMPLES: usize = 3;

/// One row of a stock picture: a test signal and its observations at the
/// largest set size; each column observes a prefix of them, so the sets are
/// nested and each column adds points.
#[derive(Debug, Clone)]
pub struct Row<const P: usize, const V: usize, S> {
    /// The signal.
    pub signal: S,
    /// Its observations, as many as the largest column needs.
    pub observed: Observations<P, V>,
}

impl<const P: usize, const V: usize, S> Row<P, V, S> {
    /// The first `n` observations.
    pub fn first(&self, n: usize) -> Observations<P, V> {
        let mut s = self.observed.clone();
        s.positions.truncate(n);
        s.values.truncate(n);
        s
    }
}

/// `count` test signals, each observed at `largest` uniform positions
/// through `observe` (which may add noise), seeded by `seed`.
pub fn rows<const P: usize, const V: usize, S>(
    count: usize,
    largest: usize,
    seed: u64,
    mut draw: impl FnMut(&mut ChaCha8Rng) -> S,
    mut observe: impl FnMut(&S, [f32; P], &mut ChaCha8Rng) -> [f32; V],
) -> Vec<Row<P, V, S>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5707c);
    (0..count)
        .map(|_| {
            let signal = draw(&mut rng);
            let mut observed = Observations::new();
            for _ in 0..largest {
                let x = random_position(&mut rng);
                let v = observe(&signal, x, &mut rng);
                observed.push(x, v);
            }
            Row { signal, observed }
        })
        .collect()
}

/// Up to three column sizes from a domain's evaluation sizes: the smallest,
/// a middle one and the largest.
pub fn column_sizes(eval_observed: &[usize]) -> Vec<usize> {
    let mut sizes: Vec<usize> = eval_observed.to_vec();
    sizes.sort_unstable();
    sizes.dedup();
    match sizes.len() {
        0 => vec![8],
        1..=3 => sizes,
        n => vec![sizes[0], sizes[n / 2], sizes[n - 1]],
    }
}

/// The sampling options of the pictures: hybrid sampling with half the
/// grid (or `--sample-autoregressive`) drawn one value at a time.
fn sample_options(
    options: &RunOptions,
    grid_len: usize,
    samples: usize,
    row: usize,
) -> SampleOptions {
    SampleOptions {
        samples,
        autoregressive: Some(options.sample_autoregressive.unwrap_or(grid_len / 2)),
        temperature: options.sample_temperature.unwrap_or(1.0),
        seed: options.seed + row as u64,
        values_per_pass: 1,
    }
}

/// Writes the stock pictures for `rows` at each of `sizes` observations:
/// `samples.png` (curves) for `P = 1`, `samples.png` (image grid) for
/// `P = 2`, nothing for higher dimensions. Returns the paths written.
pub fn pictures<const P: usize, const V: usize, S, D, O>(
    model: &Model<P, V, D, O>,
    rows: &[Row<P, V, S>],
    grid: &Grid<P>,
    sizes: &[usize],
    out_dir: &Path,
    options: &RunOptions,
) -> Result<Vec<PathBuf>>
where
    S: SpatialSignal<P, V>,
    D: Backend,
    O: OutputDistribution<V>,
{
    if rows.is_empty() || sizes.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let path = out_dir.join("samples.png");
    match P {
        1 => {
            let panels = curve_panels(model, rows, grid, sizes, options)?;
            plot_function_grid(&path, &panels, sizes.len())?;
        }
        2 => plot_image_grid(&path, &image_grid(model, rows, grid, sizes, options)?)?,
        _ => return Ok(Vec::new()),
    }
    Ok(vec![path])
}

/// One [`FunctionPanel`] per row and size (row-major), for 1-D signals (of
/// several coordinates or values, the first of each is drawn).
pub fn curve_panels<const P: usize, const V: usize, S, D, O>(
    model: &Model<P, V, D, O>,
    rows: &[Row<P, V, S>],
    grid: &Grid<P>,
    sizes: &[usize],
    options: &RunOptions,
) -> Result<Vec<FunctionPanel>>
where
    S: SpatialSignal<P, V>,
    D: Backend,
    O: OutputDistribution<V>,
{
    let positions = grid.positions();
    let xs: Vec<f64> = positions.iter().map(|x| x[0] as f64).collect();
    let first = |values: &[[f32; V]]| values.iter().map(|v| v[0] as f64).collect::<Vec<_>>();
    let mut panels = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let truth: Vec<[f32; V]> = positions.iter().map(|x| row.signal.value_at(*x)).collect();
        for &n in sizes {
            let observed = row.first(n);
            let marginals = model.marginals(&observed, &positions)?;
            let samples = model.sample(
                &observed,
                &positions,
                &sample_options(options, positions.len(), CURVE_SAMPLES, r),
            )?;
            panels.push(FunctionPanel {
                title: format!("signal {} · |S| = {n}", r + 1),
                xs: xs.clone(),
                truth: Some(first(&truth)),
                mean: first(&marginals.means()),
                std: first(&marginals.stds()),
                samples: samples.iter().map(|s| first(s)).collect(),
                reference_mean: None,
                observed: observed
                    .positions
                    .iter()
                    .zip(&observed.values)
                    .map(|(x, v)| (x[0] as f64, v[0] as f64))
                    .collect(),
            });
        }
    }
    Ok(panels)
}

/// The image grid of 2-D signals: per row, the truth, then for each size
/// the observed pixels, the mean, the standard deviation and one sample.
fn image_grid<const P: usize, const V: usize, S, D, O>(
    model: &Model<P, V, D, O>,
    rows: &[Row<P, V, S>],
    grid: &Grid<P>,
    sizes: &[usize],
    options: &RunOptions,
) -> Result<ImageGrid>
where
    S: SpatialSignal<P, V>,
    D: Backend,
    O: OutputDistribution<V>,
{
    let positions = grid.positions();
    let (width, height) = (grid.shape[0], grid.shape[1]);
    // Colours span the truths' range, so every tile of a figure is comparable.
    let truths: Vec<Vec<[f32; V]>> = rows
        .iter()
        .map(|row| positions.iter().map(|x| row.signal.value_at(*x)).collect())
        .collect();
    let (lo, hi) = truths
        .iter()
        .flatten()
        .flatten()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    };
    let colour = |v: &[f32; V]| -> [u8; 3] {
        let byte = |x: f32| ((x - lo) / (hi - lo) * 255.0).clamp(0.0, 255.0) as u8;
        if V == 3 {
            [byte(v[0]), byte(v[1]), byte(v[2])]
        } else {
            [byte(v[0]); 3]
        }
    };
    let tile =
        |values: &[[f32; V]]| image_tile(width, height, values.iter().map(&colour).collect());

    let mut column_titles = vec!["truth".to_string()];
    for &n in sizes {
        column_titles.extend([
            format!("observed |S|={n}"),
            format!("mean |S|={n}"),
            format!("std |S|={n}"),
            format!("sample |S|={n}"),
        ]);
    }
    let mut tiles = Vec::new();
    // Standard deviations share one scale, up to the largest in the figure,
    // so the tiles are drawn once it is known.
    let mut stds: Vec<(usize, Vec<f32>)> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        tiles.push(Some(tile(&truths[r])));
        for &n in sizes {
            let observed = row.first(n);
            let marginals = model.marginals(&observed, &positions)?;
            let sample = model.sample(
                &observed,
                &positions,
                &sample_options(options, positions.len(), 1, r),
            )?;
            // Observed pixels in colour on a mid-grey background.
            let mut shown = vec![[128u8; 3]; positions.len()];
            for (x, v) in observed.positions.iter().zip(&observed.values) {
                shown[grid_index(grid, x)] = colour(v);
            }
            tiles.push(Some(image_tile(width, height, shown)));
            tiles.push(Some(tile(&marginals.means())));
            stds.push((tiles.len(), marginals.stds().iter().map(|s| s[0]).collect()));
            tiles.push(None);
            tiles.push(Some(tile(&sample[0])));
        }
    }
    let std_max = stds
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .filter(|s| s.is_finite())
        .fold(0.0f32, f32::max);
    for (at, std) in &stds {
        tiles[*at] = Some(heat_tile(width, height, std, std_max));
    }
    Ok(ImageGrid {
        title: format!(
            "values {lo:.2} (black) to {hi:.2} (white); std 0 (black) to {std_max:.2} (white)"
        ),
        row_titles: (1..=rows.len()).map(|r| format!("signal {r}")).collect(),
        column_titles,
        tiles,
        colour_bar: Some(ColourBar::heat("std", std_max)),
    })
}

/// The grid cell of a position (the nearest cell centre).
fn grid_index<const P: usize>(grid: &Grid<P>, x: &[f32; P]) -> usize {
    let mut index = 0;
    for a in (0..P).rev() {
        index = index * grid.shape[a] + cell(x[a], grid.shape[a]);
    }
    index
}

/// A tile from colours in grid order: a 2-D grid enumerates its cells row
/// by row, x fastest, as a tile stores its pixels.
fn image_tile(width: usize, height: usize, colours: Vec<[u8; 3]>) -> Tile {
    Tile {
        width,
        height,
        rgb: colours,
    }
}

/// The cell, of `n` along an axis, whose centre is nearest to coordinate `x`.
fn cell(x: f32, n: usize) -> usize {
    (((x + 1.0) / 2.0 * n as f32).floor() as isize).clamp(0, n as isize - 1) as usize
}

/// Standard deviations as a heat map ([`heat`]), `0` to `top`.
fn heat_tile(width: usize, height: usize, std: &[f32], top: f32) -> Tile {
    let top = top.max(f32::MIN_POSITIVE);
    let colours = std
        .iter()
        .map(|s| heat(s / top).map(|c| (c * 255.0) as u8))
        .collect();
    image_tile(width, height, colours)
}
