//! The stock pictures a domain gets without writing any plotting code: a
//! 2-D domain and a 3-D one that implement only the required methods.

use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::plot::stock;
use pixel_transformer::{
    BinnedMixture, Domain, Grid, Model, Preset, RunOptions, SpatialSignal, Split,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `v = a·x + b·y`: a 2-D signal.
struct Ramp(f32, f32);
impl SpatialSignal<2, 1> for Ramp {
    fn value_at(&self, p: [f32; 2]) -> [f32; 1] {
        [self.0 * p[0] + self.1 * p[1]]
    }
}
impl SpatialSignal<3, 1> for Ramp {
    fn value_at(&self, p: [f32; 3]) -> [f32; 1] {
        [self.0 * p[0] + self.1 * p[2]]
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clap::Args)]
struct NoSettings {}

struct Ramps;
impl<const P: usize> Domain<P, 1> for Ramps
where
    Ramp: SpatialSignal<P, 1>,
{
    type Signal = Ramp;
    type Config = NoSettings;
    const NAME: &'static str = "ramps";
    fn from_config(_: &NoSettings) -> pixel_transformer::Result<Self> {
        Ok(Ramps)
    }
    fn config(&self) -> NoSettings {
        NoSettings {}
    }
    fn draw_signal(&self, _: Split, rng: &mut ChaCha8Rng) -> Ramp {
        Ramp(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0))
    }
    fn grid(&self) -> Grid<P> {
        Grid::new([6; P])
    }
}

fn model<const P: usize>() -> Model<P, 1, Cpu, BinnedMixture> {
    let dist = BinnedMixture::gaussian(1, 1e-3);
    Model::new(Preset::Tiny.config(), dist, 0, &Cpu::default()).unwrap()
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn a_2d_domain_gets_an_image_grid_with_one_row_per_signal() {
    let dir = tempfile::tempdir().unwrap();
    let options = |count| RunOptions {
        render_count: Some(count),
        ..RunOptions::default()
    };
    let written = Domain::<2, 1>::render(&Ramps, &model::<2>(), dir.path(), &options(2)).unwrap();
    assert_eq!(written, [dir.path().join("samples.png")]);
    let (w2, h2) = png_size(&written[0]);
    // Truth plus four tiles per column size.
    let sizes = stock::column_sizes(&Domain::<2, 1>::defaults(&Ramps).eval_observed);
    assert_eq!(sizes, [4, 16, 32]);
    assert!(w2 > 13 * 6 * 8, "{w2}");
    // One more signal is one more row.
    let (w3, h3) = png_size(
        &Domain::<2, 1>::render(&Ramps, &model::<2>(), dir.path(), &options(3)).unwrap()[0],
    );
    assert_eq!(w3, w2);
    assert!(h3 > h2, "{h3} vs {h2}");
}

#[test]
fn higher_dimensions_get_no_stock_picture_and_column_sizes_are_spread() {
    let dir = tempfile::tempdir().unwrap();
    let written =
        Domain::<3, 1>::render(&Ramps, &model::<3>(), dir.path(), &RunOptions::default()).unwrap();
    assert!(written.is_empty());
    assert_eq!(stock::column_sizes(&[64, 4, 16, 4]), [4, 16, 64]);
    assert_eq!(stock::column_sizes(&[1, 2, 3, 4, 5]), [1, 3, 5]);
    assert_eq!(stock::column_sizes(&[]), [8]);
}
