//! Videos as space-time signals (work in progress).
#![warn(missing_docs)]
