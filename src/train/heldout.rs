//! Generic evaluation on held-out signals: proper NLL and RMSE per `|S|`,
//! on examples drawn as training draws them (the `eval` command's table for
//! domains without their own evaluation).

use std::fmt::Write as _;
use std::path::Path;

use crate::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::data::draw_example_with;
use crate::{io::write_atomic, Domain, Model, OutputDistribution, Result, Split};

/// Held-out metrics at one observation-set size.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldoutRow {
    /// Observed pairs per example.
    pub observed: usize,
    /// Mean proper negative log-likelihood per query value, in nats.
    pub nll: f64,
    /// Root-mean-square error of the predicted mean.
    pub rmse: f64,
}

/// Number of held-out signals per observation-set size in [`heldout_metrics`].
pub const HELDOUT_SIGNALS: usize = 200;

/// Proper NLL and RMSE on a fixed, seeded set of held-out examples for each size in `sizes`.
pub fn heldout_metrics<
    const P: usize,
    const V: usize,
    Dm: Domain<P, V>,
    D: Backend,
    O: OutputDistribution<V>,
>(
    domain: &Dm,
    model: &Model<P, V, D, O>,
    sizes: &[usize],
    queries: usize,
    seed: u64,
) -> Result<Vec<HeldoutRow>> {
    let mut rows = Vec::new();
    for &n in sizes {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(n as u64);
        let (mut nll, mut se, mut count) = (0.0f64, 0.0f64, 0usize);
        for _ in 0..HELDOUT_SIGNALS {
            let ex = draw_example_with(domain, Split::Test, n, queries, &mut rng);
            let m = model.marginals(&ex.observed, &ex.queries)?;
            for (i, t) in ex.targets.iter().enumerate() {
                nll -= m.log_prob(i, t) as f64;
                let mean = m.mean(i);
                se += (0..V)
                    .map(|d| ((mean[d] - t[d]) as f64).powi(2))
                    .sum::<f64>();
                count += 1;
            }
        }
        rows.push(HeldoutRow {
            observed: n,
            nll: nll / count as f64,
            rmse: (se / (count * V) as f64).sqrt(),
        });
    }
    Ok(rows)
}

/// The default `eval` of a domain: a table of held-out NLL and RMSE, also written to `eval.csv`.
pub fn heldout_report<
    const P: usize,
    const V: usize,
    Dm: Domain<P, V>,
    D: Backend,
    O: OutputDistribution<V>,
>(
    domain: &Dm,
    model: &Model<P, V, D, O>,
    out_dir: &Path,
    seed: u64,
) -> Result<String> {
    let d = domain.defaults();
    let rows = heldout_metrics(domain, model, &d.eval_observed, d.sets.queries, seed)?;
    let mut csv = String::from("observed,nll_nats,rmse\n");
    let mut table = format!("{:>6}  {:>10}  {:>8}\n", "|S|", "NLL (nats)", "RMSE");
    for r in &rows {
        let _ = writeln!(csv, "{},{},{}", r.observed, r.nll, r.rmse);
        let _ = writeln!(table, "{:>6}  {:>10.3}  {:>8.4}", r.observed, r.nll, r.rmse);
    }
    write_atomic(&out_dir.join("eval.csv"), csv.as_bytes())?;
    Ok(table)
}
