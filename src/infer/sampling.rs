//! Inference: marginals, mean fields, uncertainty, log-probabilities and
//! whole-signal samples.
//!
//! Because the decoder's queries are independent given the observations, the
//! distribution at any set of positions comes from one forward pass
//! ([`Model::marginals`]). Whole signals come from the chain rule
//! `p(signal | S) = Π_t p(v_t | S ∪ {v_1 … v_{t−1}})`, evaluated in a fresh
//! random order per sample ([`Model::sample`]).

use crate::Backend;
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Model, ModelInput, Observations, OutputDistribution, Result};

/// At most this many queries go through one forward pass; larger requests are
/// split, which bounds memory without changing any result.
pub const MAX_QUERIES_PER_PASS: usize = 4096;

/// Predicted distributions at a list of positions.
#[derive(Debug, Clone)]
pub struct Marginals<const V: usize, O: OutputDistribution<V>> {
    distribution: O,
    params: Vec<f32>,
    width: usize,
}

impl<const V: usize, O: OutputDistribution<V>> Marginals<V, O> {
    /// Number of positions.
    pub fn len(&self) -> usize {
        self.params.len() / self.width
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
    /// The raw distribution parameters of position `i`.
    pub fn params(&self, i: usize) -> &[f32] {
        &self.params[i * self.width..(i + 1) * self.width]
    }
    /// Mean at position `i`.
    pub fn mean(&self, i: usize) -> [f32; V] {
        self.distribution.mean(self.params(i))
    }
    /// Standard deviation at position `i`.
    pub fn std(&self, i: usize) -> [f32; V] {
        self.distribution.std(self.params(i))
    }
    /// Most likely value at position `i`.
    pub fn mode(&self, i: usize) -> [f32; V] {
        self.distribution.mode(self.params(i))
    }
    /// The mixture's components at position `i`, if the distribution is a mixture.
    pub fn mixture(&self, i: usize) -> Option<crate::model::distribution::Mixture> {
        self.distribution.mixture(self.params(i))
    }
    /// Log-density (nats) of `value` at position `i`.
    pub fn log_prob(&self, i: usize, value: &[f32; V]) -> f32 {
        self.distribution.log_prob(self.params(i), value)
    }
    /// Draws a value at position `i`.
    pub fn sample(&self, i: usize, temperature: f32, rng: &mut ChaCha8Rng) -> [f32; V] {
        self.distribution.sample(self.params(i), temperature, rng)
    }
    /// All means.
    pub fn means(&self) -> Vec<[f32; V]> {
        (0..self.len()).map(|i| self.mean(i)).collect()
    }
    /// All standard deviations.
    pub fn stds(&self) -> Vec<[f32; V]> {
        (0..self.len()).map(|i| self.std(i)).collect()
    }
}

/// How to draw whole-signal samples.
///
/// ```
/// use pixel_transformer::deps::dfdx::prelude::Cpu;
/// use pixel_transformer::{BinnedMixture, Grid, Model, Observations, Preset, SampleOptions};
///
/// let model = Model::<1, 1, Cpu, BinnedMixture>::new(
///     Preset::Tiny.config(), BinnedMixture::gaussian(1, 1e-3), 0, &Cpu::default())?;
/// let observed = Observations::from_pairs(vec![[0.0]], vec![[1.0]])?;
/// let grid = Grid::new([32]).positions();
/// // Three samples; the first 8 positions of each drawn one at a time, the rest by the mean.
/// let options = SampleOptions { samples: 3, autoregressive: Some(8), temperature: 0.9, seed: 7, ..Default::default() };
/// let samples = model.sample(&observed, &grid, &options)?;
/// assert_eq!((samples.len(), samples[0].len()), (3, 32));
/// assert_eq!(samples, model.sample(&observed, &grid, &options)?); // seeded
/// # Ok::<(), pixel_transformer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Number of samples (drawn together, one batch item each).
    pub samples: usize,
    /// How many positions are drawn one at a time before the rest take the
    /// mean given everything drawn so far (the paper's hybrid rule). `None`
    /// draws every position autoregressively (exact sampling).
    pub autoregressive: Option<usize>,
    /// Temperature of the bin choice (paper's evaluation: 0.9).
    pub temperature: f32,
    /// Seed; the same seed gives the same samples.
    pub seed: u64,
    /// Values drawn per network pass. 1 (the default) is exact sampling. Larger
    /// values are an **approximation**: the `k` values of one pass are drawn
    /// independently from their marginals given the same set, ignoring their
    /// dependence on each other, for about `k` times fewer passes.
    pub values_per_pass: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            samples: 3,
            autoregressive: None,
            temperature: 1.0,
            seed: 0,
            values_per_pass: 1,
        }
    }
}

/// One signal to sample with [`Model::sample_many`]: what was observed, where
/// to draw values, and how.
#[derive(Debug, Clone)]
pub struct SampleRequest<'a, const P: usize, const V: usize> {
    /// The observed pairs `S` (may be empty).
    pub observed: &'a Observations<P, V>,
    /// Positions to draw values at.
    pub positions: &'a [[f32; P]],
    /// Number of samples, hybrid rule, temperature, seed.
    pub options: SampleOptions,
}

impl<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>> Model<P, V, D, O> {
    /// The distribution of the value at each of `queries` given `observed`.
    pub fn marginals(
        &self,
        observed: &Observations<P, V>,
        queries: &[[f32; P]],
    ) -> Result<Marginals<V, O>> {
        let width = self.distribution().head_width();
        let mut params = Vec::with_capacity(queries.len() * width);
        for chunk in queries.chunks(MAX_QUERIES_PER_PASS) {
            let out = self.predict(&[ModelInput {
                observed,
                queries: chunk,
            }])?;
            params.extend_from_slice(&out[0]);
        }
        Ok(Marginals {
            distribution: self.distribution().clone(),
            params,
            width,
        })
    }

    /// Mean value at each position (the "mean signal").
    pub fn mean_field(
        &self,
        observed: &Observations<P, V>,
        positions: &[[f32; P]],
    ) -> Result<Vec<[f32; V]>> {
        Ok(self.marginals(observed, positions)?.means())
    }

    /// Per-position standard deviation: where the model is unsure.
    pub fn std_field(
        &self,
        observed: &Observations<P, V>,
        positions: &[[f32; P]],
    ) -> Result<Vec<[f32; V]>> {
        Ok(self.marginals(observed, positions)?.stds())
    }

    /// Log-density (nats) of each given value at its position, given `observed`.
    pub fn log_probs(
        &self,
        observed: &Observations<P, V>,
        queries: &[[f32; P]],
        values: &[[f32; V]],
    ) -> Result<Vec<f32>> {
        if queries.len() != values.len() {
            return Err(Error::invalid(format!(
                "{} queries but {} values",
                queries.len(),
                values.len()
            )));
        }
        let m = self.marginals(observed, queries)?;
        Ok(values
            .iter()
            .enumerate()
            .map(|(i, v)| m.log_prob(i, v))
            .collect())
    }

    /// Whole-signal samples at `positions` that agree with `observed`.
    ///
    /// Each sample visits the positions in its own random order; the first
    /// `autoregressive` of them are drawn one at a time, each conditioned on
    /// `observed` plus everything drawn before it; the rest take the mean
    /// given that enlarged set. Returns `samples` vectors of one value per position.
    pub fn sample(
        &self,
        observed: &Observations<P, V>,
        positions: &[[f32; P]],
        options: &SampleOptions,
    ) -> Result<Vec<Vec<[f32; V]>>> {
        let request = SampleRequest {
            observed,
            positions,
            options: options.clone(),
        };
        Ok(self.sample_many(&[request])?.remove(0))
    }

    /// [`Model::sample`] for several signals at once: every network pass
    /// advances all their samples together, one batch item each, which keeps
    /// the cores busier than one signal at a time. `result[i]` follows the
    /// same algorithm and random streams as `sample` for `requests[i]`; the
    /// values match unless float rounding (sets of other sizes in the same
    /// batch are padded) tips a draw into another bin, after which that
    /// sample goes its own way.
    ///
    /// All samples of all requests form one batch per pass, so its working
    /// memory grows with their number and with the largest set: pass a few
    /// signals at a time (the image evaluation passes 8). A batch beyond the
    /// memory budget is refused before anything is allocated, as for any
    /// pass. An invalid temperature is an error even when nothing is drawn.
    ///
    /// ```
    /// use pixel_transformer::deps::dfdx::prelude::Cpu;
    /// use pixel_transformer::{BinnedMixture, Grid, Model, Observations, Preset, SampleOptions, SampleRequest};
    ///
    /// let model = Model::<1, 1, Cpu, BinnedMixture>::new(
    ///     Preset::Tiny.config(), BinnedMixture::gaussian(1, 1e-3), 0, &Cpu::default())?;
    /// let (a, b) = (
    ///     Observations::from_pairs(vec![[0.0]], vec![[1.0]])?,
    ///     Observations::from_pairs(vec![[-0.5], [0.5]], vec![[0.0], [2.0]])?,
    /// );
    /// let grid = Grid::new([16]).positions();
    /// let options = SampleOptions { samples: 2, seed: 3, ..Default::default() };
    /// let requests = [&a, &b].map(|observed| SampleRequest {
    ///     observed, positions: &grid, options: options.clone(),
    /// });
    /// let drawn = model.sample_many(&requests)?;
    /// assert_eq!((drawn.len(), drawn[1].len(), drawn[1][0].len()), (2, 2, 16));
    /// # Ok::<(), pixel_transformer::Error>(())
    /// ```
    pub fn sample_many(
        &self,
        requests: &[SampleRequest<'_, P, V>],
    ) -> Result<Vec<Vec<Vec<[f32; V]>>>> {
        // One slot per (request, sample): its growing set, visiting order,
        // random stream, and how many positions it has drawn.
        struct Slot<const P: usize, const V: usize> {
            request: usize,
            sample: usize,
            set: Observations<P, V>,
            order: Vec<usize>,
            rng: ChaCha8Rng,
            steps: usize,
            drawn: usize,
        }
        let mut slots = Vec::new();
        let mut out = Vec::with_capacity(requests.len());
        for (r, req) in requests.iter().enumerate() {
            let o = &req.options;
            req.observed.validate()?;
            crate::signal::check_positions(req.positions, "sample position")?;
            if !(o.temperature > 0.0 && o.temperature.is_finite()) {
                return Err(Error::invalid(format!(
                    "temperature must be positive, got {}",
                    o.temperature
                )));
            }
            let n = req.positions.len();
            out.push(vec![vec![[0.0; V]; n]; o.samples]);
            if n == 0 {
                continue;
            }
            for i in 0..o.samples {
                let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
                rng.set_stream(i as u64);
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng);
                slots.push(Slot {
                    request: r,
                    sample: i,
                    set: req.observed.clone(),
                    order,
                    rng,
                    steps: o.autoregressive.unwrap_or(n).min(n),
                    drawn: 0,
                });
            }
        }
        let dist = self.distribution();
        let width = dist.head_width();
        // Autoregressive part: each pass draws the next `values_per_pass`
        // positions of every slot that has some left.
        loop {
            let active: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].drawn < slots[i].steps)
                .collect();
            if active.is_empty() {
                break;
            }
            let chunks: Vec<Vec<usize>> = active
                .iter()
                .map(|&i| {
                    let s = &slots[i];
                    let k = requests[s.request].options.values_per_pass.max(1);
                    s.order[s.drawn..(s.drawn + k).min(s.steps)].to_vec()
                })
                .collect();
            let queries: Vec<Vec<[f32; P]>> = active
                .iter()
                .zip(&chunks)
                .map(|(&i, c)| {
                    let positions = requests[slots[i].request].positions;
                    c.iter().map(|&j| positions[j]).collect()
                })
                .collect();
            let inputs: Vec<ModelInput<P, V>> = active
                .iter()
                .zip(&queries)
                .map(|(&i, q)| ModelInput {
                    observed: &slots[i].set,
                    queries: q,
                })
                .collect();
            let params = self.predict(&inputs)?;
            for ((&i, chunk), params) in active.iter().zip(&chunks).zip(&params) {
                let s = &mut slots[i];
                let req = &requests[s.request];
                for (j, &idx) in chunk.iter().enumerate() {
                    let v = dist.sample(
                        &params[j * width..(j + 1) * width],
                        req.options.temperature,
                        &mut s.rng,
                    );
                    out[s.request][s.sample][idx] = v;
                    s.set.push(req.positions[idx], v);
                }
                s.drawn += chunk.len();
            }
        }
        // Hybrid rule: the remaining positions take the mean given the enlarged set.
        for s in &slots {
            if s.steps < s.order.len() {
                let positions = requests[s.request].positions;
                let rest: Vec<[f32; P]> =
                    s.order[s.steps..].iter().map(|&i| positions[i]).collect();
                let means = self.mean_field(&s.set, &rest)?;
                for (&i, m) in s.order[s.steps..].iter().zip(means) {
                    out[s.request][s.sample][i] = m;
                }
            }
        }
        Ok(out)
    }

    /// Exact log-likelihood (nats) of a whole signal under the model's chain
    /// rule: `Σ_t log p(v_t | S ∪ {v_1 … v_{t−1}})`, visiting `positions` in the
    /// random order given by `order_seed`. Costs one pass per position. Used to
    /// judge approximate sampling (`values_per_pass > 1`) against the exact model.
    pub fn sequence_log_prob(
        &self,
        observed: &Observations<P, V>,
        positions: &[[f32; P]],
        values: &[[f32; V]],
        order_seed: u64,
    ) -> Result<f64> {
        if positions.len() != values.len() {
            return Err(Error::invalid(format!(
                "{} positions but {} values",
                positions.len(),
                values.len()
            )));
        }
        let mut order: Vec<usize> = (0..positions.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(order_seed));
        let mut set = observed.clone();
        let mut total = 0.0f64;
        for &i in &order {
            let m = self.marginals(&set, &positions[i..=i])?;
            total += m.log_prob(0, &values[i]) as f64;
            set.push(positions[i], values[i]);
        }
        Ok(total)
    }
}
