//! Indexed triangle meshes: the output of marching cubes, with the
//! measurements the tests and the benchmark need (area, volume, topology,
//! surface samples, Chamfer distance).

use std::collections::HashMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A triangle mesh with shared vertices. Triangles wind counter-clockwise
/// seen from outside, so their normals point out of the shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    /// Vertex positions.
    pub positions: Vec<[f32; 3]>,
    /// Vertex indices of each triangle.
    pub triangles: Vec<[u32; 3]>,
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f64; 3] {
    [
        (a[0] - b[0]) as f64,
        (a[1] - b[1]) as f64,
        (a[2] - b[2]) as f64,
    ]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: [f64; 3]) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

impl Mesh {
    /// Whether the mesh has no triangles.
    pub fn is_empty(&self) -> bool {
        self.triangles.is_empty()
    }

    fn corners(&self, t: [u32; 3]) -> [[f32; 3]; 3] {
        t.map(|i| self.positions[i as usize])
    }

    /// Twice the area vector of triangle `t` (its unnormalised normal).
    fn area_vector(&self, t: [u32; 3]) -> [f64; 3] {
        let [a, b, c] = self.corners(t);
        cross(sub(b, a), sub(c, a))
    }

    /// Total surface area.
    pub fn area(&self) -> f64 {
        self.triangles
            .iter()
            .map(|&t| 0.5 * norm(self.area_vector(t)))
            .sum()
    }

    /// Signed enclosed volume (divergence theorem); positive when the
    /// triangles of a closed mesh wind outwards.
    pub fn signed_volume(&self) -> f64 {
        self.triangles
            .iter()
            .map(|&t| {
                let [a, b, c] = self.corners(t).map(|p| p.map(f64::from));
                let bc = cross(b, c);
                (a[0] * bc[0] + a[1] * bc[1] + a[2] * bc[2]) / 6.0
            })
            .sum()
    }

    /// Area-weighted unit normals at the vertices (zero for unused vertices).
    pub fn vertex_normals(&self) -> Vec<[f32; 3]> {
        let mut sum = vec![[0.0f64; 3]; self.positions.len()];
        for &t in &self.triangles {
            let n = self.area_vector(t);
            for i in t {
                for k in 0..3 {
                    sum[i as usize][k] += n[k];
                }
            }
        }
        sum.into_iter()
            .map(|n| {
                let l = norm(n);
                if l > 0.0 {
                    n.map(|x| (x / l) as f32)
                } else {
                    [0.0; 3]
                }
            })
            .collect()
    }

    /// How many triangles use each undirected edge.
    pub fn edge_use(&self) -> HashMap<(u32, u32), usize> {
        let mut uses = HashMap::new();
        for t in &self.triangles {
            for k in 0..3 {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                *uses.entry((a.min(b), a.max(b))).or_insert(0) += 1;
            }
        }
        uses
    }

    /// Whether every edge is shared by exactly two triangles that traverse it
    /// in opposite directions (a closed, consistently oriented surface).
    pub fn is_closed_oriented_manifold(&self) -> bool {
        let mut directed: HashMap<(u32, u32), usize> = HashMap::new();
        for t in &self.triangles {
            for k in 0..3 {
                *directed.entry((t[k], t[(k + 1) % 3])).or_insert(0) += 1;
            }
        }
        directed
            .iter()
            .all(|(&(a, b), &n)| n == 1 && directed.get(&(b, a)) == Some(&1))
    }

    /// Euler characteristic `V − E + F` over the vertices triangles use.
    pub fn euler_characteristic(&self) -> i64 {
        let mut used = vec![false; self.positions.len()];
        for t in &self.triangles {
            for &i in t {
                used[i as usize] = true;
            }
        }
        let v = used.iter().filter(|&&u| u).count() as i64;
        v - self.edge_use().len() as i64 + self.triangles.len() as i64
    }

    /// `n` points drawn uniformly (by area) on the surface; none if the mesh is empty.
    pub fn sample_surface(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<[f32; 3]> {
        let mut cumulative = Vec::with_capacity(self.triangles.len());
        let mut total = 0.0;
        for &t in &self.triangles {
            total += norm(self.area_vector(t));
            cumulative.push(total);
        }
        if self.triangles.is_empty() || total <= 0.0 {
            return Vec::new();
        }
        (0..n)
            .map(|_| {
                let r = rng.gen_range(0.0..total);
                let i = cumulative
                    .partition_point(|&c| c <= r)
                    .min(cumulative.len() - 1);
                let [a, b, c] = self.corners(self.triangles[i]);
                let (mut u, mut v) = (rng.gen::<f32>(), rng.gen::<f32>());
                if u + v > 1.0 {
                    (u, v) = (1.0 - u, 1.0 - v);
                }
                std::array::from_fn(|k| a[k] + u * (b[k] - a[k]) + v * (c[k] - a[k]))
            })
            .collect()
    }
}

/// Mean distance from each point of `from` to its nearest point of `to` (brute force).
fn mean_nearest(from: &[[f32; 3]], to: &[[f32; 3]]) -> f64 {
    let total: f64 = from
        .iter()
        .map(|p| {
            to.iter()
                .map(|q| {
                    let d = [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
                    d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                })
                .fold(f32::INFINITY, f32::min)
                .sqrt() as f64
        })
        .sum();
    total / from.len() as f64
}

/// Symmetric Chamfer distance between two point sets:
/// `½ (mean_a min_b ‖a − b‖ + mean_b min_a ‖a − b‖)`, in the sets' units
/// (not squared). `None` if either set is empty.
pub fn chamfer(a: &[[f32; 3]], b: &[[f32; 3]]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some(0.5 * (mean_nearest(a, b) + mean_nearest(b, a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A unit tetrahedron, wound outwards.
    fn tetrahedron() -> Mesh {
        Mesh {
            positions: vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            triangles: vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
        }
    }

    #[test]
    fn tetrahedron_measurements() {
        let m = tetrahedron();
        assert!((m.signed_volume() - 1.0 / 6.0).abs() < 1e-9);
        assert!((m.area() - (1.5 + 3f64.sqrt() / 2.0)).abs() < 1e-6);
        assert!(m.is_closed_oriented_manifold());
        assert_eq!(m.euler_characteristic(), 2);
        let mut flipped = m.clone();
        flipped.triangles[3] = [1, 3, 2];
        assert!(!flipped.is_closed_oriented_manifold());
        let mut open = m;
        open.triangles.pop();
        assert!(!open.is_closed_oriented_manifold());
    }

    #[test]
    fn surface_samples_lie_on_the_surface_and_chamfer_is_zero_on_itself() {
        let m = tetrahedron();
        let pts = m.sample_surface(500, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(pts.len(), 500);
        for p in &pts {
            let on_face =
                p.iter().any(|&x| x.abs() < 1e-6) || (p.iter().sum::<f32>() - 1.0).abs() < 1e-5;
            assert!(on_face, "{p:?}");
        }
        assert_eq!(chamfer(&pts, &pts), Some(0.0));
        let shifted: Vec<[f32; 3]> = pts.iter().map(|p| [p[0] + 0.5, p[1], p[2]]).collect();
        assert!(chamfer(&pts, &shifted).unwrap() > 0.1);
        assert_eq!(chamfer(&pts, &[]), None);
    }
}
