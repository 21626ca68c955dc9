//! The generic command line: `train`, `sample`, `eval`, `export`, `limits`,
//! `predict`, and the domain's main job when no subcommand is given.
//!
//! A domain's program is one line, `pixel_transformer::cli::run::<P, V, MyDomain>()`
//! (or [`run_grey_or_colour`] when the data decide the value dimension).
//!
//! - `args`: the options ([`Cli`], [`CommonArgs`], [`Command`]);
//! - `commands`: what each command does.

mod args;
mod commands;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;
use dfdx::prelude::*;

pub use args::{Cli, Command, CommonArgs, DeviceKind};

use crate::domain::{config_from_json, Domain};
use crate::train::checkpoint;

/// Parses the process's arguments and runs the command for domain `Dm`.
pub fn run<const P: usize, const V: usize, Dm: Domain<P, V>>() -> anyhow::Result<()> {
    run_with::<P, V, Dm>(Cli::<Dm::Config>::parse())
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
pub fn run_with<const P: usize, const V: usize, Dm: Domain<P, V>>(
    mut cli: Cli<Dm::Config>,
) -> anyhow::Result<()> {
    settle::<P, V, Dm>(&mut cli);
    match cli.common.device {
        DeviceKind::Cpu => {
            crate::backend::keep_freed_memory();
            commands::execute::<P, V, Dm, Cpu>(&cli, Cpu::seed_from_u64(cli.common.seed))
        }
        DeviceKind::Cuda => {
            #[cfg(feature = "cuda")]
            {
                let dev = Cuda::try_seed_from_u64(cli.common.seed)
                    .map_err(|e| anyhow::anyhow!("cannot start the CUDA device: {e:?}"))?;
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
pub fn run_grey_or_colour<const P: usize, G, C>() -> anyhow::Result<()>
where
    G: Domain<P, 1>,
    C: Domain<P, 3, Config = G::Config>,
{
    run_grey_or_colour_from::<P, G, C, _, _>(std::env::args_os()).map(|_| ())
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
    let mut cli = Cli::<G::Config>::try_parse_from(args)?;
    settle::<P, 1, G>(&mut cli);
    match G::value_dims(&cli.domain) {
        1 => run_with::<P, 1, G>(cli).map(|()| 1),
        3 => run_with::<P, 3, C>(cli).map(|()| 3),
        n => bail!("{n} values per position: this program handles 1 (grey) or 3 (colour)"),
    }
}

/// Fills in what the command line leaves open: the output folder
/// ([`Domain::run_folder`]) and, for a command that continues from a
/// checkpoint, the domain settings stored in it.
fn settle<const P: usize, const V: usize, Dm: Domain<P, V>>(cli: &mut Cli<Dm::Config>) {
    let out = cli
        .common
        .out
        .get_or_insert_with(|| Dm::run_folder(&cli.domain))
        .clone();
    if let Some(stored) = continued_config::<P, V, Dm>(cli, out) {
        cli.domain = stored;
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
