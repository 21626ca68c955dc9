//! Folders of frame images: one sub-folder per clip, frames sorted by name.
//!
//! ```text
//! DIR/                      or    DIR/train/clip_a/…  DIR/test/clip_b/…
//!   clip_000/0000.png …
//!   clip_001/0000.png …
//! ```
//!
//! Frames are PNG or JPEG files (the format is read from the content). Unlike
//! the image domain's folders, nothing is cropped or resized: a clip is a
//! block of voxels, and quietly resizing some frames would mix resolutions
//! inside one signal. So every frame of every clip must have the same size
//! and every clip the same number of frames; a file or clip that breaks
//! this is an [`Error::Malformed`] naming it and the reference it differs from.

use std::path::{Path, PathBuf};

use pixel_transformer::{Error, Result};
use pixel_transformer_image::{folder::image_files, folder::HOLDOUT_EVERY, Image, MAX_SIZE};

use crate::{Clip, MAX_FRAMES};

fn malformed(path: &Path, message: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Held-out and training clips of a frame folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSet<const V: usize> {
    /// Training clips.
    pub train: Vec<Clip<V>>,
    /// Held-out clips, never trained on.
    pub test: Vec<Clip<V>>,
}

/// Decodes one frame at its own size, refusing frames over [`MAX_SIZE`].
pub fn load_frame<const V: usize>(path: &Path) -> Result<Image<V>> {
    let reader = image::io::Reader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    // Checking the header first: a forged 60000 × 60000 header is refused
    // before anything is allocated for it.
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| malformed(path, format!("cannot read the image header: {e}")))?;
    if w == 0 || h == 0 || w as usize > MAX_SIZE || h as usize > MAX_SIZE {
        return Err(malformed(
            path,
            format!("the frame is {w}×{h}; frames must be 1 to {MAX_SIZE} pixels on each side"),
        ));
    }
    let img = image::io::Reader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| malformed(path, format!("cannot decode the frame: {e}")))?;
    // The decoded size, not the header's, sizes the buffer (they agree for
    // well-formed files); any mismatch is still an error naming the file.
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Image::from_u8(w, h, 3, rgb.as_raw()).map_err(|e| malformed(path, e.to_string()))
}

/// Loads the frames of one clip folder, in name order.
pub fn load_clip<const V: usize>(dir: &Path) -> Result<Clip<V>> {
    let files = image_files(dir)?;
    if files.is_empty() {
        return Err(malformed(
            dir,
            "empty clip: no PNG or JPEG frames (.png, .jpg, .jpeg) in it",
        ));
    }
    if files.len() > MAX_FRAMES {
        return Err(malformed(
            dir,
            format!(
                "{} frames; a clip may have at most {MAX_FRAMES}",
                files.len()
            ),
        ));
    }
    let mut frames: Vec<Image<V>> = Vec::with_capacity(files.len());
    for f in &files {
        let frame = load_frame(f)?;
        if let Some(first) = frames.first() {
            if (frame.width(), frame.height()) != (first.width(), first.height()) {
                return Err(malformed(
                    f,
                    format!(
                        "the frame is {}×{}, but {} is {}×{}; all frames must have one size",
                        frame.width(),
                        frame.height(),
                        files[0].display(),
                        first.width(),
                        first.height()
                    ),
                ));
            }
        }
        frames.push(frame);
    }
    Clip::new(frames)
}

/// The sub-folders of `dir`, sorted by name.
fn clip_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Loads every clip folder directly in `dir`, checking that all clips have
/// the size and frame count of `reference` (or of the first clip).
fn load_clips<const V: usize>(
    dir: &Path,
    reference: &mut Option<(PathBuf, usize, usize, usize)>,
) -> Result<Vec<Clip<V>>> {
    let dirs = clip_dirs(dir)?;
    if dirs.is_empty() {
        return Err(malformed(
            dir,
            "no clip folders in it; put each clip's frames in its own sub-folder",
        ));
    }
    let mut clips = Vec::with_capacity(dirs.len());
    for d in &dirs {
        let clip: Clip<V> = load_clip(d)?;
        let shape = (clip.width(), clip.height(), clip.len());
        match reference {
            None => *reference = Some((d.clone(), shape.0, shape.1, shape.2)),
            Some((first, w, h, t)) => {
                if shape.2 != *t {
                    return Err(malformed(
                        d,
                        format!(
                            "ragged clips: this clip has {} frames, but {} has {t}; every clip needs the same number of frames",
                            shape.2,
                            first.display()
                        ),
                    ));
                }
                if (shape.0, shape.1) != (*w, *h) {
                    return Err(malformed(
                        d,
                        format!(
                            "mixed sizes: this clip's frames are {}×{}, but {}'s are {w}×{h}",
                            shape.0,
                            shape.1,
                            first.display()
                        ),
                    ));
                }
            }
        }
        clips.push(clip);
    }
    Ok(clips)
}

/// Loads a frame folder as training and held-out clips: `dir/train` and
/// `dir/test` when both exist, otherwise the clips of `dir` itself with one
/// in [`HOLDOUT_EVERY`] (in name order: clips 1, 11, 21, …) held out. At
/// least two clips are needed, so that neither split is empty.
pub fn load_dir<const V: usize>(dir: &Path) -> Result<ClipSet<V>> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        ));
    }
    let mut reference = None;
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    if train_dir.is_dir() && test_dir.is_dir() {
        let train = load_clips(&train_dir, &mut reference)?;
        let test = load_clips(&test_dir, &mut reference)?;
        return Ok(ClipSet { train, test });
    }
    let all = load_clips(dir, &mut reference)?;
    if all.len() < 2 {
        return Err(malformed(
            dir,
            "holds a single clip; need at least two (one is held out for testing)",
        ));
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, clip) in all.into_iter().enumerate() {
        if i % HOLDOUT_EVERY == 1 {
            test.push(clip);
        } else {
            train.push(clip);
        }
    }
    Ok(ClipSet { train, test })
}
