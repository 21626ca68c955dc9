//! The one error type of the core crate.
//!
//! Every error that comes from a file names that file (and the line or byte
//! offset where it makes sense), so a user with a hundred checkpoints and data
//! files knows which one to look at.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pixel-transformer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error while reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file whose contents are malformed.
    #[error("{path}: {message}")]
    Malformed {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, with a line number or byte offset where one helps.
        message: String,
    },
    /// A checkpoint that cannot be used here (other domain, architecture or version).
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// Bad arguments or data passed through the API (wrong shapes, NaN, empty sets, limits).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Training produced a non-finite loss; the last good checkpoint is kept.
    #[error(
        "training diverged at step {step}: the loss is {loss}; the last good checkpoint was kept"
    )]
    Diverged {
        /// Step at which the loss became non-finite.
        step: u64,
        /// The offending loss value.
        loss: f32,
    },
    /// An error reported by the tensor device (out of memory, CUDA failure).
    #[error("device error: {0}")]
    Device(String),
    /// An error while drawing a plot.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Converts a dfdx device error (CPU out of memory, CUDA error) into [`Error::Device`].
pub(crate) fn device_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Device(format!("{e:?}"))
}
