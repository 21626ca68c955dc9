//! The `sample` outputs, written under the run folder:
//! - `video.gif`: one row per test clip; columns: the ground truth, the
//!   nearest-neighbour fill of the observed set `S` (its visualisation),
//!   the mean video, then [`SAMPLES`] sampled videos, all playing together;
//! - `clip_<i>.gif`: the row of test clip `i` alone (a smaller file to share);
//! - `strip_<i>.png`: the same for test clip `i` as a still: one row per
//!   video (truth, fill, mean, samples), one column per frame;
//! - `figures.json`: what the pictures show (sizes, sampling settings);
//! - `training_curve.png` and `.svg` when the folder holds a training log.
//!
//! Observations are distinct voxel centres spread over the whole clip.

use std::path::{Path, PathBuf};

use pixel_transformer::Backend;
use pixel_transformer::{
    io::write_atomic, Model, Observations, OutputDistribution, Result, RunOptions, SampleOptions,
};
use rand::{seq::index::sample, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gif::{frame_strip, side_by_side, write_gif, Titles, FRAME_DELAY_MS};
use crate::{nearest_fill, Clip, VideoDomain};

/// Test clips shown.
pub const RENDER_CLIPS: usize = 3;
/// Observed voxels per clip: 1024 of a 32 × 32 × 16 clip's 16,384 (6 %),
/// the middle of the paper's training range.
pub const SAMPLE_OBSERVED: usize = 1024;
/// Sampled videos per clip.
pub const SAMPLES: usize = 3;
/// Voxels drawn one at a time per sample before the rest take the mean
/// given them (the paper's hybrid rule). Each step is a network pass over
/// more than a thousand observations, so a CPU affords a few dozen; the
/// paper uses 2048.
pub const SAMPLE_AUTOREGRESSIVE: usize = 32;
/// Temperature of the bin choice when sampling (the paper's evaluation).
const TEMPERATURE: f32 = 0.9;

/// `n` distinct voxels of `clip`, chosen with `rng`, as observations.
pub(crate) fn observe_voxels<const V: usize>(
    clip: &Clip<V>,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Observations<3, V> {
    let grid = clip.grid();
    let voxels = clip.voxels();
    let mut s = Observations::new();
    for i in sample(rng, grid.len(), n.min(grid.len())) {
        s.push(grid.position(i), voxels[i]);
    }
    s
}

pub(crate) fn render<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &VideoDomain<V>,
    model: &Model<3, V, D, O>,
    out_dir: &Path,
    options: &RunOptions,
) -> Result<Vec<PathBuf>> {
    let seed = options.seed;
    let autoregressive = options
        .sample_autoregressive
        .unwrap_or(SAMPLE_AUTOREGRESSIVE);
    let temperature = options.sample_temperature.unwrap_or(TEMPERATURE);
    let [w, h, t] = domain.shape();
    let positions = pixel_transformer::Grid::new([w, h, t]).positions();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x71de_05ee);
    let count = options.render_count.unwrap_or(RENDER_CLIPS).max(1);
    let clips: Vec<Clip<V>> = (0..count.min(domain.test_len()))
        .filter_map(|i| domain.test_clip(i))
        .collect();
    let n = SAMPLE_OBSERVED.min(w * h * t);

    // Per clip: truth, nearest fill, mean, samples.
    let mut rows: Vec<Vec<Clip<V>>> = Vec::new();
    for (i, clip) in clips.iter().enumerate() {
        let s = observe_voxels(clip, n, &mut rng);
        let mut row = vec![clip.clone(), nearest_fill(&s, w, h, t)?];
        row.push(Clip::from_voxels(
            w,
            h,
            t,
            model.mean_field(&s, &positions)?,
        )?);
        let drawn = model.sample(
            &s,
            &positions,
            &SampleOptions {
                samples: SAMPLES,
                autoregressive: Some(autoregressive),
                temperature,
                seed: seed.wrapping_add(i as u64),
                // Exact one-value-at-a-time steps for the autoregressive part.
                ..SampleOptions::default()
            },
        )?;
        for values in drawn {
            row.push(Clip::from_voxels(w, h, t, values)?);
        }
        rows.push(row);
    }

    let mut written = Vec::new();
    let refs: Vec<Vec<&Clip<V>>> = rows.iter().map(|r| r.iter().collect()).collect();
    let cols: Vec<String> = ["truth", "nearest fill of S", "mean video"]
        .into_iter()
        .map(str::to_string)
        .chain((1..=SAMPLES).map(|k| format!("sample {k}")))
        .take(refs.first().map_or(0, Vec::len))
        .collect();
    let titles = |rows: std::ops::Range<usize>| Titles {
        title: format!("|S| = {n} observed voxels"),
        rows: rows.map(|i| format!("test clip {i}")).collect(),
        cols: cols.clone(),
    };
    let path = out_dir.join("video.gif");
    let all = titles(0..refs.len());
    write_gif(&path, &side_by_side(&refs, Some(&all))?, FRAME_DELAY_MS)?;
    written.push(path);
    for (i, row) in refs.iter().enumerate() {
        let path = out_dir.join(format!("clip_{i}.gif"));
        let one = titles(i..i + 1);
        write_gif(
            &path,
            &side_by_side(&refs[i..=i], Some(&one))?,
            FRAME_DELAY_MS,
        )?;
        written.push(path);
        let path = out_dir.join(format!("strip_{i}.png"));
        let frames = row.first().map_or(0, |c| c.len());
        let rows = ["truth", "nearest fill of S", "mean video"]
            .into_iter()
            .map(str::to_string)
            .chain((1..=SAMPLES).map(|k| format!("sample {k}")))
            .take(row.len())
            .collect();
        frame_strip(row)?
            .titled(
                format!(
                    "test clip {i} given |S| = {n} voxels (samples: {autoregressive} drawn one at a time, temperature {temperature})"
                ),
                rows,
                (0..frames).map(|k| format!("t = {k}")).collect(),
            )?
            .write(&path)?;
        written.push(path);
    }
    let info = serde_json::json!({
        "video_gif": "rows: test clips; columns: truth, nearest-neighbour fill of S, mean video, samples",
        "clip_gif": "one per test clip: its row of video.gif",
        "strip_png": "one per test clip; rows: truth, nearest-neighbour fill of S, mean video, samples; columns: frames",
        "shape_w_h_t": [w, h, t],
        "observed": n,
        "samples": SAMPLES,
        "sample_autoregressive": autoregressive,
        "temperature": temperature,
        "frame_delay_ms": FRAME_DELAY_MS,
        "seed": seed,
    });
    let path = out_dir.join("figures.json");
    let text = serde_json::to_string_pretty(&info).expect("plain JSON serialises");
    write_atomic(&path, text.as_bytes())?;
    written.push(path);
    Ok(written)
}
