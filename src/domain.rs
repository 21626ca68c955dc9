//! Domain plugins: where signals come from and how results are shown.
//!
//! A domain ties a [`SpatialSignal`] type to everything the framework needs
//! to train on it and to show results: its settings (one type, used both as
//! command-line options and as what checkpoints store), seeded train/test
//! signal streams, a dense grid, default hyper-parameters, and pictures.
//! Implement [`Domain`] for your signal type and [`crate::cli::run`] gives
//! you `train`, `sample`, `eval`, `export`, `limits`, `predict` and `serve`; the
//! defaults draw stock pictures and evaluate the held-out likelihood, so a
//! domain writes only what is particular to it.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::infer::RunOptions;
use crate::plot::stock;
use crate::{Backend, Grid, Model, Observations, OutputDistribution, Preset, SpatialSignal};

/// Which part of a data set to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Split {
    /// Training signals.
    Train,
    /// Held-out signals, never used for training.
    Test,
}

pub use crate::signal::SetSizes;

/// A mean and a standard deviation at one position
/// ([`Domain::exact_posterior`]).
pub type MeanStd<const V: usize> = ([f32; V], [f32; V]);

/// Hyper-parameters a domain suggests; every one can be overridden on the
/// command line. Start from [`Default`] and name only what you change:
///
/// ```
/// use pixel_transformer::{DomainDefaults, Preset};
/// let defaults = DomainDefaults { steps: 2000, preset: Preset::Tiny, ..DomainDefaults::default() };
/// assert_eq!(defaults.bins, 1);
/// ```
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
    /// Observation set sizes reported by the generic evaluation and the
    /// columns of the stock pictures.
    pub eval_observed: Vec<usize>,
}

impl Default for DomainDefaults {
    /// A small model that trains in minutes on a CPU: sets of 4 to 32
    /// observations and 32 queries, one Gaussian per query, the `small`
    /// preset, 2,000 steps of batch 32 at learning rate 5e-4.
    fn default() -> Self {
        Self {
            sets: SetSizes {
                min_observed: 4,
                max_observed: 32,
                queries: 32,
            },
            bins: 1,
            sigma_floor: 1e-3,
            preset: Preset::Small,
            nearest_value: false,
            steps: 2000,
            batch_size: 32,
            learning_rate: 5e-4,
            eval_observed: vec![4, 8, 16, 32],
        }
    }
}

/// A signal type plus everything needed to train on it and show results.
///
/// Required: the signal and settings types, a name, [`Domain::from_config`]
/// and [`Domain::config`], [`Domain::draw_signal`] and [`Domain::grid`].
/// Everything else has a default.
pub trait Domain<const P: usize, const V: usize>: Sized + Send + Sync + 'static {
    /// The signal type.
    type Signal: SpatialSignal<P, V> + Send + Sync;
    /// The domain's settings: its command-line options (derive `clap::Args`)
    /// and what checkpoints store (derive serde's `Serialize` and
    /// `Deserialize`), so `sample`, `eval` and `train --resume` rebuild the
    /// domain a model was trained on. A struct without fields is fine.
    type Config: clap::Args + Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;

    /// Short name, used for `runs/<name>` and to match checkpoints.
    const NAME: &'static str;

    /// Builds the domain from its settings; bad settings are an error that
    /// names the option.
    fn from_config(config: &Self::Config) -> Result<Self>;
    /// The settings to store in a checkpoint (those it was built from, with
    /// anything left open resolved).
    fn config(&self) -> Self::Config;

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

    /// Suggested hyper-parameters ([`DomainDefaults::default`] unless overridden).
    fn defaults(&self) -> DomainDefaults {
        DomainDefaults::default()
    }

    /// A checkpoint shipped with the domain crate (`--checkpoint pretrained`).
    fn pretrained_checkpoint(&self) -> Option<PathBuf> {
        None
    }

    /// Where runs go without `--out` (default `runs/<NAME>`); domains with
    /// several data sets keep their runs apart here.
    fn run_folder(_config: &Self::Config) -> PathBuf {
        PathBuf::from("runs").join(Self::NAME)
    }

    /// Values per position these settings describe. Programs whose value
    /// dimension depends on the data (grey or colour images) pick the
    /// compiled `V` with it ([`crate::cli::run_grey_or_colour`]); others
    /// need not override it.
    fn value_dims(_config: &Self::Config) -> usize {
        V
    }

    /// Writes pictures of predictions for a few test signals (the `sample`
    /// command) and returns their paths. The default draws the framework's
    /// stock pictures ([`crate::plot::stock`]): curves for 1-D signals,
    /// image grids for 2-D ones, nothing for higher dimensions. (The
    /// command line adds the training curve when `out_dir` holds a log.)
    fn render<D: Backend, O: OutputDistribution<V>>(
        &self,
        model: &Model<P, V, D, O>,
        out_dir: &Path,
        options: &RunOptions,
    ) -> Result<Vec<PathBuf>> {
        let sizes = stock::column_sizes(&self.defaults().eval_observed);
        let rows = stock::rows(
            options.render_count.unwrap_or(stock::SIGNALS),
            sizes.iter().copied().max().unwrap_or(0),
            options.seed,
            |rng| self.draw_signal(Split::Test, rng),
            |signal, x, rng| self.observe(signal, x, rng),
        );
        stock::pictures(model, &rows, &self.grid(), &sizes, out_dir, options)
    }

    /// The exact posterior predictive at each of `queries` given `observed`,
    /// as a mean and a standard deviation per query, for a domain that knows
    /// it (the polynomial domain's Bayes posterior); `None`, the default, for
    /// one that does not. The `serve` page draws it beside the model's.
    fn exact_posterior(
        &self,
        _observed: &Observations<P, V>,
        _queries: &[[f32; P]],
    ) -> Option<Result<Vec<MeanStd<V>>>> {
        None
    }

    /// Evaluates a model on held-out signals (the `eval` command): returns a
    /// human-readable report and writes machine-readable results under
    /// `out_dir`. `Ok(None)` (the default) asks for the framework's generic
    /// table: held-out NLL and RMSE at each of `defaults().eval_observed`.
    fn evaluate<D: Backend, O: OutputDistribution<V>>(
        &self,
        _model: &Model<P, V, D, O>,
        _out_dir: &Path,
        _options: &RunOptions,
    ) -> Result<Option<String>> {
        Ok(None)
    }
}

/// A domain's settings as a checkpoint stores them: the config's fields
/// plus `"type": NAME`, so a checkpoint says which domain it belongs to.
pub fn config_to_json<const P: usize, const V: usize, Dm: Domain<P, V>>(
    config: &Dm::Config,
) -> Result<serde_json::Value> {
    let value = serde_json::to_value(config)
        .map_err(|e| Error::invalid(format!("cannot store the {} settings: {e}", Dm::NAME)))?;
    let mut object = match value {
        serde_json::Value::Object(o) => o,
        // Unit structs serialise as `null`: a config without fields.
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            return Err(Error::invalid(format!(
                "the {} settings must serialise as a JSON object (a struct), not {other}",
                Dm::NAME
            )))
        }
    };
    object.insert("type".into(), Dm::NAME.into());
    Ok(serde_json::Value::Object(object))
}

/// Reads the settings a checkpoint stored with [`config_to_json`].
pub fn config_from_json<const P: usize, const V: usize, Dm: Domain<P, V>>(
    stored: &serde_json::Value,
) -> Result<Dm::Config> {
    let mut object = stored.as_object().cloned().unwrap_or_default();
    if let Some(tag) = object.remove("type") {
        if tag != Dm::NAME {
            return Err(Error::invalid(format!(
                "these are settings of the `{tag}` domain, not `{}`",
                Dm::NAME
            )));
        }
    }
    let empty = object.is_empty();
    serde_json::from_value(serde_json::Value::Object(object))
        .or_else(|e| {
            // Unit-struct configs read back from an empty object as `null`.
            if empty {
                serde_json::from_value(serde_json::Value::Null).map_err(|_| e)
            } else {
                Err(e)
            }
        })
        .map_err(|e| Error::invalid(format!("cannot read the stored {} settings: {e}", Dm::NAME)))
}
