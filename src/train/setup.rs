//! A new run: the domain's suggested hyper-parameters, overridden by the
//! caller's choices, checked once here for every caller (the command line,
//! tests, programs that train from code).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{TrainSettings, TrainState};
use crate::domain::{Domain, DomainDefaults, Split};
use crate::error::{Error, Result};
use crate::signal::random_position;
use crate::signal::SetSizes;
use crate::{Backend, BinnedMixture, Model, ModelConfig, Preset};

/// What a caller chooses for a new run; `None` keeps the domain's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunChoices {
    /// Seed for the weights, the data stream and dropout.
    pub seed: u64,
    /// Training steps (the learning rate's cosine ends there).
    pub steps: Option<u64>,
    /// Architecture preset.
    pub preset: Option<Preset>,
    /// Signals per batch.
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    pub learning_rate: Option<f64>,
    /// Value bins (1 = a plain Gaussian).
    pub bins: Option<usize>,
    /// The nearest-value hint.
    pub nearest_value: Option<bool>,
    /// Smallest training observation set.
    pub min_observed: Option<usize>,
    /// Largest training observation set.
    pub max_observed: Option<usize>,
    /// Dropout rate (default 0).
    pub dropout: Option<f32>,
    /// Keep the learning rate constant instead of a cosine decay.
    pub constant_lr: bool,
}

impl RunChoices {
    /// Checks what the training settings cannot ([`TrainSettings::validate`]
    /// checks the rest once the domain's defaults are filled in).
    pub fn validate(&self) -> Result<()> {
        if self.bins == Some(0) {
            return Err(Error::invalid(
                "--bins must be at least 1 (1 = a plain Gaussian)",
            ));
        }
        if let Some(bins) = self.bins.filter(|b| *b > MAX_BINS) {
            return Err(Error::invalid(format!(
                "--bins {bins} is more than the {MAX_BINS} that k-means can place among the \
                 {FIT_VALUES} sampled values it fits them on"
            )));
        }
        Ok(())
    }

    /// The run's steps: the choice, else the domain's.
    pub fn steps(&self, defaults: &DomainDefaults) -> u64 {
        self.steps.unwrap_or(defaults.steps)
    }

    /// The training settings of a new run with these choices.
    pub fn settings(&self, defaults: &DomainDefaults) -> TrainSettings {
        TrainSettings {
            seed: self.seed,
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            learning_rate: self.learning_rate.unwrap_or(defaults.learning_rate),
            sets: SetSizes {
                min_observed: self.min_observed.unwrap_or(defaults.sets.min_observed),
                max_observed: self.max_observed.unwrap_or(defaults.sets.max_observed),
                ..defaults.sets
            },
            cosine_decay_steps: (!self.constant_lr).then(|| self.steps(defaults)),
            dropout: self.dropout.unwrap_or(0.0),
        }
    }
}

/// Training signals, and values drawn from each, that the bins are fitted on.
const FIT_SIGNALS: usize = 256;
const FIT_VALUES_PER_SIGNAL: usize = 128;
/// Values k-means fits the bins on.
pub const FIT_VALUES: usize = FIT_SIGNALS * FIT_VALUES_PER_SIGNAL;
/// Most bins a run may ask for: k-means needs several values per bin, and
/// its time grows with bins × values.
pub const MAX_BINS: usize = 4096;

/// Fits the output distribution's bins on values from training signals.
pub fn fit_distribution<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    bins: usize,
    sigma_floor: f32,
    seed: u64,
) -> Result<BinnedMixture> {
    if bins <= 1 {
        return Ok(BinnedMixture::gaussian(V, sigma_floor));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb1a5);
    let mut values = Vec::new();
    for _ in 0..FIT_SIGNALS {
        let s = domain.draw_signal(Split::Train, &mut rng);
        for _ in 0..FIT_VALUES_PER_SIGNAL {
            let x = random_position(&mut rng);
            values.push(domain.observe(&s, x, &mut rng));
        }
    }
    BinnedMixture::fit(&values, bins, sigma_floor, seed)
}

/// A fresh training state: a new model and settings from the domain's
/// defaults and `choices`.
pub fn fresh_state<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    choices: &RunChoices,
    device: &D,
) -> Result<TrainState<P, V, D, BinnedMixture>> {
    choices.validate()?;
    let d = domain.defaults();
    let settings = choices.settings(&d);
    settings.validate()?;
    let config = ModelConfig {
        nearest_value: choices.nearest_value.unwrap_or(d.nearest_value),
        ..choices.preset.unwrap_or(d.preset).config()
    };
    let bins = choices.bins.unwrap_or(d.bins);
    let distribution = fit_distribution(domain, bins, d.sigma_floor, choices.seed)?;
    let model = Model::new(config, distribution, choices.seed, device)?;
    Ok(TrainState::new(model, settings))
}
