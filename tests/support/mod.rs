//! What the serve tests share: a server on a thread of the test process,
//! fed a shipped checkpoint, and a tiny HTTP client.
#![allow(dead_code)] // Each test file uses its own part of this.

pub mod http;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use pixel_transformer::cli::serve::{serve, ServeOptions, Serving};
use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::domain::config_from_json;
use pixel_transformer::infer::predict::Limits;
use pixel_transformer::train::checkpoint;
use pixel_transformer::{BinnedMixture, Domain, Grid, Model, SpatialSignal, Split};
use pixel_transformer_image::ImageDomain;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// The shipped MNIST checkpoint.
pub const MNIST: &str = "domains/image/pretrained/mnist";

/// A server running on its own thread; stopped (and joined) when dropped.
pub struct Server {
    serving: Serving,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// `host:port`.
    pub fn addr(&self) -> String {
        self.serving.addr.to_string()
    }

    /// The page's address.
    pub fn url(&self) -> String {
        self.serving.url()
    }

    /// Stops the server and returns how its loop ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.serving.stop();
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("the server thread")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.serving.stop();
            let _ = thread.join();
        }
    }
}

/// Options for tests: any free port, short timeouts.
pub fn test_options(limits: Limits) -> ServeOptions {
    ServeOptions {
        port: 0,
        limits,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        write_stall: Duration::from_secs(1),
        ..ServeOptions::default()
    }
}

/// Serves `model` on `domain` from a new thread.
pub fn start<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: Dm,
    model: Model<P, V, Cpu, BinnedMixture>,
    options: ServeOptions,
) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        serve(&domain, &model, &options, |serving| {
            tx.send(serving.clone()).unwrap();
        })
    });
    let serving = rx.recv().expect("the server started");
    Server {
        serving,
        thread: Some(thread),
    }
}

/// A domain crate's shipped checkpoint folder.
pub fn pretrained(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The domain and model of the checkpoint in `dir`, and the limits
/// `predict` would use with it.
pub fn load<const P: usize, const V: usize, Dm: Domain<P, V>>(
    dir: &Path,
) -> (Dm, Model<P, V, Cpu, BinnedMixture>, Limits) {
    let loaded = checkpoint::load::<P, V, Cpu, BinnedMixture>(dir, Dm::NAME, &Cpu::default())
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", dir.display()));
    let config = config_from_json::<P, V, Dm>(&loaded.meta.domain).unwrap();
    let limits = Limits {
        trained_sets: Some(loaded.meta.training.sets),
        ..Limits::default()
    };
    (Dm::from_config(&config).unwrap(), loaded.model, limits)
}

/// Serves the checkpoint in `relative` (from the repository root).
pub fn serve_pretrained<const P: usize, const V: usize, Dm: Domain<P, V>>(
    relative: &str,
) -> Server {
    let (domain, model, limits) = load::<P, V, Dm>(&pretrained(relative));
    start(domain, model, test_options(limits))
}

/// Serves the shipped MNIST model with smaller per-request limits.
pub fn serve_mnist_limited(max_queries: usize, max_observations: usize) -> Server {
    let (domain, model, limits) = load::<2, 1, ImageDomain<1>>(&pretrained(MNIST));
    let limits = Limits {
        max_queries,
        max_observations,
        ..limits
    };
    start(domain, model, test_options(limits))
}

/// A `predict` request on MNIST test image `seed`: `observed` of its pixels
/// (drawn with that seed), the first `queries` cells of the grid (all of
/// them for `None`).
pub fn mnist_request(seed: u64, observed: usize, queries: Option<usize>) -> Value {
    let (domain, _, _) = load::<2, 1, ImageDomain<1>>(&pretrained(MNIST));
    let grid: Grid<2> = domain.grid();
    let image = domain.draw_signal(Split::Test, &mut ChaCha8Rng::seed_from_u64(seed));
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
    let cells: Vec<[f32; 2]> = (0..observed)
        .map(|_| grid.position(rng.gen_range(0..grid.len())))
        .collect();
    let values: Vec<[f32; 1]> = cells.iter().map(|&p| image.value_at(p)).collect();
    let queries: Vec<[f32; 2]> = grid.positions()[..queries.unwrap_or(grid.len())].to_vec();
    json!({ "positions": cells, "values": values, "queries": queries })
}
