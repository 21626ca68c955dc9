//! The `eval` command: the benchmark of the paper's section 6.3 on held-out
//! clips. For each `|S|` in [`EVAL_OBSERVED`], each of the first
//! [`EVAL_CLIPS`] held-out clips is observed at `|S|` distinct random voxels;
//! the model's mean video and the nearest-neighbour fill in space-time are
//! scored by PSNR against the whole clip (every voxel, observed ones too).
//! The table goes to the terminal, `eval.csv` and `eval.json`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use pixel_transformer::infer::shard::Shard;
use pixel_transformer::Backend;
use pixel_transformer::{io::write_atomic, Model, OutputDistribution, Result, RunOptions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::render::observe_voxels;
use crate::{nearest_fill, VideoDomain};

/// Held-out clips per `|S|` (fewer if a frame folder holds fewer).
pub const EVAL_CLIPS: usize = 100;
/// Observation-set sizes of the benchmark: the paper's training range.
pub const EVAL_OBSERVED: [usize; 3] = [512, 1024, 2048];
/// PSNR reported for a perfect reconstruction (MSE 0), instead of infinity.
const PSNR_CAP: f64 = 100.0;

/// Peak signal-to-noise ratio in dB of `a` against `b`, for values in
/// `[0, 1]` (peak 1): `10 log10(1 / MSE)` over all voxels and channels,
/// capped at 100 dB for identical inputs.
pub fn psnr<const V: usize>(a: &[[f32; V]], b: &[[f32; V]]) -> f64 {
    let n = (a.len().min(b.len()) * V).max(1);
    let se: f64 = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)))
        .sum();
    let mse = se / n as f64;
    if mse <= 0.0 {
        PSNR_CAP
    } else {
        (10.0 * (1.0 / mse).log10()).min(PSNR_CAP)
    }
}

/// One row of the benchmark: one observation-set size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchmarkRow {
    /// `|S|`, distinct observed voxels per clip.
    pub observed: usize,
    /// Clips scored.
    pub clips: usize,
    /// Mean over clips of the mean video's PSNR, in dB.
    pub model_psnr: f64,
    /// Mean over clips of the nearest-neighbour fill's PSNR, in dB.
    pub nearest_psnr: f64,
    /// Clips on which the mean video scores higher than the fill.
    pub model_wins: usize,
    /// Wall time of the row.
    pub seconds: f64,
}

/// Scores the mean video against the nearest-neighbour fill on the first
/// `clips` held-out clips, for each `|S|` in `observed` (capped at the
/// clip's voxel count). The same `seed` observes the same voxels.
pub fn benchmark<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &VideoDomain<V>,
    model: &Model<3, V, D, O>,
    observed: &[usize],
    clips: usize,
    seed: u64,
) -> Result<Vec<BenchmarkRow>> {
    benchmark_shared(domain, model, observed, clips, seed, &Shard::default())
}

/// [`benchmark`], the clips shared by the ranks of `shard`; every rank adds
/// all clips' scores in clip order, as one process does.
pub fn benchmark_shared<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &VideoDomain<V>,
    model: &Model<3, V, D, O>,
    observed: &[usize],
    clips: usize,
    seed: u64,
    shard: &Shard,
) -> Result<Vec<BenchmarkRow>> {
    let [w, h, t] = domain.shape();
    let positions = pixel_transformer::Grid::new([w, h, t]).positions();
    let clips: Vec<_> = (0..clips.min(domain.test_len()))
        .filter_map(|i| domain.test_clip(i))
        .collect();
    let mut rows = Vec::new();
    for &n in observed {
        let n = n.min(w * h * t);
        let start = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xe7a1_c11b);
        rng.set_stream(n as u64);
        // Per clip of this rank: the mean video's PSNR and the fill's (every
        // rank draws every clip's voxels, so the random stream stays the same).
        let mut mine = Vec::new();
        for (i, clip) in clips.iter().enumerate() {
            let s = observe_voxels(clip, n, &mut rng);
            if !shard.mine(i) {
                continue;
            }
            let truth = clip.voxels();
            let mean = model.mean_field(&s, &positions)?;
            let fill = nearest_fill(&s, w, h, t)?.voxels();
            mine.extend([psnr(&mean, &truth), psnr(&fill, &truth)]);
        }
        let (mut model_sum, mut nearest_sum, mut wins) = (0.0, 0.0, 0);
        for scores in shard.collect(clips.len(), 2, mine).chunks(2) {
            let (m, f) = (scores[0], scores[1]);
            model_sum += m;
            nearest_sum += f;
            wins += usize::from(m > f);
        }
        let k = clips.len().max(1) as f64;
        rows.push(BenchmarkRow {
            observed: n,
            clips: clips.len(),
            model_psnr: model_sum / k,
            nearest_psnr: nearest_sum / k,
            model_wins: wins,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    Ok(rows)
}

pub(crate) fn evaluate<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &VideoDomain<V>,
    model: &Model<3, V, D, O>,
    out_dir: &Path,
    options: &RunOptions,
) -> Result<String> {
    let [w, h, t] = domain.shape();
    let clips = options.eval_count.unwrap_or(EVAL_CLIPS);
    let rows = benchmark_shared(
        domain,
        model,
        &EVAL_OBSERVED,
        clips,
        options.seed,
        &options.shard,
    )?;
    let clips = rows.first().map_or(0, |r| r.clips);
    let mut table = format!(
        "mean video vs nearest-neighbour fill on {} held-out {w}×{h}×{t} clips (PSNR in dB, mean over clips)\n{:>6}  {:>10}  {:>10}  {:>10}\n",
        clips,
        "|S|",
        "model",
        "nearest",
        "model wins"
    );
    let mut csv = String::from("observed,clips,model_psnr_db,nearest_psnr_db,model_wins\n");
    for r in &rows {
        let _ = writeln!(
            table,
            "{:>6}  {:>10.2}  {:>10.2}  {:>6}/{:<3}",
            r.observed, r.model_psnr, r.nearest_psnr, r.model_wins, r.clips
        );
        let _ = writeln!(
            csv,
            "{},{},{:.4},{:.4},{}",
            r.observed, r.clips, r.model_psnr, r.nearest_psnr, r.model_wins
        );
    }
    if options.shard.writes() {
        write_atomic(&out_dir.join("eval.csv"), csv.as_bytes())?;
        let json =
            serde_json::json!({ "shape_w_h_t": [w, h, t], "seed": options.seed, "rows": rows });
        let text = serde_json::to_string_pretty(&json).expect("plain JSON serialises");
        write_atomic(&out_dir.join("eval.json"), text.as_bytes())?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_follows_its_definition() {
        // MSE 0.01 → 20 dB; identical → the cap.
        let a = vec![[0.5f32]; 4];
        let b = vec![[0.6f32]; 4];
        assert!((psnr(&a, &b) - 20.0).abs() < 1e-4, "{}", psnr(&a, &b));
        assert_eq!(psnr(&a, &a), PSNR_CAP);
    }
}
