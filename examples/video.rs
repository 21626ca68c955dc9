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
use pixel_transformer_video::VideoDomain;

fn main() -> std::process::ExitCode {
    // Grey or colour: the data (or the checkpoint) decide.
    pixel_transformer::cli::run_grey_or_colour::<3, VideoDomain<1>, VideoDomain<3>>()
}
