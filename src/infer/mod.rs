//! Inference with a trained model: marginal distributions at any positions,
//! mean and uncertainty fields, whole-signal samples (`sampling`), held-out
//! evaluation (`eval`) and the JSON-lines machine interface (`predict`).

pub mod eval;
mod options;
pub mod predict;
pub mod sampling;

pub use options::RunOptions;
pub use sampling::{Marginals, SampleOptions, SampleRequest};
