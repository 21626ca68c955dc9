//! Random polynomials, the paper's section 6.1.
//!
//! ```sh
//! cargo run --release --example polynomial            # main job: train, plot, evaluate
//! cargo run --release --example polynomial -- eval --checkpoint pretrained
//! cargo run --release --example polynomial -- --help
//! ```
use pixel_transformer_polynomial::PolynomialDomain;

fn main() -> std::process::ExitCode {
    pixel_transformer::cli::run::<1, 1, PolynomialDomain>()
}
