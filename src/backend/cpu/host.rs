//! Reading dfdx's CPU tensors in place and building buffers on rayon's
//! threads: the plumbing every fused kernel shares.

use std::mem::MaybeUninit;

use dfdx::prelude::*;
use rayon::prelude::*;

/// Rows at or above this many elements are processed in parallel.
pub(super) const PARALLEL_MIN: usize = 1 << 16;

/// A CPU tensor's elements, read in place: a clone of the tensor (its
/// storage is reference-counted, so no element is copied) that lends them
/// as a slice. A backward pass that keeps one keeps the forward pass's
/// memory alive, no more.
pub(super) struct HostView<S: Shape>(Tensor<S, f32, Cpu>);

impl<S: Shape> std::ops::Deref for HostView<S> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.0
            .contiguous_slice()
            .expect("host() lends only dense tensors")
    }
}

/// Lends a tensor's elements in row-major order, copying them only when
/// its layout is not contiguous (broadcast or permuted). dfdx 0.13 lends no
/// slice of a tensor; the project's copy of it adds `contiguous_slice`
/// (vendor/README.md).
///
/// A kernel's gradient for an input is written in row-major order, which is
/// the layout of the input's own gradient buffer only if the input is
/// contiguous: so the kernels make their taped inputs contiguous *on the
/// tape* first (`x.contiguous()`, free when it already is), and dfdx maps
/// the gradient back to the original layout. Here, the copy only matters
/// for parameters and inputs without a gradient.
pub(super) fn host<S: Shape>(t: &Tensor<S, f32, Cpu>) -> HostView<S> {
    if t.contiguous_slice().is_some() {
        HostView(t.clone())
    } else {
        // `as_vec` reads in logical (row-major) order whatever the strides.
        HostView(t.device().tensor_from_vec(t.as_vec(), *t.shape()))
    }
}

/// A tensor's elements to update in place (copied first only if its
/// storage is shared or not contiguous).
pub(super) fn host_mut<S: Shape>(t: &mut Tensor<S, f32, Cpu>) -> &mut [f32] {
    if t.contiguous_slice().is_none() {
        *t = t.device().tensor_from_vec(t.as_vec(), *t.shape());
    }
    t.contiguous_slice_mut()
        .expect("a dense tensor lends its elements")
}

/// Elements per parallel task when building a new buffer.
pub(super) const BUILD_CHUNK: usize = PARALLEL_MIN / 4;

/// A new buffer of `len` floats whose consecutive chunks of `chunk`
/// elements (the last may be shorter) are written by `write(offset, slots)`,
/// on rayon's threads when there is more than one chunk. Writing new
/// buffers on the calling thread (`vec![0.0; len]`, then a fill) had left
/// the other threads waiting for a tenth of a training step.
///
/// # Safety
/// `write` must initialise every slot of every chunk it is handed.
pub(super) unsafe fn par_write(
    len: usize,
    chunk: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let chunk = chunk.max(1);
    let mut v: Vec<f32> = Vec::with_capacity(len);
    let slots = &mut v.spare_capacity_mut()[..len];
    if len > chunk {
        slots
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| write(i * chunk, c));
    } else if len > 0 {
        write(0, slots);
    }
    // SAFETY: the chunks cover the first `len` slots, and the caller's
    // `write` initialised each of them.
    unsafe { v.set_len(len) };
    v
}

/// A new buffer of `len` floats: `fill(offset, chunk)` overwrites
/// consecutive chunks of `chunk` elements, handed to it zeroed, in parallel
/// when there are several (see [`par_write`]). Each task zeroes its own
/// chunk, in cache, just before filling it.
pub(super) fn par_build(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let zero_then_fill = |at: usize, c: &mut [MaybeUninit<f32>]| {
        for x in c.iter_mut() {
            x.write(0.0);
        }
        // SAFETY: every element of `c` was initialised just above, and
        // `MaybeUninit<f32>` has the layout of `f32`.
        let c = unsafe { &mut *(c as *mut [MaybeUninit<f32>] as *mut [f32]) };
        fill(at, c);
    };
    // SAFETY: `zero_then_fill` writes every slot (zeroes it) first.
    unsafe { par_write(len, chunk, zero_then_fill) }
}

/// `len` zeros, written in parallel when large (see [`par_write`]).
pub(super) fn par_zeros(len: usize) -> Vec<f32> {
    par_build(len, BUILD_CHUNK, |_, _| {})
}

/// `f(a[i], b[i])` for every `i`, each element written once (nothing is
/// zeroed first), in parallel when large.
pub(super) fn par_map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "element-wise inputs of different lengths");
    // SAFETY: each chunk's slots are zipped with as many inputs (a and b
    // have the buffer's length), and the loop writes every slot.
    unsafe {
        par_write(a.len(), BUILD_CHUNK, |at, out| {
            let (a, b) = (&a[at..at + out.len()], &b[at..at + out.len()]);
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                o.write(f(x, y));
            }
        })
    }
}

/// A copy of `src`, each element written once, in parallel when large.
pub(super) fn par_copy(src: &[f32]) -> Vec<f32> {
    // SAFETY: each chunk's slots are zipped with as many elements of `src`
    // (it has the buffer's length), and the loop writes every slot.
    unsafe {
        par_write(src.len(), BUILD_CHUNK, |at, out| {
            let src = &src[at..at + out.len()];
            for (o, &x) in out.iter_mut().zip(src) {
                o.write(x);
            }
        })
    }
}

/// `row` repeated `rows` times, each element written once, in parallel when large.
pub(super) fn par_repeat(row: &[f32], rows: usize) -> Vec<f32> {
    let n = row.len();
    if n == 0 {
        return Vec::new();
    }
    // SAFETY: chunks are whole rows (a multiple of `n` elements), and the
    // loop writes each row's `n` slots.
    unsafe {
        par_write(n * rows, n * (BUILD_CHUNK / n).max(1), |_, out| {
            for r in out.chunks_exact_mut(n) {
                for (o, &x) in r.iter_mut().zip(row) {
                    o.write(x);
                }
            }
        })
    }
}

/// Per-column sums of `data` (rows of `width`), and with `weights` (same
/// shape) the per-column sums of `data · weights` too; in parallel over
/// row blocks when large, with the same result on any number of threads.
/// The bias and layer-norm gradients.
pub(super) fn column_sums(
    data: &[f32],
    weights: Option<&[f32]>,
    width: usize,
) -> (Vec<f32>, Vec<f32>) {
    let block = width * (BUILD_CHUNK / width.max(1)).max(1);
    let sums = |(b, rows): (usize, &[f32])| {
        let (mut plain, mut weighted) = (vec![0.0f32; width], vec![0.0f32; width]);
        for (r, row) in rows.chunks_exact(width).enumerate() {
            accumulate(&mut plain, row);
            if let Some(w) = weights {
                let at = b * block + r * width;
                for ((acc, x), w) in weighted.iter_mut().zip(row).zip(&w[at..at + width]) {
                    *acc += x * w;
                }
            }
        }
        (plain, weighted)
    };
    let add = |(mut a, mut b): (Vec<f32>, Vec<f32>), (c, d): (Vec<f32>, Vec<f32>)| {
        accumulate(&mut a, &c);
        accumulate(&mut b, &d);
        (a, b)
    };
    let zero = || (vec![0.0f32; width], vec![0.0f32; width]);
    // Blocks are summed in parallel, then added in their order: a fixed
    // grouping, so the result does not depend on how rayon scheduled the
    // work (a resumed run must reproduce the uninterrupted one bit for bit).
    let parts: Vec<_> = if data.len() >= PARALLEL_MIN {
        data.par_chunks(block).enumerate().map(sums).collect()
    } else {
        data.chunks(block).enumerate().map(sums).collect()
    };
    parts.into_iter().fold(zero(), add)
}

/// Runs `f` with the gradient of an op's output lent to it: moved out of
/// `grads` (no copy, unlike `to_vec`) and put back afterwards, also on
/// error. A backward op reads its output's gradient while it adds to its
/// inputs' gradients, and dfdx's public API lends only one gradient at a
/// time. `slot` finds the output's gradient, e.g.
/// `|g| g.get_or_alloc_mut(&out_id).map(|v| &mut **v)` for a ghost `out_id`
/// (dfdx does not export the ghost type, so this takes a closure); `len`
/// is the output's element count.
pub(super) fn with_output_gradient<R>(
    grads: &mut Gradients<f32, Cpu>,
    slot: impl for<'g> Fn(&'g mut Gradients<f32, Cpu>) -> Result<&'g mut Vec<f32>, CpuError>,
    len: usize,
    f: impl FnOnce(&mut Gradients<f32, Cpu>, &[f32]) -> Result<R, CpuError>,
) -> Result<R, CpuError> {
    let dy = std::mem::take(slot(grads)?);
    debug_assert_eq!(dy.len(), len, "an output's gradient was already lent");
    let result = f(grads, &dy);
    *slot(grads)? = dy;
    result
}

/// Asks the C allocator to keep freed memory for reuse (Linux with glibc;
/// elsewhere it does nothing). Call it once at the start of a program that
/// trains or samples on the CPU; the crate's command line does.
///
/// Every training step and sampling pass allocates the same large buffers
/// again (dfdx's tensors, the kernels' outputs). By default glibc returns
/// big freed blocks to the operating system at once, so the next step pays
/// for fresh, zeroed pages (the book's performance chapter has the cost).
/// With this, freed blocks
/// up to 32 MiB stay in the process. The peak memory is unchanged, but the
/// memory held between steps stays at that peak, until the process ends.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; any value is valid
    // (it returns 0 for ones it refuses, which leaves the defaults).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        // One heap for all threads: the kernels' rayon tasks allocate
        // scratch buffers, and a worker thread's own arena gives its freed
        // pages back to the system whatever the thresholds above say. The
        // price is one lock for every allocation, which did not show on two
        // threads; on many cores, where contention could, leave this
        // function out.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Runs `f(row_index, row)` on each `width`-sized row of `data`, in parallel when large.
pub(super) fn for_rows(data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if data.len() >= PARALLEL_MIN {
        data.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        data.chunks_mut(width)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    }
}

/// `dst += src`, in parallel when large (gradients of whole activations).
pub(super) fn accumulate(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    let add = |(d, s): (&mut [f32], &[f32])| d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
    if dst.len() >= PARALLEL_MIN {
        dst.par_chunks_mut(PARALLEL_MIN / 4)
            .zip(src.par_chunks(PARALLEL_MIN / 4))
            .for_each(add);
    } else {
        add((dst, src));
    }
}
