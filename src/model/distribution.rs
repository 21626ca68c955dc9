//! What the network predicts at each query: a probability distribution over values.
//!
//! The head of the model emits a fixed number of numbers per query
//! ([`OutputDistribution::head_width`]); a distribution type says how to turn
//! them into a training loss (on the device, differentiable) and into
//! means, standard deviations, samples and log-densities (on the host).
//!
//! The shipped type is [`BinnedMixture`], the paper's output: `B` bins with
//! fixed centres `c_b` (k-means of training values); per bin the network
//! predicts a logit `q_b`, an offset `μ_b ∈ R^V` and a log-variance. The value
//! density is the Gaussian mixture `Σ_b p_b N(v; c_b + μ_b, σ_b² I)` with
//! `p = softmax(q)`. With one bin centred at zero it is a plain Gaussian.
//!
//! Two deliberate choices, both applied identically in the loss, in sampling
//! and in evaluation so that the predicted σ means what it says:
//! - `σ_b² = exp(log_var_b) + σ_floor²`. The floor keeps the likelihood
//!   bounded on noise-free targets (a polynomial of degree 6 is determined
//!   exactly by 7 points, and without a floor the loss would run to −∞).
//! - The within-bin term of the loss is the proper Gaussian negative
//!   log-density, `V·log σ + ½‖r/σ‖² + (V/2)·log 2π`. The paper writes
//!   `log σ + ‖r/σ‖²`, whose minimiser is `σ² = 2‖r‖²`, biasing σ by √2; its
//!   reference sampler even uses `exp(log_var)` as σ. We keep the paper's bin
//!   term and α = 0.1 weighting: `loss = −log p_{b*} + α · NLL_gauss`, with
//!   `b*` the bin centre nearest the true value.

use dfdx::prelude::*;
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{error::device_err, Error, Result};

/// The range log-variances are clamped to, so `exp` can neither overflow nor
/// produce a zero variance on its own.
const LOG_VAR_RANGE: (f32, f32) = (-30.0, 15.0);
const LOG_2PI: f32 = 1.837_877_1;

/// A family of value distributions the model's head can parameterise.
///
/// `params` arguments are one query's slice of the head output, of length
/// [`head_width`](Self::head_width).
pub trait OutputDistribution<const V: usize>:
    Clone + std::fmt::Debug + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// How many numbers the head predicts per query.
    fn head_width(&self) -> usize;

    /// The mean training loss over the rows of `head` (one row per query),
    /// differentiable through `head`.
    fn loss<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
        &self,
        head: Tensor<(usize, usize), f32, D, T>,
        targets: &[[f32; V]],
    ) -> Result<Tensor<Rank0, f32, D, T>>;

    /// Mean of the distribution.
    fn mean(&self, params: &[f32]) -> [f32; V];
    /// Standard deviation of each value dimension.
    fn std(&self, params: &[f32]) -> [f32; V];
    /// The most likely value (the centre of the most probable component).
    fn mode(&self, params: &[f32]) -> [f32; V];
    /// Proper log-density of `value`, in nats.
    fn log_prob(&self, params: &[f32], value: &[f32; V]) -> f32;
    /// Draws a value; `temperature` < 1 sharpens the choice of component.
    fn sample(&self, params: &[f32], temperature: f32, rng: &mut dyn RngCore) -> [f32; V];
    /// The mixture's components at one query, for distributions that are
    /// mixtures (`None` otherwise): what a query's distribution looks like
    /// beyond its mean and spread, e.g. two likely values and nothing between.
    fn mixture(&self, _params: &[f32]) -> Option<Mixture> {
        None
    }
}

/// The components of a mixture distribution at one query.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Mixture {
    /// Probability of each component (they sum to 1).
    pub probabilities: Vec<f32>,
    /// Each component's mean value (`V` numbers each).
    pub means: Vec<Vec<f32>>,
    /// Each component's standard deviation (shared by the value dimensions).
    pub sigmas: Vec<f32>,
}

/// The paper's binned Gaussian mixture (a plain Gaussian when it has one bin).
///
/// ```
/// use pixel_transformer::{BinnedMixture, OutputDistribution};
///
/// // Two bins at 0 and 1. A query's parameters: logits, offsets, log-variances.
/// let d = BinnedMixture::with_centres(&[[0.0f32], [1.0]], 0.1, 1e-3)?;
/// let params = [0.0, 0.0, 0.0, 0.0, (0.01f32).ln(), (0.01f32).ln()];
/// assert!((OutputDistribution::<1>::mean(&d, &params)[0] - 0.5).abs() < 1e-6);
/// let near_a_bin = OutputDistribution::<1>::log_prob(&d, &params, &[1.0]);
/// let between = OutputDistribution::<1>::log_prob(&d, &params, &[0.5]);
/// assert!(near_a_bin > between);
/// # Ok::<(), pixel_transformer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinnedMixture {
    /// Value dimensions `V`.
    pub value_dims: usize,
    /// Bin centres, `bins × V`, row-major.
    pub centres: Vec<f32>,
    /// Weight of the within-bin Gaussian term in the training loss (paper: 0.1).
    pub alpha: f32,
    /// Smallest standard deviation any component can have.
    pub sigma_floor: f32,
}

impl BinnedMixture {
    /// A single Gaussian centred at zero (its offset is the predicted mean).
    pub fn gaussian(value_dims: usize, sigma_floor: f32) -> Self {
        Self {
            value_dims,
            centres: vec![0.0; value_dims],
            alpha: 1.0,
            sigma_floor,
        }
    }

    /// A mixture with the given bin centres.
    pub fn with_centres<const V: usize>(
        centres: &[[f32; V]],
        alpha: f32,
        sigma_floor: f32,
    ) -> Result<Self> {
        if centres.is_empty() {
            return Err(Error::invalid("a binned mixture needs at least one bin"));
        }
        if centres.iter().flatten().any(|c| !c.is_finite()) {
            return Err(Error::invalid("bin centres must be finite"));
        }
        if !(alpha > 0.0 && alpha.is_finite() && sigma_floor > 0.0 && sigma_floor.is_finite()) {
            return Err(Error::invalid(
                "alpha and sigma_floor must be positive and finite",
            ));
        }
        Ok(Self {
            value_dims: V,
            centres: centres.iter().flatten().copied().collect(),
            alpha,
            sigma_floor,
        })
    }

    /// Bins chosen by seeded k-means over training values (the paper's recipe).
    ///
    /// With `bins == 1` this is [`BinnedMixture::gaussian`].
    pub fn fit<const V: usize>(
        values: &[[f32; V]],
        bins: usize,
        sigma_floor: f32,
        seed: u64,
    ) -> Result<Self> {
        if bins <= 1 {
            return Ok(Self::gaussian(V, sigma_floor));
        }
        let centres = crate::model::kmeans::kmeans(values, bins, seed)?;
        Self::with_centres(&centres, 0.1, sigma_floor)
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.centres.len() / self.value_dims.max(1)
    }

    /// Index of the centre nearest `value` (Euclidean).
    pub fn nearest_bin(&self, value: &[f32]) -> usize {
        let v = self.value_dims;
        let mut best = (0, f32::INFINITY);
        for (b, c) in self.centres.chunks_exact(v).enumerate() {
            let d: f32 = c.iter().zip(value).map(|(c, x)| (c - x) * (c - x)).sum();
            if d < best.1 {
                best = (b, d);
            }
        }
        best.0
    }

    /// Per-bin probabilities (softmax of logits at the given temperature),
    /// component means and variances, decoded from one query's head output.
    fn components(&self, params: &[f32], temperature: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let k = self.bins();
        let v = self.value_dims;
        let logits = &params[..k];
        let offsets = &params[k..k + k * v];
        let log_vars = &params[k + k * v..k + k * v + k];
        let t = temperature.max(1e-6);
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut probs: Vec<f32> = logits.iter().map(|&q| ((q - max) / t).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let means = (0..k * v).map(|i| self.centres[i] + offsets[i]).collect();
        let floor2 = self.sigma_floor * self.sigma_floor;
        let vars = log_vars
            .iter()
            .map(|&lv| lv.clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1).exp() + floor2)
            .collect();
        (probs, means, vars)
    }
}

impl<const V: usize> OutputDistribution<V> for BinnedMixture {
    fn head_width(&self) -> usize {
        self.bins() * (V + 2)
    }

    fn loss<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
        &self,
        head: Tensor<(usize, usize), f32, D, T>,
        targets: &[[f32; V]],
    ) -> Result<Tensor<Rank0, f32, D, T>> {
        let (n, width) = *head.shape();
        let k = self.bins();
        if n != targets.len() || width != k * (V + 2) || self.value_dims != V {
            return Err(Error::invalid(format!(
                "loss: head is {n}×{width}, expected {}×{} for {k} bins of {V} values",
                targets.len(),
                k * (V + 2)
            )));
        }
        // The nearest bin of each target is data, not a function of the
        // weights: find it on the host and hand the device a one-hot mask
        // and the residual target relative to that bin's centre.
        let mut one_hot = vec![0.0f32; n * k];
        let mut residual = vec![0.0f32; n * V];
        for (i, t) in targets.iter().enumerate() {
            let b = self.nearest_bin(t);
            one_hot[i * k + b] = 1.0;
            for d in 0..V {
                residual[i * V + d] = t[d] - self.centres[b * V + d];
            }
        }
        let dev = head.device().clone();
        let one_hot = dev.tensor_from_vec(one_hot, (n, k));
        let residual = dev.tensor_from_vec(residual, (n, V));

        let logits = head
            .with_empty_tape()
            .try_slice((.., 0..k))
            .map_err(device_err)?;
        let offsets = head
            .with_empty_tape()
            .try_slice((.., k..k + k * V))
            .map_err(device_err)?
            .try_reshape_like(&(n, k, V))
            .map_err(device_err)?;
        let log_var = head.try_slice((.., k + k * V..)).map_err(device_err)?;

        // −log p_{b*}: only the chosen bin's log-probability survives the mask.
        let log_p = logits.try_log_softmax::<Axis<1>>().map_err(device_err)?;
        let bin_nll = (log_p * one_hot.clone())
            .try_sum::<Rank0, _>()
            .map_err(device_err)?
            .negate();

        // The chosen bin's offset and log-variance, selected by the same mask.
        let mask3 = one_hot.clone().broadcast_like::<_, Axis<2>>(&(n, k, V));
        let mu = (offsets * mask3)
            .try_sum::<_, Axis<1>>()
            .map_err(device_err)?;
        let log_var = (log_var.clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1) * one_hot)
            .try_sum::<_, Axis<1>>()
            .map_err(device_err)?;
        let var = log_var.exp() + self.sigma_floor * self.sigma_floor;
        let sq = (mu.negate() + residual).square().sum::<_, Axis<1>>();
        let gauss = var.with_empty_tape().ln() * (0.5 * V as f32)
            + sq * var.recip() * 0.5
            + 0.5 * V as f32 * LOG_2PI;
        let gauss = gauss.sum::<Rank0, _>();
        Ok((bin_nll + gauss * self.alpha) / n as f32)
    }

    fn mean(&self, params: &[f32]) -> [f32; V] {
        let (p, m, _) = self.components(params, 1.0);
        let mut out = [0.0; V];
        for (b, &pb) in p.iter().enumerate() {
            for d in 0..V {
                out[d] += pb * m[b * V + d];
            }
        }
        out
    }

    fn std(&self, params: &[f32]) -> [f32; V] {
        // Law of total variance: Var = Σ p_b (σ_b² + m_b²) − mean².
        let (p, m, var) = self.components(params, 1.0);
        let mean = OutputDistribution::<V>::mean(self, params);
        let mut out = [0.0; V];
        for d in 0..V {
            let second: f32 = p
                .iter()
                .enumerate()
                .map(|(b, &pb)| pb * (var[b] + m[b * V + d] * m[b * V + d]))
                .sum();
            out[d] = (second - mean[d] * mean[d]).max(0.0).sqrt();
        }
        out
    }

    fn mode(&self, params: &[f32]) -> [f32; V] {
        let (p, m, _) = self.components(params, 1.0);
        let best = (0..p.len()).fold(0, |best, b| if p[b] > p[best] { b } else { best });
        std::array::from_fn(|d| m[best * V + d])
    }

    fn log_prob(&self, params: &[f32], value: &[f32; V]) -> f32 {
        let (p, m, var) = self.components(params, 1.0);
        // log Σ_b p_b N(v; m_b, σ_b² I), computed with the log-sum-exp trick.
        let terms: Vec<f32> = (0..p.len())
            .map(|b| {
                let sq: f32 = (0..V).map(|d| (value[d] - m[b * V + d]).powi(2)).sum();
                p[b].max(1e-30).ln() - 0.5 * V as f32 * (LOG_2PI + var[b].ln()) - 0.5 * sq / var[b]
            })
            .collect();
        let max = terms.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        max + terms.iter().map(|t| (t - max).exp()).sum::<f32>().ln()
    }

    fn mixture(&self, params: &[f32]) -> Option<Mixture> {
        let (probabilities, means, vars) = self.components(params, 1.0);
        Some(Mixture {
            probabilities,
            means: means.chunks(V.max(1)).map(<[f32]>::to_vec).collect(),
            sigmas: vars.iter().map(|v| v.sqrt()).collect(),
        })
    }

    fn sample(&self, params: &[f32], temperature: f32, rng: &mut dyn RngCore) -> [f32; V] {
        let (p, m, var) = self.components(params, temperature);
        let mut u: f32 = rng.gen();
        let mut bin = p.len() - 1;
        for (b, &pb) in p.iter().enumerate() {
            if u < pb {
                bin = b;
                break;
            }
            u -= pb;
        }
        let sigma = var[bin].sqrt();
        std::array::from_fn(|d| {
            let z: f32 = rng.sample(StandardNormal);
            m[bin * V + d] + sigma * z
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn two_bins() -> BinnedMixture {
        BinnedMixture::with_centres(&[[0.0f32], [1.0]], 0.1, 1e-3).unwrap()
    }

    #[test]
    fn gaussian_log_prob_matches_closed_form() {
        let g = BinnedMixture::gaussian(1, 1e-3);
        // logit, offset (= mean), log-variance
        let params = [0.0, 0.5, (0.25f32).ln()];
        let lp = OutputDistribution::<1>::log_prob(&g, &params, &[1.0]);
        let var = 0.25 + 1e-6;
        let expected = -0.5 * (2.0 * std::f32::consts::PI * var).ln() - 0.25 / (2.0 * var);
        assert!((lp - expected).abs() < 1e-5, "{lp} vs {expected}");
        assert_eq!(OutputDistribution::<1>::mean(&g, &params), [0.5]);
        assert!((OutputDistribution::<1>::std(&g, &params)[0] - var.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn mixture_mean_std_and_mode_match_hand_computation() {
        let m = two_bins();
        // logits ln(1), ln(3) → p = (0.25, 0.75); offsets 0.1, -0.2; variances 0.01, 0.04.
        let params = [0.0, 3.0f32.ln(), 0.1, -0.2, 0.01f32.ln(), 0.04f32.ln()];
        let mean = OutputDistribution::<1>::mean(&m, &params)[0];
        let expected_mean = 0.25 * 0.1 + 0.75 * 0.8;
        assert!((mean - expected_mean).abs() < 1e-5);
        let second = 0.25 * (0.01 + 1e-6 + 0.01) + 0.75 * (0.04 + 1e-6 + 0.64);
        let std = OutputDistribution::<1>::std(&m, &params)[0];
        assert!((std - (second - expected_mean * expected_mean).sqrt()).abs() < 1e-5);
        assert!((OutputDistribution::<1>::mode(&m, &params)[0] - 0.8).abs() < 1e-6);
        // Density of the mixture at 0.8, by hand.
        let n = |x: f32, mu: f32, var: f32| {
            (-(x - mu).powi(2) / (2.0 * var)).exp() / (2.0 * std::f32::consts::PI * var).sqrt()
        };
        let density = 0.25 * n(0.8, 0.1, 0.01 + 1e-6) + 0.75 * n(0.8, 0.8, 0.04 + 1e-6);
        let lp = OutputDistribution::<1>::log_prob(&m, &params, &[0.8]);
        assert!((lp - density.ln()).abs() < 1e-4, "{lp} vs {}", density.ln());
    }

    #[test]
    fn samples_have_the_predicted_moments() {
        let m = two_bins();
        let params = [0.0, 3.0f32.ln(), 0.1, -0.2, 0.01f32.ln(), 0.04f32.ln()];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let xs: Vec<f32> = (0..40_000)
            .map(|_| OutputDistribution::<1>::sample(&m, &params, 1.0, &mut rng)[0])
            .collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / xs.len() as f32;
        let want_mean = OutputDistribution::<1>::mean(&m, &params)[0];
        let want_std = OutputDistribution::<1>::std(&m, &params)[0];
        assert!((mean - want_mean).abs() < 0.01, "{mean} vs {want_mean}");
        assert!((var.sqrt() - want_std).abs() < 0.01);
        // Low temperature concentrates on the likelier bin: values below 0.3
        // come almost only from bin 0 (≈ 25 % of draws at τ = 1, ≈ 0.6 % at τ → 0).
        let low = |t: f32, rng: &mut rand_chacha::ChaCha8Rng| {
            (0..2000)
                .filter(|_| OutputDistribution::<1>::sample(&m, &params, t, rng)[0] < 0.3)
                .count()
        };
        assert!(low(1.0, &mut rng) > 400);
        assert!(low(0.05, &mut rng) < 40);
    }

    #[test]
    fn device_loss_matches_host_formula() {
        let dev = Cpu::default();
        let m = two_bins();
        let params = vec![
            0.0,
            3.0f32.ln(),
            0.1,
            -0.2,
            0.01f32.ln(),
            0.04f32.ln(),
            0.5,
            -0.5,
            0.3,
            0.0,
            -1.0,
            -2.0,
        ];
        let targets = [[0.85f32], [0.2]];
        let head = dev.tensor_from_vec(params.clone(), (2usize, 6usize));
        let loss = OutputDistribution::<1>::loss(&m, head, &targets)
            .unwrap()
            .array();
        // By hand: sample 0 → bin 1; sample 1 → bin 0.
        let host = |p: &[f32], b: usize, t: f32| {
            let (probs, means, vars) = m.components(p, 1.0);
            let r = t - means[b];
            -probs[b].ln() + 0.1 * (0.5 * vars[b].ln() + 0.5 * r * r / vars[b] + 0.5 * LOG_2PI)
        };
        let expected = (host(&params[..6], 1, 0.85) + host(&params[6..], 0, 0.2)) / 2.0;
        assert!((loss - expected).abs() < 1e-4, "{loss} vs {expected}");
    }

    #[test]
    fn loss_gradient_flows_to_every_head_output() {
        let dev = Cpu::default();
        let m = two_bins();
        let head = dev.tensor_from_vec(vec![0.1f32, 0.2, 0.0, 0.0, 0.0, 0.0], (1usize, 6usize));
        let grads = OutputDistribution::<1>::loss(&m, head.leaky_trace(), &[[0.9]])
            .unwrap()
            .backward();
        let g = grads.get(&head).as_vec();
        // logits, the chosen bin's offset and log-variance get gradient; the other bin's do not.
        assert!(
            g[0] != 0.0 && g[1] != 0.0 && g[3] != 0.0 && g[5] != 0.0,
            "{g:?}"
        );
        assert_eq!(g[2], 0.0);
        assert_eq!(g[4], 0.0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Cpu::default();
        let m = two_bins();
        let head = dev.zeros_like(&(3usize, 6usize));
        assert!(OutputDistribution::<1>::loss(&m, head, &[[0.0]]).is_err());
        assert!(BinnedMixture::with_centres::<1>(&[], 0.1, 1e-3).is_err());
    }
}
