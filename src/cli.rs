//! The generic command line: `train`, `sample`, `eval`, `predict`, and the
//! domain's main job when no subcommand is given.
//!
//! A domain's example is one line, `pixel_transformer::cli::run::<P, V, MyDomain>()`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dfdx::prelude::*;

use crate::kernels::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{
    checkpoint,
    signal::random_position,
    trainer::{self, TrainOptions, TrainSettings, TrainState},
    BinnedMixture, Domain, Model, ModelConfig, Result, SetSizes, Split,
};

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
    /// Training steps [default: the domain's].
    #[arg(long, global = true)]
    pub steps: Option<u64>,
    /// Architecture preset [default: the domain's].
    #[arg(long, global = true)]
    pub preset: Option<crate::Preset>,
    /// Signals per training batch [default: the domain's].
    #[arg(long, global = true)]
    pub batch_size: Option<usize>,
    /// Adam learning rate [default: the domain's].
    #[arg(long, global = true)]
    pub lr: Option<f64>,
    /// Value bins of the output distribution (1 = a plain Gaussian) [default: the domain's].
    #[arg(long, global = true)]
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
    /// Dropout rate during training, e.g. 0.1 as in the paper's reference
    /// (0 = none) [default: 0].
    #[arg(long, global = true)]
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
        /// Steps between checkpoints.
        #[arg(long, default_value_t = 500)]
        checkpoint_every: u64,
        /// Keep a weights-only copy of every checkpoint in
        /// `snapshots/step-NNNNNN/` (for `export --average-with`).
        #[arg(long)]
        keep_snapshots: bool,
        /// With --resume: end the cosine learning-rate schedule at the new
        /// --steps instead of the one the run started with (shorten or extend a run).
        #[arg(long, requires = "resume")]
        reschedule: bool,
        /// Start a fresh run even if --out already holds one (it is replaced).
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
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
    /// Domain-specific options.
    #[command(flatten)]
    pub domain: A,
}

impl<A: Args> Cli<A> {
    /// The domain settings stored in the checkpoint this command continues
    /// from, if there is one and they are a `C`.
    ///
    /// Every command but a fresh `train` and a main job without
    /// `--checkpoint` continues from a checkpoint: the one in `--checkpoint`,
    /// else in `--out`, else in `default_out`. `--checkpoint pretrained` is
    /// the domain's business and gives `None` here. Programs whose
    /// compile-time parameters depend on the data (grey or colour images and
    /// videos) use this to pick `run_with::<P, V, …>` and to show the stored
    /// settings rather than the command line's defaults.
    pub fn continued_config<C: Clone + 'static>(&self, default_out: &Path) -> Option<C> {
        let fresh = match &self.command {
            Some(Command::Train { resume, .. }) => !resume,
            None => self.common.checkpoint.is_none(),
            Some(_) => false,
        };
        if fresh {
            return None;
        }
        let path = match self.common.checkpoint.as_deref() {
            Some("pretrained") => return None,
            Some(p) => PathBuf::from(p),
            None => self
                .common
                .out
                .clone()
                .unwrap_or_else(|| default_out.to_path_buf()),
        };
        let meta = checkpoint::read_meta(&path).ok()?;
        meta.domain.as_any().downcast_ref::<C>().cloned()
    }
}

/// Parses the process's arguments and runs the command for domain `Dm`.
pub fn run<const P: usize, const V: usize, Dm: Domain<P, V>>() -> anyhow::Result<()> {
    run_with::<P, V, Dm>(Cli::<Dm::Args>::parse())
}

/// Runs an already parsed command line.
pub fn run_with<const P: usize, const V: usize, Dm: Domain<P, V>>(
    cli: Cli<Dm::Args>,
) -> anyhow::Result<()> {
    match cli.common.device {
        DeviceKind::Cpu => {
            crate::kernels::keep_freed_memory();
            execute::<P, V, Dm, Cpu>(&cli, Cpu::seed_from_u64(cli.common.seed))
        }
        DeviceKind::Cuda => {
            #[cfg(feature = "cuda")]
            {
                let dev = Cuda::try_seed_from_u64(cli.common.seed)
                    .map_err(|e| anyhow::anyhow!("cannot start the CUDA device: {e:?}"))?;
                execute::<P, V, Dm, Cuda>(&cli, dev)
            }
            #[cfg(not(feature = "cuda"))]
            bail!(
                "this program was built without CUDA support; rebuild with `--features cuda` \
                 (e.g. `cargo run --release --features cuda --example <name> -- --device cuda`)"
            )
        }
    }
}

fn resolve_checkpoint<const P: usize, const V: usize, Dm: Domain<P, V>>(
    arg: &Option<String>,
    domain: &Dm,
) -> anyhow::Result<Option<PathBuf>> {
    match arg.as_deref() {
        None => Ok(None),
        Some("pretrained") => match domain.pretrained_checkpoint() {
            Some(p) => Ok(Some(p)),
            None => bail!("the `{}` domain ships no pretrained checkpoint", Dm::NAME),
        },
        Some(p) => Ok(Some(PathBuf::from(p))),
    }
}

/// Fits the output distribution's bins on values from training signals.
pub fn fit_distribution<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    bins: usize,
    sigma_floor: f32,
    seed: u64,
) -> Result<BinnedMixture> {
    if bins <= 1 {
        return Ok(BinnedMixture::gaussian(V, sigma_floor));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb1a5);
    let mut values = Vec::new();
    for _ in 0..256 {
        let s = domain.draw_signal(Split::Train, &mut rng);
        for _ in 0..128 {
            let x = random_position(&mut rng);
            values.push(domain.observe(&s, x, &mut rng));
        }
    }
    BinnedMixture::fit(&values, bins, sigma_floor, seed)
}

/// Builds a fresh training state from the domain's defaults and the command line.
pub fn fresh_state<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    common: &CommonArgs,
    device: &D,
) -> Result<TrainState<P, V, D, BinnedMixture>> {
    let d = domain.defaults();
    let config = ModelConfig {
        nearest_value: common.nearest_value.unwrap_or(d.nearest_value),
        ..common.preset.unwrap_or(d.preset).config()
    };
    let bins = common.bins.unwrap_or(d.bins);
    if bins == 0 {
        return Err(crate::Error::invalid(
            "--bins must be at least 1 (1 = a plain Gaussian)",
        ));
    }
    let distribution = fit_distribution(domain, bins, d.sigma_floor, common.seed)?;
    let model = Model::new(config, distribution, common.seed, device)?;
    Ok(TrainState::new(model, fresh_settings(domain, common)))
}

/// The settings of a new run: the domain's defaults, overridden by the
/// command line.
fn fresh_settings<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    common: &CommonArgs,
) -> TrainSettings {
    let d = domain.defaults();
    TrainSettings {
        seed: common.seed,
        batch_size: common.batch_size.unwrap_or(d.batch_size),
        learning_rate: common.lr.unwrap_or(d.learning_rate),
        sets: SetSizes {
            min_observed: common.min_observed.unwrap_or(d.sets.min_observed),
            max_observed: common.max_observed.unwrap_or(d.sets.max_observed),
            ..d.sets
        },
        cosine_decay_steps: (!common.constant_lr).then(|| common.steps.unwrap_or(d.steps)),
        dropout: common.dropout.unwrap_or(0.0),
    }
}

/// A new run that starts from the weights (and output bins) of the
/// checkpoint in `source`: fine-tuning. The optimizer, step count and
/// learning-rate schedule start afresh, and the data come from `domain`
/// (the command line's), so a model can be trained further on other data
/// or with other settings; the architecture is the checkpoint's.
fn fine_tune_state<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    common: &CommonArgs,
    source: &Path,
    device: &D,
) -> anyhow::Result<TrainState<P, V, D, BinnedMixture>> {
    if common.preset.is_some() || common.bins.is_some() || common.nearest_value.is_some() {
        bail!(
            "--preset, --bins and --nearest-value cannot change a model that starts from the \
             weights in {}; leave them out (the architecture and bins are the checkpoint's)",
            source.display()
        );
    }
    let loaded = checkpoint::load::<P, V, D, BinnedMixture>(source, Dm::NAME, device)
        .with_context(|| format!("cannot start from the weights in {}", source.display()))?;
    eprintln!(
        "starting from the weights of {} (trained {} steps), with a fresh optimizer",
        checkpoint::checkpoint_file(source).display(),
        loaded.meta.step
    );
    Ok(TrainState::new(
        loaded.model,
        fresh_settings(domain, common),
    ))
}

/// The main job trains into `--out` without asking, so that it can be run
/// again and again; but it replaces a run there only if it is the same run
/// (same domain settings, architecture, bins and training settings, and no
/// longer than `steps`: an interrupted main job may be started over). A
/// longer or different `train` run in the same folder is never lost to it.
fn check_main_job_may_replace<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    out_dir: &Path,
    domain: &Dm,
    fresh: &TrainState<P, V, D, BinnedMixture>,
    steps: u64,
) -> anyhow::Result<()> {
    let file = checkpoint::checkpoint_file(out_dir);
    if !file.exists() {
        return Ok(());
    }
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{} holds another run ({why}), which the main job would replace; to draw its \
             pictures and evaluation, add `--checkpoint {}`; to continue it, use `train \
             --resume --out {}`; to train the main job's model, choose another --out (or \
             delete that run)",
            file.display(),
            out_dir.display(),
            out_dir.display()
        )
    };
    let meta = checkpoint::read_meta(out_dir).map_err(|e| refuse(format!("unreadable: {e}")))?;
    if meta.step > steps {
        return Err(refuse(format!("{} steps, more than {steps}", meta.step)));
    }
    // Settings are compared as the checkpoint stores them (JSON); one that
    // does not serialise counts as different.
    let same_domain = matches!(
        (serde_json::to_value(&meta.domain), serde_json::to_value(domain.config())),
        (Ok(stored), Ok(current)) if stored == current
    );
    let same_bins =
        serde_json::to_value(fresh.model.distribution()).is_ok_and(|d| d == meta.distribution);
    let mut differ = Vec::new();
    if !same_domain {
        differ.push("domain settings".to_string());
    }
    if !same_bins {
        differ.push("output bins".to_string());
    }
    if meta.model != *fresh.model.config() {
        differ.extend(changed_fields(
            "architecture",
            &meta.model,
            fresh.model.config(),
        ));
    }
    if meta.training != fresh.settings {
        differ.extend(changed_fields("training", &meta.training, &fresh.settings));
    }
    if !differ.is_empty() {
        return Err(refuse(format!("other settings: {}", differ.join(", "))));
    }
    Ok(())
}

/// `"group.field stored → new"` for each top-level field in which two
/// settings structs differ (as JSON), or just `group` if they are not objects.
fn changed_fields<T: serde::Serialize>(group: &str, stored: &T, new: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(stored), serde_json::to_value(new))
    else {
        return vec![group.to_string()];
    };
    let fields: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| {
            let new = b.get(k).map_or("none".to_string(), |x| x.to_string());
            format!("{group}.{k} {v} → {new}")
        })
        .collect();
    if fields.is_empty() {
        vec![group.to_string()]
    } else {
        fields
    }
}

/// Whether two checkpoint folders are the same one on disk (so writing one
/// would replace the other), however their paths are spelled.
fn same_checkpoint(a: &Path, b: &Path) -> bool {
    let (a, b) = (
        checkpoint::checkpoint_file(a),
        checkpoint::checkpoint_file(b),
    );
    match (std::fs::canonicalize(&a), std::fs::canonicalize(&b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn load_model<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    path: &Path,
    device: &D,
) -> anyhow::Result<(Dm, Model<P, V, D, BinnedMixture>)> {
    let loaded = checkpoint::load::<P, V, D, BinnedMixture>(path, Dm::NAME, device)?;
    let domain = Dm::from_config(loaded.meta.domain.as_ref())?;
    eprintln!(
        "loaded {} ({} parameters, step {})",
        checkpoint::checkpoint_file(path).display(),
        loaded.model.num_params(),
        loaded.meta.step
    );
    Ok((domain, loaded.model))
}

fn execute<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    cli: &Cli<Dm::Args>,
    device: D,
) -> anyhow::Result<()> {
    let common = &cli.common;
    let out_dir = common
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(Dm::NAME));
    if let Some(rate) = common.dropout {
        crate::Dropout::validate_rate(rate).context("--dropout")?;
    }
    if let (Some(min), Some(max)) = (common.min_observed, common.max_observed) {
        if min > max {
            bail!("--min-observed {min} is above --max-observed {max}");
        }
    }
    let cli_domain = Dm::from_args(&cli.domain)?;
    let checkpoint = resolve_checkpoint::<P, V, Dm>(&common.checkpoint, &cli_domain)?;
    let existing = checkpoint.clone().unwrap_or_else(|| out_dir.clone());

    match &cli.command {
        Some(Command::Train {
            resume,
            checkpoint_every,
            keep_snapshots,
            reschedule,
            overwrite,
        }) => {
            if let Some(source) = checkpoint.as_ref().filter(|_| !*resume) {
                if same_checkpoint(source, &out_dir) {
                    bail!(
                        "training from the weights in {} would overwrite them; choose another \
                         --out, or continue that run with `train --resume`",
                        source.display()
                    );
                }
            }
            if !*resume && !*overwrite && checkpoint::checkpoint_file(&out_dir).exists() {
                bail!(
                    "{} already holds a training run; continue it with `train --resume`, \
                     or replace it with `train --overwrite`, or choose another --out",
                    out_dir.display()
                );
            }
            let (domain, mut state) = if *resume {
                let cannot = || format!("cannot resume from {}", existing.display());
                let loaded =
                    checkpoint::load::<P, V, D, BinnedMixture>(&existing, Dm::NAME, &device)
                        .with_context(cannot)?;
                let domain = Dm::from_config(loaded.meta.domain.as_ref())?;
                (
                    domain,
                    TrainState::from_checkpoint(&existing, loaded).with_context(cannot)?,
                )
            } else if let Some(source) = &checkpoint {
                let state = fine_tune_state(&cli_domain, common, source, &device)?;
                (cli_domain, state)
            } else {
                let state = fresh_state(&cli_domain, common, &device)?;
                (cli_domain, state)
            };
            // A resumed run without --steps trains to the total it started
            // with, which its learning-rate schedule records.
            let steps = common
                .steps
                .or(state.settings.cosine_decay_steps.filter(|_| *resume))
                .unwrap_or(domain.defaults().steps);
            if *reschedule && state.settings.cosine_decay_steps.is_some() {
                state.settings.cosine_decay_steps = Some(steps);
            }
            let mut options = TrainOptions::new(steps, &out_dir);
            options.checkpoint_every = *checkpoint_every;
            options.keep_snapshots = *keep_snapshots;
            options.progress = !common.quiet;
            train_and_report(&domain, &mut state, &options)?;
        }
        Some(Command::Sample) => {
            let (domain, model) = load_model::<P, V, Dm, D>(&existing, &device)?;
            for p in domain.render(&model, &out_dir, common.seed)? {
                println!("wrote {}", p.display());
            }
        }
        Some(Command::Export { average_with }) => {
            let source = checkpoint
                .clone()
                .ok_or_else(|| anyhow::anyhow!("export needs --checkpoint DIR"))?;
            let mut sources = vec![source];
            for arg in average_with {
                let dir = resolve_checkpoint::<P, V, Dm>(&Some(arg.clone()), &cli_domain)?;
                sources.extend(dir);
            }
            if let Some(s) = sources.iter().find(|s| same_checkpoint(s, &out_dir)) {
                bail!(
                    "export would overwrite its source {}; choose another --out",
                    s.display()
                );
            }
            let loaded =
                checkpoint::average::<P, V, D, BinnedMixture>(&sources, Dm::NAME, &device)?;
            checkpoint::save(
                &out_dir,
                &loaded.model,
                None,
                loaded.meta.domain,
                &loaded.meta.training,
                loaded.meta.step,
            )?;
            println!("wrote {}", checkpoint::checkpoint_file(&out_dir).display());
        }
        Some(Command::Limits) => {
            let batch = common
                .batch_size
                .unwrap_or(cli_domain.defaults().batch_size);
            print!(
                "{}",
                crate::limits::table(crate::limits::memory_budget(), batch, D::FUSED_ATTENTION)
            );
        }
        Some(Command::Eval) => {
            let (domain, model) = load_model::<P, V, Dm, D>(&existing, &device)?;
            println!("{}", domain.evaluate(&model, &out_dir, common.seed)?);
        }
        Some(Command::Predict { input, output }) => {
            let (_, model) = load_model::<P, V, Dm, D>(&existing, &device)?;
            let source = input
                .as_ref()
                .map_or("<stdin>".to_string(), |p| p.display().to_string());
            let reader: Box<dyn std::io::BufRead> = match input {
                Some(p) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(p)
                        .with_context(|| format!("cannot open {}", p.display()))?,
                )),
                None => Box::new(std::io::stdin().lock()),
            };
            match output {
                Some(p) => {
                    let mut buf = Vec::new();
                    crate::predict::run(&model, reader, &mut buf, &source)?;
                    crate::io::write_atomic(p, &buf)?;
                }
                None => {
                    crate::predict::run(&model, reader, std::io::stdout().lock(), &source)?;
                }
            }
        }
        None => {
            // The main job: train with the domain's defaults (or load the given
            // checkpoint), then draw the pictures and print the evaluation.
            let (domain, model) = match &checkpoint {
                Some(path) => load_model::<P, V, Dm, D>(path, &device)?,
                None => {
                    let steps = common.steps.unwrap_or(cli_domain.defaults().steps);
                    let mut state = fresh_state(&cli_domain, common, &device)?;
                    check_main_job_may_replace(&out_dir, &cli_domain, &state, steps)?;
                    let mut options = TrainOptions::new(steps, &out_dir);
                    options.progress = !common.quiet;
                    train_and_report(&cli_domain, &mut state, &options)?;
                    (cli_domain, state.model)
                }
            };
            for p in domain.render(&model, &out_dir, common.seed)? {
                println!("wrote {}", p.display());
            }
            println!("{}", domain.evaluate(&model, &out_dir, common.seed)?);
        }
    }
    Ok(())
}

fn train_and_report<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    state: &mut TrainState<P, V, D, BinnedMixture>,
    options: &TrainOptions,
) -> anyhow::Result<()> {
    eprintln!(
        "training {} model: {} parameters, {} steps from step {}, batch {}, writing to {}",
        Dm::NAME,
        state.model.num_params(),
        options.steps,
        state.step,
        state.settings.batch_size,
        options.out_dir.display()
    );
    let lines = trainer::train(domain, state, options)?;
    if let Some(last) = lines.last() {
        eprintln!(
            "done: step {}, loss {:.4}, {:.1} s; checkpoint in {}",
            last.step,
            last.loss,
            last.elapsed_s,
            options.out_dir.display()
        );
    }
    Ok(())
}
