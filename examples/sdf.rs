//! 3-D shapes as signed distance fields, the paper's section 6.2.
//!
//! ```sh
//! cargo run --release --example sdf                         # main job: train on procedural chairs, write meshes, evaluate
//! cargo run --release --example sdf -- --checkpoint runs/sdf       # meshes and evaluation of a trained model, no training
//! cargo run --release --example sdf -- eval --checkpoint runs/sdf --eval-shapes 100   # the benchmark
//! cargo run --release --example sdf -- train --dataset npy --data DIR --steps 5000
//! cargo run --release --example sdf -- --help
//! ```
use pixel_transformer_sdf::SdfDomain;

fn main() -> std::process::ExitCode {
    pixel_transformer::cli::run::<3, 1, SdfDomain>()
}
