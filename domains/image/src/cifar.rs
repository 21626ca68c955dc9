//! CIFAR-10 in its "binary version" (`cifar-10-batches-bin`).
//!
//! Each batch file is a sequence of 3,073-byte records: one label byte (0–9)
//! then a 32×32 colour image as three 1,024-byte planes (red, green, blue),
//! each row by row. The format has no header, so the only checks possible
//! are a whole number of records, at least one, and labels 0–9.

use std::path::{Path, PathBuf};

use pixel_transformer::{Error, Result};

use crate::files::{malformed, read};
use crate::{Dataset, Image};

/// Image side.
pub const SIDE: usize = 32;
/// Bytes per record: a label and three 32×32 planes.
pub const RECORD: usize = 1 + 3 * SIDE * SIDE;
/// The test batch's file name.
pub const TEST_FILE: &str = "test_batch.bin";

/// Parses one batch file already in memory; `path` names it in errors.
pub fn parse_batch(bytes: &[u8], path: &Path) -> Result<(Vec<Image<3>>, Vec<u8>)> {
    if bytes.is_empty() {
        return Err(malformed(path, "empty file: no CIFAR-10 records"));
    }
    if bytes.len() % RECORD != 0 {
        return Err(malformed(
            path,
            format!(
                "truncated or wrong size: {} bytes is not a whole number of {RECORD}-byte records \
                 ({} whole records and {} bytes left over)",
                bytes.len(),
                bytes.len() / RECORD,
                bytes.len() % RECORD
            ),
        ));
    }
    let plane = SIDE * SIDE;
    let mut images = Vec::with_capacity(bytes.len() / RECORD);
    let mut labels = Vec::with_capacity(bytes.len() / RECORD);
    let mut interleaved = vec![0u8; 3 * plane];
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(malformed(
                path,
                format!(
                    "record {i} (byte offset {}): label {} is not a class 0–9",
                    i * RECORD,
                    record[0]
                ),
            ));
        }
        labels.push(record[0]);
        // Planes (R…, G…, B…) to interleaved pixels (RGB, RGB, …).
        let planes = &record[1..];
        for p in 0..plane {
            for c in 0..3 {
                interleaved[3 * p + c] = planes[c * plane + p];
            }
        }
        images.push(Image::from_u8(SIDE, SIDE, 3, &interleaved)?);
    }
    Ok((images, labels))
}

/// Reads one batch file.
pub fn read_batch(path: &Path) -> Result<(Vec<Image<3>>, Vec<u8>)> {
    parse_batch(&read(path)?, path)
}

/// The folder holding the batches: `dir` itself, or its `cifar-10-batches-bin`
/// subfolder (what the official archive unpacks to).
fn batches_dir(dir: &Path) -> PathBuf {
    let inner = dir.join("cifar-10-batches-bin");
    if !dir.join(TEST_FILE).exists() && inner.join(TEST_FILE).exists() {
        inner
    } else {
        dir.to_path_buf()
    }
}

/// Loads CIFAR-10: every `data_batch_*.bin` for training (in name order) and
/// `test_batch.bin` for testing.
pub fn load_dir(dir: &Path) -> Result<Dataset<3>> {
    let dir = batches_dir(dir);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut train_files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin")) {
            train_files.push(path);
        }
    }
    if train_files.is_empty() {
        return Err(malformed(
            &dir,
            "no CIFAR-10 training batches (data_batch_1.bin … data_batch_5.bin) in this folder",
        ));
    }
    train_files.sort();
    let (mut train, mut train_labels) = (Vec::new(), Vec::new());
    for f in &train_files {
        let (imgs, labels) = read_batch(f)?;
        train.extend(imgs);
        train_labels.extend(labels);
    }
    let (test, test_labels) = read_batch(&dir.join(TEST_FILE))?;
    Ok(Dataset {
        train,
        test,
        train_labels: Some(train_labels),
        test_labels: Some(test_labels),
    })
}
