//! The layout of [`crate::Backend::attention`]'s matrices, shared by the
//! CPU kernels: rows are (item, position), and each row holds the heads'
//! columns side by side.

/// Sizes of the row-major, heads-side-by-side layout of [`crate::Backend::attention`].
#[derive(Clone, Copy)]
pub(super) struct HeadDims {
    pub(super) h: usize,
    pub(super) sq: usize,
    pub(super) sk: usize,
    pub(super) dk: usize,
    pub(super) dv: usize,
}

impl HeadDims {
    /// Offsets of task `(i, j)`'s first query row, key row, value row and output row.
    pub(super) fn offsets(&self, task: usize) -> (usize, usize, usize, usize) {
        let (i, j) = (task / self.h, task % self.h);
        let (qw, vw) = (self.h * self.dk, self.h * self.dv);
        (
            i * self.sq * qw + j * self.dk,
            i * self.sk * qw + j * self.dk,
            i * self.sk * vw + j * self.dv,
            i * self.sq * vw + j * self.dv,
        )
    }
}
