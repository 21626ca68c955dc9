//! `predict`: the JSON-lines machine interface.
//!
//! Each input line is one request:
//! `{"positions": [[..P]..], "values": [[..V]..], "queries": [[..P]..], "truth": [[..V]..]}`
//! (`truth` optional). Each output line, in the same order, is
//! `{"mean": [[..V]..], "std": [[..V]..], "nll": [..]}` with `nll` (the proper
//! per-query negative log-likelihood in nats) only when `truth` was given.
//! Blank lines are skipped. A malformed line stops with an error naming its
//! line number; nothing is written for it.

use std::io::{BufRead, Write};

use crate::Backend;
use serde::{Deserialize, Serialize};

use crate::{Error, Model, Observations, OutputDistribution, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    positions: Vec<Vec<f32>>,
    #[serde(default)]
    values: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    truth: Option<Vec<Vec<f32>>>,
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
}

fn fixed<const N: usize>(
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

/// Answers one request line.
pub fn answer_line<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    line: &str,
) -> std::result::Result<Response, String> {
    let req: Request =
        serde_json::from_str(line).map_err(|e| format!("not a valid request: {e}"))?;
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
    let observed = Observations::from_pairs(positions, values).map_err(|e| e.to_string())?;
    let m = model
        .marginals(&observed, &queries)
        .map_err(|e| e.to_string())?;
    Ok(Response {
        mean: (0..m.len()).map(|i| m.mean(i).to_vec()).collect(),
        std: (0..m.len()).map(|i| m.std(i).to_vec()).collect(),
        nll: truth.map(|t| {
            t.iter()
                .enumerate()
                .map(|(i, v)| -m.log_prob(i, v))
                .collect()
        }),
    })
}

/// Reads requests from `input` and writes one answer per request to `output`.
/// `source` names the input in error messages (a file path or `<stdin>`).
pub fn run<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    input: impl BufRead,
    mut output: impl Write,
    source: &str,
) -> Result<usize> {
    let mut answered = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Error::io(source, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let response = answer_line(model, &line).map_err(|message| Error::Malformed {
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
