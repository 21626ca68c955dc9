//! Images as 2-D signals: the paper's headline domain (sections 4.2, 4.3, 5),
//! for grey (`V = 1`) and colour (`V = 3`) images.
//!
//! An [`Image`] is a pixel grid sampled bilinearly at continuous positions
//! in `[-1, 1]²` (x = column, y = row, pixel centres at `−1 + (2i + 1)/W`), so
//! the model is trained, as in the paper, on positions that need not fall on
//! pixel centres. [`ImageDomain`] plugs images into the core: data sets,
//! paper defaults and figures.
//!
//! Data sets ([`DatasetKind`]):
//! - `mnist`: the 10,000 MNIST digits embedded in this crate (8,000 train,
//!   1,000 test; nothing is read from disk), or the standard IDX files
//!   (gzip or raw) in `--data DIR`;
//! - `cifar10`: the CIFAR-10 binary batches in `--data DIR`;
//! - `folder`: PNG/JPEG files in `--data DIR` (or its `train/` and `test/`),
//!   centre-cropped and resized to `--size`;
//! - `shapes`: procedural coloured shapes on gradients, no download.
//!
//! Loaders never panic on bad files: bad magic numbers, truncated or
//! wrongly sized data, undecodable images and empty folders are
//! [`pixel_transformer::Error::Malformed`] or [`pixel_transformer::Error::Io`]
//! errors naming the file.
//!
//! Defaults follow the paper: grey 32 bins, colour 512 (seeded k-means by the
//! core), MNIST `|S|` log-uniform in 4..512 with `|Q|` = 512, colour `|S|`
//! in 4..2048 with `|Q|` = 2048, and the `small` preset. The default number of
//! steps and batch size are chosen for the main job (`cargo run --release
//! --example image`: train, figures, evaluation) to fit in about ten
//! minutes on two idle CPU cores: grey 500 steps of 4 images, colour 150
//! steps of 2. On a shared machine the grey training took 332 CPU-seconds
//! and the default evaluation about 265 (see the book's image chapter).
//! At the same number of training images, 500 steps of 4 did better than
//! 250 of 8 (held-out loss 0.84 against 1.12, 5.0 against 5.8 bits per
//! pixel). That is still far less training than the paper's, but with the
//! core's distance-biased attention the main job's model follows the
//! observed pixels: its mean image beats the nearest-neighbour fill in PSNR
//! up to 256 observed pixels (see the book's image chapter).
//!
//! The `sample` command draws mean images for growing `|S|` (Fig. 3),
//! samples (Fig. 4), the composition of two images ([`compose`], Fig. 5)
//! and std maps. The `eval`
//! command ([`eval`]) measures PSNR/SSIM ([`metrics`]), bits per dimension
//! and the accuracy of a small classifier ([`classifier`]) against `|S|`.
#![warn(missing_docs)]

pub mod augment;
mod baseline;
pub mod cifar;
pub mod classifier;
pub mod compose;
mod dataset;
pub mod eval;
pub mod figure;
mod files;
pub mod folder;
pub mod metrics;
pub mod mnist;
mod raster;
mod render;
pub mod shapes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pixel_transformer::{
    Backend, Domain, DomainDefaults, Error, Grid, Model, OutputDistribution, Preset, Result,
    RunOptions, SetSizes, Split,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use baseline::nearest_fill;
pub use dataset::{load, resize, Dataset, DatasetKind};
pub use eval::{evaluate_with, EvalOptions, EvalReport, EvalRow, EVAL_QUERIES};
pub use files::MAX_DECOMPRESSED_BYTES;
pub use raster::Image;
pub use render::{MEAN_SIZES, SAMPLES, SAMPLE_AUTOREGRESSIVE, SAMPLE_OBSERVED};

/// Largest accepted image side. Images are held in memory as `f32`, so a
/// folder of 10,000 images at 256² in colour already takes 7.9 GB.
pub const MAX_SIZE: usize = 256;

/// The image domain's settings: its command-line options and what
/// checkpoints store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct ImageConfig {
    /// Which images to learn.
    #[arg(long, global = true, value_enum, default_value_t = DatasetKind::Mnist)]
    pub dataset: DatasetKind,
    /// Folder with the data: the four MNIST IDX files (gzip or raw), the
    /// CIFAR-10 binary batches, or PNG/JPEG images [mnist: the embedded digits].
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// Image side in pixels; images are resized to it [default: 28 for mnist, 32 otherwise].
    #[arg(long, global = true)]
    pub size: Option<usize>,
    /// Learn a colour data set in grey (one channel).
    #[arg(long, global = true)]
    #[serde(default)]
    pub grey: bool,
    /// Channels the model sees: 1 (grey) or 3 (colour); settled from
    /// `--dataset` and `--grey` when the domain is built.
    #[arg(skip)]
    pub channels: Option<usize>,
    /// Training: distort every training image a little each time it is drawn
    /// (shift up to 2 pixels, scale by 0.9–1.1, rotate up to 10°; see
    /// [`augment`]), so a small data set lasts longer before the model
    /// overfits it; test images never are. (Absent in checkpoints written
    /// before it existed: `false`.)
    #[arg(long, global = true)]
    #[serde(default)]
    pub augment: bool,
}

impl ImageConfig {
    /// Channels these settings describe: as stored, else 1 for MNIST or
    /// with `--grey`, else 3.
    pub fn channels(&self) -> usize {
        match self.channels {
            Some(c) => c,
            None if self.grey => 1,
            None => self.dataset.native_channels(),
        }
    }

    /// The default settings of `dataset`.
    pub fn of(dataset: DatasetKind) -> Self {
        Self {
            dataset,
            data: None,
            size: None,
            grey: false,
            channels: None,
            augment: false,
        }
    }
}

/// Where the domain's images come from.
#[derive(Clone)]
enum Source<const V: usize> {
    /// Loaded images, shared (the domain is rebuilt cheaply by cloning).
    Stored(Arc<Dataset<V>>),
    /// Procedural shapes: training images fresh from the RNG, test images a fixed set.
    Shapes,
}

/// Images with `V` channels (1 = grey, 3 = colour) as a [`Domain`].
#[derive(Clone)]
pub struct ImageDomain<const V: usize> {
    config: ImageConfig,
    source: Source<V>,
}

impl<const V: usize> std::fmt::Debug for ImageDomain<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ImageDomain");
        d.field("config", &self.config);
        if let Source::Stored(set) = &self.source {
            d.field("data", set);
        }
        d.finish()
    }
}

impl<const V: usize> ImageDomain<V> {
    /// Loads the data set `config` describes, with anything it leaves open
    /// settled: the size, the channels, an absolute data path (so a
    /// checkpoint's `sample` or `eval` finds the data from any folder).
    pub fn new(mut config: ImageConfig) -> Result<Self> {
        if !matches!(V, 1 | 3) || config.channels() != V {
            return Err(Error::invalid(format!(
                "an image model has 1 (grey) or 3 (colour) channels; asked for {} in a {V}-channel domain",
                config.channels()
            )));
        }
        config.channels = Some(V);
        let size = *config.size.get_or_insert(config.dataset.native_size());
        config.data = config.data.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(Error::invalid(format!(
                "--size must be between 1 and {MAX_SIZE} pixels, got {size}"
            )));
        }
        let source = match config.dataset {
            DatasetKind::Shapes => Source::Shapes,
            kind => {
                let set = load::<V>(kind, config.data.as_deref(), size)?;
                Source::Stored(Arc::new(set))
            }
        };
        Ok(Self { config, source })
    }

    /// Its settings (what [`Domain::config`] stores in checkpoints).
    pub fn settings(&self) -> &ImageConfig {
        &self.config
    }

    /// Image side in pixels.
    pub fn size(&self) -> usize {
        self.config
            .size
            .unwrap_or(self.config.dataset.native_size())
    }

    /// Number of images in `split`; `None` for an endless procedural split
    /// (the training shapes).
    pub fn len(&self, split: Split) -> Option<usize> {
        match (&self.source, split) {
            (Source::Stored(set), Split::Train) => Some(set.train.len()),
            (Source::Stored(set), Split::Test) => Some(set.test.len()),
            (Source::Shapes, Split::Train) => None,
            (Source::Shapes, Split::Test) => Some(shapes::TEST_IMAGES),
        }
    }

    /// Image `index` of `split` (`None` past the end). Training shapes are drawn
    /// fresh every time and have no index: use [`Domain::draw_signal`].
    pub fn image(&self, split: Split, index: usize) -> Option<Image<V>> {
        match (&self.source, split) {
            (Source::Stored(set), Split::Train) => set.train.get(index).cloned(),
            (Source::Stored(set), Split::Test) => set.test.get(index).cloned(),
            (Source::Shapes, Split::Train) => None,
            (Source::Shapes, Split::Test) => (index < shapes::TEST_IMAGES)
                .then(|| shapes::test_image(self.size(), index).to_channels()),
        }
    }

    /// An image of `split` as stored (or, for the shapes, as drawn), before
    /// any augmentation.
    fn draw_raster(&self, split: Split, rng: &mut ChaCha8Rng) -> Image<V> {
        match &self.source {
            Source::Stored(set) => {
                let images = match split {
                    Split::Train => &set.train,
                    Split::Test => &set.test,
                };
                // Loaders refuse empty splits, so the range is never empty.
                images[rng.gen_range(0..images.len())].clone()
            }
            Source::Shapes => match split {
                Split::Train => shapes::draw(self.size(), rng).to_channels(),
                Split::Test => {
                    let index = rng.gen_range(0..shapes::TEST_IMAGES);
                    shapes::test_image(self.size(), index).to_channels()
                }
            },
        }
    }

    /// Class labels of `split`, when the data set has them (MNIST, CIFAR-10).
    pub fn labels(&self, split: Split) -> Option<&[u8]> {
        match (&self.source, split) {
            (Source::Stored(set), Split::Train) => set.train_labels.as_deref(),
            (Source::Stored(set), Split::Test) => set.test_labels.as_deref(),
            (Source::Shapes, _) => None,
        }
    }
}

impl<const V: usize> Domain<2, V> for ImageDomain<V> {
    type Signal = Image<V>;
    type Config = ImageConfig;
    const NAME: &'static str = "image";

    fn from_config(config: &ImageConfig) -> Result<Self> {
        Self::new(config.clone())
    }

    fn config(&self) -> ImageConfig {
        self.config.clone()
    }

    fn run_folder(config: &ImageConfig) -> PathBuf {
        // Grey and colour runs, or two data sets, never share a folder.
        PathBuf::from("runs/image").join(config.dataset.name())
    }

    fn value_dims(config: &ImageConfig) -> usize {
        config.channels()
    }

    fn draw_signal(&self, split: Split, rng: &mut ChaCha8Rng) -> Image<V> {
        let image = self.draw_raster(split, rng);
        if self.config.augment && split == Split::Train {
            image.warped(augment::random_warp(self.size(), rng))
        } else {
            image
        }
    }

    fn grid(&self) -> Grid<2> {
        Grid::new([self.size(), self.size()])
    }

    fn defaults(&self) -> DomainDefaults {
        // One grey level: finer spreads mean nothing for 8-bit data, and the
        // floor keeps the likelihood bounded on flat regions (MNIST's
        // background is exactly 0).
        let sigma_floor = 1.0 / 255.0;
        if V == 1 {
            DomainDefaults {
                sets: SetSizes {
                    min_observed: 4,
                    max_observed: 512,
                    queries: 512,
                },
                bins: 32,
                sigma_floor,
                preset: Preset::Small,
                // The value observed nearest to each query as an input: in an
                // A/B of the default 500-step training it lowered bits/dim at
                // every |S| (4.28 against 4.41 at |S| = 64) and raised the mean
                // image's PSNR at 512 by 1.6 dB, with no change at 64 (book,
                // image chapter).
                nearest_value: true,
                steps: GREY_STEPS,
                batch_size: GREY_BATCH,
                // Higher than the paper's 1e-4: a ten-minute run has few
                // steps, and the cosine decay takes it down to 1e-5.
                learning_rate: 1e-3,
                eval_observed: vec![4, 16, 64, 256, 512],
            }
        } else {
            DomainDefaults {
                sets: SetSizes {
                    min_observed: 4,
                    max_observed: 2048,
                    queries: 2048,
                },
                bins: 512,
                sigma_floor,
                preset: Preset::Small,
                // As for grey images (not measured on colour).
                nearest_value: true,
                steps: COLOUR_STEPS,
                batch_size: COLOUR_BATCH,
                // Batches of two are noisy: half the grey rate.
                learning_rate: 5e-4,
                eval_observed: vec![4, 16, 64, 256],
            }
        }
    }

    fn pretrained_checkpoint(&self) -> Option<PathBuf> {
        // Only grey MNIST has a shipped model.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pretrained/mnist");
        (V == 1 && self.config.dataset == DatasetKind::Mnist)
            .then_some(dir)
            .filter(|d| {
                d.join(pixel_transformer::train::checkpoint::FILE_NAME)
                    .exists()
            })
    }

    fn render<D: Backend, O: OutputDistribution<V>>(
        &self,
        model: &Model<2, V, D, O>,
        out_dir: &Path,
        options: &RunOptions,
    ) -> Result<Vec<PathBuf>> {
        render::render(self, model, out_dir, options)
    }

    fn evaluate<D: Backend, O: OutputDistribution<V>>(
        &self,
        model: &Model<2, V, D, O>,
        out_dir: &Path,
        options: &RunOptions,
    ) -> Result<Option<String>> {
        eval::evaluate(self, model, out_dir, options).map(Some)
    }
}

/// Training steps of the grey main job: with the evaluation, about ten
/// minutes on two idle cores (600 steps of 8 alone took about that).
const GREY_STEPS: u64 = 500;
/// Signals per grey batch: more, smaller steps learnt more than fewer,
/// larger ones in the same time (see the crate notes).
const GREY_BATCH: usize = 4;
/// Training steps of the colour main job (about ten minutes on two cores).
const COLOUR_STEPS: u64 = 150;
/// Signals per colour batch: a batch at `|S| = |Q| = 2048` needs about 7 GB
/// for the small preset's training pass, so it stays small on a CPU.
const COLOUR_BATCH: usize = 2;

/// Re-exports of this crate's own dependencies, so users (and tests) can
/// decode the PNG figures or write gzip files without pinning versions.
pub mod deps {
    pub use flate2;
    pub use image;
}
