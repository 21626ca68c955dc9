//! Generic evaluation on held-out signals: proper NLL and RMSE per `|S|`,
//! on examples drawn as training draws them (the `eval` command's table for
//! domains without their own evaluation).

use std::fmt::Write as _;
use std::path::Path;

use crate::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::data::draw_example_with;
use crate::infer::shard::Shard;
use crate::{io::write_atomic, Domain, Model, OutputDistribution, Result, RunOptions, Split};

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
    heldout_metrics_shared(domain, model, sizes, queries, seed, &Shard::default())
}

/// [`heldout_metrics`], the examples shared by the ranks of `shard`: each
/// rank measures its own, and every rank adds all of them up in example
/// order, so the numbers are exactly one process's.
pub fn heldout_metrics_shared<
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
    shard: &Shard,
) -> Result<Vec<HeldoutRow>> {
    let mut rows = Vec::new();
    for &n in sizes {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(n as u64);
        // Per query of each of this rank's examples: its NLL and squared error.
        let mut mine = Vec::new();
        for i in 0..HELDOUT_SIGNALS {
            let ex = draw_example_with(domain, Split::Test, n, queries, &mut rng);
            if !shard.mine(i) {
                continue;
            }
            let m = model.marginals(&ex.observed, &ex.queries)?;
            for (q, t) in ex.targets.iter().enumerate() {
                let mean = m.mean(q);
                mine.push(-m.log_prob(q, t) as f64);
                mine.push(
                    (0..V)
                        .map(|d| ((mean[d] - t[d]) as f64).powi(2))
                        .sum::<f64>(),
                );
            }
        }
        let all = shard.collect(HELDOUT_SIGNALS, 2 * queries, mine);
        let (mut nll, mut se) = (0.0f64, 0.0f64);
        for query in all.chunks(2) {
            nll += query[0];
            se += query[1];
        }
        let count = HELDOUT_SIGNALS * queries;
        rows.push(HeldoutRow {
            observed: n,
            nll: nll / count as f64,
            rmse: (se / (count * V) as f64).sqrt(),
        });
    }
    Ok(rows)
}

/// The default `eval` of a domain: a table of held-out NLL and RMSE, also
/// written to `eval.csv` (by the rank that writes, when ranks share it).
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
    options: &RunOptions,
) -> Result<String> {
    let d = domain.defaults();
    let rows = heldout_metrics_shared(
        domain,
        model,
        &d.eval_observed,
        d.sets.queries,
        options.seed,
        &options.shard,
    )?;
    let mut csv = String::from("observed,nll_nats,rmse\n");
    let mut table = format!("{:>6}  {:>10}  {:>8}\n", "|S|", "NLL (nats)", "RMSE");
    for r in &rows {
        let _ = writeln!(csv, "{},{},{}", r.observed, r.nll, r.rmse);
        let _ = writeln!(table, "{:>6}  {:>10.3}  {:>8.4}", r.observed, r.nll, r.rmse);
    }
    if options.shard.writes() {
        write_atomic(&out_dir.join("eval.csv"), csv.as_bytes())?;
    }
    Ok(table)
}
