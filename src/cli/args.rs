//! The command line's options: the ones every domain shares, the
//! subcommands, and the whole [`Cli`] with the domain's settings flattened in.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::infer::RunOptions;
use crate::train::RunChoices;

/// Which dfdx device runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// The CPU (always available).
    Cpu,
    /// An NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Options shared by every domain and subcommand.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Output folder for checkpoints, logs and pictures (default: `runs/<domain>`).
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
    /// Checkpoint folder to load, or `pretrained` for the one the domain ships.
    #[arg(long, global = true)]
    pub checkpoint: Option<String>,
    /// Seed for everything random.
    #[arg(long, global = true, default_value_t = 0)]
    pub seed: u64,
    /// Training steps, at least 1 [default: the domain's].
    #[arg(long, global = true, allow_negative_numbers = true, value_parser = super::parse::steps)]
    pub steps: Option<u64>,
    /// Architecture preset [default: the domain's].
    #[arg(long, global = true)]
    pub preset: Option<crate::Preset>,
    /// Signals per training batch, at least 1 [default: the domain's].
    #[arg(long, global = true, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub batch_size: Option<usize>,
    /// Adam learning rate, above 0 [default: the domain's].
    #[arg(long, global = true, allow_negative_numbers = true, value_parser = super::parse::positive)]
    pub lr: Option<f64>,
    /// Value bins of the output distribution (1 = a plain Gaussian) [default: the domain's].
    #[arg(long, global = true, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub bins: Option<usize>,
    /// Give each query the value observed nearest to it as an input
    /// (`true`/`false`) [default: the domain's].
    #[arg(long, global = true)]
    pub nearest_value: Option<bool>,
    /// Smallest observation set |S| of training examples [default: the domain's].
    #[arg(long, global = true)]
    pub min_observed: Option<usize>,
    /// Largest observation set |S| of training examples (sizes are drawn
    /// log-uniformly in between) [default: the domain's].
    #[arg(long, global = true)]
    pub max_observed: Option<usize>,
    /// Dropout rate during training, in [0, 1), e.g. 0.1 as in the paper's
    /// reference (0 = none) [default: 0].
    #[arg(long, global = true, allow_negative_numbers = true, value_parser = super::parse::rate)]
    pub dropout: Option<f32>,
    /// Keep the learning rate constant instead of decaying it along a cosine
    /// to 1 % over the run's steps.
    #[arg(long, global = true)]
    pub constant_lr: bool,
    /// Device to run on.
    #[arg(long, global = true, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Hide progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// `train` and the main job: start a fresh run even if --out already
    /// holds another one (it is replaced).
    #[arg(long, global = true)]
    pub overwrite: bool,
    /// Evaluation: held-out signals measured [default: the domain's].
    #[arg(long, global = true, visible_aliases = ["eval-images", "eval-shapes"], allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub eval_count: Option<usize>,
    /// Evaluation: samples per held-out signal and |S| [default: the domain's].
    #[arg(long, global = true)]
    pub eval_samples: Option<usize>,
    /// Evaluation: values of each sample drawn one at a time before the rest
    /// take the mean (hybrid sampling) [default: the domain's].
    #[arg(long, global = true)]
    pub eval_autoregressive: Option<usize>,
    /// Pictures: test signals drawn by `sample` and the main job [default: the domain's].
    #[arg(long, global = true, visible_alias = "render-shapes", allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub render_count: Option<usize>,
    /// Pictures: values of each sample drawn one at a time before the rest
    /// take the mean; the grid's size or more draws every value (exact
    /// sampling) [default: the domain's].
    #[arg(long, global = true)]
    pub sample_autoregressive: Option<usize>,
    /// Pictures: temperature of each drawn value's bin choice (below 1
    /// favours the likelier bins: cleaner, less varied) [default: the domain's].
    #[arg(long, global = true, allow_negative_numbers = true, value_parser = super::parse::positive_f32)]
    pub sample_temperature: Option<f32>,
}

impl CommonArgs {
    /// The training choices these options make.
    pub fn choices(&self) -> RunChoices {
        RunChoices {
            seed: self.seed,
            steps: self.steps,
            preset: self.preset,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            bins: self.bins,
            nearest_value: self.nearest_value,
            min_observed: self.min_observed,
            max_observed: self.max_observed,
            dropout: self.dropout,
            constant_lr: self.constant_lr,
        }
    }

    /// What these options ask of `sample` and `eval`.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            seed: self.seed,
            eval_count: self.eval_count,
            eval_samples: self.eval_samples,
            eval_autoregressive: self.eval_autoregressive,
            render_count: self.render_count,
            sample_autoregressive: self.sample_autoregressive,
            sample_temperature: self.sample_temperature,
        }
    }
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Train a model: from scratch, from the weights of --checkpoint
    /// (fine-tuning, with a fresh optimizer and schedule), or continue a run
    /// with --resume.
    Train {
        /// Continue the run whose checkpoint is in --out (or --checkpoint).
        #[arg(long)]
        resume: bool,
        /// Steps between checkpoints, at least 1.
        #[arg(long, default_value_t = 500, allow_negative_numbers = true, value_parser = super::parse::steps)]
        checkpoint_every: u64,
        /// Keep a weights-only copy of every checkpoint in
        /// `snapshots/step-NNNNNN/` (for `export --average-with`).
        #[arg(long)]
        keep_snapshots: bool,
        /// With --resume: end the cosine learning-rate schedule at the new
        /// --steps instead of the one the run started with (shorten or extend a run).
        #[arg(long, requires = "resume")]
        reschedule: bool,
    },
    /// Write pictures of mean fields and samples for a few test signals.
    Sample,
    /// Evaluate on held-out signals and print a table.
    Eval,
    /// Write the weights of --checkpoint (without optimizer state, about a third
    /// of the size) as a new checkpoint in --out, e.g. to ship with a crate.
    Export {
        /// Also average in the weights of this checkpoint (repeatable): the
        /// export holds the mean of --checkpoint's weights and these, e.g. of
        /// snapshots late in one run. They must share its architecture and bins.
        #[arg(long, value_name = "DIR")]
        average_with: Vec<String>,
    },
    /// Print the largest observation and query sets each preset handles
    /// within this machine's memory budget (or PIXEL_TRANSFORMER_MAX_MEMORY_GIB).
    Limits,
    /// Answer JSON-lines requests (see the book's reference chapter).
    Predict {
        /// Requests file [default: standard input].
        #[arg(long)]
        input: Option<PathBuf>,
        /// Answers file [default: standard output].
        #[arg(long)]
        output: Option<PathBuf>,
        /// Most queries one request may ask.
        #[arg(long, default_value_t = 1 << 18, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
        max_queries: usize,
        /// Most observations one request may give (memory grows with them).
        #[arg(long, default_value_t = 1 << 14, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
        max_observations: usize,
    },
}

/// The full command line of a domain's program.
#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about = "pixel-transformer: sample-conditioned signal generation"
)]
pub struct Cli<A: Args> {
    /// What to do; with none, the domain's main job runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Shared options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The domain's settings.
    #[command(flatten)]
    pub domain: A,
}
