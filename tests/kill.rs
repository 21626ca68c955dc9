//! Training survives being killed at any moment: SIGKILL a training process
//! at random points, several times; each time the checkpoint on disk must load
//! and training must resume from it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::train::checkpoint;
use pixel_transformer::train::trainer::{read_log, train, TrainOptions, TrainState};
use pixel_transformer::train::TrainSettings;
use pixel_transformer::{BinnedMixture, Model, Preset, SetSizes};
use pixel_transformer_polynomial::PolynomialDomain;
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "PT_KILL_TEST_CHILD_DIR";
const TEST_NAME: &str = "training_survives_sigkill_at_random_moments";

/// The child: train (resuming when a checkpoint exists), checkpointing every
/// step so that a kill is likely to land in the middle of a write.
fn child(dir: &Path) {
    let domain = PolynomialDomain::new(0.0).unwrap();
    let mut state = if dir.join(checkpoint::FILE_NAME).exists() {
        TrainState::<1, 1, Cpu, BinnedMixture>::resume(dir, "polynomial", &Cpu::default()).unwrap()
    } else {
        let model = Model::new(
            Preset::Tiny.config(),
            BinnedMixture::gaussian(1, 1e-3),
            0,
            &Cpu::default(),
        )
        .unwrap();
        let settings = TrainSettings {
            seed: 0,
            batch_size: 4,
            learning_rate: 1e-3,
            sets: SetSizes {
                min_observed: 1,
                max_observed: 8,
                queries: 8,
            },
            cosine_decay_steps: None,
            dropout: 0.0,
        };
        TrainState::new(model, settings)
    };
    let mut options = TrainOptions::new(u64::MAX, dir);
    options.progress = false;
    options.checkpoint_every = 1;
    options.eval_every = 0;
    train(&domain, &mut state, &options).unwrap();
}

#[test]
fn training_survives_sigkill_at_random_moments() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut last_step = 0;
    for round in 0..4 {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--test-threads", "1", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(600..1800)));
        proc.kill().unwrap(); // SIGKILL on Unix: no chance to clean up
        proc.wait().unwrap();
        let loaded =
            checkpoint::load::<1, 1, Cpu, BinnedMixture>(dir.path(), "polynomial", &Cpu::default())
                .unwrap_or_else(|e| {
                    panic!("round {round}: checkpoint unusable after SIGKILL: {e}")
                });
        assert!(
            loaded.meta.step >= last_step,
            "round {round}: step went back from {last_step} to {}",
            loaded.meta.step
        );
        last_step = loaded.meta.step;
        // The log never runs ahead of a checkpoint by more than the lines since the last save,
        // and resuming trims it back.
        let _ = read_log(&dir.path().join("train.jsonl")).unwrap();
    }
    assert!(last_step > 0, "the child never wrote a checkpoint");
    // Resume once more in-process and check it continues from the checkpoint.
    let domain = PolynomialDomain::new(0.0).unwrap();
    let mut state =
        TrainState::<1, 1, Cpu, BinnedMixture>::resume(dir.path(), "polynomial", &Cpu::default())
            .unwrap();
    let mut options = TrainOptions::new(last_step + 3, dir.path());
    options.progress = false;
    let lines = train(&domain, &mut state, &options).unwrap();
    assert_eq!(lines.first().unwrap().step, last_step + 1);
    let log = read_log(&dir.path().join("train.jsonl")).unwrap();
    let steps: Vec<u64> = log.iter().map(|l| l.step).collect();
    assert_eq!(
        steps,
        (1..=last_step + 3).collect::<Vec<_>>(),
        "log must hold each step once"
    );
}
