//! The NCCL path on one GPU: a one-rank communicator averages gradient
//! tensors in place on the device (the mean over one rank is the tensor
//! itself), through the same calls a multi-GPU run makes: the id, the
//! communicator, one group of all-reduces, the copies back.
//!
//! Compiled only with `--features nccl` (CI compile-checks it); run by
//! `scripts/gpu-check.sh` on a machine with an NVIDIA GPU and NCCL.
#![cfg(all(feature = "cuda", feature = "nccl"))]

use pixel_transformer::deps::dfdx::prelude::*;
use pixel_transformer::train::nccl::Nccl;

#[test]
fn one_rank_averages_gradients_in_place_on_the_gpu() {
    let dev = Cuda::seed_from_u64(0);
    let nccl = Nccl::new(&dev, 0, 1, |_| {}).expect("NCCL starts on one GPU");
    let values: Vec<Vec<f32>> = vec![
        (0..12).map(|i| i as f32 * 0.5 - 2.0).collect(),
        vec![1e-3, -7.0, 3.25],
    ];
    let shapes = [(3, 4), (1, 3)];
    let mut grads: Vec<_> = values
        .iter()
        .zip(shapes)
        .map(|(v, s)| dev.tensor_from_vec(v.clone(), s))
        .collect();
    // A shared gradient must not change its other owner (copy on write).
    let other = grads[0].clone();
    nccl.average(&mut grads).unwrap();
    for (g, v) in grads.iter().zip(&values) {
        assert_eq!(&g.as_vec(), v);
    }
    assert_eq!(other.as_vec(), values[0]);
}
