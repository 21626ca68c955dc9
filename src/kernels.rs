//! Fused kernels for the model's hot spots, and the [`Backend`] trait that picks them.
//!
//! dfdx builds layer norm, softmax and bias addition out of generic
//! broadcasting element-wise ops, each a separate pass over memory, and runs
//! multi-head attention as permuted copies plus one small matrix product per
//! (item, head), one after the other. On the CPU the model's operations are
//! therefore custom ops here:
//!
//! - [`Backend::linear`]: one product from the broadcast bias;
//! - [`Backend::attention`]: one rayon task per (item, head), reading its
//!   head's columns in place, in cache-sized chunks of query rows, keeping
//!   its weights for the backward pass only while they are small;
//! - [`Backend::layer_norm`], [`Backend::adam_update`]: one pass each, rows
//!   in parallel;
//! - [`Backend::dropout`]: one pass each way; the mask is a hash of the
//!   element's index, recomputed in the backward pass instead of stored;
//! - [`Backend::add`] (the residual connections): in parallel, where dfdx's
//!   runs on one thread.
//!
//! The products use the `gemm` crate's AVX-512 kernels (chosen at run time);
//! the softmax loops are compiled for AVX-512 or AVX2 when the CPU has them.
//! The ops plug into dfdx's tape through its public `Tape::add_backward_op`
//! and `Gradients::get_or_alloc_mut`, so gradients flow exactly as for
//! built-in ops.
//!
//! Other devices (CUDA) use the default methods, composed from dfdx ops; the
//! unit tests check the fused CPU kernels against those compositions, forward
//! and backward.

use std::mem::MaybeUninit;

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

/// Attention keeps its weights for the backward pass up to this size (per
/// call, all items and heads); above it, the backward pass recomputes them.
/// 64 MiB keeps them for the benchmark configurations up to `|S|` = 512.
pub const KEEP_WEIGHTS_MAX_BYTES: usize = 64 << 20;

/// Rows at or above this many elements are processed in parallel.
const PARALLEL_MIN: usize = 1 << 16;

/// A dfdx device plus the model's fused operations. The defaults are the
/// [`composed`] versions and work on any device.
pub trait Backend: Device<f32> {
    /// Whether [`Backend::attention`] is fused: it keeps at most
    /// [`KEEP_WEIGHTS_MAX_BYTES`] of attention weights per call, instead of
    /// every `batch × heads × queries × keys` score, weight and gradient.
    /// The memory estimate of [`crate::limits`] depends on it.
    const FUSED_ATTENTION: bool = false;

    /// `x · weight + bias`: a `rows × k` input times a `k × n` weight, plus a
    /// `1 × n` bias broadcast over rows.
    fn linear<T: Tape<f32, Self>>(
        x: Flat<Self, T>,
        weight: &Param<Self>,
        bias: &Param<Self>,
    ) -> Flat<Self, T> {
        composed::linear(x, weight, bias)
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

    /// `a + b` for two tensors of one shape: the residual connections.
    fn add<T: Tape<f32, Self>>(a: Flat<Self, T>, b: Flat<Self, T>) -> Flat<Self, T> {
        a + b
    }

    /// Dropout: each number of `x` is zeroed where [`dropout_keeps`] says no
    /// (with probability `rate`, which must be in `[0, 1)`: the model checks
    /// it, see [`crate::Dropout::validate_rate`]), the rest are divided by `1 − rate`.
    fn dropout<T: Tape<f32, Self>>(x: Flat<Self, T>, rate: f32, seed: u64) -> Flat<Self, T> {
        composed::dropout(x, rate, seed)
    }

    /// Multi-head attention: for each item `i` and head `j`,
    /// `softmax(scale · q_ij k_ijᵀ + key_bias_i) v_ij`. The inputs are the
    /// projections' row-major outputs, heads side by side: `q` is
    /// `(batch · queries) × (heads · dk)`, `k` is `(batch · keys) × (heads · dk)`,
    /// `v` is `(batch · keys) × (heads · dv)`, and so is the result
    /// `(batch · queries) × (heads · dv)`. `key_bias` is `batch × keys`
    /// (0 for real keys, a large negative number for padding).
    fn attention<T: Tape<f32, Self>>(
        q: Flat<Self, T>,
        k: Flat<Self, T>,
        v: Flat<Self, T>,
        shape: AttentionShape,
        key_bias: Option<&Tensor<(usize, usize), f32, Self>>,
    ) -> Flat<Self, T> {
        composed::attention(q, k, v, shape, key_bias)
    }
}

/// Whether dropout keeps element `index` of a tensor: a pure function of
/// `(seed, index)`, so the backward pass recomputes the mask instead of
/// storing it, and every device draws the same mask. Two rounds of
/// MurmurHash3's 32-bit finaliser (32-bit arithmetic vectorises on every x86
/// CPU); `rate` is compared in units of 2⁻³².
#[inline]
pub fn dropout_keeps(seed: u64, index: usize, rate: f32) -> bool {
    dropout_hash(seed, index) >= dropout_threshold(rate)
}

#[inline(always)]
fn dropout_hash(seed: u64, index: usize) -> u32 {
    #[inline(always)]
    fn mix(mut h: u32) -> u32 {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
    // The index's high half (0 below 2³² elements) is mixed in too, so
    // larger tensors do not repeat their mask.
    let high = ((index as u64 >> 32) as u32).wrapping_mul(0x9e37_79b9);
    mix(mix((index as u32) ^ seed as u32) ^ (seed >> 32) as u32 ^ high)
}

/// `rate · 2³²`, below 2³² for any rate below 1.
fn dropout_threshold(rate: f32) -> u32 {
    (f64::from(rate) * 4_294_967_296.0).min(f64::from(u32::MAX)) as u32
}

/// The sizes of one [`Backend::attention`] call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionShape {
    /// Items (signals) in the batch.
    pub batch: usize,
    /// Attention heads.
    pub heads: usize,
    /// Query rows per item.
    pub queries: usize,
    /// Key (and value) rows per item.
    pub keys: usize,
    /// Factor applied to the scores before the key bias and softmax.
    pub scale: f32,
}

/// The [`Backend`] operations composed from dfdx's generic ops: what devices
/// without fused kernels run (CUDA), and the reference the fused CPU kernels
/// are tested against.
pub mod composed {
    use super::{AdamStep, AttentionShape, Flat, Scores};
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
    pub fn dropout<D: Device<f32>, T: Tape<f32, D>>(
        x: Flat<D, T>,
        rate: f32,
        seed: u64,
    ) -> Flat<D, T> {
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
}

#[cfg(feature = "cuda")]
impl Backend for Cuda {}

/// A CPU tensor's elements, read in place: a clone of the tensor (its
/// storage is reference-counted, so no element is copied) that lends them
/// as a slice. A backward pass that keeps one keeps the forward pass's
/// memory alive, no more.
struct HostView<S: Shape>(Tensor<S, f32, Cpu>);

impl<S: Shape> std::ops::Deref for HostView<S> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.0
            .contiguous_slice()
            .expect("host() lends only dense tensors")
    }
}

/// Lends a tensor's elements in row-major order, copying them only when
/// its layout is not contiguous (broadcast or permuted). dfdx 0.13 lends no
/// slice of a tensor; the project's copy of it adds `contiguous_slice`
/// (vendor/README.md).
///
/// A kernel's gradient for an input is written in row-major order, which is
/// the layout of the input's own gradient buffer only if the input is
/// contiguous: so the kernels make their taped inputs contiguous *on the
/// tape* first (`x.contiguous()`, free when it already is), and dfdx maps
/// the gradient back to the original layout. Here, the copy only matters
/// for parameters and inputs without a gradient.
fn host<S: Shape>(t: &Tensor<S, f32, Cpu>) -> HostView<S> {
    if t.contiguous_slice().is_some() {
        HostView(t.clone())
    } else {
        // `as_vec` reads in logical (row-major) order whatever the strides.
        HostView(t.device().tensor_from_vec(t.as_vec(), *t.shape()))
    }
}

/// A tensor's elements to update in place (copied first only if its
/// storage is shared or not contiguous).
fn host_mut<S: Shape>(t: &mut Tensor<S, f32, Cpu>) -> &mut [f32] {
    if t.contiguous_slice().is_none() {
        *t = t.device().tensor_from_vec(t.as_vec(), *t.shape());
    }
    t.contiguous_slice_mut()
        .expect("a dense tensor lends its elements")
}

/// Elements per parallel task when building a new buffer.
const BUILD_CHUNK: usize = PARALLEL_MIN / 4;

/// A new buffer of `len` floats whose consecutive chunks of `chunk`
/// elements (the last may be shorter) are written by `write(offset, slots)`,
/// on rayon's threads when there is more than one chunk. Writing new
/// buffers on the calling thread (`vec![0.0; len]`, then a fill) had left
/// the other threads waiting for a tenth of a training step.
///
/// # Safety
/// `write` must initialise every slot of every chunk it is handed.
unsafe fn par_write(
    len: usize,
    chunk: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let chunk = chunk.max(1);
    let mut v: Vec<f32> = Vec::with_capacity(len);
    let slots = &mut v.spare_capacity_mut()[..len];
    if len > chunk {
        slots
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| write(i * chunk, c));
    } else if len > 0 {
        write(0, slots);
    }
    // SAFETY: the chunks cover the first `len` slots, and the caller's
    // `write` initialised each of them.
    unsafe { v.set_len(len) };
    v
}

/// A new buffer of `len` floats: `fill(offset, chunk)` overwrites
/// consecutive chunks of `chunk` elements, handed to it zeroed, in parallel
/// when there are several (see [`par_write`]). Each task zeroes its own
/// chunk, in cache, just before filling it.
fn par_build(len: usize, chunk: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let zero_then_fill = |at: usize, c: &mut [MaybeUninit<f32>]| {
        for x in c.iter_mut() {
            x.write(0.0);
        }
        // SAFETY: every element of `c` was initialised just above, and
        // `MaybeUninit<f32>` has the layout of `f32`.
        let c = unsafe { &mut *(c as *mut [MaybeUninit<f32>] as *mut [f32]) };
        fill(at, c);
    };
    // SAFETY: `zero_then_fill` writes every slot (zeroes it) first.
    unsafe { par_write(len, chunk, zero_then_fill) }
}

/// `len` zeros, written in parallel when large (see [`par_write`]).
fn par_zeros(len: usize) -> Vec<f32> {
    par_build(len, BUILD_CHUNK, |_, _| {})
}

/// `f(a[i], b[i])` for every `i`, each element written once (nothing is
/// zeroed first), in parallel when large.
fn par_map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "element-wise inputs of different lengths");
    // SAFETY: each chunk's slots are zipped with as many inputs (a and b
    // have the buffer's length), and the loop writes every slot.
    unsafe {
        par_write(a.len(), BUILD_CHUNK, |at, out| {
            let (a, b) = (&a[at..at + out.len()], &b[at..at + out.len()]);
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                o.write(f(x, y));
            }
        })
    }
}

/// A copy of `src`, each element written once, in parallel when large.
fn par_copy(src: &[f32]) -> Vec<f32> {
    // SAFETY: each chunk's slots are zipped with as many elements of `src`
    // (it has the buffer's length), and the loop writes every slot.
    unsafe {
        par_write(src.len(), BUILD_CHUNK, |at, out| {
            let src = &src[at..at + out.len()];
            for (o, &x) in out.iter_mut().zip(src) {
                o.write(x);
            }
        })
    }
}

/// `row` repeated `rows` times, each element written once, in parallel when large.
fn par_repeat(row: &[f32], rows: usize) -> Vec<f32> {
    let n = row.len();
    if n == 0 {
        return Vec::new();
    }
    // SAFETY: chunks are whole rows (a multiple of `n` elements), and the
    // loop writes each row's `n` slots.
    unsafe {
        par_write(n * rows, n * (BUILD_CHUNK / n).max(1), |_, out| {
            for r in out.chunks_exact_mut(n) {
                for (o, &x) in r.iter_mut().zip(row) {
                    o.write(x);
                }
            }
        })
    }
}

/// Per-column sums of `data` (rows of `width`), and with `weights` (same
/// shape) the per-column sums of `data · weights` too; in parallel over
/// row blocks when large, with the same result on any number of threads.
/// The bias and layer-norm gradients.
fn column_sums(data: &[f32], weights: Option<&[f32]>, width: usize) -> (Vec<f32>, Vec<f32>) {
    let block = width * (BUILD_CHUNK / width.max(1)).max(1);
    let sums = |(b, rows): (usize, &[f32])| {
        let (mut plain, mut weighted) = (vec![0.0f32; width], vec![0.0f32; width]);
        for (r, row) in rows.chunks_exact(width).enumerate() {
            accumulate(&mut plain, row);
            if let Some(w) = weights {
                let at = b * block + r * width;
                for ((acc, x), w) in weighted.iter_mut().zip(row).zip(&w[at..at + width]) {
                    *acc += x * w;
                }
            }
        }
        (plain, weighted)
    };
    let add = |(mut a, mut b): (Vec<f32>, Vec<f32>), (c, d): (Vec<f32>, Vec<f32>)| {
        accumulate(&mut a, &c);
        accumulate(&mut b, &d);
        (a, b)
    };
    let zero = || (vec![0.0f32; width], vec![0.0f32; width]);
    // Blocks are summed in parallel, then added in their order: a fixed
    // grouping, so the result does not depend on how rayon scheduled the
    // work (a resumed run must reproduce the uninterrupted one bit for bit).
    let parts: Vec<_> = if data.len() >= PARALLEL_MIN {
        data.par_chunks(block).enumerate().map(sums).collect()
    } else {
        data.chunks(block).enumerate().map(sums).collect()
    };
    parts.into_iter().fold(zero(), add)
}

/// Runs `f` with the gradient of an op's output lent to it: moved out of
/// `grads` (no copy, unlike `to_vec`) and put back afterwards, also on
/// error. A backward op reads its output's gradient while it adds to its
/// inputs' gradients, and dfdx's public API lends only one gradient at a
/// time. `slot` finds the output's gradient, e.g.
/// `|g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v)` for a ghost `out_id`
/// (dfdx does not export the ghost type, so this takes a closure); `len`
/// is the output's element count.
fn with_output_gradient<R>(
    grads: &mut Gradients<f32, Cpu>,
    slot: impl for<'g> Fn(&'g mut Gradients<f32, Cpu>) -> Result<&'g mut Vec<f32>, CpuError>,
    len: usize,
    f: impl FnOnce(&mut Gradients<f32, Cpu>, &[f32]) -> Result<R, CpuError>,
) -> Result<R, CpuError> {
    let dy = std::mem::take(slot(grads)?);
    debug_assert_eq!(dy.len(), len, "an output's gradient was already lent");
    let result = f(grads, &dy);
    *slot(grads)? = dy;
    result
}

/// Asks the C allocator to keep freed memory for reuse (Linux with glibc;
/// elsewhere it does nothing). Call it once at the start of a program that
/// trains or samples on the CPU; the crate's command line does.
///
/// Every training step and sampling pass allocates the same large buffers
/// again (dfdx's tensors, the kernels' outputs). By default glibc returns
/// big freed blocks to the operating system at once, so the next step pays
/// for fresh, zeroed pages: a tenth to a fifth of a step's time in the
/// benchmarks (see the book's performance chapter). With this, freed blocks
/// up to 32 MiB stay in the process. The peak memory is unchanged, but the
/// memory held between steps stays at that peak, until the process ends.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; any value is valid
    // (it returns 0 for ones it refuses, which leaves the defaults).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        // One heap for all threads: the kernels' rayon tasks allocate
        // scratch buffers, and a worker thread's own arena gives its freed
        // pages back to the system whatever the thresholds above say (2.5 %
        // of a training step's time went to clearing fresh pages, 0.3 % with
        // this). The price is one lock for every allocation; measured on 2
        // threads only, where it did not show. On many cores, where
        // contention could, leave this function out.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
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

/// `dst += src`, in parallel when large (gradients of whole activations).
fn accumulate(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    let add = |(d, s): (&mut [f32], &[f32])| d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
    if dst.len() >= PARALLEL_MIN {
        dst.par_chunks_mut(PARALLEL_MIN / 4)
            .zip(src.par_chunks(PARALLEL_MIN / 4))
            .for_each(add);
    } else {
        add((dst, src));
    }
}

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
        cpu_attention(q, k, v, s, key_bias, KEEP_WEIGHTS_MAX_BYTES)
    }
}

/// [`Backend::attention`] on the CPU, keeping the attention weights for the
/// backward pass when they take at most `keep_max_bytes`.
fn cpu_attention<T: Tape<f32, Cpu>>(
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
    let mut out = par_zeros(b * sq * h * dv);
    let out_ptr = SharedMut(out.as_mut_ptr());
    let forward = |task: usize, p: &mut [f32]| {
        let i = task / h;
        let kb = bias.as_ref().map(|v| &v[i * sk..(i + 1) * sk]);
        // SAFETY: task (i, j) writes only rows i·sq.. and columns j·dv.. of `out`.
        unsafe { dims.forward(task, &qh, &kh, &vh, s.scale, kb, p, out_ptr.at(0)) };
    };
    // A training pass keeps the weights for the backward pass when they are
    // small; otherwise the backward pass recomputes them (one more product
    // per task), so memory stays linear in the number of keys. Without a
    // kept block, each task reuses one chunk of scratch per thread.
    let block = sq * sk;
    let keep = T::OWNS_TAPE && b * h * block * 4 <= keep_max_bytes;
    let kept = if keep {
        // Each task zeroes and fills its own block.
        Some(par_build(b * h * block, block, |at, p| {
            forward(at / block.max(1), p)
        }))
    } else {
        (0..b * h).into_par_iter().for_each_init(
            || vec![0.0f32; dims.chunk_rows() * sk],
            |p, task| forward(task, p),
        );
        None
    };
    let out = q.device().tensor_from_vec(out, (b * sq, h * dv));
    if !T::OWNS_TAPE {
        return out.put_tape(tape);
    }
    let (q_id, k_id, v_id, out_id) = (q.ghost(), k.ghost(), v.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        with_output_gradient(
            grads,
            |g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v),
            out_id.shape().num_elements(),
            |grads, dout| {
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
                let scratch = || {
                    let recompute = if kept.is_some() { 0 } else { chunk };
                    (vec![0.0f32; recompute], vec![0.0f32; chunk])
                };
                (0..b * h)
                    .into_par_iter()
                    .for_each_init(scratch, |(p, ds), task| {
                        let i = task / h;
                        let kb = bias.as_ref().map(|v| &v[i * sk..(i + 1) * sk]);
                        let kept = kept
                            .as_ref()
                            .map(|all| &all[task * block..(task + 1) * block]);
                        let inputs = (&qh[..], &kh[..], &vh[..], dout);
                        // SAFETY: task (i, j) writes only its own item's rows and
                        // head's columns of dq, dk and dv.
                        unsafe { dims.backward(task, inputs, s.scale, kb, kept, p, ds, ptrs) };
                    });
                accumulate(grads.get_or_alloc_mut(&q_id)?, &dq);
                accumulate(grads.get_or_alloc_mut(&k_id)?, &dkk);
                accumulate(grads.get_or_alloc_mut(&v_id)?, &dvv);
                Ok(())
            },
        )
    });
    out.put_tape(tape)
}

/// A raw pointer that rayon tasks may share, for writes to disjoint regions.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used where each task writes a region no other task touches.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the allocation the pointer came from.
        unsafe { self.0.add(offset) }
    }
}

/// Sizes of the row-major, heads-side-by-side layout of [`Backend::attention`].
#[derive(Clone, Copy)]
struct HeadDims {
    h: usize,
    sq: usize,
    sk: usize,
    dk: usize,
    dv: usize,
}

/// Products at or above this many multiply-adds are split over rayon's threads.
const PARALLEL_PRODUCT_MIN: usize = 1 << 20;

/// How to run a product of `work` multiply-adds.
fn parallelism(work: usize) -> gemm::Parallelism {
    if work >= PARALLEL_PRODUCT_MIN && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    }
}

/// [`product_par`] on the calling thread (attention runs one per rayon task).
unsafe fn product(
    mnk: (usize, usize, usize),
    dst: (*mut f32, usize, usize),
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    beta: f32,
) {
    product_par(
        mnk,
        dst,
        accumulate,
        lhs,
        rhs,
        beta,
        gemm::Parallelism::None,
    )
}

/// `dst (m × n) = [dst +] beta · lhs (m × k) · rhs (k × n)`, every matrix
/// given by its pointer, row stride and column stride.
///
/// # Safety
/// Each pointer must cover the matrix its sizes and strides describe, and
/// `dst` must not overlap the inputs.
#[allow(clippy::too_many_arguments)]
unsafe fn product_par(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, usize, usize),
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    beta: f32,
    parallelism: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2 as isize,
        dst.1 as isize,
        accumulate,
        lhs.0,
        lhs.2 as isize,
        lhs.1 as isize,
        rhs.0,
        rhs.2 as isize,
        rhs.1 as isize,
        if accumulate { 1.0 } else { 0.0 },
        beta,
        false,
        false,
        false,
        parallelism,
    )
}

/// Attention works through each task's query rows in chunks whose scores
/// take about this many floats (128 KiB), so they stay in the core's cache
/// however many keys there are.
const CHUNK_FLOATS: usize = 32 << 10;

impl HeadDims {
    /// Offsets of task `(i, j)`'s first query row, key row, value row and output row.
    fn offsets(&self, task: usize) -> (usize, usize, usize, usize) {
        let (i, j) = (task / self.h, task % self.h);
        let (qw, vw) = (self.h * self.dk, self.h * self.dv);
        (
            i * self.sq * qw + j * self.dk,
            i * self.sk * qw + j * self.dk,
            i * self.sk * vw + j * self.dv,
            i * self.sq * vw + j * self.dv,
        )
    }

    /// Query rows per chunk (see [`CHUNK_FLOATS`]).
    fn chunk_rows(&self) -> usize {
        (CHUNK_FLOATS / self.sk.max(1)).max(8).min(self.sq.max(1))
    }

    /// The query-row ranges of one task, chunk by chunk.
    fn chunks(&self) -> impl Iterator<Item = std::ops::Range<usize>> {
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
    /// (dq, dk, dv), given the output gradient `dout` and either the kept
    /// weights (`kept`: the whole `sq × sk` block) or scratch `p` to
    /// recompute them in, chunk by chunk; `ds` is scratch for one chunk.
    ///
    /// # Safety
    /// The pointers must cover whole `q`-, `k`- and `v`-shaped buffers; no
    /// other task may write this task's blocks at the same time.
    #[allow(clippy::too_many_arguments)]
    unsafe fn backward(
        &self,
        task: usize,
        (q, k, v, dout): (&[f32], &[f32], &[f32], &[f32]),
        scale: f32,
        key_bias: Option<&[f32]>,
        kept: Option<&[f32]>,
        p: &mut [f32],
        ds: &mut [f32],
        grads: (SharedMut, SharedMut, SharedMut),
    ) {
        let Self { h, sk, dk, dv, .. } = *self;
        let (oq, ok, ov, oo) = self.offsets(task);
        let (qw, vw) = (h * dk, h * dv);
        for rows in self.chunks() {
            let n = rows.len();
            let pc: &[f32] = match kept {
                Some(all) => &all[rows.start * sk..rows.end * sk],
                None => {
                    let pc = &mut p[..n * sk];
                    self.probabilities(task, rows.clone(), q, k, scale, key_bias, pc);
                    pc
                }
            };
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

/// Runs `$body` (an expression using only `#[inline(always)]` code) in a
/// function compiled for AVX-512 or AVX2 when the CPU has them, chosen at
/// run time. The crate is built for the baseline x86-64 (SSE2), so without
/// this the element-wise loops below would use 4 lanes instead of 16 or 8.
macro_rules! with_wide_simd {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function was built for.
                return unsafe { avx512(|| $body) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: as above.
                return unsafe { avx2(|| $body) };
            }
        }
        $body
    }};
}

/// Dropout's element-wise pass, with `m(i)` = 0 or `1 / (1 − rate)` as
/// [`dropout_keeps`] says: `dst[i] = m(i)·dst[i]` (forward, in place) or,
/// with `add`, `dst[i] += m(i)·add[i]` (backward, accumulating the
/// gradient). Chunks of the tensor in parallel when large.
fn dropout_pass(dst: &mut [f32], add: Option<&[f32]>, seed: u64, rate: f32) {
    debug_assert!(add.map_or(true, |a| a.len() == dst.len()));
    let chunk = PARALLEL_MIN / 4;
    let (threshold, keep) = (dropout_threshold(rate), 1.0 / (1.0 - rate));
    let body = |(c, d): (usize, &mut [f32])| {
        let add = add.map(|a| &a[c * chunk..c * chunk + d.len()]);
        with_wide_simd!(dropout_chunk(d, add, c * chunk, seed, threshold, keep))
    };
    if dst.len() >= PARALLEL_MIN {
        dst.par_chunks_mut(chunk).enumerate().for_each(body);
    } else {
        dst.chunks_mut(chunk).enumerate().for_each(body);
    }
}

#[inline(always)]
fn dropout_chunk(
    dst: &mut [f32],
    add: Option<&[f32]>,
    start: usize,
    seed: u64,
    threshold: u32,
    keep: f32,
) {
    let m = |j: usize| {
        if dropout_hash(seed, start + j) >= threshold {
            keep
        } else {
            0.0
        }
    };
    match add {
        None => dst.iter_mut().enumerate().for_each(|(j, d)| *d *= m(j)),
        Some(a) => dst
            .iter_mut()
            .zip(a)
            .enumerate()
            .for_each(|(j, (d, a))| *d += m(j) * a),
    }
}

/// Each `width`-sized row of `p` := `softmax(row + key_bias)`.
fn softmax_rows(p: &mut [f32], width: usize, key_bias: Option<&[f32]>) {
    with_wide_simd!(softmax_rows_inline(p, width, key_bias))
}

#[inline(always)]
fn softmax_rows_inline(p: &mut [f32], width: usize, key_bias: Option<&[f32]>) {
    for r in p.chunks_exact_mut(width.max(1)) {
        if let Some(kb) = key_bias {
            r.iter_mut().zip(kb).for_each(|(x, b)| *x += b);
        }
        let max = max_lanes(r);
        // Weights below e^−40 (relative to the largest, which is 1) are set
        // to 0: they cannot change a sum that includes 1, and left in they
        // become subnormal numbers in the products of the backward pass,
        // which x86 CPUs handle about a hundred times slower. The distance
        // bias's sharp heads made such weights common, and training steps
        // twice as slow.
        let weight = |x: &mut f32| {
            let z = *x - max;
            let e = exp_nonpositive(z);
            *x = if z < -40.0 { 0.0 } else { e };
            *x
        };
        // The sum is taken while exponentiating (one pass over the row
        // instead of two), in lanes so that it vectorises.
        let mut lanes = [0.0f32; LANES];
        let mut chunks = r.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (l, x) in lanes.iter_mut().zip(c) {
                *l += weight(x);
            }
        }
        let tail: f32 = chunks.into_remainder().iter_mut().map(weight).sum();
        let inv = 1.0 / (lanes.iter().sum::<f32>() + tail);
        r.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Lanes of the vectorised reductions: one AVX-512 register, two AVX2 ones.
const LANES: usize = 16;

/// Softmax backward with the score scale, row by row: each row of `ds`
/// (holding `dp`) := `scale · p ⊙ (dp − Σ p·dp)`.
fn softmax_backward_rows(ds: &mut [f32], p: &[f32], width: usize, scale: f32) {
    with_wide_simd!(softmax_backward_rows_inline(ds, p, width, scale))
}

#[inline(always)]
fn softmax_backward_rows_inline(ds: &mut [f32], p: &[f32], width: usize, scale: f32) {
    let w = width.max(1);
    for (r, pr) in ds.chunks_exact_mut(w).zip(p.chunks_exact(w)) {
        let mut lanes = [0.0f32; LANES];
        let chunks = r.chunks_exact(LANES).zip(pr.chunks_exact(LANES));
        for (a, b) in chunks {
            for l in 0..LANES {
                lanes[l] += a[l] * b[l];
            }
        }
        let tail = r.len() / LANES * LANES;
        let dot = lanes.iter().sum::<f32>()
            + r[tail..]
                .iter()
                .zip(&pr[tail..])
                .map(|(d, x)| d * x)
                .sum::<f32>();
        for (d, x) in r.iter_mut().zip(pr) {
            *d = scale * x * (*d - dot);
        }
    }
}

/// `e^x` for `x ≤ 0`, within 2 × 10⁻⁷ relative error for `x ≥ −87` (and
/// about `e^−87` below). Written so the compiler vectorises it: the softmax
/// computes one exponential per score, and libm's scalar `expf` was a sixth
/// of the time of autoregressive sampling.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // e^x = 2^n · e^r with n = round(x / ln 2) and |r| ≤ ln 2 / 2.
    let x = x.max(-87.0);
    // Adding and subtracting 1.5 · 2²³ rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // The same integer n, read from t's low mantissa bits (a float-to-int
    // cast would not vectorise: Rust's `as` saturates and maps NaN to 0).
    let n_bits = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    // r = x − n·ln 2, with ln 2 split in two so the product is exact enough.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    // Taylor series to r⁶ (error below r⁷/7! ≈ 1.2 × 10⁻⁷ at |r| = ln 2 / 2).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n built from its exponent bits (n ≥ −126 here, so it is a normal number).
    p * f32::from_bits(((n_bits + 127) as u32) << 23)
}

/// Largest entry of a row. Four registers of lanes, each its own chain of
/// comparisons, so the loop is not held up by the latency of one chain.
#[inline(always)]
fn max_lanes(r: &[f32]) -> f32 {
    #[inline(always)]
    fn max_into(lanes: &mut [f32; LANES], c: &[f32]) {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    // Four separate arrays (one array of 4·LANES ends up in memory, not in registers).
    let mut lanes = [[f32::NEG_INFINITY; LANES]; 4];
    let [a, b, c, d] = &mut lanes;
    let mut chunks = r.chunks_exact(4 * LANES);
    for chunk in &mut chunks {
        max_into(a, &chunk[..LANES]);
        max_into(b, &chunk[LANES..2 * LANES]);
        max_into(c, &chunk[2 * LANES..3 * LANES]);
        max_into(d, &chunk[3 * LANES..]);
    }
    let mut short = chunks.remainder().chunks_exact(LANES);
    for chunk in &mut short {
        max_into(a, chunk);
    }
    // Fold the arrays into one, then that one into a number (a scalar fold
    // over all 4·LANES would cost as much as the loop on rows of a few hundred).
    for other in [&*b, &*c, &*d] {
        max_into(a, other);
    }
    let larger = |m: f32, &x: &f32| if x > m { x } else { m };
    a.iter().fold(
        short.remainder().iter().fold(f32::NEG_INFINITY, larger),
        larger,
    )
}

/// Sum of `f(x)` over a row, in lanes so the additions vectorise (a plain
/// fold must add in order, one at a time).
#[inline(always)]
fn sum_lanes(r: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 2 * LANES];
    let mut chunks = r.chunks_exact(2 * LANES);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += f(x);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Normalises one row in place, then applies `(gain, shift)` if given;
/// returns 1/σ.
fn normalise_row(r: &mut [f32], affine: Option<(&[f32], &[f32])>, eps: f32) -> f32 {
    with_wide_simd!({
        let n = r.len() as f32;
        let mean = sum_lanes(r, |x| x) / n;
        let var = sum_lanes(r, |x| (x - mean) * (x - mean)) / n;
        let rstd = 1.0 / (var + eps).sqrt();
        match affine {
            Some((gain, shift)) => {
                for ((x, g), s) in r.iter_mut().zip(gain).zip(shift) {
                    *x = (*x - mean) * rstd * g + s;
                }
            }
            None => r.iter_mut().for_each(|x| *x = (*x - mean) * rstd),
        }
        rstd
    })
}

/// `x · gain + shift` for each `gain`-sized row of `x`.
fn scale_shift_rows(x: &mut [f32], gain: &[f32], shift: &[f32]) {
    // The dispatch goes inside the row closure: rayon runs it on other
    // threads, outside any function compiled for wide registers.
    for_rows(x, gain.len(), |_, r| scale_shift_row(r, gain, shift));
}

fn scale_shift_row(r: &mut [f32], gain: &[f32], shift: &[f32]) {
    with_wide_simd!({
        for ((x, g), s) in r.iter_mut().zip(gain).zip(shift) {
            *x = *x * g + s;
        }
    })
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

    /// Layer norm then a linear layer, fused against dfdx's composition,
    /// forward and backward: loss = Σ up ⊙ (LN(x)·wt + s), with `s` both the
    /// norm's shift and the layer's bias, so its gradient adds up from two
    /// uses. Also checks that the fused pass gives the same bits on a second
    /// run and on one thread, whatever rayon's scheduling (exact resume
    /// depends on it).
    fn layer_norm_and_linear_case(rows: usize, seed: u64) {
        let dev = Cpu::default();
        let x = rand_tensor(&dev, (rows, 64), seed);
        let g = rand_tensor(&dev, (1, 64), seed + 1);
        let s = rand_tensor(&dev, (1, 64), seed + 2);
        let wt = rand_tensor(&dev, (64, 64), seed + 3);
        let up = rand_tensor(&dev, (rows, 64), seed + 4);
        let run = |fused: bool| {
            let h = if fused {
                Cpu::linear(Cpu::layer_norm(x.leaky_trace(), &g, &s, 1e-5), &wt, &s)
            } else {
                composed::linear(composed::layer_norm(x.leaky_trace(), &g, &s, 1e-5), &wt, &s)
            };
            let loss = (h * up.clone()).sum();
            (loss.array(), loss.backward())
        };
        let ((lf, gf), (lr, gr)) = (run(true), run(false));
        close(&[lf], &[lr]);
        for t in [&x, &g, &s, &wt] {
            close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
        }
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for (loss, grads) in [run(true), one_thread.install(|| run(true))] {
            assert_eq!(loss.to_bits(), lf.to_bits());
            for t in [&x, &g, &s, &wt] {
                assert_eq!(grads.get(t).as_vec(), gf.get(t).as_vec());
            }
        }
    }

    #[test]
    fn fused_layer_norm_and_linear_match_dfdx_forward_and_backward() {
        layer_norm_and_linear_case(300, 1);
    }

    #[test]
    fn fused_kernels_match_dfdx_on_the_parallel_paths() {
        // Above PARALLEL_MIN, so buffers are built, copied and summed in
        // parallel chunks (1100 rows of 64: several blocks of whole rows,
        // the last one short).
        layer_norm_and_linear_case(1100, 41);
    }

    #[test]
    fn fused_add_matches_dfdx_forward_and_backward() {
        // Parallel size; `x + x` accumulates both gradients into one.
        let dev = Cpu::default();
        let (a, b) = (
            rand_tensor(&dev, (700, 100), 71),
            rand_tensor(&dev, (700, 100), 72),
        );
        let up = rand_tensor(&dev, (700, 100), 73);
        let fused = (Cpu::add(Cpu::add(a.leaky_trace(), b.leaky_trace()), a.leaky_trace())
            * up.clone())
        .sum();
        let reference = ((a.leaky_trace() + b.leaky_trace() + a.leaky_trace()) * up).sum();
        close(&[fused.array()], &[reference.array()]);
        let (gf, gr) = (fused.backward(), reference.backward());
        for t in [&a, &b] {
            close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
        }
        // `x + x` in one call: both inputs' gradients land on one tensor.
        let x = rand_tensor(&dev, (3, 5), 74);
        let traced = x.leaky_trace();
        let sum = Cpu::add(traced.with_empty_tape(), traced);
        close(&sum.as_vec(), &(x.clone() * 2.0).as_vec());
        let grads = sum.sum().backward();
        assert!(grads.get(&x).as_vec().iter().all(|&d| d == 2.0));
    }

    #[test]
    fn fused_kernels_read_non_contiguous_inputs() {
        // A transposed (permuted) input has no contiguous slice to lend:
        // the kernel must copy it into row-major order first.
        let dev = Cpu::default();
        let xt = rand_tensor(&dev, (24, 37), 51);
        let wt = rand_tensor(&dev, (24, 40), 52);
        let b = rand_tensor(&dev, (1, 40), 53);
        let x = || xt.clone().permute::<(usize, usize), Axes2<1, 0>>();
        assert!(x().contiguous_slice().is_none());
        close(
            &Cpu::linear(x(), &wt, &b).as_vec(),
            &composed::linear(x(), &wt, &b).as_vec(),
        );
        // And through the backward pass: the gradient reaches the
        // transposed tensor's source.
        let up = rand_tensor(&dev, (37, 40), 54);
        let traced = || xt.leaky_trace().permute::<(usize, usize), Axes2<1, 0>>();
        let fused = (Cpu::linear(traced(), &wt, &b) * up.clone())
            .sum()
            .backward();
        let reference = (composed::linear(traced(), &wt, &b) * up).sum().backward();
        for t in [&xt, &wt, &b] {
            close(&fused.get(t).as_vec(), &reference.get(t).as_vec());
        }
    }

    #[test]
    fn fused_adam_matches_the_composed_update_and_copies_shared_state() {
        // Large enough for the parallel path; m and v start as clones of one
        // tensor (as in `Adam::step`), so updating one in place must not
        // change the other.
        let dev = Cpu::default();
        let h = AdamStep {
            step: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            c2: 0.01,
            eps: 1e-8,
        };
        let zeros: Param<Cpu> = dev.zeros_like(&(300, 256));
        let (mut pf, mut pr) = (
            rand_tensor(&dev, (300, 256), 61),
            rand_tensor(&dev, (300, 256), 61),
        );
        let (mut mf, mut vf) = (zeros.clone(), zeros.clone());
        let (mut mr, mut vr) = (zeros.clone(), zeros.clone());
        for step in 0..2 {
            let grad = rand_tensor(&dev, (300, 256), 62 + step);
            Cpu::adam_update(&mut pf, grad.clone(), &mut mf, &mut vf, h);
            composed::adam_update(&mut pr, grad, &mut mr, &mut vr, h);
        }
        for (f, r) in [(&pf, &pr), (&mf, &mr), (&vf, &vr)] {
            close(&f.as_vec(), &r.as_vec());
        }
        assert!(zeros.as_vec().iter().all(|&z| z == 0.0));
    }

    #[test]
    fn fused_linear_matches_dfdx_forward_and_backward() {
        let dev = Cpu::default();
        let x = rand_tensor(&dev, (37, 24), 11);
        let wt = rand_tensor(&dev, (24, 40), 12);
        let b = rand_tensor(&dev, (1, 40), 13);
        let up = rand_tensor(&dev, (37, 40), 14);
        let fused = (Cpu::linear(x.leaky_trace(), &wt, &b) * up.clone()).sum();
        let reference = (composed::linear(x.leaky_trace(), &wt, &b) * up.clone()).sum();
        close(&[fused.array()], &[reference.array()]);
        let (gf, gr) = (fused.backward(), reference.backward());
        for t in [&x, &wt, &b] {
            close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
        }
        // Inference path, and a product large enough to be split over threads.
        let x = rand_tensor(&dev, (700, 64), 15);
        let wt = rand_tensor(&dev, (64, 48), 16);
        let b = rand_tensor(&dev, (1, 48), 17);
        close(
            &Cpu::linear(x.clone(), &wt, &b).as_vec(),
            &composed::linear(x, &wt, &b).as_vec(),
        );
    }

    #[test]
    fn fused_dropout_matches_the_composed_mask_forward_and_backward() {
        let dev = Cpu::default();
        // Large enough to be split over threads in chunks.
        let (rows, cols) = (400, 200);
        let x = rand_tensor(&dev, (rows, cols), 21);
        let up = rand_tensor(&dev, (rows, cols), 22);
        let (rate, seed) = (0.3, 0x5eed_0000_0001);
        let fused = Cpu::dropout(x.leaky_trace(), rate, seed);
        let reference = composed::dropout(x.leaky_trace(), rate, seed);
        assert_eq!(fused.as_vec(), reference.as_vec());
        // `x` used twice: the backward pass must add to its gradient.
        let (gf, gr) = (
            ((fused + x.leaky_trace()) * up.clone()).sum().backward(),
            ((reference + x.leaky_trace()) * up.clone())
                .sum()
                .backward(),
        );
        close(&gf.get(&x).as_vec(), &gr.get(&x).as_vec());
        // Dropped numbers are 0, kept ones scaled by 1/(1 − rate), and about
        // `rate` of them are dropped.
        let out = Cpu::dropout(x.clone(), rate, seed).as_vec();
        let xs = x.as_vec();
        let mut dropped = 0;
        for (o, x) in out.iter().zip(&xs) {
            if *o == 0.0 {
                dropped += 1;
            } else {
                assert!((o - x / (1.0 - rate)).abs() <= 1e-6 * (1.0 + x.abs()));
            }
        }
        let fraction = dropped as f64 / xs.len() as f64;
        assert!((fraction - 0.3).abs() < 0.01, "{fraction}");
        // Another seed drops other numbers; rate 0 drops none.
        assert_ne!(Cpu::dropout(x.clone(), rate, seed + 1).as_vec(), out);
        assert_eq!(Cpu::dropout(x.clone(), 0.0, seed).as_vec(), xs);
    }

    #[test]
    fn fused_attention_matches_dfdx_forward_and_backward() {
        // Two items, three heads, 5 queries over 7 keys; key width 4 and
        // value width 2 per head (they differ when the distance bias widens
        // the keys); the second item has two padded keys.
        attention_case(2, 3, 5, 7);
    }

    #[test]
    fn fused_attention_works_through_long_rows_in_chunks() {
        // 4500 keys make chunks of 8 query rows: 20 rows are 3 chunks.
        let dims = HeadDims {
            h: 1,
            sq: 20,
            sk: 4500,
            dk: 4,
            dv: 2,
        };
        assert_eq!(
            dims.chunks().map(|r| r.len()).collect::<Vec<_>>(),
            [8, 8, 4]
        );
        attention_case(2, 1, 20, 4500);
    }

    /// Checks the fused attention against dfdx's composition, forward and
    /// backward, with and without padding of the last two keys of the last
    /// item, keeping and recomputing the weights.
    fn attention_case(batch: usize, heads: usize, queries: usize, keys: usize) {
        let dev = Cpu::default();
        let s = AttentionShape {
            batch,
            heads,
            queries,
            keys,
            scale: 0.3,
        };
        let q = rand_tensor(&dev, (batch * queries, heads * 4), 5);
        let k = rand_tensor(&dev, (batch * keys, heads * 4), 6);
        let v = rand_tensor(&dev, (batch * keys, heads * 2), 7);
        let w = rand_tensor(&dev, (batch * queries, heads * 2), 8);
        let mut bias = vec![0.0; batch * keys];
        bias[batch * keys - 2] = -1e9;
        bias[batch * keys - 1] = -1e9;
        let bias = dev.tensor_from_vec(bias, (batch, keys));
        let mut results = Vec::new();
        // 0 = the backward pass recomputes the weights; MAX = it keeps them.
        for keep_max_bytes in [None, Some(0), Some(usize::MAX)] {
            for key_bias in [None, Some(&bias)] {
                // Keys and values on tapes of their own, merged inside.
                let (qt, kt, vt) = (
                    q.leaky_trace(),
                    k.leaky_trace(),
                    v.clone().put_tape(OwnedTape::default()),
                );
                let out = match keep_max_bytes {
                    None => composed::attention(qt, kt, vt, s, key_bias),
                    Some(keep) => cpu_attention(qt, kt, vt, s, key_bias, keep),
                };
                let loss = (out * w.clone()).sum();
                results.push((loss.array(), loss.backward()));
            }
        }
        for i in 2..results.len() {
            let ((fused, gf), (reference, gr)) = (&results[i], &results[i % 2]);
            close(&[*fused], &[*reference]);
            for t in [&q, &k] {
                close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
            }
        }
        // The value gradient (through a third tape), and the no-tape (inference) path.
        let empty = || OwnedTape::<f32, Cpu>::default();
        let (qe, ke) = (
            || q.clone().put_tape(empty()),
            || k.clone().put_tape(empty()),
        );
        let fused = Cpu::attention(qe(), ke(), v.leaky_trace(), s, Some(&bias));
        let reference = composed::attention(qe(), ke(), v.leaky_trace(), s, Some(&bias));
        close(&fused.as_vec(), &reference.as_vec());
        let gf = (fused * w.clone()).sum().backward();
        let gr = (reference * w.clone()).sum().backward();
        close(&gf.get(&v).as_vec(), &gr.get(&v).as_vec());
        let inference = Cpu::attention(q.clone(), k.clone(), v.clone(), s, Some(&bias));
        let reference = composed::attention(q.clone(), k.clone(), v.clone(), s, Some(&bias));
        close(&inference.as_vec(), &reference.as_vec());
    }

    #[test]
    fn fast_exponential_matches_the_standard_library() {
        let mut worst = 0.0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (a, b) = (exp_nonpositive(x), x.exp());
            worst = worst.max((a - b).abs() / b);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp_nonpositive(-1000.0) < 1e-37);
        assert_eq!(exp_nonpositive(0.0), 1.0);
        let row: Vec<f32> = (0..37).map(|i| i as f32 * 0.25).collect();
        assert!((sum_lanes(&row, |x| x) - row.iter().sum::<f32>()).abs() < 1e-4);
        assert_eq!(max_lanes(&row), 9.0);
        assert_eq!(max_lanes(&row[..5]), 1.0);
        // The largest entry in the wide lanes, the narrow lanes and the tail.
        for at in [0, 63, 70, 130, 149] {
            let mut row = vec![-1.0f32; 150];
            row[at] = 2.0;
            assert_eq!(max_lanes(&row), 2.0, "largest at {at}");
        }
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
