//! Folders of PNG and JPEG files, brought to one square size.
//!
//! Photos come in every shape, while a data set needs one grid: each image is
//! centre-cropped to a square (so nothing is stretched) and then resized with
//! a triangle (bilinear) filter, which the `image` crate widens when
//! shrinking, so downscaled photos are smoothed rather than aliased.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;
use pixel_transformer::{Error, Result};

use crate::files::malformed;
use crate::{Dataset, Image};

/// One in this many images (in name order: images 1, 11, 21, …) is held out
/// when a folder has no `train/` and `test/` subfolders.
pub const HOLDOUT_EVERY: usize = 10;

/// Whether `path` has a PNG or JPEG extension (case-insensitive).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// The PNG and JPEG files directly in `dir`, sorted by name so the order
/// (and with it every seeded draw) is the same on every machine.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() && is_image_file(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Centre-crops a decoded image to a square and resizes it to `size × size`.
pub fn square<const V: usize>(img: &DynamicImage, size: usize) -> Result<Image<V>> {
    let (w, h) = (img.width(), img.height());
    let side = w.min(h);
    let cropped = img.crop_imm((w - side) / 2, (h - side) / 2, side, side);
    let resized = if side as usize == size {
        cropped
    } else {
        cropped.resize_exact(size as u32, size as u32, FilterType::Triangle)
    };
    // Always through RGB, so grey comes from the one conversion in
    // `Image::from_u8` whatever the file's colour type (grey files stay exact).
    Image::from_u8(size, size, 3, resized.to_rgb8().as_raw())
}

/// Decodes one PNG or JPEG file (the format is read from the content, not
/// the name) and brings it to `size × size`.
pub fn load_image<const V: usize>(path: &Path, size: usize) -> Result<Image<V>> {
    let reader = image::io::Reader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    // The reader's default limits (512 MiB per decode) stay on: a forged
    // header cannot make the decoder allocate without bound.
    let img = reader
        .decode()
        .map_err(|e| malformed(path, format!("cannot decode the image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(malformed(path, "the image has no pixels"));
    }
    square(&img, size)
}

/// Loads every PNG and JPEG file directly in `dir`; an error if there is none.
pub fn load_images<const V: usize>(dir: &Path, size: usize) -> Result<Vec<Image<V>>> {
    let files = image_files(dir)?;
    if files.is_empty() {
        return Err(malformed(
            dir,
            "empty folder: no PNG or JPEG images (.png, .jpg, .jpeg) in it",
        ));
    }
    files.iter().map(|f| load_image(f, size)).collect()
}

/// Loads a folder as a data set: `dir/train` and `dir/test` when both exist,
/// otherwise the images of `dir` itself with one in [`HOLDOUT_EVERY`] (in
/// name order) held out for testing. At least two images are needed, so
/// that neither split is empty.
pub fn load_dir<const V: usize>(dir: &Path, size: usize) -> Result<Dataset<V>> {
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let (train, test) = if train_dir.is_dir() && test_dir.is_dir() {
        (
            load_images(&train_dir, size)?,
            load_images(&test_dir, size)?,
        )
    } else {
        let all = load_images(dir, size)?;
        if all.len() < 2 {
            return Err(malformed(
                dir,
                "holds a single image; need at least two (one is held out for testing)",
            ));
        }
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, img) in all.into_iter().enumerate() {
            // Images 1, 11, 21, …: image 0 always trains, image 1 always
            // tests, so two images already make both splits non-empty.
            if i % HOLDOUT_EVERY == 1 {
                test.push(img);
            } else {
                train.push(img);
            }
        }
        (train, test)
    };
    Ok(Dataset {
        train,
        test,
        train_labels: None,
        test_labels: None,
    })
}
