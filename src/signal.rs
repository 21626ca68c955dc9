//! Signals, observation sets and grids: the data side of the framework.
//!
//! A *spatial signal* is a function from positions in `[-1, 1]^P` to values in
//! `R^V`. An image is a signal over `P = 2` with `V = 1` (grey) or `V = 3`
//! (colour); a polynomial is `P = 1, V = 1`. The model never sees the signal
//! itself, only sets of `(position, value)` pairs drawn from it.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A signal that can be evaluated at any continuous position.
///
/// Positions are normalised to `[-1, 1]` on every axis; axis order is x
/// (column), y (row), then z or t. Implement this for your own data type and
/// the [`Domain`](crate::Domain) trait on top of it to get training, inference
/// and a command line.
///
/// ```
/// use pixel_transformer::SpatialSignal;
///
/// /// A sine wave: a 1-D signal with one value per position.
/// struct Sine { frequency: f32 }
///
/// impl SpatialSignal<1, 1> for Sine {
///     fn value_at(&self, position: [f32; 1]) -> [f32; 1] {
///         [(self.frequency * position[0]).sin()]
///     }
/// }
///
/// assert_eq!(Sine { frequency: 2.0 }.value_at([0.0]), [0.0]);
/// ```
pub trait SpatialSignal<const P: usize, const V: usize> {
    /// The value of the signal at `position` (each coordinate in `[-1, 1]`).
    fn value_at(&self, position: [f32; P]) -> [f32; V];
}

/// A set of observed `(position, value)` pairs: the context `S` the model conditions on.
///
/// It may be empty (unconditional generation). Order does not matter to the
/// model: predictions are invariant to permutations of the set.
///
/// ```
/// use pixel_transformer::Observations;
/// let mut s = Observations::<2, 3>::new(); // 2-D positions, RGB values
/// s.push([0.0, 0.5], [1.0, 0.0, 0.0]);
/// assert_eq!(s.len(), 1);
/// assert!(Observations::<1, 1>::from_pairs(vec![[f32::NAN]], vec![[0.0]]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observations<const P: usize, const V: usize> {
    /// Observed positions, each in `[-1, 1]^P`.
    pub positions: Vec<[f32; P]>,
    /// Observed values, one per position.
    pub values: Vec<[f32; V]>,
}

impl<const P: usize, const V: usize> Observations<P, V> {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            positions: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Builds a set from positions and values, checking lengths and finiteness.
    pub fn from_pairs(positions: Vec<[f32; P]>, values: Vec<[f32; V]>) -> Result<Self> {
        let s = Self { positions, values };
        s.validate()?;
        Ok(s)
    }

    /// Observes `signal` at the given positions.
    pub fn observe<S: SpatialSignal<P, V> + ?Sized>(signal: &S, positions: &[[f32; P]]) -> Self {
        Self {
            positions: positions.to_vec(),
            values: positions.iter().map(|&p| signal.value_at(p)).collect(),
        }
    }

    /// Number of observed pairs.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Adds one pair.
    pub fn push(&mut self, position: [f32; P], value: [f32; V]) {
        self.positions.push(position);
        self.values.push(value);
    }

    /// Checks that lengths agree and that everything is finite.
    pub fn validate(&self) -> Result<()> {
        if self.positions.len() != self.values.len() {
            return Err(Error::invalid(format!(
                "observations have {} positions but {} values",
                self.positions.len(),
                self.values.len()
            )));
        }
        check_positions(&self.positions, "observed position")?;
        for (i, v) in self.values.iter().enumerate() {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid(format!(
                    "observed value {i} is not finite: {v:?}"
                )));
            }
        }
        Ok(())
    }
}

/// Checks that positions are finite. Positions outside `[-1, 1]` are allowed
/// (extrapolation) but NaN or infinity is not.
pub fn check_positions<const P: usize>(positions: &[[f32; P]], what: &str) -> Result<()> {
    for (i, p) in positions.iter().enumerate() {
        if p.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(format!("{what} {i} is not finite: {p:?}")));
        }
    }
    Ok(())
}

/// A regular grid over `[-1, 1]^P`: pixel centres, voxels, frames, or sample points of a curve.
///
/// ```
/// use pixel_transformer::Grid;
/// let image = Grid::new([4, 2]); // 4 columns, 2 rows
/// assert_eq!(image.positions()[..2], [[-0.75, -0.5], [-0.25, -0.5]]);
/// ```
///
/// Cell `i` along an axis of `n` cells has its centre at `-1 + (2i + 1) / n`.
/// Positions are enumerated with the first axis (x) varying fastest, so an
/// image grid enumerates row by row, as pixels are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid<const P: usize> {
    /// Number of cells along each axis.
    pub shape: [usize; P],
}

impl<const P: usize> Grid<P> {
    /// A grid with `shape[i]` cells along axis `i`.
    pub fn new(shape: [usize; P]) -> Self {
        Self { shape }
    }

    /// Total number of cells.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the grid has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Centre of cell `i` of an axis with `n` cells.
    pub fn centre(i: usize, n: usize) -> f32 {
        -1.0 + (2 * i + 1) as f32 / n as f32
    }

    /// The position of the cell with flat index `index` (x fastest).
    pub fn position(&self, mut index: usize) -> [f32; P] {
        let mut p = [0.0; P];
        for (axis, &n) in self.shape.iter().enumerate() {
            p[axis] = Self::centre(index % n, n);
            index /= n;
        }
        p
    }

    /// All cell centres, x fastest.
    pub fn positions(&self) -> Vec<[f32; P]> {
        (0..self.len()).map(|i| self.position(i)).collect()
    }
}

/// `‖a − b‖²`, for positions (or values) of any dimension.
pub fn squared_distance<const N: usize>(a: &[f32; N], b: &[f32; N]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// A uniformly random position in `[-1, 1]^P`.
pub fn random_position<const P: usize>(rng: &mut impl Rng) -> [f32; P] {
    std::array::from_fn(|_| rng.gen_range(-1.0f32..=1.0))
}

/// How many observed and query points a training example has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSizes {
    /// Smallest observation set (may be 0: unconditional generation).
    pub min_observed: usize,
    /// Largest observation set. Sizes are drawn log-uniformly in between.
    pub max_observed: usize,
    /// Queries per example.
    pub queries: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_centres_follow_the_convention() {
        let g = Grid::new([4, 2]);
        assert_eq!(g.len(), 8);
        assert_eq!(g.position(0), [-0.75, -0.5]);
        assert_eq!(g.position(3), [0.75, -0.5]);
        assert_eq!(g.position(4), [-0.75, 0.5]);
    }

    #[test]
    fn observations_reject_nan_and_mismatch() {
        assert!(Observations::<1, 1>::from_pairs(vec![[0.0]], vec![]).is_err());
        assert!(Observations::<1, 1>::from_pairs(vec![[f32::NAN]], vec![[0.0]]).is_err());
        assert!(Observations::<1, 1>::from_pairs(vec![[0.0]], vec![[f32::INFINITY]]).is_err());
        assert!(Observations::<1, 1>::from_pairs(vec![[0.0]], vec![[1.0]]).is_ok());
    }
}
