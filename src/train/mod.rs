//! Training: one trainer for every domain, its Adam, its settings, and the
//! checkpoints it writes and resumes from.
//!
//! - `settings`: [`TrainSettings`], what a run stores; `setup`: a new run
//!   from a domain's defaults and the caller's [`RunChoices`];
//! - `data`: random training examples drawn from a domain;
//! - `trainer`: the loop, the log and the training curve;
//! - `optim`: Adam; `heldout`: the generic held-out evaluation;
//! - `checkpoint`: self-describing `.safetensors` files, written atomically;
//! - `distributed`: what the ranks of a data-parallel run exchange;
//!   `launch`: starting them (`mpirun`); `mpi`, `nccl`: the exchanges
//!   (features `mpi` and `nccl`).

pub mod checkpoint;
pub mod data;
pub mod distributed;
pub mod heldout;
pub mod interrupt;
pub mod launch;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(all(feature = "cuda", feature = "nccl"))]
pub mod nccl;
pub mod optim;
pub mod settings;
pub mod setup;
pub mod trainer;

pub use settings::TrainSettings;
pub use setup::{fit_distribution, fresh_state, RunChoices};
pub use trainer::{train, LogLine, TrainOptions, TrainState};
