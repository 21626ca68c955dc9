//! The fused CPU kernels: dfdx's `Cpu` device as a [`Backend`].

mod attention;
mod heads;
mod host;
mod matmul;
mod rows;
#[cfg(test)]
mod tests;
mod tiled;

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{
    AdamStep, AttentionKernel, AttentionShape, Backend, Flat, Param, KEEP_WEIGHTS_MAX_BYTES,
};
use attention::cpu_attention;
pub use host::keep_freed_memory;
use host::*;
use matmul::*;
use rows::*;

impl Backend for Cpu {
    const FUSED_ATTENTION: bool = true;

    fn adam_update(
        param: &mut Param<Self>,
        grad: Param<Self>,
        m: &mut Param<Self>,
        v: &mut Param<Self>,
        h: AdamStep,
    ) {
        // One fused pass instead of ten element-wise tensor ops, each of which
        // would allocate a parameter-sized buffer.
        let g = host(&grad);
        let (p, mm, vv) = (host_mut(param), host_mut(m), host_mut(v));
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
    }

    fn linear<T: Tape<f32, Self>>(
        x: Flat<Self, T>,
        weight: &Param<Self>,
        bias: &Param<Self>,
    ) -> Flat<Self, T> {
        // One product that starts from the broadcast bias, instead of dfdx's
        // product (on its older gemm, without AVX-512) and a separate
        // addition; the backward pass accumulates straight into the
        // gradients.
        let (x, mut tape) = x.contiguous().split_tape();
        let ((rows, k), n) = (*x.shape(), weight.shape().1);
        // As in attention: the products index raw pointers with these sizes.
        assert!(
            weight.shape().0 == k && *bias.shape() == (1, n),
            "linear layer shapes do not match"
        );
        let (xh, wh) = (host(&x), host(weight));
        let mut out = par_repeat(&host(bias), rows);
        let par = parallelism(rows * n * k);
        // SAFETY (all products here): every pointer covers the row-major
        // matrix its shape and strides describe.
        unsafe {
            product_par(
                (rows, n, k),
                (out.as_mut_ptr(), n, 1),
                true,
                (xh.as_ptr(), k, 1),
                (wh.as_ptr(), n, 1),
                1.0,
                par,
            )
        };
        let out = x.device().tensor_from_vec(out, (rows, n));
        if !T::OWNS_TAPE {
            return out.put_tape(tape);
        }
        // Ghosts: the backward pass reads the inputs through their views,
        // and needs only the tensors' identities to find their gradients.
        let (x_id, w_id, b_id, out_id) = (x.ghost(), weight.ghost(), bias.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            with_output_gradient(
                grads,
                |g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v),
                out_id.shape().num_elements(),
                |grads, dy| {
                    let dx = grads.get_or_alloc_mut(&x_id)?;
                    // dx += dy · weightᵀ
                    unsafe {
                        product_par(
                            (rows, k, n),
                            (dx.as_mut_ptr(), k, 1),
                            true,
                            (dy.as_ptr(), n, 1),
                            (wh.as_ptr(), 1, n),
                            1.0,
                            par,
                        )
                    };
                    let dw = grads.get_or_alloc_mut(&w_id)?;
                    // dweight += xᵀ · dy
                    unsafe {
                        product_par(
                            (k, n, rows),
                            (dw.as_mut_ptr(), n, 1),
                            true,
                            (xh.as_ptr(), 1, k),
                            (dy.as_ptr(), n, 1),
                            1.0,
                            par,
                        )
                    };
                    let (db, _) = column_sums(dy, None, n);
                    accumulate(grads.get_or_alloc_mut(&b_id)?, &db);
                    Ok(())
                },
            )
        });
        out.put_tape(tape)
    }

    fn add<T: Tape<f32, Self>>(a: Flat<Self, T>, b: Flat<Self, T>) -> Flat<Self, T> {
        // dfdx's addition runs on the calling thread, forward and backward,
        // while the other threads wait; here both directions are parallel.
        let (a, ta) = a.contiguous().split_tape();
        let (b, tb) = b.contiguous().split_tape();
        let mut tape = ta.merge(tb);
        let shape = *a.shape();
        assert_eq!(shape, *b.shape(), "adding tensors of different shapes");
        let sum = par_map2(&host(&a), &host(&b), |x, y| x + y);
        let out = a.device().tensor_from_vec(sum, shape);
        if T::OWNS_TAPE {
            let (a_id, b_id, out_id) = (a.ghost(), b.ghost(), out.ghost());
            tape.add_backward_op(move |grads| {
                with_output_gradient(
                    grads,
                    |g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v),
                    out_id.shape().num_elements(),
                    |grads, dy| {
                        accumulate(grads.get_or_alloc_mut(&a_id)?, dy);
                        accumulate(grads.get_or_alloc_mut(&b_id)?, dy);
                        Ok(())
                    },
                )
            });
        }
        out.put_tape(tape)
    }

    fn dropout<T: Tape<f32, Self>>(x: Flat<Self, T>, rate: f32, seed: u64) -> Flat<Self, T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let shape = *x.shape();
        let mut out = par_copy(&host(&x));
        dropout_pass(&mut out, None, seed, rate);
        let out = x.device().tensor_from_vec(out, shape);
        if T::OWNS_TAPE {
            // Ghosts: the backward pass needs the tensors' identities, not their data.
            let (x_id, out_id) = (x.ghost(), out.ghost());
            tape.add_backward_op(move |grads| {
                with_output_gradient(
                    grads,
                    |g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v),
                    out_id.shape().num_elements(),
                    |grads, dy| {
                        dropout_pass(grads.get_or_alloc_mut(&x_id)?, Some(dy), seed, rate);
                        Ok(())
                    },
                )
            });
        }
        out.put_tape(tape)
    }

    fn layer_norm<T: Tape<f32, Self>>(
        x: Flat<Self, T>,
        gain: &Param<Self>,
        shift: &Param<Self>,
        eps: f32,
    ) -> Flat<Self, T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let (rows, n) = *x.shape();
        let (g, s) = (host(gain), host(shift));
        let mut xhat = par_copy(&host(&x));
        if !T::OWNS_TAPE {
            for_rows(&mut xhat, n, |_, r| {
                normalise_row(r, Some((&g, &s)), eps);
            });
            return x.device().tensor_from_vec(xhat, (rows, n)).put_tape(tape);
        }
        // Training keeps the normalised rows x̂ and 1/σ per row for the backward pass.
        let rstd: Vec<f32> = if xhat.len() >= PARALLEL_MIN {
            xhat.par_chunks_mut(n)
                .map(|r| normalise_row(r, None, eps))
                .collect()
        } else {
            xhat.chunks_mut(n)
                .map(|r| normalise_row(r, None, eps))
                .collect()
        };
        let mut out = par_copy(&xhat);
        scale_shift_rows(&mut out, &g, &s);
        let out = x.device().tensor_from_vec(out, (rows, n));
        let (x_id, g_id, s_id, out_id) = (x.ghost(), gain.ghost(), shift.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            with_output_gradient(
                grads,
                |g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v),
                out_id.shape().num_elements(),
                |grads, dy| {
                    // dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·gain.
                    let g: &[f32] = &g; // borrowed once, not per element
                    let mut dx = par_copy(dy);
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
                    let (ds, dg) = column_sums(dy, Some(&xhat), n);
                    accumulate(grads.get_or_alloc_mut(&g_id)?, &dg);
                    accumulate(grads.get_or_alloc_mut(&s_id)?, &ds);
                    Ok(())
                },
            )
        });
        out.put_tape(tape)
    }

    fn attention<T: Tape<f32, Self>>(
        q: Flat<Self, T>,
        k: Flat<Self, T>,
        v: Flat<Self, T>,
        s: AttentionShape,
        key_bias: Option<&Tensor<(usize, usize), f32, Self>>,
    ) -> Flat<Self, T> {
        let keep_max_bytes = match super::attention_kernel() {
            AttentionKernel::Auto => KEEP_WEIGHTS_MAX_BYTES,
            AttentionKernel::KeepWeights => usize::MAX,
            AttentionKernel::Tiled => 0,
            AttentionKernel::Reference => {
                return super::reference::attention(q, k, v, s, key_bias);
            }
        };
        cpu_attention(q, k, v, s, key_bias, keep_max_bytes)
    }
}
