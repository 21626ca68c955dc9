//! What data parallelism costs: for each preset, the time to all-reduce its
//! gradients (as training does each step) next to the time of a training
//! step on one rank and shared by all, under `mpirun` (the `mpi` feature).
//!
//! ```sh
//! cargo build --release --features mpi --example allreduce
//! mpirun -n 2 target/release/examples/allreduce             # as root: add --allow-run-as-root
//! ```
//!
//! Every step here is a batch of `--batch` signals with `|S| = |Q| =
//! --set` (image-like, 32 value bins), no dropout; the one-rank step runs
//! the whole batch on rank 0 alone, the shared step splits it over the
//! ranks. Rank 0 prints a table and one JSON line per preset; the book's
//! chapter "Training on many machines" projects the figures to more ranks.

use std::time::Instant;

use clap::Parser;
use pixel_transformer::deps::dfdx::prelude::*;
use pixel_transformer::train::distributed::Ranks;
use pixel_transformer::train::trainer::{train, TrainOptions, TrainState};
use pixel_transformer::train::{launch, TrainSettings};
use pixel_transformer::{BinnedMixture, Model, Preset, SetSizes};
use pixel_transformer_polynomial::PolynomialDomain;

#[derive(Parser, Debug)]
struct Args {
    /// Global batch (signals per step; the ranks must divide it).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Observed and query points per signal.
    #[arg(long, default_value_t = 256)]
    set: usize,
    /// Timed training steps per measurement (after one untimed).
    #[arg(long, default_value_t = 3)]
    steps: u64,
    /// Timed all-reduces per preset (after two untimed).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Presets to measure.
    #[arg(long, value_delimiter = ',', default_value = "tiny,small,paper")]
    presets: Vec<Preset>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Median seconds of `reps` calls of `f` (after two untimed), the ranks
/// starting each call together.
fn time(ranks: &Ranks, reps: usize, mut f: impl FnMut()) -> f64 {
    let barrier = || {
        if let Some(c) = ranks.communicator() {
            c.all_gather_u64(&[0]);
        }
    };
    let mut times = Vec::new();
    for i in 0..reps + 2 {
        barrier();
        let start = Instant::now();
        f();
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    median(times)
}

/// Median seconds per training step of `preset` shared by `ranks`.
fn step_time(preset: Preset, args: &Args, ranks: Ranks) -> anyhow::Result<f64> {
    let centres: Vec<[f32; 1]> = (0..32).map(|i| [i as f32 / 31.0 * 2.0 - 1.0]).collect();
    let distribution = BinnedMixture::with_centres(&centres, 0.1, 1e-3)?;
    let model = Model::new(preset.config(), distribution, 0, &Cpu::default())?;
    let settings = TrainSettings {
        seed: 0,
        batch_size: args.batch,
        learning_rate: 1e-4,
        sets: SetSizes {
            min_observed: args.set,
            max_observed: args.set,
            queries: args.set,
        },
        cosine_decay_steps: None,
        dropout: 0.0,
    };
    let mut state = TrainState::<1, 1, Cpu, BinnedMixture>::new(model, settings);
    let dir = std::env::temp_dir().join(format!("pt-allreduce-{}", std::process::id()));
    let mut options = TrainOptions::new(1 + args.steps, &dir);
    options.progress = false;
    options.eval_every = 0;
    options.checkpoint_every = u64::MAX;
    options.ranks = ranks;
    let domain = PolynomialDomain::new(0.0)?;
    let lines = train(&domain, &mut state, &options)?;
    let _ = std::fs::remove_dir_all(&dir);
    // Per step: the time since the step before (the first, untimed, warms up).
    let per_step = lines.windows(2).map(|w| w[1].elapsed_s - w[0].elapsed_s);
    Ok(median(per_step.collect()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let world = launch::start()?;
    let outcome = measure(&args, &world);
    if let Err(e) = &outcome {
        eprintln!("Error on rank {}: {e:#}", world.rank());
        world.abort(1);
    }
    launch::finish();
    outcome
}

fn measure(args: &Args, world: &Ranks) -> anyhow::Result<()> {
    let n = world.size();
    let say = world.writes();
    if say {
        println!(
            "{n} rank(s), {} thread(s) each; steps of batch {} with |S| = |Q| = {}",
            rayon::current_num_threads(),
            args.batch,
            args.set
        );
        println!(
            "{:>6} {:>10} {:>9} | {:>12} {:>12} | {:>11} {:>11} {:>8} | {:>8}",
            "preset",
            "params",
            "MiB",
            "all-reduce",
            "gather+sum",
            "1-rank step",
            format!("{n}-rank step"),
            "speed-up",
            "share"
        );
    }
    for &preset in &args.presets {
        let params = Model::<1, 1, Cpu, BinnedMixture>::new(
            preset.config(),
            BinnedMixture::gaussian(1, 1e-3),
            0,
            &Cpu::default(),
        )?
        .num_params()
            + 32 * 3; // a 32-bin head instead of one Gaussian
        let mut grads = vec![1e-3f32; params];
        let (reduce, gather) = match world.communicator() {
            Some(c) => (
                time(world, args.reps, || c.all_reduce_sum_f32(&mut grads)),
                time(world, args.reps, || {
                    let all = c.all_gather_f32(&grads);
                    let mut sum = all[..params].to_vec();
                    for rank in all.chunks(params).skip(1) {
                        sum.iter_mut().zip(rank).for_each(|(s, x)| *s += x);
                    }
                    grads.copy_from_slice(&sum);
                }),
            ),
            None => (0.0, 0.0),
        };
        // The whole batch on rank 0 (the others wait), then shared by all.
        let alone = if say {
            step_time(preset, args, Ranks::single())?
        } else {
            f64::NAN
        };
        if let Some(c) = world.communicator() {
            c.all_gather_u64(&[0]);
        }
        let shared = step_time(preset, args, world.clone())?;
        if say {
            let mib = params as f64 * 4.0 / (1 << 20) as f64;
            println!(
                "{:>6} {:>10} {:>9.2} | {:>9.2} ms {:>9.2} ms | {:>8.0} ms {:>8.0} ms {:>7.2}× | {:>7.1}%",
                format!("{preset:?}").to_lowercase(),
                params,
                mib,
                reduce * 1e3,
                gather * 1e3,
                alone * 1e3,
                shared * 1e3,
                alone / shared,
                100.0 * reduce / shared
            );
            eprintln!(
                "{}",
                serde_json::json!({
                    "preset": format!("{preset:?}").to_lowercase(),
                    "ranks": n,
                    "params": params,
                    "allreduce_ms": reduce * 1e3,
                    "gather_sum_ms": gather * 1e3,
                    "allreduce_gbytes_per_s": params as f64 * 4.0 / reduce / 1e9,
                    "step_ms_one_rank": alone * 1e3,
                    "step_ms_shared": shared * 1e3,
                    "allreduce_share_of_shared_step": reduce / shared,
                    "batch": args.batch,
                    "set": args.set,
                })
            );
        }
    }
    Ok(())
}
