//! Data-parallel training: the ranks of a run, and what the trainer
//! exchanges between them each step.
//!
//! Every rank holds the whole model and draws the whole batch of a step
//! (a pure function of the seed and the step); rank `r` of `N` takes the
//! `r`-th `N`-th of it, in `--accumulate K` micro-batches. After the
//! forward passes the ranks exchange their micro-batch losses and flags
//! ([`agree`]): a non-finite loss, a failure or a Ctrl-C on any rank is then
//! known to every rank at the same step, so all stop together and none is
//! left waiting in a collective. Otherwise each rank's gradient sum is
//! reduced over the ranks ([`reduce_gradients`]) and divided by the number
//! of micro-batches, and every rank takes the same Adam step.
//!
//! Sums run in a fixed order where it matters: one process accumulating
//! `K` micro-batches adds their gradients in order, and the deterministic
//! mode gathers every rank's gradients and adds them in rank order, the
//! same additions, so `N` ranks give weights bit-identical to one process
//! with `--accumulate N`. The default all-reduce leaves the order to MPI,
//! which for more than two ranks may round differently in the last bits
//! (two numbers add the same either way round).
//!
//! The exchange itself is a [`Communicator`]: MPI (`mpi` feature, see
//! `train::mpi`), or nothing for one process.

use std::any::Any;
use std::sync::Arc;

use crate::backend::Param;
use crate::error::{Error, Result};
use crate::infer::shard::{Exchange, Shard};
use crate::model::Dropout;

/// What ranks exchange. Every method is a collective: every rank calls it,
/// in the same order, with buffers of the same length.
pub trait Communicator: Exchange {
    /// Sums `data` element-wise over the ranks, in place on every rank, in
    /// an order the library chooses.
    fn all_reduce_sum_f32(&self, data: &mut [f32]);
    /// Every rank's `local`, concatenated in rank order, on every rank.
    fn all_gather_f32(&self, local: &[f32]) -> Vec<f32>;
    /// Every rank's `local`, concatenated in rank order, on every rank.
    fn all_gather_u64(&self, local: &[u64]) -> Vec<u64>;
    /// Whether [`Communicator::device_average`] takes gradients like
    /// `grads` (a `Vec<Param<D>>`): NCCL for GPU tensors. Otherwise they go
    /// through [`Communicator::all_reduce_sum_f32`] on the host.
    fn averages_on_device(&self, _grads: &dyn Any) -> bool {
        false
    }
    /// Replaces each gradient of `grads` with its mean over the ranks where
    /// it lives; `None` when [`Communicator::averages_on_device`] is false.
    fn device_average(&self, _grads: &mut dyn Any) -> Option<Result<()>> {
        None
    }
    /// Ends every rank of the run at once with `code` (after an error only
    /// this rank has, which would leave the others waiting).
    fn abort(&self, code: i32) -> !;
    /// This communicator as an [`Exchange`], for sharded evaluation.
    fn exchange(self: Arc<Self>) -> Arc<dyn Exchange>;
}

/// The ranks of a run: one process ([`Ranks::single`]), or the processes
/// `mpirun` started.
#[derive(Clone, Default)]
pub struct Ranks {
    comm: Option<Arc<dyn Communicator>>,
}

impl Ranks {
    /// One process, exchanging nothing.
    pub fn single() -> Self {
        Self::default()
    }

    /// The ranks `comm` connects.
    pub fn new(comm: Arc<dyn Communicator>) -> Self {
        Self { comm: Some(comm) }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.as_ref().map_or(0, |c| c.rank())
    }

    /// Number of ranks (the world size).
    pub fn size(&self) -> usize {
        self.comm.as_ref().map_or(1, |c| c.size())
    }

    /// Whether this process writes checkpoints, logs and pictures (rank 0).
    pub fn writes(&self) -> bool {
        self.rank() == 0
    }

    /// The evaluation shard of this rank.
    pub fn shard(&self) -> Shard {
        self.comm
            .clone()
            .map_or_else(Shard::default, |c| Shard::new(c.exchange()))
    }

    /// Ends every rank at once (see [`Communicator::abort`]); one process just exits.
    pub fn abort(&self, code: i32) -> ! {
        match &self.comm {
            Some(c) => c.abort(code),
            None => std::process::exit(code),
        }
    }

    /// `result`, unless it is an error while other ranks run: then this
    /// rank prints it and ends every rank at once, since the others would
    /// wait for this one forever in their next exchange.
    pub fn or_abort<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) if self.size() > 1 => {
                eprintln!("Error on rank {} of {}: {e}", self.rank(), self.size());
                self.abort(1)
            }
            r => r,
        }
    }

    /// The communicator, when there is more than one rank (for programs
    /// that exchange more than training does, such as `examples/allreduce.rs`).
    pub fn communicator(&self) -> Option<&dyn Communicator> {
        self.comm.as_deref().filter(|c| c.size() > 1)
    }

    fn comm(&self) -> Option<&dyn Communicator> {
        self.communicator()
    }
}

impl std::fmt::Debug for Ranks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ranks {{ rank: {}, size: {} }}",
            self.rank(),
            self.size()
        )
    }
}

/// The size of each micro-batch when `ranks` share a global batch of
/// `batch` in `accumulate` micro-batches each; a batch that does not split
/// evenly is an error naming the options.
pub fn micro_batch(batch: usize, ranks: usize, accumulate: usize) -> Result<usize> {
    if accumulate == 0 {
        return Err(Error::invalid("--accumulate must be at least 1"));
    }
    let parts = ranks * accumulate;
    if batch % parts != 0 || batch < parts {
        let what = match (ranks, accumulate) {
            (1, k) => format!("{k} micro-batches (--accumulate {k})"),
            (n, 1) => format!("the {n} ranks (mpirun -n {n})"),
            (n, k) => format!("the {n} ranks × {k} micro-batches each (--accumulate {k})"),
        };
        let below = (batch / parts).max(1) * parts;
        return Err(Error::invalid(format!(
            "--batch-size {batch} is the global batch: it must split evenly over {what}, \
             i.e. be a multiple of {parts}, such as {below} or {}",
            below + parts
        )));
    }
    Ok(batch / parts)
}

/// The dropout of micro-batch `index` (counted over all ranks) of a step
/// whose dropout is `dropout`: the first keeps the step's masks (so one
/// process without accumulation trains as before), the others get their
/// own, so no two micro-batches of a step drop the same units.
pub fn micro_dropout(dropout: Option<Dropout>, index: usize) -> Option<Dropout> {
    dropout.map(|d| Dropout {
        seed: d.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ..d
    })
}

/// What every rank learnt from [`agree`].
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Every micro-batch's loss, rank by rank, in order.
    pub losses: Vec<f32>,
    /// Whether any rank was asked to stop (Ctrl-C, SIGTERM).
    pub stop: bool,
    /// The ranks whose step failed with an error of their own.
    pub failed: Vec<usize>,
}

impl Agreement {
    /// The step's loss: the mean of the micro-batch losses, added in order.
    pub fn loss(&self) -> f32 {
        sum_in_order(&self.losses) / self.losses.len() as f32
    }

    /// The ranks, with their micro-batch losses, where a loss is not finite.
    pub fn non_finite(&self, per_rank: usize) -> Vec<(usize, f32)> {
        self.losses
            .chunks(per_rank.max(1))
            .enumerate()
            .filter_map(|(r, l)| l.iter().find(|x| !x.is_finite()).map(|x| (r, *x)))
            .collect()
    }
}

fn sum_in_order(values: &[f32]) -> f32 {
    values.iter().fold(0.0, |s, x| s + x)
}

/// Exchanges this rank's micro-batch `losses` (the same count on every
/// rank), whether it was asked to stop, and whether its step failed.
pub fn agree(ranks: &Ranks, losses: &[f32], stop: bool, failed: bool) -> Agreement {
    let Some(comm) = ranks.comm() else {
        return Agreement {
            losses: losses.to_vec(),
            stop,
            failed: if failed { vec![0] } else { Vec::new() },
        };
    };
    let mut local = vec![f32::from(u8::from(stop)), f32::from(u8::from(failed))];
    local.extend_from_slice(losses);
    let width = local.len();
    let all = comm.all_gather_f32(&local);
    let per_rank: Vec<&[f32]> = all.chunks(width).collect();
    Agreement {
        losses: per_rank
            .iter()
            .flat_map(|r| r[2..].iter().copied())
            .collect(),
        stop: per_rank.iter().any(|r| r[0] != 0.0),
        failed: (0..per_rank.len())
            .filter(|&r| per_rank[r][1] != 0.0)
            .collect(),
    }
}

/// A gradient sum as one flat host buffer, the parameters one after the other.
#[derive(Debug, Default)]
pub struct FlatGradients {
    /// The numbers.
    pub data: Vec<f32>,
}

impl FlatGradients {
    /// Adds one micro-batch's gradients (one per parameter, in order).
    pub fn add<D: crate::Backend>(&mut self, grads: &[Param<D>]) {
        let fresh = self.data.is_empty();
        let mut at = 0;
        for g in grads {
            let values = g.as_vec();
            if fresh {
                self.data.extend_from_slice(&values);
            } else {
                self.data[at..at + values.len()]
                    .iter_mut()
                    .zip(&values)
                    .for_each(|(s, x)| *s += x);
            }
            at += values.len();
        }
    }

    /// The gradient tensors again, shaped like `like`, on `like`'s device.
    pub fn to_params<D: crate::Backend>(&self, like: &[Param<D>]) -> Vec<Param<D>> {
        use dfdx::prelude::*;
        let mut at = 0;
        like.iter()
            .map(|p| {
                let shape = *p.shape();
                let n = shape.0 * shape.1;
                at += n;
                p.device()
                    .tensor_from_vec(self.data[at - n..at].to_vec(), shape)
            })
            .collect()
    }
}

/// Sums every rank's gradient sum `local` into it (in rank order when
/// `deterministic`), then divides by `micro_batches`, the micro-batches of
/// the step over all ranks, so every rank holds the same mean gradient.
pub fn reduce_gradients(
    ranks: &Ranks,
    local: &mut FlatGradients,
    deterministic: bool,
    micro_batches: usize,
) {
    if let Some(comm) = ranks.comm() {
        if deterministic {
            let all = comm.all_gather_f32(&local.data);
            let n = local.data.len();
            local.data.copy_from_slice(&all[..n]);
            for rank in all.chunks(n).skip(1) {
                local.data.iter_mut().zip(rank).for_each(|(s, x)| *s += x);
            }
        } else {
            comm.all_reduce_sum_f32(&mut local.data);
        }
    }
    if micro_batches > 1 {
        let m = micro_batches as f32;
        local.data.iter_mut().for_each(|x| *x /= m);
    }
}

/// Whether the ranks average gradients of device `D` where they live
/// (NCCL on GPUs), so they need not visit the host.
pub fn averages_on_device<D: crate::Backend>(ranks: &Ranks) -> bool {
    ranks
        .comm()
        .is_some_and(|c| c.averages_on_device(&Vec::<Param<D>>::new()))
}

/// Replaces each of `grads` with its mean over the ranks, on the device
/// (see [`averages_on_device`]).
// A `Vec`, not a slice: the communicator recognises the device by its type (`Any`).
#[allow(clippy::ptr_arg)]
pub fn device_average<D: crate::Backend>(ranks: &Ranks, grads: &mut Vec<Param<D>>) -> Result<()> {
    ranks
        .comm()
        .and_then(|c| c.device_average(grads as &mut dyn Any))
        .unwrap_or_else(|| {
            Err(Error::Ranks(
                "gradients cannot be averaged on this device".into(),
            ))
        })
}

/// A checksum of numbers' bits (FNV-1a over each number's bits), to see
/// whether ranks hold identical weights.
pub fn checksum<'a>(tensors: impl IntoIterator<Item = &'a [f32]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in tensors {
        for x in t {
            h ^= u64::from(x.to_bits());
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Checks that every rank holds the same `what` (`sum` computes its
/// checksum, only when there are several ranks); a difference is an error,
/// the same on every rank, naming the ranks.
pub fn check_identical(ranks: &Ranks, what: &str, sum: impl FnOnce() -> u64) -> Result<()> {
    let Some(comm) = ranks.comm() else {
        return Ok(());
    };
    let all = comm.all_gather_u64(&[sum()]);
    let differ: Vec<String> = (1..all.len())
        .filter(|&r| all[r] != all[0])
        .map(|r| r.to_string())
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::Ranks(format!(
        "the ranks of this run no longer hold the same {what}: rank{} {} differ{} from rank 0 \
         (checksums {:016x?}); data-parallel training needs identical weights everywhere, so it \
         stops here. Resume from the last checkpoint; if it happens again, try --deterministic",
        if differ.len() == 1 { "" } else { "s" },
        differ.join(", "),
        if differ.len() == 1 { "s" } else { "" },
        all
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_that_do_not_split_evenly_are_refused_with_a_suggestion() {
        assert_eq!(micro_batch(8, 2, 1).unwrap(), 4);
        assert_eq!(micro_batch(8, 2, 2).unwrap(), 2);
        let e = micro_batch(7, 2, 1).unwrap_err().to_string();
        assert!(
            e.contains("--batch-size 7") && e.contains("mpirun -n 2"),
            "{e}"
        );
        assert!(e.contains("such as 6 or 8"), "{e}");
        let e = micro_batch(6, 1, 4).unwrap_err().to_string();
        assert!(e.contains("--accumulate 4") && e.contains("4 or 8"), "{e}");
        let e = micro_batch(2, 2, 2).unwrap_err().to_string();
        assert!(e.contains("2 ranks × 2"), "{e}");
        assert!(micro_batch(4, 1, 0).is_err());
    }

    #[test]
    fn the_first_micro_batch_keeps_the_steps_dropout() {
        let d = Some(Dropout {
            rate: 0.1,
            seed: 42,
        });
        assert_eq!(micro_dropout(d, 0), d);
        assert_ne!(micro_dropout(d, 1).unwrap().seed, 42);
        assert_ne!(micro_dropout(d, 1), micro_dropout(d, 2));
        assert_eq!(micro_dropout(None, 3), None);
    }

    #[test]
    fn one_process_agrees_with_itself() {
        let a = agree(&Ranks::single(), &[1.0, 3.0], false, false);
        assert_eq!(a.loss(), 2.0);
        assert!(!a.stop && a.failed.is_empty());
        let a = agree(&Ranks::single(), &[1.0, f32::NAN], true, false);
        assert_eq!(a.non_finite(2).len(), 1);
        assert!(a.stop);
        // One loss is returned exactly.
        let x = 0.123_456_79_f32;
        assert_eq!(agree(&Ranks::single(), &[x], false, false).loss(), x);
    }

    /// Rank 0 of two, whose partner sends `partner`'s numbers.
    struct Pair {
        partner_f32: Vec<f32>,
        partner_u64: u64,
    }

    impl Exchange for Pair {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn all_gather_f64(&self, local: &[f64]) -> Vec<f64> {
            [local, local].concat()
        }
    }

    impl Communicator for Pair {
        fn all_reduce_sum_f32(&self, data: &mut [f32]) {
            data.iter_mut()
                .zip(&self.partner_f32)
                .for_each(|(x, p)| *x += p);
        }
        fn all_gather_f32(&self, local: &[f32]) -> Vec<f32> {
            [local, &self.partner_f32[..local.len()]].concat()
        }
        fn all_gather_u64(&self, local: &[u64]) -> Vec<u64> {
            vec![local[0], self.partner_u64]
        }
        fn abort(&self, _: i32) -> ! {
            panic!("aborted")
        }
        fn exchange(self: Arc<Self>) -> Arc<dyn Exchange> {
            self
        }
    }

    fn pair(partner_f32: Vec<f32>, partner_u64: u64) -> Ranks {
        Ranks::new(Arc::new(Pair {
            partner_f32,
            partner_u64,
        }))
    }

    #[test]
    fn ranks_that_hold_other_weights_stop_with_a_message_naming_them() {
        let ranks = pair(Vec::new(), 7);
        assert!(check_identical(&ranks, "weights", || 7).is_ok());
        let e = check_identical(&ranks, "weights at step 40", || 8).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("same weights at step 40: rank 1 differs"), "{e}");
    }

    #[test]
    fn gradients_are_summed_over_ranks_then_divided_by_the_micro_batches() {
        for deterministic in [false, true] {
            let ranks = pair(vec![1.0, 2.0, 3.0], 0);
            let mut g = FlatGradients {
                data: vec![3.0, 2.0, 1.0],
            };
            reduce_gradients(&ranks, &mut g, deterministic, 4);
            assert_eq!(g.data, [1.0, 1.0, 1.0]);
        }
        // The partner's loss and flags reach rank 0.
        let a = agree(&pair(vec![0.0, 1.0, f32::NAN], 0), &[2.0], true, false);
        assert!(a.stop);
        assert_eq!(a.failed, [1]);
        assert_eq!(a.non_finite(1)[0].0, 1);
    }

    #[test]
    fn checksums_see_any_bit() {
        let a = [1.0f32, 2.0];
        let b = [1.0f32, f32::from_bits(2.0f32.to_bits() + 1)];
        assert_ne!(checksum([&a[..]]), checksum([&b[..]]));
        assert_eq!(checksum([&a[..]]), checksum([&a[..1], &a[1..]]));
    }
}
