//! PSNR, SSIM and bits per dimension on cases with known answers.

use pixel_transformer::{BinnedMixture, OutputDistribution};
use pixel_transformer_image::metrics::{bits_per_dim, psnr, ssim, LEVELS, PSNR_MAX};
use pixel_transformer_image::Image;

fn image<const V: usize>(w: usize, h: usize, f: impl Fn(usize, usize, usize) -> f32) -> Image<V> {
    let pixels = (0..w * h)
        .map(|i| std::array::from_fn(|c| f(i % w, i / w, c)))
        .collect();
    Image::new(w, h, pixels).unwrap()
}

/// A textured grey test pattern and a darker, noisier version of it.
fn grey_pair() -> (Image<1>, Image<1>) {
    let base = |x: usize, y: usize| ((3 * x + 5 * y) % 7) as f32 / 6.0;
    let a = image(20, 16, |x, y, _| base(x, y));
    let b = image(20, 16, |x, y, _| {
        0.7 * base(x, y) + 0.2 + 0.1 * ((x * y) % 3) as f32 - 0.1
    });
    (a, b)
}

#[test]
fn ssim_of_identical_images_is_one_and_it_is_symmetric() {
    let (a, b) = grey_pair();
    assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    let (ab, ba) = (ssim(&a, &b).unwrap(), ssim(&b, &a).unwrap());
    assert!((ab - ba).abs() < 1e-12, "{ab} vs {ba}");
    assert!(ab < 1.0);
}

#[test]
fn a_constant_shift_lowers_ssim_by_the_luminance_term() {
    // Two constant images a and b: no variance, so SSIM is exactly the
    // luminance term (2ab + C1) / (a² + b² + C1) with C1 = 0.01².
    let c1 = 1e-4;
    let (x, y) = (0.5f64, 0.6f64);
    let a = image::<1>(16, 16, |_, _, _| x as f32);
    let b = image::<1>(16, 16, |_, _, _| y as f32);
    let expected = (2.0 * x * y + c1) / (x * x + y * y + c1);
    assert!((ssim(&a, &b).unwrap() - expected).abs() < 1e-6);
    // Shifting a textured image: less similar the larger the shift.
    let (t, _) = grey_pair();
    let shifted = |d: f32| image::<1>(20, 16, |x, y, _| t.pixel(x, y)[0] * 0.8 + d);
    let s0 = ssim(&shifted(0.0), &shifted(0.0)).unwrap();
    let s1 = ssim(&shifted(0.0), &shifted(0.05)).unwrap();
    let s2 = ssim(&shifted(0.0), &shifted(0.15)).unwrap();
    assert!(s0 > s1 && s1 > s2, "{s0} {s1} {s2}");
}

#[test]
fn inverting_the_contrast_makes_ssim_negative() {
    let (a, _) = grey_pair();
    let inverted = image::<1>(20, 16, |x, y, _| 1.0 - a.pixel(x, y)[0]);
    assert!(ssim(&a, &inverted).unwrap() < 0.0);
}

#[test]
fn ssim_matches_scikit_image() {
    // Reference values from scikit-image 0.26: structural_similarity(a, b,
    // data_range=1, gaussian_weights=True, sigma=1.5,
    // use_sample_covariance=False[, channel_axis=2]) on the same patterns
    // (computed in float64 from the float32 pixel values).
    let (a, b) = grey_pair();
    let grey = ssim(&a, &b).unwrap();
    assert!((grey - 0.902_130_478_089_255_4).abs() < 1e-6, "{grey}");
    assert!((psnr(&a, &b).unwrap() - 17.755_802_706_181_914).abs() < 1e-4);

    let c = image::<3>(16, 16, |x, y, k| ((x + 2 * y + 3 * k) % 5) as f32 / 4.0);
    let d = image::<3>(16, 16, |x, y, k| {
        0.5 * (((x + 2 * y + 3 * k) % 5) as f32 / 4.0)
            + 0.25 * (((x * x + y + k) % 9) as f32 / 8.0)
            + 0.1
    });
    let colour = ssim(&c, &d).unwrap();
    assert!((colour - 0.759_295_982_911_328_5).abs() < 1e-6, "{colour}");
}

#[test]
fn ssim_works_on_images_smaller_than_the_window_and_refuses_mismatches() {
    let a = image::<1>(6, 6, |x, y, _| ((x + y) % 3) as f32 / 2.0);
    assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    let b = image::<1>(6, 7, |_, _, _| 0.0);
    assert!(ssim(&a, &b).is_err());
}

#[test]
fn psnr_is_the_log_of_the_mean_squared_error() {
    let a = image::<3>(8, 8, |_, _, _| 0.2);
    // One channel of one pixel off by 0.8: MSE = 0.64 / 192.
    let mut pixels = a.pixels().to_vec();
    pixels[10][1] = 1.0;
    let b = Image::new(8, 8, pixels).unwrap();
    let expected = -10.0 * (0.64f64 / 192.0).log10();
    assert!((psnr(&a, &b).unwrap() - expected).abs() < 1e-4);
    assert_eq!(psnr(&b, &b).unwrap(), PSNR_MAX);
}

#[test]
fn bits_per_dim_of_a_known_gaussian() {
    // A one-bin mixture is a plain Gaussian; parameters: logit, offset, log-variance.
    let floor = 1e-4;
    let d = BinnedMixture::gaussian(1, floor);
    let (mu, sigma) = (0.5f32, 0.1f32);
    let params = [0.0, mu, (sigma * sigma - floor * floor).ln()];
    // At the mean: density 1 / (σ √(2π)), so bits = log2(255 σ √(2π)).
    let at_mean = bits_per_dim(
        OutputDistribution::<1>::log_prob(&d, &params, &[mu]) as f64,
        1,
    );
    let expected = (255.0 * 0.1 * (2.0 * std::f64::consts::PI).sqrt()).log2();
    assert!((at_mean - expected).abs() < 1e-4, "{at_mean} vs {expected}");
    // The convention gives a probability over the 256 levels: well inside
    // [0, 1] the level probabilities 2^(−bits) sum to one.
    let total: f64 = (0..LEVELS)
        .map(|k| {
            let v = k as f32 / (LEVELS - 1) as f32;
            let lp = OutputDistribution::<1>::log_prob(&d, &params, &[v]) as f64;
            2f64.powf(-bits_per_dim(lp, 1))
        })
        .sum();
    assert!((total - 1.0).abs() < 1e-3, "{total}");
}
