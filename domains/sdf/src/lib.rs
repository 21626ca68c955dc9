//! Signed distance fields as 3-D signals (work in progress).
#![warn(missing_docs)]
