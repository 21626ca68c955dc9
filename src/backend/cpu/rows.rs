//! Row-wise arithmetic of the fused kernels: softmax and its gradient, a
//! fast exponential, layer-norm rows and the dropout pass, compiled for
//! AVX-512 or AVX2 when the CPU has them.

use rayon::prelude::*;

use super::host::*;
use crate::backend::{dropout_hash, dropout_threshold};

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
pub(super) fn dropout_pass(dst: &mut [f32], add: Option<&[f32]>, seed: u64, rate: f32) {
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
pub(super) fn dropout_chunk(
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

/// Weights below `e^−40` of the row's largest are set to 0 (see
/// [`softmax_rows_inline`]).
const NEGLIGIBLE: f32 = -40.0;

/// Each `width`-sized row of `p` := `softmax(row + key_bias)`.
pub(super) fn softmax_rows(p: &mut [f32], width: usize, key_bias: Option<&[f32]>) {
    with_wide_simd!(softmax_rows_inline(p, width, key_bias))
}

#[inline(always)]
pub(super) fn softmax_rows_inline(p: &mut [f32], width: usize, key_bias: Option<&[f32]>) {
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
            *x = if z < NEGLIGIBLE { 0.0 } else { e };
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
pub(super) const LANES: usize = 16;

/// Softmax backward with the score scale, row by row: each row of `ds`
/// (holding `dp`) := `scale · p ⊙ (dp − Σ p·dp)`.
pub(super) fn softmax_backward_rows(ds: &mut [f32], p: &[f32], width: usize, scale: f32) {
    with_wide_simd!(softmax_backward_rows_inline(ds, p, width, scale))
}

#[inline(always)]
pub(super) fn softmax_backward_rows_inline(ds: &mut [f32], p: &[f32], width: usize, scale: f32) {
    let w = width.max(1);
    for (r, pr) in ds.chunks_exact_mut(w).zip(p.chunks_exact(w)) {
        let dot = dot_lanes(r, pr);
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
pub(super) fn exp_nonpositive(x: f32) -> f32 {
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
pub(super) fn max_lanes(r: &[f32]) -> f32 {
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
pub(super) fn sum_lanes(r: &[f32], f: impl Fn(f32) -> f32) -> f32 {
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
pub(super) fn normalise_row(r: &mut [f32], affine: Option<(&[f32], &[f32])>, eps: f32) -> f32 {
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
pub(super) fn scale_shift_rows(x: &mut [f32], gain: &[f32], shift: &[f32]) {
    // The dispatch goes inside the row closure: rayon runs it on other
    // threads, outside any function compiled for wide registers.
    for_rows(x, gain.len(), |_, r| scale_shift_row(r, gain, shift));
}

pub(super) fn scale_shift_row(r: &mut [f32], gain: &[f32], shift: &[f32]) {
    with_wide_simd!({
        for ((x, g), s) in r.iter_mut().zip(gain).zip(shift) {
            *x = *x * g + s;
        }
    })
}

/// One key tile of the tiled attention's online softmax. `s` holds the
/// tile's scaled scores, `rows × width`; `max`, `sum` and `acc` (`rows ×
/// acc_width`, the weighted sum of values so far) carry each query row's
/// running maximum, sum of weights and output over the tiles before. The
/// scores become weights relative to the new maximum, and the earlier sum
/// and output are rescaled to it, so that after the last tile `acc / sum`
/// is the softmax-weighted output.
pub(super) fn online_softmax_tile(
    s: &mut [f32],
    width: usize,
    key_bias: Option<&[f32]>,
    (max, sum): (&mut [f32], &mut [f32]),
    acc: &mut [f32],
    acc_width: usize,
) {
    with_wide_simd!({
        let rows = s
            .chunks_exact_mut(width)
            .zip(acc.chunks_exact_mut(acc_width));
        for ((r, a), (m, l)) in rows.zip(max.iter_mut().zip(sum.iter_mut())) {
            if let Some(kb) = key_bias {
                r.iter_mut().zip(kb).for_each(|(x, b)| *x += b);
            }
            let new_max = max_lanes(r).max(*m);
            let weight = |z: f32| {
                if z < NEGLIGIBLE {
                    0.0
                } else {
                    exp_nonpositive(z)
                }
            };
            let rescale = weight(*m - new_max);
            if rescale != 1.0 {
                a.iter_mut().for_each(|x| *x *= rescale);
            }
            let mut lanes = [0.0f32; LANES];
            let mut chunks = r.chunks_exact_mut(LANES);
            for c in &mut chunks {
                for (l, x) in lanes.iter_mut().zip(c) {
                    *x = weight(*x - new_max);
                    *l += *x;
                }
            }
            let mut tail = 0.0;
            for x in chunks.into_remainder() {
                *x = weight(*x - new_max);
                tail += *x;
            }
            *l = *l * rescale + lanes.iter().sum::<f32>() + tail;
            *m = new_max;
        }
    })
}

/// The tiled attention's backward pass, for one tile: each row of `s`
/// (scaled scores) becomes its softmax weights `e^(s + key_bias − lse)`,
/// from the row's log-sum-exp kept by the forward pass.
pub(super) fn weights_from_lse(s: &mut [f32], width: usize, key_bias: Option<&[f32]>, lse: &[f32]) {
    with_wide_simd!({
        for (r, &lse) in s.chunks_exact_mut(width).zip(lse) {
            let weight = |x: &mut f32, b: f32| {
                let z = *x + b - lse;
                *x = if z < NEGLIGIBLE {
                    0.0
                } else {
                    exp_nonpositive(z)
                };
            };
            match key_bias {
                Some(kb) => r.iter_mut().zip(kb).for_each(|(x, &b)| weight(x, b)),
                None => r.iter_mut().for_each(|x| weight(x, 0.0)),
            }
        }
    })
}

/// Softmax backward for one tile, given each row's `Σ p·dp` beforehand
/// (`dots`; FlashAttention-2 gets it as `Σ dout·out`, without a pass over
/// whole rows): each row of `ds` (holding `dp`) := `scale · p ⊙ (dp − dot)`.
pub(super) fn softmax_backward_tile(
    ds: &mut [f32],
    p: &[f32],
    width: usize,
    dots: &[f32],
    scale: f32,
) {
    with_wide_simd!({
        let rows = ds.chunks_exact_mut(width).zip(p.chunks_exact(width));
        for ((r, pr), &dot) in rows.zip(dots) {
            for (d, x) in r.iter_mut().zip(pr) {
                *d = scale * x * (*d - dot);
            }
        }
    })
}

/// `Σ a·b` over each of `rows` pairs of rows, read with `stride` between rows.
pub(super) fn row_dots(a: &[f32], b: &[f32], rows: usize, width: usize, stride: usize) -> Vec<f32> {
    with_wide_simd!((0..rows)
        .map(|r| dot_lanes(&a[r * stride..][..width], &b[r * stride..][..width]))
        .collect())
}

/// `Σ a·b`, in lanes so that it vectorises.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES).zip(b.chunks_exact(LANES));
    for (x, y) in chunks {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail = a.len() / LANES * LANES;
    let tail: f32 = a[tail..].iter().zip(&b[tail..]).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}
