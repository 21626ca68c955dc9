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

/// Options shared by every subcommand (they may stand before or after it).
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
    /// Device to run on.
    #[arg(long, global = true, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Hide progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
}

/// Training options: of `train` and of the main job.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Training")]
pub struct TrainArgs {
    /// Training steps, at least 1 [default: the domain's].
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse::steps)]
    pub steps: Option<u64>,
    /// Architecture preset [default: the domain's].
    #[arg(long)]
    pub preset: Option<crate::Preset>,
    /// Signals per training batch, at least 1 [default: the domain's].
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub batch_size: Option<usize>,
    /// Adam learning rate, above 0 [default: the domain's].
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse::positive)]
    pub lr: Option<f64>,
    /// Value bins of the output distribution (1 = a plain Gaussian) [default: the domain's].
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub bins: Option<usize>,
    /// Give each query the value observed nearest to it as an input
    /// (`true`/`false`) [default: the domain's].
    #[arg(long)]
    pub nearest_value: Option<bool>,
    /// Smallest observation set |S| of training examples [default: the domain's].
    #[arg(long)]
    pub min_observed: Option<usize>,
    /// Largest observation set |S| of training examples (sizes are drawn
    /// log-uniformly in between) [default: the domain's].
    #[arg(long)]
    pub max_observed: Option<usize>,
    /// Dropout rate during training, in [0, 1), e.g. 0.1 as in the paper's
    /// reference (0 = none) [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse::rate)]
    pub dropout: Option<f32>,
    /// Keep the learning rate constant instead of decaying it along a cosine
    /// to 1 % over the run's steps.
    #[arg(long)]
    pub constant_lr: bool,
    /// Start a fresh run even if --out already holds another one (it is replaced).
    #[arg(long)]
    pub overwrite: bool,
    /// Micro-batches per step (on each rank under mpirun): the batch goes
    /// through the model this many pieces at a time, for large batches in
    /// little memory; it must split evenly [default: 1, or the resumed run's].
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub accumulate: Option<usize>,
    /// Under mpirun: add the ranks' gradients in rank order, so N ranks give
    /// weights bit-identical to one process with --accumulate N (more traffic).
    #[arg(long)]
    pub deterministic: bool,
}

impl TrainArgs {
    /// These options, with those of `over` taking precedence where given.
    fn overlaid(&self, over: &TrainArgs) -> TrainArgs {
        TrainArgs {
            steps: over.steps.or(self.steps),
            preset: over.preset.or(self.preset),
            batch_size: over.batch_size.or(self.batch_size),
            lr: over.lr.or(self.lr),
            bins: over.bins.or(self.bins),
            nearest_value: over.nearest_value.or(self.nearest_value),
            min_observed: over.min_observed.or(self.min_observed),
            max_observed: over.max_observed.or(self.max_observed),
            dropout: over.dropout.or(self.dropout),
            constant_lr: over.constant_lr || self.constant_lr,
            overwrite: over.overwrite || self.overwrite,
            accumulate: over.accumulate.or(self.accumulate),
            deterministic: over.deterministic || self.deterministic,
        }
    }

    /// The options given, by name.
    pub(super) fn given(&self) -> Vec<&'static str> {
        [
            ("--steps", self.steps.is_some()),
            ("--preset", self.preset.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--bins", self.bins.is_some()),
            ("--nearest-value", self.nearest_value.is_some()),
            ("--min-observed", self.min_observed.is_some()),
            ("--max-observed", self.max_observed.is_some()),
            ("--dropout", self.dropout.is_some()),
            ("--constant-lr", self.constant_lr),
            ("--overwrite", self.overwrite),
            ("--accumulate", self.accumulate.is_some()),
            ("--deterministic", self.deterministic),
        ]
        .into_iter()
        .filter(|(_, g)| *g)
        .map(|(n, _)| n)
        .collect()
    }
}

/// Evaluation options: of `eval` and of the main job.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Evaluation")]
pub struct EvalArgs {
    /// Held-out signals measured [default: the domain's].
    #[arg(long, visible_aliases = ["eval-images", "eval-shapes"], allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub eval_count: Option<usize>,
    /// Samples per held-out signal and |S| [default: the domain's].
    #[arg(long)]
    pub eval_samples: Option<usize>,
    /// Values of each sample drawn one at a time before the rest take the
    /// mean (hybrid sampling) [default: the domain's].
    #[arg(long)]
    pub eval_autoregressive: Option<usize>,
}

/// Picture options: of `sample` and of the main job.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Pictures")]
pub struct PictureArgs {
    /// Test signals drawn [default: the domain's].
    #[arg(long, visible_alias = "render-shapes", allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub render_count: Option<usize>,
    /// Values of each sample drawn one at a time before the rest take the
    /// mean; the grid's size or more draws every value (exact sampling)
    /// [default: the domain's].
    #[arg(long)]
    pub sample_autoregressive: Option<usize>,
    /// Temperature of each drawn value's bin choice (below 1 favours the
    /// likelier bins: cleaner, less varied) [default: the domain's].
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse::positive_f32)]
    pub sample_temperature: Option<f32>,
}

/// The main job's options (no subcommand): it trains, draws and evaluates.
#[derive(Debug, Clone, Default, Args)]
pub struct MainArgs {
    /// Training.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Evaluation.
    #[command(flatten)]
    pub eval: EvalArgs,
    /// Pictures.
    #[command(flatten)]
    pub pictures: PictureArgs,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Train a model: from scratch, from the weights of --checkpoint
    /// (fine-tuning, with a fresh optimizer and schedule), or continue a run
    /// with --resume.
    Train {
        /// Training options.
        #[command(flatten)]
        options: TrainArgs,
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
    Sample {
        /// Picture options.
        #[command(flatten)]
        pictures: PictureArgs,
    },
    /// Evaluate on held-out signals and print a table.
    Eval {
        /// Evaluation options.
        #[command(flatten)]
        eval: EvalArgs,
    },
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
    Limits {
        /// Signals per training batch, for the training column [default: the domain's].
        #[arg(long, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
        batch_size: Option<usize>,
    },
    /// Answer JSON-lines requests (see the book's reference chapter).
    Predict {
        /// Requests file [default: standard input].
        #[arg(long)]
        input: Option<PathBuf>,
        /// Answers file [default: standard output].
        #[arg(long)]
        output: Option<PathBuf>,
        /// Per-request limits.
        #[command(flatten)]
        limits: RequestLimits,
    },
    /// Serve an interactive page (paint observations, watch the mean, the
    /// uncertainty and samples) and `POST /predict` over HTTP.
    Serve {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on. The default keeps the server on this
        /// machine; another (e.g. 0.0.0.0) lets other machines reach it, and
        /// it has no authentication.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Per-request limits.
        #[command(flatten)]
        limits: RequestLimits,
    },
}

/// What one `predict` or `serve` request may ask.
#[derive(Debug, Clone, Args)]
pub struct RequestLimits {
    /// Most queries one request may ask.
    #[arg(long, default_value_t = 1 << 18, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub max_queries: usize,
    /// Most observations one request may give (memory grows with them).
    #[arg(long, default_value_t = 1 << 14, allow_negative_numbers = true, value_parser = super::parse::at_least_one)]
    pub max_observations: usize,
}

impl RequestLimits {
    /// These limits, with the training sets a model saw (for warnings).
    pub fn limits(&self, trained_sets: crate::SetSizes) -> crate::infer::predict::Limits {
        crate::infer::predict::Limits {
            max_queries: self.max_queries,
            max_observations: self.max_observations,
            trained_sets: Some(trained_sets),
            ..Default::default()
        }
    }
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
    /// The main job's options (with a subcommand, that subcommand's own).
    #[command(flatten)]
    pub main: MainArgs,
    /// The domain's settings.
    #[command(flatten, next_help_heading = "Domain settings")]
    pub domain: A,
}

impl<A: Args> Cli<A> {
    /// The training options in effect: `train`'s own, over any given before it.
    pub fn train_args(&self) -> TrainArgs {
        match &self.command {
            Some(Command::Train { options, .. }) => self.main.train.overlaid(options),
            _ => self.main.train.clone(),
        }
    }

    /// The training choices the command line makes.
    pub fn choices(&self) -> RunChoices {
        let t = self.train_args();
        RunChoices {
            seed: self.common.seed,
            steps: t.steps,
            preset: t.preset,
            batch_size: t.batch_size,
            learning_rate: t.lr,
            bins: t.bins,
            nearest_value: t.nearest_value,
            min_observed: t.min_observed,
            max_observed: t.max_observed,
            dropout: t.dropout,
            constant_lr: t.constant_lr,
        }
    }

    /// What the command line asks of the pictures and the evaluation:
    /// `sample`'s and `eval`'s own options over any given before them.
    pub fn run_options(&self) -> RunOptions {
        let (mut e, mut p) = (self.main.eval.clone(), self.main.pictures.clone());
        match &self.command {
            Some(Command::Eval { eval }) => {
                e.eval_count = eval.eval_count.or(e.eval_count);
                e.eval_samples = eval.eval_samples.or(e.eval_samples);
                e.eval_autoregressive = eval.eval_autoregressive.or(e.eval_autoregressive);
            }
            Some(Command::Sample { pictures }) => {
                p.render_count = pictures.render_count.or(p.render_count);
                p.sample_autoregressive =
                    pictures.sample_autoregressive.or(p.sample_autoregressive);
                p.sample_temperature = pictures.sample_temperature.or(p.sample_temperature);
            }
            _ => {}
        }
        RunOptions {
            seed: self.common.seed,
            eval_count: e.eval_count,
            eval_samples: e.eval_samples,
            eval_autoregressive: e.eval_autoregressive,
            render_count: p.render_count,
            sample_autoregressive: p.sample_autoregressive,
            sample_temperature: p.sample_temperature,
            shard: Default::default(),
        }
    }

    /// Options given before a subcommand that does not use them.
    pub fn misplaced_options(&self) -> Vec<&'static str> {
        let Some(command) = &self.command else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if !matches!(command, Command::Train { .. }) {
            out.extend(self.main.train.given());
        }
        let e = &self.main.eval;
        if !matches!(command, Command::Eval { .. }) {
            for (name, given) in [
                ("--eval-count", e.eval_count.is_some()),
                ("--eval-samples", e.eval_samples.is_some()),
                ("--eval-autoregressive", e.eval_autoregressive.is_some()),
            ] {
                if given {
                    out.push(name);
                }
            }
        }
        let p = &self.main.pictures;
        if !matches!(command, Command::Sample { .. }) {
            for (name, given) in [
                ("--render-count", p.render_count.is_some()),
                ("--sample-autoregressive", p.sample_autoregressive.is_some()),
                ("--sample-temperature", p.sample_temperature.is_some()),
            ] {
                if given {
                    out.push(name);
                }
            }
        }
        out
    }
}
