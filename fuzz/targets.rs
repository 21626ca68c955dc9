//! The bodies of the fuzz targets, one function per parser of untrusted input.
//!
//! Shared by two users so that there is one definition of each target:
//! - `fuzz/fuzz_targets/*.rs`, the libFuzzer binaries (`scripts/fuzz.sh`,
//!   stable toolchain with RUSTC_BOOTSTRAP=1);
//! - `tests/fuzz_corpus.rs`, which replays the committed seed corpora and
//!   every input that ever crashed (`fuzz/regressions/<target>/`) on the
//!   stable toolchain, as part of the normal test suite.
//!
//! Each body feeds arbitrary bytes to one reader. Returning an error is fine;
//! panicking, aborting or allocating without bound is the bug. Errors must
//! name the input, so each body also checks that the message does.

#![allow(dead_code)] // each fuzz binary uses one of the bodies

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::infer::predict;
use pixel_transformer::train::checkpoint;
use pixel_transformer::{BinnedMixture, Domain, Model, Preset};
use pixel_transformer_image::{cifar, folder, mnist};
use pixel_transformer_polynomial::PolynomialDomain;

/// The name every input is given in error messages.
pub const INPUT: &str = "fuzz-input";

/// A target's body: feeds arbitrary bytes to one reader.
pub type Body = fn(&[u8]);

/// The targets, by name: the names of the fuzz binaries and corpus folders.
pub const TARGETS: [(&str, Body); 7] = [
    ("checkpoint", checkpoint),
    ("predict", predict_lines),
    ("mnist", mnist_files),
    ("cifar", cifar_batch),
    ("image_file", image_file),
    ("npy", npy_grid),
    ("video_frame", video_frame),
];

fn names_input<T>(result: pixel_transformer::Result<T>) {
    if let Err(e) = result {
        let message = e.to_string();
        assert!(
            message.contains(INPUT),
            "error does not name the file: {message}"
        );
    }
}

/// A checkpoint file, loaded as a polynomial model (the domain's typetag
/// config is linked in, so the whole header path is exercised).
pub fn checkpoint(data: &[u8]) {
    let file = Path::new(INPUT);
    names_input(checkpoint::load_bytes::<1, 1, Cpu, BinnedMixture>(
        data,
        file,
        <PolynomialDomain as Domain<1, 1>>::NAME,
        &Cpu::default(),
    ));
}

/// `predict` request lines, answered by a fixed tiny model.
pub fn predict_lines(data: &[u8]) {
    static MODEL: OnceLock<Model<1, 1, Cpu, BinnedMixture>> = OnceLock::new();
    let model = MODEL.get_or_init(|| {
        let dist = BinnedMixture::with_centres(&[[-1.0f32], [1.0]], 0.1, 1e-3).unwrap();
        Model::new(Preset::Tiny.config(), dist, 0, &Cpu::default()).unwrap()
    });
    names_input(predict::run(model, data, std::io::sink(), INPUT));
}

/// A pair of MNIST IDX files (images, labels), gzip or raw: the first four
/// bytes (little-endian) say how many of the rest are the images file.
pub fn mnist_files(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let at = (u32::from_le_bytes(*head) as usize).min(rest.len());
    let (images, labels) = rest.split_at(at);
    let path = PathBuf::from(INPUT);
    let paths = [path.as_path(); 4];
    names_input(mnist::from_bytes([images, labels, images, labels], paths));
}

/// A CIFAR-10 binary batch.
pub fn cifar_batch(data: &[u8]) {
    names_input(cifar::parse_batch(data, Path::new(INPUT)));
}

/// The readers below take paths, so the input goes through a file: one per
/// process and thread, rewritten for each input.
fn as_file(data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pixel-transformer-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(INPUT);
    std::fs::write(&path, data).unwrap();
    path
}

/// An image file of a folder data set (PNG or JPEG, format sniffed from the
/// content), decoded and resized as grey and as colour.
pub fn image_file(data: &[u8]) {
    let path = as_file(data);
    names_input(folder::load_image::<1>(&path, 8));
    names_input(folder::load_image::<3>(&path, 8));
}

/// A NumPy `.npy` SDF grid.
pub fn npy_grid(data: &[u8]) {
    names_input(pixel_transformer_sdf::npy::load_npy(&as_file(data)));
}

/// One frame of a video frame folder, decoded at its own size.
pub fn video_frame(data: &[u8]) {
    let path = as_file(data);
    names_input(pixel_transformer_video::folder::load_frame::<1>(&path));
    names_input(pixel_transformer_video::folder::load_frame::<3>(&path));
}
