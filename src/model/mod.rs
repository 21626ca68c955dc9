//! The PixelTransformer network.
//!
//! ```text
//!  observed (x, v) ──► [value_emb(v) ‖ fourier(x)] ─┐
//!                        learned prior token ───────┴─► encoder: self-attention ─► memory
//!  query x ──► [0 ‖ fourier(x)] ─► decoder: each query attends to memory only ─► head ─► distribution parameters
//!              (or [nearest_embed(v, d) ‖ fourier(x)] with the nearest-value hint)
//! ```
//!
//! The files, in the order a pass uses them: [`config`] (sizes, presets),
//! `tokens` (inputs to tokens, padding mask), `layers` (linear, norm,
//! feed-forward, blocks; parameter allocation), `distance` and `attention`
//! (the distance-biased attention), [`distribution`] (what the head's
//! numbers mean), [`memory`] (what a pass needs).
//!
//! - **Position features** are fixed random Fourier features
//!   `[sin 2πxB, cos 2πxB]`, `B ~ N(0, scale²)` of shape `P × E/2`, computed
//!   on the host and never trained. With [`ModelConfig::raw_positions`] (on
//!   in every preset; not in the paper) the sines of the first `P`
//!   frequencies are replaced by the coordinates themselves, because a
//!   plane wave mixing all axes makes it slow for small models to learn how
//!   a value depends on one coordinate.
//! - **Distance-biased attention** ([`ModelConfig::distance_bias`], on in
//!   every preset; not in the paper): every head adds `−s·‖x_q − x_k‖²` to
//!   the score of a key at `x_k` for a query at `x_q`, with a learned
//!   strength `s ≥ 0` per head and layer, initialised from nearly global to
//!   sharply local across the heads. Without it, CPU-budget models predicted
//!   the data set's average signal whatever was observed; with it a head
//!   reads its nearest samples from the first step. It costs `P + 2` extra
//!   numbers per head in the score product, no `|Q| × |S|` tensor.
//! - **Nearest-value hint** ([`ModelConfig::nearest_value`], off in the
//!   presets, on in the video and image domains; not in the paper): a query
//!   token's value half, zero in the paper, carries `nearest_embed([v, d])`,
//!   the value `v` observed nearest to the query and its distance `d`, so
//!   the decoder refines a guess instead of finding it by attention.
//! - A learned **prior token** is always the first encoder input, so an
//!   empty observation set is valid (unconditional generation) and no
//!   attention row is ever fully masked. Sets of different sizes in one
//!   batch are padded; padded keys are masked out of every softmax.
//! - Blocks are **pre-norm**, `x + f(LN(x))`, with a final LayerNorm per
//!   stack (the paper's reference uses `x + LN(f(x))`); pre-norm keeps an
//!   identity path from input to output, which trains deep stacks stably
//!   without warm-up.
//! - **Dropout** ([`Dropout`], training only, off by default): as in the
//!   paper's reference, at three places per block (the feed-forward hidden
//!   units, and the outputs of the attention and feed-forward sub-layers),
//!   with masks drawn from a seed, so a training step is reproducible.
//! - The **decoder** has cross-attention and a feed-forward layer but no
//!   self-attention: queries are independent, can be batched freely, and a
//!   prediction does not depend on which other queries were asked.
//!
//! The book's *Concepts* chapter has the measurements behind each choice.

mod attention;
pub mod config;
mod distance;
pub mod distribution;
pub mod kmeans;
mod layers;
pub mod memory;
#[cfg(test)]
mod tests;
mod tokens;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::backend::{Backend, Flat, Param};
use crate::error::{Error, Result};
use attention::{few_queries_are_cheaper, Sizes};
use distance::DistanceFactors;
use layers::{Block, Builder, DropoutMasks, LayerNorm, Linear};
use tokens::{key_padding_bias, Embedding};

pub use config::{Dropout, ModelConfig, Preset};
pub use distribution::{BinnedMixture, OutputDistribution};
pub use tokens::ModelInput;

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
    params: Vec<Param<D>>,
    names: Vec<String>,
    embedding: Embedding,
    encoder: Vec<Block>,
    encoder_norm: LayerNorm,
    decoder: Vec<Block>,
    decoder_norm: LayerNorm,
    head: Linear,
    device: D,
}

impl<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>> Model<P, V, D, O> {
    /// A freshly initialised network; the same seed gives the same weights on every device.
    pub fn new(config: ModelConfig, distribution: O, seed: u64, device: &D) -> Result<Self> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fourier = (0..P * config.embed_dim / 2)
            .map(|_| config.fourier_scale * rng.sample::<f32, _>(StandardNormal))
            .collect();
        let mut b = Builder::new(device, rng);
        let (e, w) = (config.embed_dim, config.width());
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
            params: b.params,
            names: b.names,
            embedding: Embedding {
                value: value_embed,
                prior: prior_token,
                nearest: nearest_embed,
                fourier,
            },
            encoder,
            encoder_norm,
            decoder,
            decoder_norm,
            head,
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
        &self.embedding.fourier
    }

    /// Replaces the Fourier frequencies (used when loading a checkpoint).
    pub fn set_fourier(&mut self, fourier: Vec<f32>) -> Result<()> {
        if fourier.len() != self.embedding.fourier.len() || fourier.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "Fourier matrix must hold {} finite numbers, got {}",
                self.embedding.fourier.len(),
                fourier.len()
            )));
        }
        self.embedding.fourier = fourier;
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
        let (s, nq) = self.check_pass(items, dropout, T::OWNS_TAPE)?;
        let (p, c, b, sk) = (&self.params[..], &self.config, items.len(), s + 1);
        let mut drop = DropoutMasks::new(dropout);
        let key_bias = key_padding_bias(&self.device, items, sk);
        let (encoder_distance, decoder_distance) = self.distance_factors(items, sk, nq);

        // Encoder: self-attention over the prior token and the observations.
        let mut x = self.embedding.encoder_tokens(p, c, items, s, tape); // (b·sk) × w
        let sizes = Sizes { b, sq: sk, sk };
        for blk in &self.encoder {
            let h = blk.attn_norm.forward(p, x.with_empty_tape());
            let attended = blk.attn.forward(
                p,
                c,
                h.with_empty_tape(),
                h,
                sizes,
                key_bias.as_ref(),
                encoder_distance.as_ref(),
            );
            x = D::add(drop.apply(attended), x);
            let h = blk.ff_norm.forward(p, x.with_empty_tape());
            x = D::add(blk.ff.forward(p, h, &mut drop), x);
        }
        let memory = self.encoder_norm.forward(p, x); // (b·sk) × w

        // Decoder: each query attends to the memory only. Its tokens carry
        // the encoder's tape so that one tape holds the whole graph; every
        // layer reads the memory through an empty tape with the same tensor id.
        let (memory, tape) = memory.split_tape();
        let mut y = self.embedding.query_tokens(p, c, items, nq, tape); // (b·nq) × w
                                                                        // Training keeps the usual order, whose gradients reach every
                                                                        // parameter (the key bias's is 0 in exact arithmetic, see
                                                                        // `forward_few_queries`) and which is cheaper for training's many queries.
        let few = !T::OWNS_TAPE && few_queries_are_cheaper(c, nq, sk);
        let sizes = Sizes { b, sq: nq, sk };
        for blk in &self.decoder {
            let h = blk.attn_norm.forward(p, y.with_empty_tape());
            let (memory, bias, distance) = (
                memory.retaped::<T>(),
                key_bias.as_ref(),
                decoder_distance.as_ref(),
            );
            let attended = if few {
                blk.attn
                    .forward_few_queries(p, c, h, memory, sizes, bias, distance)
            } else {
                blk.attn.forward(p, c, h, memory, sizes, bias, distance)
            };
            y = D::add(drop.apply(attended), y);
            let h = blk.ff_norm.forward(p, y.with_empty_tape());
            y = D::add(blk.ff.forward(p, h, &mut drop), y);
        }
        let y = self.decoder_norm.forward(p, y);
        Ok(self.head.forward(p, y)) // (b·nq) × head_width
    }

    /// Checks a pass's inputs and its memory, and returns the largest
    /// observation set `s` and query set `nq` (the others are padded to them).
    fn check_pass(
        &self,
        items: &[ModelInput<'_, P, V>],
        dropout: Option<Dropout>,
        training: bool,
    ) -> Result<(usize, usize)> {
        if let Some(d) = dropout {
            Dropout::validate_rate(d.rate)?;
        }
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
        let needed = memory::pass_bytes(&self.config, b, s, nq, training, D::FUSED_ATTENTION);
        crate::backend::memory::check(needed, || {
            format!("a pass over {b} signals with |S| = {s} and |Q| = {nq}")
        })?;
        Ok((s, nq))
    }

    /// The distance bias's factors for the encoder (the prior token and the
    /// observations as queries) and the decoder (the queries); the prior
    /// token has no position, so its bias is 0 both as a query and as a key.
    #[allow(clippy::type_complexity)]
    fn distance_factors(
        &self,
        items: &[ModelInput<'_, P, V>],
        sk: usize,
        nq: usize,
    ) -> (Option<DistanceFactors<D>>, Option<DistanceFactors<D>>) {
        if !self.config.distance_bias {
            return (None, None);
        }
        let dev = &self.device;
        let scale = ((self.config.width() / self.config.heads) as f32).sqrt();
        let encoder_slots = || {
            items
                .iter()
                .map(|item| std::iter::once(None).chain(item.observed.positions.iter().map(Some)))
        };
        let keys = DistanceFactors::keys(dev, encoder_slots(), sk);
        let encoder = DistanceFactors::with_queries(dev, keys.clone(), encoder_slots(), sk, scale);
        let query_slots = items.iter().map(|item| item.queries.iter().map(Some));
        let decoder = DistanceFactors::with_queries(dev, keys, query_slots, nq, scale);
        (Some(encoder), Some(decoder))
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
            params: self
                .params
                .iter()
                .map(|p| device.tensor_from_vec(p.as_vec(), *p.shape()))
                .collect(),
            names: self.names.clone(),
            embedding: self.embedding.clone(),
            encoder: self.encoder.clone(),
            encoder_norm: self.encoder_norm,
            decoder: self.decoder.clone(),
            decoder_norm: self.decoder_norm,
            head: self.head,
            device: device.clone(),
        }
    }
}
