//! The loaders on small fixtures written into temporary folders, well-formed
//! and malformed: every error must name the file, and none may panic.

use std::io::Write;
use std::path::{Path, PathBuf};

use pixel_transformer::domain::{config_from_json, config_to_json};
use pixel_transformer::{Domain, Error, Grid, SpatialSignal, Split};
use pixel_transformer_image::deps::{flate2, image};
use pixel_transformer_image::{
    cifar, folder, load, mnist, DatasetKind, Image, ImageConfig, ImageDomain,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------- fixtures

fn idx_images(n: u32, rows: u32, cols: u32, data: &[u8]) -> Vec<u8> {
    let mut v = mnist::IMAGES_MAGIC.to_be_bytes().to_vec();
    for x in [n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = mnist::LABELS_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Three 2-row × 3-column images: image k has pixel p = 10·k + p.
fn three_images() -> Vec<u8> {
    (0..3u8)
        .flat_map(|k| (0..6u8).map(move |p| 10 * k + p))
        .collect()
}

/// Writes a complete small MNIST folder; `gzip` chooses compressed or raw files.
fn mnist_dir(dir: &Path, gzip: bool) {
    let files = [
        idx_images(3, 2, 3, &three_images()),
        idx_labels(&[1, 2, 3]),
        idx_images(1, 2, 3, &[255; 6]),
        idx_labels(&[9]),
    ];
    for (name, bytes) in mnist::FILE_NAMES.iter().zip(files) {
        let (name, bytes) = if gzip {
            (format!("{name}.gz"), gz(&bytes))
        } else {
            (name.to_string(), bytes)
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Asserts `err` is a file error naming `file` and containing every word of `words`.
fn assert_names(err: &Error, file: &str, words: &[&str]) {
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Malformed { .. } | Error::Io { .. }),
        "{msg}"
    );
    assert!(msg.contains(file), "`{msg}` does not name {file}");
    for w in words {
        assert!(msg.contains(w), "`{msg}` does not say {w}");
    }
}

// ---------------------------------------------------------------- MNIST

#[test]
fn mnist_loads_raw_and_gzip_files_alike() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        mnist_dir(dir.path(), gzip);
        let set = mnist::load_dir(dir.path()).unwrap();
        assert_eq!((set.train.len(), set.test.len()), (3, 1));
        assert_eq!(set.train_labels.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(set.test_labels.as_deref(), Some(&[9u8][..]));
        // 3 columns (width) × 2 rows, row by row.
        let img = &set.train[1];
        assert_eq!((img.width(), img.height()), (3, 2));
        assert_eq!(img.pixel(2, 0), [12.0 / 255.0]);
        assert_eq!(img.pixel(0, 1), [13.0 / 255.0]);
        assert_eq!(set.test[0].pixels(), &[[1.0]; 6]);
    }
}

#[test]
fn the_embedded_mnist_is_complete() {
    let set = mnist::embedded().unwrap();
    assert_eq!((set.train.len(), set.test.len()), (8000, 1000));
    assert!(set
        .train
        .iter()
        .all(|i| (i.width(), i.height()) == (28, 28)));
    let labels = set.train_labels.unwrap();
    for digit in 0..10u8 {
        assert!(labels.iter().filter(|&&l| l == digit).count() > 600);
    }
    // Digits are bright strokes on black: the corner is background.
    assert_eq!(set.test[0].pixel(0, 0), [0.0]);
    let mean: f32 = set
        .test
        .iter()
        .flat_map(|i| i.pixels())
        .map(|p| p[0])
        .sum::<f32>()
        / (1000.0 * 784.0);
    assert!((0.08..0.2).contains(&mean), "{mean}");
}

#[test]
fn mnist_errors_name_the_file() {
    let path = Path::new("/data/train-images-idx3-ubyte");
    // Bad magic (a label file where images belong).
    let err = mnist::parse_images(&idx_labels(&[1, 2]), path).unwrap_err();
    assert_names(&err, "train-images-idx3-ubyte", &["magic", "2049"]);
    // Truncated: 3 images declared, 2.5 present.
    let err = mnist::parse_images(&idx_images(3, 2, 3, &three_images()[..15]), path).unwrap_err();
    assert_names(&err, "train-images", &["truncated", "15 bytes"]);
    // Wrong size: bytes left over.
    let mut long = three_images();
    long.push(0);
    let err = mnist::parse_images(&idx_images(3, 2, 3, &long), path).unwrap_err();
    assert_names(&err, "train-images", &["wrong size"]);
    // An absurd header must not allocate: 4 billion 65535 × 65535 images.
    let err = mnist::parse_images(&idx_images(u32::MAX, 65535, 65535, &[0; 10]), path).unwrap_err();
    assert_names(&err, "train-images", &["truncated"]);
    // Zero images, and a file too short for a header.
    assert!(mnist::parse_images(&idx_images(0, 28, 28, &[]), path).is_err());
    let err = mnist::parse_images(&[0, 0, 8], path).unwrap_err();
    assert_names(&err, "train-images", &["truncated"]);
    let err = mnist::parse_images(&idx_images(1, 2, 3, &[])[..10], path).unwrap_err();
    assert_names(&err, "train-images", &["truncated"]);

    let lpath = Path::new("labels.idx");
    let err = mnist::parse_labels(&idx_images(1, 1, 1, &[0]), lpath).unwrap_err();
    assert_names(&err, "labels.idx", &["magic"]);
    let mut cut = idx_labels(&[1, 2, 3]);
    cut.pop();
    let err = mnist::parse_labels(&cut, lpath).unwrap_err();
    assert_names(&err, "labels.idx", &["truncated"]);
    let err = mnist::parse_labels(&idx_labels(&[1, 12]), lpath).unwrap_err();
    assert_names(&err, "labels.idx", &["label 1 is 12"]);
}

#[test]
fn mnist_folder_errors_name_the_file() {
    // Labels that do not match the images.
    let dir = tempfile::tempdir().unwrap();
    mnist_dir(dir.path(), false);
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx_labels(&[1, 2]),
    )
    .unwrap();
    let err = mnist::load_dir(dir.path()).unwrap_err();
    assert_names(&err, "train-labels-idx1-ubyte", &["2 labels", "3 images"]);

    // Corrupt gzip.
    let dir = tempfile::tempdir().unwrap();
    mnist_dir(dir.path(), true);
    let p = dir.path().join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = mnist::load_dir(dir.path()).unwrap_err();
    assert_names(&err, "t10k-images-idx3-ubyte.gz", &["gzip"]);

    // A missing file.
    std::fs::remove_file(&p).unwrap();
    let err = mnist::load_dir(dir.path()).unwrap_err();
    assert_names(&err, "t10k-images-idx3-ubyte", &["no MNIST file"]);

    // A missing folder.
    let err = mnist::load_dir(&dir.path().join("nope")).unwrap_err();
    assert_names(&err, "nope", &[]);
}

// ---------------------------------------------------------------- CIFAR-10

/// A record whose label is `label` and whose planes are R = r, G = g, B = b + pixel index.
fn cifar_record(label: u8, r: u8, g: u8, b: u8) -> Vec<u8> {
    let mut v = vec![label];
    v.extend(std::iter::repeat(r).take(1024));
    v.extend(std::iter::repeat(g).take(1024));
    v.extend((0..1024).map(|i| b.wrapping_add((i % 251) as u8)));
    v
}

fn cifar_dir(dir: &Path) {
    let mut batch = cifar_record(3, 255, 0, 0);
    batch.extend(cifar_record(7, 0, 255, 0));
    std::fs::write(dir.join("data_batch_1.bin"), &batch).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), cifar_record(0, 1, 2, 3)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), cifar_record(9, 0, 0, 255)).unwrap();
    std::fs::write(dir.join("batches.meta.txt"), "airplane\n").unwrap();
}

#[test]
fn cifar_loads_batches_with_planes_interleaved() {
    let dir = tempfile::tempdir().unwrap();
    cifar_dir(dir.path());
    let set = cifar::load_dir(dir.path()).unwrap();
    assert_eq!((set.train.len(), set.test.len()), (3, 1));
    assert_eq!(set.train_labels.as_deref(), Some(&[3u8, 7, 0][..]));
    assert_eq!(set.train[0].pixel(5, 5), [1.0, 0.0, 165.0 / 255.0]);
    let img = &set.train[2];
    assert_eq!((img.width(), img.height()), (32, 32));
    // Pixel (x = 4, y = 1) is index 36 of each plane.
    assert_eq!(
        img.pixel(4, 1),
        [1.0 / 255.0, 2.0 / 255.0, (3.0 + 36.0) / 255.0]
    );

    // The official archive's subfolder is found too.
    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&inner).unwrap();
    cifar_dir(&inner);
    assert_eq!(cifar::load_dir(outer.path()).unwrap().train.len(), 3);
}

#[test]
fn cifar_errors_name_the_file() {
    let p = Path::new("data_batch_4.bin");
    let mut two = cifar_record(1, 0, 0, 0);
    two.extend(cifar_record(2, 0, 0, 0));
    let err = cifar::parse_batch(&two[..two.len() - 5], p).unwrap_err();
    assert_names(&err, "data_batch_4.bin", &["truncated", "1 whole records"]);
    let err = cifar::parse_batch(&[], p).unwrap_err();
    assert_names(&err, "data_batch_4.bin", &["empty"]);
    let err = cifar::parse_batch(&cifar_record(10, 0, 0, 0), p).unwrap_err();
    assert_names(&err, "data_batch_4.bin", &["label 10"]);

    let dir = tempfile::tempdir().unwrap();
    cifar_dir(dir.path());
    std::fs::write(dir.path().join("test_batch.bin"), [0u8; 100]).unwrap();
    let err = cifar::load_dir(dir.path()).unwrap_err();
    assert_names(&err, "test_batch.bin", &["3073"]);
    std::fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
    let err = cifar::load_dir(dir.path()).unwrap_err();
    assert_names(&err, "test_batch.bin", &[]);

    let empty = tempfile::tempdir().unwrap();
    let err = cifar::load_dir(empty.path()).unwrap_err();
    let dir_name = empty.path().file_name().unwrap().to_str().unwrap();
    assert_names(&err, dir_name, &["data_batch"]);
}

// ---------------------------------------------------------------- folders

/// A `w × h` RGB image: left quarter red, right quarter blue, the middle green.
fn bands(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, _| {
        if x < w / 4 {
            image::Rgb([255, 0, 0])
        } else if x >= w - w / 4 {
            image::Rgb([0, 0, 255])
        } else {
            image::Rgb([0, 255, 0])
        }
    })
}

fn save(img: &image::RgbImage, path: &Path) {
    img.save(path).unwrap();
}

#[test]
fn folders_load_png_and_jpeg_cropped_and_resized() {
    let dir = tempfile::tempdir().unwrap();
    save(&bands(40, 20), &dir.path().join("a.png"));
    save(&bands(8, 8), &dir.path().join("b.PNG"));
    save(&bands(64, 32), &dir.path().join("c.jpg"));
    save(&bands(20, 20), &dir.path().join("d.jpeg"));
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    std::fs::create_dir(dir.path().join("sub.png")).unwrap(); // a folder, not a file

    let set = folder::load_dir::<3>(dir.path(), 8).unwrap();
    // Name order a, b, c, d; image 1 (b) is held out.
    assert_eq!((set.train.len(), set.test.len()), (3, 1));
    assert!(set.train_labels.is_none());
    for img in set.train.iter().chain(&set.test) {
        assert_eq!((img.width(), img.height()), (8, 8));
    }
    // a.png 40 × 20: the centre 20 × 20 crop is all green.
    for p in set.train[0].pixels() {
        assert_eq!(*p, [0.0, 1.0, 0.0]);
    }
    // c.jpg (lossy): the centre crop is green too.
    let p = set.train[1].pixel(4, 4);
    assert!(p[1] > 0.8 && p[0] < 0.2 && p[2] < 0.2, "{p:?}");
    // b.PNG kept its bands at its own size: red on the left, blue on the right.
    assert_eq!(set.test[0].pixel(0, 3), [1.0, 0.0, 0.0]);
    assert_eq!(set.test[0].pixel(7, 3), [0.0, 0.0, 1.0]);

    // In grey, green becomes its luma.
    let grey = folder::load_dir::<1>(dir.path(), 8).unwrap();
    assert!((grey.train[0].pixel(3, 3)[0] - 150.0 / 255.0).abs() < 1.0 / 255.0);
}

#[test]
fn folders_with_train_and_test_subfolders_use_them() {
    let dir = tempfile::tempdir().unwrap();
    for (sub, n) in [("train", 3), ("test", 2)] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for i in 0..n {
            save(
                &bands(10, 10),
                &dir.path().join(sub).join(format!("{i}.png")),
            );
        }
    }
    let set = folder::load_dir::<3>(dir.path(), 5).unwrap();
    assert_eq!((set.train.len(), set.test.len()), (3, 2));
}

#[test]
fn folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = folder::load_dir::<3>(dir.path(), 8).unwrap_err();
    let name = dir.path().file_name().unwrap().to_str().unwrap();
    assert_names(&err, name, &["empty folder"]);

    std::fs::write(dir.path().join("readme.txt"), "hello").unwrap();
    let err = folder::load_dir::<3>(dir.path(), 8).unwrap_err();
    assert_names(&err, name, &["empty folder"]);

    save(&bands(8, 8), &dir.path().join("one.png"));
    let err = folder::load_dir::<3>(dir.path(), 8).unwrap_err();
    assert_names(&err, name, &["single image"]);

    std::fs::write(dir.path().join("two.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let err = folder::load_dir::<3>(dir.path(), 8).unwrap_err();
    assert_names(&err, "two.png", &["cannot decode"]);

    std::fs::write(dir.path().join("two.png"), b"plain text, not a picture").unwrap();
    let err = folder::load_dir::<3>(dir.path(), 8).unwrap_err();
    assert_names(&err, "two.png", &["cannot decode"]);

    // A JPEG cut in half.
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(bands(64, 64))
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageOutputFormat::Jpeg(90),
        )
        .unwrap();
    std::fs::write(dir.path().join("two.png"), &jpeg[..jpeg.len() / 3]).unwrap();
    let err = folder::load_dir::<3>(dir.path(), 8).unwrap_err();
    assert_names(&err, "two.png", &[]);

    let err = folder::load_dir::<3>(&dir.path().join("missing"), 8).unwrap_err();
    assert_names(&err, "missing", &[]);
}

// ---------------------------------------------------------------- domain

fn config(
    dataset: DatasetKind,
    data: Option<PathBuf>,
    size: usize,
    channels: usize,
) -> ImageConfig {
    ImageConfig {
        dataset,
        data,
        size: Some(size),
        grey: false,
        channels: Some(channels),
        augment: false,
    }
}

#[test]
fn the_domain_draws_seeded_images_from_either_split() {
    let d = ImageDomain::<1>::new(config(DatasetKind::Mnist, None, 28, 1)).unwrap();
    assert_eq!(
        (d.len(Split::Train), d.len(Split::Test)),
        (Some(8000), Some(1000))
    );
    let draw = |split, seed| d.draw_signal(split, &mut ChaCha8Rng::seed_from_u64(seed));
    assert_eq!(draw(Split::Train, 5), draw(Split::Train, 5));
    assert_ne!(draw(Split::Train, 5), draw(Split::Train, 6));
    // Test draws come from the test images.
    let t = draw(Split::Test, 1);
    assert!((0..1000).any(|i| d.image(Split::Test, i).as_ref() == Some(&t)));
    assert_eq!(d.labels(Split::Test).map(<[u8]>::len), Some(1000));
    assert_eq!(d.defaults().bins, 32);
    assert_eq!(d.defaults().sets.max_observed, 512);

    // Resized MNIST, and MNIST seen in colour (grey repeated).
    let small = ImageDomain::<3>::new(config(DatasetKind::Mnist, None, 14, 3)).unwrap();
    let img = small.image(Split::Train, 0).unwrap();
    assert_eq!((img.width(), img.height()), (14, 14));
    assert!(img.pixels().iter().all(|p| p[0] == p[1] && p[1] == p[2]));
    assert_eq!(small.defaults().bins, 512);
}

#[test]
fn augmentation_distorts_training_images_only_and_is_seeded() {
    let plain = ImageDomain::<1>::new(config(DatasetKind::Mnist, None, 28, 1)).unwrap();
    let augmented = ImageDomain::<1>::new(ImageConfig {
        augment: true,
        ..config(DatasetKind::Mnist, None, 28, 1)
    })
    .unwrap();
    let draw = |d: &ImageDomain<1>, split, seed| {
        d.draw_signal(split, &mut ChaCha8Rng::seed_from_u64(seed))
    };
    let centres = Grid::new([28, 28]).positions();
    let read = |img: &Image<1>| {
        centres
            .iter()
            .map(|p| img.value_at(*p)[0])
            .collect::<Vec<_>>()
    };
    for seed in 0..5 {
        // Test images are never distorted.
        assert_eq!(
            read(&draw(&augmented, Split::Test, seed)),
            read(&draw(&plain, Split::Test, seed))
        );
        // Training images are the same digit, read through a small distortion:
        // different values at the pixel centres, about as much ink.
        let (a, p) = (
            draw(&augmented, Split::Train, seed),
            draw(&plain, Split::Train, seed),
        );
        assert_eq!(a.pixels(), p.pixels());
        let (ra, rp) = (read(&a), read(&p));
        assert_ne!(ra, rp);
        let (ink_a, ink_p) = (ra.iter().sum::<f32>(), rp.iter().sum::<f32>());
        assert!((ink_a / ink_p - 1.0).abs() < 0.35, "{ink_a} vs {ink_p}");
        assert_eq!(read(&draw(&augmented, Split::Train, seed)), ra);
    }
    // Checkpoints written before augmentation existed load without it.
    let old = r#"{"dataset": "mnist", "data": null, "size": 28, "channels": 1}"#;
    assert!(!serde_json::from_str::<ImageConfig>(old).unwrap().augment);
}

#[test]
fn the_shapes_domain_is_deterministic_under_a_seed() {
    let a = ImageDomain::<3>::new(config(DatasetKind::Shapes, None, 16, 3)).unwrap();
    let b = ImageDomain::<3>::new(config(DatasetKind::Shapes, None, 16, 3)).unwrap();
    for split in [Split::Train, Split::Test] {
        let mut ra = ChaCha8Rng::seed_from_u64(9);
        let mut rb = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..5 {
            assert_eq!(a.draw_signal(split, &mut ra), b.draw_signal(split, &mut rb));
        }
        let other = a.draw_signal(split, &mut ChaCha8Rng::seed_from_u64(10));
        assert_ne!(
            other,
            a.draw_signal(split, &mut ChaCha8Rng::seed_from_u64(9))
        );
    }
    assert_eq!(a.len(Split::Train), None);
    assert!(a.image(Split::Test, 3).is_some() && a.image(Split::Test, 1000).is_none());
    let img = a.image(Split::Test, 3).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));
    // As a signal, sampled at a pixel centre it returns the pixel.
    assert_eq!(img.value_at(img.grid().position(37)), img.pixels()[37]);
}

#[test]
fn bad_options_are_errors_and_configs_round_trip() {
    assert!(ImageDomain::<1>::new(config(DatasetKind::Mnist, None, 0, 1)).is_err());
    assert!(ImageDomain::<1>::new(config(DatasetKind::Mnist, None, 10_000, 1)).is_err());
    assert!(ImageDomain::<3>::new(config(DatasetKind::Mnist, None, 28, 1)).is_err());
    let err = ImageDomain::<3>::new(config(DatasetKind::Cifar10, None, 32, 3)).unwrap_err();
    assert!(err.to_string().contains("--data"), "{err}");
    assert!(load::<3>(DatasetKind::Shapes, None, 16).is_err());

    // The config survives a checkpoint's JSON.
    let d = ImageDomain::<3>::new(config(DatasetKind::Shapes, None, 16, 3)).unwrap();
    let json = config_to_json::<2, 3, ImageDomain<3>>(&Domain::<2, 3>::config(&d)).unwrap();
    let back = config_from_json::<2, 3, ImageDomain<3>>(&json).unwrap();
    let d2 = ImageDomain::<3>::from_config(&back).unwrap();
    assert_eq!(d2.settings(), d.settings());

    // What the command line leaves open is settled when the domain is built.
    let args = ImageConfig::of(DatasetKind::Cifar10);
    assert_eq!(args.channels(), 3);
    assert_eq!(
        ImageConfig {
            grey: true,
            ..args.clone()
        }
        .channels(),
        1
    );
    let mnist = ImageDomain::<1>::new(ImageConfig::of(DatasetKind::Mnist)).unwrap();
    assert_eq!(
        (mnist.settings().size, mnist.settings().channels),
        (Some(28), Some(1))
    );
    // A checkpoint written before `grey` existed reads back.
    let old = serde_json::json!({"type": "image", "dataset": "mnist", "data": null, "size": 28, "channels": 1});
    let read = config_from_json::<2, 1, ImageDomain<1>>(&old).unwrap();
    assert_eq!(
        (read.size, read.channels, read.grey),
        (Some(28), Some(1), false)
    );
}

#[test]
fn images_resize_through_the_folder_filter() {
    let img = Image::<1>::new(
        4,
        2,
        vec![[0.0], [0.0], [1.0], [1.0], [0.0], [0.0], [1.0], [1.0]],
    )
    .unwrap();
    // Centre crop keeps columns 1–2 (0 and 1), then 2 × 2 → 1 × 1 averages them.
    let small = pixel_transformer_image::resize(img, 1).unwrap();
    assert!(
        (small.pixels()[0][0] - 0.5).abs() < 0.01,
        "{:?}",
        small.pixels()
    );
}
