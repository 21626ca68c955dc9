//! Marching cubes into an indexed, watertight, outward-wound mesh.
//!
//! # Why no 256-entry table
//!
//! The classic Lorensen–Cline table picks one triangulation per corner
//! configuration without looking at neighbouring cubes, so on faces whose
//! four corners alternate (inside, outside, inside, outside) two cubes can
//! cut the shared face differently and leave a crack. Instead, each cube's
//! polygons are built from its six faces at run time:
//!
//! 1. On each face, the crossed edges are joined in pairs by segments. A face
//!    with two crossings has one segment; an ambiguous face (four crossings)
//!    is resolved by the asymptotic decider: the bilinear interpolant's
//!    saddle decides whether the two inside corners are connected across
//!    the face. The decision depends only on the face's four values, so the
//!    two cubes sharing the face draw the same segments: no cracks.
//! 2. Every segment is directed so that, seen from outside the cube, the
//!    inside corners lie on its left. Each crossed edge is the end of one
//!    segment and the start of another, so the segments form closed loops,
//!    and a face shared by two cubes is traversed in opposite directions by
//!    them: the surface is consistently oriented.
//! 3. Each loop (3 to 12 vertices) is triangulated as a fan, wound so the
//!    normals point towards the outside (values ≥ the iso-level).
//!
//! Vertices are shared: one per crossed grid edge, placed by linear
//! interpolation. Every mesh edge on a cube face belongs to exactly two
//! triangles (one per cube), every fan diagonal to two triangles of the same
//! loop, so a surface that does not touch the grid's border comes out a
//! closed 2-manifold.

use crate::{Mesh, SdfGrid};

/// Corner `c` of a cube sits at offset `(c & 1, c >> 1 & 1, c >> 2 & 1)`.
fn corner_offset(c: usize) -> [usize; 3] {
    [c & 1, (c >> 1) & 1, (c >> 2) & 1]
}

/// The six faces, each as four corners counter-clockwise seen from outside
/// (order −x, +x, −y, +y, −z, +z).
const FACES: [[usize; 4]; 6] = [
    [0, 4, 6, 2],
    [1, 3, 7, 5],
    [0, 1, 5, 4],
    [2, 6, 7, 3],
    [0, 2, 3, 1],
    [4, 5, 7, 6],
];

/// The cube's edge between corners `a` and `b` (which differ in one bit),
/// as (lower corner, axis); numbered `lower * 3 + axis` in a 24-slot array.
fn local_edge(a: usize, b: usize) -> usize {
    let lower = a.min(b);
    let axis = (a ^ b).trailing_zeros() as usize;
    lower * 3 + axis
}

/// Extracts the iso-surface `value = iso` of `grid`. Inside is `value < iso`.
///
/// Vertex positions are in the grid's normalised coordinates (sample `i` of
/// `n` at `−1 + (2i + 1)/n`). Returns an empty mesh if nothing crosses `iso`.
pub fn marching_cubes(grid: &SdfGrid, iso: f32) -> Mesh {
    let [nx, ny, nz] = grid.shape();
    let mut mesh = Mesh::default();
    // Global vertex id of each grid edge: (sample index) * 3 + axis.
    let mut edge_vertex = vec![u32::MAX; nx * ny * nz * 3];
    for z in 0..nz - 1 {
        for y in 0..ny - 1 {
            for x in 0..nx - 1 {
                let values: [f32; 8] = std::array::from_fn(|c| {
                    let o = corner_offset(c);
                    grid.at(x + o[0], y + o[1], z + o[2])
                });
                let inside = values.map(|v| v < iso);
                if inside.iter().all(|&i| i) || inside.iter().all(|&i| !i) {
                    continue;
                }
                // next[e] = the local edge the loop goes to after edge e.
                let mut next = [usize::MAX; 24];
                for face in FACES {
                    face_segments(face, &values, &inside, iso, &mut next);
                }
                let mut visited = [false; 24];
                for start in 0..24 {
                    if next[start] == usize::MAX || visited[start] {
                        continue;
                    }
                    let mut polygon = Vec::with_capacity(12);
                    let mut e = start;
                    while !visited[e] {
                        visited[e] = true;
                        polygon.push(e);
                        e = next[e];
                    }
                    let ids: Vec<u32> = polygon
                        .iter()
                        .map(|&e| {
                            edge_vertex_id(
                                grid,
                                [x, y, z],
                                &values,
                                iso,
                                e,
                                &mut edge_vertex,
                                &mut mesh,
                            )
                        })
                        .collect();
                    let points: Vec<[f32; 3]> =
                        ids.iter().map(|&i| mesh.positions[i as usize]).collect();
                    // The loops run clockwise seen from outside the surface:
                    // triangles list their corners the other way round so
                    // that normals point outwards.
                    if let Some(triangles) = triangulate(&polygon, &points) {
                        for [a, b, c] in triangles {
                            mesh.triangles.push([ids[a], ids[c], ids[b]]);
                        }
                    } else {
                        let centre = mesh.positions.len() as u32;
                        let n = points.len() as f32;
                        mesh.positions.push(std::array::from_fn(|k| {
                            points.iter().map(|p| p[k]).sum::<f32>() / n
                        }));
                        for k in 0..ids.len() {
                            let next = ids[(k + 1) % ids.len()];
                            mesh.triangles.push([centre, next, ids[k]]);
                        }
                    }
                }
            }
        }
    }
    mesh
}

/// The mesh vertex on local edge `e` of the cube at `cell`, created (by
/// linear interpolation of the crossing) the first time any cube asks.
fn edge_vertex_id(
    grid: &SdfGrid,
    cell: [usize; 3],
    values: &[f32; 8],
    iso: f32,
    e: usize,
    edge_vertex: &mut [u32],
    mesh: &mut Mesh,
) -> u32 {
    let (lower, axis) = (e / 3, e % 3);
    let o = corner_offset(lower);
    let g = [cell[0] + o[0], cell[1] + o[1], cell[2] + o[2]];
    let slot = grid.index(g[0], g[1], g[2]) * 3 + axis;
    if edge_vertex[slot] == u32::MAX {
        let (a, b) = (values[lower], values[lower | (1 << axis)]);
        let t = ((iso - a) / (b - a)).clamp(0.0, 1.0);
        let mut p = grid.position(g[0], g[1], g[2]);
        p[axis] += t * 2.0 / grid.shape()[axis] as f32;
        edge_vertex[slot] = mesh.positions.len() as u32;
        mesh.positions.push(p);
    }
    edge_vertex[slot]
}

/// The face two distinct local edges have in common, as (axis, side), if any.
fn shared_face(e1: usize, e2: usize) -> Option<(usize, usize)> {
    let (l1, a1, l2, a2) = (e1 / 3, e1 % 3, e2 / 3, e2 % 3);
    (0..3)
        .find(|&b| b != a1 && b != a2 && (l1 >> b) & 1 == (l2 >> b) & 1)
        .map(|b| (b, (l1 >> b) & 1))
}

/// Triangulates one loop (local edges `polygon`, vertex positions `points`)
/// with the shortest total diagonal length.
///
/// A diagonal between two vertices on a common cube face is also a possible
/// diagonal of the neighbour across that face, and if both cubes drew it the
/// edge would have four triangles. So such a diagonal is only allowed on the
/// cube's upper faces (+x, +y, +z): each grid face then has one cube that may
/// use it. Returns `None` when no triangulation obeys the rule (seen only on
/// noise-like fields with many saddles; the caller then adds a centre vertex).
fn triangulate(polygon: &[usize], points: &[[f32; 3]]) -> Option<Vec<[usize; 3]>> {
    let n = polygon.len();
    let allowed = |i: usize, j: usize| {
        (i + 1) % n == j
            || (j + 1) % n == i
            || shared_face(polygon[i], polygon[j]).map_or(true, |(_, side)| side == 1)
    };
    let length = |i: usize, j: usize| {
        let (p, q) = (points[i], points[j]);
        ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt()
    };
    // cost[i][j]: cheapest triangulation of the sub-polygon i..=j closed by chord (i, j).
    let mut cost = vec![vec![f32::INFINITY; n]; n];
    let mut split = vec![vec![usize::MAX; n]; n];
    for i in 0..n - 1 {
        cost[i][i + 1] = 0.0;
    }
    for span in 2..n {
        for i in 0..n - span {
            let j = i + span;
            if !allowed(i, j) {
                continue;
            }
            for k in i + 1..j {
                let c = cost[i][k] + cost[k][j];
                if c < cost[i][j] {
                    cost[i][j] = c;
                    split[i][j] = k;
                }
            }
            if split[i][j] != usize::MAX && j - i < n - 1 {
                cost[i][j] += length(i, j);
            }
        }
    }
    if split[0][n - 1] == usize::MAX {
        return None;
    }
    let mut triangles = Vec::with_capacity(n - 2);
    let mut stack = vec![(0, n - 1)];
    while let Some((i, j)) = stack.pop() {
        if j - i < 2 {
            continue;
        }
        let k = split[i][j];
        triangles.push([i, k, j]);
        stack.push((i, k));
        stack.push((k, j));
    }
    Some(triangles)
}

/// Adds one face's directed segments to `next` (leaving crossing → entering crossing).
fn face_segments(
    face: [usize; 4],
    values: &[f32; 8],
    inside: &[bool; 8],
    iso: f32,
    next: &mut [usize; 24],
) {
    // Edge k of the face runs from face[k] to face[k + 1], counter-clockwise.
    let edge = |k: usize| local_edge(face[k % 4], face[(k + 1) % 4]);
    let crossings = (0..4)
        .filter(|&k| inside[face[k]] != inside[face[(k + 1) % 4]])
        .count();
    match crossings {
        2 => {
            let leaving = (0..4)
                .find(|&k| inside[face[k]] && !inside[face[(k + 1) % 4]])
                .expect("two crossings include one leaving the inside");
            let entering = (0..4)
                .find(|&k| !inside[face[k]] && inside[face[(k + 1) % 4]])
                .expect("and one entering it");
            next[edge(leaving)] = edge(entering);
        }
        4 => {
            // Asymptotic decider on the bilinear interpolant: the inside
            // corners are connected across the face when the product of the
            // inside diagonal's offsets exceeds the outside one's. Products of
            // f32 offsets are exact in f64 and symmetric in the corner order,
            // so both cubes sharing this face decide alike.
            let a = face.map(|c| values[c] as f64 - iso as f64);
            let connected = a[0] * a[2] > a[1] * a[3];
            for k in 0..4 {
                if inside[face[k]] && !inside[face[(k + 1) % 4]] {
                    // Separated: cut off this inside run, back to the crossing before it.
                    // Connected: cut off the outside corner ahead, to the crossing after it.
                    let target = if connected { k + 1 } else { k + 3 };
                    next[edge(k)] = edge(target);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixel_transformer::SpatialSignal;

    struct Sphere {
        centre: [f32; 3],
        radius: f32,
    }

    impl SpatialSignal<3, 1> for Sphere {
        fn value_at(&self, p: [f32; 3]) -> [f32; 1] {
            let d: f32 = (0..3).map(|i| (p[i] - self.centre[i]).powi(2)).sum();
            [d.sqrt() - self.radius]
        }
    }

    /// Grid edges whose ends lie on different sides of `iso`.
    fn crossed_edges(grid: &SdfGrid, iso: f32) -> usize {
        let [nx, ny, nz] = grid.shape();
        let mut count = 0;
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let inside = grid.at(x, y, z) < iso;
                    for (dx, dy, dz) in [(1, 0, 0), (0, 1, 0), (0, 0, 1)] {
                        let (u, v, w) = (x + dx, y + dy, z + dz);
                        if u < nx && v < ny && w < nz && (grid.at(u, v, w) < iso) != inside {
                            count += 1;
                        }
                    }
                }
            }
        }
        count
    }

    #[test]
    fn single_inside_corner_gives_one_outward_triangle() {
        let mut values = vec![1.0f32; 8];
        values[0] = -1.0;
        let grid = SdfGrid::new([2, 2, 2], values).unwrap();
        let m = marching_cubes(&grid, 0.0);
        assert_eq!((m.positions.len(), m.triangles.len()), (3, 1));
        // The normal points away from the inside corner at (−0.5, −0.5, −0.5).
        let n = m.vertex_normals()[0];
        assert!(n.iter().all(|&c| c > 0.5), "{n:?}");
    }

    #[test]
    fn sphere_is_a_closed_outward_manifold_with_the_right_area() {
        let r = 0.6;
        let sphere = Sphere {
            centre: [0.013, -0.021, 0.007],
            radius: r,
        };
        let grid = SdfGrid::from_signal(&sphere, [64, 64, 64]).unwrap();
        let m = marching_cubes(&grid, 0.0);
        assert!(m.is_closed_oriented_manifold());
        assert!(m.edge_use().values().all(|&n| n == 2));
        assert_eq!(m.euler_characteristic(), 2);
        let area = 4.0 * std::f64::consts::PI * (r as f64).powi(2);
        assert!(
            (m.area() / area - 1.0).abs() < 0.02,
            "{} vs {area}",
            m.area()
        );
        assert!(m.signed_volume() > 0.0);
        // One vertex per crossed edge, and no two vertices coincide.
        assert_eq!(m.positions.len(), crossed_edges(&grid, 0.0));
        let mut keys: Vec<[u32; 3]> = m.positions.iter().map(|p| p.map(f32::to_bits)).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), m.positions.len());
    }

    #[test]
    fn random_fields_full_of_ambiguous_faces_give_closed_manifolds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..5 {
            let n = 12;
            let grid = SdfGrid::new(
                [n, n, n],
                (0..n * n * n)
                    .map(|i| {
                        let (x, y, z) = (i % n, i / n % n, i / (n * n));
                        let border = [x, y, z].iter().any(|&c| c == 0 || c == n - 1);
                        // Coarse noise: about half the interior corners are inside.
                        if border {
                            1.0
                        } else {
                            rng.gen_range(-1.0..1.0f32)
                        }
                    })
                    .collect(),
            )
            .unwrap();
            let m = marching_cubes(&grid, 0.0);
            assert!(m.triangles.len() > 1000);
            // Centre vertices are rare even in noise: at most 1 % extra.
            let crossed = crossed_edges(&grid, 0.0);
            assert!((crossed..=crossed + crossed / 100).contains(&m.positions.len()));
            assert!(m.is_closed_oriented_manifold());
            assert!(m.signed_volume() > 0.0);
        }
    }
}
