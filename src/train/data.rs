//! Random training examples: an observation set `S` and a query set `Q` drawn
//! from one signal.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::{signal::random_position, Domain, Observations, SetSizes, Split};

/// One self-supervised example: observe `S`, predict the values at `Q`.
#[derive(Debug, Clone, PartialEq)]
pub struct Example<const P: usize, const V: usize> {
    /// The observed pairs.
    pub observed: Observations<P, V>,
    /// Query positions.
    pub queries: Vec<[f32; P]>,
    /// True values at the queries.
    pub targets: Vec<[f32; V]>,
}

/// Draws `|S|` log-uniformly in `[min, max]`: small sets are as common per
/// octave as large ones, so the model learns both the sparse regime (where it
/// must guess) and the dense one (where it must interpolate).
///
/// A minimum of 0 is handled by drawing `|S| + 1` log-uniformly in `[1, max + 1]`.
pub fn draw_set_size(min: usize, max: usize, rng: &mut impl Rng) -> usize {
    let (lo, hi) = (min.min(max), min.max(max));
    let shift = usize::from(lo == 0);
    let (a, b) = (((lo + shift) as f64).ln(), ((hi + shift + 1) as f64).ln());
    let n = rng.gen_range(a..b).exp().floor() as usize;
    n.saturating_sub(shift).clamp(lo, hi)
}

/// Draws one example from a fresh signal of `split`, at continuous positions:
/// observations uniform, queries where [`Domain::draw_query`] puts them.
pub fn draw_example<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    split: Split,
    sizes: &SetSizes,
    rng: &mut ChaCha8Rng,
) -> Example<P, V> {
    let signal = domain.draw_signal(split, rng);
    let n = draw_set_size(sizes.min_observed, sizes.max_observed, rng);
    let mut observed = Observations::new();
    for _ in 0..n {
        let x = random_position(rng);
        let v = domain.observe(&signal, x, rng);
        observed.push(x, v);
    }
    let queries: Vec<[f32; P]> = (0..sizes.queries)
        .map(|_| domain.draw_query(&signal, rng))
        .collect();
    let targets = queries
        .iter()
        .map(|&x| domain.observe(&signal, x, rng))
        .collect();
    Example {
        observed,
        queries,
        targets,
    }
}

/// Draws an example with exactly `n` observations (used by evaluation).
pub fn draw_example_with<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    split: Split,
    n: usize,
    queries: usize,
    rng: &mut ChaCha8Rng,
) -> Example<P, V> {
    draw_example(
        domain,
        split,
        &SetSizes {
            min_observed: n,
            max_observed: n,
            queries,
        },
        rng,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn set_sizes_cover_the_range_log_uniformly() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let draws: Vec<usize> = (0..20_000)
            .map(|_| draw_set_size(4, 512, &mut rng))
            .collect();
        assert!(draws.iter().all(|&n| (4..=512).contains(&n)));
        // Log-uniform: [4, 16) and [128, 512] hold about equal shares (2 octaves each).
        let low = draws.iter().filter(|&&n| n < 16).count() as f64;
        let high = draws.iter().filter(|&&n| n >= 128).count() as f64;
        assert!((low / high - 1.0).abs() < 0.1, "{low} vs {high}");
        assert!(draws.contains(&512));
        let with_zero: Vec<usize> = (0..5000).map(|_| draw_set_size(0, 20, &mut rng)).collect();
        assert!(with_zero.contains(&0) && with_zero.contains(&20));
        assert_eq!(draw_set_size(7, 7, &mut rng), 7);
    }
}
