//! The generic command line, driven through `cli::run_with` exactly as a
//! domain's example program would be.

use std::path::Path;

use clap::Parser;
use pixel_transformer::cli::{run_with, Cli};
use pixel_transformer_polynomial::PolynomialDomain;

fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut argv = vec!["polynomial"];
    argv.extend_from_slice(args);
    run_with::<1, 1, PolynomialDomain>(Cli::try_parse_from(argv)?)
}

/// The whole error chain of a command line that must fail.
fn error_of(args: &[&str]) -> String {
    format!("{:#}", run(args).unwrap_err())
}

/// Trains a tiny polynomial model for `steps` into `out`, with `extra` options.
fn train_tiny(out: &str, steps: &str, seed: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--preset",
        "tiny",
        "--steps",
        steps,
        "--batch-size",
        "4",
        "--seed",
        seed,
        "--out",
        out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    run(&args).unwrap();
}

fn weights(dir: &Path) -> Vec<Vec<f32>> {
    let device = pixel_transformer::deps::dfdx::prelude::Cpu::default();
    let loaded = pixel_transformer::train::checkpoint::load::<
        1,
        1,
        _,
        pixel_transformer::BinnedMixture,
    >(dir, "polynomial", &device)
    .unwrap();
    loaded.model.params().iter().map(|p| p.as_vec()).collect()
}

#[test]
fn export_averages_the_weights_of_several_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (run_dir, averaged) = (path("run"), path("averaged"));
    train_tiny(
        &run_dir,
        "8",
        "3",
        &["--checkpoint-every", "4", "--keep-snapshots"],
    );
    // Weights-only copies of the checkpoints at steps 4 and 8.
    let snapshots = dir.path().join("run/snapshots");
    let mut kept: Vec<String> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, ["step-000004", "step-000008"]);
    let early = snapshots.join("step-000004").to_str().unwrap().to_string();
    let meta = pixel_transformer::train::checkpoint::read_meta(Path::new(&early)).unwrap();
    assert!(meta.step == 4 && !meta.has_optimizer);
    run(&[
        "export",
        "--checkpoint",
        &run_dir,
        "--average-with",
        &early,
        "--out",
        &averaged,
    ])
    .unwrap();
    let (a, b, mean) = (
        weights(dir.path().join("run").as_path()),
        weights(Path::new(&early)),
        weights(dir.path().join("averaged").as_path()),
    );
    assert_ne!(a, b, "the run moved between step 4 and 8");
    for ((a, b), m) in a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .zip(mean.iter().flatten())
    {
        assert!((m - (a + b) / 2.0).abs() <= 1e-6 * (1.0 + a.abs() + b.abs()));
    }
    // The header is the first checkpoint's: step 8, weights only.
    let meta =
        pixel_transformer::train::checkpoint::read_meta(dir.path().join("averaged").as_path())
            .unwrap();
    assert!(meta.step == 8 && !meta.has_optimizer);

    // Another initialisation (another seed: other bins and Fourier matrix) or
    // another architecture cannot be averaged in; the error names the file.
    let (other_seed, other_preset) = (path("seed"), path("preset"));
    train_tiny(&other_seed, "2", "4", &[]);
    run(&[
        "train",
        "--preset",
        "small",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--out",
        &other_preset,
        "--quiet",
    ])
    .unwrap();
    for (other, what) in [(&other_seed, "differs"), (&other_preset, "architecture")] {
        let err = error_of(&[
            "export",
            "--checkpoint",
            &run_dir,
            "--average-with",
            other,
            "--out",
            &path("bad"),
        ]);
        assert!(err.contains(other.as_str()) && err.contains(what), "{err}");
    }
    assert!(!dir.path().join("bad").exists());
    // Nor can an export overwrite one of the checkpoints it averages.
    let err = error_of(&[
        "export",
        "--checkpoint",
        &run_dir,
        "--average-with",
        &early,
        "--out",
        &early,
    ]);
    assert!(err.contains("overwrite"), "{err}");
}

#[test]
fn train_sample_eval_predict_and_resume_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run(&[
        "train",
        "--preset",
        "tiny",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--out",
        out,
        "--quiet",
    ])
    .unwrap();
    assert!(dir.path().join("checkpoint.safetensors").exists());
    assert!(dir.path().join("checkpoint.json").exists());
    // A second fresh run into the same folder is refused unless asked for.
    let err = error_of(&[
        "train", "--preset", "tiny", "--steps", "6", "--out", out, "--quiet",
    ]);
    assert!(
        err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    // Resuming without --steps trains to the run's own total (6), not to the
    // domain's default: a finished run stays finished.
    run(&["train", "--resume", "--out", out, "--quiet"]).unwrap();
    assert_eq!(
        pixel_transformer::train::checkpoint::read_meta(dir.path())
            .unwrap()
            .step,
        6
    );
    run(&["train", "--resume", "--steps", "9", "--out", out, "--quiet"]).unwrap();
    let meta = pixel_transformer::train::checkpoint::read_meta(dir.path()).unwrap();
    assert_eq!(meta.step, 9);
    run(&["sample", "--out", out]).unwrap();
    let shipped = dir.path().join("shipped");
    run(&[
        "export",
        "--checkpoint",
        out,
        "--out",
        shipped.to_str().unwrap(),
    ])
    .unwrap();
    let exported = pixel_transformer::train::checkpoint::read_meta(&shipped).unwrap();
    assert!(!exported.has_optimizer && exported.step == 9);
    assert!(run(&["export", "--checkpoint", out, "--out", out]).is_err());
    for f in ["samples.png", "samples.svg", "training_curve.png"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }

    let requests = dir.path().join("requests.jsonl");
    std::fs::write(&requests, "{\"positions\": [[0.5]], \"values\": [[1.0]], \"queries\": [[0.0], [0.25]], \"truth\": [[0.3], [0.4]]}\n").unwrap();
    let answers = dir.path().join("answers.jsonl");
    run(&[
        "predict",
        "--out",
        out,
        "--input",
        requests.to_str().unwrap(),
        "--output",
        answers.to_str().unwrap(),
    ])
    .unwrap();
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&answers).unwrap().trim()).unwrap();
    assert_eq!(line["mean"].as_array().unwrap().len(), 2);
    assert_eq!(line["nll"].as_array().unwrap().len(), 2);

    // A malformed request names the file and the line, and writes no answers file.
    std::fs::write(
        &requests,
        "{\"queries\": [[0.0]]}\n{\"queries\": [[0.0, 1.0]]}\n",
    )
    .unwrap();
    let bad_out = dir.path().join("bad.jsonl");
    let msg = error_of(&[
        "predict",
        "--out",
        out,
        "--input",
        requests.to_str().unwrap(),
        "--output",
        bad_out.to_str().unwrap(),
    ]);
    assert!(
        msg.contains("requests.jsonl") && msg.contains("line 2"),
        "{msg}"
    );
    assert!(!bad_out.exists());
}

#[test]
fn bad_command_lines_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // Nothing to load yet.
    let err = error_of(&["eval", "--out", out]);
    assert!(
        err.contains("no checkpoint in") && err.contains("train one first"),
        "{err}"
    );
    // Nothing to resume.
    let err = error_of(&["train", "--resume", "--out", out]);
    assert!(err.contains("resume"), "{err}");
    // Bad domain option.
    let err = error_of(&["train", "--noise=-1", "--out", out]);
    assert!(err.contains("noise"), "{err}");
    // Unknown preset is a parse error.
    assert!(run(&["train", "--preset", "huge"]).is_err());
    // No bins at all.
    let err = error_of(&["train", "--bins", "0", "--out", out]);
    assert!(err.contains("--bins"), "{err}");
    // Observation set sizes upside down, or beyond any memory.
    let err = error_of(&[
        "train",
        "--min-observed",
        "9",
        "--max-observed",
        "3",
        "--out",
        out,
    ]);
    assert!(err.contains("--min-observed 9"), "{err}");
    let err = error_of(&["train", "--min-observed", "30", "--out", out]);
    assert!(err.contains("smallest training set (30)"), "{err}");
    let err = error_of(&["train", "--max-observed", "100000000", "--out", out]);
    assert!(err.contains("working memory"), "{err}");
    let huge = usize::MAX.to_string();
    let err = error_of(&["train", "--max-observed", &huge, "--out", out]);
    assert!(err.contains("beyond any memory"), "{err}");
    // A dropout rate that is not a probability below 1.
    for rate in ["--dropout=1", "--dropout=-0.5", "--dropout=NaN"] {
        let err = error_of(&["train", rate, "--out", out]);
        assert!(
            err.contains("--dropout") && err.contains("below 1"),
            "{err}"
        );
    }
}

#[test]
fn bins_on_the_command_line_choose_the_output_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = ["train", "--preset", "tiny", "--steps", "1", "--bins", "3"];
    run(&[&args[..], &["--out", out, "--quiet"]].concat()).unwrap();
    let meta = pixel_transformer::train::checkpoint::read_meta(dir.path()).unwrap();
    let centres = meta.distribution["centres"].as_array().unwrap().len();
    assert_eq!(centres, 3, "{}", meta.distribution);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_build_it() {
    let err = error_of(&["eval", "--device", "cuda"]);
    assert!(err.contains("--features cuda"), "{err}");
}

#[test]
fn training_can_start_from_the_weights_of_another_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (base, frozen, tuned) = (path("base"), path("frozen"), path("tuned"));
    let tiny = ["--preset", "tiny", "--batch-size", "4", "--quiet"];
    run(&[&["train", "--steps", "6", "--out", &base][..], &tiny].concat()).unwrap();

    let requests = dir.path().join("requests.jsonl");
    std::fs::write(
        &requests,
        "{\"positions\": [[0.5], [-0.2]], \"values\": [[1.0], [0.1]], \"queries\": [[0.0], [0.7]]}\n",
    )
    .unwrap();
    let answers = |checkpoint: &str| {
        let file = dir.path().join("answers.jsonl");
        let (input, output) = (requests.to_str().unwrap(), file.to_str().unwrap());
        run(&[
            "predict",
            "--checkpoint",
            checkpoint,
            "--input",
            input,
            "--output",
            output,
        ])
        .unwrap();
        std::fs::read_to_string(file).unwrap()
    };

    // With a learning rate far below f32's resolution the weights cannot
    // move, so the new run predicts what its source does (to rounding); a
    // fresh model of another seed (what a run that ignored --checkpoint
    // would be) predicts otherwise. (A learning rate of 0 is refused.)
    let from_base = [
        "train",
        "--checkpoint",
        &base,
        "--seed",
        "5",
        "--steps",
        "2",
    ];
    run(&[
        &from_base[..],
        &["--lr", "1e-30", "--out", &frozen, "--quiet"],
    ]
    .concat())
    .unwrap();
    let numbers = |text: String| -> Vec<f64> {
        text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
            .filter_map(|t| t.parse().ok())
            .collect()
    };
    let (frozen_answers, base_answers) = (numbers(answers(&frozen)), numbers(answers(&base)));
    assert_eq!(frozen_answers.len(), base_answers.len());
    for (f, b) in frozen_answers.iter().zip(&base_answers) {
        assert!((f - b).abs() <= 1e-6 * b.abs().max(1.0), "{f} vs {b}");
    }
    let meta =
        pixel_transformer::train::checkpoint::read_meta(std::path::Path::new(&frozen)).unwrap();
    assert_eq!((meta.step, meta.has_optimizer), (2, true));

    // Dropout and the set sizes are training settings, so a fine-tuning run
    // may choose them.
    let settings = [
        "--dropout",
        "0.1",
        "--min-observed",
        "2",
        "--max-observed",
        "5",
    ];
    run(&[&from_base[..], &settings, &["--out", &tuned, "--quiet"]].concat()).unwrap();
    assert_ne!(answers(&tuned), answers(&base));
    let meta =
        pixel_transformer::train::checkpoint::read_meta(std::path::Path::new(&tuned)).unwrap();
    assert_eq!(meta.training.dropout, 0.1);
    let sets = &meta.training.sets;
    assert_eq!(
        (sets.min_observed, sets.max_observed, sets.queries),
        (2, 5, 20)
    );

    // The architecture is the checkpoint's; a run may not replace its source.
    let err = error_of(&[&from_base[..], &["--preset", "small", "--out", &path("x")]].concat());
    assert!(err.contains("--preset") && err.contains("base"), "{err}");
    let err = error_of(&[&from_base[..], &["--overwrite", "--out", &base]].concat());
    assert!(err.contains("would overwrite them"), "{err}");
    let missing = path("missing");
    let err = error_of(&["train", "--checkpoint", &missing, "--out", &path("y")]);
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn the_main_job_replaces_only_a_run_it_would_write_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let meta = || pixel_transformer::train::checkpoint::read_meta(dir.path()).unwrap();
    let tiny = [
        "--preset",
        "tiny",
        "--batch-size",
        "4",
        "--quiet",
        "--out",
        out,
    ];
    let main_job = [&tiny[..], &["--steps", "3"]].concat();
    // Run twice: the second run replaces the first (which it reproduces).
    run(&main_job).unwrap();
    std::fs::remove_file(dir.path().join("samples.png")).unwrap();
    run(&main_job).unwrap();
    assert!(dir.path().join("samples.png").exists());
    // A longer run trained there is kept, and the error says how to use it.
    let train = |extra: &[&str]| run(&[&["train", "--overwrite"], &tiny[..], extra].concat());
    train(&["--steps", "5"]).unwrap();
    let err = error_of(&main_job);
    assert!(
        err.contains("5 steps") && err.contains("--checkpoint"),
        "{err}"
    );
    assert_eq!(meta().step, 5);
    // So is a run of the same length with other settings, other bins or
    // another architecture; the error names what differs.
    for (other, named) in [
        (&["--lr", "0.01"][..], "training.learning_rate"),
        (
            &["--nearest-value", "true"],
            "architecture.nearest_value true → false",
        ),
        (&["--bins", "3"], "output bins"),
    ] {
        train(&[&["--steps", "3"], other].concat()).unwrap();
        let err = error_of(&main_job);
        assert!(
            err.contains("other settings") && err.contains(named),
            "{other:?}: {err}"
        );
    }
    // With --checkpoint the main job only reads it, so training options
    // are refused rather than ignored.
    let err = error_of(&[&main_job[..], &["--checkpoint", out]].concat());
    assert!(err.contains("does not train"), "{err}");
    run(&["--quiet", "--out", out, "--checkpoint", out]).unwrap();
    assert_eq!(meta().distribution["centres"].as_array().unwrap().len(), 3);
    // A shorter run with the same settings (an interrupted main job; with a
    // constant learning rate the length is not part of the settings) is
    // started over.
    train(&["--steps", "2", "--constant-lr"]).unwrap();
    run(&[&main_job[..], &["--constant-lr"]].concat()).unwrap();
    assert_eq!(meta().step, 3);
}
