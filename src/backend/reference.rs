//! The [`Backend`](super::Backend) operations composed from dfdx's generic ops: what devices
//! without fused kernels run (CUDA), and the slow reference the fused CPU kernels
//! are tested against.

use super::{AdamStep, AttentionShape, Flat, Param, Scores};
use dfdx::prelude::*;

/// A `1 × n` parameter broadcast to `rows × n`, recorded on tape `T`.
pub fn broadcast_rows<D: Device<f32>, T: Tape<f32, D>>(p: &Param<D>, rows: usize) -> Flat<D, T> {
    let n = p.shape().1;
    p.retaped::<T>()
        .reshape_like(&(n,))
        .broadcast_like::<_, Axis<0>>(&(rows, n))
}

/// See [`Backend::linear`](super::Backend::linear).
pub fn linear<D: Device<f32>, T: Tape<f32, D>>(
    x: Flat<D, T>,
    weight: &Param<D>,
    bias: &Param<D>,
) -> Flat<D, T> {
    let rows = x.shape().0;
    x.matmul(weight.retaped::<T>()) + broadcast_rows::<D, T>(bias, rows)
}

/// See [`Backend::layer_norm`](super::Backend::layer_norm).
pub fn layer_norm<D: Device<f32>, T: Tape<f32, D>>(
    x: Flat<D, T>,
    gain: &Param<D>,
    shift: &Param<D>,
    eps: f32,
) -> Flat<D, T> {
    let rows = x.shape().0;
    x.normalize::<Axis<1>>(eps) * broadcast_rows::<D, T>(gain, rows)
        + broadcast_rows::<D, T>(shift, rows)
}

/// See [`Backend::adam_update`](super::Backend::adam_update).
pub fn adam_update<D: Device<f32>>(
    param: &mut Param<D>,
    grad: Param<D>,
    m: &mut Param<D>,
    v: &mut Param<D>,
    h: AdamStep,
) {
    *m = m.clone() * h.beta1 + grad.clone() * (1.0 - h.beta1);
    *v = v.clone() * h.beta2 + grad.square() * (1.0 - h.beta2);
    let denom = (v.clone() / h.c2).sqrt() + h.eps;
    *param = param.clone() - m.clone() / denom * h.step;
}

/// See [`Backend::dropout`](super::Backend::dropout): the mask is built
/// on the host and multiplied in.
pub fn dropout<D: Device<f32>, T: Tape<f32, D>>(x: Flat<D, T>, rate: f32, seed: u64) -> Flat<D, T> {
    let (rows, cols) = *x.shape();
    let keep = 1.0 / (1.0 - rate);
    let mask = (0..rows * cols)
        .map(|i| {
            if super::dropout_keeps(seed, i, rate) {
                keep
            } else {
                0.0
            }
        })
        .collect();
    let mask = x.device().tensor_from_vec(mask, (rows, cols));
    x * mask
}

/// See [`Backend::attention`](super::Backend::attention): reshapes to
/// `batch × heads × rows × width`, two batched products around a softmax.
pub fn attention<D: Device<f32>, T: Tape<f32, D>>(
    q: Flat<D, T>,
    k: Flat<D, T>,
    v: Flat<D, T>,
    s: AttentionShape,
    key_bias: Option<&Tensor<(usize, usize), f32, D>>,
) -> Flat<D, T> {
    type S4 = (usize, usize, usize, usize);
    let (b, h, sq, sk) = (s.batch, s.heads, s.queries, s.keys);
    let (dk, dv) = (q.shape().1 / h, v.shape().1 / h);
    let q = q
        .reshape_like(&(b, sq, h, dk))
        .permute::<S4, Axes4<0, 2, 1, 3>>();
    let k = k
        .reshape_like(&(b, sk, h, dk))
        .permute::<S4, Axes4<0, 2, 3, 1>>();
    let v = v
        .reshape_like(&(b, sk, h, dv))
        .permute::<S4, Axes4<0, 2, 1, 3>>();
    let mut z: Scores<D, T> = q.matmul(k) * s.scale;
    if let Some(bias) = key_bias {
        let shape = *z.shape();
        z = z + bias.clone().broadcast_like::<_, Axes2<1, 2>>(&shape);
    }
    z.softmax::<Axis<3>>()
        .matmul(v)
        .permute::<S4, Axes4<0, 2, 1, 3>>()
        .reshape_like(&(b * sq, h * dv))
}
