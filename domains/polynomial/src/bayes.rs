//! Exact Bayesian linear regression: the reference predictor for the polynomial domain.
//!
//! Signals are random polynomials `f(x) = Σ_{k=0}^{DEGREE} w_k x^k` with `w ~ N(0, I)`,
//! so `f` is a Gaussian process with the (degenerate) kernel
//! `k(x, x') = φ(x)·φ(x')`, `φ(x) = [1, x, …, x^DEGREE]`. Given noisy observations
//! `y_i = f(x_i) + ε_i`, `ε_i ~ N(0, noise_std²)`, the posterior predictive at any `x` is
//! Gaussian and available in closed form; no learned model can beat it in expected
//! negative log-likelihood, which makes it the yardstick for the PixelTransformer.
//!
//! Everything is computed in `f64` by hand (a small Cholesky factorisation), so this
//! module has no linear-algebra dependency.

/// Degree of the random polynomials; there are `DEGREE + 1` Gaussian weights.
pub const DEGREE: usize = 6;

/// Diagonal jitter recommended for noise-free observations.
///
/// The jitter acts exactly like extra observation noise of variance `jitter`, so it
/// biases the posterior when observations cluster: at `|S| = 6` uniform points,
/// `1e-10` raises the expected NLL by about 0.15 nats over the exact value, while
/// `1e-12` is within about 0.03 nats. Going lower is unsafe: rounding in the kernel
/// matrix (entries up to `DEGREE + 1`) is around `1e-14`, and with many observations
/// the Cholesky factorisation starts to fail near that level.
pub const NOISE_FREE_JITTER: f64 = 1e-12;

/// Number of basis functions `φ_k(x) = x^k`.
const N_FEATURES: usize = DEGREE + 1;

/// `φ(x) = [1, x, x², …, x^DEGREE]`.
fn features(x: f64) -> [f64; N_FEATURES] {
    let mut phi = [1.0; N_FEATURES];
    for k in 1..N_FEATURES {
        phi[k] = phi[k - 1] * x;
    }
    phi
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// In-place Cholesky factorisation of the symmetric `n × n` row-major matrix `a`.
///
/// On success the lower triangle holds `L` with `a = L Lᵀ` and the strict upper
/// triangle is zeroed. Fails when a pivot is not strictly positive, i.e. the matrix
/// is not (numerically) positive definite.
fn cholesky_in_place(a: &mut [f64], n: usize) -> Result<(), String> {
    for j in 0..n {
        let mut pivot = a[j * n + j];
        for k in 0..j {
            pivot -= a[j * n + k] * a[j * n + k];
        }
        if pivot.is_nan() || pivot <= 0.0 {
            return Err(format!(
                "kernel matrix is not positive definite (pivot {pivot:e} at row {j}); \
                 increase `jitter` or `noise_std`"
            ));
        }
        let diag = pivot.sqrt();
        a[j * n + j] = diag;
        for i in (j + 1)..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / diag;
        }
        for i in 0..j {
            a[i * n + j] = 0.0;
        }
    }
    Ok(())
}

/// Solves `L z = b` in place (`L` lower-triangular, row-major `n × n`).
fn forward_substitute(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let s = b[i] - dot(&l[i * n..i * n + i], &b[..i]);
        b[i] = s / l[i * n + i];
    }
}

/// Solves `Lᵀ z = b` in place (`L` lower-triangular, row-major `n × n`).
fn backward_substitute(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in (i + 1)..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Exact posterior predictive of y at query points given observations.
///
/// Fitting works in kernel (function-space) form: with `Φ` the `n × (DEGREE+1)`
/// feature matrix of the observed `x`'s and `A = ΦΦᵀ + (noise_std² + jitter) I`,
/// the predictive mean is `φ(x)ᵀ Φᵀ A⁻¹ y` and the latent variance is
/// `φ(x)ᵀ φ(x) − φ(x)ᵀ Φᵀ A⁻¹ Φ φ(x)`. Because the kernel has finite rank, both are
/// summarised once at fit time as a mean weight vector and a
/// `(DEGREE+1) × (DEGREE+1)` weight covariance, so [`predict`](Self::predict) costs
/// `O(DEGREE²)` regardless of the number of observations.
#[derive(Debug, Clone)]
pub struct BayesPosterior {
    /// Posterior mean of the weights, `Φᵀ A⁻¹ y`.
    mean_weights: [f64; N_FEATURES],
    /// Posterior covariance of the weights, `I − Φᵀ A⁻¹ Φ`.
    cov_weights: [[f64; N_FEATURES]; N_FEATURES],
    /// Observation noise variance `noise_std²`.
    noise_var: f64,
    /// Floor on the predictive variance (the diagonal jitter).
    jitter: f64,
    /// Number of conditioning observations.
    n_observations: usize,
}

impl BayesPosterior {
    /// Conditions the polynomial prior on the observations `(xs[i], ys[i])`.
    ///
    /// `noise_std`: observation noise; `jitter`: variance added to the diagonal for
    /// numerical stability (use e.g. [`NOISE_FREE_JITTER`] when noise_std == 0; it
    /// behaves like extra noise, so keep it small). Errors (return
    /// `Result<Self, String>`) on length mismatch or non-finite input.
    ///
    /// Also errors when `noise_std` or `jitter` is negative, or when the regularised
    /// kernel matrix `K + (noise_std² + jitter) I` is not numerically positive
    /// definite (e.g. more than `DEGREE + 1` noise-free observations with
    /// `jitter == 0`). With no observations the result is the prior.
    pub fn fit(xs: &[f64], ys: &[f64], noise_std: f64, jitter: f64) -> Result<Self, String> {
        if xs.len() != ys.len() {
            return Err(format!(
                "length mismatch: {} x values but {} y values",
                xs.len(),
                ys.len()
            ));
        }
        if !(noise_std.is_finite() && noise_std >= 0.0) {
            return Err(format!(
                "noise_std must be finite and non-negative, got {noise_std}"
            ));
        }
        if !(jitter.is_finite() && jitter >= 0.0) {
            return Err(format!(
                "jitter must be finite and non-negative, got {jitter}"
            ));
        }
        if let Some(i) = xs.iter().position(|x| !x.is_finite()) {
            return Err(format!("non-finite x at index {i}: {}", xs[i]));
        }
        if let Some(i) = ys.iter().position(|y| !y.is_finite()) {
            return Err(format!("non-finite y at index {i}: {}", ys[i]));
        }

        let n = xs.len();
        let noise_var = noise_std * noise_std;
        let phis: Vec<[f64; N_FEATURES]> = xs.iter().map(|&x| features(x)).collect();

        // A = K + (noise² + jitter) I, then factor A = L Lᵀ.
        let mut chol = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let k = dot(&phis[i], &phis[j]);
                chol[i * n + j] = k;
                chol[j * n + i] = k;
            }
            chol[i * n + i] += noise_var + jitter;
        }
        cholesky_in_place(&mut chol, n)?;

        // alpha = A⁻¹ y; mean weights m = Φᵀ alpha.
        let mut alpha = ys.to_vec();
        forward_substitute(&chol, n, &mut alpha);
        backward_substitute(&chol, n, &mut alpha);
        let mut mean_weights = [0.0; N_FEATURES];
        for (phi, a) in phis.iter().zip(&alpha) {
            for (m, p) in mean_weights.iter_mut().zip(phi) {
                *m += p * a;
            }
        }

        // B = L⁻¹ Φ (column by column); weight covariance Σ = I − Bᵀ B.
        let mut b_cols = [(); N_FEATURES].map(|_| vec![0.0; n]);
        for (k, col) in b_cols.iter_mut().enumerate() {
            for (c, phi) in col.iter_mut().zip(&phis) {
                *c = phi[k];
            }
            forward_substitute(&chol, n, col);
        }
        let mut cov_weights = [[0.0; N_FEATURES]; N_FEATURES];
        for r in 0..N_FEATURES {
            for c in 0..=r {
                let identity = if r == c { 1.0 } else { 0.0 };
                let v = identity - dot(&b_cols[r], &b_cols[c]);
                cov_weights[r][c] = v;
                cov_weights[c][r] = v;
            }
        }

        Ok(Self {
            mean_weights,
            cov_weights,
            noise_var,
            jitter,
            n_observations: n,
        })
    }

    /// Predictive mean and variance of the *noisy* observation at x (latent variance + noise_std^2; never below jitter).
    ///
    /// The latent variance is clamped at zero first, since rounding can push it
    /// slightly negative where the observations pin the function down exactly.
    /// A non-finite `x` yields non-finite outputs.
    pub fn predict(&self, x: f64) -> (f64, f64) {
        let phi = features(x);
        let mean = dot(&self.mean_weights, &phi);
        let latent: f64 = self
            .cov_weights
            .iter()
            .zip(&phi)
            .map(|(row, p)| p * dot(row, &phi))
            .sum();
        let var = (latent.max(0.0) + self.noise_var).max(self.jitter);
        (mean, var)
    }

    /// Number of observations the posterior is conditioned on.
    pub fn num_observations(&self) -> usize {
        self.n_observations
    }
}

/// Gaussian negative log-likelihood in nats, including the ½·log(2π) constant.
///
/// Returns `½·ln(2π·var) + (y − mean)² / (2·var)`. The variance must be strictly
/// positive; a zero, negative or NaN `var` returns NaN.
pub fn gaussian_nll(y: f64, mean: f64, var: f64) -> f64 {
    if var.is_nan() || var <= 0.0 {
        return f64::NAN;
    }
    let d = y - mean;
    0.5 * ((2.0 * std::f64::consts::PI * var).ln() + d * d / var)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    fn eval_poly(w: &[f64], x: f64) -> f64 {
        // Horner's rule, independent of `features` so the test checks it.
        w.iter().rev().fold(0.0, |acc, &c| acc * x + c)
    }

    #[test]
    fn prior_variance_is_feature_norm() {
        let post = BayesPosterior::fit(&[], &[], 0.0, 1e-10).unwrap();
        let (mean, var) = post.predict(0.5);
        let expected: f64 = (0..=DEGREE as i32).map(|k| 0.25f64.powi(k)).sum();
        assert_eq!(mean, 0.0);
        assert!((var - expected).abs() < 1e-12, "{var} vs {expected}");
        assert_eq!(post.num_observations(), 0);
    }

    #[test]
    fn prior_variance_includes_noise() {
        let post = BayesPosterior::fit(&[], &[], 0.3, 0.0).unwrap();
        let (_, var) = post.predict(1.0);
        assert!((var - (N_FEATURES as f64 + 0.09)).abs() < 1e-12);
    }

    #[test]
    fn noise_free_observations_recover_polynomial() {
        let w = [0.3, -1.2, 0.5, 2.0, -0.7, 0.1, 1.1];
        for n in [7usize, 8, 12, 30] {
            let xs: Vec<f64> = (0..n)
                .map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64)
                .collect();
            let ys: Vec<f64> = xs.iter().map(|&x| eval_poly(&w, x)).collect();
            let post = BayesPosterior::fit(&xs, &ys, 0.0, NOISE_FREE_JITTER).unwrap();
            for x in [-0.95, -0.4, 0.0, 0.33, 0.8, 1.0] {
                let (mean, var) = post.predict(x);
                let truth = eval_poly(&w, x);
                assert!(
                    (mean - truth).abs() < 1e-4,
                    "n={n} x={x}: {mean} vs {truth}"
                );
                assert!(var < 1e-6, "n={n} x={x}: var {var}");
                assert!(var >= NOISE_FREE_JITTER);
            }
        }
    }

    #[test]
    fn interpolates_observations_and_shrinks_variance() {
        let xs = [-0.6, 0.1, 0.7];
        let ys = [1.0, -0.5, 0.25];
        let prior = BayesPosterior::fit(&[], &[], 0.0, 1e-10).unwrap();
        let post = BayesPosterior::fit(&xs, &ys, 0.0, 1e-10).unwrap();
        for (&x, &y) in xs.iter().zip(&ys) {
            let (mean, var) = post.predict(x);
            assert!((mean - y).abs() < 1e-6);
            assert!(var < 1e-6);
        }
        for x in [-1.0, -0.3, 0.4, 0.9] {
            assert!(post.predict(x).1 < prior.predict(x).1);
        }
    }

    #[test]
    fn jitter_acts_as_noise() {
        // Larger jitter means a less confident posterior, never a more confident one.
        let small = average_nll(6, 500, 5, NOISE_FREE_JITTER);
        let large = average_nll(6, 500, 5, 1e-8);
        assert!(small < large, "{small} vs {large}");
    }

    #[test]
    fn many_noise_free_observations_factorise() {
        // Rank-7 kernel with 500 points: only the jitter keeps it positive definite.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let w = [1.0, 0.5, -0.25, 0.0, 2.0, -1.0, 0.3];
        let xs: Vec<f64> = (0..500).map(|_| rng.gen_range(-1.0..=1.0)).collect();
        let ys: Vec<f64> = xs.iter().map(|&x| eval_poly(&w, x)).collect();
        let post = BayesPosterior::fit(&xs, &ys, 0.0, NOISE_FREE_JITTER).unwrap();
        for x in [-1.0, -0.2, 0.6, 1.0] {
            let (mean, var) = post.predict(x);
            assert!((mean - eval_poly(&w, x)).abs() < 1e-6);
            assert!((NOISE_FREE_JITTER..1e-9).contains(&var), "var {var}");
        }
    }

    #[test]
    fn noisy_fit_does_not_interpolate() {
        let post = BayesPosterior::fit(&[0.0], &[1.0], 1.0, 0.0).unwrap();
        // One observation at x = 0: k(0,0) = 1, so mean = 1/(1+1) and latent var = 1 - 1/2.
        let (mean, var) = post.predict(0.0);
        assert!((mean - 0.5).abs() < 1e-12);
        assert!((var - 1.5).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(BayesPosterior::fit(&[0.0, 1.0], &[0.0], 0.0, 1e-10).is_err());
        assert!(BayesPosterior::fit(&[f64::NAN], &[0.0], 0.0, 1e-10).is_err());
        assert!(BayesPosterior::fit(&[0.0], &[f64::INFINITY], 0.0, 1e-10).is_err());
        assert!(BayesPosterior::fit(&[0.0], &[0.0], -1.0, 1e-10).is_err());
        assert!(BayesPosterior::fit(&[0.0], &[0.0], f64::NAN, 1e-10).is_err());
        assert!(BayesPosterior::fit(&[0.0], &[0.0], 0.0, -1e-10).is_err());
        // Duplicate noise-free observations without jitter: singular kernel matrix.
        assert!(BayesPosterior::fit(&[0.2, 0.2], &[1.0, 1.0], 0.0, 0.0).is_err());
    }

    #[test]
    fn gaussian_nll_values() {
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        assert!((gaussian_nll(0.0, 0.0, 1.0) - half_log_2pi).abs() < 1e-12);
        assert!((gaussian_nll(2.0, 0.0, 1.0) - (half_log_2pi + 2.0)).abs() < 1e-12);
        assert!((gaussian_nll(1.0, 1.0, 4.0) - (half_log_2pi + 2f64.ln())).abs() < 1e-12);
        assert!(gaussian_nll(0.0, 0.0, 0.0).is_nan());
        assert!(gaussian_nll(0.0, 0.0, -1.0).is_nan());
    }

    /// Average NLL of the true value at a random query under the exact posterior,
    /// over random polynomials with `n_obs` noise-free uniform observations.
    fn average_nll(n_obs: usize, trials: usize, seed: u64, jitter: f64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut total = 0.0;
        for _ in 0..trials {
            let w: Vec<f64> = (0..N_FEATURES)
                .map(|_| rng.sample::<f64, _>(StandardNormal))
                .collect();
            let xs: Vec<f64> = (0..n_obs).map(|_| rng.gen_range(-1.0..=1.0)).collect();
            let ys: Vec<f64> = xs.iter().map(|&x| eval_poly(&w, x)).collect();
            let query: f64 = rng.gen_range(-1.0..=1.0);
            let post = BayesPosterior::fit(&xs, &ys, 0.0, jitter).unwrap();
            let (mean, var) = post.predict(query);
            total += gaussian_nll(eval_poly(&w, query), mean, var);
        }
        total / trials as f64
    }

    #[test]
    fn monte_carlo_nll_matches_reference() {
        // Reference figures are for exact noise-free conditioning, hence the small
        // jitter (see `NOISE_FREE_JITTER`); long runs (2e5 draws) give -1.79, -2.93, -4.04.
        for (n_obs, reference) in [(4, -1.77), (5, -2.90), (6, -4.10)] {
            let nll = average_nll(n_obs, 2000, 1234 + n_obs as u64, NOISE_FREE_JITTER);
            assert!(
                (nll - reference).abs() < 0.25,
                "|S|={n_obs}: average NLL {nll} vs reference {reference}"
            );
        }
    }
}
