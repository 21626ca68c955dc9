//! `--accumulate K` in one process: K micro-batches per Adam step, their
//! gradients summed; recorded in the checkpoint and kept on resume. And a
//! program built without the `mpi` feature refuses to run under mpirun.

use std::path::Path;

use pixel_transformer::cli::run_from;
use pixel_transformer::train::checkpoint;
use pixel_transformer::train::trainer::read_log;
use pixel_transformer_polynomial::PolynomialDomain;

fn run(args: &[&str]) -> anyhow::Result<()> {
    run_from::<1, 1, PolynomialDomain, _, _>(
        std::iter::once("polynomial").chain(args.iter().copied()),
    )
}

fn train(out: &str, steps: &str, extra: &[&str]) -> anyhow::Result<()> {
    let mut args = vec![
        "train",
        "--preset",
        "tiny",
        "--batch-size",
        "8",
        "--seed",
        "5",
        "--quiet",
        "--steps",
        steps,
        "--out",
        out,
    ];
    args.extend(extra);
    run(&args)
}

fn losses(dir: &str) -> Vec<f32> {
    read_log(&Path::new(dir).join("train.jsonl"))
        .unwrap()
        .iter()
        .map(|l| l.loss)
        .collect()
}

#[test]
fn micro_batches_follow_the_whole_batch_and_resume_as_they_started() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (whole, pieces, resumed) = (p("whole"), p("pieces"), p("resumed"));
    train(&whole, "20", &[]).unwrap();
    train(&pieces, "20", &["--accumulate", "4"]).unwrap();
    let (a, b) = (losses(&whole), losses(&pieces));
    assert_eq!(a.len(), 20);
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        let rel = (x - y).abs() / x.abs();
        assert!(rel <= 1e-5, "step {}: {x} vs {y}", step + 1);
    }
    // Not the same numbers: the sums are taken in another order.
    assert_ne!(a, b);
    let meta = checkpoint::read_meta(Path::new(&pieces)).unwrap();
    assert_eq!((meta.layout.accumulate, meta.layout.world_size), (4, 1));

    // Stopped at step 8 and resumed without repeating --accumulate: the
    // run's own setting is kept, and the run is the uninterrupted one.
    train(&resumed, "8", &["--accumulate", "4", "--constant-lr"]).unwrap();
    run(&[
        "train", "--resume", "--out", &resumed, "--quiet", "--steps", "20",
    ])
    .unwrap();
    train(
        &whole,
        "20",
        &["--accumulate", "4", "--constant-lr", "--overwrite"],
    )
    .unwrap();
    assert_eq!(losses(&resumed), losses(&whole));
    let meta = checkpoint::read_meta(Path::new(&resumed)).unwrap();
    assert_eq!(meta.layout.accumulate, 4);
}

#[test]
fn a_batch_the_micro_batches_cannot_share_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let err = train(out.to_str().unwrap(), "3", &["--accumulate", "3"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--batch-size 8 is the global batch")
            && err.contains("3 micro-batches (--accumulate 3)")
            && err.contains("such as 6 or 9"),
        "{err}"
    );
    let err = train(out.to_str().unwrap(), "3", &["--accumulate", "0"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--accumulate"), "{err}");
}

/// Without the `mpi` feature, a program started by mpirun would train alone
/// in every process, all writing one folder: it refuses, naming the fix.
#[cfg(not(feature = "mpi"))]
#[test]
fn without_the_mpi_feature_mpirun_is_refused() {
    const CHILD: &str = "PT_ACCUMULATE_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let err = train(out, "2", &[]).unwrap_err().to_string();
        assert!(err.contains("--features mpi"), "{err}");
        assert!(!dir.path().join("train.jsonl").exists());
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "without_the_mpi_feature_mpirun_is_refused"])
        .env(CHILD, "1")
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .status()
        .unwrap();
    assert!(status.success());
}
