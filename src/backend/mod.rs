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

use dfdx::prelude::*;

mod cpu;
pub mod memory;
pub mod reference;

pub use cpu::keep_freed_memory;

/// One trainable tensor. Vectors (biases, norms, the prior token) are `1 × n`.
pub type Param<D> = Tensor<(usize, usize), f32, D>;

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

/// Training keeps attention weights for the backward pass up to this size
/// (per call, all items and heads); above it, the tiled kernel recomputes
/// them tile by tile. Keeping saves a score product but costs memory
/// traffic; on a 2-core AVX2 machine the two cost the same between 26 and
/// 41 MiB (the book's performance chapter).
pub const KEEP_WEIGHTS_MAX_BYTES: usize = 32 << 20;

/// Which CPU attention kernel runs: benchmarks and tests compare them;
/// programs leave [`AttentionKernel::Auto`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// Whole rows of weights (kept for the backward pass in training) when
    /// they take at most [`KEEP_WEIGHTS_MAX_BYTES`]; tiled otherwise.
    Auto,
    /// Whole rows of weights, kept for the backward pass in training
    /// (memory `batch · heads · |Q| · |S|`).
    KeepWeights,
    /// The tiled kernel (memory linear in `|Q|` and `|S|`).
    Tiled,
    /// [`reference::attention`], composed of dfdx's tensor operations.
    Reference,
}

thread_local! {
    static ATTENTION_KERNEL: std::cell::Cell<AttentionKernel> =
        const { std::cell::Cell::new(AttentionKernel::Auto) };
}

/// Runs `f` with the CPU's attention calls made on this thread using
/// `kernel` (the kernel is chosen where attention is called, so passes
/// started in `f` use it forward and backward).
pub fn with_attention_kernel<R>(kernel: AttentionKernel, f: impl FnOnce() -> R) -> R {
    struct Restore(AttentionKernel);
    impl Drop for Restore {
        fn drop(&mut self) {
            ATTENTION_KERNEL.with(|k| k.set(self.0));
        }
    }
    let _restore = Restore(ATTENTION_KERNEL.with(|k| k.replace(kernel)));
    f()
}

/// The kernel [`with_attention_kernel`] chose on this thread.
fn attention_kernel() -> AttentionKernel {
    ATTENTION_KERNEL.with(|k| k.get())
}

/// A dfdx device plus the model's fused operations. The defaults are the
/// [`reference`] versions and work on any device.
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
        reference::linear(x, weight, bias)
    }

    /// Layer norm over each row with `1 × n` gain and shift.
    fn layer_norm<T: Tape<f32, Self>>(
        x: Flat<Self, T>,
        gain: &Param<Self>,
        shift: &Param<Self>,
        eps: f32,
    ) -> Flat<Self, T> {
        reference::layer_norm(x, gain, shift, eps)
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
        reference::adam_update(param, grad, m, v, h)
    }

    /// `a + b` for two tensors of one shape: the residual connections.
    fn add<T: Tape<f32, Self>>(a: Flat<Self, T>, b: Flat<Self, T>) -> Flat<Self, T> {
        a + b
    }

    /// Dropout: each number of `x` is zeroed where [`dropout_keeps`] says no
    /// (with probability `rate`, which must be in `[0, 1)`: the model checks
    /// it, see [`crate::Dropout::validate_rate`]), the rest are divided by `1 − rate`.
    fn dropout<T: Tape<f32, Self>>(x: Flat<Self, T>, rate: f32, seed: u64) -> Flat<Self, T> {
        reference::dropout(x, rate, seed)
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
        reference::attention(q, k, v, shape, key_bias)
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
pub(crate) fn dropout_hash(seed: u64, index: usize) -> u32 {
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
pub(crate) fn dropout_threshold(rate: f32) -> u32 {
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

#[cfg(feature = "cuda")]
impl Backend for Cuda {}
