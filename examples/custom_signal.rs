//! Your own signal type, through the public API only: short "audio clips".
//!
//! A clip is a sum of a few sinusoids (1 to 6 cycles over `[-1, 1]`, random
//! phase and amplitude) under an exponentially decaying envelope: a 1-D signal
//! with one value per position (`P = 1, V = 1`). The crate ships no such domain;
//! this one file of about 300 lines (a third of them the plot) adds it and gets
//! `train`, `sample`, `eval`, `export` and `predict` from the generic command
//! line. The book's tutorial chapter walks through it.
//!
//! ```sh
//! cargo run --release --example custom_signal                                  # main job: train, plot, evaluate
//! cargo run --release --example custom_signal -- train --steps 500 --out runs/audio
//! cargo run --release --example custom_signal -- sample --checkpoint runs/audio
//! cargo run --release --example custom_signal -- --help
//! ```

// ANCHOR: imports
use std::any::Any;
use std::f32::consts::PI;
use std::path::{Path, PathBuf};

use pixel_transformer::kernels::Backend;
use pixel_transformer::plot::{plot_function_grid, FunctionPanel};
use pixel_transformer::signal::random_position;
use pixel_transformer::trainer::plot_training_curve;
use pixel_transformer::{
    Domain, DomainConfig, DomainDefaults, Error, Grid, Model, Observations, OutputDistribution,
    Preset, Result, SampleOptions, SetSizes, SpatialSignal, Split,
};
use rand::{Rng, SeedableRng};
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
/// The settings a checkpoint records, so `sample`, `eval` and `train --resume`
/// rebuild exactly the domain the model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AudioConfig {
    /// Most sinusoids per clip (each clip has between `min(2, max)` and this many).
    pub max_partials: usize,
    /// Largest envelope decay rate; each clip draws its rate uniformly in `[0, max_decay]`.
    pub max_decay: f32,
}

#[typetag::serde(name = "audio")]
impl DomainConfig for AudioConfig {
    fn domain_name(&self) -> &'static str {
        AudioDomain::NAME
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
// ANCHOR_END: config

// ANCHOR: args
/// Command-line options of the audio domain (`--max-partials`, `--max-decay`).
#[derive(Debug, Clone, clap::Args)]
pub struct AudioArgs {
    /// Most sinusoids per clip (1 to 8).
    #[arg(long, global = true, default_value_t = 3)]
    pub max_partials: usize,
    /// Largest envelope decay rate (0 = no envelope).
    #[arg(long, global = true, default_value_t = 2.0)]
    pub max_decay: f32,
}
// ANCHOR_END: args

// ANCHOR: domain
/// The audio-clip domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioDomain {
    /// Its settings.
    pub config: AudioConfig,
}

impl AudioDomain {
    /// Checks the settings; bad user input is an error, never a panic.
    pub fn new(config: AudioConfig) -> Result<Self> {
        if !(1..=8).contains(&config.max_partials) {
            return Err(Error::invalid(format!(
                "--max-partials must be between 1 and 8, got {}",
                config.max_partials
            )));
        }
        if !(config.max_decay >= 0.0 && config.max_decay.is_finite()) {
            return Err(Error::invalid(format!(
                "--max-decay must be a finite number ≥ 0, got {}",
                config.max_decay
            )));
        }
        Ok(Self { config })
    }
}
// ANCHOR_END: domain

// ANCHOR: impl_domain
// ANCHOR: domain_types
impl Domain<1, 1> for AudioDomain {
    type Signal = AudioClip;
    type Args = AudioArgs;
    /// Runs go to `runs/audio`; checkpoints record this name.
    const NAME: &'static str = "audio";
    // ANCHOR_END: domain_types

    // ANCHOR: from_args
    fn from_args(args: &AudioArgs) -> Result<Self> {
        Self::new(AudioConfig {
            max_partials: args.max_partials,
            max_decay: args.max_decay,
        })
    }

    fn config(&self) -> Box<dyn DomainConfig> {
        Box::new(self.config)
    }

    fn from_config(config: &dyn DomainConfig) -> Result<Self> {
        let c = config
            .as_any()
            .downcast_ref::<AudioConfig>()
            .ok_or_else(|| Error::invalid(format!("not an audio config: {config:?}")))?;
        Self::new(*c)
    }
    // ANCHOR_END: from_args

    // ANCHOR: draw_signal
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
    // ANCHOR_END: draw_signal

    // ANCHOR: grid_defaults
    fn grid(&self) -> Grid<1> {
        // 128 points: more than 20 per period at the highest frequency.
        Grid::new([128])
    }

    fn defaults(&self) -> DomainDefaults {
        DomainDefaults {
            sets: SetSizes {
                min_observed: 4,
                max_observed: 48,
                queries: 32,
            },
            bins: 1, // a plain Gaussian per query
            sigma_floor: 1e-3,
            preset: Preset::Small,
            // `true` gives each query the value observed nearest to it as an
            // input: it helps sharp-edged signals with many observations
            // (videos, images); on smooth ripples it made no difference.
            nearest_value: false,
            steps: 2000,
            batch_size: 32,
            learning_rate: 5e-4,
            eval_observed: vec![4, 8, 16, 32, 48],
        }
    }
    // ANCHOR_END: grid_defaults

    // ANCHOR: render_call
    fn render<D: Backend, O: OutputDistribution<1>>(
        &self,
        model: &Model<1, 1, D, O>,
        out_dir: &Path,
        seed: u64,
    ) -> Result<Vec<PathBuf>> {
        render_clips(self, model, out_dir, seed)
    }
    // ANCHOR_END: render_call
}
// ANCHOR_END: impl_domain

// ANCHOR: render
/// Observation-set sizes shown as columns.
const SIZES: [usize; 3] = [6, 12, 24];
/// Clips shown as rows.
const ROWS: usize = 3;

/// Writes `samples.png` (truth, mean ± 2σ, three samples, observations for a
/// few held-out clips) and, when a training log is present, `training_curve.png`.
fn render_clips<D: Backend, O: OutputDistribution<1>>(
    domain: &AudioDomain,
    model: &Model<1, 1, D, O>,
    out_dir: &Path,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let grid = domain.grid().positions();
    let xs: Vec<f64> = grid.iter().map(|x| x[0] as f64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa0d1);
    let mut panels = Vec::new();
    for row in 0..ROWS {
        // One clip per row, observed at nested sets: each column adds points.
        let clip = domain.draw_signal(Split::Test, &mut rng);
        let positions: Vec<[f32; 1]> = (0..SIZES[SIZES.len() - 1])
            .map(|_| random_position(&mut rng))
            .collect();
        for &n in &SIZES {
            let observed = Observations::observe(&clip, &positions[..n]);
            let marginals = model.marginals(&observed, &grid)?;
            let samples = model.sample(
                &observed,
                &grid,
                &SampleOptions {
                    samples: 3,
                    // The hybrid rule: 64 of the 128 grid points are drawn one at
                    // a time, the rest take the mean given everything drawn.
                    autoregressive: Some(64),
                    seed: seed + row as u64,
                    // The rest as by default: temperature 1, one value per pass.
                    ..SampleOptions::default()
                },
            )?;
            panels.push(FunctionPanel {
                title: format!("clip {} · |S| = {n}", row + 1),
                xs: xs.clone(),
                truth: Some(grid.iter().map(|x| clip.value_at(*x)[0] as f64).collect()),
                mean: marginals.means().iter().map(|v| v[0] as f64).collect(),
                std: marginals.stds().iter().map(|v| v[0] as f64).collect(),
                samples: samples
                    .iter()
                    .map(|s| s.iter().map(|v| v[0] as f64).collect())
                    .collect(),
                reference_mean: None,
                observed: observed
                    .positions
                    .iter()
                    .zip(&observed.values)
                    .map(|(x, v)| (x[0] as f64, v[0] as f64))
                    .collect(),
            });
        }
    }
    let samples_png = out_dir.join("samples.png");
    plot_function_grid(&samples_png, &panels, SIZES.len())?;
    let mut written = vec![samples_png];

    // The training curve, when this folder holds a training log.
    written.extend(plot_training_curve(out_dir)?);
    Ok(written)
}
// ANCHOR_END: render

// ANCHOR: main
fn main() -> anyhow::Result<()> {
    pixel_transformer::cli::run::<1, 1, AudioDomain>()
}
// ANCHOR_END: main
