//! The polynomial evaluation: the model next to the exact Bayes posterior and
//! the prior, per observation-set size.

use std::fmt::Write as _;
use std::path::Path;

use pixel_transformer::Backend;
use pixel_transformer::{
    infer::shard::Shard, io::write_atomic, train::data::draw_example_with, Model, ModelInput,
    OutputDistribution, Result, Split,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::bayes::{gaussian_nll, BayesPosterior};
use crate::PolynomialDomain;

/// Observation-set sizes reported by `eval`.
pub const EVAL_SIZES: [usize; 7] = [4, 5, 6, 8, 10, 14, 20];
/// Held-out polynomials per size.
pub const EVAL_SIGNALS: usize = 500;
/// Queries per held-out polynomial.
const QUERIES: usize = 20;
/// Two-sided 95 % quantile of the standard normal.
const Z95: f64 = 1.959_964;
/// Variance added to the noise-free posterior's diagonal for numerical stability.
const JITTER: f64 = crate::bayes::NOISE_FREE_JITTER;

/// Metrics of one predictor at one `|S|`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Mean proper NLL per query, nats (including ½·log 2π).
    pub nll: f64,
    /// RMSE of the predicted mean.
    pub rmse: f64,
    /// Fraction of true values inside mean ± 1.96σ.
    pub coverage: f64,
}

/// One row of the evaluation table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalRow {
    /// Observations per polynomial.
    pub observed: usize,
    /// The model.
    pub model: Metrics,
    /// The exact Bayes posterior (the best possible predictor).
    pub bayes: Metrics,
    /// The prior alone (ignores the observations).
    pub prior: Metrics,
}

#[derive(Default)]
struct Acc {
    nll: f64,
    se: f64,
    covered: usize,
    n: usize,
}

impl Acc {
    /// One query: the true value, the predicted mean and standard deviation, and the NLL of the truth.
    fn add(&mut self, truth: f64, mean: f64, std: f64, nll: f64) {
        self.nll += nll;
        self.se += (mean - truth).powi(2);
        self.covered += usize::from((truth - mean).abs() <= Z95 * std);
        self.n += 1;
    }
    /// One query under a Gaussian prediction.
    fn add_gaussian(&mut self, truth: f64, mean: f64, var: f64) {
        self.add(truth, mean, var.sqrt(), gaussian_nll(truth, mean, var));
    }
    fn metrics(&self) -> Metrics {
        let n = self.n.max(1) as f64;
        Metrics {
            nll: self.nll / n,
            rmse: (self.se / n).sqrt(),
            coverage: self.covered as f64 / n,
        }
    }
}

/// Evaluates `model` on `signals` seeded held-out polynomials per size in [`EVAL_SIZES`].
pub fn evaluate<D: Backend, O: OutputDistribution<1>>(
    domain: &PolynomialDomain,
    model: &Model<1, 1, D, O>,
    signals: usize,
    seed: u64,
) -> Result<Vec<EvalRow>> {
    evaluate_shared(domain, model, signals, seed, &Shard::default())
}

/// Polynomials the model predicts in one batch.
const CHUNK: usize = 64;

/// [`evaluate`], with the model's predictions shared by the ranks of
/// `shard` (whole batches each, so every rank gets one process's numbers).
pub fn evaluate_shared<D: Backend, O: OutputDistribution<1>>(
    domain: &PolynomialDomain,
    model: &Model<1, 1, D, O>,
    signals: usize,
    seed: u64,
    shard: &Shard,
) -> Result<Vec<EvalRow>> {
    let noise = domain.config.noise_std as f64;
    let prior =
        BayesPosterior::fit(&[], &[], noise, JITTER).map_err(pixel_transformer::Error::invalid)?;
    let mut rows = Vec::new();
    for &n in &EVAL_SIZES {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xe7a1);
        rng.set_stream(n as u64);
        let examples: Vec<_> = (0..signals)
            .map(|_| draw_example_with(domain, Split::Test, n, QUERIES, &mut rng))
            .collect();
        // The model's mean, standard deviation and NLL at every query of
        // this rank's batches, then of all.
        let mut mine = Vec::new();
        for (c, chunk) in examples.chunks(CHUNK).enumerate() {
            if !shard.mine(c) {
                continue;
            }
            let inputs: Vec<_> = chunk
                .iter()
                .map(|e| ModelInput {
                    observed: &e.observed,
                    queries: &e.queries,
                })
                .collect();
            let params = model.predict(&inputs)?;
            for (e, params) in chunk.iter().zip(&params) {
                let width = params.len() / e.queries.len();
                for (i, t) in e.targets.iter().enumerate() {
                    let row = &params[i * width..(i + 1) * width];
                    mine.push(model.distribution().mean(row)[0] as f64);
                    mine.push(model.distribution().std(row)[0] as f64);
                    // The proper NLL of the model's own distribution (a Gaussian
                    // here, a mixture in general), not the training loss.
                    mine.push(-model.distribution().log_prob(row, t) as f64);
                }
            }
        }
        let predicted = shard.collect_chunks(signals, CHUNK, 3 * QUERIES, mine);
        let (mut m, mut b, mut p) = (Acc::default(), Acc::default(), Acc::default());
        for (e, predicted) in examples.iter().zip(predicted.chunks(3 * QUERIES)) {
            let xs: Vec<f64> = e.observed.positions.iter().map(|x| x[0] as f64).collect();
            let ys: Vec<f64> = e.observed.values.iter().map(|v| v[0] as f64).collect();
            let posterior = BayesPosterior::fit(&xs, &ys, noise, JITTER)
                .map_err(pixel_transformer::Error::invalid)?;
            for ((q, t), model) in e.queries.iter().zip(&e.targets).zip(predicted.chunks(3)) {
                let t = t[0] as f64;
                m.add(t, model[0], model[1], model[2]);
                let (bm, bv) = posterior.predict(q[0] as f64);
                b.add_gaussian(t, bm, bv);
                let (pm, pv) = prior.predict(q[0] as f64);
                p.add_gaussian(t, pm, pv);
            }
        }
        rows.push(EvalRow {
            observed: n,
            model: m.metrics(),
            bayes: b.metrics(),
            prior: p.metrics(),
        });
    }
    Ok(rows)
}

/// The evaluation as a text table.
pub fn table(rows: &[EvalRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "proper NLL per query (nats), RMSE of the mean, 95 % interval coverage; {EVAL_SIGNALS} held-out polynomials × {QUERIES} queries per |S|");
    let _ = writeln!(
        s,
        "{:>4} | {:>8} {:>7} {:>5} | {:>8} {:>7} {:>5} | {:>8} {:>7} {:>5}",
        "|S|", "model", "RMSE", "cov", "Bayes", "RMSE", "cov", "prior", "RMSE", "cov"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>4} | {:>8.3} {:>7.4} {:>5.3} | {:>8.3} {:>7.4} {:>5.3} | {:>8.3} {:>7.4} {:>5.3}",
            r.observed,
            r.model.nll,
            r.model.rmse,
            r.model.coverage,
            r.bayes.nll,
            r.bayes.rmse,
            r.bayes.coverage,
            r.prior.nll,
            r.prior.rmse,
            r.prior.coverage
        );
    }
    s.push_str("Bayes = exact posterior for this prior (noise-free: its NLL → −∞ from |S| = 7, judge RMSE and coverage there)\n");
    s
}

/// Writes the evaluation as CSV.
pub fn write_csv(rows: &[EvalRow], path: &Path) -> Result<()> {
    let mut s = String::from("observed,model_nll,model_rmse,model_coverage,bayes_nll,bayes_rmse,bayes_coverage,prior_nll,prior_rmse,prior_coverage\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            r.observed,
            r.model.nll,
            r.model.rmse,
            r.model.coverage,
            r.bayes.nll,
            r.bayes.rmse,
            r.bayes.coverage,
            r.prior.nll,
            r.prior.rmse,
            r.prior.coverage
        );
    }
    write_atomic(path, s.as_bytes())
}
