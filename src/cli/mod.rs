//! The generic command line: `train`, `sample`, `eval`, `export`, `limits`,
//! `predict`, `serve`, and the domain's main job when no subcommand is given.
//!
//! A domain's program is one line, `pixel_transformer::cli::run::<P, V, MyDomain>()`
//! (or [`run_grey_or_colour`] when the data decide the value dimension).
//!
//! - `args`: the options ([`Cli`], [`CommonArgs`], [`Command`]);
//! - `commands`: what each command does;
//! - [`serve`]: the interactive page and HTTP server.

mod args;
mod commands;
pub mod parse;
pub mod serve;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use dfdx::prelude::*;

pub use args::{Cli, Command, CommonArgs, DeviceKind, RequestLimits};

use crate::domain::{config_from_json, config_to_json, Domain};
use crate::train::checkpoint;
use crate::train::distributed::Ranks;

/// Parses the process's arguments and runs the command for domain `Dm`:
/// a program's whole `main`. An error is printed as its chain of causes,
/// each once, without a backtrace (user errors are not bugs, whatever
/// `RUST_BACKTRACE` says), and gives exit status 1, or 130 for a training
/// run stopped by Ctrl-C (after it saved a checkpoint).
pub fn run<const P: usize, const V: usize, Dm: Domain<P, V>>() -> ExitCode {
    report(run_with::<P, V, Dm>(Cli::<Dm::Config>::parse()))
}

/// Prints an error's chain of causes, skipping a cause that only repeats
/// the end of the message before it, and turns the outcome into an exit status.
pub fn report(outcome: anyhow::Result<()>) -> ExitCode {
    let Err(error) = outcome else {
        return ExitCode::SUCCESS;
    };
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
    }
    // On several ranks, an error they all met is told once, by rank 0 (one
    // a rank met alone was told by that rank before it ended the run).
    if crate::train::launch::ranks().writes() {
        eprintln!("Error: {}", parts.join(": "));
    }
    let interrupted = error
        .chain()
        .any(|c| matches!(c.downcast_ref(), Some(crate::Error::Interrupted { .. })));
    if interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::FAILURE
    }
}

/// Parses `args` (the program name first, as `std::env::args`) and runs the
/// command for domain `Dm`: for tests and programs that drive the command
/// line themselves.
pub fn run_from<const P: usize, const V: usize, Dm, I, T>(args: I) -> anyhow::Result<()>
where
    Dm: Domain<P, V>,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_with::<P, V, Dm>(Cli::<Dm::Config>::try_parse_from(args)?)
}

/// Runs an already parsed command line.
///
/// Commands that continue from a checkpoint (`sample`, `eval`, `predict`,
/// `export`, `train --resume`, the main job with `--checkpoint DIR`) take the
/// domain's settings from it, so they need not be repeated.
///
/// Under `mpirun` (with the `mpi` feature) this process is one rank of a
/// data-parallel run (see [`crate::train::launch`]); MPI ends when this
/// returns, so a process runs one command.
pub fn run_with<const P: usize, const V: usize, Dm: Domain<P, V>>(
    cli: Cli<Dm::Config>,
) -> anyhow::Result<()> {
    let ranks = match crate::train::launch::start() {
        Ok(ranks) => ranks,
        Err(e) => {
            crate::train::launch::finish();
            return Err(e.into());
        }
    };
    end_ranks(&ranks, run_on_device::<P, V, Dm>(cli))
}

/// Ends this process's part of a run: an error other ranks may not have met
/// ends every rank at once (they could be waiting for this one); otherwise
/// MPI finishes normally.
fn end_ranks(ranks: &Ranks, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = &outcome {
        // The trainer makes these the same on every rank; a bad option is too.
        let every_rank = e.chain().any(|c| {
            matches!(
                c.downcast_ref(),
                Some(
                    crate::Error::Diverged { .. }
                        | crate::Error::Interrupted { .. }
                        | crate::Error::Ranks(_)
                        | crate::Error::InvalidInput(_)
                )
            )
        });
        if ranks.size() > 1 && !every_rank {
            eprintln!("Error on rank {} of {}: {e:#}", ranks.rank(), ranks.size());
            ranks.abort(1);
        }
    }
    crate::train::launch::finish();
    outcome
}

fn run_on_device<const P: usize, const V: usize, Dm: Domain<P, V>>(
    mut cli: Cli<Dm::Config>,
) -> anyhow::Result<()> {
    settle::<P, V, Dm>(&mut cli)?;
    match cli.common.device {
        DeviceKind::Cpu => {
            crate::backend::keep_freed_memory();
            commands::execute::<P, V, Dm, Cpu>(&cli, Cpu::seed_from_u64(cli.common.seed))
        }
        DeviceKind::Cuda => {
            #[cfg(feature = "cuda")]
            {
                // Each rank of a node takes its own GPU (one rank: GPU 0).
                let gpu = crate::train::launch::local_rank();
                let dev = Cuda::try_build(gpu, cli.common.seed).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot start CUDA device {gpu}: {e:?}{}",
                        if gpu > 0 {
                            " (under mpirun each rank of a node takes its own GPU: start at \
                             most as many ranks per node as it has GPUs)"
                        } else {
                            ""
                        }
                    )
                })?;
                #[cfg(feature = "nccl")]
                crate::train::launch::attach_gpu(&dev)?;
                commands::execute::<P, V, Dm, Cuda>(&cli, dev)
            }
            #[cfg(not(feature = "cuda"))]
            bail!(
                "this program was built without CUDA support; rebuild with `--features cuda` \
                 (e.g. `cargo run --release --features cuda --example <name> -- --device cuda`)"
            )
        }
    }
}

/// For domains whose value dimension depends on the data, grey (`G`, one
/// value) or colour (`C`, three): parses the process's arguments, settles
/// the settings (from the checkpoint a command continues, else the command
/// line) and runs with the domain whose `V` they describe
/// ([`Domain::value_dims`]). Both domains share one settings type.
pub fn run_grey_or_colour<const P: usize, G, C>() -> ExitCode
where
    G: Domain<P, 1>,
    C: Domain<P, 3, Config = G::Config>,
{
    let outcome = match Cli::<G::Config>::try_parse_from(std::env::args_os()) {
        Ok(cli) => grey_or_colour::<P, G, C>(cli).map(|_| ()),
        Err(e) => e.exit(),
    };
    report(outcome)
}

/// [`run_grey_or_colour`] on the given arguments (the program name first);
/// returns the value dimension it ran with.
pub fn run_grey_or_colour_from<const P: usize, G, C, I, T>(args: I) -> anyhow::Result<usize>
where
    G: Domain<P, 1>,
    C: Domain<P, 3, Config = G::Config>,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    grey_or_colour::<P, G, C>(Cli::<G::Config>::try_parse_from(args)?)
}

fn grey_or_colour<const P: usize, G, C>(mut cli: Cli<G::Config>) -> anyhow::Result<usize>
where
    G: Domain<P, 1>,
    C: Domain<P, 3, Config = G::Config>,
{
    settle::<P, 1, G>(&mut cli)?;
    match G::value_dims(&cli.domain) {
        1 => run_with::<P, 1, G>(cli).map(|()| 1),
        3 => run_with::<P, 3, C>(cli).map(|()| 3),
        n => bail!("{n} values per position: this program handles 1 (grey) or 3 (colour)"),
    }
}

/// Fills in what the command line leaves open: the output folder
/// ([`Domain::run_folder`], or its `pretrained/` subfolder for the shipped
/// checkpoint, so its pictures never land beside a run of the user's) and,
/// for a command that continues from a checkpoint, the domain settings
/// stored in it. A domain option given on the command line that would
/// differ from them is refused rather than ignored.
fn settle<const P: usize, const V: usize, Dm: Domain<P, V>>(
    cli: &mut Cli<Dm::Config>,
) -> anyhow::Result<()> {
    let pretrained = cli.common.checkpoint.as_deref() == Some("pretrained");
    let out = cli
        .common
        .out
        .get_or_insert_with(|| {
            let folder = Dm::run_folder(&cli.domain);
            if pretrained {
                folder.join("pretrained")
            } else {
                folder
            }
        })
        .clone();
    if let Some(stored) = continued_config::<P, V, Dm>(cli, out.clone()) {
        check_domain_options::<P, V, Dm>(&cli.domain, &stored, &out)?;
        cli.domain = stored;
    }
    Ok(())
}

/// Refuses domain options given on the command line (those that differ from
/// the defaults) that differ from the settings a checkpoint stored.
pub(super) fn check_domain_options<const P: usize, const V: usize, Dm: Domain<P, V>>(
    given: &Dm::Config,
    stored: &Dm::Config,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let Some(defaults) = default_config::<P, V, Dm>() else {
        return Ok(());
    };
    let json = config_fields::<P, V, Dm>;
    let (defaults, given, stored) = (json(&defaults), json(given), json(stored));
    let differ: Vec<String> = given
        .iter()
        .filter(|(k, v)| defaults.get(*k) != Some(*v) && stored.get(*k) != Some(*v))
        .map(|(k, v)| {
            let was = stored.get(k).map_or("none".into(), |s| s.to_string());
            format!("{} {v} (the checkpoint's: {was})", k.replace('_', "-"))
        })
        .collect();
    if !differ.is_empty() {
        bail!(
            "the checkpoint in {} was trained with other {} settings than the command line asks \
             for: {}. A trained model keeps its settings: leave these options out, or train a \
             new model with them",
            dir.display(),
            Dm::NAME,
            differ.join(", ")
        );
    }
    Ok(())
}

/// The domain's settings when the command line gives none.
pub(super) fn default_config<const P: usize, const V: usize, Dm: Domain<P, V>>(
) -> Option<Dm::Config> {
    Cli::<Dm::Config>::try_parse_from([Dm::NAME])
        .ok()
        .map(|c| c.domain)
}

/// A domain's settings as named fields, `type` included (none if they do
/// not serialise).
pub(super) fn config_fields<const P: usize, const V: usize, Dm: Domain<P, V>>(
    config: &Dm::Config,
) -> serde_json::Map<String, serde_json::Value> {
    match config_to_json::<P, V, Dm>(config) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    }
}

/// The domain settings stored in the checkpoint this command continues
/// from, if there is one and it can be read (`--checkpoint pretrained` is
/// the domain's business and gives `None`).
fn continued_config<const P: usize, const V: usize, Dm: Domain<P, V>>(
    cli: &Cli<Dm::Config>,
    out: PathBuf,
) -> Option<Dm::Config> {
    let fresh = match &cli.command {
        Some(Command::Train { resume, .. }) => !resume,
        None => cli.common.checkpoint.is_none(),
        Some(_) => false,
    };
    if fresh {
        return None;
    }
    let path = match cli.common.checkpoint.as_deref() {
        Some("pretrained") => return None,
        Some(p) => PathBuf::from(p),
        None => out,
    };
    let meta = checkpoint::read_meta(&path).ok()?;
    config_from_json::<P, V, Dm>(&meta.domain).ok()
}
