//! pixel-transformer: sample-conditioned signal generation.
//!
//! Give the model a handful of observed `(position, value)` samples of a
//! signal and it predicts the distribution of the value at any other
//! position, the mean signal, and diverse whole-signal samples that agree with
//! what was observed (Tulsiani & Gupta, "PixelTransformer: Sample Conditioned
//! Signal Generation", ICML 2021).
//!
//! The pieces, in the order data flows through them:
//! - [`signal`]: the [`SpatialSignal`] trait, observation sets, grids;
//! - [`domain`]: the [`Domain`] plugin trait (data, defaults, rendering);
//! - [`data`]: random training examples;
//! - [`model`]: the transformer; [`distribution`]: what it predicts;
//! - [`trainer`] and [`optim`]: training; [`checkpoint`]: saving and loading;
//! - [`inference`]: marginals, mean fields, samples; [`eval`], [`predict`];
//! - [`cli`]: the generic command line; [`plot`]: charts.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod distribution;
pub mod domain;
pub mod error;
pub mod eval;
pub mod inference;
pub mod io;
pub mod kernels;
pub mod kmeans;
pub mod limits;
pub mod model;
pub mod optim;
pub mod plot;
pub mod predict;
pub mod signal;
pub mod trainer;

pub use distribution::{BinnedMixture, OutputDistribution};
pub use domain::{Domain, DomainConfig, DomainDefaults, SetSizes, Split};
pub use error::{Error, Result};
pub use inference::{Marginals, SampleOptions, SampleRequest};
pub use model::{Dropout, Model, ModelConfig, ModelInput, Preset};
pub use signal::{Grid, Observations, SpatialSignal};

/// Re-exports of the dependencies a domain crate needs to implement the traits,
/// so domain crates need not pin their own versions.
pub mod deps {
    pub use clap;
    pub use dfdx;
    pub use rand;
    pub use rand_chacha;
    pub use serde;
    pub use serde_json;
    pub use typetag;
}
