//! Added by pixel-transformer (see `vendor/README.md` at its root): lend a
//! CUDA tensor's device memory and the device itself, so that gradients can
//! be averaged across GPUs in place (NCCL) instead of through the host.
//! Upstream dfdx 0.13 keeps both crate-private.

use std::sync::Arc;

use cudarc::driver::{CudaDevice, CudaSlice, DeviceRepr};

use crate::shapes::{Shape, Unit};
use crate::tensor::Tensor;

use super::Cuda;

impl Cuda {
    /// The cudarc device this dfdx device runs on (its context and stream).
    pub fn cuda_device(&self) -> &Arc<CudaDevice> {
        &self.dev
    }
}

impl<S: Shape, E: Unit + DeviceRepr, T> Tensor<S, E, Cuda, T> {
    /// The tensor's storage on the device. It is the tensor's elements in
    /// row-major order only when the tensor is dense (no broadcast or
    /// permuted strides), as a fresh gradient is.
    pub fn cuda_slice(&self) -> &CudaSlice<E> {
        &self.data.data
    }

    /// [`Tensor::cuda_slice`], mutably. Copies the storage first if another
    /// tensor shares it (copy on write, as dfdx's in-place ops do).
    pub fn cuda_slice_mut(&mut self) -> &mut CudaSlice<E> {
        &mut Arc::make_mut(&mut self.data).data
    }
}
