//! The procedural furniture's signed distances against brute force.

use pixel_transformer::SpatialSignal;
use pixel_transformer_sdf::{Family, Primitive, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Spacing of the surface samples of the brute-force reference.
const SPACING: f32 = 0.006;

/// Points on the surface of one primitive, about `SPACING` apart.
fn surface_points(part: &Primitive) -> Vec<[f32; 3]> {
    let steps = |len: f32| ((len / SPACING).ceil() as usize).max(1);
    let mut out = Vec::new();
    match *part {
        Primitive::Box { centre, half, tilt } => {
            let (s, c) = tilt.sin_cos();
            // Six faces in the box's frame, then rotated by `tilt` about x.
            for axis in 0..3 {
                for side in [-1.0f32, 1.0] {
                    let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
                    let (nu, nv) = (steps(2.0 * half[u]), steps(2.0 * half[v]));
                    for i in 0..=nu {
                        for j in 0..=nv {
                            let mut p = [0.0f32; 3];
                            p[axis] = side * half[axis];
                            p[u] = -half[u] + 2.0 * half[u] * i as f32 / nu as f32;
                            p[v] = -half[v] + 2.0 * half[v] * j as f32 / nv as f32;
                            out.push([
                                centre[0] + p[0],
                                centre[1] + c * p[1] - s * p[2],
                                centre[2] + s * p[1] + c * p[2],
                            ]);
                        }
                    }
                }
            }
        }
        Primitive::Cylinder { a, b, radius } => {
            let axis = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let len = (axis.iter().map(|x| x * x).sum::<f32>()).sqrt();
            let w = axis.map(|x| x / len);
            // Two unit vectors perpendicular to the axis.
            let helper = if w[1].abs() < 0.9 {
                [0.0, 1.0, 0.0]
            } else {
                [1.0, 0.0, 0.0]
            };
            let u = normalize(cross(w, helper));
            let v = cross(w, u);
            let around = steps(2.0 * std::f32::consts::PI * radius);
            let point = |t: f32, r: f32, k: usize| {
                let phi = 2.0 * std::f32::consts::PI * k as f32 / around as f32;
                let (sp, cp) = phi.sin_cos();
                std::array::from_fn(|i| a[i] + t * w[i] + r * (cp * u[i] + sp * v[i]))
            };
            let along = steps(len);
            for j in 0..=along {
                for k in 0..around {
                    out.push(point(len * j as f32 / along as f32, radius, k));
                }
            }
            let rings = steps(radius);
            for t in [0.0, len] {
                for j in 0..=rings {
                    for k in 0..around {
                        out.push(point(t, radius * j as f32 / rings as f32, k));
                    }
                }
            }
        }
    }
    out
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalize(a: [f32; 3]) -> [f32; 3] {
    let n = (a.iter().map(|x| x * x).sum::<f32>()).sqrt();
    a.map(|x| x / n)
}

/// Points on the boundary of the union: surface points of each part that no other part contains.
fn union_surface(shape: &Shape) -> Vec<[f32; 3]> {
    let mut out = Vec::new();
    for (i, part) in shape.parts.iter().enumerate() {
        for p in surface_points(part) {
            let buried = shape
                .parts
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && other.distance(p) < -1e-6);
            if !buried {
                out.push(p);
            }
        }
    }
    out
}

fn brute_distance(surface: &[[f32; 3]], p: [f32; 3]) -> f32 {
    surface
        .iter()
        .map(|q| (0..3).map(|k| (p[k] - q[k]).powi(2)).sum::<f32>())
        .fold(f32::INFINITY, f32::min)
        .sqrt()
}

#[test]
fn furniture_distances_are_exact_outside_and_bounds_inside() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // The nearest surface sample is at most half a diagonal of a sample cell away.
    let tolerance = SPACING * 0.75;
    for (family, count) in [(Family::Chairs, 4), (Family::Tables, 2)] {
        for _ in 0..count {
            let shape = family.draw(&mut rng);
            let surface = union_surface(&shape);
            let (mut outside, mut inside) = (0, 0);
            while outside < 150 || inside < 20 {
                // Half the probes near the shape (within 0.1 of a surface point), half anywhere.
                let p: [f32; 3] = if rng.gen_bool(0.5) {
                    let q = surface[rng.gen_range(0..surface.len())];
                    std::array::from_fn(|k| q[k] + rng.gen_range(-0.1..0.1f32))
                } else {
                    std::array::from_fn(|_| rng.gen_range(-1.0..1.0f32))
                };
                let d = shape.value_at(p)[0];
                let brute = brute_distance(&surface, p);
                if d > 0.0 && outside < 150 {
                    outside += 1;
                    assert!(
                        d <= brute + 1e-5 && brute - d <= tolerance,
                        "{family:?} at {p:?}: field {d}, brute force {brute}"
                    );
                } else if d < 0.0 && inside < 20 {
                    inside += 1;
                    // Inside, the minimum over parts never overstates the depth.
                    assert!(
                        -d <= brute + 1e-5,
                        "{family:?} at {p:?}: field {d}, brute {brute}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_wrong_distance_would_be_caught() {
    // The check above is not vacuous: a box whose field is off by 5 % fails it.
    let good = Primitive::cuboid([-0.3, -0.2, -0.1], [0.3, 0.2, 0.1]);
    let shape = Shape { parts: vec![good] };
    let surface = union_surface(&shape);
    let p = [0.5, 0.3, 0.2];
    let exact = shape.value_at(p)[0];
    let brute = brute_distance(&surface, p);
    assert!((exact - brute).abs() <= SPACING * 0.75);
    assert!((exact * 1.05 - brute).abs() > SPACING * 0.75);
}
