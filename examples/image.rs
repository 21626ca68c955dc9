//! Images: MNIST, CIFAR-10, folders of PNG/JPEG, procedural colour shapes
//! (the paper's sections 4.2–5).
//!
//! ```sh
//! cargo run --release --example image                      # main job: train on the embedded MNIST, draw figures, evaluate
//! cargo run --release --example image -- --dataset shapes  # the same in colour, no download
//! cargo run --release --example image -- train --dataset cifar10 --data DIR --steps 5000
//! cargo run --release --example image -- sample --out runs/image/shapes
//! cargo run --release --example image -- --help
//! ```
use clap::Parser;
use pixel_transformer::cli::{run_with, Cli};
use pixel_transformer_image::{cli::prepare, ImageArgs, ImageDomain};

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::<ImageArgs>::parse();
    // Grey or colour is a compile-time parameter of the generic command line.
    match prepare(&mut cli) {
        1 => run_with::<2, 1, ImageDomain<1>>(cli),
        _ => run_with::<2, 3, ImageDomain<3>>(cli),
    }
}
