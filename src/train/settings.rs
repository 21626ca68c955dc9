//! The settings of a training run, stored in its checkpoints so that a
//! resumed run continues exactly as it started.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Dropout;
use crate::signal::SetSizes;

/// The settings of a training run, stored in its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Seed for model initialisation, the data stream and dropout's masks.
    pub seed: u64,
    /// Signals per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Observation and query set sizes.
    pub sets: SetSizes,
    /// If set, the learning rate follows a cosine from `learning_rate` down to
    /// 1 % of it over this many steps, then stays there. Fixed at the start of
    /// a run and stored in its checkpoints, so a resumed run follows the same curve.
    #[serde(default)]
    pub cosine_decay_steps: Option<u64>,
    /// Dropout rate during training ([`Dropout`]; 0 = none, the paper's
    /// reference uses 0.1). Its masks are drawn from the seed and the step,
    /// so a resumed run reproduces the uninterrupted one. 0 in checkpoints
    /// written before the option existed.
    #[serde(default)]
    pub dropout: f32,
}

impl TrainSettings {
    /// Checks the settings before anything is drawn or allocated; each
    /// message names the command-line option that sets the value.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.sets.queries == 0 {
            return Err(Error::invalid(
                "--batch-size and the query count must be at least 1",
            ));
        }
        Dropout::validate_rate(self.dropout).map_err(|e| match e {
            Error::InvalidInput(m) => Error::invalid(format!("--dropout: {m}")),
            e => e,
        })?;
        let (min, max) = (self.sets.min_observed, self.sets.max_observed);
        if max > 1 << 30 {
            return Err(Error::invalid(format!(
                "the largest training set ({max}, --max-observed) is beyond any memory"
            )));
        }
        if min > max {
            return Err(Error::invalid(format!(
                "the smallest training set ({min}) is above the largest ({max}): \
                 --min-observed {min} > --max-observed {max}"
            )));
        }
        Ok(())
    }

    /// The dropout of step `step` (0-based): `None` when the rate is 0.
    pub fn dropout_at(&self, step: u64) -> Option<Dropout> {
        (self.dropout > 0.0).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xd0_0d);
            rng.set_stream(step);
            Dropout {
                rate: self.dropout,
                seed: rng.next_u64(),
            }
        })
    }

    /// The learning rate used for step `step` (0-based).
    pub fn learning_rate_at(&self, step: u64) -> f64 {
        match self.cosine_decay_steps {
            Some(total) if total > 0 => {
                let progress = (step as f64 / total as f64).min(1.0);
                let floor = 0.01 * self.learning_rate;
                floor
                    + (self.learning_rate - floor)
                        * 0.5
                        * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            _ => self.learning_rate,
        }
    }
}
