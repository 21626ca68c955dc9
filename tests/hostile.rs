//! Hostile input, from the outside: every option, reader and `predict`
//! request here must be refused with a message that names the problem (and
//! the option, file or line), never a panic, a hang, or training on garbage.
//! Each case lists the words its message must contain.

use std::path::Path;

use pixel_transformer::cli::run_from;
use pixel_transformer_polynomial::PolynomialDomain;

/// The whole error chain of a polynomial command line that must fail.
fn error_of(args: &[&str]) -> String {
    let argv = std::iter::once("polynomial").chain(args.iter().copied());
    match run_from::<1, 1, PolynomialDomain, _, _>(argv) {
        Ok(()) => panic!("`{}` succeeded", args.join(" ")),
        Err(e) => format!("{e:#}"),
    }
}

fn check(cases: &[(&[&str], &[&str])]) {
    for (args, words) in cases {
        let err = error_of(args);
        for w in *words {
            assert!(
                err.contains(w),
                "`{}`: expected {w:?} in the message: {err}",
                args.join(" ")
            );
        }
    }
}

/// A tiny trained run to continue from.
fn trained(dir: &Path) -> String {
    let out = dir.join("run").to_str().unwrap().to_string();
    let argv = [
        "polynomial",
        "train",
        "--preset",
        "tiny",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--quiet",
        "--out",
        &out,
    ];
    run_from::<1, 1, PolynomialDomain, _, _>(argv).unwrap();
    out
}

#[test]
fn numeric_options_are_checked_when_parsed() {
    check(&[
        (&["train", "--lr", "-1"], &["--lr", "above 0"]),
        (&["train", "--lr", "0"], &["--lr", "above 0"]),
        (&["train", "--lr", "nan"], &["--lr", "above 0"]),
        (&["train", "--lr", "inf"], &["--lr", "above 0"]),
        (&["train", "--lr", "fast"], &["--lr", "not a number"]),
        (&["train", "--steps", "0"], &["--steps", "at least 1"]),
        (&["train", "--steps", "-3"], &["--steps"]),
        (&["train", "--steps", "1e3"], &["--steps", "not a number"]),
        (
            &["train", "--batch-size", "0"],
            &["--batch-size", "at least 1"],
        ),
        (&["train", "--bins", "0"], &["--bins", "at least 1"]),
        (
            &["train", "--bins", "100000", "--out", "/nonexistent/x"],
            &["--bins 100000", "4096"],
        ),
        (&["train", "--dropout", "1"], &["--dropout", "below 1"]),
        (
            &["train", "--dropout", "-0.5"],
            &["--dropout", "at least 0"],
        ),
        (&["train", "--dropout", "NaN"], &["--dropout"]),
        (
            &["train", "--checkpoint-every", "0"],
            &["--checkpoint-every", "at least 1"],
        ),
        (&["train", "--noise", "-1"], &["--noise", "≥ 0"]),
        (&["train", "--noise", "nan"], &["--noise", "≥ 0"]),
        (&["train", "--noise", "inf"], &["--noise", "≥ 0"]),
        (
            &["eval", "--eval-count", "0"],
            &["--eval-count", "at least 1"],
        ),
        (&["eval", "--eval-images", "0"], &["at least 1"]),
        (
            &["sample", "--render-count", "0"],
            &["--render-count", "at least 1"],
        ),
        (
            &["sample", "--sample-temperature", "0"],
            &["--sample-temperature", "above 0"],
        ),
        (
            &["sample", "--sample-temperature", "-1"],
            &["--sample-temperature", "above 0"],
        ),
        (&["train", "--preset", "huge"], &["--preset", "huge"]),
        (&["train", "--device", "gpu"], &["--device", "gpu"]),
        (
            &["train", "--nearest-value", "maybe"],
            &["--nearest-value", "maybe"],
        ),
        (
            &["predict", "--max-queries", "0"],
            &["--max-queries", "at least 1"],
        ),
        (
            &["predict", "--max-observations", "0"],
            &["--max-observations"],
        ),
        (
            &[
                "train",
                "--min-observed",
                "9",
                "--max-observed",
                "3",
                "--out",
                "/nonexistent/x",
            ],
            &["--min-observed 9", "--max-observed 3"],
        ),
        (&["frobnicate"], &["frobnicate"]),
        (
            &["train", "--resume", "--overwrite"],
            &["--overwrite", "--resume"],
        ),
    ]);
}

#[test]
fn commands_refuse_options_they_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path());
    check(&[
        (
            &["eval", "--checkpoint", &run, "--lr", "7"],
            &["--lr", "unexpected argument"],
        ),
        (
            &["sample", "--checkpoint", &run, "--dropout", "0.5"],
            &["--dropout", "unexpected argument"],
        ),
        (
            &["--bins", "9", "--lr", "7", "predict", "--checkpoint", &run],
            &["--lr, --bins", "leave them out"],
        ),
        (
            &["export", "--checkpoint", &run, "--steps", "9"],
            &["--steps", "unexpected argument"],
        ),
        (
            &["--eval-count", "5", "sample", "--checkpoint", &run],
            &["--eval-count", "does not use it"],
        ),
        (
            &["--out", &run, "--checkpoint", &run, "--steps", "9"],
            &["--steps", "does not train"],
        ),
        (
            &["eval", "--checkpoint", "pretrained", "--noise", "1"],
            &["noise", "the checkpoint's", "leave these options out"],
        ),
        (
            &["eval", "--checkpoint", &run, "--noise", "0.5"],
            &["noise", "0.5", "the checkpoint's"],
        ),
        (
            &["train", "--resume", "--out", &run, "--lr", "9"],
            &["--lr 9", "the run's", "--resume"],
        ),
        (
            &[
                "train",
                "--resume",
                "--out",
                &run,
                "--batch-size",
                "2",
                "--steps",
                "20",
            ],
            &["--batch-size 2"],
        ),
        (
            &[
                "train", "--resume", "--out", &run, "--preset", "paper", "--steps", "20",
            ],
            &["--preset paper"],
        ),
        (
            &[
                "train",
                "--resume",
                "--out",
                &run,
                "--dropout",
                "0.2",
                "--steps",
                "20",
            ],
            &["--dropout 0.2"],
        ),
        (
            &["train", "--resume", "--out", &run, "--noise", "5"],
            &["noise", "5"],
        ),
        (
            &["train", "--resume", "--out", &run, "--steps", "5"],
            &["already at step 6", "--steps"],
        ),
        (
            &["train", "--resume", "--out", &run, "--steps", "6"],
            &["already at step 6"],
        ),
        (
            &["train", "--out", &run, "--steps", "3"],
            &["already holds a training run", "--overwrite"],
        ),
        (
            &["--out", &run, "--preset", "tiny", "--steps", "12"],
            &["holds another run", "--overwrite"],
        ),
        (
            &["train", "--checkpoint", &run, "--out", &run],
            &["would overwrite them"],
        ),
        (
            &[
                "train",
                "--checkpoint",
                &run,
                "--out",
                "/tmp/pt-fine",
                "--bins",
                "3",
            ],
            &["--bins", "checkpoint's"],
        ),
    ]);
}

/// A copy of the checkpoint in `from` whose header's `edit` changed it.
fn edited_checkpoint(from: &Path, to: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(from.join("checkpoint.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = header["__metadata__"]["pixel_transformer"]
        .as_str()
        .unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(meta).unwrap();
    edit(&mut meta);
    header["__metadata__"]["pixel_transformer"] = meta.to_string().into();
    let header = header.to_string().into_bytes();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(&bytes[8 + n..]);
    std::fs::create_dir_all(to).unwrap();
    std::fs::write(to.join("checkpoint.safetensors"), out).unwrap();
}

#[test]
fn damaged_checkpoint_headers_are_named_not_blamed_on_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path());
    let no_bins = dir.path().join("no-bins");
    edited_checkpoint(Path::new(&run), &no_bins, |m| {
        m["distribution"]["centres"] = serde_json::json!([]);
    });
    let other = dir.path().join("other-domain");
    edited_checkpoint(Path::new(&run), &other, |m| {
        m["domain_name"] = "image".into();
    });
    let future = dir.path().join("future");
    edited_checkpoint(Path::new(&run), &future, |m| {
        m["format_version"] = 99.into();
    });
    let (no_bins, other, future) = (
        no_bins.to_str().unwrap(),
        other.to_str().unwrap(),
        future.to_str().unwrap(),
    );
    check(&[
        (
            &["eval", "--checkpoint", no_bins],
            &["no-bins", "has no bins"],
        ),
        (
            &["sample", "--checkpoint", other],
            &["trained on domain `image`", "`polynomial` domain"],
        ),
        (
            &["predict", "--checkpoint", future],
            &["format version", "99"],
        ),
    ]);
}

#[test]
fn missing_and_broken_checkpoints_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    let readme = dir.path().join("README.md");
    std::fs::write(&readme, "# not a checkpoint").unwrap();
    let readme = readme.to_str().unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("checkpoint.safetensors"),
        b"\x05\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    let broken = broken.to_str().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("checkpoint.safetensors"), vec![0xffu8; 64]).unwrap();
    let garbage = garbage.to_str().unwrap();
    check(&[
        (
            &["sample", "--out", empty],
            &[
                "no checkpoint in",
                "train one first",
                "--checkpoint pretrained",
            ],
        ),
        (
            &["eval", "--checkpoint", empty],
            &["no checkpoint in", empty],
        ),
        (&["predict", "--checkpoint", empty], &["no checkpoint in"]),
        (
            &["sample", "--checkpoint", "/nonexistent/run"],
            &["/nonexistent/run", "no checkpoint"],
        ),
        (
            &["sample", "--checkpoint", readme],
            &["README.md", "is a file, not a checkpoint"],
        ),
        (
            &["train", "--resume", "--out", empty],
            &["nothing to resume", "first checkpoint"],
        ),
        (
            &["sample", "--checkpoint", broken],
            &["broken", "checkpoint"],
        ),
        (
            &["eval", "--checkpoint", garbage],
            &["garbage", "not a safetensors file"],
        ),
        (&["export", "--out", empty], &["export needs --checkpoint"]),
        (
            &["sample", "--checkpoint", "pretrained", "--noise", "0.1"],
            &["noise", "the checkpoint's"],
        ),
    ]);
}

/// `predict` requests that must be refused, each with its line number.
#[test]
fn predict_refuses_bad_requests_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path());
    let huge_queries = format!("{{\"queries\": [{}]}}", vec!["[0.0]"; 40].join(","));
    let huge_obs = format!(
        "{{\"positions\": [{}], \"values\": [{}], \"queries\": [[0.0]]}}",
        vec!["[0.1]"; 30].join(","),
        vec!["[0.1]"; 30].join(",")
    );
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("not json".into(), vec!["line 2", "not a valid request"]),
        ("{\"queries\": []}".into(), vec!["line 2", "empty"]),
        (
            "{\"queries\": [[0.0, 1.0]]}".into(),
            vec!["line 2", "`queries[0]` has 2 numbers, expected 1"],
        ),
        (
            "{\"positions\": [[0.1]], \"queries\": [[0.0]]}".into(),
            vec!["1 positions but 0 values"],
        ),
        (
            "{\"positions\": [[0.1]], \"values\": [[1, 2]], \"queries\": [[0]]}".into(),
            vec!["`values[0]` has 2 numbers"],
        ),
        (
            "{\"queries\": [[0.0]], \"truth\": [[1.0], [2.0]]}".into(),
            vec!["2 truth values for 1 queries"],
        ),
        (
            "{\"queries\": [[0.0]], \"extra\": 1}".into(),
            vec!["unknown field `extra`"],
        ),
        (
            "{\"queries\": [[0.0]], \"samples\": -1}".into(),
            vec!["not a valid request"],
        ),
        ("{\"queries\": [[1e39]]}".into(), vec!["line 2"]),
        (
            "{\"positions\": [[0.0]], \"values\": [[1e39]], \"queries\": [[0.0]]}".into(),
            vec!["line 2"],
        ),
        ("[1, 2, 3]".into(), vec!["not a valid request"]),
        (
            "{\"queries\": [[0.0]], \"samples\": 70000}".into(),
            vec!["samples", "network pass"],
        ),
        (huge_queries, vec!["40 queries", "--max-queries"]),
        (huge_obs, vec!["30 observations", "--max-observations"]),
    ];
    for (i, (line, words)) in cases.iter().enumerate() {
        let input = dir.path().join(format!("requests-{i}.jsonl"));
        std::fs::write(&input, format!("{{\"queries\": [[0.5]]}}\n{line}\n")).unwrap();
        let output = dir.path().join(format!("answers-{i}.jsonl"));
        let err = error_of(&[
            "predict",
            "--checkpoint",
            &run,
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--max-queries",
            "32",
            "--max-observations",
            "16",
        ]);
        for w in words {
            assert!(err.contains(w), "{line}: expected {w:?} in: {err}");
        }
        assert!(err.contains(&input.display().to_string()), "{err}");
        // Nothing is written when a line fails.
        assert!(
            !output.exists(),
            "{line}: answers written despite the error"
        );
    }
}
