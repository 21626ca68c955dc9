//! pixel-transformer: sample-conditioned signal generation.
//!
//! Give the model a handful of observed `(position, value)` samples of a
//! signal and it predicts the distribution of the value at any other
//! position, the mean signal, and diverse whole-signal samples that agree with
//! what was observed (Tulsiani & Gupta, "PixelTransformer: Sample Conditioned
//! Signal Generation", ICML 2021).
//!
//! A new signal type implements [`SpatialSignal`] and [`Domain`];
//! [`cli::run`] then gives it `train`, `sample`, `eval`, `export`, `limits`,
//! `predict` and `serve` (an interactive page).
//!
//! The layers, each importing only from the ones before it:
//! - [`error`], [`io`]: the error type, atomic writes;
//! - [`signal`]: the [`SpatialSignal`] trait, observation sets, grids;
//! - [`backend`]: the [`Backend`] trait, fused CPU kernels, the memory budget;
//! - [`model`]: the transformer and what it predicts ([`OutputDistribution`]);
//! - [`infer`]: marginals, samples, `predict`; [`plot`]: charts and stock pictures;
//! - [`domain`]: the [`Domain`] plugin trait;
//! - [`train`]: the trainer, Adam, checkpoints, held-out evaluation;
//! - [`cli`]: the generic command line.
//!
//! The book's *Architecture* chapter draws these layers.
#![warn(missing_docs)]

pub mod backend;
pub mod cli;
pub mod domain;
pub mod error;
pub mod infer;
pub mod io;
pub mod model;
pub mod plot;
pub mod signal;
pub mod train;

pub use backend::Backend;
pub use domain::{Domain, DomainDefaults, Split};
pub use error::{Error, Result};
pub use infer::{Marginals, RunOptions, SampleOptions, SampleRequest};
pub use model::{
    BinnedMixture, Dropout, Model, ModelConfig, ModelInput, OutputDistribution, Preset,
};
pub use signal::{Grid, Observations, SetSizes, SpatialSignal};

/// Re-exports of the dependencies a domain crate needs to implement the traits,
/// so domain crates need not pin their own versions.
pub mod deps {
    pub use clap;
    pub use dfdx;
    pub use rand;
    pub use rand_chacha;
    pub use serde;
    pub use serde_json;
}
