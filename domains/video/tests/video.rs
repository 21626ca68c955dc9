//! The video domain's promises: trilinear sampling, the Moving MNIST
//! generator, the frame-folder loader (good and malformed fixtures) and the
//! GIF output.

use std::path::Path;

use pixel_transformer::{Error, Grid, SpatialSignal};
use pixel_transformer_image::Image;
use pixel_transformer_video::deps::image::{
    self, codecs::gif::GifDecoder, AnimationDecoder, GrayImage, Luma,
};
use pixel_transformer_video::gif::{encode_gif, frame_strip, side_by_side};
use pixel_transformer_video::moving_mnist::trajectory;
use pixel_transformer_video::{folder, Clip, MovingMnist};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A 5 × 4 × 6 clip whose every voxel has its own value.
fn numbered_clip() -> Clip<1> {
    let voxels = (0..120).map(|i| [i as f32 / 119.0]).collect();
    Clip::from_voxels(5, 4, 6, voxels).unwrap()
}

#[test]
fn trilinear_sampling_is_exact_at_voxel_centres_and_linear_between_frames() {
    let clip = numbered_clip();
    let grid = Grid::new([5, 4, 6]);
    let voxels = clip.voxels();
    for (i, v) in voxels.iter().enumerate() {
        assert_eq!(clip.value_at(grid.position(i)), *v, "voxel {i}");
    }
    // Frame centres at −1 + (2k + 1)/6; halfway between frames 2 and 3 (t = 0)
    // at pixel (1, 2) is the average of the two voxels.
    let (x, y) = (Grid::<1>::centre(1, 5), Grid::<1>::centre(2, 4));
    let a = voxels[1 + 2 * 5 + 2 * 20][0];
    let b = voxels[1 + 2 * 5 + 3 * 20][0];
    let v = clip.value_at([x, y, 0.0])[0];
    assert!((v - (a + b) / 2.0).abs() < 1e-6, "{v} vs {a}, {b}");
}

#[test]
fn moving_mnist_is_deterministic_under_a_seed() {
    let gen = MovingMnist::new(32, 16, 2).unwrap();
    let draw = |seed| gen.train_clip(&mut ChaCha8Rng::seed_from_u64(seed));
    let (a, paths_a) = draw(7);
    let (b, paths_b) = draw(7);
    assert_eq!(a, b);
    assert_eq!(paths_a, paths_b);
    assert_ne!(a, draw(8).0);
    assert_eq!((a.width(), a.height(), a.len()), (32, 32, 16));
    // Held-out clips are numbered: the same index is the same clip.
    assert_eq!(gen.test_clip(3), gen.test_clip(3));
    assert_ne!(gen.test_clip(3).0, gen.test_clip(4).0);
    // The digits move.
    assert_ne!(a.frames()[0], a.frames()[15]);
}

#[test]
fn moving_mnist_digits_stay_inside_the_frame() {
    for (size, frames) in [(32, 16), (64, 20)] {
        let side = MovingMnist::digit_side(size);
        assert_eq!(side, 28 * size / 64);
        let gen = MovingMnist::new(size, frames, 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(size as u64);
        for c in 0..20 {
            let (clip, paths) = if c % 2 == 0 {
                gen.train_clip(&mut rng)
            } else {
                gen.test_clip(c)
            };
            let path = &paths[0];
            assert_eq!(path.len(), frames);
            // One digit: if no part were ever cut off by an edge, every frame
            // holds the same total ink, and all of it inside the digit's box.
            let ink: Vec<f32> = clip
                .frames()
                .iter()
                .map(|f| f.pixels().iter().map(|p| p[0]).sum())
                .collect();
            assert!(ink[0] > 5.0, "clip {c}: a digit has ink");
            for (k, (frame, &(x0, y0))) in clip.frames().iter().zip(path).enumerate() {
                assert!(x0 + side <= size && y0 + side <= size, "{path:?}");
                assert!(
                    (ink[k] - ink[0]).abs() < 1e-3,
                    "clip {c} frame {k}: {ink:?}"
                );
                for y in 0..size {
                    for x in 0..size {
                        let inside = (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y);
                        assert!(inside || frame.pixel(x, y) == [0.0], "ink outside the box");
                    }
                }
            }
        }
    }
    // The paths alone, long enough to bounce many times, even on tight frames.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for size in [16, 20, 32, 64] {
        let side = MovingMnist::digit_side(size);
        for _ in 0..200 {
            let path = trajectory(size, side, 200, &mut rng);
            assert!(path
                .iter()
                .all(|&(x, y)| x + side <= size && y + side <= size));
        }
    }
}

#[test]
fn moving_mnist_refuses_bad_settings() {
    assert!(MovingMnist::new(8, 16, 2).is_err());
    assert!(MovingMnist::new(32, 0, 2).is_err());
    assert!(MovingMnist::new(32, 16, 3).is_err());
}

/// Writes a `w × h` grey PNG frame whose pixels encode `(clip, frame)`.
fn write_frame(path: &Path, w: u32, h: u32, value: u8) {
    GrayImage::from_pixel(w, h, Luma([value]))
        .save(path)
        .unwrap();
}

/// `clips` clip folders of `frames` 6 × 4 frames each under `dir`.
fn write_clips(dir: &Path, clips: usize, frames: usize) {
    for c in 0..clips {
        let clip = dir.join(format!("clip_{c:02}"));
        std::fs::create_dir_all(&clip).unwrap();
        for k in 0..frames {
            write_frame(&clip.join(format!("{k:03}.png")), 6, 4, (10 * c + k) as u8);
        }
    }
}

fn malformed_message(err: Error) -> (std::path::PathBuf, String) {
    match err {
        Error::Malformed { path, message } => (path, message),
        other => panic!("expected a Malformed error, got {other:?}"),
    }
}

#[test]
fn frame_folders_load_in_name_order_with_a_held_out_split() {
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 3, 5);
    // A stray file next to the clips is ignored.
    std::fs::write(dir.path().join("README.txt"), "clips").unwrap();
    let set = folder::load_dir::<1>(dir.path()).unwrap();
    // Clips 0 and 2 train, clip 1 (one in ten, starting at the second) is held out.
    assert_eq!((set.train.len(), set.test.len()), (2, 1));
    let clip = &set.test[0];
    assert_eq!((clip.width(), clip.height(), clip.len()), (6, 4, 5));
    for (k, frame) in clip.frames().iter().enumerate() {
        let expected = (10 + k) as f32 / 255.0;
        assert!((frame.pixel(5, 3)[0] - expected).abs() < 1e-6, "frame {k}");
    }
    // Colour models see grey frames repeated into RGB.
    let rgb = folder::load_dir::<3>(dir.path()).unwrap();
    assert_eq!(rgb.train[1].frames()[4].pixel(0, 0), [24.0 / 255.0; 3]);

    // train/ and test/ sub-folders are used as given.
    let split = tempfile::tempdir().unwrap();
    write_clips(&split.path().join("train"), 4, 3);
    write_clips(&split.path().join("test"), 1, 3);
    let set = folder::load_dir::<1>(split.path()).unwrap();
    assert_eq!((set.train.len(), set.test.len()), (4, 1));
}

#[test]
fn ragged_clips_are_refused_naming_the_clip() {
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 3, 5);
    std::fs::remove_file(dir.path().join("clip_02/004.png")).unwrap();
    let (path, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(path.ends_with("clip_02"), "{path:?}");
    assert!(
        message.contains("ragged") && message.contains("4 frames") && message.contains("has 5"),
        "{message}"
    );
}

#[test]
fn mixed_frame_sizes_are_refused_naming_the_file() {
    // Inside one clip: the odd frame is named.
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 2, 4);
    write_frame(&dir.path().join("clip_01/002.png"), 6, 5, 0);
    let (path, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(path.ends_with("clip_01/002.png"), "{path:?}");
    assert!(
        message.contains("6×5") && message.contains("6×4"),
        "{message}"
    );

    // Across clips: the odd clip is named.
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 2, 3);
    let odd = dir.path().join("clip_05");
    std::fs::create_dir(&odd).unwrap();
    for k in 0..3 {
        write_frame(&odd.join(format!("{k}.png")), 8, 4, 1);
    }
    let (path, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(path.ends_with("clip_05"), "{path:?}");
    assert!(
        message.contains("mixed sizes") && message.contains("8×4"),
        "{message}"
    );
}

#[test]
fn broken_and_empty_folders_are_typed_errors() {
    // An undecodable frame.
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 2, 2);
    std::fs::write(dir.path().join("clip_00/001.png"), b"not a png at all").unwrap();
    let (path, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(path.ends_with("clip_00/001.png"), "{path:?}: {message}");

    // A truncated PNG (valid header, data cut off).
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 2, 2);
    let frame = dir.path().join("clip_01/000.png");
    let bytes = std::fs::read(&frame).unwrap();
    std::fs::write(&frame, &bytes[..bytes.len() / 2]).unwrap();
    let (path, _) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(path.ends_with("clip_01/000.png"), "{path:?}");

    // A frame larger than MAX_SIZE is refused from its header.
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 2, 1);
    write_frame(&dir.path().join("clip_00/000.png"), 300, 2, 0);
    let (_, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(message.contains("300×2"), "{message}");

    // A clip folder without frames.
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 2, 2);
    std::fs::create_dir(dir.path().join("clip_09")).unwrap();
    let (path, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(
        path.ends_with("clip_09") && message.contains("empty clip"),
        "{message}"
    );

    // No clip folders, a single clip, a missing folder.
    let dir = tempfile::tempdir().unwrap();
    write_frame(&dir.path().join("0.png"), 4, 4, 0);
    let (_, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(message.contains("no clip folders"), "{message}");
    let dir = tempfile::tempdir().unwrap();
    write_clips(dir.path(), 1, 2);
    let (_, message) = malformed_message(folder::load_dir::<1>(dir.path()).unwrap_err());
    assert!(message.contains("single clip"), "{message}");
    assert!(matches!(
        folder::load_dir::<1>(&dir.path().join("nope")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn gif_output_decodes_to_the_right_frames_and_size() {
    let clip = numbered_clip();
    let white = Clip::new(vec![Image::<1>::filled(5, 4, [1.0]).unwrap(); 6]).unwrap();
    let rows = vec![vec![&clip, &white, &clip], vec![&white, &clip]];
    let pictures = side_by_side(&rows, None).unwrap();
    assert_eq!(pictures.len(), 6);
    let (w, h) = pictures[0].dimensions();
    let bytes = encode_gif(&pictures, 100).unwrap();
    let frames = GifDecoder::new(std::io::Cursor::new(bytes))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 6);
    for f in &frames {
        assert_eq!(f.buffer().dimensions(), (w, h));
        assert_eq!(f.delay().numer_denom_ms(), (100, 1));
    }
    // Tiles are enlarged 22× (112 / 5) after a 4-pixel gap: the white tile
    // (row 0, column 1) is white in every frame, and the numbered clip's
    // first voxel (value 0) is black in frame 0.
    let scale = 112 / 5;
    let white_x = (4 + (5 * scale + 4) + 10) as u32;
    let black = frames[0].buffer().get_pixel(6, 6).0;
    assert!(black[0] < 10, "{black:?}");
    for f in &frames {
        let p = f.buffer().get_pixel(white_x, 10).0;
        assert!(p[0] > 245 && p[3] == 255, "{p:?}");
    }
    // An empty layout or a clip of another length is refused.
    let short = Clip::new(vec![Image::<1>::filled(5, 4, [0.0]).unwrap(); 2]).unwrap();
    assert!(side_by_side(&[vec![&clip, &short]], None).is_err());
    assert!(side_by_side::<1>(&[], None).is_err());
    assert!(encode_gif(&[], 100).is_err());
    // A strip has one tile per frame.
    let strip = frame_strip(&[&clip, &white]).unwrap();
    assert_eq!(strip.size().0, 4 + 6 * (5 * scale + 4));
    let png = image::load_from_memory(&strip.to_png().unwrap()).unwrap();
    assert_eq!(png.width() as usize, strip.size().0);
}
