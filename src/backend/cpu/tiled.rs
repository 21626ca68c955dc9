//! Tiled attention for long sets, after FlashAttention-2: no `|Q| × |S|`
//! matrix is ever held. The forward pass walks each tile of query rows over
//! the keys a tile at a time with an online softmax, and keeps one number per
//! query row, the log-sum-exp of its scores. The backward pass recomputes
//! each tile's weights from it. Work splits over (item, head, query tile)
//! forward and (item, head) backward, where each task owns its slices of
//! the key and value gradients.

use rayon::prelude::*;

use super::heads::HeadDims;
use super::host::par_zeros;
use super::matmul::{product, SharedMut};
use super::rows::*;

/// Query rows per tile.
pub(super) const QUERY_TILE: usize = 128;
/// Keys per tile. With [`QUERY_TILE`] rows, a tile of scores and one of
/// their gradients take 128 KiB each, so the backward pass's working set
/// stays in a core's L2 cache (the book's performance chapter has the
/// tile sizes tried).
pub(super) const KEY_TILE: usize = 256;

/// Row ranges of `len` rows in tiles of `tile`.
fn tiles(len: usize, tile: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len).step_by(tile).map(move |r| r..(r + tile).min(len))
}

/// The inputs of one attention call, as host slices in the layout of
/// [`crate::Backend::attention`], and what the kernel needs to read them.
#[derive(Clone, Copy)]
pub(super) struct Inputs<'a> {
    pub(super) batch: usize,
    pub(super) dims: HeadDims,
    pub(super) scale: f32,
    pub(super) q: &'a [f32],
    pub(super) k: &'a [f32],
    pub(super) v: &'a [f32],
    /// `batch × keys`: 0 for real keys, a large negative number for padding.
    pub(super) key_bias: Option<&'a [f32]>,
}

impl Inputs<'_> {
    fn bias(&self, task: usize, keys: &std::ops::Range<usize>) -> Option<&[f32]> {
        let (i, sk) = (task / self.dims.h, self.dims.sk);
        self.key_bias
            .map(|b| &b[i * sk + keys.start..i * sk + keys.end])
    }

    /// `s (rows × keys) = scale · q_rows k_keysᵀ` for task `task`.
    fn scores(
        &self,
        task: usize,
        rows: &std::ops::Range<usize>,
        keys: &std::ops::Range<usize>,
        s: &mut [f32],
    ) {
        let HeadDims { h, dk, .. } = self.dims;
        let (oq, ok, _, _) = self.dims.offsets(task);
        let qw = h * dk;
        let nk = keys.len();
        // SAFETY: q and k hold whole (rows × h·dk) matrices; the offsets stay
        // inside this task's item and head; `s` has room for the tile.
        unsafe {
            product(
                (rows.len(), nk, dk),
                (s.as_mut_ptr(), nk, 1),
                false,
                (self.q.as_ptr().add(oq + rows.start * qw), qw, 1),
                (self.k.as_ptr().add(ok + keys.start * qw), 1, qw),
                self.scale,
            )
        }
    }
}

/// The attention output (`batch·queries × heads·dv`) and, when `lse` is
/// given (`batch·heads·queries`), each query row's log-sum-exp of scores.
pub(super) fn forward(x: Inputs<'_>, out: &mut [f32], lse: Option<&mut [f32]>) {
    let HeadDims { h, sq, sk, dv, .. } = x.dims;
    let vw = h * dv;
    let row_tiles = sq.div_ceil(QUERY_TILE);
    let out_ptr = SharedMut(out.as_mut_ptr());
    let lse_ptr = lse.map(|l| SharedMut(l.as_mut_ptr()));
    let scratch = || {
        let s = vec![0.0f32; QUERY_TILE * KEY_TILE];
        let acc = vec![0.0f32; QUERY_TILE * dv];
        (s, acc, vec![0.0f32; QUERY_TILE], vec![0.0f32; QUERY_TILE])
    };
    let body = |(s, acc, max, sum): &mut (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>), t: usize| {
        let (task, tile) = (t / row_tiles, t % row_tiles);
        let rows = tile * QUERY_TILE..((tile + 1) * QUERY_TILE).min(sq);
        let n = rows.len();
        let (_, _, ov, oo) = x.dims.offsets(task);
        let (acc, max, sum) = (&mut acc[..n * dv], &mut max[..n], &mut sum[..n]);
        acc.fill(0.0);
        max.fill(f32::NEG_INFINITY);
        sum.fill(0.0);
        for keys in tiles(sk, KEY_TILE) {
            let s = &mut s[..n * keys.len()];
            x.scores(task, &rows, &keys, s);
            online_softmax_tile(s, keys.len(), x.bias(task, &keys), (max, sum), acc, dv);
            // acc += p v_keys
            // SAFETY: v holds whole (rows × h·dv) matrices; the offset stays
            // inside this task's item and head.
            unsafe {
                product(
                    (n, dv, keys.len()),
                    (acc.as_mut_ptr(), dv, 1),
                    true,
                    (s.as_ptr(), keys.len(), 1),
                    (x.v.as_ptr().add(ov + keys.start * vw), vw, 1),
                    1.0,
                )
            };
        }
        for (r, (a, (&m, &l))) in acc
            .chunks_exact(dv)
            .zip(max.iter().zip(sum.iter()))
            .enumerate()
        {
            // No keys (sk = 0): no weights, the output is 0.
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            // SAFETY: task (item, head, tile) alone writes these rows of this
            // head's columns of `out`, and these rows of its `lse`.
            unsafe {
                let o = out_ptr.at(oo + (rows.start + r) * vw);
                for (c, &a) in a.iter().enumerate() {
                    *o.add(c) = a * inv;
                }
                if let Some(lse) = lse_ptr {
                    *lse.at(task * sq + rows.start + r) = if l > 0.0 { m + l.ln() } else { 0.0 };
                }
            }
        }
    };
    let tasks = x.batch * h * row_tiles;
    (0..tasks).into_par_iter().for_each_init(scratch, body);
}

/// Gradients of the inputs `(dq, dk, dv)` from the output gradient `dout`,
/// the forward pass's output `out` and log-sum-exps `lse`.
pub(super) fn backward(x: Inputs<'_>, out: &[f32], lse: &[f32], dout: &[f32]) -> [Vec<f32>; 3] {
    let HeadDims { h, sq, sk, dk, dv } = x.dims;
    let (qw, vw) = (h * dk, h * dv);
    let (mut dq, mut dkk, mut dvv) = (
        par_zeros(x.q.len()),
        par_zeros(x.k.len()),
        par_zeros(x.v.len()),
    );
    let grads = (
        SharedMut(dq.as_mut_ptr()),
        SharedMut(dkk.as_mut_ptr()),
        SharedMut(dvv.as_mut_ptr()),
    );
    let scratch = || {
        let tile = vec![0.0f32; QUERY_TILE * KEY_TILE];
        (tile.clone(), tile)
    };
    let body = |(p, ds): &mut (Vec<f32>, Vec<f32>), task: usize| {
        let (oq, ok, ov, oo) = x.dims.offsets(task);
        // Σ p·dp of each query row equals Σ dout·out (FlashAttention-2).
        let dots = row_dots(&dout[oo..], &out[oo..], sq, dv, vw);
        let lse = &lse[task * sq..(task + 1) * sq];
        for keys in tiles(sk, KEY_TILE) {
            let nk = keys.len();
            let bias = x.bias(task, &keys);
            for rows in tiles(sq, QUERY_TILE) {
                let n = rows.len();
                let (p, ds) = (&mut p[..n * nk], &mut ds[..n * nk]);
                x.scores(task, &rows, &keys, p);
                weights_from_lse(p, nk, bias, &lse[rows.clone()]);
                let first_rows = rows.start == 0;
                // SAFETY: the inputs hold whole matrices and the offsets stay
                // inside this task's item and head; task (item, head) alone
                // writes its item's rows of its head's columns of dq, dk, dv.
                unsafe {
                    let dout_rows = (dout.as_ptr().add(oo + rows.start * vw), vw, 1);
                    let q_rows = (x.q.as_ptr().add(oq + rows.start * qw), qw, 1);
                    let k_rows = (x.k.as_ptr().add(ok + keys.start * qw), qw, 1);
                    let v_t = (x.v.as_ptr().add(ov + keys.start * vw), 1, vw);
                    // dv_keys += pᵀ dout
                    let dv_keys = (grads.2.at(ov + keys.start * vw), vw, 1);
                    let p_t = (p.as_ptr(), 1, nk);
                    product((nk, dv, n), dv_keys, !first_rows, p_t, dout_rows, 1.0);
                    // dp = dout vᵀ, then ds = scale · p ⊙ (dp − dot)
                    product(
                        (n, nk, dv),
                        (ds.as_mut_ptr(), nk, 1),
                        false,
                        dout_rows,
                        v_t,
                        1.0,
                    );
                    softmax_backward_tile(ds, p, nk, &dots[rows.clone()], x.scale);
                    // dq_rows += ds k_keys; dk_keys += dsᵀ q_rows
                    let dq_rows = (grads.0.at(oq + rows.start * qw), qw, 1);
                    let ds_rows = (ds.as_ptr(), nk, 1);
                    product((n, dk, nk), dq_rows, keys.start > 0, ds_rows, k_rows, 1.0);
                    let dk_keys = (grads.1.at(ok + keys.start * qw), qw, 1);
                    let ds_t = (ds.as_ptr(), 1, nk);
                    product((nk, dk, n), dk_keys, !first_rows, ds_t, q_rows, 1.0);
                }
            }
        }
    };
    (0..x.batch * h)
        .into_par_iter()
        .for_each_init(scratch, body);
    [dq, dkk, dvv]
}
