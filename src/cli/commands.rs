//! What each command does, given the parsed command line and a device.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{Cli, Command};
use crate::domain::{config_from_json, config_to_json, Domain};
use crate::train::{
    checkpoint, fresh_state, launch, trainer, RunChoices, TrainOptions, TrainState,
};
use crate::{Backend, BinnedMixture, Model, ModelConfig, SetSizes};

fn resolve_checkpoint<const P: usize, const V: usize, Dm: Domain<P, V>>(
    arg: &Option<String>,
    domain: &Dm,
) -> anyhow::Result<Option<PathBuf>> {
    match arg.as_deref() {
        None => Ok(None),
        Some("pretrained") => match domain.pretrained_checkpoint() {
            Some(p) => Ok(Some(p)),
            None => {
                // Does the domain ship one for its default settings?
                let defaults =
                    super::default_config::<P, V, Dm>().and_then(|c| Dm::from_config(&c).ok());
                let hint = match defaults.filter(|d| d.pretrained_checkpoint().is_some()) {
                    Some(d) => format!(
                        "; it ships one for its default settings ({}): leave out the options \
                         that change them",
                        settings_summary::<P, V, Dm>(&d.config())
                    ),
                    None => "; the domain's chapter in the book lists the ones it ships".into(),
                };
                bail!(
                    "the `{}` domain ships no pretrained checkpoint for these settings ({}){hint}",
                    Dm::NAME,
                    settings_summary::<P, V, Dm>(&domain.config())
                )
            }
        },
        Some(p) => Ok(Some(PathBuf::from(p))),
    }
}

/// The settings as `key value` pairs, for messages.
fn settings_summary<const P: usize, const V: usize, Dm: Domain<P, V>>(c: &Dm::Config) -> String {
    super::config_fields::<P, V, Dm>(c)
        .iter()
        .filter(|(k, v)| *k != "type" && !v.is_null())
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fails with what to do when `path` holds no checkpoint: the usual first
/// mistake (`sample` before `train`), or a file given for a folder.
fn require_checkpoint(path: &Path, command: &str) -> anyhow::Result<()> {
    let file = checkpoint::checkpoint_file(path);
    if file.is_file() {
        return Ok(());
    }
    if path.is_file() {
        bail!(
            "{} is a file, not a checkpoint: give a run's folder (holding {}) or a .safetensors file",
            path.display(),
            checkpoint::FILE_NAME
        );
    }
    bail!(
        "no checkpoint in {}: `{command}` needs a trained model; train one first \
         (`train --out {}`), name another run with --checkpoint DIR, or use \
         `--checkpoint pretrained` where the domain ships one",
        path.display(),
        path.display()
    )
}

/// `train --resume` continues a run with its stored settings: an option
/// that would change them is refused, naming each difference and what to
/// do instead.
fn check_resume_choices<const P: usize, const V: usize, D: Backend>(
    choices: &RunChoices,
    state: &TrainState<P, V, D, BinnedMixture>,
    reschedule: bool,
    dir: &Path,
) -> anyhow::Result<()> {
    let s = &state.settings;
    let model = state.model.config();
    let mut differ = Vec::new();
    let mut check = |given: Option<String>, stored: String, name: &str| {
        if let Some(g) = given.filter(|g| *g != stored) {
            differ.push(format!("{name} {g} (the run's: {stored})"));
        }
    };
    check(
        choices.batch_size.map(|b| b.to_string()),
        s.batch_size.to_string(),
        "--batch-size",
    );
    check(
        choices.learning_rate.map(|x| x.to_string()),
        s.learning_rate.to_string(),
        "--lr",
    );
    check(
        choices.dropout.map(|x| x.to_string()),
        s.dropout.to_string(),
        "--dropout",
    );
    check(
        choices.min_observed.map(|x| x.to_string()),
        s.sets.min_observed.to_string(),
        "--min-observed",
    );
    check(
        choices.max_observed.map(|x| x.to_string()),
        s.sets.max_observed.to_string(),
        "--max-observed",
    );
    check(
        choices.bins.map(|x| x.to_string()),
        state.model.distribution().bins().to_string(),
        "--bins",
    );
    check(
        choices.nearest_value.map(|x| x.to_string()),
        model.nearest_value.to_string(),
        "--nearest-value",
    );
    if let Some(p) = choices.preset {
        let preset = ModelConfig {
            nearest_value: model.nearest_value,
            ..p.config()
        };
        if preset != *model {
            differ
                .push(format!("--preset {p:?} (the run has another architecture)").to_lowercase());
        }
    }
    if choices.constant_lr && s.cosine_decay_steps.is_some() {
        differ.push("--constant-lr (the run's learning rate decays along a cosine)".into());
    }
    if !differ.is_empty() {
        bail!(
            "`train --resume` continues the run in {} with its own settings, and these options \
             would change them: {}. Leave them out; to train with other settings, start a new \
             run (another --out), or fine-tune from this one with `train --checkpoint {} --out NEW`{}",
            dir.display(),
            differ.join(", "),
            dir.display(),
            if reschedule { "" } else { "; to change the run's length, add --reschedule" }
        );
    }
    Ok(())
}

/// A new run that starts from the weights (and output bins) of the
/// checkpoint in `source`: fine-tuning. The optimizer, step count and
/// learning-rate schedule start afresh, and the data come from `domain`
/// (the command line's), so a model can be trained further on other data
/// or with other settings; the architecture is the checkpoint's.
fn fine_tune_state<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    choices: &RunChoices,
    source: &Path,
    device: &D,
) -> anyhow::Result<TrainState<P, V, D, BinnedMixture>> {
    if choices.preset.is_some() || choices.bins.is_some() || choices.nearest_value.is_some() {
        bail!(
            "--preset, --bins and --nearest-value cannot change a model that starts from the \
             weights in {}; leave them out (the architecture and bins are the checkpoint's)",
            source.display()
        );
    }
    let loaded = checkpoint::load::<P, V, D, BinnedMixture>(source, Dm::NAME, device)
        .with_context(|| format!("cannot start from the weights in {}", source.display()))?;
    if launch::ranks().writes() {
        eprintln!(
            "starting from the weights of {} (trained {} steps), with a fresh optimizer",
            checkpoint::checkpoint_file(source).display(),
            loaded.meta.step
        );
    }
    Ok(TrainState::new(
        loaded.model,
        choices.settings(&domain.defaults()),
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
             --resume --out {}`; to replace it with the main job's run, add --overwrite \
             (or choose another --out)",
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
    let same_domain =
        config_to_json::<P, V, Dm>(&domain.config()).is_ok_and(|current| current == meta.domain);
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

/// The checkpoint's domain and model, and the training sets it was trained
/// on (for `predict`'s warnings).
#[allow(clippy::type_complexity)]
fn load_model<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    path: &Path,
    device: &D,
) -> anyhow::Result<(Dm, Model<P, V, D, BinnedMixture>, SetSizes)> {
    let loaded = checkpoint::load::<P, V, D, BinnedMixture>(path, Dm::NAME, device)?;
    let domain = Dm::from_config(&config_from_json::<P, V, Dm>(&loaded.meta.domain)?)?;
    if launch::ranks().writes() {
        eprintln!(
            "loaded {} ({} parameters, step {})",
            checkpoint::checkpoint_file(path).display(),
            loaded.model.num_params(),
            loaded.meta.step
        );
    }
    Ok((domain, loaded.model, loaded.meta.training.sets))
}

pub(super) fn execute<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    cli: &Cli<Dm::Config>,
    device: D,
) -> anyhow::Result<()> {
    let common = &cli.common;
    let out_dir = common
        .out
        .clone()
        .unwrap_or_else(|| Dm::run_folder(&cli.domain));
    let misplaced = cli.misplaced_options();
    if !misplaced.is_empty() {
        bail!(
            "{} given before the subcommand, which does not use {}: leave {} out (`--help` \
             after a subcommand lists the options it takes)",
            misplaced.join(", "),
            if misplaced.len() == 1 { "it" } else { "them" },
            if misplaced.len() == 1 { "it" } else { "them" }
        );
    }
    let choices = cli.choices();
    choices.validate()?;
    let ranks = launch::ranks();
    let mut run_options = cli.run_options();
    run_options.shard = ranks.shard();
    let cli_domain = Dm::from_config(&cli.domain)?;
    let checkpoint = resolve_checkpoint::<P, V, Dm>(&common.checkpoint, &cli_domain)?;
    let existing = checkpoint.clone().unwrap_or_else(|| out_dir.clone());
    if let (Some("pretrained"), Some(path)) = (common.checkpoint.as_deref(), &checkpoint) {
        // The shipped checkpoint's settings are what its model was trained
        // with; a domain option asking for others is refused, not ignored.
        let stored = checkpoint::read_meta(path)?;
        let stored = config_from_json::<P, V, Dm>(&stored.domain)?;
        super::check_domain_options::<P, V, Dm>(&cli.domain, &stored, path)?;
    }
    // The main job with --checkpoint only reads it.
    if cli.command.is_none() && checkpoint.is_some() {
        let given = cli.main.train.given();
        if !given.is_empty() {
            bail!(
                "{} only matter{} when training; this command does not train: leave {} out",
                given.join(", "),
                if given.len() == 1 { "s" } else { "" },
                if given.len() == 1 { "it" } else { "them" }
            );
        }
    }
    let overwrite = cli.train_args().overwrite;
    if overwrite && matches!(cli.command, Some(Command::Train { resume: true, .. })) {
        bail!("--overwrite starts a fresh run and --resume continues one: choose one");
    }
    // Under mpirun, ranks share training and evaluation; rank 0 does the rest alone.
    let shared = matches!(
        cli.command,
        None | Some(Command::Train { .. } | Command::Eval { .. })
    );
    if !ranks.writes() && !shared {
        return Ok(());
    }

    match &cli.command {
        Some(Command::Train {
            options: _,
            resume,
            checkpoint_every,
            keep_snapshots,
            reschedule,
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
            if !*resume && !overwrite && checkpoint::checkpoint_file(&out_dir).exists() {
                bail!(
                    "{} already holds a training run; continue it with `train --resume`, \
                     or replace it with `train --overwrite`, or choose another --out",
                    out_dir.display()
                );
            }
            let mut layout = None;
            let (domain, mut state) = if *resume {
                require_checkpoint(&existing, "train --resume").with_context(|| {
                    format!(
                        "nothing to resume in {} (an interrupted run saves a checkpoint; \
                         one killed before its first checkpoint cannot be resumed)",
                        existing.display()
                    )
                })?;
                let cannot = || format!("cannot resume from {}", existing.display());
                let loaded =
                    checkpoint::load::<P, V, D, BinnedMixture>(&existing, Dm::NAME, &device)
                        .with_context(cannot)?;
                let domain = Dm::from_config(&config_from_json::<P, V, Dm>(&loaded.meta.domain)?)?;
                layout = Some(loaded.meta.layout);
                (
                    domain,
                    TrainState::from_checkpoint(&existing, loaded).with_context(cannot)?,
                )
            } else if let Some(source) = &checkpoint {
                let state = fine_tune_state(&cli_domain, &choices, source, &device)?;
                (cli_domain, state)
            } else {
                let state = fresh_state(&cli_domain, &choices, &device)?;
                (cli_domain, state)
            };
            // A resumed run without --steps trains to the total it started
            // with, which its learning-rate schedule records.
            let steps = choices
                .steps
                .or(state.settings.cosine_decay_steps.filter(|_| *resume))
                .unwrap_or(domain.defaults().steps);
            if *resume {
                check_resume_choices(&choices, &state, *reschedule, &existing)?;
                if choices.steps.is_none() && steps <= state.step {
                    if ranks.writes() {
                        eprintln!(
                        "the run in {} has finished its {} steps; to train further, give \
                         --steps above {} (with --reschedule to stretch its learning-rate schedule)",
                        existing.display(),
                        state.step,
                        state.step
                    );
                    }
                    return Ok(());
                }
                if steps <= state.step {
                    bail!(
                        "the run in {} is already at step {}: --steps is the run's total, so \
                         give one above it to train further (e.g. --steps {})",
                        existing.display(),
                        state.step,
                        state.step * 2
                    );
                }
            }
            if *reschedule && state.settings.cosine_decay_steps.is_some() {
                state.settings.cosine_decay_steps = Some(steps);
            }
            let mut options = TrainOptions::new(steps, &out_dir);
            options.checkpoint_every = *checkpoint_every;
            options.keep_snapshots = *keep_snapshots;
            options.progress = !common.quiet;
            spread(&mut options, &cli.train_args(), layout, &ranks);
            train_and_report(&domain, &mut state, &options)?;
        }
        Some(Command::Sample { .. }) => {
            require_checkpoint(&existing, "sample")?;
            let (domain, model, _) = load_model::<P, V, Dm, D>(&existing, &device)?;
            render(&domain, &model, &out_dir, &run_options)?;
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
        Some(Command::Limits { batch_size }) => {
            let batch = batch_size.unwrap_or(cli_domain.defaults().batch_size);
            print!(
                "{}",
                crate::model::memory::table(
                    crate::backend::memory::memory_budget(),
                    batch,
                    D::FUSED_ATTENTION
                )
            );
        }
        Some(Command::Eval { .. }) => {
            require_checkpoint(&existing, "eval")?;
            let (domain, model, _) = load_model::<P, V, Dm, D>(&existing, &device)?;
            if ranks.writes() {
                eprintln!(
                    "evaluating on held-out {} signals ({}), seed {}{}, writing eval.csv to {}",
                    Dm::NAME,
                    settings_summary::<P, V, Dm>(&domain.config()),
                    run_options.seed,
                    match ranks.size() {
                        1 => String::new(),
                        n => format!(", shared by {n} ranks"),
                    },
                    out_dir.display()
                );
            }
            evaluate_and_print(&domain, &model, &out_dir, &run_options)?;
        }
        Some(Command::Predict {
            input,
            output,
            limits,
        }) => {
            require_checkpoint(&existing, "predict")?;
            let (_, model, trained_sets) = load_model::<P, V, Dm, D>(&existing, &device)?;
            let limits = limits.limits(trained_sets);
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
            use crate::infer::predict::run_with;
            match output {
                Some(p) => {
                    let mut buf = Vec::new();
                    run_with(&model, reader, &mut buf, &source, &limits)?;
                    crate::io::write_atomic(p, &buf)?;
                }
                None => {
                    let stdout = std::io::stdout().lock();
                    run_with(&model, reader, stdout, &source, &limits)?;
                }
            }
        }
        Some(Command::Serve { port, host, limits }) => {
            require_checkpoint(&existing, "serve")?;
            let (domain, model, trained_sets) = load_model::<P, V, Dm, D>(&existing, &device)?;
            let options = super::serve::ServeOptions {
                host: host.clone(),
                port: *port,
                limits: limits.limits(trained_sets),
                ..Default::default()
            };
            super::serve::serve(&domain, &model, &options, |serving| {
                if !serving.addr.ip().is_loopback() {
                    eprintln!(
                        "warning: listening on {}, which other machines may reach; the server \
                         has no authentication and answers whoever connects",
                        serving.addr
                    );
                }
                println!(
                    "serving the {} model at {} (Ctrl-C stops)",
                    Dm::NAME,
                    serving.url()
                );
            })?;
        }
        None => {
            // The main job: train with the domain's defaults (or load the given
            // checkpoint), then draw the pictures and print the evaluation.
            let (domain, model) = match &checkpoint {
                Some(path) => {
                    require_checkpoint(path, "the main job with --checkpoint")?;
                    let (domain, model, _) = load_model::<P, V, Dm, D>(path, &device)?;
                    (domain, model)
                }
                None => {
                    let steps = choices.steps(&cli_domain.defaults());
                    let mut state = fresh_state(&cli_domain, &choices, &device)?;
                    if !overwrite {
                        check_main_job_may_replace(&out_dir, &cli_domain, &state, steps)?;
                    }
                    let mut options = TrainOptions::new(steps, &out_dir);
                    options.progress = !common.quiet;
                    spread(&mut options, &cli.train_args(), None, &ranks);
                    train_and_report(&cli_domain, &mut state, &options)?;
                    (cli_domain, state.model)
                }
            };
            if ranks.writes() {
                render(&domain, &model, &out_dir, &run_options)?;
            }
            evaluate_and_print(&domain, &model, &out_dir, &run_options)?;
        }
    }
    Ok(())
}

fn train_and_report<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    state: &mut TrainState<P, V, D, BinnedMixture>,
    options: &TrainOptions,
) -> anyhow::Result<()> {
    let (s, c) = (&state.settings, state.model.config());
    // A batch that does not split over the ranks is refused before anything is said.
    crate::train::distributed::micro_batch(s.batch_size, options.ranks.size(), options.accumulate)?;
    let writes = options.ranks.writes();
    let spread = match (options.ranks.size(), options.accumulate) {
        (1, 1) => String::new(),
        (1, k) => format!(" in {k} micro-batches"),
        (n, k) => format!(
            " shared by {n} ranks{}{}",
            if k > 1 {
                format!(" in {k} micro-batches each")
            } else {
                String::new()
            },
            if options.deterministic {
                " (deterministic)"
            } else {
                ""
            }
        ),
    };
    if writes {
        eprintln!(
            "training {} model: {} parameters (width {}, {} + {} layers, {} bins), {} steps from \
         step {}, batch {}{spread}, learning rate {}{}, |S| {} to {}, |Q| {}, dropout {}, \
         seed {}, writing to {}",
            Dm::NAME,
            state.model.num_params(),
            c.width(),
            c.encoder_layers,
            c.decoder_layers,
            state.model.distribution().bins(),
            options.steps,
            state.step,
            s.batch_size,
            s.learning_rate,
            if s.cosine_decay_steps.is_some() {
                " (cosine decay)"
            } else {
                ""
            },
            s.sets.min_observed,
            s.sets.max_observed,
            s.sets.queries,
            s.dropout,
            s.seed,
            options.out_dir.display()
        );
    }
    crate::train::interrupt::install();
    let lines = trainer::train(domain, state, options)?;
    if let (Some(last), true) = (lines.last(), writes) {
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

/// How `options` spread training over `ranks`: `--accumulate` and
/// `--deterministic` as given, else as the resumed run had them (its
/// `layout`). Rank 0 says what a resumed run on another number of ranks
/// keeps.
fn spread(
    options: &mut TrainOptions,
    given: &super::args::TrainArgs,
    layout: Option<checkpoint::Layout>,
    ranks: &crate::train::distributed::Ranks,
) {
    let stored = layout.unwrap_or_default();
    options.accumulate = given.accumulate.unwrap_or(stored.accumulate);
    options.deterministic = given.deterministic || stored.deterministic;
    options.ranks = ranks.clone();
    let (before, now) = (
        stored.world_size * stored.accumulate,
        ranks.size() * options.accumulate,
    );
    if layout.is_some() && before != now && ranks.writes() {
        eprintln!(
            "note: the run took each batch in {before} piece(s) ({} rank(s) × --accumulate {}), \
             this resumption in {now}: every step sees the same batch and learning rate, but \
             the gradients are summed in another order (losses agree to rounding, not bit for \
             bit) and dropout draws other masks",
            stored.world_size, stored.accumulate
        );
    }
    // Hidden test hook: `STEP` or `STEP:RANK` makes that step's loss NaN
    // (on that rank only), to check that every rank stops together.
    if let Ok(hook) = std::env::var("PIXEL_TRANSFORMER_TEST_NAN_AT") {
        let mut parts = hook.split(':').map(|p| p.trim().parse().ok());
        options.inject_nan_at = parts.next().flatten();
        options.inject_nan_rank = parts.next().flatten().map(|r: u64| r as usize);
    }
}

/// [`evaluate`], shared by the ranks; rank 0 prints the report. The other
/// ranks write whatever a domain writes to a scratch folder, removed after,
/// so the run's folder gets rank 0's files alone.
fn evaluate_and_print<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    model: &Model<P, V, D, BinnedMixture>,
    out_dir: &Path,
    options: &crate::infer::RunOptions,
) -> anyhow::Result<()> {
    if options.shard.writes() {
        println!("{}", evaluate(domain, model, out_dir, options)?);
        return Ok(());
    }
    let scratch = std::env::temp_dir().join(format!(
        "pixel-transformer-eval-rank{}-{}",
        options.shard.rank(),
        std::process::id()
    ));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let outcome = evaluate(domain, model, &scratch, options);
    let _ = std::fs::remove_dir_all(&scratch);
    outcome.map(|_| ())
}

/// The domain's pictures, then the training curve when `out_dir` holds a log.
fn render<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    model: &Model<P, V, D, BinnedMixture>,
    out_dir: &Path,
    options: &crate::infer::RunOptions,
) -> anyhow::Result<()> {
    let mut written = domain.render(model, out_dir, options)?;
    written.extend(trainer::plot_training_curve(out_dir)?);
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// The domain's evaluation, or the generic held-out table where it has none.
fn evaluate<const P: usize, const V: usize, Dm: Domain<P, V>, D: Backend>(
    domain: &Dm,
    model: &Model<P, V, D, BinnedMixture>,
    out_dir: &Path,
    options: &crate::infer::RunOptions,
) -> anyhow::Result<String> {
    Ok(match domain.evaluate(model, out_dir, options)? {
        Some(report) => report,
        None => crate::train::heldout::heldout_report(domain, model, out_dir, options)?,
    })
}
