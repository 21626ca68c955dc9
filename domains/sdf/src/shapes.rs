//! Procedural furniture with exact signed distances: chairs (the default data
//! set) and tables (a second family, e.g. for held-out tests).
//!
//! A shape is a union of boxes and capped cylinders. Each primitive's signed
//! distance is exact, and the distance to a union is the minimum of the
//! distances to its parts, so the field is exact everywhere outside the
//! shape. Inside, where parts overlap (a leg entering the seat), the minimum
//! is only a bound: its magnitude never exceeds the true distance to the
//! surface, and it is exact wherever the nearest surface point belongs to the
//! part the point is in. The sign is always right.
//!
//! Coordinates: y is up, the floor is at `y = FLOOR`, the chair faces +z,
//! and everything stays inside `[-0.95, 0.95]³`.

use pixel_transformer::SpatialSignal;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Height of the floor every piece of furniture stands on.
pub const FLOOR: f32 = -0.85;

fn length(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// One solid part of a shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Primitive {
    /// A box with centre `centre` and half extents `half`, tilted by `tilt`
    /// radians about the x axis (a reclined chair back).
    Box {
        /// Centre.
        centre: [f32; 3],
        /// Half extents along the box's own axes.
        half: [f32; 3],
        /// Rotation about the x axis, radians.
        tilt: f32,
    },
    /// A solid cylinder of radius `radius` whose axis runs from `a` to `b` (flat caps).
    Cylinder {
        /// Centre of one cap.
        a: [f32; 3],
        /// Centre of the other cap.
        b: [f32; 3],
        /// Radius.
        radius: f32,
    },
}

impl Primitive {
    /// An axis-aligned box from its two opposite corners.
    pub fn cuboid(lo: [f32; 3], hi: [f32; 3]) -> Self {
        Primitive::Box {
            centre: std::array::from_fn(|i| 0.5 * (lo[i] + hi[i])),
            half: std::array::from_fn(|i| 0.5 * (hi[i] - lo[i]).abs()),
            tilt: 0.0,
        }
    }

    /// Exact signed distance from `p` to this solid (negative inside).
    pub fn distance(&self, p: [f32; 3]) -> f32 {
        match *self {
            Primitive::Box { centre, half, tilt } => {
                let d = sub(p, centre);
                // Into the box's frame: rotate by −tilt about x.
                let (s, c) = tilt.sin_cos();
                let local = [d[0], c * d[1] + s * d[2], -s * d[1] + c * d[2]];
                let q: [f32; 3] = std::array::from_fn(|i| local[i].abs() - half[i]);
                let outside = length([q[0].max(0.0), q[1].max(0.0), q[2].max(0.0)]);
                outside + q[0].max(q[1]).max(q[2]).min(0.0)
            }
            Primitive::Cylinder { a, b, radius } => {
                let axis = sub(b, a);
                let len = length(axis);
                let u = axis.map(|x| x / len);
                let pa = sub(p, a);
                let along = pa[0] * u[0] + pa[1] * u[1] + pa[2] * u[2];
                let radial = length(std::array::from_fn(|i| pa[i] - along * u[i]));
                let dr = radial - radius;
                let dh = (along - 0.5 * len).abs() - 0.5 * len;
                let outside = (dr.max(0.0).powi(2) + dh.max(0.0).powi(2)).sqrt();
                outside + dr.max(dh).min(0.0)
            }
        }
    }
}

/// A union of primitives: one piece of furniture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Its parts.
    pub parts: Vec<Primitive>,
}

impl SpatialSignal<3, 1> for Shape {
    fn value_at(&self, p: [f32; 3]) -> [f32; 1] {
        [self
            .parts
            .iter()
            .map(|part| part.distance(p))
            .fold(f32::INFINITY, f32::min)]
    }
}

/// Which procedural family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Chairs: seat, four legs, a back (panel or slats), optional arms and stretchers.
    Chairs,
    /// Tables: a top on four legs or on a pedestal.
    Tables,
}

impl Family {
    /// Draws one shape of this family.
    pub fn draw(self, rng: &mut ChaCha8Rng) -> Shape {
        match self {
            Family::Chairs => chair(rng),
            Family::Tables => table(rng),
        }
    }
}

/// A leg (or post) from `bottom` up to height `top`: round or square.
fn post(x: f32, z: f32, bottom: f32, top: f32, half_width: f32, round: bool) -> Primitive {
    if round {
        Primitive::Cylinder {
            a: [x, bottom, z],
            b: [x, top, z],
            radius: half_width,
        }
    } else {
        Primitive::cuboid(
            [x - half_width, bottom, z - half_width],
            [x + half_width, top, z + half_width],
        )
    }
}

/// A random chair.
pub fn chair(rng: &mut ChaCha8Rng) -> Shape {
    let mut parts = Vec::new();
    let half_width = rng.gen_range(0.35..0.55f32);
    let half_depth = rng.gen_range(0.32..0.5f32);
    let thickness = rng.gen_range(0.08..0.15f32);
    let seat_top = rng.gen_range(-0.15..0.05f32);
    let seat_bottom = seat_top - thickness;
    parts.push(Primitive::cuboid(
        [-half_width, seat_bottom, -half_depth],
        [half_width, seat_top, half_depth],
    ));

    // Four legs, inset from the seat's corners.
    let round = rng.gen_bool(0.5);
    let leg = rng.gen_range(0.05..0.09f32);
    let inset = leg + rng.gen_range(0.0..0.06f32);
    let (lx, lz) = (half_width - inset, half_depth - inset);
    for (sx, sz) in [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
        parts.push(post(sx * lx, sz * lz, FLOOR, seat_bottom, leg, round));
    }

    // Stretchers between the legs: along z on both sides, sometimes across the front.
    if rng.gen_bool(0.5) {
        let y = rng.gen_range(FLOOR + 0.15..seat_bottom - 0.1);
        let r = 0.6 * leg;
        for sx in [-1.0, 1.0] {
            parts.push(Primitive::Cylinder {
                a: [sx * lx, y, -lz],
                b: [sx * lx, y, lz],
                radius: r,
            });
        }
        if rng.gen_bool(0.5) {
            parts.push(Primitive::Cylinder {
                a: [-lx, y, lz],
                b: [lx, y, lz],
                radius: r,
            });
        }
    }

    // The back: a panel or vertical slats under a top rail, possibly reclined.
    let back_thickness = rng.gen_range(0.06..0.12f32);
    let back_height = rng.gen_range(0.4..(0.88 - seat_top).min(0.85));
    let tilt = rng.gen_range(0.0..0.3f32);
    let back_half_width = half_width * rng.gen_range(0.8..1.0f32);
    // Pivot at the seat's rear edge; leaning back moves the top towards −z.
    let (s, c) = tilt.sin_cos();
    let centre_at = |height: f32| {
        [
            0.0,
            seat_top + c * height,
            -half_depth + back_thickness / 2.0 - s * height,
        ]
    };
    let panel = |height_lo: f32, height_hi: f32, x_lo: f32, x_hi: f32| {
        let mid = centre_at(0.5 * (height_lo + height_hi));
        Primitive::Box {
            centre: [0.5 * (x_lo + x_hi), mid[1], mid[2]],
            half: [
                0.5 * (x_hi - x_lo),
                0.5 * (height_hi - height_lo),
                back_thickness / 2.0,
            ],
            tilt,
        }
    };
    if rng.gen_bool(0.5) {
        parts.push(panel(0.0, back_height, -back_half_width, back_half_width));
    } else {
        let rail = rng.gen_range(0.1..0.18f32);
        parts.push(panel(
            back_height - rail,
            back_height,
            -back_half_width,
            back_half_width,
        ));
        let slats = rng.gen_range(2..=4);
        let slat = rng.gen_range(0.04..0.07f32);
        for k in 0..slats {
            let x = -back_half_width
                + slat
                + (2.0 * (back_half_width - slat)) * k as f32 / (slats - 1) as f32;
            parts.push(panel(0.0, back_height - rail, x - slat, x + slat));
        }
    }

    // Arms: a rest on each side, on a post at the front.
    if rng.gen_bool(0.4) {
        let height = seat_top + rng.gen_range(0.15..0.3f32);
        let arm = rng.gen_range(0.04..0.07f32);
        let front = half_depth - rng.gen_range(0.0..0.1f32);
        for sx in [-1.0, 1.0] {
            let x = sx * (half_width - arm);
            parts.push(Primitive::cuboid(
                [x - arm, height - arm, -half_depth],
                [x + arm, height, front],
            ));
            parts.push(post(
                x,
                front - arm,
                seat_top - 0.01,
                height,
                0.7 * arm,
                round,
            ));
        }
    }
    Shape { parts }
}

/// A random table: a top on four legs or on a pedestal with a round foot.
pub fn table(rng: &mut ChaCha8Rng) -> Shape {
    let mut parts = Vec::new();
    let half_width = rng.gen_range(0.45..0.9f32);
    let half_depth = rng.gen_range(0.35..0.8f32);
    let thickness = rng.gen_range(0.04..0.1f32);
    let top = rng.gen_range(0.0..0.5f32);
    parts.push(Primitive::cuboid(
        [-half_width, top - thickness, -half_depth],
        [half_width, top, half_depth],
    ));
    if rng.gen_bool(0.7) {
        let round = rng.gen_bool(0.5);
        let leg = rng.gen_range(0.03..0.08f32);
        let inset = leg + rng.gen_range(0.0..0.1f32);
        for (sx, sz) in [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
            parts.push(post(
                sx * (half_width - inset),
                sz * (half_depth - inset),
                FLOOR,
                top - thickness,
                leg,
                round,
            ));
        }
    } else {
        let foot = rng.gen_range(0.25..0.45f32).min(half_depth);
        parts.push(Primitive::Cylinder {
            a: [0.0, top - thickness, 0.0],
            b: [0.0, FLOOR, 0.0],
            radius: rng.gen_range(0.05..0.1f32),
        });
        parts.push(Primitive::Cylinder {
            a: [0.0, FLOOR, 0.0],
            b: [0.0, FLOOR + rng.gen_range(0.03..0.08f32), 0.0],
            radius: foot,
        });
    }
    Shape { parts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn primitive_distances_match_hand_computed_values() {
        let b = Primitive::cuboid([-1.0, -0.5, -0.25], [1.0, 0.5, 0.25]);
        assert!((b.distance([0.0, 0.0, 0.0]) + 0.25).abs() < 1e-6);
        assert!((b.distance([2.0, 0.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!((b.distance([2.0, 1.5, 0.0]) - 2f32.sqrt()).abs() < 1e-6);
        let c = Primitive::Cylinder {
            a: [0.0, 0.0, 0.0],
            b: [0.0, 2.0, 0.0],
            radius: 0.5,
        };
        assert!((c.distance([0.0, 1.0, 0.0]) + 0.5).abs() < 1e-6);
        assert!((c.distance([1.5, 1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!((c.distance([0.0, 3.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!((c.distance([1.5, -1.0, 0.0]) - 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn furniture_fits_in_the_unit_cube() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for family in [Family::Chairs, Family::Tables] {
            for _ in 0..200 {
                let s = family.draw(&mut rng);
                // Every face of the cube [-0.95, 0.95]³ is outside the shape.
                for t in [-0.95f32, 0.95] {
                    for u in [-0.9f32, -0.5, 0.0, 0.5, 0.9] {
                        for v in [-0.9f32, 0.0, 0.9] {
                            for p in [[t, u, v], [u, t, v], [u, v, t]] {
                                assert!(s.value_at(p)[0] > 0.0, "{family:?} {p:?} {s:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
