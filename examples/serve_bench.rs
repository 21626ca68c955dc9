//! Responsiveness of `serve`: concurrent clients ask for the mean and std of
//! the whole 28 × 28 MNIST grid given |S| observed pixels, over HTTP on
//! loopback, each sending its next request as soon as the last is answered;
//! prints one JSON line of latencies.
//!
//! ```sh
//! cargo run --release --example serve_bench                    # 4 clients × 50 requests, |S| = 64
//! cargo run --release --example serve_bench -- --clients 1 --observed 128
//! cargo run --release --example serve_bench -- --addr 127.0.0.1:8080   # a server already running
//! ```
//!
//! Without `--addr` it serves the shipped MNIST checkpoint itself, from
//! this process, as `image serve --checkpoint pretrained` would.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use clap::Parser;
use pixel_transformer::cli::serve::ServeOptions;
use pixel_transformer_image::ImageDomain;

#[derive(Parser, Debug)]
struct Args {
    /// Clients sending requests at once.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Timed requests per client.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// Untimed requests per client first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Observed pixels |S| per request.
    #[arg(long, default_value_t = 64)]
    observed: usize,
    /// A running server's `host:port` (default: serve MNIST from this process).
    #[arg(long)]
    addr: Option<String>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.clients >= 1 && args.requests >= 1,
        "--clients and --requests must be at least 1"
    );
    pixel_transformer::backend::keep_freed_memory();
    let server = match &args.addr {
        Some(_) => None,
        None => {
            let (domain, model, limits) =
                support::load::<2, 1, ImageDomain<1>>(&support::pretrained(support::MNIST));
            let options = ServeOptions {
                port: 0,
                limits,
                ..ServeOptions::default()
            };
            Some(support::start(domain, model, options))
        }
    };
    let addr = args
        .addr
        .clone()
        .or_else(|| server.as_ref().map(|s| s.addr()))
        .unwrap();
    // Eight different test images, so no two requests in a row are alike.
    let requests: Vec<String> = (0..8)
        .map(|seed| support::mnist_request(seed, args.observed, None).to_string())
        .collect();
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let (addr, requests) = (addr.clone(), requests.clone());
            let (warmup, timed) = (args.warmup, args.requests);
            std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
                let mut connection = support::http::Connection::open(&addr)?;
                let mut latencies = Vec::with_capacity(timed);
                for i in 0..warmup + timed {
                    let body = &requests[(c + i) % requests.len()];
                    let sent = Instant::now();
                    let answer = connection.send("POST", "/predict", Some(body.as_bytes()))?;
                    let ms = sent.elapsed().as_secs_f64() * 1e3;
                    anyhow::ensure!(
                        answer.status == 200,
                        "HTTP {}: {}",
                        answer.status,
                        answer.text()
                    );
                    if i >= warmup {
                        latencies.push(ms);
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.join().expect("a client thread")?);
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "serve",
            "clients": args.clients,
            "requests": all.len(),
            "observed": args.observed,
            "queries": 28 * 28,
            "median_ms": (percentile(&all, 50.0) * 10.0).round() / 10.0,
            "p95_ms": (percentile(&all, 95.0) * 10.0).round() / 10.0,
            "mean_ms": (mean * 10.0).round() / 10.0,
            "max_ms": (all[all.len() - 1] * 10.0).round() / 10.0,
            "requests_per_s": ((args.clients * (args.warmup + args.requests)) as f64 / wall * 10.0).round() / 10.0,
            "threads": std::thread::available_parallelism().map_or(0, |n| n.get()),
        })
    );
    if let Some(server) = server {
        server.stop()?;
    }
    Ok(())
}
