use super::*;
use crate::BinnedMixture;
use crate::Observations;
use tokens::nearest_values;

type M = Model<2, 1, Cpu, BinnedMixture>;

fn model() -> M {
    let dist = BinnedMixture::with_centres(&[[0.0f32], [0.5], [1.0]], 0.1, 1e-3).unwrap();
    Model::new(Preset::Tiny.config(), dist, 3, &Cpu::default()).unwrap()
}

/// The default model, and one with the nearest-value hint.
fn models() -> [M; 2] {
    let dist = BinnedMixture::with_centres(&[[0.0f32], [0.5], [1.0]], 0.1, 1e-3).unwrap();
    let hinted = ModelConfig {
        nearest_value: true,
        ..Preset::Tiny.config()
    };
    [
        model(),
        Model::new(hinted, dist, 3, &Cpu::default()).unwrap(),
    ]
}

fn set(n: usize, seed: u64) -> Observations<2, 1> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = Observations::new();
    for _ in 0..n {
        s.push(
            [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)],
            [rng.gen_range(0.0..1.0)],
        );
    }
    s
}

#[test]
fn stored_numbers_counts_exactly_what_the_model_allocates() {
    for (preset, nearest_value) in [(Preset::Tiny, false), (Preset::Small, true)] {
        let config = ModelConfig {
            nearest_value,
            ..preset.config()
        };
        for bins in [1usize, 3] {
            let centres: Vec<[f32; 3]> = (0..bins).map(|b| [b as f32; 3]).collect();
            let dist = BinnedMixture::with_centres(&centres, 0.1, 1e-3).unwrap();
            let width = OutputDistribution::<3>::head_width(&dist);
            let m = Model::<2, 3, Cpu, _>::new(config.clone(), dist, 0, &Cpu::default()).unwrap();
            let expected = (m.num_params() + m.fourier().len()) as u128;
            assert_eq!(config.stored_numbers(2, 3, width), expected);
        }
    }
    let absurd = ModelConfig {
        embed_dim: usize::MAX - 1,
        ..Preset::Tiny.config()
    };
    assert!(absurd.validate().is_err());
    let largest = ModelConfig {
        embed_dim: 1 << 16,
        heads: 1,
        ff_dim: 1 << 18,
        encoder_layers: 1 << 10,
        decoder_layers: 1 << 10,
        fourier_scale: 1.0,
        raw_positions: true,
        distance_bias: true,
        nearest_value: true,
    };
    largest.validate().unwrap();
    assert!(largest.stored_numbers(3, 3, usize::MAX) > u64::MAX as u128);
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs()))
}

#[test]
fn the_distance_bias_weights_keys_by_squared_distance() {
    // Zero query/key projections leave only the bias in the scores;
    // identity value/output projections and one-hot key tokens then make
    // the attention output the attention weights themselves.
    let mut m = model();
    let dev = m.device().clone();
    let w = m.config().width();
    let dh = w / m.config().heads;
    let a = m.encoder[0].attn;
    let identity: Vec<f32> = (0..w * w)
        .map(|i| if i / w == i % w { 1.0 } else { 0.0 })
        .collect();
    for (linear, weight) in [
        (a.query, vec![0.0; w * w]),
        (a.key, vec![0.0; w * w]),
        (a.value, identity.clone()),
        (a.out, identity),
    ] {
        m.params_mut()[linear.weight] = dev.tensor_from_vec(weight, (w, w));
        m.params_mut()[linear.bias] = dev.tensor_from_vec(vec![0.0; w], (1, w));
    }
    let strengths = [1.0f32, 5.0];
    m.params_mut()[a.distance_strength.unwrap()] =
        dev.tensor_from_vec(strengths.iter().map(|s| s.ln()).collect(), (1, 2));

    // Keys: the prior token (no position), then three samples.
    let keys: [Option<[f32; 2]>; 4] =
        [None, Some([0.1, 0.2]), Some([0.5, -0.3]), Some([-0.9, 0.9])];
    let query = [0.3f32, 0.0];
    let mut tokens = vec![0.0f32; keys.len() * w];
    for k in 0..keys.len() {
        tokens[k * w + k] = 1.0; // head 0's half
        tokens[k * w + dh + k] = 1.0; // head 1's half
    }
    let key_factors = DistanceFactors::keys(&dev, [keys.iter().map(|k| k.as_ref())].into_iter(), 4);
    let factors = DistanceFactors::with_queries(
        &dev,
        key_factors,
        [std::iter::once(Some(&query))].into_iter(),
        1,
        (dh as f32).sqrt(),
    );
    let out = a
        .forward(
            m.params(),
            m.config(),
            dev.zeros_like(&(1, w)),
            dev.tensor_from_vec(tokens, (keys.len(), w)),
            attention::Sizes {
                b: 1,
                sq: 1,
                sk: keys.len(),
            },
            None,
            Some(&factors),
        )
        .as_vec();
    for (head, s) in strengths.iter().enumerate() {
        let scores: Vec<f32> = keys
            .iter()
            .map(|k| {
                k.map_or(0.0, |x| {
                    -s * ((x[0] - query[0]).powi(2) + (x[1] - query[1]).powi(2))
                })
            })
            .collect();
        let total: f32 = scores.iter().map(|x| x.exp()).sum();
        let expected: Vec<f32> = scores.iter().map(|x| x.exp() / total).collect();
        let got = &out[head * dh..head * dh + keys.len()];
        assert!(
            close(got, &expected, 1e-5),
            "head {head}: {got:?} vs {expected:?}"
        );
    }
}

#[test]
fn predictions_ignore_the_order_of_observations() {
    for m in models() {
        predictions_ignore_the_order_with(&m);
    }
}

fn predictions_ignore_the_order_with(m: &M) {
    let mut s = set(9, 1);
    // Two observations exactly equally far from the last query: the
    // nearest-value hint averages them, whatever their order.
    s.push([0.5, -0.28125], [0.9]);
    s.push([0.5, -0.21875], [0.2]);
    let mut reversed = s.clone();
    reversed.positions.reverse();
    reversed.values.reverse();
    let q = [[0.1, -0.3], [0.7, 0.2], [0.5, -0.25]];
    let a = m
        .predict(&[ModelInput {
            observed: &s,
            queries: &q,
        }])
        .unwrap();
    let b = m
        .predict(&[ModelInput {
            observed: &reversed,
            queries: &q,
        }])
        .unwrap();
    assert!(close(&a[0], &b[0], 1e-4));
}

#[test]
fn a_query_does_not_depend_on_the_other_queries_or_items() {
    for m in models() {
        a_query_is_independent_with(&m);
    }
}

fn a_query_is_independent_with(m: &M) {
    let s = set(5, 2);
    let alone = m
        .predict(&[ModelInput {
            observed: &s,
            queries: &[[0.2, 0.2]],
        }])
        .unwrap();
    // Same query among others, in a batch with a larger set and an empty one (padding + masks).
    let big = set(12, 3);
    let empty = Observations::new();
    let q = [[0.9, -0.9], [0.2, 0.2], [0.0, 0.5]];
    let batch = m
        .predict(&[
            ModelInput {
                observed: &big,
                queries: &q,
            },
            ModelInput {
                observed: &s,
                queries: &q,
            },
            ModelInput {
                observed: &empty,
                queries: &q[..1],
            },
        ])
        .unwrap();
    let hw = 3 * 3;
    assert!(
        close(&alone[0], &batch[1][hw..2 * hw], 1e-4),
        "{:?} vs {:?}",
        alone[0],
        &batch[1][hw..2 * hw]
    );
    // The empty set in a batch equals the empty set alone.
    let empty_alone = m
        .predict(&[ModelInput {
            observed: &empty,
            queries: &q[..1],
        }])
        .unwrap();
    assert!(close(&empty_alone[0], &batch[2], 1e-4));
    assert_eq!(batch[2].len(), hw);
}

/// A few queries take `few_query_attention`; many take `attention`. Both
/// must give the same predictions, with and without the distance bias,
/// with padding, and for an empty set.
#[test]
fn few_query_cross_attention_matches_the_projected_one() {
    for (distance_bias, nearest_value) in [(true, false), (false, false), (true, true)] {
        let config = ModelConfig {
            distance_bias,
            nearest_value,
            ..Preset::Tiny.config()
        };
        let dist = BinnedMixture::with_centres(&[[0.0f32], [0.5], [1.0]], 0.1, 1e-3).unwrap();
        let m = M::new(config, dist, 5, &Cpu::default()).unwrap();
        let (big, small, empty) = (set(20, 1), set(7, 2), Observations::new());
        let many: Vec<[f32; 2]> = (0..300)
            .map(|i| [(i as f32 * 0.37).sin(), (i as f32 * 0.61).cos()])
            .collect();
        let few = &many[..2];
        assert!(attention::few_queries_are_cheaper(
            m.config(),
            few.len(),
            21
        ));
        assert!(!attention::few_queries_are_cheaper(
            m.config(),
            many.len(),
            21
        ));
        let ask = |queries: &[[f32; 2]]| {
            m.predict(&[
                ModelInput {
                    observed: &big,
                    queries,
                },
                ModelInput {
                    observed: &small,
                    queries,
                },
                ModelInput {
                    observed: &empty,
                    queries,
                },
            ])
            .unwrap()
        };
        let (a, b) = (ask(few), ask(&many));
        let hw = 3 * 3;
        for item in 0..3 {
            let (x, y) = (&a[item][..2 * hw], &b[item][..2 * hw]);
            assert!(
                close(x, y, 1e-4),
                "bias {distance_bias}, item {item}: {x:?} vs {y:?}"
            );
        }
    }
}

#[test]
fn gradients_reach_every_parameter() {
    for m in models() {
        gradients_reach_every_parameter_of(&m);
    }
}

fn gradients_reach_every_parameter_of(m: &M) {
    let s = set(4, 5);
    let q = [[0.3, 0.3]];
    let out = m
        .forward(
            &[ModelInput {
                observed: &s,
                queries: &q,
            }],
            OwnedTape::default(),
        )
        .unwrap();
    let loss = m.distribution().loss(out, &[[0.7]]).unwrap();
    let grads = loss.backward();
    for (p, name) in m.params().iter().zip(m.param_names()) {
        let g = grads.get(p).as_vec();
        assert!(g.iter().any(|x| *x != 0.0), "no gradient for {name}");
    }
}

#[test]
fn both_attention_kernels_give_the_same_gradients() {
    // Every parameter's gradient, the distance bias's strengths included,
    // with the kernel that keeps the weights and with the tiled one, against
    // the attention composed of dfdx's operations. Three
    // items: 70 observed (more than a tile of queries), 3 (padded keys) and
    // none.
    use crate::backend::{with_attention_kernel, AttentionKernel};
    let m = model();
    assert!(m.config().distance_bias);
    let sets = [set(70, 1), set(3, 2), Observations::new()];
    let queries = set(70, 3).positions;
    let gradients = |kernel| {
        with_attention_kernel(kernel, || {
            let inputs: Vec<_> = sets
                .iter()
                .map(|s| ModelInput {
                    observed: s,
                    queries: &queries,
                })
                .collect();
            let out = m.forward(&inputs, OwnedTape::default()).unwrap();
            let loss = m.distribution().loss(out, &vec![[0.7]; 3 * 70]).unwrap();
            let grads = loss.backward();
            m.params()
                .iter()
                .map(|p| grads.get(p).as_vec())
                .collect::<Vec<_>>()
        })
    };
    let (kept, tiled, reference) = (
        gradients(AttentionKernel::KeepWeights),
        gradients(AttentionKernel::Tiled),
        gradients(AttentionKernel::Reference),
    );
    let params = kept.iter().zip(&tiled).zip(&reference).zip(m.param_names());
    for (((kept, tiled), reference), name) in params {
        if name.ends_with("key.bias") {
            // Adds the same number to every key's score, which softmax
            // ignores: its gradient is 0 up to rounding.
            continue;
        }
        let size = reference.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(size > 0.0, "no gradient for {name}");
        // A distance strength's gradient is a small sum of large terms of
        // both signs, among them terms that cancel exactly in theory (the
        // query's own squared distance is the same for every key), so it
        // carries their rounding. The tiled kernel's backward pass takes
        // each row's Σ p·dp as Σ dout·out (FlashAttention-2), which rounds
        // differently from the composed softmax: measured 4e-4 of the
        // gradient (2.7e-7 against parameter gradients up to 2).
        let tolerance = if name.ends_with("distance_strength") {
            2e-3
        } else {
            1e-5
        };
        for kernel in [kept, tiled] {
            for (x, y) in kernel.iter().zip(reference) {
                assert!((x - y).abs() <= tolerance * size, "{name}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn the_hint_is_the_nearest_value_and_its_distance() {
    let observed = Observations::<2, 2>::from_pairs(
        vec![[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0], [1.0, 1.0]],
        vec![[1.0, 2.0], [3.0, 4.0], [5.0, 8.0], [7.0, 7.0]],
    )
    .unwrap();
    let queries = [[0.4, 0.0], [0.0, 0.0], [0.75, 0.75], [0.25, 0.0]];
    let mut out = [0.0f32; 4 * 3];
    nearest_values(
        &ModelInput {
            observed: &observed,
            queries: &queries,
        },
        &mut out,
    );
    let expected = [
        [3.0, 4.0, 0.1],                 // the second observation
        [1.0, 2.0, 0.0],                 // at an observation
        [7.0, 7.0, 0.5f32.sqrt() * 0.5], // the corner
        [2.0, 3.0, 0.25],                // a tie: the average of two
    ];
    for (got, want) in out.chunks(3).zip(expected) {
        assert!(close(got, &want, 1e-6), "{got:?} vs {want:?}");
    }
    let empty = Observations::<2, 2>::new();
    nearest_values(
        &ModelInput {
            observed: &empty,
            queries: &queries[..1],
        },
        &mut out[..3],
    );
    assert_eq!(out[..3], [0.0, 0.0, 8f32.sqrt()]);
}

#[test]
fn dropout_is_seeded_and_off_without_a_rate() {
    let m = model();
    let s = set(9, 3);
    let q = [[0.1, -0.2], [0.7, 0.3]];
    let input = [ModelInput {
        observed: &s,
        queries: &q,
    }];
    let pass = |d: Option<Dropout>| {
        m.forward_with_dropout(&input, NoneTape, d)
            .unwrap()
            .as_vec()
    };
    let plain = pass(None);
    let at = |rate, seed| Some(Dropout { rate, seed });
    assert_eq!(pass(at(0.0, 1)), plain);
    assert_eq!(pass(at(0.5, 1)), pass(at(0.5, 1)));
    assert_ne!(pass(at(0.5, 1)), plain);
    assert_ne!(pass(at(0.5, 1)), pass(at(0.5, 2)));
    for rate in [1.0, -0.1, f32::NAN] {
        assert!(m
            .forward_with_dropout(&input, NoneTape, at(rate, 1))
            .is_err());
    }
}

#[test]
fn bad_inputs_are_errors() {
    let m = model();
    let s = set(2, 1);
    assert!(m.predict(&[]).is_err());
    assert!(m
        .predict(&[ModelInput {
            observed: &s,
            queries: &[]
        }])
        .is_err());
    assert!(m
        .predict(&[ModelInput {
            observed: &s,
            queries: &[[f32::NAN, 0.0]]
        }])
        .is_err());
    let mut bad = s.clone();
    bad.values[0][0] = f32::NAN;
    assert!(m
        .predict(&[ModelInput {
            observed: &bad,
            queries: &[[0.0, 0.0]]
        }])
        .is_err());
    let mut c = Preset::Tiny.config();
    c.heads = 3;
    assert!(M::new(c, BinnedMixture::gaussian(1, 1e-3), 0, &Cpu::default()).is_err());
}
