//! Your own signal type, through the public API only: short "audio clips".
//!
//! A clip is a sum of a few sinusoids (1 to 6 cycles over `[-1, 1]`, random
//! phase and amplitude) under an exponentially decaying envelope: a 1-D signal
//! with one value per position (`P = 1, V = 1`). The crate ships no such
//! domain; this file describes the signal and gets `train`, `sample` (stock
//! pictures), `eval`, `export`, `limits` and `predict` from the generic
//! command line. The book's tutorial chapter walks through it.
//!
//! ```sh
//! cargo run --release --example custom_signal                                  # main job: train, plot, evaluate
//! cargo run --release --example custom_signal -- train --steps 500 --out runs/audio
//! cargo run --release --example custom_signal -- sample --checkpoint runs/audio
//! cargo run --release --example custom_signal -- --help
//! ```

// ANCHOR: imports
use std::f32::consts::PI;

use pixel_transformer::{
    Domain, DomainDefaults, Error, Grid, Result, SetSizes, SpatialSignal, Split,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
// ANCHOR_END: imports

// ANCHOR: signal
/// One sinusoid of a clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partial {
    /// Peak amplitude.
    pub amplitude: f32,
    /// Full periods over the clip (positions -1 to 1).
    pub cycles: f32,
    /// Phase at the start of the clip, in radians.
    pub phase: f32,
}

/// A short "audio clip": a sum of sinusoids under a decaying envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioClip {
    /// The sinusoids that are added up.
    pub partials: Vec<Partial>,
    /// Envelope decay rate: the envelope is `exp(-decay · t)` with `t = (x + 1) / 2` in `[0, 1]`.
    pub decay: f32,
}

impl SpatialSignal<1, 1> for AudioClip {
    fn value_at(&self, position: [f32; 1]) -> [f32; 1] {
        let t = (position[0] + 1.0) / 2.0; // time from 0 to 1 across the clip
        let wave: f32 = self
            .partials
            .iter()
            .map(|p| p.amplitude * (2.0 * PI * p.cycles * t + p.phase).sin())
            .sum();
        [(-self.decay * t).exp() * wave]
    }
}
// ANCHOR_END: signal

// ANCHOR: config
/// The audio domain's settings: its command-line options (`--max-partials`,
/// `--max-decay`) and what a checkpoint records, so `sample`, `eval` and
/// `train --resume` rebuild exactly the domain a model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct AudioConfig {
    /// Most sinusoids per clip (1 to 8); each clip has between `min(2, max)` and this many.
    #[arg(long, global = true, default_value_t = 3)]
    pub max_partials: usize,
    /// Largest envelope decay rate (0 = no envelope); each clip draws its rate in `[0, max]`.
    #[arg(long, global = true, default_value_t = 2.0)]
    pub max_decay: f32,
}

/// The audio-clip domain: its settings, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioDomain {
    /// Its settings.
    pub config: AudioConfig,
}
// ANCHOR_END: config

// ANCHOR: impl_domain
impl Domain<1, 1> for AudioDomain {
    type Signal = AudioClip;
    type Config = AudioConfig;
    /// Runs go to `runs/audio`; checkpoints record this name.
    const NAME: &'static str = "audio";

    /// Checks the settings; bad user input is an error, never a panic.
    fn from_config(config: &AudioConfig) -> Result<Self> {
        if !(1..=8).contains(&config.max_partials) {
            let got = config.max_partials;
            return Err(Error::invalid(format!(
                "--max-partials must be between 1 and 8, got {got}"
            )));
        }
        if !(config.max_decay >= 0.0 && config.max_decay.is_finite()) {
            let got = config.max_decay;
            return Err(Error::invalid(format!(
                "--max-decay must be a finite number ≥ 0, got {got}"
            )));
        }
        Ok(Self { config: *config })
    }

    fn config(&self) -> AudioConfig {
        self.config
    }

    fn draw_signal(&self, _split: Split, rng: &mut ChaCha8Rng) -> AudioClip {
        // Procedural data: train and test come from the same distribution, and
        // held-out batches use their own seeds, so they never repeat training ones.
        let most = self.config.max_partials;
        let count = rng.gen_range(most.min(2)..=most);
        AudioClip {
            partials: (0..count)
                .map(|_| Partial {
                    amplitude: rng.gen_range(0.3..=1.0),
                    cycles: rng.gen_range(1.0..=6.0),
                    phase: rng.gen_range(0.0..2.0 * PI),
                })
                .collect(),
            decay: rng.gen_range(0.0..=self.config.max_decay),
        }
    }

    fn grid(&self) -> Grid<1> {
        // 128 points: more than 20 per period at the highest frequency.
        Grid::new([128])
    }

    fn defaults(&self) -> DomainDefaults {
        // Only what differs from the framework's defaults (a small model,
        // one Gaussian per query, 2,000 steps of 32 clips).
        DomainDefaults {
            sets: SetSizes {
                min_observed: 4,
                max_observed: 48,
                queries: 32,
            },
            eval_observed: vec![4, 8, 16, 32, 48],
            ..DomainDefaults::default()
        }
    }
}
// ANCHOR_END: impl_domain

// ANCHOR: main
fn main() -> std::process::ExitCode {
    pixel_transformer::cli::run::<1, 1, AudioDomain>()
}
// ANCHOR_END: main
