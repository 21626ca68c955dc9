//! Gradients averaged on the GPUs with NCCL (features `cuda` and `nccl`):
//! each rank drives its node-local GPU, and rank 0's NCCL id reaches the
//! others over MPI. Compile-checked without a GPU in CI; run by
//! `scripts/gpu-check.sh` on GPU machines.

use cudarc::driver::DeviceSlice;
use cudarc::nccl::safe::{group_end, group_start, Comm, Id, ReduceOp};
use dfdx::prelude::Cuda;

use crate::backend::Param;
use crate::error::{Error, Result};

/// An NCCL communicator over the run's ranks, one GPU each.
pub struct Nccl {
    comm: Comm,
}

fn nccl_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("NCCL {what}: {e:?}"))
}

impl Nccl {
    /// Joins the ranks' NCCL communicator on `device`; `broadcast` sends
    /// rank 0's id to every rank (a collective over MPI).
    pub fn new(
        device: &Cuda,
        rank: usize,
        size: usize,
        broadcast: impl FnOnce(&mut [std::ffi::c_char]),
    ) -> Result<Self> {
        let mut id = if rank == 0 {
            *Id::new().map_err(|e| nccl_error("id", e))?.internal()
        } else {
            [0; 128]
        };
        broadcast(&mut id[..]);
        let comm = Comm::from_rank(device.cuda_device().clone(), rank, size, Id::uninit(id))
            .map_err(|e| nccl_error("communicator", e))?;
        Ok(Self { comm })
    }

    /// Replaces each gradient with its mean over the ranks, on the GPUs,
    /// in one NCCL group.
    pub fn average(&self, grads: &mut [Param<Cuda>]) -> Result<()> {
        let dev = self.comm.device();
        let mut sums = Vec::with_capacity(grads.len());
        for g in grads.iter() {
            sums.push(
                dev.alloc_zeros::<f32>(g.cuda_slice().len())
                    .map_err(|e| nccl_error("buffer", e))?,
            );
        }
        group_start().map_err(|e| nccl_error("group", e))?;
        for (g, sum) in grads.iter().zip(&mut sums) {
            self.comm
                .all_reduce(g.cuda_slice(), sum, &ReduceOp::Avg)
                .map_err(|e| nccl_error("all-reduce", e))?;
        }
        group_end().map_err(|e| nccl_error("group", e))?;
        for (g, sum) in grads.iter_mut().zip(&sums) {
            dev.dtod_copy(sum, g.cuda_slice_mut())
                .map_err(|e| nccl_error("copy", e))?;
        }
        Ok(())
    }
}
