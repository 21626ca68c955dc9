use super::*;
use crate::backend::reference;
use heads::HeadDims;

fn rand_tensor(dev: &Cpu, shape: (usize, usize), seed: u64) -> Tensor<(usize, usize), f32, Cpu> {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    dev.tensor_from_vec(
        (0..shape.0 * shape.1)
            .map(|_| r.gen_range(-2.0..2.0))
            .collect(),
        shape,
    )
}

/// Agreement of the attention kernels: every element within 1e-5 of the
/// largest magnitude in `b` (a single element near 0 carries the rounding of
/// the larger terms that cancelled in it, so a plain relative bound would
/// measure nothing but that).
fn agree(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let size = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * size, "{x} vs {y} (largest {size})");
    }
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
    }
}

/// Layer norm then a linear layer, fused against dfdx's composition,
/// forward and backward: loss = Σ up ⊙ (LN(x)·wt + s), with `s` both the
/// norm's shift and the layer's bias, so its gradient adds up from two
/// uses. Also checks that the fused pass gives the same bits on a second
/// run and on one thread, whatever rayon's scheduling (exact resume
/// depends on it).
fn layer_norm_and_linear_case(rows: usize, seed: u64) {
    let dev = Cpu::default();
    let x = rand_tensor(&dev, (rows, 64), seed);
    let g = rand_tensor(&dev, (1, 64), seed + 1);
    let s = rand_tensor(&dev, (1, 64), seed + 2);
    let wt = rand_tensor(&dev, (64, 64), seed + 3);
    let up = rand_tensor(&dev, (rows, 64), seed + 4);
    let run = |fused: bool| {
        let h = if fused {
            Cpu::linear(Cpu::layer_norm(x.leaky_trace(), &g, &s, 1e-5), &wt, &s)
        } else {
            reference::linear(
                reference::layer_norm(x.leaky_trace(), &g, &s, 1e-5),
                &wt,
                &s,
            )
        };
        let loss = (h * up.clone()).sum();
        (loss.array(), loss.backward())
    };
    let ((lf, gf), (lr, gr)) = (run(true), run(false));
    close(&[lf], &[lr]);
    for t in [&x, &g, &s, &wt] {
        close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
    }
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (loss, grads) in [run(true), one_thread.install(|| run(true))] {
        assert_eq!(loss.to_bits(), lf.to_bits());
        for t in [&x, &g, &s, &wt] {
            assert_eq!(grads.get(t).as_vec(), gf.get(t).as_vec());
        }
    }
}

#[test]
fn fused_layer_norm_and_linear_match_dfdx_forward_and_backward() {
    layer_norm_and_linear_case(300, 1);
}

#[test]
fn fused_kernels_match_dfdx_on_the_parallel_paths() {
    // Above PARALLEL_MIN, so buffers are built, copied and summed in
    // parallel chunks (1100 rows of 64: several blocks of whole rows,
    // the last one short).
    layer_norm_and_linear_case(1100, 41);
}

#[test]
fn fused_add_matches_dfdx_forward_and_backward() {
    // Parallel size; `x + x` accumulates both gradients into one.
    let dev = Cpu::default();
    let (a, b) = (
        rand_tensor(&dev, (700, 100), 71),
        rand_tensor(&dev, (700, 100), 72),
    );
    let up = rand_tensor(&dev, (700, 100), 73);
    let fused =
        (Cpu::add(Cpu::add(a.leaky_trace(), b.leaky_trace()), a.leaky_trace()) * up.clone()).sum();
    let reference = ((a.leaky_trace() + b.leaky_trace() + a.leaky_trace()) * up).sum();
    close(&[fused.array()], &[reference.array()]);
    let (gf, gr) = (fused.backward(), reference.backward());
    for t in [&a, &b] {
        close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
    }
    // `x + x` in one call: both inputs' gradients land on one tensor.
    let x = rand_tensor(&dev, (3, 5), 74);
    let traced = x.leaky_trace();
    let sum = Cpu::add(traced.with_empty_tape(), traced);
    close(&sum.as_vec(), &(x.clone() * 2.0).as_vec());
    let grads = sum.sum().backward();
    assert!(grads.get(&x).as_vec().iter().all(|&d| d == 2.0));
}

#[test]
fn fused_kernels_read_non_contiguous_inputs() {
    // A transposed (permuted) input has no contiguous slice to lend:
    // the kernel must copy it into row-major order first.
    let dev = Cpu::default();
    let xt = rand_tensor(&dev, (24, 37), 51);
    let wt = rand_tensor(&dev, (24, 40), 52);
    let b = rand_tensor(&dev, (1, 40), 53);
    let x = || xt.clone().permute::<(usize, usize), Axes2<1, 0>>();
    assert!(x().contiguous_slice().is_none());
    close(
        &Cpu::linear(x(), &wt, &b).as_vec(),
        &reference::linear(x(), &wt, &b).as_vec(),
    );
    // And through the backward pass: the gradient reaches the
    // transposed tensor's source.
    let up = rand_tensor(&dev, (37, 40), 54);
    let traced = || xt.leaky_trace().permute::<(usize, usize), Axes2<1, 0>>();
    let fused = (Cpu::linear(traced(), &wt, &b) * up.clone())
        .sum()
        .backward();
    let reference = (reference::linear(traced(), &wt, &b) * up).sum().backward();
    for t in [&xt, &wt, &b] {
        close(&fused.get(t).as_vec(), &reference.get(t).as_vec());
    }
}

#[test]
fn fused_adam_matches_the_composed_update_and_copies_shared_state() {
    // Large enough for the parallel path; m and v start as clones of one
    // tensor (as in `Adam::step`), so updating one in place must not
    // change the other.
    let dev = Cpu::default();
    let h = AdamStep {
        step: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        c2: 0.01,
        eps: 1e-8,
    };
    let zeros: Param<Cpu> = dev.zeros_like(&(300, 256));
    let (mut pf, mut pr) = (
        rand_tensor(&dev, (300, 256), 61),
        rand_tensor(&dev, (300, 256), 61),
    );
    let (mut mf, mut vf) = (zeros.clone(), zeros.clone());
    let (mut mr, mut vr) = (zeros.clone(), zeros.clone());
    for step in 0..2 {
        let grad = rand_tensor(&dev, (300, 256), 62 + step);
        Cpu::adam_update(&mut pf, grad.clone(), &mut mf, &mut vf, h);
        reference::adam_update(&mut pr, grad, &mut mr, &mut vr, h);
    }
    for (f, r) in [(&pf, &pr), (&mf, &mr), (&vf, &vr)] {
        close(&f.as_vec(), &r.as_vec());
    }
    assert!(zeros.as_vec().iter().all(|&z| z == 0.0));
}

#[test]
fn fused_linear_matches_dfdx_forward_and_backward() {
    let dev = Cpu::default();
    let x = rand_tensor(&dev, (37, 24), 11);
    let wt = rand_tensor(&dev, (24, 40), 12);
    let b = rand_tensor(&dev, (1, 40), 13);
    let up = rand_tensor(&dev, (37, 40), 14);
    let fused = (Cpu::linear(x.leaky_trace(), &wt, &b) * up.clone()).sum();
    let reference = (reference::linear(x.leaky_trace(), &wt, &b) * up.clone()).sum();
    close(&[fused.array()], &[reference.array()]);
    let (gf, gr) = (fused.backward(), reference.backward());
    for t in [&x, &wt, &b] {
        close(&gf.get(t).as_vec(), &gr.get(t).as_vec());
    }
    // Inference path, and a product large enough to be split over threads.
    let x = rand_tensor(&dev, (700, 64), 15);
    let wt = rand_tensor(&dev, (64, 48), 16);
    let b = rand_tensor(&dev, (1, 48), 17);
    close(
        &Cpu::linear(x.clone(), &wt, &b).as_vec(),
        &reference::linear(x, &wt, &b).as_vec(),
    );
}

#[test]
fn fused_dropout_matches_the_composed_mask_forward_and_backward() {
    let dev = Cpu::default();
    // Large enough to be split over threads in chunks.
    let (rows, cols) = (400, 200);
    let x = rand_tensor(&dev, (rows, cols), 21);
    let up = rand_tensor(&dev, (rows, cols), 22);
    let (rate, seed) = (0.3, 0x5eed_0000_0001);
    let fused = Cpu::dropout(x.leaky_trace(), rate, seed);
    let reference = reference::dropout(x.leaky_trace(), rate, seed);
    assert_eq!(fused.as_vec(), reference.as_vec());
    // `x` used twice: the backward pass must add to its gradient.
    let (gf, gr) = (
        ((fused + x.leaky_trace()) * up.clone()).sum().backward(),
        ((reference + x.leaky_trace()) * up.clone())
            .sum()
            .backward(),
    );
    close(&gf.get(&x).as_vec(), &gr.get(&x).as_vec());
    // Dropped numbers are 0, kept ones scaled by 1/(1 − rate), and about
    // `rate` of them are dropped.
    let out = Cpu::dropout(x.clone(), rate, seed).as_vec();
    let xs = x.as_vec();
    let mut dropped = 0;
    for (o, x) in out.iter().zip(&xs) {
        if *o == 0.0 {
            dropped += 1;
        } else {
            assert!((o - x / (1.0 - rate)).abs() <= 1e-6 * (1.0 + x.abs()));
        }
    }
    let fraction = dropped as f64 / xs.len() as f64;
    assert!((fraction - 0.3).abs() < 0.01, "{fraction}");
    // Another seed drops other numbers; rate 0 drops none.
    assert_ne!(Cpu::dropout(x.clone(), rate, seed + 1).as_vec(), out);
    assert_eq!(Cpu::dropout(x.clone(), 0.0, seed).as_vec(), xs);
}

#[test]
fn fused_attention_matches_dfdx_forward_and_backward() {
    // Two items, three heads, 5 queries over 7 keys; key width 4 and
    // value width 2 per head (they differ when the distance bias widens
    // the keys); the second item has two padded keys.
    attention_case(2, 3, 5, 7);
}

#[test]
fn fused_attention_works_through_long_rows_in_chunks() {
    // 4500 keys make chunks of 8 query rows: 20 rows are 3 chunks.
    let dims = HeadDims {
        h: 1,
        sq: 20,
        sk: 4500,
        dk: 4,
        dv: 2,
    };
    assert_eq!(
        dims.chunks().map(|r| r.len()).collect::<Vec<_>>(),
        [8, 8, 4]
    );
    attention_case(2, 1, 20, 4500);
}

#[test]
fn tiled_attention_matches_at_the_edges_of_tiles() {
    // 130 query rows: a whole tile and 2 rows; 600 keys: two whole tiles
    // and 88 keys.
    assert_eq!((tiled::QUERY_TILE, tiled::KEY_TILE), (128, 256));
    attention_case(2, 2, 130, 600);
    // One key per item: its weight is 1 whatever its score. The last two
    // items' only keys are padding, so all their keys are.
    attention_case(3, 2, 65, 1);
}

#[test]
fn attention_over_no_keys_is_zero_for_every_kernel() {
    let dev = Cpu::default();
    let s = AttentionShape {
        batch: 2,
        heads: 2,
        queries: 3,
        keys: 0,
        scale: 0.5,
    };
    let q = rand_tensor(&dev, (6, 8), 1);
    let (k, v) = (dev.zeros_like(&(0, 8)), dev.zeros_like(&(0, 4)));
    let bias = dev.zeros_like(&(2, 0));
    let tape = OwnedTape::<f32, Cpu>::default;
    for keep in [0, usize::MAX] {
        for key_bias in [None, Some(&bias)] {
            let (kt, vt) = (k.clone().put_tape(tape()), v.clone().put_tape(tape()));
            let out = cpu_attention(q.leaky_trace(), kt, vt, s, key_bias, keep);
            assert!(out.as_vec().iter().all(|x| *x == 0.0));
            let grads = out.sum().backward();
            assert!(grads.get(&q).as_vec().iter().all(|x| *x == 0.0));
        }
    }
}

/// Checks the fused attention against dfdx's composition, forward and
/// backward, with and without padding of the last two keys of the last
/// item, keeping the weights and with the tiled kernel.
fn attention_case(batch: usize, heads: usize, queries: usize, keys: usize) {
    let dev = Cpu::default();
    let s = AttentionShape {
        batch,
        heads,
        queries,
        keys,
        scale: 0.3,
    };
    let q = rand_tensor(&dev, (batch * queries, heads * 4), 5);
    let k = rand_tensor(&dev, (batch * keys, heads * 4), 6);
    let v = rand_tensor(&dev, (batch * keys, heads * 2), 7);
    let w = rand_tensor(&dev, (batch * queries, heads * 2), 8);
    let mut bias = vec![0.0; batch * keys];
    bias[batch * keys - 2] = -1e9;
    bias[batch * keys - 1] = -1e9;
    let bias = dev.tensor_from_vec(bias, (batch, keys));
    let mut results = Vec::new();
    // 0 = the tiled kernel; MAX = the one that keeps the weights.
    for keep_max_bytes in [None, Some(0), Some(usize::MAX)] {
        for key_bias in [None, Some(&bias)] {
            // Keys and values on tapes of their own, merged inside.
            let (qt, kt, vt) = (
                q.leaky_trace(),
                k.leaky_trace(),
                v.clone().put_tape(OwnedTape::default()),
            );
            let out = match keep_max_bytes {
                None => reference::attention(qt, kt, vt, s, key_bias),
                Some(keep) => cpu_attention(qt, kt, vt, s, key_bias, keep),
            };
            let loss = (out * w.clone()).sum();
            results.push((loss.array(), loss.backward()));
        }
    }
    for i in 2..results.len() {
        let ((fused, gf), (reference, gr)) = (&results[i], &results[i % 2]);
        agree(&[*fused], &[*reference]);
        for t in [&q, &k, &v] {
            agree(&gf.get(t).as_vec(), &gr.get(t).as_vec());
        }
    }
    // The value gradient (through a third tape), and the no-tape (inference) path.
    let empty = || OwnedTape::<f32, Cpu>::default();
    let (qe, ke) = (
        || q.clone().put_tape(empty()),
        || k.clone().put_tape(empty()),
    );
    let fused = Cpu::attention(qe(), ke(), v.leaky_trace(), s, Some(&bias));
    let reference = reference::attention(qe(), ke(), v.leaky_trace(), s, Some(&bias));
    close(&fused.as_vec(), &reference.as_vec());
    let gf = (fused * w.clone()).sum().backward();
    let gr = (reference * w.clone()).sum().backward();
    close(&gf.get(&v).as_vec(), &gr.get(&v).as_vec());
    let reference = reference::attention(q.clone(), k.clone(), v.clone(), s, Some(&bias));
    for keep in [0, usize::MAX] {
        let inference = cpu_attention(q.clone(), k.clone(), v.clone(), s, Some(&bias), keep);
        agree(&inference.as_vec(), &reference.as_vec());
    }
}

#[test]
fn fast_exponential_matches_the_standard_library() {
    let mut worst = 0.0f32;
    for i in 0..=870_000 {
        let x = -(i as f32) * 1e-4;
        let (a, b) = (exp_nonpositive(x), x.exp());
        worst = worst.max((a - b).abs() / b);
    }
    assert!(worst < 3e-7, "worst relative error {worst}");
    assert!(exp_nonpositive(-1000.0) < 1e-37);
    assert_eq!(exp_nonpositive(0.0), 1.0);
    let row: Vec<f32> = (0..37).map(|i| i as f32 * 0.25).collect();
    assert!((sum_lanes(&row, |x| x) - row.iter().sum::<f32>()).abs() < 1e-4);
    assert_eq!(max_lanes(&row), 9.0);
    assert_eq!(max_lanes(&row[..5]), 1.0);
    // The largest entry in the wide lanes, the narrow lanes and the tail.
    for at in [0, 63, 70, 130, 149] {
        let mut row = vec![-1.0f32; 150];
        row[at] = 2.0;
        assert_eq!(max_lanes(&row), 2.0, "largest at {at}");
    }
}

#[test]
fn fused_adam_matches_the_textbook_update() {
    let dev = Cpu::default();
    let (mut p, g, mut m, mut v) = (
        rand_tensor(&dev, (40, 30), 1),
        rand_tensor(&dev, (40, 30), 2),
        rand_tensor(&dev, (40, 30), 3),
        rand_tensor(&dev, (40, 30), 4),
    );
    let mut v_pos = dev.tensor_from_vec(v.as_vec().iter().map(|x| x.abs()).collect(), (40, 30));
    std::mem::swap(&mut v, &mut v_pos);
    let h = AdamStep {
        step: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        c2: 0.5,
        eps: 1e-8,
    };
    let (p0, g0, m0, v0) = (p.as_vec(), g.as_vec(), m.as_vec(), v.as_vec());
    Cpu::adam_update(&mut p, g, &mut m, &mut v, h);
    for i in 0..p0.len() {
        let mi = 0.9 * m0[i] + 0.1 * g0[i];
        let vi = 0.999 * v0[i] + 0.001 * g0[i] * g0[i];
        let pi = p0[i] - 0.01 * mi / ((vi / 0.5).sqrt() + 1e-8);
        close(
            &[p.as_vec()[i], m.as_vec()[i], v.as_vec()[i]],
            &[pi, mi, vi],
        );
    }
}
