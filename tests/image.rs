//! The image domain end to end: colour through the generic command line,
//! and a short learning run on the embedded MNIST digits.

use std::path::Path;
use std::time::Instant;

use pixel_transformer::cli::run_grey_or_colour_from;
use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::train::data::draw_example_with;
use pixel_transformer::train::fit_distribution;
use pixel_transformer::train::heldout::{heldout_metrics, HeldoutRow, HELDOUT_SIGNALS};
use pixel_transformer::train::trainer::{train, TrainOptions, TrainState};
use pixel_transformer::train::TrainSettings;
use pixel_transformer::{BinnedMixture, Model, Preset, SetSizes, Split};
use pixel_transformer_image::classifier::ClassifierOptions;
use pixel_transformer_image::deps::image;
use pixel_transformer_image::{evaluate_with, DatasetKind, EvalOptions, ImageConfig, ImageDomain};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Runs the example's dispatch: grey or colour from the options or checkpoint.
fn run(args: &[&str]) -> anyhow::Result<usize> {
    let argv = std::iter::once("image").chain(args.iter().copied());
    run_grey_or_colour_from::<2, ImageDomain<1>, ImageDomain<3>, _, _>(argv)
}

fn decode(path: &Path) -> image::RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

#[test]
fn colour_images_train_and_render_end_to_end() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let channels = run(&[
        "train",
        "--dataset",
        "shapes",
        "--size",
        "16",
        "--preset",
        "tiny",
        "--steps",
        "30",
        "--batch-size",
        "2",
        "--out",
        out,
        "--quiet",
    ])
    .unwrap();
    assert_eq!(channels, 3);
    let meta = pixel_transformer::train::checkpoint::read_meta(dir.path()).unwrap();
    assert_eq!((meta.step, meta.value_dims, meta.position_dims), (30, 3, 2));

    // `sample` without --dataset: the checkpoint says colour shapes at 16 px.
    assert_eq!(run(&["sample", "--out", out]).unwrap(), 3);
    for name in [
        "means.png",
        "samples.png",
        "std.png",
        "composition.png",
        "training_curve.png",
    ] {
        let img = decode(&dir.path().join(name));
        assert!(img.width() > 100 && img.height() > 100, "{name}");
    }
    // The truth row of the samples figure is in colour.
    let samples = decode(&dir.path().join("samples.png"));
    assert!(
        samples.pixels().any(|p| p[0] != p[1] || p[1] != p[2]),
        "samples.png is grey"
    );
    // 5 rows (truth, nearest fill, 3 samples) × 4 columns of 16 px tiles,
    // with titles.
    let size = pixel_transformer::plot::image_grid_size;
    assert_eq!((samples.width(), samples.height()), size(5, 4, 16, 16));
    // Composition: 4 pairs (columns) × (2 sources, composed, nearest fill, mean, 2 samples).
    let composition = decode(&dir.path().join("composition.png"));
    assert_eq!(
        (composition.width(), composition.height()),
        size(7, 4, 16, 16)
    );
    let figures_info = || -> serde_json::Value {
        let text = std::fs::read_to_string(dir.path().join("figures.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let info = figures_info();
    assert_eq!(info["mean_sizes"], serde_json::json!([4, 16, 64, 256]));
    assert_eq!(info["composition_observed"], 128);
    assert_eq!(info["sample_autoregressive"], 64);

    // With no pixel drawn one at a time every sample is the mean image: the
    // three sample rows are equal. With the default 64 they differ.
    let sample_rows = |img: &image::RgbImage| -> Vec<Vec<[u8; 3]>> {
        (2..5)
            .map(|row| {
                (0..4)
                    .flat_map(|col| {
                        let (x0, y0, w, h) =
                            pixel_transformer::plot::image_grid_cell(16, 16, row, col);
                        (y0..y0 + h).flat_map(move |y| (x0..x0 + w).map(move |x| (x, y)))
                    })
                    .map(|(x, y)| img.get_pixel(x, y).0)
                    .collect()
            })
            .collect()
    };
    let drawn = sample_rows(&samples);
    assert!(drawn[0] != drawn[1] || drawn[1] != drawn[2]);
    run(&["sample", "--out", out, "--sample-autoregressive", "0"]).unwrap();
    let means_only = sample_rows(&decode(&dir.path().join("samples.png")));
    assert!(means_only[0] == means_only[1] && means_only[1] == means_only[2]);
    assert_eq!(figures_info()["sample_autoregressive"], 0);
    // A temperature that is not positive is an error, not a panic.
    let err = run(&["sample", "--out", out, "--sample-temperature", "0"]).unwrap_err();
    assert!(format!("{err:#}").contains("temperature"), "{err:#}");
    eprintln!("colour end to end: {:.1} s", start.elapsed().as_secs_f64());
}

#[test]
fn eval_writes_the_csv_and_plots_end_to_end_and_is_reproducible() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run(&[
        "train",
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--out",
        out,
        "--quiet",
    ])
    .unwrap();
    let eval = [
        "eval",
        "--out",
        out,
        "--eval-images",
        "3",
        "--eval-samples",
        "2",
        "--eval-autoregressive",
        "2",
    ];
    assert_eq!(run(&eval).unwrap(), 1);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let csv = read("eval.csv");
    let lines: Vec<&str> = csv.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header.len(), 12);
    assert_eq!(header[0], "observed");
    // MNIST: |S| = 4, 8, …, 512, every number present and finite.
    let observed: Vec<usize> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(observed, [4, 8, 16, 32, 64, 128, 256, 512]);
    for line in &lines[1..] {
        for (name, field) in header.iter().zip(line.split(',')) {
            let x: f64 = field
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {field:?}"));
            assert!(x.is_finite(), "{name} = {x}");
            if name.starts_with("accuracy") || name.starts_with("ssim") {
                assert!(x <= 1.0, "{name} = {x}");
            }
        }
    }
    // The nearest-neighbour fill improves as pixels are added.
    let psnr_nearest = |l: &str| -> f64 { l.split(',').nth(3).unwrap().parse().unwrap() };
    assert!(
        psnr_nearest(lines[8]) > psnr_nearest(lines[1]) + 3.0,
        "{csv}"
    );
    let info: serde_json::Value = serde_json::from_str(&read("eval.json")).unwrap();
    assert_eq!(info["report"]["options"]["images"], 3);
    assert_eq!(info["report"]["options"]["samples"], 2);
    assert!(info["classifier"]["train_accuracy"].as_f64().unwrap() > 0.5);
    for name in [
        "eval_psnr.png",
        "eval_ssim.png",
        "eval_bits_per_dim.png",
        "eval_accuracy.png",
    ] {
        let img = decode(&dir.path().join(name));
        assert!(img.width() > 300 && img.height() > 200, "{name}");
    }

    // Again: the cached classifier is reused and every number is the same.
    let classifier = dir.path().join("classifier.safetensors");
    let modified = std::fs::metadata(&classifier).unwrap().modified().unwrap();
    run(&eval).unwrap();
    assert_eq!(
        std::fs::metadata(&classifier).unwrap().modified().unwrap(),
        modified
    );
    assert_eq!(read("eval.csv"), csv);

    // A damaged classifier is an error that names it, not a silent retraining.
    std::fs::write(&classifier, b"broken").unwrap();
    let err = run(&eval).unwrap_err();
    assert!(
        format!("{err:#}").contains("classifier.safetensors"),
        "{err:#}"
    );
    eprintln!("eval end to end: {:.1} s", start.elapsed().as_secs_f64());
}

/// The held-out NLL (nats) and RMSE of the best constant Gaussian: the mean and
/// standard deviation of the very targets [`heldout_metrics`] scores.
fn constant_baseline(domain: &ImageDomain<1>, n: usize, queries: usize, seed: u64) -> HeldoutRow {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n as u64);
    let values: Vec<f64> = (0..HELDOUT_SIGNALS)
        .flat_map(|_| draw_example_with(domain, Split::Test, n, queries, &mut rng).targets)
        .map(|t| t[0] as f64)
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    HeldoutRow {
        observed: n,
        nll: 0.5 * (2.0 * std::f64::consts::PI * var).ln() + 0.5,
        rmse: var.sqrt(),
    }
}

#[test]
fn a_tiny_model_learns_mnist_beyond_the_untrained_model_and_the_mean_value() {
    let start = Instant::now();
    let domain = ImageDomain::<1>::new(ImageConfig {
        dataset: DatasetKind::Mnist,
        data: None,
        size: Some(28),
        grey: false,
        channels: Some(1),
        augment: false,
    })
    .unwrap();
    let seed = 3;
    let sigma_floor = 1.0 / 255.0;
    // The tiny preset with a lower Fourier scale: with only 8 random
    // frequencies drawn at the default scale (σ = 2) a 2-D tiny model gets
    // no low-frequency position features and sits for thousands of steps at
    // the position-blind marginal (mean-value RMSE); at σ = 0.5 it learns
    // where digits are within a few hundred steps.
    let mut config = Preset::Tiny.config();
    config.fourier_scale = 0.5;
    let new_model = || {
        let dist = fit_distribution(&domain, 32, sigma_floor, seed).unwrap();
        Model::<2, 1, Cpu, BinnedMixture>::new(config.clone(), dist, seed, &Cpu::default()).unwrap()
    };
    let (sizes, queries, eval_seed) = ([16, 64], 64, 11);
    let untrained = heldout_metrics(&domain, &new_model(), &sizes, queries, eval_seed).unwrap();

    let settings = TrainSettings {
        seed,
        batch_size: 16,
        learning_rate: 2e-3,
        sets: SetSizes {
            min_observed: 4,
            max_observed: 64,
            queries: 64,
        },
        cosine_decay_steps: Some(STEPS),
        dropout: 0.0,
    };
    const STEPS: u64 = 600;
    let mut state = TrainState::new(new_model(), settings);
    let dir = tempfile::tempdir().unwrap();
    let mut options = TrainOptions::new(STEPS, dir.path());
    options.progress = false;
    options.eval_every = 0;
    options.checkpoint_every = STEPS;
    train(&domain, &mut state, &options).unwrap();
    let trained = heldout_metrics(&domain, &state.model, &sizes, queries, eval_seed).unwrap();

    for ((t, u), &n) in trained.iter().zip(&untrained).zip(&sizes) {
        let base = constant_baseline(&domain, n, queries, eval_seed);
        eprintln!(
            "|S| = {n}: NLL trained {:.3}, untrained {:.3}, constant {:.3}; RMSE trained {:.4}, untrained {:.4}, mean value {:.4}",
            t.nll, u.nll, base.nll, t.rmse, u.rmse, base.rmse
        );
        assert!(t.nll < u.nll - 0.5, "|S| = {n}: {t:?} vs untrained {u:?}");
        assert!(t.nll < base.nll, "|S| = {n}: {t:?} vs constant {base:?}");
        assert!(
            t.rmse < base.rmse,
            "|S| = {n}: {t:?} vs mean value {base:?}"
        );
    }

    // The evaluation's measures see the learning too: mean images closer to
    // the truth and fewer bits per pixel than the untrained model's.
    let options = EvalOptions {
        images: 10,
        samples: 0,
        observed: sizes.to_vec(),
        classifier: ClassifierOptions {
            epochs: 1,
            ..ClassifierOptions::default()
        },
        ..EvalOptions::default()
    };
    let before = evaluate_with(&domain, &new_model(), dir.path(), 5, &options).unwrap();
    let after = evaluate_with(&domain, &state.model, dir.path(), 5, &options).unwrap();
    for (b, a) in before.rows.iter().zip(&after.rows) {
        eprintln!(
            "|S| = {}: mean-image PSNR trained {:.2} dB, untrained {:.2} dB; bits/dim {:.3} vs {:.3}",
            a.observed, a.psnr_mean, b.psnr_mean, a.bits_per_dim, b.bits_per_dim
        );
        assert!(a.psnr_mean > b.psnr_mean + 1.0, "{a:?} vs untrained {b:?}");
        assert!(
            a.bits_per_dim < b.bits_per_dim - 0.5,
            "{a:?} vs untrained {b:?}"
        );
    }
    eprintln!(
        "MNIST learning test: {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn the_shipped_mnist_model_answers_predict_requests() {
    // One observed white pixel at the centre; queries at it, beside it, and
    // in a corner (always black in MNIST). A trained model follows the
    // observation and knows the background; an untrained one does neither.
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let answers = dir.path().join("answers.jsonl");
    std::fs::write(
        &requests,
        "{\"positions\": [[0.0, 0.0]], \"values\": [[1.0]], \"queries\": [[0.0, 0.0], [0.93, 0.93]]}\n",
    )
    .unwrap();
    let (input, output) = (requests.to_str().unwrap(), answers.to_str().unwrap());
    let channels = run(&[
        "predict",
        "--checkpoint",
        "pretrained",
        "--input",
        input,
        "--output",
        output,
    ])
    .unwrap();
    assert_eq!(channels, 1);
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&answers).unwrap().trim()).unwrap();
    let mean: Vec<f64> = line["mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_f64().unwrap())
        .collect();
    assert!(mean[0] > 0.6, "at the observed white pixel: {mean:?}");
    assert!(mean[1] < 0.05, "in the corner: {mean:?}");
}
