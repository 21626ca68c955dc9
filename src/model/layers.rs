//! The layers, as indices into the model's one flat parameter list, and
//! the builder that allocates them with PyTorch-style initialisation.
//!
//! Keeping every parameter in one `Vec` keeps the optimizer, the checkpoint
//! code and the device transfer to a loop; each layer here only remembers
//! where its tensors are and knows its own forward pass.

use dfdx::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{Dropout, ModelConfig};
use crate::backend::{Backend, Flat, Param};

/// `x · W + b`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Linear {
    pub(super) weight: usize,
    pub(super) bias: usize,
}

impl Linear {
    pub(super) fn forward<D: Backend, T: Tape<f32, D>>(
        self,
        params: &[Param<D>],
        x: Flat<D, T>,
    ) -> Flat<D, T> {
        D::linear(x, &params[self.weight], &params[self.bias])
    }
}

/// Layer norm over each row, with a learned gain and shift.
#[derive(Debug, Clone, Copy)]
pub(super) struct LayerNorm {
    gain: usize,
    shift: usize,
}

impl LayerNorm {
    pub(super) fn forward<D: Backend, T: Tape<f32, D>>(
        self,
        params: &[Param<D>],
        x: Flat<D, T>,
    ) -> Flat<D, T> {
        D::layer_norm(x, &params[self.gain], &params[self.shift], 1e-5)
    }
}

/// Multi-head attention's projections (its forward pass is in `attention.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Attention {
    pub(super) query: Linear,
    pub(super) key: Linear,
    pub(super) value: Linear,
    pub(super) out: Linear,
    /// `1 × heads` log-strengths of the distance bias, if the model has one.
    pub(super) distance_strength: Option<usize>,
}

/// `linear(relu(linear(x)))`, with dropout on the hidden units and the output.
#[derive(Debug, Clone, Copy)]
pub(super) struct FeedForward {
    hidden: Linear,
    out: Linear,
}

impl FeedForward {
    pub(super) fn forward<D: Backend, T: Tape<f32, D>>(
        self,
        params: &[Param<D>],
        x: Flat<D, T>,
        drop: &mut DropoutMasks,
    ) -> Flat<D, T> {
        let hidden = drop.apply(self.hidden.forward(params, x).relu());
        drop.apply(self.out.forward(params, hidden))
    }
}

/// Pre-norm block: `x += attn(LN(x), ·)`, `x += ff(LN(x))`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Block {
    pub(super) attn_norm: LayerNorm,
    pub(super) attn: Attention,
    pub(super) ff_norm: LayerNorm,
    pub(super) ff: FeedForward,
}

/// The places of one pass's dropout: each gets its own seed.
pub(super) struct DropoutMasks {
    dropout: Option<Dropout>,
    place: u64,
}

impl DropoutMasks {
    pub(super) fn new(dropout: Option<Dropout>) -> Self {
        Self {
            dropout: dropout.filter(|d| d.rate > 0.0),
            place: 0,
        }
    }

    /// `x` with numbers zeroed at the rate and the rest scaled up to keep the mean.
    pub(super) fn apply<D: Backend, T: Tape<f32, D>>(&mut self, x: Flat<D, T>) -> Flat<D, T> {
        let Some(d) = self.dropout else { return x };
        self.place += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(d.seed);
        rng.set_stream(self.place);
        D::dropout(x, d.rate, rng.next_u64())
    }
}

/// Allocates named parameters with PyTorch-style initialisation.
pub(super) struct Builder<'a, D: Device<f32>> {
    device: &'a D,
    rng: ChaCha8Rng,
    pub(super) params: Vec<Param<D>>,
    pub(super) names: Vec<String>,
}

impl<'a, D: Device<f32>> Builder<'a, D> {
    /// A builder drawing its initial weights from `rng`.
    pub(super) fn new(device: &'a D, rng: ChaCha8Rng) -> Self {
        Self {
            device,
            rng,
            params: Vec::new(),
            names: Vec::new(),
        }
    }

    pub(super) fn tensor(
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

    pub(super) fn linear(&mut self, name: &str, inputs: usize, outputs: usize) -> Linear {
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

    pub(super) fn norm(&mut self, name: &str, width: usize) -> LayerNorm {
        LayerNorm {
            gain: self.tensor(format!("{name}.gain"), 1, width, |_| 1.0),
            shift: self.tensor(format!("{name}.shift"), 1, width, |_| 0.0),
        }
    }

    pub(super) fn block(&mut self, name: &str, c: &ModelConfig) -> Block {
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
