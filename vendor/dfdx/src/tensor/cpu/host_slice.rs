//! Added by pixel-transformer (see `vendor/README.md` at its root): borrow a
//! CPU tensor's memory instead of copying it. Upstream dfdx 0.13 lends no
//! slice of a tensor (`copy_into` and `as_vec` copy), so a custom kernel had
//! to copy every input before reading it.

use crate::shapes::{Shape, Unit};
use crate::tensor::Tensor;

use super::Cpu;

impl<S: Shape, E: Unit, T> Tensor<S, E, Cpu, T> {
    /// The elements in row-major order, borrowed, when the tensor is laid
    /// out contiguously (no broadcast or permuted strides); `None`
    /// otherwise (make it contiguous first with `contiguous()`).
    pub fn contiguous_slice(&self) -> Option<&[E]> {
        self.is_dense().then(|| self.data.as_slice())
    }

    /// [`Tensor::contiguous_slice`], mutably. Copies the storage first if
    /// another tensor shares it (copy on write, as dfdx's in-place ops do).
    pub fn contiguous_slice_mut(&mut self) -> Option<&mut [E]> {
        if !self.is_dense() {
            return None;
        }
        Some(std::sync::Arc::make_mut(&mut self.data).as_mut_slice())
    }

    fn is_dense(&self) -> bool {
        self.strides == self.shape.strides() && self.data.len() == self.shape.num_elements()
    }
}
