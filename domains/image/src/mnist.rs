//! MNIST in its standard IDX format (LeCun et al.), gzip-compressed or raw.
//!
//! An IDX file is a big-endian header, a magic number `0x0000 08 nd` (`08` =
//! unsigned bytes, `nd` = number of dimensions), `nd` 32-bit sizes, then the
//! data. Images are `0x00000803` (2051) with sizes `n, rows, cols`; labels
//! `0x00000801` (2049) with size `n`. Every size is checked against the
//! bytes actually present before anything is allocated from it, so a corrupt
//! header gives an error naming the file instead of a huge allocation.

use std::path::{Path, PathBuf};

use pixel_transformer::{Error, Result};

use crate::files::{gunzip_if_needed, malformed, read};
use crate::{Dataset, Image};

/// Magic number of IDX image files (unsigned bytes, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of IDX label files (unsigned bytes, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The four standard file names, without `.gz`: train images, train labels,
/// test images, test labels.
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn check_magic(bytes: &[u8], expected: u32, header: usize, path: &Path) -> Result<()> {
    if bytes.len() < 4 {
        return Err(malformed(
            path,
            format!(
                "truncated: {} bytes, too short for an IDX header",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(bytes, 0);
    if magic != expected {
        let what = if expected == IMAGES_MAGIC {
            "images"
        } else {
            "labels"
        };
        return Err(malformed(
            path,
            format!(
                "bad magic number 0x{magic:08x} ({magic}); IDX {what} files start with 0x{expected:08x} ({expected})"
            ),
        ));
    }
    if bytes.len() < header {
        return Err(malformed(
            path,
            format!(
                "truncated: {} bytes, but the IDX header alone is {header}",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Parses an IDX image file already in memory (decompressed); `path` names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Vec<Image<1>>> {
    check_magic(bytes, IMAGES_MAGIC, 16, path)?;
    let (n, rows, cols) = (
        be_u32(bytes, 4) as usize,
        be_u32(bytes, 8) as usize,
        be_u32(bytes, 12) as usize,
    );
    if n == 0 || rows == 0 || cols == 0 {
        return Err(malformed(
            path,
            format!("the header declares {n} images of {rows}×{cols} pixels: nothing to load"),
        ));
    }
    let data = &bytes[16..];
    let expected = n.checked_mul(rows).and_then(|x| x.checked_mul(cols));
    if expected != Some(data.len()) {
        let declared = expected.map_or("more than 2^64".to_string(), |e| e.to_string());
        let problem = if expected.map_or(true, |e| e > data.len()) {
            "truncated"
        } else {
            "wrong size"
        };
        return Err(malformed(
            path,
            format!(
                "{problem}: the header declares {n} images of {rows}×{cols} pixels ({declared} bytes), but {} bytes follow it",
                data.len()
            ),
        ));
    }
    data.chunks_exact(rows * cols)
        .map(|px| Image::from_u8(cols, rows, 1, px))
        .collect()
}

/// Parses an IDX label file already in memory (decompressed); labels must be digits 0–9.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    check_magic(bytes, LABELS_MAGIC, 8, path)?;
    let n = be_u32(bytes, 4) as usize;
    let data = &bytes[8..];
    if n != data.len() {
        let problem = if n > data.len() {
            "truncated"
        } else {
            "wrong size"
        };
        return Err(malformed(
            path,
            format!(
                "{problem}: the header declares {n} labels, but {} bytes follow it",
                data.len()
            ),
        ));
    }
    if n == 0 {
        return Err(malformed(path, "the file holds no labels"));
    }
    if let Some(i) = data.iter().position(|&l| l > 9) {
        return Err(malformed(
            path,
            format!("label {i} is {}, not a digit 0–9", data[i]),
        ));
    }
    Ok(data.to_vec())
}

/// Reads an IDX image file (gzip or raw).
pub fn read_images(path: &Path) -> Result<Vec<Image<1>>> {
    parse_images(&gunzip_if_needed(&read(path)?, path)?, path)
}

/// Reads an IDX label file (gzip or raw).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels(&gunzip_if_needed(&read(path)?, path)?, path)
}

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    if raw.is_file() {
        return Ok(raw);
    }
    Err({
        Error::io(
            &gz,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no MNIST file `{name}` or `{name}.gz` in this folder"),
            ),
        )
    })
}

/// Pairs an image file with its label file, checking the counts agree.
fn pair(images: (&[u8], &Path), labels: (&[u8], &Path)) -> Result<(Vec<Image<1>>, Vec<u8>)> {
    let imgs = parse_images(&gunzip_if_needed(images.0, images.1)?, images.1)?;
    let labs = parse_labels(&gunzip_if_needed(labels.0, labels.1)?, labels.1)?;
    if imgs.len() != labs.len() {
        return Err(malformed(
            labels.1,
            format!(
                "holds {} labels, but {} holds {} images",
                labs.len(),
                images.1.display(),
                imgs.len()
            ),
        ));
    }
    Ok((imgs, labs))
}

/// Builds a data set from the four files' bytes (as read from disk, gzip or raw).
/// `paths` name them in errors, in [`FILE_NAMES`] order.
pub fn from_bytes(files: [&[u8]; 4], paths: [&Path; 4]) -> Result<Dataset<1>> {
    let (train, train_labels) = pair((files[0], paths[0]), (files[1], paths[1]))?;
    let (test, test_labels) = pair((files[2], paths[2]), (files[3], paths[3]))?;
    Ok(Dataset {
        train,
        test,
        train_labels: Some(train_labels),
        test_labels: Some(test_labels),
    })
}

/// Loads MNIST from a folder holding the four standard files, each gzip or raw
/// (`train-images-idx3-ubyte.gz` or `train-images-idx3-ubyte`, and so on).
pub fn load_dir(dir: &Path) -> Result<Dataset<1>> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        ));
    }
    let paths: Vec<PathBuf> = FILE_NAMES
        .iter()
        .map(|n| find(dir, n))
        .collect::<Result<_>>()?;
    let bytes: Vec<Vec<u8>> = paths.iter().map(|p| read(p)).collect::<Result<_>>()?;
    from_bytes(
        [&bytes[0], &bytes[1], &bytes[2], &bytes[3]],
        [&paths[0], &paths[1], &paths[2], &paths[3]],
    )
}

/// The 10,000 MNIST digits embedded in this crate (8,000 train, 1,000 test;
/// see `data/mnist/README.md`), so the default needs no download and reads
/// nothing from disk.
pub fn embedded() -> Result<Dataset<1>> {
    const TRAIN_IMAGES: &[u8] = include_bytes!("../data/mnist/train-images-idx3-ubyte.gz");
    const TRAIN_LABELS: &[u8] = include_bytes!("../data/mnist/train-labels-idx1-ubyte.gz");
    const TEST_IMAGES: &[u8] = include_bytes!("../data/mnist/t10k-images-idx3-ubyte.gz");
    const TEST_LABELS: &[u8] = include_bytes!("../data/mnist/t10k-labels-idx1-ubyte.gz");
    let names = FILE_NAMES.map(|n| PathBuf::from(format!("<embedded>/{n}.gz")));
    from_bytes(
        [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS],
        [&names[0], &names[1], &names[2], &names[3]],
    )
}
