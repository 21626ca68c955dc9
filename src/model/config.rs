//! The architecture's hyper-parameters: [`ModelConfig`], its named
//! [`Preset`]s, and [`Dropout`] for training passes.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
