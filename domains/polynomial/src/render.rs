//! Pictures: the paper's Figure 9 (truth, mean, ±2σ, samples, observations)
//! and the training curve.

use std::path::{Path, PathBuf};

use pixel_transformer::kernels::Backend;
use pixel_transformer::plot::{plot_function_grid, FunctionPanel};
use pixel_transformer::{
    signal::random_position, trainer::plot_training_curve, Domain, Model, Observations,
    OutputDistribution, Result, SampleOptions, SpatialSignal, Split,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::bayes::BayesPosterior;
use crate::PolynomialDomain;

/// Observation-set sizes shown as columns.
const SIZES: [usize; 3] = [4, 6, 10];
/// Polynomials shown as rows.
const ROWS: usize = 3;
/// Sampled functions per panel.
const SAMPLES: usize = 3;

pub(crate) fn render<D: Backend, O: OutputDistribution<1>>(
    domain: &PolynomialDomain,
    model: &Model<1, 1, D, O>,
    out_dir: &Path,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let grid = domain.grid().positions();
    let xs: Vec<f64> = grid.iter().map(|x| x[0] as f64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9f19);
    let mut panels = Vec::new();
    for row in 0..ROWS {
        // One polynomial per row; nested observation sets across the columns.
        let signal = domain.draw_signal(Split::Test, &mut rng);
        let mut observed = Observations::new();
        let positions: Vec<[f32; 1]> = (0..SIZES[SIZES.len() - 1])
            .map(|_| random_position(&mut rng))
            .collect();
        for x in &positions {
            observed.push(*x, domain.observe(&signal, *x, &mut rng));
        }
        for &n in &SIZES {
            let mut s = observed.clone();
            s.positions.truncate(n);
            s.values.truncate(n);
            let m = model.marginals(&s, &grid)?;
            let samples = model.sample(
                &s,
                &grid,
                &SampleOptions {
                    samples: SAMPLES,
                    autoregressive: None,
                    temperature: 1.0,
                    seed: seed + row as u64,
                    values_per_pass: 1,
                },
            )?;
            let bx: Vec<f64> = s.positions.iter().map(|x| x[0] as f64).collect();
            let by: Vec<f64> = s.values.iter().map(|v| v[0] as f64).collect();
            let bayes = BayesPosterior::fit(
                &bx,
                &by,
                domain.config.noise_std as f64,
                crate::bayes::NOISE_FREE_JITTER,
            )
            .map_err(pixel_transformer::Error::invalid)?;
            panels.push(FunctionPanel {
                title: format!("polynomial {} · |S| = {n}", row + 1),
                xs: xs.clone(),
                truth: Some(grid.iter().map(|x| signal.value_at(*x)[0] as f64).collect()),
                mean: m.means().iter().map(|v| v[0] as f64).collect(),
                std: m.stds().iter().map(|v| v[0] as f64).collect(),
                samples: samples
                    .iter()
                    .map(|s| s.iter().map(|v| v[0] as f64).collect())
                    .collect(),
                reference_mean: Some(xs.iter().map(|&x| bayes.predict(x).0).collect()),
                observed: bx.into_iter().zip(by).collect(),
            });
        }
    }
    let mut written = Vec::new();
    for ext in ["png", "svg"] {
        let path = out_dir.join(format!("samples.{ext}"));
        plot_function_grid(&path, &panels, SIZES.len())?;
        written.push(path);
    }
    written.extend(plot_training_curve(out_dir)?);
    Ok(written)
}
