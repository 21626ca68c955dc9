//! How a pass's inputs become tokens: observed pairs become encoder tokens
//! `[value_embed(v) ‖ fourier(x)]` after a learned prior token; queries
//! become decoder tokens `[0 ‖ fourier(x)]`, or `[nearest_embed(v, d) ‖
//! fourier(x)]` with the nearest-value hint; padded keys get a mask.

use dfdx::prelude::*;

use super::config::ModelConfig;
use super::layers::Linear;
use crate::backend::{Backend, Flat, Param};
use crate::signal::{squared_distance, Observations};

/// One input of a forward pass: an observation set and the positions to predict.
#[derive(Debug, Clone, Copy)]
pub struct ModelInput<'a, const P: usize, const V: usize> {
    /// The observed pairs `S` (may be empty).
    pub observed: &'a Observations<P, V>,
    /// Query positions `Q`.
    pub queries: &'a [[f32; P]],
}

/// The token-building parameters: embeddings and the fixed Fourier matrix.
#[derive(Debug, Clone)]
pub(super) struct Embedding {
    /// Values into a sample token's value half.
    pub(super) value: Linear,
    /// The learned prior token, always the first encoder input.
    pub(super) prior: usize,
    /// `[nearest observed value, its distance]` into a query token's value
    /// half, if the model has [`ModelConfig::nearest_value`].
    pub(super) nearest: Option<Linear>,
    /// Fourier frequencies, `P × E/2` row-major (fixed, saved with the weights).
    pub(super) fourier: Vec<f32>,
}

impl Embedding {
    /// `(b·(s+1)) × w` encoder tokens: the prior token, then one token per
    /// observed pair, padded to `s` pairs per item.
    pub(super) fn encoder_tokens<const P: usize, const V: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        params: &[Param<D>],
        c: &ModelConfig,
        items: &[ModelInput<'_, P, V>],
        s: usize,
        tape: T,
    ) -> Flat<D, T> {
        let (b, e, w) = (items.len(), c.embed_dim, c.width());
        let dev = params[self.prior].device();
        let prior = params[self.prior]
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
                self.fourier_features(c, &item.observed.positions, &mut pos[i * s * e..], e, 0);
            }
            let values = dev.tensor_from_vec(values, (b * s, V));
            let pos = dev.tensor_from_vec(pos, (b * s, e));
            let embedded = self.value.forward(params, values.retaped::<T>());
            let samples = (embedded, pos)
                .concat_along(Axis::<1>)
                .reshape_like(&(b, s, w));
            (prior, samples).concat_along(Axis::<1>)
        };
        tokens.reshape_like(&(b * (s + 1), w))
    }

    /// `(b·nq) × w` decoder tokens, one per query slot (padded to `nq`):
    /// `[0 ‖ fourier(x)]`, or `[nearest_embed(v, d) ‖ fourier(x)]` with the hint.
    pub(super) fn query_tokens<const P: usize, const V: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        params: &[Param<D>],
        c: &ModelConfig,
        items: &[ModelInput<'_, P, V>],
        nq: usize,
        tape: T,
    ) -> Flat<D, T> {
        let (b, e, w) = (items.len(), c.embed_dim, c.width());
        let dev = params[self.prior].device();
        match self.nearest {
            None => {
                let mut queries = vec![0.0f32; b * nq * w];
                for (i, item) in items.iter().enumerate() {
                    self.fourier_features(c, item.queries, &mut queries[i * nq * w..], w, e);
                }
                dev.tensor_from_vec(queries, (b * nq, w)).put_tape(tape)
            }
            Some(embed) => {
                let mut hints = vec![0.0f32; b * nq * (V + 1)];
                let mut pos = vec![0.0f32; b * nq * e];
                for (i, item) in items.iter().enumerate() {
                    nearest_values(item, &mut hints[i * nq * (V + 1)..]);
                    self.fourier_features(c, item.queries, &mut pos[i * nq * e..], e, 0);
                }
                let hints = dev.tensor_from_vec(hints, (b * nq, V + 1)).put_tape(tape);
                let pos = dev.tensor_from_vec(pos, (b * nq, e));
                (embed.forward(params, hints), pos).concat_along(Axis::<1>)
            }
        }
    }

    /// `[sin 2πxB, cos 2πxB]` for each position (with the coordinates in
    /// place of the first `P` sines when [`ModelConfig::raw_positions`]),
    /// written into `out` rows of `stride` starting at `offset`.
    fn fourier_features<const P: usize>(
        &self,
        c: &ModelConfig,
        positions: &[[f32; P]],
        out: &mut [f32],
        stride: usize,
        offset: usize,
    ) {
        let half = c.embed_dim / 2;
        for (row, x) in positions.iter().enumerate() {
            let dst = &mut out[row * stride + offset..row * stride + offset + 2 * half];
            for j in 0..half {
                let phase: f32 = (0..P)
                    .map(|a| x[a] * self.fourier[a * half + j])
                    .sum::<f32>()
                    * std::f32::consts::TAU;
                dst[j] = if c.raw_positions && j < P {
                    x[j]
                } else {
                    phase.sin()
                };
                dst[half + j] = phase.cos();
            }
        }
    }
}

/// `b × sk` key bias that masks padded keys out of every softmax (the prior
/// token never is); `None` when no item is padded.
pub(super) fn key_padding_bias<const P: usize, const V: usize, D: Backend>(
    device: &D,
    items: &[ModelInput<'_, P, V>],
    sk: usize,
) -> Option<Tensor<(usize, usize), f32, D>> {
    let b = items.len();
    let padded = items.iter().any(|i| i.observed.len() + 1 != sk);
    padded.then(|| {
        let mut bias = vec![0.0f32; b * sk];
        for (i, item) in items.iter().enumerate() {
            for j in item.observed.len() + 1..sk {
                bias[i * sk + j] = -1e9;
            }
        }
        device.tensor_from_vec(bias, (b, sk))
    })
}

/// Writes, for each query of `item`, `V + 1` numbers: the value observed
/// nearest to it and the distance to that observation. Observations at
/// exactly the same distance are averaged, so the hint does not depend on
/// the order of the set. With nothing observed the value is 0 and the
/// distance the diameter of `[-1, 1]^P`, "nothing nearby".
pub(super) fn nearest_values<const P: usize, const V: usize>(
    item: &ModelInput<'_, P, V>,
    out: &mut [f32],
) {
    let observed = item.observed;
    for (query, out) in item.queries.iter().zip(out.chunks_exact_mut(V + 1)) {
        let (mut best, mut ties) = (f32::INFINITY, 0usize);
        // In f64, so that sums of a few tied values are exact, whatever their order.
        let mut sum = [0.0f64; V];
        for (x, v) in observed.positions.iter().zip(&observed.values) {
            // Finite even for far-off (finite) positions, so that the first
            // observation always replaces the initial infinity.
            let d = squared_distance(x, query).min(f32::MAX);
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
