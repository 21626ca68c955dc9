//! Glue between the image options and the core's generic command line.
//!
//! The core's [`pixel_transformer::cli::run_with`] is generic over the
//! value dimension `V` at compile time, while grey or colour is only known
//! from the options (or from a checkpoint). [`prepare`] settles that before
//! the program picks `run_with::<2, 1, …>` or `run_with::<2, 3, …>`.

use std::path::PathBuf;

use pixel_transformer::cli::Cli;

use crate::{ImageArgs, ImageConfig};

/// Fills in what the image command line leaves open and returns the number
/// of channels (1 or 3) to run with.
///
/// - Without `--out`, runs go to `runs/image/<dataset>`, so grey and colour
///   runs never overwrite each other.
/// - Commands that continue from a checkpoint (`sample`, `eval`, `predict`,
///   `train --resume`, or the main job with `--checkpoint DIR`) take the
///   data set, size and channels stored in it, so they need not be repeated
///   on the command line.
/// - The `--eval-*` options are handed to the evaluation of this thread
///   ([`crate::eval::set_thread_options`]), `--sample-*` to its
///   figures.
pub fn prepare(cli: &mut Cli<ImageArgs>) -> usize {
    crate::eval::set_thread_options(Some(cli.domain.eval_options()));
    crate::render::set_thread_sampling(
        cli.domain.sample_autoregressive,
        cli.domain.sample_temperature,
    );
    let out = cli
        .common
        .out
        .get_or_insert_with(|| PathBuf::from("runs/image").join(cli.domain.dataset.name()))
        .clone();
    if let Some(c) = cli.continued_config::<ImageConfig>(&out) {
        apply(&mut cli.domain, &c);
        return c.channels;
    }
    cli.domain.channels()
}

/// Makes `args` describe `config`.
fn apply(args: &mut ImageArgs, config: &ImageConfig) {
    args.dataset = config.dataset;
    args.data = config.data.clone();
    args.size = Some(config.size);
    args.grey = config.channels == 1;
    args.augment = config.augment;
}
