//! The video command line end to end on a small Moving MNIST: train a tiny
//! model, then `sample` and `eval` from its checkpoint alone.

use std::time::Instant;

use pixel_transformer::cli::run_grey_or_colour_from;
use pixel_transformer_video::deps::image::{codecs::gif::GifDecoder, AnimationDecoder};
use pixel_transformer_video::VideoDomain;

fn run(args: &[&str]) -> usize {
    let argv = std::iter::once("video").chain(args.iter().copied());
    run_grey_or_colour_from::<3, VideoDomain<1>, VideoDomain<3>, _, _>(argv).unwrap()
}

#[test]
fn moving_mnist_trains_samples_and_evaluates_through_the_command_line() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let train = [
        "train",
        "--size",
        "16",
        "--frames",
        "4",
        "--digits",
        "1",
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--out",
        out,
        "--quiet",
    ];
    assert_eq!(run(&train), 1);
    let meta = pixel_transformer::train::checkpoint::read_meta(dir.path()).unwrap();
    assert_eq!((meta.step, meta.position_dims, meta.value_dims), (3, 3, 1));

    // No --size or --frames: the checkpoint says 16 × 16 × 4.
    run(&["sample", "--out", out]);
    let decode = |name: &str| {
        let file = std::fs::File::open(dir.path().join(name)).unwrap();
        GifDecoder::new(std::io::BufReader::new(file))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap()
    };
    let frames = decode("video.gif");
    assert_eq!(frames.len(), 4);
    // 3 clips (rows) × 6 videos (truth, fill, mean, 3 samples) of 16-pixel
    // tiles, with titles.
    let size = pixel_transformer::plot::image_grid_size;
    assert_eq!(frames[0].buffer().dimensions(), size(3, 6, 16, 16));
    assert_eq!(decode("clip_2.gif").len(), 4);
    let strip = pixel_transformer_video::deps::image::open(dir.path().join("strip_0.png")).unwrap();
    // 6 rows (truth, fill, mean, 3 samples) × 4 frames, with titles.
    assert_eq!(
        (strip.width(), strip.height()),
        pixel_transformer::plot::image_grid_size(6, 4, 16, 16)
    );

    run(&["eval", "--out", out]);
    let csv = std::fs::read_to_string(dir.path().join("eval.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    // |S| = 512, 1024 and 2048, capped at the clip's 1024 voxels.
    let sizes: Vec<&str> = rows.iter().map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(sizes, ["512", "1024", "1024"]);
    for r in &rows {
        let cols: Vec<f64> = r.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cols[1], 100.0, "{r}");
        assert!(cols[2].is_finite() && cols[3] > 5.0, "{r}");
    }
    // Every voxel observed: the nearest fill is the clip itself.
    assert!(
        rows[2].split(',').nth(3).unwrap().starts_with("100"),
        "{csv}"
    );
    eprintln!("video end to end: {:.1} s", start.elapsed().as_secs_f64());
}
