//! Domain plugins: where signals come from and how results are shown.
//!
//! A domain ties a [`SpatialSignal`] type to everything the framework needs to
//! train on it and to show results: seeded train/test signal streams, a dense
//! grid, default hyper-parameters, and renderers. Implement [`Domain`] for
//! your signal type and [`crate::cli::run`] gives you `train`, `sample`,
//! `eval` and `predict` on the command line.

use std::any::Any;
use std::path::{Path, PathBuf};

use crate::kernels::Backend;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Grid, Model, OutputDistribution, Preset, Result, SpatialSignal};

/// A domain's settings, stored in checkpoints as a tagged trait object so a
/// checkpoint records which domain (and which variant of it) it was trained on.
///
/// Implementations are plain serde structs annotated with
/// `#[typetag::serde(name = "...")]`.
#[typetag::serde(tag = "type")]
pub trait DomainConfig: std::fmt::Debug + Send + Sync {
    /// The domain's name, e.g. `polynomial`; must equal [`Domain::NAME`].
    fn domain_name(&self) -> &'static str;
    /// For downcasting to the concrete config type.
    fn as_any(&self) -> &dyn Any;
}

/// Which part of a data set to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Split {
    /// Training signals.
    Train,
    /// Held-out signals, never used for training.
    Test,
}

/// How many observed and query points a training example has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSizes {
    /// Smallest observation set (may be 0: unconditional generation).
    pub min_observed: usize,
    /// Largest observation set. Sizes are drawn log-uniformly in between.
    pub max_observed: usize,
    /// Queries per example.
    pub queries: usize,
}

/// Hyper-parameters a domain suggests; every one can be overridden on the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainDefaults {
    /// Observation and query set sizes during training.
    pub sets: SetSizes,
    /// Number of value bins (1 = plain Gaussian).
    pub bins: usize,
    /// Smallest standard deviation of any predicted component.
    pub sigma_floor: f32,
    /// Architecture preset.
    pub preset: Preset,
    /// Give queries the nearest observed value as a hint
    /// ([`crate::ModelConfig::nearest_value`]).
    pub nearest_value: bool,
    /// Training steps of the main job.
    pub steps: u64,
    /// Signals per training batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Observation set sizes reported by the generic evaluation.
    pub eval_observed: Vec<usize>,
}

/// A signal type plus everything needed to train on it and show results.
pub trait Domain<const P: usize, const V: usize>: Sized + Send + Sync + 'static {
    /// The signal type.
    type Signal: SpatialSignal<P, V> + Send + Sync;
    /// Domain-specific command-line options (use `clap::Args` derive; an empty struct is fine).
    type Args: clap::Args + Clone + std::fmt::Debug;

    /// Short name, used for `runs/<name>` and to match checkpoints.
    const NAME: &'static str;

    /// Builds the domain from its command-line options.
    fn from_args(args: &Self::Args) -> Result<Self>;
    /// The settings to store in a checkpoint.
    fn config(&self) -> Box<dyn DomainConfig>;
    /// Rebuilds the domain from the settings stored in a checkpoint.
    fn from_config(config: &dyn DomainConfig) -> Result<Self>;

    /// Draws one signal. The same RNG state gives the same signal.
    fn draw_signal(&self, split: Split, rng: &mut ChaCha8Rng) -> Self::Signal;

    /// Observes `signal` at `position`. Override to add observation noise.
    fn observe(
        &self,
        signal: &Self::Signal,
        position: [f32; P],
        _rng: &mut ChaCha8Rng,
    ) -> [f32; V] {
        signal.value_at(position)
    }

    /// Where a training (and held-out) query of `signal` is placed; the
    /// default is uniform over `[-1, 1]^P`, like the observations.
    ///
    /// The model learns the value's distribution *given* its position, so
    /// moving queries changes which positions the loss weighs, not what the
    /// model should predict at a position. Override to spend the loss where
    /// predictions matter most: the SDF domain puts part of its queries near
    /// the surface, where occupancy is decided.
    fn draw_query(&self, _signal: &Self::Signal, rng: &mut ChaCha8Rng) -> [f32; P] {
        crate::signal::random_position(rng)
    }

    /// The dense grid on which mean fields and samples are computed.
    fn grid(&self) -> Grid<P>;

    /// Suggested hyper-parameters.
    fn defaults(&self) -> DomainDefaults;

    /// A checkpoint shipped with the domain crate (`--checkpoint pretrained`).
    fn pretrained_checkpoint(&self) -> Option<PathBuf> {
        None
    }

    /// Writes pictures of predictions for a few test signals (the `sample` command).
    fn render<D: Backend, O: OutputDistribution<V>>(
        &self,
        model: &Model<P, V, D, O>,
        out_dir: &Path,
        seed: u64,
    ) -> Result<Vec<PathBuf>>;

    /// Evaluates a model on held-out signals (the `eval` command) and returns
    /// a human-readable report; also writes machine-readable results under
    /// `out_dir`. The default is the generic held-out NLL table.
    fn evaluate<D: Backend, O: OutputDistribution<V>>(
        &self,
        model: &Model<P, V, D, O>,
        out_dir: &Path,
        seed: u64,
    ) -> Result<String> {
        crate::eval::heldout_report(self, model, out_dir, seed)
    }
}
