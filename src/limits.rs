//! Resource limits checked before any large allocation.
//!
//! Attention memory grows with `|S|²` (encoder) and `|Q|·|S|` (decoder); a
//! request that cannot fit should fail with a message saying what to change,
//! not abort the process with an out-of-memory kill halfway through a step.

use crate::{Error, Result};

/// Environment variable that overrides the memory budget, in GiB.
pub const BUDGET_ENV: &str = "PIXEL_TRANSFORMER_MAX_MEMORY_GIB";

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the memory budget of this thread set to `bytes` (for tests
/// and for embedding applications that manage memory themselves).
pub fn with_budget<R>(bytes: u64, f: impl FnOnce() -> R) -> R {
    let previous = OVERRIDE.with(|o| o.replace(Some(bytes)));
    let result = f();
    OVERRIDE.with(|o| o.set(previous));
    result
}

/// Bytes the process may use for one forward (and backward) pass: the value of
/// [`BUDGET_ENV`] if set, else 90 % of the memory the OS reports available,
/// else (no `/proc/meminfo`) unlimited.
pub fn memory_budget() -> u64 {
    if let Some(bytes) = OVERRIDE.with(|o| o.get()) {
        return bytes;
    }
    if let Some(gib) = std::env::var(BUDGET_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        return (gib * (1u64 << 30) as f64) as u64;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib * 1024 / 10 * 9)
}

/// A conservative estimate of the working memory of one pass, in bytes.
///
/// Counts, per layer, the attention scores and weights (`batch · heads · rows ·
/// keys`) and about a dozen `rows × width`-sized activations, plus the
/// feed-forward hidden layer; a training pass keeps all of them for the
/// backward pass and allocates as much again for gradients.
#[allow(clippy::too_many_arguments)]
pub fn pass_bytes(
    batch: usize,
    observed: usize,
    queries: usize,
    width: usize,
    ff: usize,
    heads: usize,
    layers: (usize, usize),
    training: bool,
) -> u64 {
    let (b, s, q) = (batch as u64, observed as u64 + 1, queries as u64);
    let (w, f, h) = (width as u64, ff as u64, heads as u64);
    let encoder = layers.0 as u64 * (3 * b * h * s * s + 12 * b * s * w + 2 * b * s * f);
    let decoder = layers.1 as u64 * (3 * b * h * q * s + 12 * b * q * w + 2 * b * q * f);
    let floats = if training {
        2 * (encoder + decoder)
    } else {
        (encoder + decoder) / layers.0.max(1) as u64 * 2
    };
    4 * floats
}

/// Checks a pass fits in [`memory_budget`].
pub fn check(needed: u64, what: impl FnOnce() -> String) -> Result<()> {
    let budget = memory_budget();
    if needed > budget {
        let size = |b: u64| {
            if b >= 1 << 30 {
                format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
            } else {
                format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
            }
        };
        return Err(Error::invalid(format!(
            "{} needs about {} of working memory, more than the {} available \
             (set {BUDGET_ENV} to change the budget); use fewer observations or queries, a smaller batch, or a smaller preset",
            what(),
            size(needed),
            size(budget)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_memory_grows_quadratically_with_the_set() {
        let small = pass_bytes(6, 512, 512, 256, 512, 4, (10, 10), true);
        let large = pass_bytes(6, 2048, 2048, 256, 512, 4, (10, 10), true);
        assert!(large > 10 * small && large < 17 * small);
    }
}
