//! The shape benchmark: IoU of the mean shape's occupancy and Chamfer
//! distance of its mesh against the truth, next to a nearest-neighbour baseline.

use std::fmt::Write as _;
use std::path::Path;

use pixel_transformer::infer::shard::Shard;
use pixel_transformer::signal::random_position;
use pixel_transformer::Backend;
use pixel_transformer::{
    io::write_atomic, Error, Model, Observations, OutputDistribution, Result, RunOptions,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{chamfer, marching_cubes, Mesh, SdfDomain, SdfGrid, SdfSignal};

/// Observation-set sizes of the benchmark (the paper's figure uses 32).
pub const EVAL_SIZES: [usize; 3] = [32, 128, 512];
/// Surface points per mesh for the Chamfer distance.
const CHAMFER_POINTS: usize = 2048;
/// Resolution of the ground-truth mesh the Chamfer distance is measured against.
const TRUTH_RESOLUTION: usize = 64;

/// The field in which every grid sample takes the value of the nearest observation.
pub fn nearest_fill(observed: &Observations<3, 1>, shape: [usize; 3]) -> Result<SdfGrid> {
    observed.validate()?;
    if observed.is_empty() {
        return Err(Error::invalid(
            "the nearest-neighbour fill needs at least one observation",
        ));
    }
    let values = pixel_transformer::Grid::new(shape)
        .positions()
        .iter()
        .map(|p| {
            let mut best = (f32::INFINITY, 0);
            for (k, q) in observed.positions.iter().enumerate() {
                let d = pixel_transformer::signal::squared_distance(p, q);
                if d < best.0 {
                    best = (d, k);
                }
            }
            observed.values[best.1][0]
        })
        .collect();
    SdfGrid::new(shape, values)
}

/// The mean of one method at one `|S|` over the held-out shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// Observed samples per shape.
    pub observed: usize,
    /// `model` (the predicted mean field) or `nearest` (the baseline).
    pub method: &'static str,
    /// Mean intersection over union of the occupancy (`value < 0`) on the grid.
    pub iou: f64,
    /// Mean symmetric Chamfer distance of the mesh to the true surface
    /// (normalised units, the cube is 2 wide).
    pub chamfer: f64,
    /// Shapes whose predicted surface was empty (scored as a single point at the centre).
    pub empty: usize,
}

fn iou(a: &SdfGrid, b: &SdfGrid) -> f64 {
    let (mut both, mut either) = (0usize, 0usize);
    for (x, y) in a.values().iter().zip(b.values()) {
        let (x, y) = (*x < 0.0, *y < 0.0);
        both += usize::from(x && y);
        either += usize::from(x || y);
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

/// Chamfer distance of `mesh` to the truth's surface points; an empty mesh
/// counts as a shape collapsed to the centre point.
fn mesh_chamfer(mesh: &Mesh, truth: &[[f32; 3]], rng: &mut ChaCha8Rng) -> (f64, bool) {
    let points = mesh.sample_surface(CHAMFER_POINTS, rng);
    match chamfer(&points, truth) {
        Some(d) => (d, false),
        None => (chamfer(&[[0.0; 3]], truth).unwrap_or(0.0), true),
    }
}

/// Random observations of `signal`, uniform in the cube.
pub(crate) fn observe(signal: &SdfSignal, n: usize, rng: &mut ChaCha8Rng) -> Observations<3, 1> {
    let positions: Vec<[f32; 3]> = (0..n).map(|_| random_position(rng)).collect();
    Observations::observe(signal, &positions)
}

/// Measures the model's mean shape and the nearest-neighbour fill on the
/// first `shapes` held-out shapes at each `|S|` in `sizes`, with meshes and
/// occupancy on a `resolution³` grid. Observations are seeded by `seed`,
/// `|S|` and the shape's index, so a rerun measures the same sets.
pub fn benchmark<D: Backend, O: OutputDistribution<1>>(
    domain: &SdfDomain,
    model: &Model<3, 1, D, O>,
    sizes: &[usize],
    shapes: usize,
    resolution: usize,
    seed: u64,
) -> Result<Vec<BenchRow>> {
    benchmark_shared(
        domain,
        model,
        sizes,
        shapes,
        resolution,
        seed,
        &Shard::default(),
    )
}

/// [`benchmark`], the shapes shared by the ranks of `shard`; every rank
/// adds all shapes' scores in shape order, as one process does.
pub fn benchmark_shared<D: Backend, O: OutputDistribution<1>>(
    domain: &SdfDomain,
    model: &Model<3, 1, D, O>,
    sizes: &[usize],
    shapes: usize,
    resolution: usize,
    seed: u64,
    shard: &Shard,
) -> Result<Vec<BenchRow>> {
    let shape = [resolution; 3];
    let positions = pixel_transformer::Grid::new(shape).positions();
    // Ground truth once per shape of this rank: occupancy grid and surface points.
    let mut truths = Vec::with_capacity(shapes);
    for i in (0..shapes).filter(|&i| shard.mine(i)) {
        let signal = domain.test_signal(i);
        let grid = domain.truth_grid(&signal, resolution)?;
        let fine = domain.truth_grid(&signal, TRUTH_RESOLUTION)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc4a3 ^ i as u64);
        let points = marching_cubes(&fine, 0.0).sample_surface(CHAMFER_POINTS, &mut rng);
        truths.push((i, signal, grid, points));
    }
    let mut rows = Vec::new();
    for &n in sizes {
        // Per shape: IoU, Chamfer distance and emptiness of each method.
        let mut mine = Vec::new();
        for (i, signal, truth, truth_points) in &truths {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(((n as u64) << 32) | *i as u64);
            let observed = observe(signal, n, &mut rng);
            let mean: Vec<f32> = model
                .mean_field(&observed, &positions)?
                .into_iter()
                .map(|[v]| v)
                .collect();
            let predictions = [SdfGrid::new(shape, mean)?, nearest_fill(&observed, shape)?];
            for grid in &predictions {
                let (c, empty) = mesh_chamfer(&marching_cubes(grid, 0.0), truth_points, &mut rng);
                mine.extend([iou(grid, truth), c, f64::from(u8::from(empty))]);
            }
        }
        let mut sums = [(0.0f64, 0.0f64, 0usize); 2];
        for scores in shard.collect(shapes, 6, mine).chunks(6) {
            for (sum, s) in sums.iter_mut().zip(scores.chunks(3)) {
                sum.0 += s[0];
                sum.1 += s[1];
                sum.2 += s[2] as usize;
            }
        }
        for (method, (iou, cd, empty)) in ["model", "nearest"].into_iter().zip(sums) {
            rows.push(BenchRow {
                observed: n,
                method,
                iou: iou / shapes as f64,
                chamfer: cd / shapes as f64,
                empty,
            });
        }
    }
    Ok(rows)
}

/// The `eval` command: the benchmark on `shapes` held-out shapes (at most
/// the test set), as a table, and as `eval.csv` in `out_dir`.
pub(crate) fn evaluate<D: Backend, O: OutputDistribution<1>>(
    domain: &SdfDomain,
    model: &Model<3, 1, D, O>,
    out_dir: &Path,
    shapes: usize,
    options: &RunOptions,
) -> Result<String> {
    let shapes = shapes.clamp(1, domain.test_len());
    let resolution = domain.settings().resolution;
    let rows = benchmark_shared(
        domain,
        model,
        &EVAL_SIZES,
        shapes,
        resolution,
        options.seed,
        &options.shard,
    )?;
    let mut csv = String::from("observed,method,iou,chamfer,empty_meshes\n");
    let mut table = format!(
        "{shapes} held-out shapes, occupancy and meshes on a {resolution}³ grid \
         (Chamfer: mean of both directions, {CHAMFER_POINTS} surface points, cube side 2)\n\
         {:>5}  {:>8}  {:>6}  {:>8}  {:>6}\n",
        "|S|", "method", "IoU", "Chamfer", "empty"
    );
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{}",
            r.observed, r.method, r.iou, r.chamfer, r.empty
        );
        let _ = writeln!(
            table,
            "{:>5}  {:>8}  {:>6.3}  {:>8.4}  {:>6}",
            r.observed, r.method, r.iou, r.chamfer, r.empty
        );
    }
    if options.shard.writes() {
        write_atomic(&out_dir.join("eval.csv"), csv.as_bytes())?;
    }
    Ok(table)
}
