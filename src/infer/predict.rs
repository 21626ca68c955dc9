//! `predict`: the JSON-lines machine interface.
//!
//! Each input line is one request:
//!
//! ```text
//! {"positions": [[..P]..], "values": [[..V]..], "queries": [[..P]..],
//!  "truth": [[..V]..], "mode": true, "components": true, "samples": 3, "seed": 7,
//!  "autoregressive": 64, "temperature": 0.9}
//! ```
//!
//! Only `queries` is required. Each output line, in the same order, is
//! `{"mean": [[..V]..], "std": [[..V]..]}` plus, when asked for: `nll` (the
//! proper per-query negative log-likelihood of `truth`, in nats), `mode`
//! (the most likely value per query), `components` (per query, the mixture's
//! bin probabilities, means and sigmas), `samples` (whole joint samples at
//! the queries, drawn one value at a time in a random order, seeded by
//! `seed`, default 0; with `autoregressive: k` only the first `k` of each
//! sample are drawn and the rest take the mean given them (hybrid sampling),
//! and `temperature`, default 1, sharpens (below 1) each draw's bin choice),
//! and `warnings` (inputs outside what the model was
//! trained on: positions outside `[-1, 1]`, values outside the range its bins
//! cover, `|S|` outside its training range).
//!
//! Blank lines are skipped; a UTF-8 byte-order mark and Windows line ends
//! are accepted. A malformed line, or one over the per-request limits
//! ([`Limits`]), stops with an error naming its line number; nothing is
//! written for it.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::model::distribution::Mixture;
use crate::signal::SetSizes;
use crate::{Backend, Error, Model, Observations, OutputDistribution, Result, SampleOptions};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    positions: Vec<Vec<f32>>,
    #[serde(default)]
    values: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    truth: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    mode: bool,
    #[serde(default)]
    components: bool,
    #[serde(default)]
    samples: usize,
    #[serde(default)]
    seed: u64,
    autoregressive: Option<usize>,
    temperature: Option<f32>,
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Predicted mean at each query.
    pub mean: Vec<Vec<f32>>,
    /// Predicted standard deviation at each query.
    pub std: Vec<Vec<f32>>,
    /// Proper negative log-likelihood of each `truth` value, in nats.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nll: Option<Vec<f32>>,
    /// The most likely value at each query (with `"mode": true`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<Vec<Vec<f32>>>,
    /// The mixture at each query (with `"components": true`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub components: Option<Vec<Mixture>>,
    /// Whole joint samples at the queries (with `"samples": n`): `n` lists
    /// of one value per query.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub samples: Option<Vec<Vec<Vec<f32>>>>,
    /// What in the request lies outside what the model was trained on.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
}

/// Per-request limits and what the model was trained on, for warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most queries in one request (time grows with them).
    pub max_queries: usize,
    /// Most observations in one request (memory grows with them).
    pub max_observations: usize,
    /// Most `samples × queries` in one request: each sampled value costs a
    /// network pass.
    pub max_sampled_values: usize,
    /// The training runs' set sizes, to warn about `|S|` outside them.
    pub trained_sets: Option<SetSizes>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_queries: 1 << 18,
            max_observations: 1 << 14,
            max_sampled_values: 1 << 16,
            trained_sets: None,
        }
    }
}

/// Rows of `N` finite numbers from a request's field, or a message naming
/// the first row that is not.
pub(crate) fn fixed<const N: usize>(
    rows: Vec<Vec<f32>>,
    field: &str,
) -> std::result::Result<Vec<[f32; N]>, String> {
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let n = r.len();
            let a: [f32; N] = r
                .try_into()
                .map_err(|_| format!("`{field}[{i}]` has {n} numbers, expected {N}"))?;
            if a.iter().any(|x| !x.is_finite()) {
                return Err(format!("`{field}[{i}]` is not finite"));
            }
            Ok(a)
        })
        .collect()
}

/// How many of `points` lie outside `[-1, 1]` on some axis.
fn outside_cube<const P: usize>(points: &[[f32; P]]) -> usize {
    points
        .iter()
        .filter(|x| x.iter().any(|c| c.abs() > 1.0))
        .count()
}

/// Answers one request line with the default [`Limits`].
pub fn answer_line<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    line: &str,
) -> std::result::Result<Response, String> {
    answer_line_with(model, line, &Limits::default())
}

/// Answers one request line.
pub fn answer_line_with<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    line: &str,
    limits: &Limits,
) -> std::result::Result<Response, String> {
    let req: Request =
        serde_json::from_str(line).map_err(|e| format!("not a valid request: {e}"))?;
    if req.queries.len() > limits.max_queries {
        return Err(format!(
            "{} queries, more than the {} a request may ask (split it into several lines, \
             or raise --max-queries)",
            req.queries.len(),
            limits.max_queries
        ));
    }
    if req.positions.len() > limits.max_observations {
        return Err(format!(
            "{} observations, more than the {} a request may give (memory grows with them; \
             raise --max-observations if this machine has room)",
            req.positions.len(),
            limits.max_observations
        ));
    }
    let drawn = req
        .autoregressive
        .map_or(req.queries.len(), |k| k.min(req.queries.len()));
    if req.samples.saturating_mul(drawn) > limits.max_sampled_values {
        return Err(format!(
            "{} samples of {drawn} drawn values: {} values drawn one network pass each, more \
             than the {} a request may ask",
            req.samples,
            req.samples.saturating_mul(drawn),
            limits.max_sampled_values
        ));
    }
    let temperature = req.temperature.unwrap_or(1.0);
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(format!(
            "`temperature` must be a positive number, got {temperature}"
        ));
    }
    let positions = fixed::<P>(req.positions, "positions")?;
    let values = fixed::<V>(req.values, "values")?;
    if positions.len() != values.len() {
        return Err(format!(
            "{} positions but {} values",
            positions.len(),
            values.len()
        ));
    }
    let queries = fixed::<P>(req.queries, "queries")?;
    if queries.is_empty() {
        return Err("`queries` is empty".into());
    }
    let truth = req.truth.map(|t| fixed::<V>(t, "truth")).transpose()?;
    if let Some(t) = &truth {
        if t.len() != queries.len() {
            return Err(format!(
                "{} truth values for {} queries",
                t.len(),
                queries.len()
            ));
        }
    }
    let warnings = warnings(model, &positions, &values, &queries, limits);
    let observed = Observations::from_pairs(positions, values).map_err(|e| e.to_string())?;
    let m = model
        .marginals(&observed, &queries)
        .map_err(|e| e.to_string())?;
    let samples = (req.samples > 0)
        .then(|| {
            let options = SampleOptions {
                samples: req.samples,
                autoregressive: req.autoregressive,
                temperature,
                seed: req.seed,
                ..SampleOptions::default()
            };
            model
                .sample(&observed, &queries, &options)
                .map_err(|e| e.to_string())
        })
        .transpose()?;
    let components = req
        .components
        .then(|| {
            (0..m.len())
                .map(|i| m.mixture(i))
                .collect::<Option<Vec<_>>>()
                .ok_or("this model's distribution is not a mixture: it has no components")
        })
        .transpose()?;
    Ok(Response {
        mean: (0..m.len()).map(|i| m.mean(i).to_vec()).collect(),
        std: (0..m.len()).map(|i| m.std(i).to_vec()).collect(),
        nll: truth.map(|t| {
            t.iter()
                .enumerate()
                .map(|(i, v)| -m.log_prob(i, v))
                .collect()
        }),
        mode: req
            .mode
            .then(|| (0..m.len()).map(|i| m.mode(i).to_vec()).collect()),
        components,
        samples: samples.map(|s| {
            s.iter()
                .map(|sample| sample.iter().map(|v| v.to_vec()).collect())
                .collect()
        }),
        warnings,
    })
}

/// What in a request lies outside what the model was trained on.
fn warnings<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    positions: &[[f32; P]],
    values: &[[f32; V]],
    queries: &[[f32; P]],
    limits: &Limits,
) -> Vec<String> {
    let mut out = Vec::new();
    for (what, n, total) in [
        (
            "observed positions",
            outside_cube(positions),
            positions.len(),
        ),
        ("queries", outside_cube(queries), queries.len()),
    ] {
        if n > 0 {
            out.push(format!(
                "{n} of {total} {what} lie outside [-1, 1], where the model was never trained \
                 (positions are scaled to [-1, 1] on every axis: pixel coordinates must be too)"
            ));
        }
    }
    // The bins' centres span the training values (k-means on them).
    if let Some(mix) = values.first().and_then(|_| {
        let params = vec![0.0; model.distribution().head_width()];
        model.distribution().mixture(&params)
    }) {
        let centres: Vec<f32> = mix.means.iter().flatten().copied().collect();
        if mix.means.len() > 1 {
            let lo = centres.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = centres.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let margin = (hi - lo) * 0.25;
            let outside = values
                .iter()
                .filter(|v| v.iter().any(|x| *x < lo - margin || *x > hi + margin))
                .count();
            if outside > 0 {
                out.push(format!(
                    "{outside} of {} observed values lie outside the range the model was trained \
                     on (about {lo:.3} to {hi:.3}; 8-bit pixels, say, must be scaled as in training)",
                    values.len()
                ));
            }
        }
    }
    if let Some(sets) = &limits.trained_sets {
        let n = positions.len();
        if n < sets.min_observed || n > sets.max_observed {
            out.push(format!(
                "|S| = {n} is outside the {} to {} observations the model was trained with",
                sets.min_observed, sets.max_observed
            ));
        }
    }
    out
}

/// Reads requests from `input` and writes one answer per request to `output`,
/// with the default [`Limits`]. `source` names the input in error messages
/// (a file path or `<stdin>`).
pub fn run<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    input: impl BufRead,
    output: impl Write,
    source: &str,
) -> Result<usize> {
    run_with(model, input, output, source, &Limits::default())
}

/// [`run`] with the given limits.
pub fn run_with<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    input: impl BufRead,
    mut output: impl Write,
    source: &str,
    limits: &Limits,
) -> Result<usize> {
    let mut answered = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Error::io(source, e))?;
        // `lines` drops "\n" and "\r\n"; a file saved with a byte-order mark
        // starts with one.
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        if line.trim().is_empty() {
            continue;
        }
        let response =
            answer_line_with(model, line, limits).map_err(|message| Error::Malformed {
                path: source.into(),
                message: format!("line {}: {message}", i + 1),
            })?;
        let json = serde_json::to_string(&response).expect("responses serialise");
        writeln!(output, "{json}").map_err(|e| Error::io("<output>", e))?;
        answered += 1;
    }
    output.flush().map_err(|e| Error::io("<output>", e))?;
    Ok(answered)
}
