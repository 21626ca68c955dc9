//! The generic command line, driven through `cli::run_with` exactly as a
//! domain's example program would be.

use clap::Parser;
use pixel_transformer::cli::{run_with, Cli};
use pixel_transformer_polynomial::{PolynomialArgs, PolynomialDomain};

fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut argv = vec!["polynomial"];
    argv.extend_from_slice(args);
    run_with::<1, 1, PolynomialDomain>(Cli::<PolynomialArgs>::try_parse_from(argv)?)
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
    let err = format!(
        "{:#}",
        run(&["train", "--preset", "tiny", "--steps", "6", "--out", out, "--quiet"]).unwrap_err()
    );
    assert!(
        err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    // Resuming without --steps trains to the run's own total (6), not to the
    // domain's default: a finished run stays finished.
    run(&["train", "--resume", "--out", out, "--quiet"]).unwrap();
    assert_eq!(
        pixel_transformer::checkpoint::read_meta(dir.path())
            .unwrap()
            .step,
        6
    );
    run(&["train", "--resume", "--steps", "9", "--out", out, "--quiet"]).unwrap();
    let meta = pixel_transformer::checkpoint::read_meta(dir.path()).unwrap();
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
    let exported = pixel_transformer::checkpoint::read_meta(&shipped).unwrap();
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
    let err = run(&[
        "predict",
        "--out",
        out,
        "--input",
        requests.to_str().unwrap(),
        "--output",
        bad_out.to_str().unwrap(),
    ])
    .unwrap_err();
    let msg = format!("{err:#}");
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
    let err = format!("{:#}", run(&["eval", "--out", out]).unwrap_err());
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    // Nothing to resume.
    let err = format!(
        "{:#}",
        run(&["train", "--resume", "--out", out]).unwrap_err()
    );
    assert!(err.contains("resume"), "{err}");
    // Bad domain option.
    let err = format!(
        "{:#}",
        run(&["train", "--noise=-1", "--out", out]).unwrap_err()
    );
    assert!(err.contains("noise"), "{err}");
    // Unknown preset is a parse error.
    assert!(run(&["train", "--preset", "huge"]).is_err());
    // No bins at all.
    let err = format!(
        "{:#}",
        run(&["train", "--bins", "0", "--out", out]).unwrap_err()
    );
    assert!(err.contains("--bins"), "{err}");
}

#[test]
fn bins_on_the_command_line_choose_the_output_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = ["train", "--preset", "tiny", "--steps", "1", "--bins", "3"];
    run(&[&args[..], &["--out", out, "--quiet"]].concat()).unwrap();
    let meta = pixel_transformer::checkpoint::read_meta(dir.path()).unwrap();
    let centres = meta.distribution["centres"].as_array().unwrap().len();
    assert_eq!(centres, 3, "{}", meta.distribution);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_build_it() {
    let err = format!("{:#}", run(&["eval", "--device", "cuda"]).unwrap_err());
    assert!(err.contains("--features cuda"), "{err}");
}
