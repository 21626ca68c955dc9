//! What the page asks besides `/predict`, all from the [`Domain`] trait so
//! that a user's own domain gets the page with no extra code: the facts it
//! lays itself out by (`/info`), test signals on the grid (`/signal`), and
//! the exact posterior where the domain knows one (`/posterior`).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::domain::{config_to_json, Domain, Split};
use crate::infer::predict::{fixed, Limits};
use crate::{Backend, BinnedMixture, Model, Observations, SpatialSignal};

/// Test signals drawn to find the range of values the page paints with.
const RANGE_SIGNALS: u64 = 8;
/// Grid cells read per test signal for that range.
const RANGE_CELLS: usize = 4096;

/// The page's facts about the domain and model, as JSON.
pub(super) fn info<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    model: &Model<P, V, D, BinnedMixture>,
    limits: &Limits,
) -> serde_json::Value {
    let sets = limits.trained_sets;
    serde_json::json!({
        "domain": Dm::NAME,
        "positions": P,
        "values": V,
        "grid": domain.grid().shape.to_vec(),
        // As f32 prints them ("-1.0415498", not "-1.041549801826477").
        "value_range": value_range(domain).map(|x| x.to_string().parse::<f64>().unwrap_or(0.0)),
        "exact_posterior": has_exact_posterior(domain),
        "settings": config_to_json::<P, V, Dm>(&domain.config()).ok(),
        "trained_observed": sets.map(|s| [s.min_observed, s.max_observed]),
        "limits": {
            "max_queries": limits.max_queries,
            "max_observations": limits.max_observations,
            "max_sampled_values": limits.max_sampled_values,
        },
        "model": {
            "parameters": model.num_params(),
            "bins": model.distribution().bins(),
        },
    })
}

/// The lowest and highest value of a few test signals (every channel): what
/// the page maps its grey levels and colours to.
fn value_range<const P: usize, const V: usize, Dm: Domain<P, V>>(domain: &Dm) -> [f32; 2] {
    let grid = domain.grid();
    let stride = (grid.len() / RANGE_CELLS).max(1);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for seed in 0..RANGE_SIGNALS {
        let signal = domain.draw_signal(Split::Test, &mut ChaCha8Rng::seed_from_u64(seed));
        for i in (0..grid.len()).step_by(stride) {
            for x in signal.value_at(grid.position(i)) {
                if x.is_finite() {
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
        }
    }
    if lo >= hi {
        // A constant (or empty) signal: any span around it will do.
        let centre = if lo.is_finite() { lo } else { 0.0 };
        return [centre - 0.5, centre + 0.5];
    }
    [lo, hi]
}

fn has_exact_posterior<const P: usize, const V: usize, Dm: Domain<P, V>>(domain: &Dm) -> bool {
    domain
        .exact_posterior(&Observations::new(), &[[0.0; P]])
        .is_some()
}

/// The `seed` of a query string like `seed=3` (0 when not given).
pub(super) fn seed_of(query: Option<&str>) -> Result<u64, String> {
    for pair in query.unwrap_or("").split('&') {
        if let Some(value) = pair.strip_prefix("seed=") {
            return value.parse().map_err(|_| {
                format!("`seed` must be a whole number from 0 to 2^64 − 1, got {value:?}")
            });
        }
    }
    Ok(0)
}

/// Test signal `seed` (the one `sample` and the pictures would draw with
/// that seed) on the domain's grid, as `{"seed", "values"}`: `values` holds
/// every cell's `V` values in turn, cells x fastest. Grids of more cells
/// than a request may query are refused: the page could not use them.
pub(super) fn signal<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    seed: u64,
    limits: &Limits,
) -> Result<String, String> {
    let grid = domain.grid();
    if grid.len() > limits.max_queries {
        return Err(format!(
            "the grid has {} cells, more than the {} a request may query (--max-queries)",
            grid.len(),
            limits.max_queries
        ));
    }
    let signal = domain.draw_signal(Split::Test, &mut ChaCha8Rng::seed_from_u64(seed));
    // Serialised as f32 (`json!` would widen them, "0.003921569" to
    // "0.003921568859368563"): the page reads them as such.
    #[derive(Serialize)]
    struct Signal {
        seed: u64,
        values: Vec<f32>,
    }
    let values = (0..grid.len())
        .flat_map(|i| signal.value_at(grid.position(i)))
        .collect();
    Ok(serde_json::to_string(&Signal { seed, values }).expect("numbers serialise"))
}

/// Observations and queries, as in a `predict` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Points {
    #[serde(default)]
    positions: Vec<Vec<f32>>,
    #[serde(default)]
    values: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

/// The domain's exact posterior at the queries of `body` (`positions`,
/// `values`, `queries` as in a `predict` request), as `{"mean", "std"}`;
/// `Ok(None)` when the domain has none.
pub(super) fn posterior<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    body: &str,
    limits: &Limits,
) -> Result<Option<String>, String> {
    let points: Points =
        serde_json::from_str(body).map_err(|e| format!("not a valid request: {e}"))?;
    if points.queries.len() > limits.max_queries || points.positions.len() > limits.max_observations
    {
        return Err(format!(
            "{} queries and {} observations, more than the {} and {} a request may give",
            points.queries.len(),
            points.positions.len(),
            limits.max_queries,
            limits.max_observations
        ));
    }
    let observed = Observations::from_pairs(
        fixed::<P>(points.positions, "positions")?,
        fixed::<V>(points.values, "values")?,
    )
    .map_err(|e| e.to_string())?;
    let queries = fixed::<P>(points.queries, "queries")?;
    let Some(answer) = domain.exact_posterior(&observed, &queries) else {
        return Ok(None);
    };
    #[derive(Serialize)]
    struct Posterior {
        mean: Vec<Vec<f32>>,
        std: Vec<Vec<f32>>,
    }
    let (mean, std) = answer
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(m, s)| (m.to_vec(), s.to_vec()))
        .unzip();
    let json = serde_json::to_string(&Posterior { mean, std }).expect("numbers serialise");
    Ok(Some(json))
}
