//! The workflows around training, tried as a user would: the quickstart's
//! sequence, Ctrl-C then resume, a failure that leaves the folder
//! consistent, pretrained outputs kept apart, and what `predict` answers
//! beyond mean and std.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pixel_transformer::cli::{report, run_from};
use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::infer::predict::{self, Limits, Response};
use pixel_transformer::train::trainer::{read_log, train, TrainOptions};
use pixel_transformer::train::{checkpoint, fresh_state, RunChoices};
use pixel_transformer::{BinnedMixture, Error, Model, Preset, SetSizes};
use pixel_transformer_polynomial::PolynomialDomain;

fn run(args: &[&str]) -> anyhow::Result<()> {
    let argv = std::iter::once("polynomial").chain(args.iter().copied());
    run_from::<1, 1, PolynomialDomain, _, _>(argv)
}

const TINY: [&str; 6] = [
    "--preset",
    "tiny",
    "--batch-size",
    "4",
    "--quiet",
    "--eval-count",
];

#[test]
fn the_quickstart_sequence_works_as_the_book_says() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let main_job = |steps: &str, extra: &[&str]| {
        let mut args = vec!["--out", out, "--steps", steps];
        args.extend(TINY);
        args.push("10");
        args.extend(extra);
        run(&args)
    };
    // The first look, then the same again: replaced without a word.
    main_job("8", &[]).unwrap();
    main_job("8", &[]).unwrap();
    // A longer main job is another run: refused, with what to do.
    let err = format!("{:#}", main_job("16", &[]).unwrap_err());
    assert!(err.contains("--overwrite"), "{err}");
    // With --overwrite it replaces the run, checkpoint and log together.
    main_job("16", &["--overwrite"]).unwrap();
    let meta = checkpoint::read_meta(dir.path()).unwrap();
    assert_eq!(meta.step, 16);
    let log = read_log(&dir.path().join("train.jsonl")).unwrap();
    assert_eq!(
        log.iter().map(|l| l.step).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    // The main job drew its pictures and the training curve, and evaluated.
    for file in ["samples.png", "training_curve.png", "eval.csv"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
}

const CHILD_ENV: &str = "PT_WORKFLOW_CHILD_DIR";
const CHILD_TEST: &str = "ctrl_c_saves_a_checkpoint_and_resuming_gives_the_same_losses";
const STEPS: &str = "600";

fn train_args(out: &str) -> Vec<&str> {
    let mut args = vec![
        "train",
        "--out",
        out,
        "--steps",
        STEPS,
        "--checkpoint-every",
        "1000",
    ];
    args.extend(&TINY[..5]);
    args
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn ctrl_c_saves_a_checkpoint_and_resuming_gives_the_same_losses() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // The child: train until interrupted.
        let err = run(&train_args(&dir)).unwrap_err();
        let interrupted = err
            .chain()
            .any(|c| matches!(c.downcast_ref(), Some(Error::Interrupted { .. })));
        assert!(interrupted, "{err:#}");
        assert_eq!(report(Err(err)), std::process::ExitCode::from(130));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (stopped, whole) = (dir.path().join("stopped"), dir.path().join("whole"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--test-threads", "1", "--nocapture"])
        .env(CHILD_ENV, &stopped)
        .spawn()
        .unwrap();
    // Interrupt once a few steps are logged (well before the first checkpoint at 1000).
    let log = stopped.join("train.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never trained"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) with a live child's pid and a valid signal number.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0, "cannot send SIGINT");
    assert!(
        child.wait().unwrap().success(),
        "the child did not stop as expected"
    );

    // The checkpoint holds the step the log ends at.
    let at = checkpoint::read_meta(&stopped).unwrap().step;
    let logged = read_log(&log).unwrap();
    assert!((5..600).contains(&at), "{at}");
    assert_eq!(logged.last().unwrap().step, at);

    // Resume to the end; the losses equal an uninterrupted run's.
    let stopped_s = stopped.to_str().unwrap();
    run(&["train", "--resume", "--out", stopped_s, "--quiet"]).unwrap();
    let whole_s = whole.to_str().unwrap();
    run(&train_args(whole_s)).unwrap();
    let losses = |d: &Path| -> Vec<(u64, f32)> {
        read_log(&d.join("train.jsonl"))
            .unwrap()
            .iter()
            .map(|l| (l.step, l.loss))
            .collect()
    };
    assert_eq!(losses(&stopped), losses(&whole));
}

fn tiny_state() -> pixel_transformer::train::TrainState<1, 1, Cpu, BinnedMixture> {
    let choices = RunChoices {
        preset: Some(Preset::Tiny),
        batch_size: Some(4),
        steps: Some(20),
        ..RunChoices::default()
    };
    fresh_state(
        &PolynomialDomain::new(0.0).unwrap(),
        &choices,
        &Cpu::default(),
    )
    .unwrap()
}

#[test]
fn a_diverged_run_leaves_log_and_checkpoint_in_agreement() {
    let domain = PolynomialDomain::new(0.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = TrainOptions::new(20, dir.path());
    options.progress = false;
    options.eval_every = 0;
    options.checkpoint_every = 4;
    options.inject_nan_at = Some(7);
    let err = train(&domain, &mut tiny_state(), &options).unwrap_err();
    assert!(
        err.to_string().contains("last good checkpoint (step 4)"),
        "{err}"
    );
    let log = read_log(&dir.path().join("train.jsonl")).unwrap();
    assert_eq!(log.last().unwrap().step, 4);
    assert_eq!(checkpoint::read_meta(dir.path()).unwrap().step, 4);

    // A fresh run over it that fails before its first checkpoint leaves
    // nothing behind, rather than the old checkpoint beside a new log.
    options.inject_nan_at = Some(2);
    let err = train(&domain, &mut tiny_state(), &options).unwrap_err();
    assert!(
        err.to_string().contains("no checkpoint had been saved"),
        "{err}"
    );
    assert!(!dir.path().join("train.jsonl").exists());
    assert!(!dir.path().join(checkpoint::FILE_NAME).exists());
}

#[test]
fn pretrained_outputs_go_to_their_own_folder() {
    if let Ok(dir) = std::env::var("PT_WORKFLOW_PRETRAINED_DIR") {
        std::env::set_current_dir(dir).unwrap();
        run(&["sample", "--checkpoint", "pretrained"]).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A run of the user's own in the default folder.
    let own = dir.path().join("runs/polynomial");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("samples.png"), b"mine").unwrap();
    // In a child process, so that changing the working folder is safe.
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pretrained_outputs_go_to_their_own_folder",
            "--test-threads",
            "1",
        ])
        .env("PT_WORKFLOW_PRETRAINED_DIR", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(own.join("samples.png")).unwrap(), b"mine");
    assert!(own.join("pretrained/samples.png").exists());
}

#[test]
fn predict_answers_modes_components_samples_and_warnings() {
    let centres = [[0.0f32], [1.0]];
    let dist = BinnedMixture::with_centres(&centres, 0.1, 1e-3).unwrap();
    let model =
        Model::<1, 1, Cpu, BinnedMixture>::new(Preset::Tiny.config(), dist, 0, &Cpu::default())
            .unwrap();
    let limits = Limits {
        trained_sets: Some(SetSizes {
            min_observed: 2,
            max_observed: 8,
            queries: 8,
        }),
        ..Limits::default()
    };
    // A byte-order mark and Windows line ends are fine.
    let input = "\u{feff}{\"positions\": [[0.5]], \"values\": [[7.0]], \"queries\": [[0.0], [1.5]], \"mode\": true, \"components\": true, \"samples\": 2, \"seed\": 3}\r\n{\"queries\": [[0.1]], \"samples\": 2, \"seed\": 3}\r\n";
    let mut out = Vec::new();
    predict::run_with(&model, input.as_bytes(), &mut out, "req", &limits).unwrap();
    let answers: Vec<Response> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let a = &answers[0];
    assert_eq!(a.mode.as_ref().unwrap().len(), 2);
    let components = a.components.as_ref().unwrap();
    assert_eq!(components[0].probabilities.len(), 2);
    assert!((components[0].probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let samples = a.samples.as_ref().unwrap();
    assert_eq!(
        (samples.len(), samples[0].len(), samples[0][0].len()),
        (2, 2, 1)
    );
    // Warnings: a query outside [-1, 1], a value far outside the bins, |S| below training's.
    let warned = a.warnings.join(" | ");
    for words in [
        "outside [-1, 1]",
        "observed values lie outside",
        "|S| = 1 is outside",
    ] {
        assert!(warned.contains(words), "{warned}");
    }
    assert!(answers[1].mode.is_none() && answers[1].components.is_none());
    // The same seed gives the same samples; another seed others.
    let again = |seed: u64| {
        let line = format!("{{\"queries\": [[0.1], [0.2]], \"samples\": 2, \"seed\": {seed}}}");
        predict::answer_line(&model, &line)
            .unwrap()
            .samples
            .unwrap()
    };
    assert_eq!(again(3), again(3));
    assert_ne!(again(3), again(4));
}
