//! Glue between the video options and the core's generic command line.
//!
//! The command line is generic over the value dimension `V` at compile time,
//! while grey or colour is known only from the options or a checkpoint;
//! [`prepare`] settles it before the program picks `run_with::<3, 1, …>` or
//! `run_with::<3, 3, …>` (as the image domain's `cli::prepare` does).

use std::path::PathBuf;

use pixel_transformer::cli::Cli;

use crate::{VideoArgs, VideoConfig};

/// Fills in what the command line leaves open and returns the number of
/// channels (1 or 3) to run with.
///
/// - Without `--out`, runs go to `runs/video` (Moving MNIST) or
///   `runs/video/<dataset>` (others), so runs never overwrite each other.
/// - Commands that continue from a checkpoint (`sample`, `eval`, `predict`,
///   `train --resume`, the main job with `--checkpoint DIR`) take the data
///   set and its settings from it, so they need not be repeated.
pub fn prepare(cli: &mut Cli<VideoArgs>) -> usize {
    let out = cli
        .common
        .out
        .get_or_insert_with(|| match cli.domain.dataset {
            crate::VideoDataset::MovingMnist => PathBuf::from("runs/video"),
            other => PathBuf::from("runs/video").join(other.name()),
        })
        .clone();
    if let Some(c) = cli.continued_config::<VideoConfig>(&out) {
        apply(&mut cli.domain, &c);
        return c.channels;
    }
    cli.domain.channels()
}

/// Makes `args` describe `config`.
fn apply(args: &mut VideoArgs, config: &VideoConfig) {
    args.dataset = config.dataset;
    args.data = config.data.clone();
    args.size = config.size;
    args.frames = config.frames;
    args.digits = config.digits;
    args.grey = config.channels == 1;
}
