//! The [`Communicator`] over MPI (the `mpi` feature), through rsmpi.
//!
//! MPI starts only when a launcher started the process (see
//! `train::launch`); every call goes through one lock, so the communicator
//! may be shared between threads although MPI is asked only for
//! `MPI_THREAD_SERIALIZED`.

#[cfg(all(feature = "cuda", feature = "nccl"))]
use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
// MPI's own `Communicator` trait, for its methods (the name is ours).
#[cfg(all(feature = "cuda", feature = "nccl"))]
use mpi::traits::Root;
use mpi::traits::{Communicator as _, CommunicatorCollectives};

use super::distributed::Communicator;
use crate::error::{Error, Result};
use crate::infer::shard::Exchange;

#[cfg(all(feature = "cuda", feature = "nccl"))]
type GpuParam = crate::backend::Param<dfdx::prelude::Cuda>;

/// The MPI world of this process.
pub struct Mpi {
    inner: Mutex<Inner>,
    rank: usize,
    size: usize,
    local_rank: usize,
}

struct Inner {
    /// Finalizes MPI when dropped ([`Mpi::finalize`]).
    universe: Option<Universe>,
    world: SimpleCommunicator,
    /// Gradients averaged on GPUs, when the run has them.
    #[cfg(all(feature = "cuda", feature = "nccl"))]
    nccl: Option<super::nccl::Nccl>,
}

// SAFETY: every MPI call goes through `inner`'s lock, so calls are never
// concurrent, which MPI_THREAD_SERIALIZED (asked for in `start`) allows from
// any thread; the communicator handles are plain handles into the library.
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

impl Mpi {
    /// Starts MPI; the launcher must have started this process.
    pub fn start() -> Result<Self> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| Error::Ranks("MPI was already started in this process".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        // Ranks on one node share its memory; their order there picks a GPU.
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Ok(Self {
            inner: Mutex::new(Inner {
                universe: Some(universe),
                world,
                #[cfg(all(feature = "cuda", feature = "nccl"))]
                nccl: None,
            }),
            rank,
            size,
            local_rank,
        })
    }

    /// This rank's place among the ranks of its node (which GPU it takes).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The MPI library this program was built against: its name and
    /// version (`Open MPI v4.1.4`, `MPICH Version: 4.0`).
    pub fn library() -> String {
        let full = mpi::environment::library_version().unwrap_or_default();
        let first = full.lines().next().unwrap_or_default();
        first
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves MPI as it was: go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends MPI (`MPI_Finalize`); nothing may be exchanged after.
    pub fn finalize(&self) {
        let mut inner = self.lock();
        #[cfg(all(feature = "cuda", feature = "nccl"))]
        drop(inner.nccl.take());
        drop(inner.universe.take());
    }

    /// Sets up NCCL for the GPU `device` (this rank's): rank 0 makes the
    /// communicator's id and broadcasts it over MPI.
    #[cfg(all(feature = "cuda", feature = "nccl"))]
    pub fn attach_nccl(&self, device: &dfdx::prelude::Cuda) -> Result<()> {
        let mut inner = self.lock();
        let world = &inner.world;
        let nccl = super::nccl::Nccl::new(device, self.rank, self.size, |id| {
            world.process_at_rank(0).broadcast_into(&mut id[..]);
        })?;
        inner.nccl = Some(nccl);
        Ok(())
    }
}

impl Exchange for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather_f64(&self, local: &[f64]) -> Vec<f64> {
        let mut all = vec![0.0; local.len() * self.size];
        self.lock().world.all_gather_into(local, &mut all[..]);
        all
    }
}

impl Communicator for Mpi {
    fn all_reduce_sum_f32(&self, data: &mut [f32]) {
        let send = data.to_vec();
        self.lock()
            .world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
    }

    fn all_gather_f32(&self, local: &[f32]) -> Vec<f32> {
        let mut all = vec![0.0; local.len() * self.size];
        self.lock().world.all_gather_into(local, &mut all[..]);
        all
    }

    fn all_gather_u64(&self, local: &[u64]) -> Vec<u64> {
        let mut all = vec![0; local.len() * self.size];
        self.lock().world.all_gather_into(local, &mut all[..]);
        all
    }

    #[cfg(all(feature = "cuda", feature = "nccl"))]
    fn averages_on_device(&self, grads: &dyn Any) -> bool {
        grads.is::<Vec<GpuParam>>() && self.lock().nccl.is_some()
    }

    #[cfg(all(feature = "cuda", feature = "nccl"))]
    fn device_average(&self, grads: &mut dyn Any) -> Option<Result<()>> {
        let grads = grads.downcast_mut::<Vec<GpuParam>>()?;
        let inner = self.lock();
        Some(inner.nccl.as_ref()?.average(grads))
    }

    fn abort(&self, code: i32) -> ! {
        // Not through the lock: another thread may hold it, waiting in a
        // collective that will never finish.
        SimpleCommunicator::world().abort(code)
    }

    fn exchange(self: Arc<Self>) -> Arc<dyn Exchange> {
        self
    }
}
