//! pixel-transformer: sample-conditioned signal generation.
#![warn(missing_docs)]

pub mod distribution;
pub mod error;
pub mod kmeans;
pub mod model;
// PLOT pub mod plot;
pub mod signal;

pub use distribution::{BinnedMixture, OutputDistribution};
pub use error::{Error, Result};
pub use model::{Model, ModelConfig, ModelInput, Preset};
pub use signal::{Grid, Observations, SpatialSignal};
