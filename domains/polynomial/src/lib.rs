//! Random polynomials as 1-D signals: the paper's section 6.1, and the one
//! domain where the best possible answer is known exactly.
//!
//! A signal is `f(x) = Σ_{k=0}^{6} w_k x^k` with `w ~ N(0, I)`, observed on
//! `x ∈ [-1, 1]`, optionally with Gaussian observation noise. Because the
//! prior is Gaussian and the signal linear in `w`, the posterior predictive
//! given any observations is Gaussian and known in closed form ([`bayes`]):
//! the evaluation puts the model next to that exact answer.
//!
//! On noise-free targets seven observations determine the polynomial, and the
//! exact posterior's variance goes to zero; the model's predicted σ has a
//! floor (1e-3 by default) so its loss stays bounded. Use `--noise 0.05` for
//! the noisy variant.
#![warn(missing_docs)]

pub mod bayes;
mod eval;
mod render;

use std::path::{Path, PathBuf};

use pixel_transformer::{
    Backend, Domain, DomainDefaults, Error, Grid, Model, Observations, OutputDistribution, Result,
    RunOptions, SetSizes, SpatialSignal, Split,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

pub use eval::{evaluate, EvalRow, EVAL_SIZES};

/// Number of coefficients (degree 6).
pub const COEFFICIENTS: usize = bayes::DEGREE + 1;

/// One polynomial of degree 6.
#[derive(Debug, Clone, PartialEq)]
pub struct Polynomial {
    /// Coefficients `w_0 … w_6` of `1, x, …, x^6`.
    pub coefficients: [f32; COEFFICIENTS],
}

impl SpatialSignal<1, 1> for Polynomial {
    fn value_at(&self, position: [f32; 1]) -> [f32; 1] {
        // Horner's rule.
        let x = position[0];
        [self
            .coefficients
            .iter()
            .rev()
            .fold(0.0, |acc, &w| acc * x + w)]
    }
}

/// The polynomial domain's settings: its command-line options and what
/// checkpoints store.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, clap::Args)]
pub struct PolynomialConfig {
    /// Observation noise standard deviation (0 = noise-free, as the paper).
    #[arg(long = "noise", global = true, default_value_t = 0.0, allow_negative_numbers = true,
          value_parser = pixel_transformer::cli::parse::non_negative)]
    pub noise_std: f32,
}

/// The polynomial domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolynomialDomain {
    /// Its settings.
    pub config: PolynomialConfig,
}

impl PolynomialDomain {
    /// A domain with the given observation noise.
    pub fn new(noise_std: f32) -> Result<Self> {
        if !(noise_std >= 0.0 && noise_std.is_finite()) {
            return Err(Error::invalid(format!(
                "noise must be a finite number ≥ 0, got {noise_std}"
            )));
        }
        Ok(Self {
            config: PolynomialConfig { noise_std },
        })
    }
}

impl Domain<1, 1> for PolynomialDomain {
    type Signal = Polynomial;
    type Config = PolynomialConfig;
    const NAME: &'static str = "polynomial";

    fn from_config(config: &PolynomialConfig) -> Result<Self> {
        Self::new(config.noise_std)
    }

    fn config(&self) -> PolynomialConfig {
        self.config
    }

    fn draw_signal(&self, _split: Split, rng: &mut ChaCha8Rng) -> Polynomial {
        // Procedural: train and test draw from the same prior; held-out sets
        // use their own seeds, so they never coincide with training batches.
        Polynomial {
            coefficients: std::array::from_fn(|_| rng.sample(StandardNormal)),
        }
    }

    fn observe(&self, signal: &Polynomial, position: [f32; 1], rng: &mut ChaCha8Rng) -> [f32; 1] {
        let [v] = signal.value_at(position);
        if self.config.noise_std > 0.0 {
            [v + self.config.noise_std * rng.sample::<f32, _>(StandardNormal)]
        } else {
            [v]
        }
    }

    fn grid(&self) -> Grid<1> {
        Grid::new([100])
    }

    fn defaults(&self) -> DomainDefaults {
        DomainDefaults {
            sets: SetSizes {
                min_observed: 4,
                max_observed: 20,
                queries: 20,
            },
            steps: 3000,
            eval_observed: EVAL_SIZES.to_vec(),
            ..DomainDefaults::default()
        }
    }

    fn pretrained_checkpoint(&self) -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pretrained");
        dir.join(pixel_transformer::train::checkpoint::FILE_NAME)
            .exists()
            .then_some(dir)
    }

    fn exact_posterior(
        &self,
        observed: &Observations<1, 1>,
        queries: &[[f32; 1]],
    ) -> Option<Result<Vec<pixel_transformer::domain::MeanStd<1>>>> {
        let xs: Vec<f64> = observed.positions.iter().map(|x| x[0] as f64).collect();
        let ys: Vec<f64> = observed.values.iter().map(|v| v[0] as f64).collect();
        let noise = self.config.noise_std as f64;
        Some(
            bayes::BayesPosterior::fit(&xs, &ys, noise, bayes::NOISE_FREE_JITTER)
                .map_err(Error::invalid)
                .map(|posterior| {
                    queries
                        .iter()
                        .map(|q| {
                            let (mean, var) = posterior.predict(q[0] as f64);
                            ([mean as f32], [var.sqrt() as f32])
                        })
                        .collect()
                }),
        )
    }

    fn render<D: Backend, O: OutputDistribution<1>>(
        &self,
        model: &Model<1, 1, D, O>,
        out_dir: &Path,
        options: &RunOptions,
    ) -> Result<Vec<PathBuf>> {
        render::render(self, model, out_dir, options)
    }

    fn evaluate<D: Backend, O: OutputDistribution<1>>(
        &self,
        model: &Model<1, 1, D, O>,
        out_dir: &Path,
        options: &RunOptions,
    ) -> Result<Option<String>> {
        let signals = options.eval_count.unwrap_or(eval::EVAL_SIGNALS);
        let rows = eval::evaluate_shared(self, model, signals, options.seed, &options.shard)?;
        if options.shard.writes() {
            eval::write_csv(&rows, &out_dir.join("eval.csv"))?;
        }
        Ok(Some(eval::table(&rows)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horner_matches_the_power_sum() {
        let p = Polynomial {
            coefficients: [1.0, -2.0, 0.5, 3.0, 0.0, -1.0, 2.0],
        };
        let x = 0.7f32;
        let direct: f32 = p
            .coefficients
            .iter()
            .enumerate()
            .map(|(k, w)| w * x.powi(k as i32))
            .sum();
        assert!((p.value_at([x])[0] - direct).abs() < 1e-5);
    }

    #[test]
    fn negative_or_nan_noise_is_refused() {
        assert!(PolynomialDomain::new(-0.1).is_err());
        assert!(PolynomialDomain::new(f32::NAN).is_err());
    }
}
