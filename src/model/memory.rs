//! How much working memory a pass of the model needs, and the largest sets
//! that fit a budget (the `limits` command).
//!
//! With the CPU's fused attention, memory grows linearly with `|S|` and
//! `|Q|`; with attention composed of tensor operations (other devices) it
//! grows with `|S|²` (encoder) and `|Q|·|S|` (decoder).

use crate::backend::memory::human;
use crate::backend::KEEP_WEIGHTS_MAX_BYTES;

use super::{ModelConfig, Preset};

/// Queries per forward pass at inference: larger query sets are answered in
/// chunks, so inference memory is limited by `|S|` only.
pub const MAX_QUERIES_PER_PASS: usize = 4096;

/// A conservative estimate of the working memory of one pass, in bytes.
///
/// Counts, per layer, about a dozen `rows × width`-sized activations, the
/// feed-forward hidden layer, and the attention weights: with
/// `fused_attention` (the CPU, see [`crate::Backend::FUSED_ATTENTION`])
/// the weights a training pass keeps, at most
/// [`KEEP_WEIGHTS_MAX_BYTES`] per layer, or else one log-sum-exp per query
/// row and head (the tiled kernel); otherwise the scores,
/// weights and their gradients (`3 · batch · heads · rows · keys`). A
/// training pass keeps all of it for the backward pass and allocates as
/// much again for gradients. Measured peaks are lower (the book's
/// performance chapter compares them), so the limits err on the safe side.
pub fn pass_bytes(
    config: &ModelConfig,
    batch: usize,
    observed: usize,
    queries: usize,
    training: bool,
    fused_attention: bool,
) -> u64 {
    // In u128: sizes read from a command line may be absurd, and the
    // estimate must then say "too much", not wrap around.
    let (b, s, q) = (batch as u128, observed as u128 + 1, queries as u128);
    let (w, f, h) = (
        config.width() as u128,
        config.ff_dim as u128,
        config.heads as u128,
    );
    let (enc, dec) = (config.encoder_layers as u128, config.decoder_layers as u128);
    let attention = |rows: u128| {
        let weights = b * h * rows * s;
        match (fused_attention, training) {
            (false, _) => 3 * weights,
            (true, true) if 4 * weights <= KEEP_WEIGHTS_MAX_BYTES as u128 => weights,
            (true, true) => b * h * rows,
            // Only a tile or two of scores per thread.
            (true, false) => 0,
        }
    };
    // The distance bias copies each layer's queries and keys once more.
    let rows = if config.distance_bias { 14 } else { 12 };
    let encoder = enc * (attention(s) + rows * b * s * w + 2 * b * s * f);
    let decoder = dec * (attention(q) + rows * b * q * w + 2 * b * q * f);
    // The nearest-value hint's inputs and embedding, once per pass.
    let hint = if config.nearest_value {
        2 * b * q * w
    } else {
        0
    };
    let floats = hint
        + if training {
            2 * (encoder + decoder)
        } else {
            (encoder + decoder) / enc.max(1) * 2
        };
    u64::try_from(4 * floats).unwrap_or(u64::MAX)
}

/// The largest observation set `n` for which a pass over `batch` signals with
/// `|S| = n` and `|Q| = queries(n)` fits in `budget` bytes (0 if none does).
pub fn largest_set(
    config: &ModelConfig,
    batch: usize,
    training: bool,
    budget: u64,
    fused_attention: bool,
    queries: impl Fn(usize) -> usize,
) -> usize {
    let fits =
        |n: usize| pass_bytes(config, batch, n, queries(n), training, fused_attention) <= budget;
    if !fits(0) {
        return 0;
    }
    // Memory grows monotonically with n: bisect between a fit and a miss.
    let (mut lo, mut hi) = (0usize, 1usize);
    while fits(hi) {
        if hi >= 1 << 30 {
            return hi;
        }
        lo = hi;
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A table of the largest `|S|` each preset handles within `budget` bytes:
/// training with `|Q| = |S|` and `batch` signals per step, and inference
/// (one signal; queries are processed in chunks of
/// [`MAX_QUERIES_PER_PASS`], so only `|S|` is limited).
/// `fused_attention` as for [`pass_bytes`].
pub fn table(budget: u64, batch: usize, fused_attention: bool) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "largest |S| within a memory budget of {} (training: batch {batch}, |Q| = |S|)\n{:<8} {:>18} {:>18}\n",
        human(budget),
        "preset",
        "training |S|=|Q|",
        "inference |S|"
    );
    for preset in [Preset::Tiny, Preset::Small, Preset::Paper] {
        let c = preset.config();
        let train = largest_set(&c, batch, true, budget, fused_attention, |n| n);
        let infer = largest_set(&c, 1, false, budget, fused_attention, |_| {
            MAX_QUERIES_PER_PASS
        });
        let name = format!("{preset:?}").to_lowercase();
        let _ = writeln!(out, "{name:<8} {train:>18} {infer:>18}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_memory_grows_quadratically_with_the_set() {
        let c = Preset::Paper.config();
        let small = pass_bytes(&c, 6, 512, 512, true, false);
        let large = pass_bytes(&c, 6, 2048, 2048, true, false);
        assert!(large > 10 * small && large < 17 * small);
        // The CPU's fused attention keeps its weights only when small, so
        // its memory grows linearly once they no longer are.
        let small = pass_bytes(&c, 6, 4096, 4096, true, true);
        let large = pass_bytes(&c, 6, 8192, 8192, true, true);
        assert!(large > 19 * small / 10 && large < 21 * small / 10);
    }

    #[test]
    fn largest_set_is_the_boundary_of_what_fits() {
        let c = Preset::Small.config();
        let budget = 1u64 << 30;
        for fused in [false, true] {
            let n = largest_set(&c, 8, true, budget, fused, |n| n);
            assert!(n > 100, "{n}");
            assert!(pass_bytes(&c, 8, n, n, true, fused) <= budget);
            assert!(pass_bytes(&c, 8, n + 1, n + 1, true, fused) > budget);
            // Bigger models and batches fit less; inference fits more than training.
            assert!(largest_set(&Preset::Paper.config(), 8, true, budget, fused, |n| n) < n);
            assert!(largest_set(&c, 16, true, budget, fused, |n| n) < n);
            assert!(largest_set(&c, 8, false, budget, fused, |n| n) > n);
            assert_eq!(largest_set(&c, 8, true, 0, fused, |n| n), 0);
        }
        // Fused attention fits more.
        assert!(
            largest_set(&c, 8, true, budget, true, |n| n)
                > largest_set(&c, 8, true, budget, false, |n| n)
        );
    }

    #[test]
    fn the_limits_table_lists_every_preset() {
        let t = table(8 << 30, 16, true);
        for name in ["tiny", "small", "paper", "8.0 GiB"] {
            assert!(t.contains(name), "{t}");
        }
    }
}
