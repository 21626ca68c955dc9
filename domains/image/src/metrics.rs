//! Image quality and likelihood measures of the evaluation: PSNR, SSIM and
//! bits per dimension.
//!
//! Values are in `[0, 1]` (the data range `L = 1`).
//!
//! **SSIM** is the standard one of Wang et al. (2004): an 11 × 11 Gaussian
//! window with σ = 1.5, `C1 = (0.01 L)²`, `C2 = (0.03 L)²`, population
//! (not sample) statistics, averaged over the positions where the window fits
//! inside the image ("valid" filtering). That is the same number as
//! scikit-image's `structural_similarity(a, b, data_range=1,
//! gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`, which
//! filters with reflection and then crops the window's half-width from every
//! border. Colour images get the mean of the per-channel SSIMs (as
//! scikit-image with `channel_axis`). Images smaller than the window use the
//! largest odd window that fits, with the same σ.
//!
//! **Bits per dimension**: the model's output is a density on the value
//! range `[0, 1]`; 8-bit data has 256 levels, `1/255` apart. The probability
//! of a level is taken as density × bin width, so one value costs
//! `−log2(p(v) / 255)` bits; a colour pixel's 3-D density is multiplied by
//! `(1/255)³` and the cost divided by its 3 dimensions.

use pixel_transformer::{Error, Result};

use crate::Image;

/// Side of the SSIM window, in pixels.
pub const SSIM_WINDOW: usize = 11;
/// Standard deviation of the SSIM window's Gaussian, in pixels.
pub const SSIM_SIGMA: f64 = 1.5;
/// Highest PSNR reported, in dB: the value for identical images (whose
/// PSNR is infinite), so averages over images stay finite.
pub const PSNR_MAX: f64 = 100.0;
/// Levels of 8-bit data; values `k / 255` for `k = 0 … 255`.
pub const LEVELS: usize = 256;

fn same_size<const V: usize>(a: &Image<V>, b: &Image<V>) -> Result<()> {
    if (a.width(), a.height()) != (b.width(), b.height()) {
        return Err(Error::invalid(format!(
            "cannot compare a {}×{} image with a {}×{} one",
            a.width(),
            a.height(),
            b.width(),
            b.height()
        )));
    }
    Ok(())
}

/// Mean squared error over pixels and channels.
pub fn mse<const V: usize>(a: &Image<V>, b: &Image<V>) -> Result<f64> {
    same_size(a, b)?;
    let sum: f64 = a
        .pixels()
        .iter()
        .flatten()
        .zip(b.pixels().iter().flatten())
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    Ok(sum / (a.pixels().len() * V) as f64)
}

/// Peak signal-to-noise ratio in dB for the data range 1: `10 log10(1 / MSE)`,
/// capped at [`PSNR_MAX`].
pub fn psnr<const V: usize>(a: &Image<V>, b: &Image<V>) -> Result<f64> {
    let m = mse(a, b)?;
    Ok(if m > 0.0 {
        (-10.0 * m.log10()).min(PSNR_MAX)
    } else {
        PSNR_MAX
    })
}

/// The normalised 1-D Gaussian of the SSIM window for images of side `side`
/// (the 2-D window is its outer product).
fn window(side: usize) -> Vec<f64> {
    let n = SSIM_WINDOW.min(side);
    // An odd width keeps the window centred on a pixel.
    let n = if n % 2 == 0 { n - 1 } else { n };
    let half = (n / 2) as f64;
    let w: Vec<f64> = (0..n)
        .map(|i| (-(i as f64 - half).powi(2) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

/// Filters a `width × height` plane with the separable window, keeping only
/// the positions where the window fits ("valid"): `(width − n + 1) × (height − n + 1)`.
fn filter_valid(plane: &[f64], width: usize, height: usize, w: &[f64]) -> Vec<f64> {
    let n = w.len();
    let (ow, oh) = (width + 1 - n, height + 1 - n);
    // Rows first, then columns.
    let mut rows = vec![0.0; ow * height];
    for y in 0..height {
        for x in 0..ow {
            rows[y * ow + x] = (0..n).map(|k| w[k] * plane[y * width + x + k]).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..n).map(|k| w[k] * rows[(y + k) * ow + x]).sum();
        }
    }
    out
}

/// Structural similarity of two equally sized images (see the module notes
/// for the exact convention): 1 for identical images, symmetric, at most 1.
pub fn ssim<const V: usize>(a: &Image<V>, b: &Image<V>) -> Result<f64> {
    same_size(a, b)?;
    let (width, height) = (a.width(), a.height());
    let w = window(width.min(height));
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    for c in 0..V {
        let x: Vec<f64> = a.pixels().iter().map(|p| p[c] as f64).collect();
        let y: Vec<f64> = b.pixels().iter().map(|p| p[c] as f64).collect();
        let product =
            |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(u, v)| u * v).collect() };
        let filter = |p: &[f64]| filter_valid(p, width, height, &w);
        let (mx, my) = (filter(&x), filter(&y));
        let (xx, yy, xy) = (
            filter(&product(&x, &x)),
            filter(&product(&y, &y)),
            filter(&product(&x, &y)),
        );
        let map_sum: f64 = (0..mx.len())
            .map(|i| {
                let (ux, uy) = (mx[i], my[i]);
                let vx = xx[i] - ux * ux;
                let vy = yy[i] - uy * uy;
                let cov = xy[i] - ux * uy;
                ((2.0 * ux * uy + c1) * (2.0 * cov + c2))
                    / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
            })
            .sum();
        total += map_sum / mx.len() as f64;
    }
    Ok(total / V as f64)
}

/// Bits per dimension of one `V`-dimensional value whose log-density under
/// the model is `log_density` nats (see the module notes).
pub fn bits_per_dim(log_density: f64, value_dims: usize) -> f64 {
    let bin_width = 1.0 / (LEVELS - 1) as f64;
    -(log_density + value_dims as f64 * bin_width.ln())
        / (value_dims as f64 * std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(width: usize, height: usize, f: impl Fn(usize, usize) -> f32) -> Image<1> {
        let pixels = (0..width * height)
            .map(|i| [f(i % width, i / width)])
            .collect();
        Image::new(width, height, pixels).unwrap()
    }

    #[test]
    fn the_window_is_the_standard_gaussian() {
        let w = window(28);
        assert_eq!(w.len(), 11);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Centre over edge: exp(25 / (2 · 1.5²)).
        assert!((w[5] / w[0] - (25.0f64 / 4.5).exp()).abs() < 1e-9);
        // Small images shrink it to the largest odd width that fits.
        assert_eq!((window(8).len(), window(1).len()), (7, 1));
    }

    #[test]
    fn valid_filtering_averages_under_the_window() {
        // A constant plane stays constant; its output is (W − n + 1) × (H − n + 1).
        let w = window(28);
        let out = filter_valid(&vec![0.25; 20 * 15], 20, 15, &w);
        assert_eq!(out.len(), 10 * 5);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-12));
    }

    #[test]
    fn psnr_of_a_known_error() {
        let a = grey(4, 4, |_, _| 0.5);
        let b = grey(4, 4, |_, _| 0.6);
        // MSE = 0.01 → 20 dB.
        assert!((psnr(&a, &b).unwrap() - 20.0).abs() < 1e-4);
        assert_eq!(psnr(&a, &a).unwrap(), PSNR_MAX);
        assert!(psnr(&a, &grey(4, 5, |_, _| 0.5)).is_err());
    }

    #[test]
    fn bits_per_dim_of_a_uniform_density_is_eight() {
        // The uniform density on [0, 1] (log density 0) spreads over 256
        // levels of width 1/255: log2(255) bits, just under 8.
        assert!((bits_per_dim(0.0, 1) - 255f64.log2()).abs() < 1e-12);
        // Per dimension: a 3-D uniform density costs the same per channel.
        assert!((bits_per_dim(0.0, 3) - 255f64.log2()).abs() < 1e-12);
    }
}
