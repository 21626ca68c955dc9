//! Videos: Moving MNIST and frame folders as signals over (x, y, t) (the
//! paper's section 6.3).
//!
//! ```sh
//! cargo run --release --example video                        # main job: train on Moving MNIST, write GIFs, benchmark
//! cargo run --release --example video -- sample --out runs/video
//! cargo run --release --example video -- eval --out runs/video
//! cargo run --release --example video -- --size 64 --frames 20   # the standard benchmark's shape
//! cargo run --release --example video -- train --dataset folder --data DIR --steps 2000
//! cargo run --release --example video -- --help
//! ```
use clap::Parser;
use pixel_transformer::cli::{run_with, Cli};
use pixel_transformer_video::{cli::prepare, VideoArgs, VideoDomain};

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::<VideoArgs>::parse();
    // Grey or colour is a compile-time parameter of the generic command line.
    match prepare(&mut cli) {
        1 => run_with::<3, 1, VideoDomain<1>>(cli),
        _ => run_with::<3, 3, VideoDomain<3>>(cli),
    }
}
