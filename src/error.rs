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
    /// Training produced a non-finite loss; the last good checkpoint (if
    /// any) is kept and the log trimmed back to it.
    #[error("training diverged at step {step}: the loss is {loss}; {kept}")]
    Diverged {
        /// Step at which the loss became non-finite.
        step: u64,
        /// The offending loss value.
        loss: f32,
        /// What was kept: the last good checkpoint, or that there is none.
        kept: String,
    },
    /// Training stopped on request (Ctrl-C, SIGTERM) after saving a checkpoint.
    #[error("interrupted at step {step}; the checkpoint in {} holds it: continue with `train --resume --out {}`", dir.display(), dir.display())]
    Interrupted {
        /// The step the checkpoint holds.
        step: u64,
        /// The run's folder.
        dir: PathBuf,
    },
    /// The ranks of a distributed run disagree (their weights differ) or one
    /// of them failed; every rank stops with this message.
    #[error("{0}")]
    Ranks(String),
    /// An error reported by the tensor device (out of memory, CUDA failure).
    #[error("device error: {0}")]
    Device(String),
    /// An error while drawing a plot.
    #[error(transparent)]
    Plot(#[from] PlotError),
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

/// Errors from the plotting helpers. Every variant names the file being written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The drawing backend failed (font, rasterisation or encoding problem).
    #[error("{}: {message}", path.display())]
    Render {
        /// The file that was being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The data cannot be plotted (empty, mismatched lengths, no finite values, ...).
    #[error("{}: invalid plot data: {message}", path.display())]
    InvalidInput {
        /// The file that was being written.
        path: PathBuf,
        /// What is wrong with the data.
        message: String,
    },
    /// The file extension is neither `png` nor `svg`.
    #[error("{}: unsupported image format (expected a .png or .svg file name)", path.display())]
    UnsupportedFormat {
        /// The file that was being written.
        path: PathBuf,
    },
    /// Moving the finished temporary file into place failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that was being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}
