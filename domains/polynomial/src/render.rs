//! Pictures: the paper's Figure 9 (truth, mean, ±2σ, samples, observations),
//! the framework's stock curves with the exact Bayes posterior mean added.

use std::path::{Path, PathBuf};

use pixel_transformer::plot::{plot_function_grid, stock};
use pixel_transformer::{Backend, Domain, Model, OutputDistribution, Result, RunOptions, Split};

use crate::bayes::BayesPosterior;
use crate::PolynomialDomain;

/// Observation-set sizes shown as columns.
const SIZES: [usize; 3] = [4, 6, 10];

pub(crate) fn render<D: Backend, O: OutputDistribution<1>>(
    domain: &PolynomialDomain,
    model: &Model<1, 1, D, O>,
    out_dir: &Path,
    options: &RunOptions,
) -> Result<Vec<PathBuf>> {
    let options = RunOptions {
        // Every value drawn one at a time: 100 grid points are cheap.
        sample_autoregressive: options.sample_autoregressive.or(Some(usize::MAX)),
        ..options.clone()
    };
    let rows = stock::rows(
        options.render_count.unwrap_or(stock::SIGNALS),
        SIZES[SIZES.len() - 1],
        options.seed,
        |rng| domain.draw_signal(Split::Test, rng),
        |signal, x, rng| domain.observe(signal, x, rng),
    );
    let mut panels = stock::curve_panels(model, &rows, &domain.grid(), &SIZES, &options)?;
    for (panel, (row, n)) in panels
        .iter_mut()
        .zip(rows.iter().flat_map(|r| SIZES.map(|n| (r, n))))
    {
        let observed = row.first(n);
        let bx: Vec<f64> = observed.positions.iter().map(|x| x[0] as f64).collect();
        let by: Vec<f64> = observed.values.iter().map(|v| v[0] as f64).collect();
        let noise = domain.config.noise_std as f64;
        let bayes = BayesPosterior::fit(&bx, &by, noise, crate::bayes::NOISE_FREE_JITTER)
            .map_err(pixel_transformer::Error::invalid)?;
        panel.reference_mean = Some(panel.xs.iter().map(|&x| bayes.predict(x).0).collect());
    }
    let mut written = Vec::new();
    std::fs::create_dir_all(out_dir).map_err(|e| pixel_transformer::Error::io(out_dir, e))?;
    for ext in ["png", "svg"] {
        let path = out_dir.join(format!("samples.{ext}"));
        plot_function_grid(&path, &panels, SIZES.len())?;
        written.push(path);
    }
    Ok(written)
}
