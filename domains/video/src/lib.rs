//! Videos as space-time signals: the paper's section 6.3.
//!
//! A [`Clip`] of `T` frames of `H × W` pixels is a signal over `P = 3`
//! positions `(x, y, t)`, each normalised to `[-1, 1]` with frame `k` at
//! `t = −1 + (2k + 1)/T` (the pixel-centre convention on the time axis),
//! sampled trilinearly; values are grey (`V = 1`) or RGB (`V = 3`) in
//! `[0, 1]`, as in the image domain. The same model and trainer as for
//! images learn videos from a few pixels spread across frames.
//!
//! Data sets ([`VideoDataset`]):
//! - `moving-mnist` (default): one or two MNIST digits bouncing inside the
//!   frame ([`moving_mnist`]), generated from the digits embedded in the
//!   image crate, 32 × 32 × 16 by default (`--size 64 --frames 20` for the
//!   standard benchmark's shape); training clips use the MNIST training
//!   digits, held-out clips the test digits;
//! - `folder`: clips as folders of frame images in `--data DIR` ([`folder`]).
//!
//! Paper defaults: `|S|` log-uniform in 512..2048 during training (the paper
//! found small sets uninformative for video) and hybrid sampling as for
//! images. What the CPU main job changes: the `tiny` preset, 500 steps of 4
//! clips and 256 queries per clip (see the constants in the source for the
//! timings behind them); `--preset`, `--steps`, `--batch-size` and `--lr`
//! override them. Not in the paper: each query is given the value observed
//! nearest to it ([`pixel_transformer::ModelConfig::nearest_value`];
//! `--nearest-value false` turns it off).
#![warn(missing_docs)]

mod baseline;
mod clip;
mod eval;
pub mod folder;
pub mod gif;
pub mod moving_mnist;
mod render;

use std::path::PathBuf;
use std::sync::Arc;

use pixel_transformer::{
    Backend, Domain, DomainDefaults, Error, Grid, Model, OutputDistribution, Preset, Result,
    RunOptions, SetSizes, Split,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use baseline::nearest_fill;
pub use clip::Clip;
pub use eval::{benchmark, psnr, BenchmarkRow, EVAL_CLIPS, EVAL_OBSERVED};
pub use folder::ClipSet;
pub use moving_mnist::MovingMnist;
pub use pixel_transformer_image::MAX_SIZE;
pub use render::{RENDER_CLIPS, SAMPLES, SAMPLE_AUTOREGRESSIVE, SAMPLE_OBSERVED};

/// Most frames a clip may have (a folder clip with more is refused).
pub const MAX_FRAMES: usize = 256;

/// Which videos to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VideoDataset {
    /// Moving MNIST generated from the embedded digits (grey, no download).
    MovingMnist,
    /// Clips in `--data DIR`, one sub-folder of PNG/JPEG frames per clip.
    Folder,
}

impl VideoDataset {
    /// The name used on the command line and in run folders.
    pub fn name(self) -> &'static str {
        match self {
            VideoDataset::MovingMnist => "moving-mnist",
            VideoDataset::Folder => "folder",
        }
    }
}

/// The video domain's settings: its command-line options and what
/// checkpoints store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct VideoConfig {
    /// Which videos to learn.
    #[arg(long, global = true, value_enum, default_value_t = VideoDataset::MovingMnist)]
    pub dataset: VideoDataset,
    /// Folder of clips (one sub-folder of PNG/JPEG frames per clip, or
    /// `train/` and `test/` holding such sub-folders), for `--dataset folder`.
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// Moving MNIST frame side in pixels (64 is the standard benchmark's).
    #[arg(long, global = true, default_value_t = 32)]
    pub size: usize,
    /// Moving MNIST frames per clip (20 is the standard benchmark's).
    #[arg(long, global = true, default_value_t = 16)]
    pub frames: usize,
    /// Moving MNIST digits per clip: 1 or 2.
    #[arg(long, global = true, default_value_t = 2)]
    pub digits: usize,
    /// Learn a colour frame folder in grey (one channel).
    #[arg(long, global = true)]
    #[serde(default)]
    pub grey: bool,
    /// Channels the model sees: 1 (grey) or 3 (colour); settled from
    /// `--dataset` and `--grey` when the domain is built.
    #[arg(skip)]
    pub channels: Option<usize>,
}

impl VideoConfig {
    /// Channels these settings describe: as stored, else 1 for Moving MNIST
    /// or with `--grey`, else 3.
    pub fn channels(&self) -> usize {
        match (self.channels, self.dataset) {
            (Some(c), _) => c,
            (None, VideoDataset::MovingMnist) => 1,
            (None, VideoDataset::Folder) if self.grey => 1,
            (None, VideoDataset::Folder) => 3,
        }
    }
}

/// Where the domain's clips come from.
#[derive(Clone, Debug)]
enum Source<const V: usize> {
    /// Generated: training clips fresh from the RNG, test clips a numbered set.
    MovingMnist(Arc<MovingMnist>),
    /// Loaded from a frame folder, shared (the domain is cloned cheaply).
    Stored(Arc<ClipSet<V>>),
}

/// Videos with `V` channels (1 = grey, 3 = colour) as a [`Domain`] over `(x, y, t)`.
#[derive(Clone, Debug)]
pub struct VideoDomain<const V: usize> {
    config: VideoConfig,
    source: Source<V>,
    /// `[W, H, T]` of every clip.
    shape: [usize; 3],
}

impl<const V: usize> VideoDomain<V> {
    /// Builds (Moving MNIST) or loads (folder) the data set `config` describes.
    /// Anything the settings leave open is settled: the channels, an
    /// absolute data path (so a checkpoint finds its data from any folder).
    pub fn new(mut config: VideoConfig) -> Result<Self> {
        if !matches!(V, 1 | 3) || config.channels() != V {
            return Err(Error::invalid(format!(
                "a video model has 1 (grey) or 3 (colour) channels; asked for {} in a {V}-channel domain",
                config.channels()
            )));
        }
        config.channels = Some(V);
        config.data = config.data.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
        let (source, shape) = match config.dataset {
            VideoDataset::MovingMnist => {
                if V != 1 {
                    return Err(Error::invalid("Moving MNIST is grey: use one channel"));
                }
                let gen = MovingMnist::new(config.size, config.frames, config.digits)?;
                let shape = [config.size, config.size, config.frames];
                (Source::MovingMnist(Arc::new(gen)), shape)
            }
            VideoDataset::Folder => {
                let dir = config.data.as_deref().ok_or_else(|| {
                    Error::invalid(
                        "--dataset folder needs --data DIR (one sub-folder of frames per clip)",
                    )
                })?;
                let set = folder::load_dir::<V>(dir)?;
                let c = &set.train[0];
                let shape = [c.width(), c.height(), c.len()];
                (Source::Stored(Arc::new(set)), shape)
            }
        };
        Ok(Self {
            config,
            source,
            shape,
        })
    }

    /// Its settings (what [`Domain::config`] stores in checkpoints).
    pub fn settings(&self) -> &VideoConfig {
        &self.config
    }

    /// `[W, H, T]`: frame width and height in pixels, frames per clip.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of held-out clips.
    pub fn test_len(&self) -> usize {
        match &self.source {
            Source::MovingMnist(_) => moving_mnist::TEST_CLIPS,
            Source::Stored(set) => set.test.len(),
        }
    }

    /// Held-out clip `index` (`None` past [`VideoDomain::test_len`]); the
    /// same index is always the same clip.
    pub fn test_clip(&self, index: usize) -> Option<Clip<V>> {
        if index >= self.test_len() {
            return None;
        }
        match &self.source {
            Source::MovingMnist(gen) => Some(to_channels(gen.test_clip(index).0)),
            Source::Stored(set) => set.test.get(index).cloned(),
        }
    }
}

/// A grey clip as a `V`-channel clip (grey is repeated into RGB).
fn to_channels<const V: usize>(clip: Clip<1>) -> Clip<V> {
    let frames = clip.frames().iter().map(|f| f.to_channels()).collect();
    Clip::new(frames).expect("the frames keep their common size")
}

impl<const V: usize> Domain<3, V> for VideoDomain<V> {
    type Signal = Clip<V>;
    type Config = VideoConfig;
    const NAME: &'static str = "video";

    fn from_config(config: &VideoConfig) -> Result<Self> {
        Self::new(config.clone())
    }

    fn config(&self) -> VideoConfig {
        self.config.clone()
    }

    fn run_folder(config: &VideoConfig) -> PathBuf {
        match config.dataset {
            VideoDataset::MovingMnist => PathBuf::from("runs/video"),
            other => PathBuf::from("runs/video").join(other.name()),
        }
    }

    fn value_dims(config: &VideoConfig) -> usize {
        config.channels()
    }

    fn draw_signal(&self, split: Split, rng: &mut ChaCha8Rng) -> Clip<V> {
        match (&self.source, split) {
            (Source::MovingMnist(gen), Split::Train) => to_channels(gen.train_clip(rng).0),
            (Source::MovingMnist(gen), Split::Test) => {
                to_channels(gen.test_clip(rng.gen_range(0..moving_mnist::TEST_CLIPS)).0)
            }
            (Source::Stored(set), split) => {
                let clips = match split {
                    Split::Train => &set.train,
                    Split::Test => &set.test,
                };
                // The loader refuses empty splits, so the range is never empty.
                clips[rng.gen_range(0..clips.len())].clone()
            }
        }
    }

    fn grid(&self) -> Grid<3> {
        Grid::new(self.shape)
    }

    fn defaults(&self) -> DomainDefaults {
        DomainDefaults {
            sets: SetSizes {
                min_observed: MIN_OBSERVED,
                max_observed: MAX_OBSERVED,
                queries: QUERIES,
            },
            // One Gaussian: with 32 bins the main job's model ignored the
            // observations (15.65 dB at every |S|); with one Gaussian it beat
            // the nearest fill at |S| = 512 and 1024 (book, video chapter).
            bins: 1,
            // One grey level, as for images: Moving MNIST's background is exactly 0.
            sigma_floor: 1.0 / 255.0,
            preset: PRESET,
            // The value observed nearest to each query as an input: without
            // it the main job's model predicted almost the same mean video
            // whatever was observed (16.9 dB at every |S|) and lost to the
            // nearest fill at 2048; with it, it beats the fill at every |S|.
            nearest_value: true,
            steps: STEPS,
            batch_size: BATCH,
            learning_rate: LEARNING_RATE,
            eval_observed: EVAL_OBSERVED.to_vec(),
        }
    }

    fn pretrained_checkpoint(&self) -> Option<PathBuf> {
        // Only the default Moving MNIST (32 × 32 × 16, two digits) has a shipped model.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pretrained/moving-mnist");
        let c = &self.config;
        let default = c.dataset == VideoDataset::MovingMnist
            && (c.size, c.frames, c.digits, c.channels()) == (32, 16, 2, 1);
        default.then_some(dir).filter(|d| {
            d.join(pixel_transformer::train::checkpoint::FILE_NAME)
                .exists()
        })
    }

    fn render<D: Backend, O: OutputDistribution<V>>(
        &self,
        model: &Model<3, V, D, O>,
        out_dir: &std::path::Path,
        options: &RunOptions,
    ) -> Result<Vec<PathBuf>> {
        render::render(self, model, out_dir, options)
    }

    fn evaluate<D: Backend, O: OutputDistribution<V>>(
        &self,
        model: &Model<3, V, D, O>,
        out_dir: &std::path::Path,
        options: &RunOptions,
    ) -> Result<Option<String>> {
        eval::evaluate(self, model, out_dir, options).map(Some)
    }
}

/// Smallest observation set in training: the paper's 512.
const MIN_OBSERVED: usize = 512;
/// Largest observation set in training: the paper's 2048.
const MAX_OBSERVED: usize = 2048;
/// Queries per training clip. The encoder's self-attention over 512–2048
/// observations is most of a step's cost; 256 queries per clip (1,024 per
/// batch) add about a quarter to it, where the paper's 2048 would double it.
const QUERIES: usize = 256;
/// Architecture of the main job. A `small` step at these set sizes takes
/// about ten times as long as a `tiny` one on a CPU (about 17 s against
/// 1.5 s for a batch of 4 on two shared cores), and the benchmark's 300 mean
/// videos of 16,384 voxels would take the rest of the ten minutes.
const PRESET: Preset = Preset::Tiny;
/// Training steps of the main job: about 12 minutes on two cores shared with
/// other jobs, roughly half that on an idle machine.
const STEPS: u64 = 500;
/// Clips per training batch.
const BATCH: usize = 4;
/// Adam learning rate: high for a short run; the cosine decay takes it to 1 %.
const LEARNING_RATE: f64 = 2e-3;

/// Re-exports of this crate's own dependencies, so tests and users can
/// decode the GIFs and PNGs without pinning versions.
pub mod deps {
    pub use image;
}
