//! The options of the `sample` and `eval` commands.

/// What the `sample` and `eval` commands were asked for: not properties of
/// a trained model, so they come from the command line, not the checkpoint.
/// `None` leaves the choice to the domain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOptions {
    /// Seed for everything random in the pictures and the evaluation.
    pub seed: u64,
    /// Held-out signals the evaluation measures (`--eval-count`).
    pub eval_count: Option<usize>,
    /// Samples per held-out signal and `|S|` in the evaluation (`--eval-samples`).
    pub eval_samples: Option<usize>,
    /// Values of each evaluation sample drawn one at a time before the rest
    /// take the mean (`--eval-autoregressive`).
    pub eval_autoregressive: Option<usize>,
    /// Test signals the pictures show (`--render-count`).
    pub render_count: Option<usize>,
    /// Values of each pictured sample drawn one at a time before the rest
    /// take the mean (`--sample-autoregressive`).
    pub sample_autoregressive: Option<usize>,
    /// Temperature of the pictured samples (`--sample-temperature`).
    pub sample_temperature: Option<f32>,
    /// Which held-out items this process evaluates: all of them, unless the
    /// program runs on several ranks (`mpirun`), which then share them.
    pub shard: super::shard::Shard,
}
