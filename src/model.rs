//! The PixelTransformer network, in one file.
//!
//! ```text
//!  observed (x, v) ──► [value_emb(v) ‖ fourier(x)] ─┐
//!                        learned prior token ───────┴─► encoder: self-attention ─► memory
//!  query x ──► [0 ‖ fourier(x)] ─► decoder: each query attends to memory only ─► head ─► distribution parameters
//!              (or [nearest_embed(v, d) ‖ fourier(x)] with the nearest-value hint)
//! ```
//!
//! - **Position features** are fixed random Fourier features
//!   `[sin 2πxB, cos 2πxB]`, `B ~ N(0, scale²)` of shape `P × E/2`; they are
//!   computed on the host and never trained. With
//!   [`ModelConfig::raw_positions`] (on in every preset) the sines of the
//!   first `P` frequencies are replaced by the coordinates themselves. The
//!   paper uses Fourier features only; for `P ≥ 2` each of its features is
//!   a plane wave mixing all axes, and small models then learn slowly how a
//!   value depends on one coordinate: on signals `v = a·x₀ + c` with random
//!   `a, c`, a `tiny` model after 400 steps predicted from 8 observations
//!   with RMSE 0.34 (only the offset `c` learned) for `P = 2` and `P = 3`,
//!   and 0.11 with the coordinates included (`P = 1`: 0.08).
//! - **Distance-biased attention** ([`ModelConfig::distance_bias`], on in
//!   every preset; not in the paper): every head adds `−s·‖x_q − x_k‖²` to
//!   the score of a key at `x_k` for a query at `x_q`, with a learned
//!   strength `s ≥ 0` per head and layer, initialised from nearly global to
//!   sharply local across the heads. Attention over Fourier features can
//!   learn such a kernel, but within a CPU budget our models did not: they
//!   predicted the data set's average signal whatever was observed. With the
//!   bias a head reads its nearest samples from the first step. Measured on
//!   Moving MNIST (`tiny`, 500 steps, one Gaussian, 100 held-out clips), the
//!   mean video's PSNR at `|S|` = 512 / 1024 / 2048 went from 15.9 / 15.9 /
//!   15.9 dB to 16.9 / 16.9 / 16.9 dB (nearest-neighbour fill: 16.1 / 16.9 /
//!   17.9). It costs `P + 2` extra numbers per head in the score product
//!   (see `DistanceFactors`), no `|Q| × |S|` tensor, and about 45 % more
//!   time per training step (`bench --config mnist-small --distance-bias`).
//! - **Nearest-value hint** ([`ModelConfig::nearest_value`], off in the
//!   presets, on in the video and image domains; not in the paper): a query token's
//!   value half, zero in the paper, carries `nearest_embed([v, d])`, the
//!   value `v` observed nearest to the query and its distance `d`. The
//!   decoder then refines a guess instead of finding it by attention, which
//!   with many observations a small model does too coarsely. On Moving
//!   MNIST (`tiny`, 500 steps, 100 held-out clips) the mean video's PSNR at
//!   `|S|` = 512 / 1024 / 2048 went from 16.9 / 16.9 / 16.9 dB to
//!   17.4 / 18.1 / 18.7 dB (nearest-neighbour fill: 16.1 / 16.9 / 17.9).
//!   Ties are averaged, so the hint does not depend on the order of `S`; it
//!   costs one pass over `S` per query on the host.
//! - A **sample token** is `[value_emb(v), fourier(x)]` (width `2E`); a **query
//!   token** is `[0, fourier(x)]` (or `[nearest_embed([v, d]), fourier(x)]`). A learned **prior token** is always the first
//!   encoder input, so an empty observation set is valid (unconditional
//!   generation) and no attention row is ever fully masked.
//! - Sets of different sizes in one batch are padded; padded keys are masked
//!   out of every attention softmax, so padding never changes a prediction.
//! - Blocks are **pre-norm**, `x + f(LN(x))`, with a final LayerNorm per stack.
//!   The paper's reference normalises the sub-layer *output* instead
//!   (`x + LN(f(x))`); pre-norm keeps an identity path from input to output,
//!   which is the better-known way to train deep stacks stably without warm-up.
//! - **Dropout** ([`Dropout`], training only, off by default): as in the
//!   paper's reference, numbers are zeroed with probability `rate` (and the
//!   rest scaled by `1 / (1 − rate)`) at three places per block: the
//!   feed-forward layer's hidden units and the outputs of the attention and
//!   feed-forward sub-layers, before they join the residual stream. The
//!   masks come from a seed, so a training step is reproducible.
//! - The **decoder** has cross-attention and a feed-forward layer but no
//!   self-attention: each query sees only the encoded samples, so queries are
//!   independent, can be batched freely, and a prediction does not depend on
//!   which other queries were asked. When only a few queries are asked (one
//!   per pass in autoregressive sampling), inference computes the
//!   cross-attention in an equal but cheaper order that never projects the
//!   memory (`few_query_attention`).
//!
//! All parameters live in one flat list ([`Model::params`]); the layer structs
//! below only hold indices into it. That keeps the optimizer, the checkpoint
//! code and the device transfer to a loop over one `Vec`.

use dfdx::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::{
    distribution::OutputDistribution,
    kernels::{composed::broadcast_rows, AttentionShape, Backend, Flat},
    Error, Observations, Result,
};

/// One trainable tensor. Vectors (biases, norms, the prior token) are `1 × n`.
pub type Param<D> = Tensor<(usize, usize), f32, D>;

/// Architecture hyper-parameters: everything needed to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Width `E` of each half of a token (value half, position half); the model width is `2E`.
    pub embed_dim: usize,
    /// Attention heads; must divide `2E`.
    pub heads: usize,
    /// Hidden width of each feed-forward layer.
    pub ff_dim: usize,
    /// Encoder (self-attention) layers.
    pub encoder_layers: usize,
    /// Decoder (cross-attention) layers.
    pub decoder_layers: usize,
    /// Standard deviation of the random Fourier frequencies (paper: 2).
    pub fourier_scale: f32,
    /// Give the model the position coordinates themselves, in place of the
    /// sines of the first `P` frequencies (see the module docs). Off in
    /// checkpoints written before the option existed.
    #[serde(default)]
    pub raw_positions: bool,
    /// Bias every attention head towards nearby positions (see the module
    /// docs): the score of a key at `x_k` for a query at `x_q` gets
    /// `−s·‖x_q − x_k‖²`, with a learned strength `s ≥ 0` per head and layer.
    /// Off in checkpoints written before the option existed.
    #[serde(default)]
    pub distance_bias: bool,
    /// Give each query a hint: the value observed nearest to it and how far
    /// away that observation is, embedded into the query token's value half
    /// (which is otherwise zero; see the module docs). Off in checkpoints
    /// written before the option existed.
    #[serde(default)]
    pub nearest_value: bool,
}

/// Named architecture sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Width 32, 1 + 1 layers: unit tests and smoke runs.
    Tiny,
    /// Width 128, 4 heads, feed-forward 256, 4 + 4 layers: the CPU default.
    Small,
    /// Width 256, 4 heads, feed-forward 512, 10 + 10 layers: the paper's reference.
    Paper,
}

impl Preset {
    /// The architecture of this preset.
    pub fn config(self) -> ModelConfig {
        let (embed_dim, heads, ff_dim, layers) = match self {
            Preset::Tiny => (16, 2, 64, 1),
            Preset::Small => (64, 4, 256, 4),
            Preset::Paper => (128, 4, 512, 10),
        };
        ModelConfig {
            embed_dim,
            heads,
            ff_dim,
            encoder_layers: layers,
            decoder_layers: layers,
            fourier_scale: 2.0,
            raw_positions: true,
            distance_bias: true,
            nearest_value: false,
        }
    }
}

impl ModelConfig {
    /// Model (token) width, `2E`.
    pub fn width(&self) -> usize {
        2 * self.embed_dim
    }

    /// Checks the numbers make a buildable network.
    pub fn validate(&self) -> Result<()> {
        // Far beyond any model that fits in memory; the bounds keep sizes
        // read from a damaged checkpoint from overflowing arithmetic.
        const LARGEST: [(&str, usize); 4] = [
            ("embed_dim", 1 << 16),
            ("ff_dim", 1 << 18),
            ("encoder_layers", 1 << 10),
            ("decoder_layers", 1 << 10),
        ];
        let sizes = [
            self.embed_dim,
            self.ff_dim,
            self.encoder_layers,
            self.decoder_layers,
        ];
        for ((name, largest), size) in LARGEST.into_iter().zip(sizes) {
            if size > largest {
                return Err(Error::invalid(format!(
                    "{name} = {size} is larger than the supported {largest}"
                )));
            }
        }
        if self.embed_dim == 0 || self.embed_dim % 2 != 0 {
            return Err(Error::invalid(format!(
                "embed_dim must be even and positive, got {}",
                self.embed_dim
            )));
        }
        if self.heads == 0 || self.width() % self.heads != 0 {
            return Err(Error::invalid(format!(
                "{} heads do not divide the model width {}",
                self.heads,
                self.width()
            )));
        }
        if self.ff_dim == 0 || !(self.fourier_scale > 0.0 && self.fourier_scale.is_finite()) {
            return Err(Error::invalid("ff_dim and fourier_scale must be positive"));
        }
        Ok(())
    }

    /// How many numbers a model of this architecture stores: its trainable
    /// parameters for `value_dims`-dimensional values and an output head of
    /// `head_width`, plus the fixed Fourier frequencies for `position_dims`.
    ///
    /// Computed without allocating, in `u128` so that absurd sizes (from a
    /// damaged checkpoint header) cannot overflow: checkpoint loading compares
    /// it with the file's size before building anything.
    pub fn stored_numbers(
        &self,
        position_dims: usize,
        value_dims: usize,
        head_width: usize,
    ) -> u128 {
        let [e, w, f] = [self.embed_dim, self.width(), self.ff_dim].map(|x| x as u128);
        let (p, v, h) = (
            position_dims as u128,
            value_dims as u128,
            head_width as u128,
        );
        let linear = |inputs: u128, outputs: u128| inputs * outputs + outputs;
        let norm = 2 * w;
        let block = 2 * norm + 4 * linear(w, w) + linear(w, f) + linear(f, w);
        let strengths = if self.distance_bias {
            self.heads as u128
        } else {
            0
        };
        let layers = self.encoder_layers as u128 + self.decoder_layers as u128;
        let hint = if self.nearest_value {
            linear(v + 1, e)
        } else {
            0
        };
        linear(v, e) + w + layers * (block + strengths) + 2 * norm + linear(w, h) + hint + p * e / 2
    }
}

/// The places of one pass's dropout: each gets its own seed.
struct DropoutMasks {
    dropout: Option<Dropout>,
    place: u64,
}

impl DropoutMasks {
    fn new(dropout: Option<Dropout>) -> Self {
        Self {
            dropout: dropout.filter(|d| d.rate > 0.0),
            place: 0,
        }
    }

    /// `x` with numbers zeroed at the rate and the rest scaled up to keep the mean.
    fn apply<D: Backend, T: Tape<f32, D>>(&mut self, x: Flat<D, T>) -> Flat<D, T> {
        let Some(d) = self.dropout else { return x };
        self.place += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(d.seed);
        rng.set_stream(self.place);
        D::dropout(x, d.rate, rng.next_u64())
    }
}

/// One input of a forward pass: an observation set and the positions to predict.
#[derive(Debug, Clone, Copy)]
pub struct ModelInput<'a, const P: usize, const V: usize> {
    /// The observed pairs `S` (may be empty).
    pub observed: &'a Observations<P, V>,
    /// Query positions `Q`.
    pub queries: &'a [[f32; P]],
}

/// Dropout for one forward pass (see the module docs). The masks are drawn
/// from `seed`, one independent stream per place, so the same seed gives the
/// same pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing each number, in `[0, 1)`.
    pub rate: f32,
    /// Seed of this pass's masks.
    pub seed: u64,
}

impl Dropout {
    /// Checks that `rate` is a probability below 1.
    pub fn validate_rate(rate: f32) -> Result<()> {
        if (0.0..1.0).contains(&rate) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "dropout rate must be at least 0 and below 1, got {rate}"
            )))
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Linear {
    weight: usize,
    bias: usize,
}

#[derive(Debug, Clone, Copy)]
struct LayerNorm {
    gain: usize,
    shift: usize,
}

#[derive(Debug, Clone, Copy)]
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    /// `1 × heads` log-strengths of the distance bias, if the model has one.
    distance_strength: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct FeedForward {
    hidden: Linear,
    out: Linear,
}

/// Pre-norm block: `x += attn(LN(x), ·)`, `x += ff(LN(x))`.
#[derive(Debug, Clone, Copy)]
struct Block {
    attn_norm: LayerNorm,
    attn: Attention,
    ff_norm: LayerNorm,
    ff: FeedForward,
}

/// The network: architecture, parameters and output distribution.
///
/// ```
/// use pixel_transformer::deps::dfdx::prelude::Cpu;
/// use pixel_transformer::{BinnedMixture, Model, Observations, Preset};
///
/// // A 1-D signal (P = 1) with one value per position (V = 1) and a Gaussian output.
/// let model = Model::<1, 1, Cpu, BinnedMixture>::new(
///     Preset::Tiny.config(),
///     BinnedMixture::gaussian(1, 1e-3),
///     42, // seed: the same seed gives the same weights
///     &Cpu::default(),
/// )?;
/// let observed = Observations::from_pairs(vec![[-0.5], [0.5]], vec![[1.0], [0.0]])?;
/// let marginals = model.marginals(&observed, &[[0.0], [0.9]])?;
/// let (mean, std) = (marginals.mean(0), marginals.std(0));
/// assert!(mean[0].is_finite() && std[0] > 0.0);
/// # Ok::<(), pixel_transformer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Model<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>> {
    config: ModelConfig,
    distribution: O,
    /// Fourier frequencies, `P × E/2` row-major (fixed, saved with the weights).
    fourier: Vec<f32>,
    params: Vec<Param<D>>,
    names: Vec<String>,
    value_embed: Linear,
    prior_token: usize,
    encoder: Vec<Block>,
    encoder_norm: LayerNorm,
    decoder: Vec<Block>,
    decoder_norm: LayerNorm,
    head: Linear,
    /// Embeds `[nearest observed value, its distance]` into a query's value
    /// half, if the model has [`ModelConfig::nearest_value`].
    nearest_embed: Option<Linear>,
    device: D,
}

/// The position-only factors of the distance bias `−s·‖x_q − x_k‖²`.
///
/// Softmax over keys ignores any term that depends on the query alone, so
/// `−s·‖x_q − x_k‖² ≡ s·(2 x_q·x_k − ‖x_k‖²)`, a dot product of
/// `s·[2x_q, −1]` with `[x_k, ‖x_k‖²]`. Appending these `P + 1` numbers (and
/// one more for the position-less prior token) to each head's query and key
/// vectors adds the bias inside the score product itself. The learned
/// strength `s` multiplies the query side; everything here is fixed.
#[derive(Debug, Clone)]
struct DistanceFactors<D: Backend> {
    /// `b × rows × (P + 2)`: `√d·[2x, −1, ‖x‖²]` per query (zero for the
    /// prior token), the `√d` undoing the score scale `1/√d`.
    queries: Factors<D>,
    /// `b × keys × (P + 2)`: `[x, ‖x‖², 0]` per sample, `[0, 0, 1]` for the
    /// prior token. The last factor gives the prior the query's `‖x_q‖²`,
    /// which every sample key also carries once the identity above is
    /// applied, so the prior's bias is 0.
    keys: Factors<D>,
}

impl<D: Backend> DistanceFactors<D> {
    /// Key factors for `b` groups of `rows` slots (`None` = the prior token;
    /// missing slots are padding).
    fn keys<'a, const P: usize, I, J>(device: &D, groups: I, rows: usize) -> Factors<D>
    where
        I: ExactSizeIterator<Item = J>,
        J: Iterator<Item = Option<&'a [f32; P]>>,
    {
        factor_rows(device, groups, rows, |slot, row| match slot {
            Some(x) => {
                row[..P].copy_from_slice(x);
                row[P] = x.iter().map(|v| v * v).sum();
            }
            None => row[P + 1] = 1.0,
        })
    }

    /// Pairs `keys` with the query factors of `b` groups of `rows` slots.
    fn with_queries<'a, const P: usize, I, J>(
        device: &D,
        keys: Factors<D>,
        groups: I,
        rows: usize,
        scale: f32,
    ) -> Self
    where
        I: ExactSizeIterator<Item = J>,
        J: Iterator<Item = Option<&'a [f32; P]>>,
    {
        let queries = factor_rows(device, groups, rows, |slot, row| {
            if let Some(x) = slot {
                for (a, xa) in x.iter().enumerate() {
                    row[a] = 2.0 * scale * xa;
                }
                row[P] = -scale;
                row[P + 1] = scale * x.iter().map(|v| v * v).sum::<f32>();
            }
        });
        Self { queries, keys }
    }
}

/// `b × rows × (P + 2)` factors of the distance bias.
type Factors<D> = Tensor<(usize, usize, usize), f32, D>;

/// Builds `b × rows × (P + 2)` factors, `fill` writing each slot's row (rows
/// of missing slots, i.e. padding, stay zero).
fn factor_rows<'a, const P: usize, D: Backend, I, J>(
    device: &D,
    groups: I,
    rows: usize,
    fill: impl Fn(Option<&'a [f32; P]>, &mut [f32]),
) -> Factors<D>
where
    I: ExactSizeIterator<Item = J>,
    J: Iterator<Item = Option<&'a [f32; P]>>,
{
    let (b, f) = (groups.len(), P + 2);
    let mut data = vec![0.0f32; b * rows * f];
    for (i, slots) in groups.enumerate() {
        for (j, slot) in slots.enumerate() {
            fill(slot, &mut data[(i * rows + j) * f..(i * rows + j + 1) * f]);
        }
    }
    device.tensor_from_vec(data, (b, rows, f))
}

/// Allocates named parameters with PyTorch-style initialisation.
struct Builder<'a, D: Device<f32>> {
    device: &'a D,
    rng: ChaCha8Rng,
    params: Vec<Param<D>>,
    names: Vec<String>,
}

impl<D: Device<f32>> Builder<'_, D> {
    fn tensor(
        &mut self,
        name: String,
        rows: usize,
        cols: usize,
        fill: impl FnMut(&mut ChaCha8Rng) -> f32,
    ) -> usize {
        let mut fill = fill;
        let data: Vec<f32> = (0..rows * cols).map(|_| fill(&mut self.rng)).collect();
        self.params
            .push(self.device.tensor_from_vec(data, (rows, cols)));
        self.names.push(name);
        self.params.len() - 1
    }

    fn linear(&mut self, name: &str, inputs: usize, outputs: usize) -> Linear {
        // U(−1/√in, 1/√in) for weights and biases, as torch.nn.Linear.
        let bound = 1.0 / (inputs as f32).sqrt();
        Linear {
            weight: self.tensor(format!("{name}.weight"), inputs, outputs, |r| {
                r.gen_range(-bound..bound)
            }),
            bias: self.tensor(format!("{name}.bias"), 1, outputs, |r| {
                r.gen_range(-bound..bound)
            }),
        }
    }

    fn norm(&mut self, name: &str, width: usize) -> LayerNorm {
        LayerNorm {
            gain: self.tensor(format!("{name}.gain"), 1, width, |_| 1.0),
            shift: self.tensor(format!("{name}.shift"), 1, width, |_| 0.0),
        }
    }

    fn block(&mut self, name: &str, c: &ModelConfig) -> Block {
        let w = c.width();
        let mut block = Block {
            attn_norm: self.norm(&format!("{name}.attn_norm"), w),
            attn: Attention {
                query: self.linear(&format!("{name}.attn.query"), w, w),
                key: self.linear(&format!("{name}.attn.key"), w, w),
                value: self.linear(&format!("{name}.attn.value"), w, w),
                out: self.linear(&format!("{name}.attn.out"), w, w),
                distance_strength: None,
            },
            ff_norm: self.norm(&format!("{name}.ff_norm"), w),
            ff: FeedForward {
                hidden: self.linear(&format!("{name}.ff.hidden"), w, c.ff_dim),
                out: self.linear(&format!("{name}.ff.out"), c.ff_dim, w),
            },
        };
        if c.distance_bias {
            // Strengths spread geometrically over the heads, from nearly
            // global (exp(−0.5·d²) across the cube) to sharply local (a weight
            // of e⁻² at a distance of 0.1), so that from the first step some
            // heads average widely and some read their nearest neighbours.
            let (weakest, strongest) = (0.5f32.ln(), 200f32.ln());
            let last = (c.heads - 1).max(1) as f32;
            let mut head = 0;
            let index = self.tensor(format!("{name}.attn.distance_strength"), 1, c.heads, |_| {
                let t = if c.heads == 1 {
                    0.5
                } else {
                    head as f32 / last
                };
                head += 1;
                weakest + t * (strongest - weakest)
            });
            block.attn.distance_strength = Some(index);
        }
        block
    }
}

impl<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>> Model<P, V, D, O> {
    /// A freshly initialised network; the same seed gives the same weights on every device.
    pub fn new(config: ModelConfig, distribution: O, seed: u64, device: &D) -> Result<Self> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fourier = (0..P * config.embed_dim / 2)
            .map(|_| config.fourier_scale * rng.sample::<f32, _>(StandardNormal))
            .collect();
        let mut b = Builder {
            device,
            rng,
            params: Vec::new(),
            names: Vec::new(),
        };
        let e = config.embed_dim;
        let w = config.width();
        let value_embed = b.linear("value_embed", V, e);
        let prior_token = b.tensor("prior_token".into(), 1, w, |r| {
            0.02 * r.sample::<f32, _>(StandardNormal)
        });
        let encoder = (0..config.encoder_layers)
            .map(|i| b.block(&format!("encoder.{i}"), &config))
            .collect();
        let encoder_norm = b.norm("encoder.norm", w);
        let decoder = (0..config.decoder_layers)
            .map(|i| b.block(&format!("decoder.{i}"), &config))
            .collect();
        let decoder_norm = b.norm("decoder.norm", w);
        let head = b.linear("head", w, distribution.head_width());
        // Last, so that the option leaves every other initial weight unchanged.
        let nearest_embed = config
            .nearest_value
            .then(|| b.linear("nearest_embed", V + 1, e));
        Ok(Self {
            config,
            distribution,
            fourier,
            params: b.params,
            names: b.names,
            value_embed,
            prior_token,
            encoder,
            encoder_norm,
            decoder,
            decoder_norm,
            head,
            nearest_embed,
            device: device.clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The output distribution (bins, floor).
    pub fn distribution(&self) -> &O {
        &self.distribution
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The fixed Fourier frequencies, `P × E/2` row-major.
    pub fn fourier(&self) -> &[f32] {
        &self.fourier
    }

    /// Replaces the Fourier frequencies (used when loading a checkpoint).
    pub fn set_fourier(&mut self, fourier: Vec<f32>) -> Result<()> {
        if fourier.len() != self.fourier.len() || fourier.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "Fourier matrix must hold {} finite numbers, got {}",
                self.fourier.len(),
                fourier.len()
            )));
        }
        self.fourier = fourier;
        Ok(())
    }

    /// All trainable tensors, in a fixed order.
    pub fn params(&self) -> &[Param<D>] {
        &self.params
    }

    /// Mutable access to the trainable tensors (optimizer, checkpoint loading).
    pub fn params_mut(&mut self) -> &mut [Param<D>] {
        &mut self.params
    }

    /// Stable names of [`params`](Self::params), e.g. `encoder.0.attn.query.weight`.
    pub fn param_names(&self) -> &[String] {
        &self.names
    }

    /// Total number of trainable numbers.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.shape().num_elements()).sum()
    }

    /// `[sin 2πxB, cos 2πxB]` for each position, written into `out` rows of `stride` starting at `offset`.
    fn fourier_features(
        &self,
        positions: &[[f32; P]],
        out: &mut [f32],
        stride: usize,
        offset: usize,
    ) {
        let half = self.config.embed_dim / 2;
        for (row, x) in positions.iter().enumerate() {
            let dst = &mut out[row * stride + offset..row * stride + offset + 2 * half];
            for j in 0..half {
                let phase: f32 = (0..P)
                    .map(|a| x[a] * self.fourier[a * half + j])
                    .sum::<f32>()
                    * std::f32::consts::TAU;
                dst[j] = if self.config.raw_positions && j < P {
                    x[j]
                } else {
                    phase.sin()
                };
                dst[half + j] = phase.cos();
            }
        }
    }

    fn p<T: Tape<f32, D>>(&self, index: usize) -> Flat<D, T> {
        self.params[index].retaped::<T>()
    }

    fn linear<T: Tape<f32, D>>(&self, l: Linear, x: Flat<D, T>) -> Flat<D, T> {
        D::linear(x, &self.params[l.weight], &self.params[l.bias])
    }

    fn norm<T: Tape<f32, D>>(&self, n: LayerNorm, x: Flat<D, T>) -> Flat<D, T> {
        D::layer_norm(x, &self.params[n.gain], &self.params[n.shift], 1e-5)
    }

    /// Multi-head attention of `b` groups of `sq` queries over `sk` keys.
    /// `key_bias` is `b × sk`: 0 for real keys, a large negative number for
    /// padding; `distance` holds the positions' factors of the distance bias.
    #[allow(clippy::too_many_arguments)]
    fn attention<T: Tape<f32, D>>(
        &self,
        a: Attention,
        queries: Flat<D, T>,
        keys: Flat<D, T>,
        b: usize,
        sq: usize,
        sk: usize,
        key_bias: Option<&Tensor<(usize, usize), f32, D>>,
        distance: Option<&DistanceFactors<D>>,
    ) -> Flat<D, T> {
        type S4 = (usize, usize, usize, usize);
        let w = self.config.width();
        let h = self.config.heads;
        let dh = w / h;
        let q = self.linear(a.query, queries);
        let k = self.linear(a.key, keys.with_empty_tape());
        let v = self.linear(a.value, keys);
        // The distance bias rides along in the score product as P + 2 extra
        // numbers per head (see `DistanceFactors`), so it needs no `sq × sk`
        // tensor of its own.
        let (q, k) = match (a.distance_strength, distance) {
            (Some(strength), Some(factors)) => {
                let f = factors.queries.shape().2;
                let k_extra = factors
                    .keys
                    .clone()
                    .broadcast_like::<S4, Axis<2>>(&(b, sk, h, f));
                (
                    self.with_query_factors(strength, factors, q.reshape_like(&(b, sq, h, dh))),
                    (k.reshape_like(&(b, sk, h, dh)), k_extra)
                        .concat_along(Axis::<3>)
                        .reshape_like(&(b * sk, h * (dh + f))),
                )
            }
            _ => (q, k),
        };
        let shape = AttentionShape {
            batch: b,
            heads: h,
            queries: sq,
            keys: sk,
            scale: 1.0 / (dh as f32).sqrt(),
        };
        self.linear(a.out, D::attention(q, k, v, shape, key_bias))
    }

    /// Appends each head's distance-bias factors (`b × sq × heads × f`, scaled
    /// by the head's learned strength) to `q` (`b × sq × heads × d`) and
    /// flattens it to `(b·sq) × heads·(d + f)`.
    fn with_query_factors<T: Tape<f32, D>>(
        &self,
        strength: usize,
        factors: &DistanceFactors<D>,
        q: Tensor<(usize, usize, usize, usize), f32, D, T>,
    ) -> Flat<D, T> {
        type S4 = (usize, usize, usize, usize);
        let (b, sq, h, d) = *q.shape();
        let f = factors.queries.shape().2;
        let strength = self.p::<T>(strength).exp().reshape_like(&(h,));
        let q_extra = strength.broadcast_like::<S4, Axes3<0, 1, 3>>(&(b, sq, h, f))
            * factors
                .queries
                .clone()
                .broadcast_like::<S4, Axis<2>>(&(b, sq, h, f));
        (q, q_extra)
            .concat_along(Axis::<3>)
            .reshape_like(&(b * sq, h * (d + f)))
    }

    /// Whether [`Self::few_query_attention`] costs fewer multiplications than
    /// [`Self::attention`] for `sq` queries over `sk` keys.
    fn few_queries_are_cheaper(&self, sq: usize, sk: usize) -> bool {
        let (w, h) = (self.config.width(), self.config.heads);
        // Projecting keys and values: 2·sk·w² + 2·sq·sk·w. Moving the
        // projections to the query side: 2·sq·w² + 2·sq·sk·heads·w.
        sq * (w + sk * h) < sk * (w + sq)
    }

    /// Cross-attention of `sq` queries over the encoder's `memory`, the same
    /// function as [`Self::attention`] computed in another order, for when
    /// queries are few (autoregressive sampling asks one at a time).
    ///
    /// The usual order projects every key and value (`sk × w` times `w × w`,
    /// twice per layer) though only a handful of queries read them. Per head
    /// `j`, with `m` a memory row, the score is `q_j·(m W_kj + c_kj) =
    /// (q_j W_kjᵀ)·m + q_j·c_kj`; the last term is the same for every key, and
    /// softmax ignores it. The output is `Σ p·(m W_vj + c_vj) = (Σ p·m) W_vj +
    /// c_vj`, since the weights sum to 1. So each head attends with `q_j W_kjᵀ`
    /// over the raw memory, and the value projection is applied once to the
    /// weighted sum. Every head shares the same keys, so the heads ride along
    /// as extra query rows of a single-head attention.
    #[allow(clippy::too_many_arguments)]
    fn few_query_attention<T: Tape<f32, D>>(
        &self,
        a: Attention,
        queries: Flat<D, T>,
        memory: Flat<D, T>,
        b: usize,
        sq: usize,
        sk: usize,
        key_bias: Option<&Tensor<(usize, usize), f32, D>>,
        distance: Option<&DistanceFactors<D>>,
    ) -> Flat<D, T> {
        type S3 = (usize, usize, usize);
        let w = self.config.width();
        let h = self.config.heads;
        let dh = w / h;
        // q_j W_kjᵀ for every head j: (h × rows × dh) times (h × dh × w).
        let q = self
            .linear(a.query, queries)
            .reshape_like(&(b * sq, h, dh))
            .permute::<S3, Axes3<1, 0, 2>>();
        let key_weight = self
            .p::<T>(a.key.weight)
            .reshape_like(&(w, h, dh))
            .permute::<S3, Axes3<1, 2, 0>>();
        let q = q.matmul(key_weight).permute::<S3, Axes3<1, 0, 2>>();
        let (q, k) = match (a.distance_strength, distance) {
            (Some(strength), Some(factors)) => (
                self.with_query_factors(strength, factors, q.reshape_like(&(b, sq, h, w))),
                (
                    memory.with_empty_tape().reshape_like(&(b, sk, w)),
                    factors.keys.clone().retaped::<T>(),
                )
                    .concat_along(Axis::<2>)
                    .reshape_like(&(b * sk, w + factors.keys.shape().2)),
            ),
            _ => (q.reshape_like(&(b * sq, h * w)), memory.with_empty_tape()),
        };
        let shape = AttentionShape {
            batch: b,
            heads: 1,
            queries: sq * h,
            keys: sk,
            scale: 1.0 / (dh as f32).sqrt(),
        };
        let q = q.reshape_like(&(b * sq * h, k.shape().1));
        // Weighted sums of memory rows, one per (query, head); then each
        // head's value projection.
        let value_weight = self
            .p::<T>(a.value.weight)
            .reshape_like(&(w, h, dh))
            .permute::<S3, Axes3<1, 0, 2>>();
        let mixed = D::attention(q, k, memory, shape, key_bias)
            .reshape_like(&(b * sq, h, w))
            .permute::<S3, Axes3<1, 0, 2>>()
            .matmul(value_weight)
            .permute::<S3, Axes3<1, 0, 2>>()
            .reshape_like(&(b * sq, w));
        let value_bias = broadcast_rows::<D, T>(&self.params[a.value.bias], b * sq);
        self.linear(a.out, mixed + value_bias)
    }

    fn feed_forward<T: Tape<f32, D>>(
        &self,
        f: FeedForward,
        x: Flat<D, T>,
        drop: &mut DropoutMasks,
    ) -> Flat<D, T> {
        let hidden = drop.apply(self.linear(f.hidden, x).relu());
        drop.apply(self.linear(f.out, hidden))
    }

    /// Runs the network and returns the head output, one row per query slot:
    /// `(items × max_queries) × head_width`. Rows of padded query slots (items
    /// with fewer queries than the largest) are meaningless and must be skipped.
    pub fn forward<T: Tape<f32, D>>(
        &self,
        items: &[ModelInput<'_, P, V>],
        tape: T,
    ) -> Result<Flat<D, T>> {
        self.forward_with_dropout(items, tape, None)
    }

    /// [`Model::forward`] with dropout (for training; `None` is `forward`).
    pub fn forward_with_dropout<T: Tape<f32, D>>(
        &self,
        items: &[ModelInput<'_, P, V>],
        tape: T,
        dropout: Option<Dropout>,
    ) -> Result<Flat<D, T>> {
        if let Some(d) = dropout {
            Dropout::validate_rate(d.rate)?;
        }
        let mut drop = DropoutMasks::new(dropout);
        if items.is_empty() {
            return Err(Error::invalid("forward pass with no inputs"));
        }
        for item in items {
            item.observed.validate()?;
            crate::signal::check_positions(item.queries, "query position")?;
        }
        let b = items.len();
        let s = items.iter().map(|i| i.observed.len()).max().unwrap_or(0);
        let nq = items.iter().map(|i| i.queries.len()).max().unwrap_or(0);
        if nq == 0 {
            return Err(Error::invalid("forward pass with no query positions"));
        }
        let e = self.config.embed_dim;
        let w = self.config.width();
        let dev = &self.device;
        let c = &self.config;
        let needed = crate::limits::pass_bytes(c, b, s, nq, T::OWNS_TAPE, D::FUSED_ATTENTION);
        crate::limits::check(needed, || {
            format!("a pass over {b} signals with |S| = {s} and |Q| = {nq}")
        })?;

        // Encoder input: prior token, then one token per observed pair (padded to s).
        let prior = self.params[self.prior_token]
            .clone()
            .put_tape(tape)
            .reshape_like(&(w,))
            .broadcast_like::<_, Axes2<0, 1>>(&(b, 1, w));
        let tokens = if s == 0 {
            prior
        } else {
            let mut values = vec![0.0f32; b * s * V];
            let mut pos = vec![0.0f32; b * s * e];
            for (i, item) in items.iter().enumerate() {
                for (j, v) in item.observed.values.iter().enumerate() {
                    values[(i * s + j) * V..(i * s + j + 1) * V].copy_from_slice(v);
                }
                self.fourier_features(&item.observed.positions, &mut pos[i * s * e..], e, 0);
            }
            let values = dev.tensor_from_vec(values, (b * s, V));
            let pos = dev.tensor_from_vec(pos, (b * s, e));
            let embedded = self.linear(self.value_embed, values.retaped::<T>());
            let samples = (embedded, pos)
                .concat_along(Axis::<1>)
                .reshape_like(&(b, s, w));
            (prior, samples).concat_along(Axis::<1>)
        };
        let sk = s + 1;
        let mut x = tokens.reshape_like(&(b * sk, w));

        // Padded keys are masked out of every softmax (the prior token never is).
        let padded = items.iter().any(|i| i.observed.len() != s);
        let key_bias = padded.then(|| {
            let mut bias = vec![0.0f32; b * sk];
            for (i, item) in items.iter().enumerate() {
                for j in item.observed.len() + 1..sk {
                    bias[i * sk + j] = -1e9;
                }
            }
            dev.tensor_from_vec(bias, (b, sk))
        });

        // Factors of the distance bias: the prior token has no position, so
        // its bias is 0 both as a query and as a key.
        let scale = ((w / c.heads) as f32).sqrt();
        let encoder_slots = || {
            items
                .iter()
                .map(|item| std::iter::once(None).chain(item.observed.positions.iter().map(Some)))
        };
        let distance_keys = c
            .distance_bias
            .then(|| DistanceFactors::keys(dev, encoder_slots(), sk));
        let encoder_distance = distance_keys
            .clone()
            .map(|keys| DistanceFactors::with_queries(dev, keys, encoder_slots(), sk, scale));
        let decoder_distance = distance_keys.map(|keys| {
            let slots = items.iter().map(|item| item.queries.iter().map(Some));
            DistanceFactors::with_queries(dev, keys, slots, nq, scale)
        });

        for blk in &self.encoder {
            let h = self.norm(blk.attn_norm, x.with_empty_tape());
            let attended = self.attention(
                blk.attn,
                h.with_empty_tape(),
                h,
                b,
                sk,
                sk,
                key_bias.as_ref(),
                encoder_distance.as_ref(),
            );
            x = D::add(drop.apply(attended), x);
            let h = self.norm(blk.ff_norm, x.with_empty_tape());
            x = D::add(self.feed_forward(blk.ff, h, &mut drop), x);
        }
        let memory = self.norm(self.encoder_norm, x);

        // Decoder input: [0 ‖ fourier(x)] per query (or, with the hint,
        // [nearest_embed(v, d) ‖ fourier(x)]). It carries the encoder's
        // tape so that one tape holds the whole graph; every decoder layer
        // reads the memory through an empty tape with the same tensor id.
        let (memory, tape) = memory.split_tape();
        let mut y = match self.nearest_embed {
            None => {
                let mut queries = vec![0.0f32; b * nq * w];
                for (i, item) in items.iter().enumerate() {
                    self.fourier_features(item.queries, &mut queries[i * nq * w..], w, e);
                }
                dev.tensor_from_vec(queries, (b * nq, w)).put_tape(tape)
            }
            Some(embed) => {
                // [embed(nearest value, distance) ‖ fourier(x)] per query.
                let mut hints = vec![0.0f32; b * nq * (V + 1)];
                let mut pos = vec![0.0f32; b * nq * e];
                for (i, item) in items.iter().enumerate() {
                    nearest_values(item, &mut hints[i * nq * (V + 1)..]);
                    self.fourier_features(item.queries, &mut pos[i * nq * e..], e, 0);
                }
                let hints = dev.tensor_from_vec(hints, (b * nq, V + 1)).put_tape(tape);
                let pos = dev.tensor_from_vec(pos, (b * nq, e));
                (self.linear(embed, hints), pos).concat_along(Axis::<1>)
            }
        };
        // Training keeps the usual order, whose gradients reach every
        // parameter (the key bias's is 0 in exact arithmetic, see
        // `few_query_attention`) and which is cheaper for training's many queries.
        let cross_attention = if !T::OWNS_TAPE && self.few_queries_are_cheaper(nq, sk) {
            Self::few_query_attention
        } else {
            Self::attention
        };
        for blk in &self.decoder {
            let h = self.norm(blk.attn_norm, y.with_empty_tape());
            let attended = cross_attention(
                self,
                blk.attn,
                h,
                memory.retaped::<T>(),
                b,
                nq,
                sk,
                key_bias.as_ref(),
                decoder_distance.as_ref(),
            );
            y = D::add(drop.apply(attended), y);
            let h = self.norm(blk.ff_norm, y.with_empty_tape());
            y = D::add(self.feed_forward(blk.ff, h, &mut drop), y);
        }
        let y = self.norm(self.decoder_norm, y);
        Ok(self.linear(self.head, y))
    }

    /// Distribution parameters for each item's queries, on the host:
    /// `result[i]` holds `items[i].queries.len() × head_width` numbers.
    pub fn predict(&self, items: &[ModelInput<'_, P, V>]) -> Result<Vec<Vec<f32>>> {
        let out = self.forward(items, NoneTape)?;
        let hw = self.distribution.head_width();
        let nq = out.shape().0 / items.len();
        let flat = out.as_vec();
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| flat[i * nq * hw..(i * nq + item.queries.len()) * hw].to_vec())
            .collect())
    }

    /// Moves the parameters to another device (e.g. CPU → CUDA).
    pub fn to_device<D2: Backend>(&self, device: &D2) -> Model<P, V, D2, O> {
        Model {
            config: self.config.clone(),
            distribution: self.distribution.clone(),
            fourier: self.fourier.clone(),
            params: self
                .params
                .iter()
                .map(|p| device.tensor_from_vec(p.as_vec(), *p.shape()))
                .collect(),
            names: self.names.clone(),
            value_embed: self.value_embed,
            prior_token: self.prior_token,
            encoder: self.encoder.clone(),
            encoder_norm: self.encoder_norm,
            decoder: self.decoder.clone(),
            decoder_norm: self.decoder_norm,
            head: self.head,
            nearest_embed: self.nearest_embed,
            device: device.clone(),
        }
    }
}

/// Writes, for each query of `item`, `V + 1` numbers: the value observed
/// nearest to it and the distance to that observation. Observations at
/// exactly the same distance are averaged, so the hint does not depend on
/// the order of the set. With nothing observed the value is 0 and the
/// distance the diameter of `[-1, 1]^P`, "nothing nearby".
fn nearest_values<const P: usize, const V: usize>(item: &ModelInput<'_, P, V>, out: &mut [f32]) {
    let observed = item.observed;
    for (query, out) in item.queries.iter().zip(out.chunks_exact_mut(V + 1)) {
        let (mut best, mut ties) = (f32::INFINITY, 0usize);
        // In f64, so that sums of a few tied values are exact, whatever their order.
        let mut sum = [0.0f64; V];
        for (x, v) in observed.positions.iter().zip(&observed.values) {
            // Finite even for far-off (finite) positions, so that the first
            // observation always replaces the initial infinity.
            let d = crate::signal::squared_distance(x, query).min(f32::MAX);
            if d < best {
                (best, ties, sum) = (d, 0, [0.0; V]);
            }
            if d == best {
                ties += 1;
                sum.iter_mut().zip(v).for_each(|(s, v)| *s += *v as f64);
            }
        }
        if ties == 0 {
            out.fill(0.0);
            out[V] = 2.0 * (P as f32).sqrt();
        } else {
            for (o, s) in out.iter_mut().zip(sum) {
                *o = (s / ties as f64) as f32;
            }
            out[V] = best.sqrt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BinnedMixture;

    type M = Model<2, 1, Cpu, BinnedMixture>;

    fn model() -> M {
        let dist = BinnedMixture::with_centres(&[[0.0f32], [0.5], [1.0]], 0.1, 1e-3).unwrap();
        Model::new(Preset::Tiny.config(), dist, 3, &Cpu::default()).unwrap()
    }

    /// The default model, and one with the nearest-value hint.
    fn models() -> [M; 2] {
        let dist = BinnedMixture::with_centres(&[[0.0f32], [0.5], [1.0]], 0.1, 1e-3).unwrap();
        let hinted = ModelConfig {
            nearest_value: true,
            ..Preset::Tiny.config()
        };
        [
            model(),
            Model::new(hinted, dist, 3, &Cpu::default()).unwrap(),
        ]
    }

    fn set(n: usize, seed: u64) -> Observations<2, 1> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut s = Observations::new();
        for _ in 0..n {
            s.push(
                [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)],
                [rng.gen_range(0.0..1.0)],
            );
        }
        s
    }

    #[test]
    fn stored_numbers_counts_exactly_what_the_model_allocates() {
        for (preset, nearest_value) in [(Preset::Tiny, false), (Preset::Small, true)] {
            let config = ModelConfig {
                nearest_value,
                ..preset.config()
            };
            for bins in [1usize, 3] {
                let centres: Vec<[f32; 3]> = (0..bins).map(|b| [b as f32; 3]).collect();
                let dist = BinnedMixture::with_centres(&centres, 0.1, 1e-3).unwrap();
                let width = OutputDistribution::<3>::head_width(&dist);
                let m =
                    Model::<2, 3, Cpu, _>::new(config.clone(), dist, 0, &Cpu::default()).unwrap();
                let expected = (m.num_params() + m.fourier().len()) as u128;
                assert_eq!(config.stored_numbers(2, 3, width), expected);
            }
        }
        let absurd = ModelConfig {
            embed_dim: usize::MAX - 1,
            ..Preset::Tiny.config()
        };
        assert!(absurd.validate().is_err());
        let largest = ModelConfig {
            embed_dim: 1 << 16,
            heads: 1,
            ff_dim: 1 << 18,
            encoder_layers: 1 << 10,
            decoder_layers: 1 << 10,
            fourier_scale: 1.0,
            raw_positions: true,
            distance_bias: true,
            nearest_value: true,
        };
        largest.validate().unwrap();
        assert!(largest.stored_numbers(3, 3, usize::MAX) > u64::MAX as u128);
    }

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs()))
    }

    #[test]
    fn the_distance_bias_weights_keys_by_squared_distance() {
        // Zero query/key projections leave only the bias in the scores;
        // identity value/output projections and one-hot key tokens then make
        // the attention output the attention weights themselves.
        let mut m = model();
        let dev = m.device().clone();
        let w = m.config().width();
        let dh = w / m.config().heads;
        let a = m.encoder[0].attn;
        let identity: Vec<f32> = (0..w * w)
            .map(|i| if i / w == i % w { 1.0 } else { 0.0 })
            .collect();
        for (linear, weight) in [
            (a.query, vec![0.0; w * w]),
            (a.key, vec![0.0; w * w]),
            (a.value, identity.clone()),
            (a.out, identity),
        ] {
            m.params_mut()[linear.weight] = dev.tensor_from_vec(weight, (w, w));
            m.params_mut()[linear.bias] = dev.tensor_from_vec(vec![0.0; w], (1, w));
        }
        let strengths = [1.0f32, 5.0];
        m.params_mut()[a.distance_strength.unwrap()] =
            dev.tensor_from_vec(strengths.iter().map(|s| s.ln()).collect(), (1, 2));

        // Keys: the prior token (no position), then three samples.
        let keys: [Option<[f32; 2]>; 4] =
            [None, Some([0.1, 0.2]), Some([0.5, -0.3]), Some([-0.9, 0.9])];
        let query = [0.3f32, 0.0];
        let mut tokens = vec![0.0f32; keys.len() * w];
        for k in 0..keys.len() {
            tokens[k * w + k] = 1.0; // head 0's half
            tokens[k * w + dh + k] = 1.0; // head 1's half
        }
        let key_factors =
            DistanceFactors::keys(&dev, [keys.iter().map(|k| k.as_ref())].into_iter(), 4);
        let factors = DistanceFactors::with_queries(
            &dev,
            key_factors,
            [std::iter::once(Some(&query))].into_iter(),
            1,
            (dh as f32).sqrt(),
        );
        let out = m
            .attention(
                a,
                dev.zeros_like(&(1, w)),
                dev.tensor_from_vec(tokens, (keys.len(), w)),
                1,
                1,
                keys.len(),
                None,
                Some(&factors),
            )
            .as_vec();
        for (head, s) in strengths.iter().enumerate() {
            let scores: Vec<f32> = keys
                .iter()
                .map(|k| {
                    k.map_or(0.0, |x| {
                        -s * ((x[0] - query[0]).powi(2) + (x[1] - query[1]).powi(2))
                    })
                })
                .collect();
            let total: f32 = scores.iter().map(|x| x.exp()).sum();
            let expected: Vec<f32> = scores.iter().map(|x| x.exp() / total).collect();
            let got = &out[head * dh..head * dh + keys.len()];
            assert!(
                close(got, &expected, 1e-5),
                "head {head}: {got:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn predictions_ignore_the_order_of_observations() {
        for m in models() {
            predictions_ignore_the_order_with(&m);
        }
    }

    fn predictions_ignore_the_order_with(m: &M) {
        let mut s = set(9, 1);
        // Two observations exactly equally far from the last query: the
        // nearest-value hint averages them, whatever their order.
        s.push([0.5, -0.28125], [0.9]);
        s.push([0.5, -0.21875], [0.2]);
        let mut reversed = s.clone();
        reversed.positions.reverse();
        reversed.values.reverse();
        let q = [[0.1, -0.3], [0.7, 0.2], [0.5, -0.25]];
        let a = m
            .predict(&[ModelInput {
                observed: &s,
                queries: &q,
            }])
            .unwrap();
        let b = m
            .predict(&[ModelInput {
                observed: &reversed,
                queries: &q,
            }])
            .unwrap();
        assert!(close(&a[0], &b[0], 1e-4));
    }

    #[test]
    fn a_query_does_not_depend_on_the_other_queries_or_items() {
        for m in models() {
            a_query_is_independent_with(&m);
        }
    }

    fn a_query_is_independent_with(m: &M) {
        let s = set(5, 2);
        let alone = m
            .predict(&[ModelInput {
                observed: &s,
                queries: &[[0.2, 0.2]],
            }])
            .unwrap();
        // Same query among others, in a batch with a larger set and an empty one (padding + masks).
        let big = set(12, 3);
        let empty = Observations::new();
        let q = [[0.9, -0.9], [0.2, 0.2], [0.0, 0.5]];
        let batch = m
            .predict(&[
                ModelInput {
                    observed: &big,
                    queries: &q,
                },
                ModelInput {
                    observed: &s,
                    queries: &q,
                },
                ModelInput {
                    observed: &empty,
                    queries: &q[..1],
                },
            ])
            .unwrap();
        let hw = 3 * 3;
        assert!(
            close(&alone[0], &batch[1][hw..2 * hw], 1e-4),
            "{:?} vs {:?}",
            alone[0],
            &batch[1][hw..2 * hw]
        );
        // The empty set in a batch equals the empty set alone.
        let empty_alone = m
            .predict(&[ModelInput {
                observed: &empty,
                queries: &q[..1],
            }])
            .unwrap();
        assert!(close(&empty_alone[0], &batch[2], 1e-4));
        assert_eq!(batch[2].len(), hw);
    }

    /// A few queries take `few_query_attention`; many take `attention`. Both
    /// must give the same predictions, with and without the distance bias,
    /// with padding, and for an empty set.
    #[test]
    fn few_query_cross_attention_matches_the_projected_one() {
        for (distance_bias, nearest_value) in [(true, false), (false, false), (true, true)] {
            let config = ModelConfig {
                distance_bias,
                nearest_value,
                ..Preset::Tiny.config()
            };
            let dist = BinnedMixture::with_centres(&[[0.0f32], [0.5], [1.0]], 0.1, 1e-3).unwrap();
            let m = M::new(config, dist, 5, &Cpu::default()).unwrap();
            let (big, small, empty) = (set(20, 1), set(7, 2), Observations::new());
            let many: Vec<[f32; 2]> = (0..300)
                .map(|i| [(i as f32 * 0.37).sin(), (i as f32 * 0.61).cos()])
                .collect();
            let few = &many[..2];
            assert!(m.few_queries_are_cheaper(few.len(), 21));
            assert!(!m.few_queries_are_cheaper(many.len(), 21));
            let ask = |queries: &[[f32; 2]]| {
                m.predict(&[
                    ModelInput {
                        observed: &big,
                        queries,
                    },
                    ModelInput {
                        observed: &small,
                        queries,
                    },
                    ModelInput {
                        observed: &empty,
                        queries,
                    },
                ])
                .unwrap()
            };
            let (a, b) = (ask(few), ask(&many));
            let hw = 3 * 3;
            for item in 0..3 {
                let (x, y) = (&a[item][..2 * hw], &b[item][..2 * hw]);
                assert!(
                    close(x, y, 1e-4),
                    "bias {distance_bias}, item {item}: {x:?} vs {y:?}"
                );
            }
        }
    }

    #[test]
    fn gradients_reach_every_parameter() {
        for m in models() {
            gradients_reach_every_parameter_of(&m);
        }
    }

    fn gradients_reach_every_parameter_of(m: &M) {
        let s = set(4, 5);
        let q = [[0.3, 0.3]];
        let out = m
            .forward(
                &[ModelInput {
                    observed: &s,
                    queries: &q,
                }],
                OwnedTape::default(),
            )
            .unwrap();
        let loss = m.distribution().loss(out, &[[0.7]]).unwrap();
        let grads = loss.backward();
        for (p, name) in m.params().iter().zip(m.param_names()) {
            let g = grads.get(p).as_vec();
            assert!(g.iter().any(|x| *x != 0.0), "no gradient for {name}");
        }
    }

    #[test]
    fn the_hint_is_the_nearest_value_and_its_distance() {
        let observed = Observations::<2, 2>::from_pairs(
            vec![[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0], [1.0, 1.0]],
            vec![[1.0, 2.0], [3.0, 4.0], [5.0, 8.0], [7.0, 7.0]],
        )
        .unwrap();
        let queries = [[0.4, 0.0], [0.0, 0.0], [0.75, 0.75], [0.25, 0.0]];
        let mut out = [0.0f32; 4 * 3];
        nearest_values(
            &ModelInput {
                observed: &observed,
                queries: &queries,
            },
            &mut out,
        );
        let expected = [
            [3.0, 4.0, 0.1],                 // the second observation
            [1.0, 2.0, 0.0],                 // at an observation
            [7.0, 7.0, 0.5f32.sqrt() * 0.5], // the corner
            [2.0, 3.0, 0.25],                // a tie: the average of two
        ];
        for (got, want) in out.chunks(3).zip(expected) {
            assert!(close(got, &want, 1e-6), "{got:?} vs {want:?}");
        }
        let empty = Observations::<2, 2>::new();
        nearest_values(
            &ModelInput {
                observed: &empty,
                queries: &queries[..1],
            },
            &mut out[..3],
        );
        assert_eq!(out[..3], [0.0, 0.0, 8f32.sqrt()]);
    }

    #[test]
    fn dropout_is_seeded_and_off_without_a_rate() {
        let m = model();
        let s = set(9, 3);
        let q = [[0.1, -0.2], [0.7, 0.3]];
        let input = [ModelInput {
            observed: &s,
            queries: &q,
        }];
        let pass = |d: Option<Dropout>| {
            m.forward_with_dropout(&input, NoneTape, d)
                .unwrap()
                .as_vec()
        };
        let plain = pass(None);
        let at = |rate, seed| Some(Dropout { rate, seed });
        assert_eq!(pass(at(0.0, 1)), plain);
        assert_eq!(pass(at(0.5, 1)), pass(at(0.5, 1)));
        assert_ne!(pass(at(0.5, 1)), plain);
        assert_ne!(pass(at(0.5, 1)), pass(at(0.5, 2)));
        for rate in [1.0, -0.1, f32::NAN] {
            assert!(m
                .forward_with_dropout(&input, NoneTape, at(rate, 1))
                .is_err());
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let m = model();
        let s = set(2, 1);
        assert!(m.predict(&[]).is_err());
        assert!(m
            .predict(&[ModelInput {
                observed: &s,
                queries: &[]
            }])
            .is_err());
        assert!(m
            .predict(&[ModelInput {
                observed: &s,
                queries: &[[f32::NAN, 0.0]]
            }])
            .is_err());
        let mut bad = s.clone();
        bad.values[0][0] = f32::NAN;
        assert!(m
            .predict(&[ModelInput {
                observed: &bad,
                queries: &[[0.0, 0.0]]
            }])
            .is_err());
        let mut c = Preset::Tiny.config();
        c.heads = 3;
        assert!(M::new(c, BinnedMixture::gaussian(1, 1e-3), 0, &Cpu::default()).is_err());
    }
}
