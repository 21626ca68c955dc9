//! The `eval` command: the paper's Figures 6 and 7 for any image data set.
//!
//! For observation sets growing log-uniformly (`|S|` = 4, 8, 16, … up to the
//! training maximum, below the pixel count) and a fixed, seeded set of test
//! images, with `S` a seeded random set of distinct pixels (nested across
//! sizes), it measures:
//! - **reconstruction** (Fig. 6): PSNR and SSIM against the true image of the
//!   model's mean image, of its samples (hybrid sampling, averaged over the
//!   samples), and of the nearest-neighbour fill of `S` (the baseline). The
//!   model's images are scored as predicted, observed pixels included: the
//!   model must reproduce `S` itself, while the fill copies it exactly;
//! - **likelihood**: bits per dimension of the pixels not in `S`, each scored
//!   by its predicted distribution given `S` alone (the per-pixel conditional,
//!   not the joint chain rule); density × bin width `1/255` (see
//!   [`crate::metrics`]);
//! - **classification** (Fig. 7), for data sets with labels: the accuracy of
//!   a small classifier ([`crate::classifier`], trained once on the training
//!   split and cached as `classifier.safetensors` in the run folder) on mean,
//!   sampled and nearest-filled images, with its accuracy on the true images
//!   as the ceiling.
//!
//! Results go to `eval.csv` (one row per `|S|`), `eval.json` (the settings,
//! conventions and classifier) and the line plots `eval_psnr.png`,
//! `eval_ssim.png`, `eval_bits_per_dim.png` and `eval_accuracy.png`
//! (`|S|` on a log axis). The defaults ([`EvalOptions::default`]) keep a CPU
//! run to a few minutes; the command line enlarges them (`--eval-images`,
//! `--eval-samples`, `--eval-autoregressive`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pixel_transformer::infer::shard::Shard;
use pixel_transformer::plot::{plot_lines, LineChart, Series};
use pixel_transformer::Backend;
use pixel_transformer::{
    io::write_atomic, Domain, Error, Model, OutputDistribution, Result, RunOptions, SampleOptions,
    SampleRequest, Split,
};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, ClassifierOptions};
use crate::metrics::{bits_per_dim, psnr, ssim};
use crate::render::{observe, TEMPERATURE};
use crate::{nearest_fill, Image, ImageDomain};

/// Test images whose samples share each sampling pass: larger groups keep
/// the cores busier; the working memory grows with the group.
const SAMPLE_GROUP: usize = 8;

/// Queries per held-out image of the earlier, generic NLL evaluation
/// (`pixel_transformer::train::heldout::heldout_metrics`). The image evaluation now
/// scores every pixel; kept for code that used it.
pub const EVAL_QUERIES: usize = 256;

/// Name of the cached classifier in the run folder.
pub const CLASSIFIER_FILE: &str = "classifier.safetensors";

/// How large an evaluation to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Test images (a fixed, seeded subset of the test split).
    pub images: usize,
    /// Samples per image and `|S|` (0: mean images and baseline only).
    pub samples: usize,
    /// Pixels drawn one at a time per sample before the rest take the mean
    /// (the paper's hybrid rule; the paper uses 2048, a full CIFAR image).
    pub autoregressive: usize,
    /// Observation-set sizes; empty: 4, 8, 16, … up to the training maximum,
    /// below the pixel count.
    pub observed: Vec<usize>,
    /// Training of the classifier (when none is cached).
    pub classifier: ClassifierOptions,
    /// The ranks sharing the model's passes (whole sampling groups each,
    /// so every rank gets one process's numbers); rank 0 writes the files.
    #[serde(skip)]
    pub shard: Shard,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            images: 100,
            samples: 1,
            autoregressive: 16,
            observed: Vec::new(),
            classifier: ClassifierOptions::default(),
            shard: Shard::default(),
        }
    }
}

impl EvalOptions {
    /// The defaults, enlarged or shrunk by `--eval-count`, `--eval-samples`
    /// and `--eval-autoregressive`.
    pub fn from_run(options: &RunOptions) -> Self {
        let d = EvalOptions::default();
        EvalOptions {
            images: options.eval_count.unwrap_or(d.images),
            samples: options.eval_samples.unwrap_or(d.samples),
            autoregressive: options.eval_autoregressive.unwrap_or(d.autoregressive),
            shard: options.shard.clone(),
            ..d
        }
    }
}

/// Powers of two from 4 up to `max` (4 alone if `max` < 8).
pub fn log_spaced_sizes(max: usize) -> Vec<usize> {
    let mut sizes = vec![4];
    while sizes.last().expect("not empty") * 2 <= max {
        sizes.push(sizes.last().expect("not empty") * 2);
    }
    sizes
}

/// Results at one observation-set size; accuracies are `None` without labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// `|S|`.
    pub observed: usize,
    /// Mean PSNR (dB) of the mean images.
    pub psnr_mean: f64,
    /// Mean PSNR of the samples.
    pub psnr_sample: f64,
    /// Mean PSNR of the nearest-neighbour fills.
    pub psnr_nearest: f64,
    /// Mean SSIM of the mean images.
    pub ssim_mean: f64,
    /// Mean SSIM of the samples.
    pub ssim_sample: f64,
    /// Mean SSIM of the nearest-neighbour fills.
    pub ssim_nearest: f64,
    /// Bits per dimension of the pixels not in `S`, given `S`.
    pub bits_per_dim: f64,
    /// Classifier accuracy on the mean images.
    pub accuracy_mean: Option<f64>,
    /// Classifier accuracy on the samples.
    pub accuracy_sample: Option<f64>,
    /// Classifier accuracy on the nearest-neighbour fills.
    pub accuracy_nearest: Option<f64>,
}

/// A whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The options it ran with.
    pub options: EvalOptions,
    /// One row per `|S|`.
    pub rows: Vec<EvalRow>,
    /// Classifier accuracy on the true test images (the ceiling).
    pub truth_accuracy: Option<f64>,
    /// Seconds the evaluation took.
    pub seconds: f64,
}

/// The classifier cached in `out_dir`, or a new one trained on the training
/// split (and saved there); `None` for data sets without labels.
fn classifier<const V: usize>(
    domain: &ImageDomain<V>,
    out_dir: &Path,
    options: &ClassifierOptions,
) -> Result<Option<Classifier>> {
    let (Some(labels), Some(_)) = (domain.labels(Split::Train), domain.labels(Split::Test)) else {
        return Ok(None);
    };
    let c = domain.settings();
    let data = serde_json::json!({
        "dataset": c.dataset.name(),
        "size": c.size,
        "channels": c.channels,
    });
    let path = out_dir.join(CLASSIFIER_FILE);
    if path.exists() {
        let loaded = Classifier::load(&path)?;
        if loaded.info().data != data {
            return Err(Error::Malformed {
                path,
                message: format!(
                    "this classifier was trained on {}, but the model is {data}; delete it to train a new one",
                    loaded.info().data
                ),
            });
        }
        return Ok(Some(loaded));
    }
    let n = domain.len(Split::Train).unwrap_or(0);
    let images: Vec<Image<V>> = (0..n)
        .filter_map(|i| domain.image(Split::Train, i))
        .collect();
    let trained = Classifier::train(&images, &labels[..images.len()], options, data)?;
    trained.save(&path)?;
    Ok(Some(trained))
}

/// Runs the evaluation with `options`, writing its files under `out_dir`.
pub fn evaluate_with<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &ImageDomain<V>,
    model: &Model<2, V, D, O>,
    out_dir: &Path,
    seed: u64,
    options: &EvalOptions,
) -> Result<EvalReport> {
    let start = Instant::now();
    let size = domain.size();
    let grid = domain.grid();
    let positions = grid.positions();
    let sizes = if options.observed.is_empty() {
        log_spaced_sizes(domain.defaults().sets.max_observed.min(grid.len() - 1))
    } else {
        options.observed.clone()
    };
    if let Some(&bad) = sizes.iter().find(|&&n| n == 0 || n >= grid.len()) {
        return Err(Error::invalid(format!(
            "|S| = {bad} is not between 1 and the {} pixels less one",
            grid.len()
        )));
    }
    let available = domain.len(Split::Test).unwrap_or(0);
    if options.images == 0 || available == 0 {
        return Err(Error::invalid(
            "the evaluation needs at least one test image",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xe7a1);
    let mut indices: Vec<usize> = (0..available).collect();
    indices.shuffle(&mut rng);
    indices.truncate(options.images);
    let truths: Vec<Image<V>> = indices
        .iter()
        .map(|&i| {
            domain
                .image(Split::Test, i)
                .expect("index below the length")
        })
        .collect();
    let orders: Vec<Vec<usize>> = truths
        .iter()
        .map(|_| {
            let mut o: Vec<usize> = (0..grid.len()).collect();
            o.shuffle(&mut rng);
            o
        })
        .collect();
    let shard = &options.shard;
    // Only the rank that writes reports accuracies (the classifier is trained once, there).
    let classifier = if shard.writes() {
        classifier(domain, out_dir, &options.classifier)?
    } else {
        None
    };
    let labels: Option<Vec<u8>> = domain
        .labels(Split::Test)
        .map(|l| indices.iter().map(|&i| l[i]).collect());
    let accuracy = |images: &[Image<V>], repeat: usize| -> Result<Option<f64>> {
        match (&classifier, &labels) {
            (Some(c), Some(l)) => {
                let l: Vec<u8> = l
                    .iter()
                    .flat_map(|&x| std::iter::repeat(x).take(repeat))
                    .collect();
                c.accuracy(images, &l).map(Some)
            }
            _ => Ok(None),
        }
    };

    let mut rows = Vec::new();
    for &n in &sizes {
        let (mut mean, mut sample, mut nearest) = (Vec::new(), Vec::new(), Vec::new());
        let mut sums = [[0.0f64; 2]; 3]; // [mean, sample, nearest] × [psnr, ssim]
        let (mut bits, mut bit_count) = (0.0f64, 0usize);
        let sets: Vec<_> = truths
            .iter()
            .zip(&orders)
            .map(|(truth, order)| observe(truth, order, n))
            .collect();
        // Several images share each sampling pass (one seed per image); a
        // rank takes whole groups.
        let requests: Vec<SampleRequest<2, V>> = sets
            .iter()
            .enumerate()
            .map(|(k, s)| SampleRequest {
                observed: s,
                positions: &positions,
                options: SampleOptions {
                    samples: options.samples,
                    autoregressive: Some(options.autoregressive),
                    temperature: TEMPERATURE,
                    seed: seed ^ ((n as u64) << 32 | k as u64),
                    ..SampleOptions::default()
                },
            })
            .collect();
        // Per image: the bits of its unobserved pixels, its mean image and
        // its samples, for this rank's groups, then for all.
        let pixels = grid.len();
        let width = (pixels - n) + pixels * V * (1 + options.samples);
        let mut mine = Vec::new();
        for (g, group) in requests.chunks(SAMPLE_GROUP).enumerate() {
            if !shard.mine(g) {
                continue;
            }
            let mut samples = if options.samples > 0 {
                model.sample_many(group)?
            } else {
                vec![Vec::new(); group.len()]
            };
            for (k, request) in group.iter().enumerate() {
                let j = g * SAMPLE_GROUP + k;
                let m = model.marginals(request.observed, &positions)?;
                for &i in &orders[j][n..] {
                    mine.push(bits_per_dim(
                        m.log_prob(i, &truths[j].pixels()[i]) as f64,
                        V,
                    ));
                }
                let images = std::iter::once(m.means()).chain(std::mem::take(&mut samples[k]));
                mine.extend(images.flatten().flatten().map(f64::from));
            }
        }
        let all = shard.collect_chunks(truths.len(), SAMPLE_GROUP, width, mine);
        let image = |numbers: &[f64]| -> Result<Image<V>> {
            let values = numbers
                .chunks(V)
                .map(|p| std::array::from_fn(|c| p[c] as f32))
                .collect();
            Image::new(size, size, values)
        };
        for (numbers, s) in all.chunks(width).zip(&sets) {
            let (image_bits, images) = numbers.split_at(pixels - n);
            for b in image_bits {
                bits += b;
                bit_count += 1;
            }
            let mut images = images.chunks(pixels * V);
            mean.push(image(images.next().unwrap_or_default())?);
            for values in images {
                sample.push(image(values)?);
            }
            nearest.push(nearest_fill(s, size, size)?);
        }
        for (kind, images) in [&mean, &sample, &nearest].into_iter().enumerate() {
            let per_truth = images.len() / truths.len().max(1);
            for (j, img) in images.iter().enumerate() {
                let truth = &truths[j / per_truth.max(1)];
                sums[kind][0] += psnr(img, truth)?;
                sums[kind][1] += ssim(img, truth)?;
            }
            let count = images.len().max(1) as f64;
            sums[kind] = sums[kind].map(|s| s / count);
        }
        let no_samples = |x: f64| if sample.is_empty() { f64::NAN } else { x };
        rows.push(EvalRow {
            observed: n,
            psnr_mean: sums[0][0],
            psnr_sample: no_samples(sums[1][0]),
            psnr_nearest: sums[2][0],
            ssim_mean: sums[0][1],
            ssim_sample: no_samples(sums[1][1]),
            ssim_nearest: sums[2][1],
            bits_per_dim: bits / bit_count as f64,
            accuracy_mean: accuracy(&mean, 1)?,
            accuracy_sample: if sample.is_empty() {
                None
            } else {
                accuracy(&sample, options.samples)?
            },
            accuracy_nearest: accuracy(&nearest, 1)?,
        });
    }
    let report = EvalReport {
        options: options.clone(),
        rows,
        truth_accuracy: accuracy(&truths, 1)?,
        seconds: start.elapsed().as_secs_f64(),
    };
    if shard.writes() {
        write_outputs(&report, classifier.as_ref(), out_dir)?;
    }
    Ok(report)
}

/// Formats an optional number for the CSV (empty when absent or not finite).
fn csv_number(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map_or(String::new(), |v| format!("{v:.6}"))
}

/// Formats an optional number for the table.
fn cell(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite())
        .map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The report as a table, one row per `|S|`.
pub fn table(report: &EvalReport) -> String {
    let o = &report.options;
    let mut t = format!(
        "{} test images, {} sample(s) per image (hybrid, {} pixels drawn one at a time), {:.0} s\n",
        o.images, o.samples, o.autoregressive, report.seconds
    );
    let _ = writeln!(
        t,
        "{:>5} | {:>23} | {:>23} | {:>8} | {:>20}",
        "", "PSNR dB (mean/samp/NN)", "SSIM (mean/samp/NN)", "bits/dim", "accuracy (m/s/NN)"
    );
    for r in &report.rows {
        let _ = writeln!(
            t,
            "{:>5} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>8} | {:>6} {:>6} {:>6}",
            r.observed,
            cell(Some(r.psnr_mean), 2),
            cell(Some(r.psnr_sample), 2),
            cell(Some(r.psnr_nearest), 2),
            cell(Some(r.ssim_mean), 3),
            cell(Some(r.ssim_sample), 3),
            cell(Some(r.ssim_nearest), 3),
            cell(Some(r.bits_per_dim), 3),
            cell(r.accuracy_mean, 3),
            cell(r.accuracy_sample, 3),
            cell(r.accuracy_nearest, 3),
        );
    }
    if let Some(a) = report.truth_accuracy {
        let _ = writeln!(
            t,
            "classifier accuracy on the true images (ceiling): {a:.3}"
        );
    }
    t
}

/// `eval.csv`, `eval.json` and the four plots.
fn write_outputs(
    report: &EvalReport,
    classifier: Option<&Classifier>,
    out_dir: &Path,
) -> Result<Vec<PathBuf>> {
    let mut csv = String::from(
        "observed,psnr_mean,psnr_sample,psnr_nearest,ssim_mean,ssim_sample,ssim_nearest,\
         bits_per_dim,accuracy_mean,accuracy_sample,accuracy_nearest,accuracy_truth\n",
    );
    for r in &report.rows {
        let numbers = [
            Some(r.psnr_mean),
            Some(r.psnr_sample),
            Some(r.psnr_nearest),
            Some(r.ssim_mean),
            Some(r.ssim_sample),
            Some(r.ssim_nearest),
            Some(r.bits_per_dim),
            r.accuracy_mean,
            r.accuracy_sample,
            r.accuracy_nearest,
            report.truth_accuracy,
        ];
        let fields: Vec<String> = numbers.into_iter().map(csv_number).collect();
        let _ = writeln!(csv, "{},{}", r.observed, fields.join(","));
    }
    let mut written = vec![out_dir.join("eval.csv")];
    write_atomic(&written[0], csv.as_bytes())?;

    let json = serde_json::json!({
        "report": report,
        "classifier": classifier.map(|c| c.info()),
        "conventions": {
            "observed": "S: distinct pixel centres in a seeded random order per image, nested across |S|",
            "psnr": format!("10 log10(1 / MSE) over all pixels and channels, values in [0, 1], capped at {} dB", crate::metrics::PSNR_MAX),
            "ssim": "Wang et al. 2004: 11×11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1, valid region, mean over channels",
            "bits_per_dim": "pixels not in S, each given S only: -log2(density × (1/255)^V) / V",
            "samples": "hybrid sampling: `autoregressive` pixels drawn one at a time (temperature 0.9), the rest the mean given them; scores averaged over samples",
            "classifier": "one-hidden-layer MLP trained on the training split, cached in classifier.safetensors",
        },
    });
    let path = out_dir.join("eval.json");
    let text = serde_json::to_string_pretty(&json).expect("plain JSON serialises");
    write_atomic(&path, text.as_bytes())?;
    written.push(path);

    let line = |name: &str, get: &dyn Fn(&EvalRow) -> Option<f64>, dashed: bool| Series {
        name: name.into(),
        points: report
            .rows
            .iter()
            .map(|r| (r.observed as f64, get(r).unwrap_or(f64::NAN)))
            .collect(),
        dashed,
    };
    let chart = |title: &str, y_label: &str, series: Vec<Series>| LineChart {
        title: title.into(),
        x_label: "observed pixels |S|".into(),
        y_label: y_label.into(),
        log_x: true,
        log_y: false,
        series,
    };
    let mut charts = vec![
        (
            "eval_psnr.png",
            chart(
                "Reconstruction: PSNR against the true image",
                "PSNR (dB)",
                vec![
                    line("mean image", &|r| Some(r.psnr_mean), false),
                    line("samples", &|r| Some(r.psnr_sample), false),
                    line("nearest-neighbour fill", &|r| Some(r.psnr_nearest), true),
                ],
            ),
        ),
        (
            "eval_ssim.png",
            chart(
                "Reconstruction: SSIM against the true image",
                "SSIM",
                vec![
                    line("mean image", &|r| Some(r.ssim_mean), false),
                    line("samples", &|r| Some(r.ssim_sample), false),
                    line("nearest-neighbour fill", &|r| Some(r.ssim_nearest), true),
                ],
            ),
        ),
        (
            "eval_bits_per_dim.png",
            chart(
                "Unobserved pixels given S",
                "bits per dimension",
                vec![line("model", &|r| Some(r.bits_per_dim), false)],
            ),
        ),
    ];
    if report.truth_accuracy.is_some() {
        charts.push((
            "eval_accuracy.png",
            chart(
                "Classification of generated images",
                "accuracy",
                vec![
                    line("mean image", &|r| r.accuracy_mean, false),
                    line("samples", &|r| r.accuracy_sample, false),
                    line("nearest-neighbour fill", &|r| r.accuracy_nearest, false),
                    line("true images (ceiling)", &|_| report.truth_accuracy, true),
                ],
            ),
        ));
    }
    for (name, c) in charts {
        let path = out_dir.join(name);
        plot_lines(&path, &c)?;
        written.push(path);
    }
    Ok(written)
}

/// The `eval` command: [`evaluate_with`] with the command line's options
/// (or the defaults), returning the table.
pub(crate) fn evaluate<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &ImageDomain<V>,
    model: &Model<2, V, D, O>,
    out_dir: &Path,
    options: &RunOptions,
) -> Result<String> {
    let report = evaluate_with(
        domain,
        model,
        out_dir,
        options.seed,
        &EvalOptions::from_run(options),
    )?;
    Ok(table(&report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_double_from_four_up_to_the_limit() {
        assert_eq!(log_spaced_sizes(512), [4, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(log_spaced_sizes(783), [4, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(log_spaced_sizes(7), [4]);
        assert_eq!(log_spaced_sizes(0), [4]);
    }
}
