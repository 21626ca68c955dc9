//! Inference with a trained model: marginal distributions at any positions,
//! mean and uncertainty fields, whole-signal samples (`sampling`), the
//! JSON-lines machine interface (`predict`), and what the `sample` and
//! `eval` commands were asked for ([`RunOptions`]), and how ranks share an
//! evaluation (`shard`).

mod options;
pub mod predict;
pub mod sampling;
pub mod shard;

pub use options::RunOptions;
pub use sampling::{Marginals, SampleOptions, SampleRequest};
