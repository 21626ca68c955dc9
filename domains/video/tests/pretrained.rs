//! The shipped Moving MNIST checkpoint loads with no other arguments and
//! beats the nearest-neighbour fill, as the book's video chapter reports.

use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::train::checkpoint;
use pixel_transformer::{BinnedMixture, Domain};
use pixel_transformer_video::{benchmark, VideoConfig, VideoDataset, VideoDomain, EVAL_OBSERVED};

#[test]
fn the_shipped_checkpoint_beats_the_nearest_neighbour_fill() {
    let domain = VideoDomain::<1>::new(VideoConfig {
        dataset: VideoDataset::MovingMnist,
        data: None,
        size: 32,
        frames: 16,
        digits: 2,
        grey: false,
        channels: Some(1),
    })
    .unwrap();
    let path = domain
        .pretrained_checkpoint()
        .expect("the Moving MNIST checkpoint ships");
    let loaded = checkpoint::load::<3, 1, Cpu, BinnedMixture>(
        &path,
        VideoDomain::<1>::NAME,
        &Cpu::default(),
    )
    .unwrap();
    // 10 of the benchmark's 100 held-out clips (the full benchmark: the
    // book's video chapter).
    let rows = benchmark(&domain, &loaded.model, &EVAL_OBSERVED, 10, 0).unwrap();
    assert_eq!(rows.len(), EVAL_OBSERVED.len());
    for row in rows {
        assert_eq!(row.clips, 10);
        assert!(row.model_psnr > row.nearest_psnr + 0.3, "{row:?}");
    }
}
