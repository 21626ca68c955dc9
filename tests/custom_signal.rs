//! The "your own signal type" example (`examples/custom_signal.rs`) as a test:
//! the example file is compiled into this test as a module, so the book's
//! tutorial code is checked to train, plot, save, load and answer requests.

#[allow(dead_code)] // the example's `main` is not called here
#[path = "../examples/custom_signal.rs"]
mod custom_signal;

use clap::Parser;
use custom_signal::{AudioConfig, AudioDomain};
use pixel_transformer::cli::{run_with, Cli};
use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::domain::config_from_json;
use pixel_transformer::infer::predict::Response;
use pixel_transformer::train::checkpoint;
use pixel_transformer::train::fresh_state;
use pixel_transformer::train::trainer::{batch_for_step, batch_loss, train, TrainOptions};
use pixel_transformer::train::TrainSettings;
use pixel_transformer::{
    BinnedMixture, Domain, Grid, Model, Observations, OutputDistribution, SpatialSignal, Split,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Held-out batches the loss is averaged over.
const HELDOUT_BATCHES: u64 = 8;

fn cli(args: &[&str]) -> Cli<AudioConfig> {
    Cli::<AudioConfig>::try_parse_from(std::iter::once("custom_signal").chain(args.iter().copied()))
        .expect("the command line parses")
}

/// Mean training loss over the first held-out batches of the run's test stream.
fn heldout_loss<O: OutputDistribution<1>>(
    domain: &AudioDomain,
    model: &Model<1, 1, Cpu, O>,
    settings: &TrainSettings,
) -> f32 {
    let total: f32 = (0..HELDOUT_BATCHES)
        .map(|k| batch_loss(model, &batch_for_step(domain, settings, Split::Test, k)).unwrap())
        .sum();
    total / HELDOUT_BATCHES as f32
}

fn is_png(path: &std::path::Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn brief_training_beats_the_untrained_model_and_render_writes_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let cli = cli(&["--preset", "tiny", "--steps", "150", "--batch-size", "16"]);
    let domain = AudioDomain::from_config(&cli.domain).unwrap();
    let mut state = fresh_state(&domain, &cli.choices(), &Cpu::default()).unwrap();
    let before = heldout_loss(&domain, &state.model, &state.settings);

    let mut options = TrainOptions::new(150, dir.path());
    options.progress = false;
    options.eval_every = 0;
    let lines = train(&domain, &mut state, &options).unwrap();
    assert_eq!(lines.len(), 150);
    let after = heldout_loss(&domain, &state.model, &state.settings);
    eprintln!("held-out loss: untrained {before:.4}, after 150 steps {after:.4}");
    assert!(
        after < before - 0.1,
        "150 steps did not lower the held-out loss enough: {before} -> {after}"
    );

    // The stock 1-D picture, with no plotting code in the example.
    let written = domain
        .render(&state.model, dir.path(), &Default::default())
        .unwrap();
    let samples = dir.path().join("samples.png");
    assert_eq!(written, std::slice::from_ref(&samples));
    assert!(is_png(&samples));
}

#[test]
fn the_command_line_trains_samples_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let common = ["--quiet", "--max-partials", "2"];
    let with = |args: &[&str]| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(common);
        cli(&v)
    };
    run_with::<1, 1, AudioDomain>(with(&[
        "train", "--preset", "tiny", "--steps", "12", "--out", run_s,
    ]))
    .unwrap();

    // The checkpoint records the domain and its settings.
    let meta = checkpoint::read_meta(&run).unwrap();
    assert_eq!(meta.domain_name, "audio");
    assert_eq!(meta.step, 12);
    let stored = config_from_json::<1, 1, AudioDomain>(&meta.domain).unwrap();
    assert_eq!(stored.max_partials, 2);

    // `sample` beside the training log also draws the training curve.
    run_with::<1, 1, AudioDomain>(with(&["sample", "--out", run_s])).unwrap();
    assert!(is_png(&run.join("samples.png")));
    assert!(is_png(&run.join("training_curve.png")));

    // `sample` into a folder that does not exist yet.
    let pictures = dir.path().join("pictures").join("new");
    run_with::<1, 1, AudioDomain>(with(&[
        "sample",
        "--checkpoint",
        run_s,
        "--out",
        pictures.to_str().unwrap(),
    ]))
    .unwrap();
    assert!(is_png(&pictures.join("samples.png")));

    run_with::<1, 1, AudioDomain>(with(&["eval", "--checkpoint", run_s, "--out", run_s])).unwrap();
    let csv = std::fs::read_to_string(run.join("eval.csv")).unwrap();
    assert!(csv.starts_with("observed,nll_nats,rmse\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 5);

    let requests = dir.path().join("requests.jsonl");
    let answers = dir.path().join("answers.jsonl");
    std::fs::write(
        &requests,
        "{\"positions\": [[-0.5], [0.5]], \"values\": [[0.2], [-0.4]], \"queries\": [[0.0], [0.9]], \"truth\": [[0.1], [0.0]]}\n\n{\"queries\": [[0.0]]}\n",
    )
    .unwrap();
    run_with::<1, 1, AudioDomain>(with(&[
        "predict",
        "--checkpoint",
        run_s,
        "--input",
        requests.to_str().unwrap(),
        "--output",
        answers.to_str().unwrap(),
    ]))
    .unwrap();
    let text = std::fs::read_to_string(&answers).unwrap();
    let responses: Vec<Response> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].mean.len(), 2);
    assert_eq!(responses[0].nll.as_ref().map(Vec::len), Some(2));
    assert!(responses[0].std.iter().flatten().all(|s| *s > 0.0));
    assert_eq!(responses[1].nll, None);

    // `predict` answers with the checkpoint's model, as the library API does.
    let loaded =
        checkpoint::load::<1, 1, Cpu, BinnedMixture>(&run, "audio", &Cpu::default()).unwrap();
    let observed = Observations::from_pairs(vec![[-0.5], [0.5]], vec![[0.2], [-0.4]]).unwrap();
    let means = loaded.model.mean_field(&observed, &[[0.0], [0.9]]).unwrap();
    for (m, r) in means.iter().zip(&responses[0].mean) {
        assert!((m[0] - r[0]).abs() < 1e-6, "{m:?} vs {r:?}");
    }
}

#[test]
fn clips_are_seeded_bounded_and_bad_settings_are_errors() {
    let domain = AudioDomain::from_config(&cli(&[]).domain).unwrap();
    let draw = |seed| domain.draw_signal(Split::Train, &mut ChaCha8Rng::seed_from_u64(seed));
    assert_eq!(draw(7), draw(7), "the same RNG state gives the same clip");
    assert_ne!(draw(7), draw(8));
    for seed in 0..200 {
        let clip = draw(seed);
        assert!((2..=3).contains(&clip.partials.len()));
        let bound: f32 = clip.partials.iter().map(|p| p.amplitude).sum();
        for x in Grid::new([64]).positions() {
            let [v] = clip.value_at(x);
            assert!(v.is_finite() && v.abs() <= bound + 1e-5);
        }
    }
    assert!(AudioDomain::from_config(&cli(&["--max-partials", "0"]).domain).is_err());
    assert!(AudioDomain::from_config(&cli(&["--max-partials", "9"]).domain).is_err());
    assert!(AudioDomain::from_config(&cli(&["--max-decay=-1"]).domain).is_err());
    assert!(AudioDomain::from_config(&cli(&["--max-decay", "NaN"]).domain).is_err());
    // A missing checkpoint is an error that names it, not a panic.
    let err = run_with::<1, 1, AudioDomain>(cli(&["eval", "--checkpoint", "/nonexistent/run"]))
        .unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/run"), "{err:#}");
}
