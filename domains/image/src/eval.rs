//! The `eval` command for now: the core's held-out NLL and RMSE per `|S|`,
//! with fewer queries per image than training uses.
//!
//! The paper's image evaluation (PSNR/SSIM of mean and sampled images
//! against the nearest-neighbour fill, bits per dimension, classification
//! accuracy) is not implemented yet.

use std::fmt::Write as _;
use std::path::Path;

use pixel_transformer::eval::heldout_metrics;
use pixel_transformer::kernels::Backend;
use pixel_transformer::{io::write_atomic, Domain, Model, OutputDistribution, Result};

use crate::ImageDomain;

/// Queries per held-out image. Training's `|Q|` (2048 in colour) would make
/// `eval` take minutes on a CPU; 200 images × 256 values per `|S|` already
/// pin the mean NLL down to a few hundredths of a nat.
pub const EVAL_QUERIES: usize = 256;

pub(crate) fn evaluate<const V: usize, D: Backend, O: OutputDistribution<V>>(
    domain: &ImageDomain<V>,
    model: &Model<2, V, D, O>,
    out_dir: &Path,
    seed: u64,
) -> Result<String> {
    let sizes = domain.defaults().eval_observed;
    let rows = heldout_metrics(domain, model, &sizes, EVAL_QUERIES, seed)?;
    let mut csv = String::from("observed,nll_nats,rmse\n");
    let mut table = format!(
        "held-out {} images, {EVAL_QUERIES} random positions each, per |S|\n{:>6}  {:>10}  {:>8}\n",
        pixel_transformer::eval::HELDOUT_SIGNALS,
        "|S|",
        "NLL (nats)",
        "RMSE"
    );
    for r in &rows {
        let _ = writeln!(csv, "{},{},{}", r.observed, r.nll, r.rmse);
        let _ = writeln!(table, "{:>6}  {:>10.3}  {:>8.4}", r.observed, r.nll, r.rmse);
    }
    write_atomic(&out_dir.join("eval.csv"), csv.as_bytes())?;
    Ok(table)
}
