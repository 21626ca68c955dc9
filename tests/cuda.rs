//! CUDA variants of the core checks: the same weights and inputs on the CPU and
//! on the GPU must agree (relative tolerance 1e-3) for the distribution's loss,
//! the model's forward and backward passes, a few training steps, and sampling.
//!
//! Compiled only with `--features cuda`; run by `scripts/gpu-check.sh` on a
//! machine with an NVIDIA GPU.
#![cfg(feature = "cuda")]

use pixel_transformer::deps::dfdx::prelude::*;
use pixel_transformer::train::data::Example;
use pixel_transformer::train::optim::Adam;
use pixel_transformer::train::trainer::train_step;
use pixel_transformer::{
    BinnedMixture, Model, ModelInput, Observations, OutputDistribution, Preset, SampleOptions,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-3 * scale.max(x.abs()),
            "{what}[{i}]: cpu {x} vs cuda {y}"
        );
    }
}

fn batch(
    rng: &mut ChaCha8Rng,
    sizes: &[usize],
) -> (Vec<Observations<2, 1>>, Vec<Vec<[f32; 2]>>, Vec<[f32; 1]>) {
    let sets = sizes
        .iter()
        .map(|&n| {
            let mut s = Observations::new();
            for _ in 0..n {
                s.push(
                    [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)],
                    [rng.gen()],
                );
            }
            s
        })
        .collect();
    let queries: Vec<Vec<[f32; 2]>> = sizes
        .iter()
        .map(|_| {
            (0..16)
                .map(|_| [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)])
                .collect()
        })
        .collect();
    let targets = (0..sizes.len() * 16).map(|_| [rng.gen()]).collect();
    (sets, queries, targets)
}

fn models() -> (
    Model<2, 1, Cpu, BinnedMixture>,
    Model<2, 1, Cuda, BinnedMixture>,
) {
    let centres: Vec<[f32; 1]> = (0..32).map(|i| [i as f32 / 31.0]).collect();
    let dist = BinnedMixture::with_centres(&centres, 0.1, 1e-3).unwrap();
    let cpu = Model::new(Preset::Small.config(), dist, 1, &Cpu::default()).unwrap();
    let gpu = cpu.to_device(&Cuda::default());
    (cpu, gpu)
}

#[test]
fn forward_loss_and_gradients_agree() {
    let (cpu, gpu) = models();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Mixed set sizes, including an empty set: exercises padding masks and the prior token.
    let (sets, queries, targets) = batch(&mut rng, &[0, 5, 40, 17]);
    let inputs: Vec<ModelInput<2, 1>> = sets
        .iter()
        .zip(&queries)
        .map(|(s, q)| ModelInput {
            observed: s,
            queries: q,
        })
        .collect();
    close(
        "predict",
        &cpu.predict(&inputs).unwrap().concat(),
        &gpu.predict(&inputs).unwrap().concat(),
    );

    let lc = cpu
        .distribution()
        .loss(
            cpu.forward(&inputs, OwnedTape::default()).unwrap(),
            &targets,
        )
        .unwrap();
    let lg = gpu
        .distribution()
        .loss(
            gpu.forward(&inputs, OwnedTape::default()).unwrap(),
            &targets,
        )
        .unwrap();
    close("loss", &lc.as_vec(), &lg.as_vec());
    let (gc, gg) = (lc.backward(), lg.backward());
    for ((pc, pg), name) in cpu.params().iter().zip(gpu.params()).zip(cpu.param_names()) {
        close(name, &gc.get(pc).as_vec(), &gg.get(pg).as_vec());
    }
}

#[test]
fn training_steps_agree() {
    let (mut cpu, mut gpu) = models();
    let (mut ac, mut ag) = (Adam::new(1e-3), Adam::new(1e-3));
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for step in 0..3 {
        let (sets, queries, targets) = batch(&mut rng, &[8, 8, 30]);
        let examples: Vec<Example<2, 1>> = sets
            .into_iter()
            .zip(queries)
            .zip(targets.chunks(16))
            .map(|((observed, queries), t)| Example {
                observed,
                queries,
                targets: t.to_vec(),
            })
            .collect();
        // The trainer's own step on both devices, with dropout (whose mask
        // is the same on every device) from the second step.
        let dropout = (step > 0).then_some(pixel_transformer::Dropout {
            rate: 0.2,
            seed: step,
        });
        let lc = train_step(&mut cpu, &mut ac, &examples, dropout).unwrap();
        let lg = train_step(&mut gpu, &mut ag, &examples, dropout).unwrap();
        close("loss", &[lc], &[lg]);
    }
    for ((pc, pg), name) in cpu.params().iter().zip(gpu.params()).zip(cpu.param_names()) {
        close(name, &pc.as_vec(), &pg.as_vec());
    }
}

#[test]
fn sampling_agrees() {
    let (cpu, gpu) = models();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (sets, _, _) = batch(&mut rng, &[12]);
    let grid: Vec<[f32; 2]> = pixel_transformer::Grid::new([6, 6]).positions();
    // Mean fields agree; samples use the same seeded draws, so they agree
    // wherever the distributions do (checked on the first few values, before
    // float differences can flip a bin choice).
    close(
        "mean field",
        &cpu.mean_field(&sets[0], &grid).unwrap().concat(),
        &gpu.mean_field(&sets[0], &grid).unwrap().concat(),
    );
    let opts = SampleOptions {
        samples: 2,
        autoregressive: Some(8),
        temperature: 1.0,
        seed: 9,
        values_per_pass: 1,
    };
    let a = cpu.sample(&sets[0], &grid, &opts).unwrap();
    let b = gpu.sample(&sets[0], &grid, &opts).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(b.iter().flatten().flatten().all(|v| v.is_finite()));
}
