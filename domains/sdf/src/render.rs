//! Pictures and files for a few test shapes: PLY meshes and point clouds,
//! PNG slice views, and a PNG overview drawn by a small software rasteriser
//! (orthographic, z-buffered, Lambert-shaded), so no viewer is needed to
//! look at the results.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use pixel_transformer::plot::{plot_image_grid, ImageGrid, Tile};
use pixel_transformer::Backend;
use pixel_transformer::{
    io::write_atomic, Error, Model, OutputDistribution, Result, SampleOptions, SpatialSignal,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::ply::{sdf_colour, write_mesh, write_points, PlyFormat};
use crate::{marching_cubes, Mesh, SdfDomain, SdfGrid};

/// Observed samples per shape in the figures (the paper's Fig. 8).
pub const RENDER_OBSERVED: usize = 32;
/// Sampled shapes per test shape.
pub const SAMPLES: usize = 3;
/// Positions drawn one at a time before the rest take the mean (hybrid sampling).
pub const SAMPLE_AUTOREGRESSIVE: usize = 48;
/// Temperature of the bin choice when sampling (the paper's 0.9).
pub const SAMPLE_TEMPERATURE: f32 = 0.9;
/// Side of one panel of the overview, in pixels.
const PANEL: u32 = 160;
/// Side of one slice picture, in pixels.
const SLICE: u32 = 128;
/// Distances saturate the colour map at this magnitude.
const COLOUR_SCALE: f32 = 0.5;
const BACKGROUND: Rgb<u8> = Rgb([244, 244, 244]);

/// The view: turned 35° about the vertical, then tilted 20° to look from above.
fn view(p: [f32; 3]) -> [f32; 3] {
    let (sy, cy) = 35f32.to_radians().sin_cos();
    let (sx, cx) = 20f32.to_radians().sin_cos();
    let [x, y, z] = p;
    let (x, z) = (cy * x + sy * z, -sy * x + cy * z);
    let (y, z) = (cx * y - sx * z, sx * y + cx * z);
    [x, y, z]
}

/// Panel pixel of a view-space point (furniture, within ±0.9, fits the panel in any view).
fn to_pixel(v: [f32; 3], size: u32) -> (f32, f32) {
    let s = size as f32 / (2.0 * 1.3);
    (size as f32 / 2.0 + v[0] * s, size as f32 / 2.0 - v[1] * s)
}

/// Draws `mesh` shaded into a `size²` picture.
pub fn draw_mesh(mesh: &Mesh, size: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(size, size, BACKGROUND);
    let mut depth = vec![f32::NEG_INFINITY; (size * size) as usize];
    let light = {
        let l = [-0.4f32, 0.6, 0.7];
        let n = (l[0] * l[0] + l[1] * l[1] + l[2] * l[2]).sqrt();
        l.map(|x| x / n)
    };
    let projected: Vec<([f32; 3], (f32, f32))> = mesh
        .positions
        .iter()
        .map(|&p| {
            let v = view(p);
            (v, to_pixel(v, size))
        })
        .collect();
    for t in &mesh.triangles {
        let [a, b, c] = t.map(|i| projected[i as usize]);
        let (e1, e2) = (
            [b.0[0] - a.0[0], b.0[1] - a.0[1], b.0[2] - a.0[2]],
            [c.0[0] - a.0[0], c.0[1] - a.0[1], c.0[2] - a.0[2]],
        );
        let n = [
            e1[1] * e2[2] - e1[2] * e2[1],
            e1[2] * e2[0] - e1[0] * e2[2],
            e1[0] * e2[1] - e1[1] * e2[0],
        ];
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if len == 0.0 {
            continue;
        }
        // Back faces (seen from inside, e.g. through a hole) are lit from their visible side.
        let sign = if n[2] >= 0.0 { 1.0 } else { -1.0 };
        let lambert = (sign * (n[0] * light[0] + n[1] * light[1] + n[2] * light[2]) / len).max(0.0);
        let shade = 0.3 + 0.7 * lambert;
        let colour = Rgb([
            (170.0 * shade + 20.0) as u8,
            (180.0 * shade + 20.0) as u8,
            (205.0 * shade + 25.0) as u8,
        ]);
        let (p0, p1, p2) = (a.1, b.1, c.1);
        let area = (p1.0 - p0.0) * (p2.1 - p0.1) - (p2.0 - p0.0) * (p1.1 - p0.1);
        if area.abs() < 1e-12 {
            continue;
        }
        let min_x = p0.0.min(p1.0).min(p2.0).floor().max(0.0) as u32;
        let max_x = (p0.0.max(p1.0).max(p2.0).ceil() as u32).min(size - 1);
        let min_y = p0.1.min(p1.1).min(p2.1).floor().max(0.0) as u32;
        let max_y = (p0.1.max(p1.1).max(p2.1).ceil() as u32).min(size - 1);
        for py in min_y..=max_y {
            for px in min_x..=max_x {
                let (x, y) = (px as f32 + 0.5, py as f32 + 0.5);
                let w0 = ((p1.0 - x) * (p2.1 - y) - (p2.0 - x) * (p1.1 - y)) / area;
                let w1 = ((p2.0 - x) * (p0.1 - y) - (p0.0 - x) * (p2.1 - y)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let z = w0 * a.0[2] + w1 * b.0[2] + w2 * c.0[2];
                let slot = (py * size + px) as usize;
                if z > depth[slot] {
                    depth[slot] = z;
                    img.put_pixel(px, py, colour);
                }
            }
        }
    }
    img
}

/// Draws observed points as discs coloured by their signed distance
/// (red outside, blue inside), nearest last.
pub fn draw_points(positions: &[[f32; 3]], values: &[f32], size: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(size, size, BACKGROUND);
    let mut order: Vec<usize> = (0..positions.len()).collect();
    let depth: Vec<f32> = positions.iter().map(|&p| view(p)[2]).collect();
    order.sort_by(|&a, &b| depth[a].total_cmp(&depth[b]));
    let radius = 3.5f32;
    for i in order {
        let (cx, cy) = to_pixel(view(positions[i]), size);
        let fill = Rgb(sdf_colour(values[i], COLOUR_SCALE));
        let r = radius.ceil() as i64 + 1;
        for dy in -r..=r {
            for dx in -r..=r {
                let (x, y) = (cx as i64 + dx, cy as i64 + dy);
                if x < 0 || y < 0 || x >= size as i64 || y >= size as i64 {
                    continue;
                }
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                if d <= radius {
                    let c = if d > radius - 1.0 {
                        Rgb([60, 60, 60])
                    } else {
                        fill
                    };
                    img.put_pixel(x as u32, y as u32, c);
                }
            }
        }
    }
    img
}

/// A slice of `field` through the plane `axis = offset`, coloured by signed
/// distance with the surface (zero crossing) in black.
fn draw_slice(field: &dyn Fn([f32; 3]) -> f32, axis: usize, offset: f32) -> RgbImage {
    let n = SLICE;
    let (u_axis, v_axis) = match axis {
        0 => (2, 1), // side view: z across, y up
        1 => (0, 2), // top view: x across, z down
        _ => (0, 1), // front view: x across, y up
    };
    let values: Vec<f32> = (0..n * n)
        .map(|i| {
            let (px, py) = (i % n, i / n);
            let mut p = [offset; 3];
            p[u_axis] = -1.0 + (2 * px + 1) as f32 / n as f32;
            p[v_axis] = 1.0 - (2 * py + 1) as f32 / n as f32;
            field(p)
        })
        .collect();
    RgbImage::from_fn(n, n, |x, y| {
        let v = values[(y * n + x) as usize];
        let right = values[(y * n + (x + 1).min(n - 1)) as usize];
        let below = values[((y + 1).min(n - 1) * n + x) as usize];
        if (v < 0.0) != (right < 0.0) || (v < 0.0) != (below < 0.0) {
            Rgb([0, 0, 0])
        } else {
            Rgb(sdf_colour(v, COLOUR_SCALE))
        }
    })
}

/// Three orthogonal slices (side at x = 0, front at z = 0, top at y = −0.2),
/// the truth in the top row and the prediction below.
pub fn slice_views(
    truth: &dyn Fn([f32; 3]) -> f32,
    predicted: &dyn Fn([f32; 3]) -> f32,
) -> RgbImage {
    let gap = 4;
    let mut out = RgbImage::from_pixel(3 * SLICE + 2 * gap, 2 * SLICE + gap, Rgb([255; 3]));
    for (row, field) in [truth, predicted].into_iter().enumerate() {
        for (col, (axis, offset)) in [(0, 0.0), (2, 0.0), (1, -0.2)].into_iter().enumerate() {
            let tile = draw_slice(field, axis, offset);
            image::imageops::replace(
                &mut out,
                &tile,
                (col as u32 * (SLICE + gap)) as i64,
                (row as u32 * (SLICE + gap)) as i64,
            );
        }
    }
    out
}

/// Encodes `img` as PNG and writes it atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageOutputFormat::Png,
    )
    .map_err(|e| Error::Malformed {
        path: path.to_path_buf(),
        message: format!("cannot encode PNG: {e}"),
    })?;
    write_atomic(path, &bytes)
}

/// Writes, for `count` test shapes (at least one, at most the test set) observed at
/// [`RENDER_OBSERVED`] random positions: the true mesh, the observed points,
/// the mean mesh and [`SAMPLES`] sampled meshes as PLY, a slice PNG each, and
/// `overview.png` (one row per shape: truth, observed, mean, samples).
pub fn render<D: Backend, O: OutputDistribution<1>>(
    domain: &SdfDomain,
    model: &Model<3, 1, D, O>,
    out_dir: &Path,
    count: usize,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let resolution = domain.settings().resolution;
    let shape = [resolution; 3];
    let positions = pixel_transformer::Grid::new(shape).positions();
    let count = count.clamp(1, domain.test_len());
    let mut written = Vec::new();
    let mut overview: Vec<Option<Tile>> = Vec::new();
    for k in 0..count {
        let signal = domain.test_signal(k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf18 ^ k as u64);
        let observed = crate::eval::observe(&signal, RENDER_OBSERVED, &mut rng);
        let truth = marching_cubes(&domain.truth_grid(&signal, resolution)?, 0.0);
        let mean: Vec<f32> = model
            .mean_field(&observed, &positions)?
            .into_iter()
            .map(|[v]| v)
            .collect();
        let mean = SdfGrid::new(shape, mean)?;
        let options = SampleOptions {
            samples: SAMPLES,
            autoregressive: Some(SAMPLE_AUTOREGRESSIVE),
            temperature: SAMPLE_TEMPERATURE,
            seed: seed ^ k as u64,
            values_per_pass: 1,
        };
        let samples = model.sample(&observed, &positions, &options)?;

        let name = |what: &str| out_dir.join(format!("shape{k}_{what}"));
        let values: Vec<f32> = observed.values.iter().map(|[v]| *v).collect();
        let colours: Vec<[u8; 3]> = values
            .iter()
            .map(|&v| sdf_colour(v, COLOUR_SCALE))
            .collect();
        let mut meshes = vec![
            ("truth.ply".to_string(), truth),
            ("mean.ply".to_string(), marching_cubes(&mean, 0.0)),
        ];
        for (j, s) in samples.into_iter().enumerate() {
            let grid = SdfGrid::new(shape, s.into_iter().map(|[v]| v).collect())?;
            meshes.push((format!("sample{j}.ply"), marching_cubes(&grid, 0.0)));
        }
        let points_path = name("observed.ply");
        write_points(
            &points_path,
            &observed.positions,
            &colours,
            PlyFormat::default(),
        )?;
        written.push(points_path);
        for (file, mesh) in &meshes {
            let path = name(file);
            write_mesh(&path, mesh, None, PlyFormat::default())?;
            written.push(path);
        }
        let slices = name("slices.png");
        save_png(
            &slice_views(&|p| signal.value_at(p)[0], &|p| mean.value_at(p)[0]),
            &slices,
        )?;
        written.push(slices);

        let mut panels = vec![
            draw_mesh(&meshes[0].1, PANEL),
            draw_points(&observed.positions, &values, PANEL),
        ];
        panels.extend(meshes[1..].iter().map(|(_, m)| draw_mesh(m, PANEL)));
        overview.extend(panels.into_iter().map(|p| {
            Some(Tile {
                width: p.width() as usize,
                height: p.height() as usize,
                rgb: p.pixels().map(|px| px.0).collect(),
            })
        }));
    }
    let grid = ImageGrid {
        title: format!(
            "meshes on a {resolution}³ grid from |S| = {RENDER_OBSERVED} observed distances \
             (points: red outside, blue inside, white on the surface)"
        ),
        row_titles: (0..count).map(|k| format!("test shape {k}")).collect(),
        column_titles: ["truth", "observed", "mean"]
            .into_iter()
            .map(str::to_string)
            .chain((1..=SAMPLES).map(|j| format!("sample {j}")))
            .collect(),
        tiles: overview,
        colour_bar: None,
    };
    let path = out_dir.join("overview.png");
    plot_image_grid(&path, &grid)?;
    written.push(path);
    Ok(written)
}
