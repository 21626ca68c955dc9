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
use pixel_transformer_image::ImageDomain;

fn main() -> std::process::ExitCode {
    // Grey or colour: the data (or the checkpoint) decide.
    pixel_transformer::cli::run_grey_or_colour::<2, ImageDomain<1>, ImageDomain<3>>()
}
