//! A loaded data set (train and test images, labels when the format has
//! them) and the choice of which one to load.

use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, RgbImage};
use pixel_transformer::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::{cifar, folder, mnist, Image};

/// Which images to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// MNIST digits (grey, 28×28): the embedded 8,000 + 1,000, or the IDX files in `--data`.
    Mnist,
    /// CIFAR-10 (colour, 32×32): the binary batches in `--data`.
    Cifar10,
    /// A folder of PNG/JPEG images (`--data`), centre-cropped and resized to `--size`.
    Folder,
    /// Procedural coloured discs and rectangles on gradients (no download).
    Shapes,
}

impl DatasetKind {
    /// The name used on the command line and in run folders.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Folder => "folder",
            DatasetKind::Shapes => "shapes",
        }
    }

    /// The image side the format comes in (folders: 32 unless told otherwise).
    pub fn native_size(self) -> usize {
        match self {
            DatasetKind::Mnist => 28,
            DatasetKind::Cifar10 | DatasetKind::Folder | DatasetKind::Shapes => 32,
        }
    }

    /// Channels of the data as stored: 1 for MNIST, 3 for the rest.
    pub fn native_channels(self) -> usize {
        match self {
            DatasetKind::Mnist => 1,
            _ => 3,
        }
    }
}

/// Images of one data set, split into training and test images.
#[derive(Clone, PartialEq)]
pub struct Dataset<const V: usize> {
    /// Training images.
    pub train: Vec<Image<V>>,
    /// Held-out images, never trained on.
    pub test: Vec<Image<V>>,
    /// Class labels of `train` (MNIST, CIFAR-10), one per image.
    pub train_labels: Option<Vec<u8>>,
    /// Class labels of `test`.
    pub test_labels: Option<Vec<u8>>,
}

impl<const V: usize> std::fmt::Debug for Dataset<V> {
    // Thousands of images would drown any log; show the shape of the set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = self.train.first().map(|i| (i.width(), i.height()));
        f.debug_struct("Dataset")
            .field("train", &self.train.len())
            .field("test", &self.test.len())
            .field("image_size", &side)
            .field("channels", &V)
            .field("labelled", &self.train_labels.is_some())
            .finish()
    }
}

impl<const V: usize> Dataset<V> {
    /// The same images with `W` channels (grey ↔ RGB).
    pub fn to_channels<const W: usize>(&self) -> Dataset<W> {
        Dataset {
            train: self.train.iter().map(Image::to_channels).collect(),
            test: self.test.iter().map(Image::to_channels).collect(),
            train_labels: self.train_labels.clone(),
            test_labels: self.test_labels.clone(),
        }
    }

    /// Every image centre-cropped to a square and resized to `size × size`
    /// (a no-op for images already that size).
    pub fn resized(self, size: usize) -> Result<Self> {
        let fix = |v: Vec<Image<V>>| -> Result<Vec<Image<V>>> {
            v.into_iter().map(|img| resize(img, size)).collect()
        };
        Ok(Self {
            train: fix(self.train)?,
            test: fix(self.test)?,
            ..self
        })
    }
}

/// `img` centre-cropped and resized to `size × size` with the folder loader's filter.
pub fn resize<const V: usize>(img: Image<V>, size: usize) -> Result<Image<V>> {
    if (img.width(), img.height()) == (size, size) {
        return Ok(img);
    }
    let (w, h) = (img.width() as u32, img.height() as u32);
    let bad = || Error::invalid("image buffer size mismatch");
    let dynamic = if V == 1 {
        DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, img.to_u8()).ok_or_else(bad)?)
    } else {
        DynamicImage::ImageRgb8(
            RgbImage::from_raw(w, h, img.to_channels::<3>().to_u8()).ok_or_else(bad)?,
        )
    };
    folder::square(&dynamic, size)
}

/// Loads `kind` with `V` channels at `size × size`. `data` is the folder for
/// MNIST (optional: the embedded digits otherwise), CIFAR-10 and image folders.
pub fn load<const V: usize>(
    kind: DatasetKind,
    data: Option<&Path>,
    size: usize,
) -> Result<Dataset<V>> {
    let need = |what: &str| -> Result<PathBuf> {
        data.map(Path::to_path_buf).ok_or_else(|| {
            Error::invalid(format!(
                "--dataset {} needs --data PATH (the folder holding {what})",
                kind.name()
            ))
        })
    };
    match kind {
        DatasetKind::Mnist => {
            let set = match data {
                Some(dir) => mnist::load_dir(dir)?,
                None => mnist::embedded()?,
            };
            set.to_channels::<V>().resized(size)
        }
        DatasetKind::Cifar10 => cifar::load_dir(&need("data_batch_*.bin and test_batch.bin")?)?
            .to_channels::<V>()
            .resized(size),
        DatasetKind::Folder => folder::load_dir(&need("PNG or JPEG images")?, size),
        DatasetKind::Shapes => Err(Error::invalid(
            "the shapes set is procedural: it is drawn on the fly, not loaded",
        )),
    }
}
