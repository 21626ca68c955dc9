//! Fused kernels for the model's hot spots, and the [`Backend`] trait that picks them.
//!
//! dfdx builds layer norm, softmax and bias addition out of generic
//! broadcasting element-wise ops, each a separate pass over memory with
//! per-element index arithmetic, forward and backward. Profiling the small
//! preset showed those ops taking more time than the matrix products. On the
//! CPU these three are therefore custom ops here: one pass forward, one pass
//! backward, rows in parallel with rayon. They plug into dfdx's tape through
//! its public `Tape::add_backward_op` and `Gradients::get_or_alloc_mut`, so
//! gradients flow exactly as for built-in ops.
//!
//! Other devices (CUDA) use the default methods, composed from dfdx ops; the
//! unit tests check the fused CPU kernels against those compositions, forward
//! and backward.

use dfdx::prelude::*;
use rayon::prelude::*;

use crate::model::Param;

/// A 2-D activation tensor: rows × width.
pub type Flat<D, T> = Tensor<(usize, usize), f32, D, T>;
/// Attention scores: batch × heads × queries × keys.
pub type Scores<D, T> = Tensor<(usize, usize, usize, usize), f32, D, T>;

/// The scalars of one Adam step (see [`Backend::adam_update`]).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// Bias-corrected learning rate, `lr / (1 − β1^t)`.
    pub step: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Second-moment bias correction, `1 − β2^t`.
    pub c2: f32,
    /// Denominator epsilon.
    pub eps: f32,
}

/// Rows at or above this many elements are processed in parallel.
const PARALLEL_MIN: usize = 1 << 16;

/// A dfdx device plus the model's fused operations. The defaults are the
/// [`composed`] versions and work on any device.
pub trait Backend: Device<f32> {
    /// `x + bias` with a `1 × n` bias broadcast over rows.
    fn add_bias<T: Tape<f32, Self>>(x: Flat<Self, T>, bias: &Param<Self>) -> Flat<Self, T> {
        composed::add_bias(x, bias)
    }

    /// Layer norm over each row with `1 × n` gain and shift.
    fn layer_norm<T: Tape<f32, Self>>(
        x: Flat<Self, T>,
        gain: &Param<Self>,
        shift: &Param<Self>,
        eps: f32,
    ) -> Flat<Self, T> {
        composed::layer_norm(x, gain, shift, eps)
    }

    /// One Adam update of `param` in place, with bias-corrected step size
    /// `step = lr / (1 − β1^t)` and second-moment correction `c2 = 1 − β2^t`.
    fn adam_update(
        param: &mut Param<Self>,
        grad: Param<Self>,
        m: &mut Param<Self>,
        v: &mut Param<Self>,
        h: AdamStep,
    ) {
        composed::adam_update(param, grad, m, v, h)
    }

    /// `softmax(scale · scores + key_bias)` over the last axis; `key_bias` is batch × keys.
    fn scaled_masked_softmax<T: Tape<f32, Self>>(
        scores: Scores<Self, T>,
        scale: f32,
        key_bias: Option<&Tensor<(usize, usize), f32, Self>>,
    ) -> Scores<Self, T> {
        composed::scaled_masked_softmax(scores, scale, key_bias)
    }
}

/// The [`Backend`] operations composed from dfdx's generic ops: what devices
/// without fused kernels run (CUDA), and the reference the fused CPU kernels
/// are tested against.
pub mod composed {
    use super::{AdamStep, Flat, Scores};
    use crate::model::Param;
    use dfdx::prelude::*;

    /// A `1 × n` parameter broadcast to `rows × n`, recorded on tape `T`.
    pub fn broadcast_rows<D: Device<f32>, T: Tape<f32, D>>(
        p: &Param<D>,
        rows: usize,
    ) -> Flat<D, T> {
        let n = p.shape().1;
        p.retaped::<T>()
            .reshape_like(&(n,))
            .broadcast_like::<_, Axis<0>>(&(rows, n))
    }

    /// See [`Backend::add_bias`](super::Backend::add_bias).
    pub fn add_bias<D: Device<f32>, T: Tape<f32, D>>(x: Flat<D, T>, bias: &Param<D>) -> Flat<D, T> {
        let rows = x.shape().0;
        x + broadcast_rows::<D, T>(bias, rows)
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

    /// See [`Backend::scaled_masked_softmax`](super::Backend::scaled_masked_softmax).
    pub fn scaled_masked_softmax<D: Device<f32>, T: Tape<f32, D>>(
        scores: Scores<D, T>,
        scale: f32,
        key_bias: Option<&Tensor<(usize, usize), f32, D>>,
    ) -> Scores<D, T> {
        let shape = *scores.shape();
        let mut z = scores * scale;
        if let Some(bias) = key_bias {
            z = z + bias.clone().broadcast_like::<_, Axes2<1, 2>>(&shape);
        }
        z.softmax::<Axis<3>>()
    }
}

#[cfg(feature = "cuda")]
impl Backend for Cuda {}

/// Copies a tensor's logical contents to the host: a straight memory copy,
/// after making it contiguous (a no-op for tensors that already are).
fn host<S: Shape>(t: &Tensor<S, f32, Cpu>) -> Vec<f32> {
    let c = t.clone().contiguous();
    let mut v = vec![0.0; c.shape().num_elements()];
    c.copy_into(&mut v);
    v
}

/// Runs `f(row_index, row)` on each `width`-sized row of `data`, in parallel when large.
fn for_rows(data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if data.len() >= PARALLEL_MIN {
        data.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        data.chunks_mut(width)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    }
}

fn accumulate(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

impl Backend for Cpu {
    fn adam_update(
        param: &mut Param<Self>,
        grad: Param<Self>,
        m: &mut Param<Self>,
        v: &mut Param<Self>,
        h: AdamStep,
    ) {
        // One fused pass instead of ten element-wise tensor ops, each of which
        // would allocate a parameter-sized buffer.
        let (g, mut p, mut mm, mut vv) = (host(&grad), host(param), host(m), host(v));
        let update = |((p, m), v): ((&mut f32, &mut f32), &mut f32), g: &f32| {
            *m = h.beta1 * *m + (1.0 - h.beta1) * g;
            *v = h.beta2 * *v + (1.0 - h.beta2) * g * g;
            *p -= h.step * *m / ((*v / h.c2).sqrt() + h.eps);
        };
        if p.len() >= PARALLEL_MIN {
            p.par_iter_mut()
                .zip(mm.par_iter_mut())
                .zip(vv.par_iter_mut())
                .zip(g.par_iter())
                .for_each(|(a, g)| update(a, g));
        } else {
            p.iter_mut()
                .zip(mm.iter_mut())
                .zip(vv.iter_mut())
                .zip(g.iter())
                .for_each(|(a, g)| update(a, g));
        }
        param.copy_from(&p);
        m.copy_from(&mm);
        v.copy_from(&vv);
    }

    fn add_bias<T: Tape<f32, Self>>(x: Flat<Self, T>, bias: &Param<Self>) -> Flat<Self, T> {
        let (x, mut tape) = x.split_tape();
        let (rows, n) = *x.shape();
        let b = host(bias);
        let mut out = host(&x);
        for_rows(&mut out, n, |_, r| accumulate(r, &b));
        let out = x.device().tensor_from_vec(out, (rows, n));
        let (x_id, bias_id, out_id) = (x.clone(), bias.clone(), out.clone());
        tape.add_backward_op(move |grads| {
            let dy = grads.get_or_alloc_mut(&out_id)?.to_vec();
            accumulate(grads.get_or_alloc_mut(&x_id)?, &dy);
            let db = grads.get_or_alloc_mut(&bias_id)?;
            for row in dy.chunks_exact(n) {
                accumulate(db, row);
            }
            Ok(())
        });
        out.put_tape(tape)
    }

    fn layer_norm<T: Tape<f32, Self>>(
        x: Flat<Self, T>,
        gain: &Param<Self>,
        shift: &Param<Self>,
        eps: f32,
    ) -> Flat<Self, T> {
        let (x, mut tape) = x.split_tape();
        let (rows, n) = *x.shape();
        let (g, s) = (host(gain), host(shift));
        // Forward keeps the normalised rows x̂ and 1/σ per row for the backward pass.
        let mut xhat = host(&x);
        let rstd: Vec<f32> = if xhat.len() >= PARALLEL_MIN {
            xhat.par_chunks_mut(n)
                .map(|r| normalise_row(r, eps))
                .collect()
        } else {
            xhat.chunks_mut(n).map(|r| normalise_row(r, eps)).collect()
        };
        let mut out = if T::OWNS_TAPE {
            xhat.clone()
        } else {
            std::mem::take(&mut xhat)
        };
        for_rows(&mut out, n, |_, r| {
            for j in 0..n {
                r[j] = r[j] * g[j] + s[j];
            }
        });
        let out = x.device().tensor_from_vec(out, (rows, n));
        if !T::OWNS_TAPE {
            return out.put_tape(tape);
        }
        let (x_id, g_id, s_id, out_id) = (x.clone(), gain.clone(), shift.clone(), out.clone());
        tape.add_backward_op(move |grads| {
            let dy = grads.get_or_alloc_mut(&out_id)?.to_vec();
            // dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·gain.
            let mut dx = dy.clone();
            let body = |i: usize, r: &mut [f32]| {
                let xh = &xhat[i * n..(i + 1) * n];
                let (mut m1, mut m2) = (0.0f32, 0.0f32);
                for j in 0..n {
                    let gh = r[j] * g[j];
                    r[j] = gh;
                    m1 += gh;
                    m2 += gh * xh[j];
                }
                let (m1, m2) = (m1 / n as f32, m2 / n as f32);
                for j in 0..n {
                    r[j] = rstd[i] * (r[j] - m1 - xh[j] * m2);
                }
            };
            for_rows(&mut dx, n, body);
            accumulate(grads.get_or_alloc_mut(&x_id)?, &dx);
            let (mut dg, mut ds) = (vec![0.0f32; n], vec![0.0f32; n]);
            for (row, xh) in dy.chunks_exact(n).zip(xhat.chunks_exact(n)) {
                for j in 0..n {
                    dg[j] += row[j] * xh[j];
                    ds[j] += row[j];
                }
            }
            accumulate(grads.get_or_alloc_mut(&g_id)?, &dg);
            accumulate(grads.get_or_alloc_mut(&s_id)?, &ds);
            Ok(())
        });
        out.put_tape(tape)
    }

    fn scaled_masked_softmax<T: Tape<f32, Self>>(
        scores: Scores<Self, T>,
        scale: f32,
        key_bias: Option<&Tensor<(usize, usize), f32, Self>>,
    ) -> Scores<Self, T> {
        let (scores, mut tape) = scores.split_tape();
        let shape = *scores.shape();
        let (b, h, sq, sk) = shape;
        let bias = key_bias.map(host);
        let mut p = host(&scores);
        let rows_per_item = h * sq;
        for_rows(&mut p, sk, |i, r| {
            let item = i / rows_per_item;
            let kb = bias.as_ref().map(|v| &v[item * sk..(item + 1) * sk]);
            let mut max = f32::NEG_INFINITY;
            for j in 0..sk {
                r[j] = r[j] * scale + kb.map_or(0.0, |k| k[j]);
                max = max.max(r[j]);
            }
            let mut sum = 0.0;
            for v in r.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            let inv = 1.0 / sum;
            r.iter_mut().for_each(|v| *v *= inv);
        });
        let _ = b;
        if !T::OWNS_TAPE {
            // Inference: nothing to keep for a backward pass.
            return scores.device().tensor_from_vec(p, shape).put_tape(tape);
        }
        let out = scores.device().tensor_from_vec(p.clone(), shape);
        let (s_id, out_id) = (scores.clone(), out.clone());
        tape.add_backward_op(move |grads| {
            // d scores = scale · p ⊙ (dp − Σ p·dp), row by row.
            let mut ds = grads.get_or_alloc_mut(&out_id)?.to_vec();
            for_rows(&mut ds, sk, |i, r| {
                let pr = &p[i * sk..(i + 1) * sk];
                let dot: f32 = r.iter().zip(pr).map(|(d, q)| d * q).sum();
                for j in 0..sk {
                    r[j] = scale * pr[j] * (r[j] - dot);
                }
            });
            accumulate(grads.get_or_alloc_mut(&s_id)?, &ds);
            Ok(())
        });
        out.put_tape(tape)
    }
}

/// Normalises one row in place and returns 1/σ.
fn normalise_row(r: &mut [f32], eps: f32) -> f32 {
    let n = r.len() as f32;
    let mean = r.iter().sum::<f32>() / n;
    let var = r.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    r.iter_mut().for_each(|x| *x = (*x - mean) * rstd);
    rstd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_tensor(
        dev: &Cpu,
        shape: (usize, usize),
        seed: u64,
    ) -> Tensor<(usize, usize), f32, Cpu> {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        dev.tensor_from_vec(
            (0..shape.0 * shape.1)
                .map(|_| r.gen_range(-2.0..2.0))
                .collect(),
            shape,
        )
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn fused_layer_norm_and_bias_match_dfdx_forward_and_backward() {
        let dev = Cpu::default();
        let x = rand_tensor(&dev, (300, 64), 1);
        let g = rand_tensor(&dev, (1, 64), 2);
        let s = rand_tensor(&dev, (1, 64), 3);
        let w = rand_tensor(&dev, (300, 64), 4);
        // loss = Σ w ⊙ (LN(x) + s): exercises both ops' backward with a non-trivial upstream gradient.
        let fused =
            (Cpu::add_bias(Cpu::layer_norm(x.leaky_trace(), &g, &s, 1e-5), &s) * w.clone()).sum();
        let reference =
            (composed::add_bias(composed::layer_norm(x.leaky_trace(), &g, &s, 1e-5), &s) * w).sum();
        close(&[fused.array()], &[reference.array()]);
        let gf = fused.backward();
        let gr = reference.backward();
        for t in [&x, &g, &s] {
            close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
        }
    }

    #[test]
    fn fused_softmax_matches_dfdx_forward_and_backward() {
        let dev = Cpu::default();
        let shape = (2usize, 3usize, 5usize, 7usize);
        let flat = rand_tensor(&dev, (2 * 3 * 5, 7), 5);
        let scores = flat.clone().reshape_like(&shape);
        let w = rand_tensor(&dev, (2 * 3 * 5, 7), 6).reshape_like(&shape);
        let bias = dev.tensor_from_vec(
            vec![
                0.0, 0.0, 0.0, -1e9, 0.0, 0.0, 0.0, 0.0, -1e9, -1e9, 0.0, 0.0, 0.0, 0.0,
            ],
            (2usize, 7usize),
        );
        let fused =
            (Cpu::scaled_masked_softmax(scores.leaky_trace(), 0.3, Some(&bias)) * w.clone()).sum();
        let reference =
            (composed::scaled_masked_softmax(scores.leaky_trace(), 0.3, Some(&bias)) * w).sum();
        close(&[fused.array()], &[reference.array()]);
        close(
            &fused.backward().get(&scores).as_vec(),
            &reference.backward().get(&scores).as_vec(),
        );
    }

    #[test]
    fn fused_adam_matches_the_textbook_update() {
        let dev = Cpu::default();
        let (mut p, g, mut m, mut v) = (
            rand_tensor(&dev, (40, 30), 1),
            rand_tensor(&dev, (40, 30), 2),
            rand_tensor(&dev, (40, 30), 3),
            rand_tensor(&dev, (40, 30), 4),
        );
        let mut v_pos = dev.tensor_from_vec(v.as_vec().iter().map(|x| x.abs()).collect(), (40, 30));
        std::mem::swap(&mut v, &mut v_pos);
        let h = AdamStep {
            step: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            c2: 0.5,
            eps: 1e-8,
        };
        let (p0, g0, m0, v0) = (p.as_vec(), g.as_vec(), m.as_vec(), v.as_vec());
        Cpu::adam_update(&mut p, g, &mut m, &mut v, h);
        for i in 0..p0.len() {
            let mi = 0.9 * m0[i] + 0.1 * g0[i];
            let vi = 0.999 * v0[i] + 0.001 * g0[i] * g0[i];
            let pi = p0[i] - 0.01 * mi / ((vi / 0.5).sqrt() + 1e-8);
            close(
                &[p.as_vec()[i], m.as_vec()[i], v.as_vec()[i]],
                &[pi, mi, vi],
            );
        }
    }
}
