//! Fused multi-head attention on the CPU. Training over small sets keeps
//! the attention weights for the backward pass, which then needs no second
//! score product: one rayon task per (item, head), reading its head's
//! columns in place, in cache-sized chunks of query rows. Larger sets go to
//! the [`tiled`] kernel, whose memory is linear in the set sizes.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::heads::HeadDims;
use super::host::*;
use super::matmul::*;
use super::rows::*;
use super::tiled;
use crate::backend::{AttentionShape, Flat};

/// [`Backend::attention`] on the CPU: tiled when the attention weights
/// would take more than `keep_max_bytes`; otherwise by whole rows of
/// weights, kept for the backward pass in training.
pub(super) fn cpu_attention<T: Tape<f32, Cpu>>(
    q: Flat<Cpu, T>,
    k: Flat<Cpu, T>,
    v: Flat<Cpu, T>,
    s: AttentionShape,
    key_bias: Option<&Tensor<(usize, usize), f32, Cpu>>,
    keep_max_bytes: usize,
) -> Flat<Cpu, T> {
    // dfdx would permute q, k and v into head-major copies, then run one
    // small matrix product per (item, head) in sequence, each split over
    // all threads. Here each (item, head) is one task on rayon, reading
    // its head's columns in place through strides, with the softmax and
    // both products done while its scores are in cache.
    let (q, tq) = q.contiguous().split_tape();
    let (k, tk) = k.contiguous().split_tape();
    let (v, tv) = v.contiguous().split_tape();
    let mut tape = tq.merge(tk).merge(tv);
    let (b, h, sq, sk) = (s.batch, s.heads, s.queries, s.keys);
    // The kernels below index raw pointers with these sizes: a mismatch is a
    // bug in the caller, and must stop here rather than read out of bounds.
    assert!(h > 0, "attention with no heads");
    let (dk, dv) = (q.shape().1 / h, v.shape().1 / h);
    assert!(
        *q.shape() == (b * sq, h * dk)
            && *k.shape() == (b * sk, h * dk)
            && *v.shape() == (b * sk, h * dv)
            && key_bias.map_or(true, |kb| *kb.shape() == (b, sk)),
        "attention shapes do not match {s:?}"
    );
    let dims = HeadDims { h, sq, sk, dk, dv };
    let (qh, kh, vh) = (host(&q), host(&k), host(&v));
    let bias = key_bias.map(host);
    let block = sq * sk;
    if b * h * block * 4 > keep_max_bytes {
        return tiled_attention(q, k, v, s, bias, tape, dims);
    }
    // Small sets: the weights are kept for the backward pass, which then
    // needs no second score product.
    let mut out = par_zeros(b * sq * h * dv);
    let out_ptr = SharedMut(out.as_mut_ptr());
    let forward = |task: usize, p: &mut [f32]| {
        let i = task / h;
        let kb = bias.as_ref().map(|v| &v[i * sk..(i + 1) * sk]);
        // SAFETY: task (i, j) writes only rows i·sq.. and columns j·dv.. of `out`.
        unsafe { dims.forward(task, &qh, &kh, &vh, s.scale, kb, p, out_ptr.at(0)) };
    };
    if !T::OWNS_TAPE {
        // Inference keeps nothing: each task reuses one chunk of scratch per
        // thread. (Exact sampling's sets are small, and whole rows of
        // weights measured a little faster there than tiles.)
        (0..b * h).into_par_iter().for_each_init(
            || vec![0.0f32; dims.chunk_rows() * sk],
            |p, task| forward(task, p),
        );
        let out = q.device().tensor_from_vec(out, (b * sq, h * dv));
        return out.put_tape(tape);
    }
    // Each task zeroes and fills its own block.
    let kept = par_build(b * h * block, block, |at, p| forward(at / block.max(1), p));
    let out = q.device().tensor_from_vec(out, (b * sq, h * dv));
    add_backward(&mut tape, [&q, &k, &v], &out, move |dout| {
        let (mut dq, mut dkk, mut dvv) = (
            par_zeros(qh.len()),
            par_zeros(kh.len()),
            par_zeros(vh.len()),
        );
        let ptrs = (
            SharedMut(dq.as_mut_ptr()),
            SharedMut(dkk.as_mut_ptr()),
            SharedMut(dvv.as_mut_ptr()),
        );
        let chunk = dims.chunk_rows() * sk;
        (0..b * h).into_par_iter().for_each_init(
            || vec![0.0f32; chunk],
            |ds, task| {
                let kept = &kept[task * block..(task + 1) * block];
                let inputs = (&qh[..], &kh[..], &vh[..], dout);
                // SAFETY: task (i, j) writes only its own item's rows and
                // head's columns of dq, dk and dv.
                unsafe { dims.backward(task, inputs, s.scale, kept, ds, ptrs) };
            },
        );
        [dq, dkk, dvv]
    });
    out.put_tape(tape)
}

/// Attention for large sets, and for inference: the [`tiled`] kernel, which
/// keeps one log-sum-exp per query row for the backward pass instead of the
/// weights.
fn tiled_attention<T: Tape<f32, Cpu>>(
    q: Tensor<(usize, usize), f32, Cpu>,
    k: Tensor<(usize, usize), f32, Cpu>,
    v: Tensor<(usize, usize), f32, Cpu>,
    s: AttentionShape,
    bias: Option<HostView<(usize, usize)>>,
    mut tape: T,
    dims: HeadDims,
) -> Flat<Cpu, T> {
    let (b, h, sq) = (s.batch, s.heads, s.queries);
    let held = Held {
        batch: b,
        dims,
        scale: s.scale,
        q: host(&q),
        k: host(&k),
        v: host(&v),
        bias,
    };
    let mut out = par_zeros(b * sq * h * dims.dv);
    let mut lse = vec![0.0f32; if T::OWNS_TAPE { b * h * sq } else { 0 }];
    let lse_out = T::OWNS_TAPE.then_some(&mut lse[..]);
    tiled::forward(held.inputs(), &mut out, lse_out);
    let out = q.device().tensor_from_vec(out, (b * sq, h * dims.dv));
    if !T::OWNS_TAPE {
        return out.put_tape(tape);
    }
    let out_h = host(&out);
    add_backward(&mut tape, [&q, &k, &v], &out, move |dout| {
        tiled::backward(held.inputs(), &out_h, &lse, dout)
    });
    out.put_tape(tape)
}

/// Attention works through each task's query rows in chunks whose scores
/// take about this many floats (128 KiB), so they stay in the core's cache
/// however many keys there are.
pub(super) const CHUNK_FLOATS: usize = 32 << 10;

impl HeadDims {
    /// Query rows per chunk (see [`CHUNK_FLOATS`]).
    fn chunk_rows(&self) -> usize {
        (CHUNK_FLOATS / self.sk.max(1)).max(8).min(self.sq.max(1))
    }

    /// The query-row ranges of one task, chunk by chunk.
    pub(super) fn chunks(&self) -> impl Iterator<Item = std::ops::Range<usize>> {
        let (sq, step) = (self.sq, self.chunk_rows());
        (0..sq).step_by(step).map(move |r| r..(r + step).min(sq))
    }

    /// Attention weights of task `(i, j)`'s query rows `rows`,
    /// `softmax(scale · q kᵀ + key_bias)`, into `p` (`rows.len() × sk`).
    /// Deterministic, so the backward pass may recompute them instead of
    /// keeping them.
    #[allow(clippy::too_many_arguments)]
    fn probabilities(
        &self,
        task: usize,
        rows: std::ops::Range<usize>,
        q: &[f32],
        k: &[f32],
        scale: f32,
        key_bias: Option<&[f32]>,
        p: &mut [f32],
    ) {
        let Self { h, sk, dk, .. } = *self;
        let (oq, ok, _, _) = self.offsets(task);
        let qw = h * dk;
        // Scores: p = scale · q kᵀ (kᵀ read through swapped strides).
        // SAFETY: q and k hold whole (rows × h·dk) matrices; the offsets stay
        // inside this task's item and head.
        unsafe {
            product(
                (rows.len(), sk, dk),
                (p.as_mut_ptr(), sk, 1),
                false,
                (q.as_ptr().add(oq + rows.start * qw), qw, 1),
                (k.as_ptr().add(ok), 1, qw),
                scale,
            )
        };
        softmax_rows(p, sk, key_bias);
    }

    /// Task `(i, j)`'s output block, `p v`, into `out`, chunk by chunk. `p`
    /// is either the whole `sq × sk` block (the weights are written there,
    /// to keep) or scratch for one chunk.
    ///
    /// # Safety
    /// `out` must point to the whole output; no other task may write this
    /// task's block of it at the same time.
    #[allow(clippy::too_many_arguments)]
    unsafe fn forward(
        &self,
        task: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        scale: f32,
        key_bias: Option<&[f32]>,
        p: &mut [f32],
        out: *mut f32,
    ) {
        let Self { h, sq, sk, dv, .. } = *self;
        let (_, _, ov, oo) = self.offsets(task);
        let vw = h * dv;
        let whole = p.len() >= sq * sk;
        for rows in self.chunks() {
            let n = rows.len();
            let pc = if whole {
                &mut p[rows.start * sk..rows.end * sk]
            } else {
                &mut p[..n * sk]
            };
            self.probabilities(task, rows.clone(), q, k, scale, key_bias, pc);
            product(
                (n, dv, sk),
                (out.add(oo + rows.start * vw), vw, 1),
                false,
                (pc.as_ptr(), sk, 1),
                (v.as_ptr().add(ov), vw, 1),
                1.0,
            );
        }
    }

    /// Task `(i, j)`'s gradients, written into its blocks of `grads` =
    /// (dq, dk, dv), given the output gradient `dout` and the kept weights
    /// (the whole `sq × sk` block), chunk by chunk; `ds` is scratch for one
    /// chunk.
    ///
    /// # Safety
    /// The pointers must cover whole `q`-, `k`- and `v`-shaped buffers; no
    /// other task may write this task's blocks at the same time.
    unsafe fn backward(
        &self,
        task: usize,
        (q, k, v, dout): (&[f32], &[f32], &[f32], &[f32]),
        scale: f32,
        kept: &[f32],
        ds: &mut [f32],
        grads: (SharedMut, SharedMut, SharedMut),
    ) {
        let Self { h, sk, dk, dv, .. } = *self;
        let (oq, ok, ov, oo) = self.offsets(task);
        let (qw, vw) = (h * dk, h * dv);
        for rows in self.chunks() {
            let n = rows.len();
            let pc = &kept[rows.start * sk..rows.end * sk];
            let ds = &mut ds[..n * sk];
            let dout = (dout.as_ptr().add(oo + rows.start * vw), vw, 1);
            let q_rows = (q.as_ptr().add(oq + rows.start * qw), qw, 1);
            // dp = dout vᵀ
            let vt = (v.as_ptr().add(ov), 1, vw);
            product((n, sk, dv), (ds.as_mut_ptr(), sk, 1), false, dout, vt, 1.0);
            softmax_backward_rows(ds, pc, sk, scale);
            // dq = ds k for these rows; dk += dsᵀ q and dv += pᵀ dout, summed
            // over the chunks (the first chunk overwrites).
            let first = rows.start == 0;
            let ds_rows = (ds.as_ptr(), sk, 1);
            let dq = (grads.0.at(oq + rows.start * qw), qw, 1);
            product(
                (n, dk, sk),
                dq,
                false,
                ds_rows,
                (k.as_ptr().add(ok), qw, 1),
                1.0,
            );
            let (ds_t, p_t) = ((ds.as_ptr(), 1, sk), (pc.as_ptr(), 1, sk));
            product(
                (sk, dk, n),
                (grads.1.at(ok), qw, 1),
                !first,
                ds_t,
                q_rows,
                1.0,
            );
            product((sk, dv, n), (grads.2.at(ov), vw, 1), !first, p_t, dout, 1.0);
        }
    }
}

/// Registers an attention call's backward pass: `gradients(dout)` gives
/// the gradients of `inputs` (q, k, v) from the gradient of `out`.
fn add_backward<T: Tape<f32, Cpu>>(
    tape: &mut T,
    inputs: [&Tensor<(usize, usize), f32, Cpu>; 3],
    out: &Tensor<(usize, usize), f32, Cpu>,
    gradients: impl FnOnce(&[f32]) -> [Vec<f32>; 3] + 'static,
) {
    let ids = inputs.map(|t| t.ghost());
    let out_id = out.ghost();
    tape.add_backward_op(move |grads| {
        with_output_gradient(
            grads,
            |g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v),
            out_id.shape().num_elements(),
            |grads, dout| {
                for (id, g) in ids.iter().zip(gradients(dout)) {
                    accumulate(grads.get_or_alloc_mut(id)?, &g);
                }
                Ok(())
            },
        )
    });
}

/// What the tiled kernel reads, held by its backward pass.
struct Held {
    batch: usize,
    dims: HeadDims,
    scale: f32,
    q: HostView<(usize, usize)>,
    k: HostView<(usize, usize)>,
    v: HostView<(usize, usize)>,
    bias: Option<HostView<(usize, usize)>>,
}

impl Held {
    fn inputs(&self) -> tiled::Inputs<'_> {
        tiled::Inputs {
            batch: self.batch,
            dims: self.dims,
            scale: self.scale,
            q: &self.q,
            k: &self.k,
            v: &self.v,
            key_bias: self.bias.as_deref(),
        }
    }
}
