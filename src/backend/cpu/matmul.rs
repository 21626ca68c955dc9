//! Matrix products on the `gemm` crate's kernels (AVX-512 or AVX2, chosen
//! at run time), serial or split over rayon's threads by size.

/// Products at or above this many multiply-adds are split over rayon's threads.
pub(super) const PARALLEL_PRODUCT_MIN: usize = 1 << 20;

/// How to run a product of `work` multiply-adds.
pub(super) fn parallelism(work: usize) -> gemm::Parallelism {
    if work >= PARALLEL_PRODUCT_MIN && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    }
}

/// [`product_par`] on the calling thread (attention runs one per rayon task).
pub(super) unsafe fn product(
    mnk: (usize, usize, usize),
    dst: (*mut f32, usize, usize),
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    beta: f32,
) {
    product_par(
        mnk,
        dst,
        accumulate,
        lhs,
        rhs,
        beta,
        gemm::Parallelism::None,
    )
}

/// `dst (m × n) = [dst +] beta · lhs (m × k) · rhs (k × n)`, every matrix
/// given by its pointer, row stride and column stride.
///
/// # Safety
/// Each pointer must cover the matrix its sizes and strides describe, and
/// `dst` must not overlap the inputs.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product_par(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, usize, usize),
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    beta: f32,
    parallelism: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2 as isize,
        dst.1 as isize,
        accumulate,
        lhs.0,
        lhs.2 as isize,
        lhs.1 as isize,
        rhs.0,
        rhs.2 as isize,
        rhs.1 as isize,
        if accumulate { 1.0 } else { 0.0 },
        beta,
        false,
        false,
        false,
        parallelism,
    )
}

/// A raw pointer that rayon tasks may share, for writes to disjoint regions.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: only used where each task writes a region no other task touches.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    pub(super) fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the allocation the pointer came from.
        unsafe { self.0.add(offset) }
    }
}
