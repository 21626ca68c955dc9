//! The memory budget, checked before any large allocation.
//!
//! A request that cannot fit should fail with a message saying what to
//! change, not abort the process with an out-of-memory kill halfway through
//! a step. What a pass needs is the model's business
//! ([`crate::model::memory`]); this module only knows how much there is.

use crate::error::{Error, Result};

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

/// Checks a pass fits in [`memory_budget`].
pub fn check(needed: u64, what: impl FnOnce() -> String) -> Result<()> {
    let budget = memory_budget();
    if needed > budget {
        return Err(Error::invalid(format!(
            "{} needs about {} of working memory, more than the {} available \
             (set {BUDGET_ENV} to change the budget); use fewer observations or queries, a smaller batch, or a smaller preset",
            what(),
            human(needed),
            human(budget)
        )));
    }
    Ok(())
}

pub(crate) fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}
