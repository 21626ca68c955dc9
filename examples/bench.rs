//! Speed and memory benchmark: one JSON line per run.
//!
//! ```sh
//! cargo run --release --example bench -- --config mnist-small --steps 10 --warmup 2
//! cargo run --release --example bench -- --config sample-mnist --mode sample
//! cargo run --release --example bench -- --config mnist-small --observed 1024 --queries 1024   # scaling
//! ```
//!
//! The configurations mirror the PyTorch reference (`shared/tools/torch-reference/bench.py`):
//! same architecture sizes, batch shapes, random data, Adam, and dropout 0.1
//! on the feed-forward hidden units and the sub-layer outputs (`--dropout`;
//! compare with the reference's `--attn-dropout 0` runs, as it drops no
//! attention probabilities then either). One difference to keep in mind: this
//! model uses pre-norm blocks (the reference normalises sub-layer outputs),
//! which changes the cost by a few element-wise passes.

use std::time::Instant;

use clap::Parser;
use pixel_transformer::backend::{with_attention_kernel, AttentionKernel};
use pixel_transformer::deps::dfdx::prelude::*;
use pixel_transformer::train::data::Example;
use pixel_transformer::train::optim::Adam;
use pixel_transformer::train::trainer::train_step;
use pixel_transformer::Backend;
use pixel_transformer::{BinnedMixture, Model, ModelConfig, Observations, SampleOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Parser, Debug)]
struct Args {
    /// poly | mnist-small | mnist | cifar | sample-mnist
    #[arg(long, default_value = "mnist-small")]
    config: String,
    /// Timed steps (train) or timed sample draws (sample).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// train | sample (sample-mnist implies sample) | attention (one
    /// self-attention call over the config's batch, |Q| = queries and
    /// |S| = observed, forward and backward: the kernels alone).
    #[arg(long)]
    mode: Option<String>,
    /// Worker threads [default: rayon's choice, one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Override |S| (observed samples per signal).
    #[arg(long)]
    observed: Option<usize>,
    /// Override |Q| (queries per signal; values drawn in sample mode).
    #[arg(long)]
    queries: Option<usize>,
    /// Sample mode: values drawn per network pass (1 = exact; more is an approximation).
    #[arg(long, default_value_t = 1)]
    per_pass: usize,
    /// Sample mode: samples drawn together, one batch item each (the
    /// reference draws one); the time per value divides by all of them.
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Sample mode: also score each sample under the exact model (one more pass per value, untimed).
    #[arg(long)]
    score: bool,
    /// cpu | cuda
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Training dropout rate (the reference's default is 0.1).
    #[arg(long, default_value_t = 0.1)]
    dropout: f32,
    /// Add the distance bias of the presets (not in the reference
    /// architecture), to measure what it costs.
    #[arg(long)]
    distance_bias: bool,
    /// Leave the C allocator's defaults (skip `kernels::keep_freed_memory`),
    /// to measure what that setting is worth.
    #[arg(long)]
    system_allocator: bool,
    /// CPU attention kernel: auto | keep (keeps the weights) | tiled.
    #[arg(long, default_value = "auto")]
    attention: String,
}

#[derive(Clone, Copy)]
struct Shape {
    p: usize,
    v: usize,
    bins: usize,
    embed: usize,
    layers: usize,
    batch: usize,
    observed: usize,
    queries: usize,
}

fn config(name: &str) -> anyhow::Result<Shape> {
    let s = |p, v, bins, embed, layers, batch, observed, queries| Shape {
        p,
        v,
        bins,
        embed,
        layers,
        batch,
        observed,
        queries,
    };
    Ok(match name {
        "poly" => s(1, 1, 1, 128, 10, 32, 20, 20),
        "mnist-small" => s(2, 1, 32, 64, 4, 16, 256, 256),
        "mnist" => s(2, 1, 32, 128, 10, 6, 512, 512),
        "cifar" => s(2, 3, 512, 128, 10, 6, 2048, 2048),
        "sample-mnist" => s(2, 1, 32, 64, 4, 1, 32, 784),
        other => anyhow::bail!(
            "unknown config `{other}` (poly, mnist-small, mnist, cifar, sample-mnist)"
        ),
    })
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time this process has used (user + system), in milliseconds:
/// unlike the wall clock, it hardly moves when other processes share the
/// cores (10 ms resolution; Linux only, NaN elsewhere).
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces): utime is
            // the 12th, stime the 13th, in clock ticks of 10 ms.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) * 10.0)
        })
        .unwrap_or(f64::NAN)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        f64::NAN
    } else {
        xs[xs.len() / 2]
    }
}

fn run<const P: usize, const V: usize, D: Backend>(
    args: &Args,
    shape: Shape,
    sample: bool,
    device: D,
) -> anyhow::Result<serde_json::Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let distribution = if shape.bins == 1 {
        BinnedMixture::gaussian(V, 1e-3)
    } else {
        let centres: Vec<[f32; V]> = (0..shape.bins)
            .map(|_| std::array::from_fn(|_| rng.gen()))
            .collect();
        BinnedMixture::with_centres(&centres, 0.1, 1e-3)?
    };
    let config = ModelConfig {
        embed_dim: shape.embed,
        heads: 4,
        ff_dim: 4 * shape.embed,
        encoder_layers: shape.layers,
        decoder_layers: shape.layers,
        fourier_scale: 2.0,
        raw_positions: true,
        // The reference architecture has no distance bias.
        distance_bias: args.distance_bias,
        nearest_value: false,
    };
    let mut model = Model::<P, V, D, BinnedMixture>::new(config, distribution, 0, &device)?;
    let params = model.num_params();
    let random_set = |rng: &mut ChaCha8Rng, n: usize| {
        let mut s = Observations::<P, V>::new();
        for _ in 0..n {
            s.push(
                std::array::from_fn(|_| rng.gen_range(-1.0..1.0)),
                std::array::from_fn(|_| rng.gen()),
            );
        }
        s
    };
    let mut result = serde_json::json!({
        "config": args.config,
        "mode": if sample { "sample" } else { "train" },
        "params": params,
        "threads": rayon::current_num_threads(),
        "distance_bias": args.distance_bias,
        "system_allocator": args.system_allocator,
        "device": args.device,
        "observed": shape.observed,
        "queries": shape.queries,
        "batch": shape.batch,
    });
    if sample {
        // Exact autoregressive sampling: every value is drawn by a full network
        // pass conditioned on the observations plus everything drawn so far.
        let observed = random_set(&mut rng, shape.observed);
        let positions: Vec<[f32; P]> = (0..shape.queries)
            .map(|_| std::array::from_fn(|_| rng.gen_range(-1.0..1.0)))
            .collect();
        let mut times = Vec::new();
        let mut scores = Vec::new();
        for i in 0..args.warmup + args.steps.max(1) {
            let opts = SampleOptions {
                samples: args.samples.max(1),
                autoregressive: None,
                temperature: 1.0,
                seed: i as u64,
                values_per_pass: args.per_pass,
            };
            let start = Instant::now();
            let drawn = model.sample(&observed, &positions, &opts)?;
            if i >= args.warmup {
                let values = (shape.queries * args.samples.max(1)) as f64;
                times.push(start.elapsed().as_secs_f64() * 1e3 / values);
                if args.score {
                    let ll = model.sequence_log_prob(&observed, &positions, &drawn[0], 1)?;
                    scores.push(ll / shape.queries as f64);
                }
            }
        }
        result["ms_per_sample_value"] = serde_json::json!(median(times));
        result["values_per_pass"] = serde_json::json!(args.per_pass);
        result["samples"] = serde_json::json!(args.samples.max(1));
        if args.score {
            result["exact_log_likelihood_per_value"] =
                serde_json::json!(scores.iter().sum::<f64>() / scores.len().max(1) as f64);
        }
    } else {
        let mut adam = Adam::new(1e-4);
        let (mut times, mut cpu) = (Vec::new(), Vec::new());
        for i in 0..args.warmup + args.steps.max(1) {
            let batch: Vec<Example<P, V>> = (0..shape.batch)
                .map(|_| Example {
                    observed: random_set(&mut rng, shape.observed),
                    queries: (0..shape.queries)
                        .map(|_| std::array::from_fn(|_| rng.gen_range(-1.0..1.0)))
                        .collect(),
                    targets: (0..shape.queries)
                        .map(|_| std::array::from_fn(|_| rng.gen()))
                        .collect(),
                })
                .collect();
            // Exactly the trainer's step: forward, loss, backward, Adam.
            let dropout = (args.dropout > 0.0).then_some(pixel_transformer::Dropout {
                rate: args.dropout,
                seed: i as u64,
            });
            let (start, cpu_start) = (Instant::now(), cpu_ms());
            train_step(&mut model, &mut adam, &batch, dropout)?;
            if i >= args.warmup {
                times.push(start.elapsed().as_secs_f64() * 1e3);
                cpu.push(cpu_ms() - cpu_start);
            }
        }
        result["ms_per_train_step_min"] =
            serde_json::json!(times.iter().cloned().fold(f64::INFINITY, f64::min));
        result["ms_per_train_step_median"] = serde_json::json!(median(times));
        result["cpu_ms_per_train_step_median"] = serde_json::json!(median(cpu));
        result["dropout"] = serde_json::json!(args.dropout);
    }
    result["peak_rss_mib"] = serde_json::json!(peak_rss_mib());
    Ok(result)
}

/// `--mode attention`: times one attention call, forward and backward, with
/// the config's batch, 4 heads of width 2E / 4, and a padded last item.
fn attention_only<D: Backend>(
    args: &Args,
    shape: Shape,
    device: D,
) -> anyhow::Result<serde_json::Value> {
    use pixel_transformer::backend::AttentionShape;
    let (b, h, d) = (shape.batch, 4, 2 * shape.embed / 4);
    let (sq, sk) = (shape.queries, shape.observed);
    let s = AttentionShape {
        batch: b,
        heads: h,
        queries: sq,
        keys: sk,
        scale: 1.0 / (d as f32).sqrt(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut random = |rows: usize| {
        let data: Vec<f32> = (0..rows * h * d)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        device.tensor_from_vec(data, (rows, h * d))
    };
    let (q, k, v, w) = (
        random(b * sq),
        random(b * sk),
        random(b * sk),
        random(b * sq),
    );
    let mut bias = vec![0.0f32; b * sk];
    bias[b * sk / 2..]
        .iter_mut()
        .skip(sk / 2)
        .for_each(|x| *x = -1e9);
    let bias = device.tensor_from_vec(bias, (b, sk));
    let mut times = Vec::new();
    for i in 0..args.warmup + args.steps.max(1) {
        let start = Instant::now();
        let (qt, kt, vt) = (q.leaky_trace(), k.leaky_trace(), v.leaky_trace());
        let out = D::attention(qt, kt, vt, s, Some(&bias));
        let grads = (out * w.clone()).sum().backward();
        std::hint::black_box(grads.get(&q));
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(serde_json::json!({
        "mode": "attention",
        "batch": b,
        "heads": h,
        "head_width": d,
        "queries": sq,
        "keys": sk,
        "ms_min": times.iter().cloned().fold(f64::INFINITY, f64::min),
        "ms_median": median(times),
    }))
}

fn dispatch<D: Backend>(args: &Args, device: D) -> anyhow::Result<serde_json::Value> {
    let mut shape = config(&args.config)?;
    shape.observed = args.observed.unwrap_or(shape.observed);
    shape.queries = args.queries.unwrap_or(shape.queries);
    if args.mode.as_deref() == Some("attention") {
        return attention_only(args, shape, device);
    }
    let sample = args.mode.as_deref() == Some("sample") || args.config == "sample-mnist";
    match (shape.p, shape.v) {
        (1, 1) => run::<1, 1, D>(args, shape, sample, device),
        (2, 1) => run::<2, 1, D>(args, shape, sample, device),
        (2, 3) => run::<2, 3, D>(args, shape, sample, device),
        _ => unreachable!("configs above use only these dimensions"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
    }
    let kernel = match args.attention.as_str() {
        "auto" => AttentionKernel::Auto,
        "keep" => AttentionKernel::KeepWeights,
        "tiled" => AttentionKernel::Tiled,
        other => anyhow::bail!("unknown attention kernel `{other}` (auto, keep, tiled)"),
    };
    let mut result = with_attention_kernel(kernel, || match args.device.as_str() {
        "cpu" => {
            if !args.system_allocator {
                pixel_transformer::backend::keep_freed_memory();
            }
            dispatch(&args, Cpu::seed_from_u64(0))
        }
        #[cfg(feature = "cuda")]
        "cuda" => dispatch(
            &args,
            Cuda::try_seed_from_u64(0).map_err(|e| anyhow::anyhow!("{e:?}"))?,
        ),
        other => anyhow::bail!(
            "device `{other}` is not available in this build (cuda needs --features cuda)"
        ),
    })?;
    result["attention"] = serde_json::json!(args.attention);
    println!("{result}");
    Ok(())
}
