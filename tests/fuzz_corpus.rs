//! Replays every committed fuzz input through its target on the stable
//! toolchain: the seed corpora (`fuzz/seeds/<target>/`) and every input that
//! ever made a target crash (`fuzz/regressions/<target>/`). A fixed parser
//! that regresses fails here, without libFuzzer or a fuzz run.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn every_committed_fuzz_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, body) in targets::TARGETS {
        let seeds = inputs(&root.join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz target `{name}` has no seed corpus");
        let regressions = inputs(&root.join("regressions").join(name));
        for (file, bytes) in seeds.iter().chain(&regressions) {
            let outcome = std::panic::catch_unwind(|| body(bytes));
            assert!(outcome.is_ok(), "fuzz target `{name}` panicked on {file}");
        }
    }
}

#[test]
fn the_seed_corpora_are_valid_inputs() {
    // The seeds are meant to reach deep into each parser, so they must parse.
    use pixel_transformer::deps::dfdx::prelude::Cpu;
    use pixel_transformer::train::checkpoint;
    use pixel_transformer::BinnedMixture;
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (file, bytes) in inputs(&seeds.join("checkpoint")) {
        checkpoint::load_bytes::<1, 1, Cpu, BinnedMixture>(
            &bytes,
            Path::new(&file),
            "polynomial",
            &Cpu::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for (file, _) in inputs(&seeds.join("npy")) {
        pixel_transformer_sdf::npy::load_npy(Path::new(&file)).unwrap_or_else(|e| panic!("{e}"));
    }
    for (file, bytes) in inputs(&seeds.join("cifar")) {
        pixel_transformer_image::cifar::parse_batch(&bytes, Path::new(&file))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
