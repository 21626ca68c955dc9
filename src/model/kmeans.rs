//! Seeded k-means, used to place the bins of the value distribution.
//!
//! Deterministic for a given seed: k-means++ initialisation on a subsample,
//! then Lloyd iterations. Empty clusters are re-seeded at the point farthest
//! from its centre, so `k` distinct centres come back whenever the data has
//! at least `k` distinct values.

use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{signal::squared_distance, Error, Result};

/// At most this many points take part (a random subset); more adds time, not accuracy.
const MAX_POINTS: usize = 50_000;
const MAX_ITERATIONS: usize = 50;

fn nearest<const V: usize>(x: &[f32; V], centres: &[[f32; V]]) -> (usize, f32) {
    centres
        .iter()
        .enumerate()
        .map(|(i, c)| (i, squared_distance(x, c)))
        .fold((0, f32::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
}

/// Clusters `values` into `k` centres, sorted by their first coordinate (then the rest).
pub fn kmeans<const V: usize>(values: &[[f32; V]], k: usize, seed: u64) -> Result<Vec<[f32; V]>> {
    if k == 0 {
        return Err(Error::invalid("k-means needs k ≥ 1"));
    }
    if values.is_empty() {
        return Err(Error::invalid("k-means needs at least one value"));
    }
    if values.iter().flatten().any(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "k-means: training values contain NaN or infinity",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut points: Vec<[f32; V]> = values.to_vec();
    if points.len() > MAX_POINTS {
        points.shuffle(&mut rng);
        points.truncate(MAX_POINTS);
    }

    // k-means++: each new centre is drawn with probability ∝ squared distance.
    let mut centres = vec![points[rng.gen_range(0..points.len())]];
    let mut d2: Vec<f32> = points
        .iter()
        .map(|p| squared_distance(p, &centres[0]))
        .collect();
    while centres.len() < k {
        let total: f32 = d2.iter().sum();
        let next = if total <= 0.0 {
            points[rng.gen_range(0..points.len())] // all points coincide with centres
        } else {
            let mut u = rng.gen::<f32>() * total;
            let mut chosen = points.len() - 1;
            for (i, &d) in d2.iter().enumerate() {
                if u < d {
                    chosen = i;
                    break;
                }
                u -= d;
            }
            points[chosen]
        };
        for (d, p) in d2.iter_mut().zip(&points) {
            *d = d.min(squared_distance(p, &next));
        }
        centres.push(next);
    }

    let mut assignment = vec![usize::MAX; points.len()];
    for _ in 0..MAX_ITERATIONS {
        let mut changed = false;
        for (a, p) in assignment.iter_mut().zip(&points) {
            let (c, _) = nearest(p, &centres);
            if *a != c {
                *a = c;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![[0.0f64; V]; k];
        let mut counts = vec![0usize; k];
        for (&a, p) in assignment.iter().zip(&points) {
            counts[a] += 1;
            for d in 0..V {
                sums[a][d] += p[d] as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                centres[c] = std::array::from_fn(|d| (sums[c][d] / counts[c] as f64) as f32);
            } else {
                // Re-seed an empty cluster at the worst-served point.
                let far = points
                    .iter()
                    .map(|p| nearest(p, &centres).1)
                    .enumerate()
                    .fold((0, -1.0f32), |a, b| if b.1 > a.1 { b } else { a })
                    .0;
                centres[c] = points[far];
            }
        }
    }
    centres.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Ok(centres)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_obvious_clusters_and_is_deterministic() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let values: Vec<[f32; 2]> = (0..3000)
            .map(|i| {
                let c = [[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]][i % 3];
                [
                    c[0] + rng.gen_range(-0.5..0.5),
                    c[1] + rng.gen_range(-0.5..0.5),
                ]
            })
            .collect();
        let a = kmeans(&values, 3, 42).unwrap();
        let b = kmeans(&values, 3, 42).unwrap();
        assert_eq!(a, b);
        for want in [[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]] {
            assert!(a.iter().any(|c| squared_distance(c, &want) < 0.05), "{a:?}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(kmeans::<1>(&[], 2, 0).is_err());
        assert!(kmeans(&[[f32::NAN]], 1, 0).is_err());
        assert!(kmeans(&[[0.0]], 0, 0).is_err());
    }
}
