//! Pinned answers: `predict` on every shipped checkpoint, for fixed requests,
//! must give exactly the numbers recorded in `tests/pinned/` (`mean`, `std`
//! and `nll`; serde_json prints the shortest decimal that reads back to the
//! same `f32`, so equal numbers mean bit-identical ones).
//!
//! These pins guard refactors: a change that is meant to keep behaviour must
//! leave them untouched. A change that is meant to alter the numbers
//! regenerates them with `PIXEL_TRANSFORMER_REPIN=1 cargo test --release
//! --test pinned` and says why in its commit.

use std::path::{Path, PathBuf};

use pixel_transformer::cli::{run_from, run_grey_or_colour_from};

fn pinned(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pinned")
        .join(name)
}

/// Runs `predict --checkpoint pretrained` through `run` on the domain's
/// request file and compares the answers with the pinned ones.
fn check(domain: &str, run: impl FnOnce(Vec<String>) -> anyhow::Result<()>) {
    let dir = tempfile::tempdir().unwrap();
    let answers = dir.path().join("answers.jsonl");
    let requests = pinned(&format!("{domain}.requests.jsonl"));
    let argv: Vec<String> = [
        domain,
        "predict",
        "--checkpoint",
        "pretrained",
        "--quiet",
        "--input",
        requests.to_str().unwrap(),
        "--output",
        answers.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run(argv).unwrap();
    let got = std::fs::read_to_string(&answers).unwrap();
    let expected_path = pinned(&format!("{domain}.expected.jsonl"));
    if std::env::var_os("PIXEL_TRANSFORMER_REPIN").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(got.lines().count(), expected.lines().count());
    for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        // The numbers are pinned; fields added to answers since (warnings,
        // say) are not.
        let (g, e): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(g).unwrap(),
            serde_json::from_str(e).unwrap(),
        );
        for field in ["mean", "std", "nll"] {
            assert_eq!(
                g.get(field),
                e.get(field),
                "{domain}: `{field}` of answer {} differs from the pinned one",
                i + 1
            );
        }
    }
}

#[test]
fn polynomial_answers_are_pinned() {
    use pixel_transformer_polynomial::PolynomialDomain;
    check("polynomial", run_from::<1, 1, PolynomialDomain, _, _>);
}

#[test]
fn image_answers_are_pinned() {
    use pixel_transformer_image::ImageDomain;
    check("image", |argv| {
        run_grey_or_colour_from::<2, ImageDomain<1>, ImageDomain<3>, _, _>(argv).map(|_| ())
    });
}

#[test]
fn sdf_answers_are_pinned() {
    use pixel_transformer_sdf::SdfDomain;
    check("sdf", run_from::<3, 1, SdfDomain, _, _>);
}

#[test]
fn video_answers_are_pinned() {
    use pixel_transformer_video::VideoDomain;
    check("video", |argv| {
        run_grey_or_colour_from::<3, VideoDomain<1>, VideoDomain<3>, _, _>(argv).map(|_| ())
    });
}
