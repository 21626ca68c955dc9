//! Starting the ranks of a run: a program started by `mpirun` (and built
//! with the `mpi` feature) joins its MPI world; started any other way it is
//! one rank, and MPI is never touched.
//!
//! The launcher is read from the environment it sets before MPI starts,
//! because the mismatches are silent otherwise: a program built against
//! Open MPI and started by MPICH's `mpirun` (or the other way round), or
//! built without the feature at all, starts N separate one-rank runs that
//! all write the same folder.

#[cfg(feature = "mpi")]
use std::sync::Arc;
use std::sync::OnceLock;

use super::distributed::Ranks;
use crate::error::{Error, Result};

/// The MPI world, once started (kept for [`finish`]).
#[cfg(feature = "mpi")]
static MPI: OnceLock<Arc<super::mpi::Mpi>> = OnceLock::new();
static RANKS: OnceLock<Ranks> = OnceLock::new();

/// The launcher that started this process, read from its environment.
#[derive(Debug, Clone, PartialEq)]
pub enum Launcher {
    /// None: a plain start.
    None,
    /// Open MPI's `mpirun` (sets `OMPI_COMM_WORLD_SIZE`).
    OpenMpi {
        /// Ranks it started.
        size: usize,
    },
    /// Slurm's `srun` (sets `SLURM_PROCID` and PMI or PMIx variables), which
    /// starts Open MPI and MPICH programs alike.
    Slurm {
        /// Ranks it started, when it says (`SLURM_STEP_NUM_TASKS`).
        size: Option<usize>,
    },
    /// Another PMI launcher: MPICH's `mpirun`/`mpiexec.hydra` (sets
    /// `PMI_SIZE` and `PMI_RANK`), or a PMIx one (`PMIX_RANK`).
    Pmi {
        /// Ranks it started, when it says (`PMI_SIZE`).
        size: Option<usize>,
    },
}

impl Launcher {
    /// The launcher the variables `var` reads describe.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let size = |name: &str| var(name).and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(size) = size("OMPI_COMM_WORLD_SIZE") {
            return Launcher::OpenMpi { size };
        }
        let pmi = ["PMI_SIZE", "PMI_RANK", "PMIX_RANK"]
            .iter()
            .any(|n| var(n).is_some());
        match (pmi, var("SLURM_PROCID").is_some()) {
            (false, _) => Launcher::None,
            (true, true) => Launcher::Slurm {
                size: size("SLURM_STEP_NUM_TASKS").or_else(|| size("SLURM_NTASKS")),
            },
            (true, false) => Launcher::Pmi {
                size: size("PMI_SIZE"),
            },
        }
    }

    /// Ranks the launcher says it started (1 when it does not say).
    pub fn size(&self) -> usize {
        match self {
            Launcher::None => 1,
            Launcher::OpenMpi { size } => *size,
            Launcher::Slurm { size } | Launcher::Pmi { size } => size.unwrap_or(1),
        }
    }

    fn describe(&self) -> String {
        let known = |s: &Option<usize>| s.map_or("unset".into(), |s| s.to_string());
        match self {
            Launcher::None => "no launcher".into(),
            Launcher::OpenMpi { size } => {
                format!("Open MPI's mpirun (OMPI_COMM_WORLD_SIZE={size})")
            }
            Launcher::Slurm { size } => {
                format!("Slurm's srun (SLURM_STEP_NUM_TASKS={})", known(size))
            }
            Launcher::Pmi { size } => format!(
                "a PMI launcher such as MPICH's mpirun (PMI_SIZE={})",
                known(size)
            ),
        }
    }
}

/// Refuses a launcher that cannot start this program's ranks: `library` is
/// the MPI library it was built against (`None` without the `mpi` feature).
pub fn check_launcher(launcher: &Launcher, library: Option<&str>) -> Result<()> {
    let size = launcher.size();
    let Some(library) = library else {
        if size > 1 {
            return Err(Error::Ranks(format!(
                "this program was started by {} but built without the `mpi` feature, so each of \
                 the {size} processes would train alone and all would write the same files. \
                 Rebuild with `--features mpi` (the book's chapter \"Training on many machines\")",
                launcher.describe()
            )));
        }
        return Ok(());
    };
    let open_mpi = library.contains("Open MPI");
    let mpich_like = ["MPICH", "Intel(R) MPI", "MVAPICH"]
        .iter()
        .any(|m| library.contains(m));
    let wrong = match launcher {
        Launcher::OpenMpi { .. } if mpich_like => Some("MPICH's mpirun (mpirun.mpich on Debian)"),
        // MPICH's launcher says how many it started; a PMIx one may be Open MPI's own.
        Launcher::Pmi { size: Some(_) } if open_mpi && size > 1 => {
            Some("Open MPI's mpirun (mpirun.openmpi on Debian)")
        }
        _ => None,
    };
    match wrong {
        Some(use_this) => Err(Error::Ranks(format!(
            "this program was built against {library} but started by {}: each of its processes \
             would start an MPI world of its own and train alone. Start it with {use_this}, or \
             rebuild against the MPI whose mpirun you use",
            launcher.describe()
        ))),
        None => Ok(()),
    }
}

/// Starts this process's ranks (once; later calls return the same): MPI's
/// world when a launcher started it, else one rank. A launcher that does
/// not match the library, or a world smaller than the launcher started, is
/// an error.
pub fn start() -> Result<Ranks> {
    if let Some(r) = RANKS.get() {
        return Ok(r.clone());
    }
    let launcher = Launcher::from_env(|n| std::env::var(n).ok());
    #[cfg(feature = "mpi")]
    let ranks = {
        check_launcher(&launcher, Some(&super::mpi::Mpi::library()))?;
        if launcher == Launcher::None {
            Ranks::single()
        } else {
            let mpi = Arc::new(super::mpi::Mpi::start()?);
            let world = super::distributed::Communicator::exchange(mpi.clone()).size();
            let _ = MPI.set(mpi.clone());
            if world != launcher.size() && launcher.size() > 1 {
                return Err(Error::Ranks(format!(
                    "{} started {} ranks, but MPI sees a world of {world}: the launcher and the \
                     MPI library ({}) do not match; use the mpirun of the library this program \
                     was built against",
                    launcher.describe(),
                    launcher.size(),
                    super::mpi::Mpi::library()
                )));
            }
            Ranks::new(mpi)
        }
    };
    #[cfg(not(feature = "mpi"))]
    let ranks = {
        check_launcher(&launcher, None)?;
        Ranks::single()
    };
    super::interrupt::announce(ranks.writes());
    Ok(RANKS.get_or_init(|| ranks).clone())
}

/// The ranks [`start`] started, or one rank before it ran.
pub fn ranks() -> Ranks {
    RANKS.get().cloned().unwrap_or_default()
}

/// This rank's place among the ranks on its node (0 without MPI): the GPU it takes.
pub fn local_rank() -> usize {
    #[cfg(feature = "mpi")]
    if let Some(mpi) = MPI.get() {
        return mpi.local_rank();
    }
    0
}

/// Lets the ranks average gradients on their GPUs with NCCL (each rank's
/// `device` is its own GPU). Does nothing for one rank.
#[cfg(all(feature = "cuda", feature = "nccl"))]
pub fn attach_gpu(device: &dfdx::prelude::Cuda) -> Result<()> {
    match MPI.get() {
        Some(mpi) if ranks().size() > 1 => mpi.attach_nccl(device),
        _ => Ok(()),
    }
}

/// Ends MPI, if it started (`MPI_Finalize`, which every rank must reach).
pub fn finish() {
    #[cfg(feature = "mpi")]
    if let Some(mpi) = MPI.get() {
        mpi.finalize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Launcher {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launcher::from_env(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    #[test]
    fn launchers_are_read_from_their_variables() {
        assert_eq!(env(&[]), Launcher::None);
        assert_eq!(
            env(&[("OMPI_COMM_WORLD_SIZE", "4"), ("PMIX_RANK", "1")]),
            Launcher::OpenMpi { size: 4 }
        );
        assert_eq!(
            env(&[("PMI_RANK", "0"), ("PMI_SIZE", "2")]),
            Launcher::Pmi { size: Some(2) }
        );
        assert_eq!(
            env(&[
                ("PMIX_RANK", "0"),
                ("SLURM_PROCID", "0"),
                ("SLURM_STEP_NUM_TASKS", "8")
            ]),
            Launcher::Slurm { size: Some(8) }
        );
        // A batch script inside an allocation is no launch.
        assert_eq!(env(&[("SLURM_PROCID", "0")]), Launcher::None);
    }

    #[test]
    fn mismatched_launchers_are_refused_naming_the_right_one() {
        let open_mpi = Some("Open MPI v4.1.4, package: Debian OpenMPI");
        let mpich = Some("MPICH Version:\t4.0");
        let hydra = env(&[("PMI_RANK", "0"), ("PMI_SIZE", "2")]);
        let orterun = env(&[("OMPI_COMM_WORLD_SIZE", "2")]);
        let e = check_launcher(&hydra, open_mpi).unwrap_err().to_string();
        assert!(
            e.contains("mpirun.openmpi") && e.contains("PMI_SIZE=2"),
            "{e}"
        );
        let e = check_launcher(&orterun, mpich).unwrap_err().to_string();
        assert!(e.contains("mpirun.mpich"), "{e}");
        assert!(check_launcher(&orterun, open_mpi).is_ok());
        assert!(check_launcher(&hydra, mpich).is_ok());
        assert!(check_launcher(&Launcher::None, open_mpi).is_ok());
        // srun starts either library; the world size is checked once MPI runs.
        let srun = env(&[
            ("PMIX_RANK", "1"),
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
        ]);
        assert!(check_launcher(&srun, open_mpi).is_ok());
        assert!(check_launcher(&srun, mpich).is_ok());
        let e = check_launcher(&orterun, None).unwrap_err().to_string();
        assert!(e.contains("--features mpi"), "{e}");
        assert!(check_launcher(&env(&[("OMPI_COMM_WORLD_SIZE", "1")]), None).is_ok());
    }
}
