//! The `serve` page in a real browser: headless Chromium driven through
//! chromedriver (WebDriver). For each kind of domain: the page loads, a
//! click observes a pixel (or adds a point) and the mean redraws (the
//! canvas's pixels change), test signals load, random observations are
//! added, "sample" draws samples; screenshots of each page are saved.
//!
//! Where chromedriver is not installed the test says so loudly and skips;
//! in CI (`CI` set) that fails instead, since `.ci/run` installs it.

mod support;

use std::path::PathBuf;

use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::domain::Domain;
use pixel_transformer::{BinnedMixture, Model, Preset};
use pixel_transformer_image::{DatasetKind, ImageConfig, ImageDomain};
use pixel_transformer_polynomial::PolynomialDomain;
use pixel_transformer_sdf::SdfDomain;
use pixel_transformer_video::VideoDomain;
use serde_json::{json, Value};
use support::webdriver::Browser;

/// Where screenshots go: `$SERVE_SCREENSHOTS`, else `target/tmp/serve-screenshots`.
fn screenshots() -> PathBuf {
    std::env::var_os("SERVE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-screenshots"))
}

fn shoot(browser: &Browser, name: &str) {
    let path = screenshots().join(format!("{name}.png"));
    browser.screenshot(&path);
    eprintln!("screenshot: {}", path.display());
}

/// A hash of a canvas's pixels, to tell whether it was redrawn differently.
fn pixels(browser: &Browser, id: &str) -> Value {
    browser.run(&format!(
        "const c = document.getElementById('{id}');
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         let h = 2166136261;
         for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i], 16777619) >>> 0;
         return h;"
    ))
}

fn state(browser: &Browser, expression: &str) -> Value {
    browser.run(&format!("return pixelTransformer.{expression};"))
}

/// Waits until the page has answered more than `count` predictions and has
/// none in flight.
fn wait_predicted(browser: &Browser, count: &Value) {
    browser.wait_for(
        &format!("return pixelTransformer.predictions > {count} && !pixelTransformer.busy;"),
        60,
    );
}

/// Opens the page and waits for its first prediction.
fn open(browser: &Browser, url: &str) {
    browser.goto(url);
    browser.wait_for(
        "return document.body.dataset.ready === '1' && typeof pixelTransformer === 'object' \
         && pixelTransformer.predictions >= 1 && !pixelTransformer.busy;",
        60,
    );
    let status = browser.run("return document.getElementById('status').className");
    assert_ne!(status, json!("error"), "{}", state(browser, "info.domain"));
}

/// Sets an input's value as a person typing it would.
fn set(browser: &Browser, id: &str, value: &str) {
    browser.run(&format!(
        "const e = document.getElementById('{id}'); e.value = '{value}';
         e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'));"
    ));
}

/// Draws `n` samples with the page's controls and checks they arrive,
/// different from each other.
fn sample(browser: &Browser, n: usize) {
    let before = state(browser, "drawn").as_u64().unwrap();
    set(browser, "sample-count", &n.to_string());
    browser.click("#sample");
    browser.wait_for(
        &format!(
            "return pixelTransformer.drawn >= {} && !document.getElementById('sample').disabled;",
            before + n as u64
        ),
        120,
    );
    assert_eq!(state(browser, "samples.length"), json!(n));
    if n > 1 {
        let differ = state(
            browser,
            "samples.some((s) => JSON.stringify(s) !== JSON.stringify(pixelTransformer.samples[0]))",
        );
        assert_eq!(differ, json!(true), "the samples are all alike");
    }
}

/// Loads test signal `seed` and observes `n` random cells of it.
fn reveal_random(browser: &Browser, seed: u64, n: usize) {
    set(browser, "signal-seed", &seed.to_string());
    browser.click("#load-signal");
    browser.wait_for("return pixelTransformer.signal !== null;", 30);
    let count = state(browser, "observed.length").as_u64().unwrap();
    let predicted = state(browser, "predictions");
    set(browser, "random-count", &n.to_string());
    browser.click("#random");
    wait_predicted(browser, &predicted);
    assert_eq!(state(browser, "observed.length"), json!(count + n as u64));
}

/// An image page (P = 2): a click paints a pixel and changes the mean; a
/// test image's pixels are revealed; samples are drawn.
fn image_page(browser: &Browser, url: &str, colour: Option<[u8; 3]>, name: &str) {
    open(browser, url);
    let mean = pixels(browser, "mean");
    if let Some([r, g, b]) = colour {
        set(browser, "colour", &format!("#{r:02x}{g:02x}{b:02x}"));
    }
    let predicted = state(browser, "predictions");
    // The canvases are 280 CSS pixels wide: this is cell (11, 10) of 28.
    let (w, h) = (
        state(browser, "info.grid[0]"),
        state(browser, "info.grid[1]"),
    );
    let (w, h) = (w.as_i64().unwrap(), h.as_i64().unwrap());
    let (i, j) = (w * 11 / 28, h * 10 / 28);
    let at = |k: i64, n: i64| ((k as f64 + 0.5) * 280.0 / n as f64 - 140.0).round() as i64;
    browser.click_at("#observed", at(i, w), at(j, h));
    wait_predicted(browser, &predicted);
    assert_eq!(
        browser.run("return document.getElementById('count').textContent"),
        json!("1")
    );
    assert_ne!(pixels(browser, "mean"), mean, "the mean did not change");
    // The observed pixel shows the painted value (white, or the colour).
    let shown = browser.run(&format!(
        "return Array.from(document.getElementById('observed').getContext('2d')
           .getImageData({i}, {j}, 1, 1).data);"
    ));
    let expected = colour.unwrap_or([255, 255, 255]);
    assert_eq!(shown, json!([expected[0], expected[1], expected[2], 255]));
    // Reveal pixels of a test signal; the mean changes again.
    let mean = pixels(browser, "mean");
    reveal_random(browser, 0, 63);
    assert_ne!(pixels(browser, "mean"), mean);
    browser.click("#show-hidden");
    sample(browser, 4);
    shoot(browser, name);
    // A picture of the user's own (here: that screenshot) becomes the signal.
    let picture = screenshots().join(format!("{name}.png"));
    browser.run("pixelTransformer.signal = null;");
    browser.upload("#png", &picture);
    browser.wait_for("return pixelTransformer.signal !== null;", 30);
    let cells = w * h * state(browser, "info.values").as_i64().unwrap();
    assert_eq!(state(browser, "signal.length"), json!(cells));
    let status = browser.run("return document.getElementById('status').textContent;");
    assert!(status.as_str().unwrap().contains("loaded as"), "{status}");
    // Undo takes the last observation back.
    let predicted = state(browser, "predictions");
    browser.click("#undo");
    wait_predicted(browser, &predicted);
    assert_eq!(state(browser, "observed.length"), json!(63));
}

/// The 1-D page: clicks add points, the band redraws and narrows there,
/// the exact posterior is drawn, samples are drawn.
fn polynomial_page(browser: &Browser, url: &str) {
    open(browser, url);
    let plot = pixels(browser, "plot");
    let prior_std = state(browser, "std.map((s) => s[0])");
    for (x, y) in [(-250, -40), (-60, 70), (180, -10)] {
        let predicted = state(browser, "predictions");
        browser.click_at("#plot", x, y);
        wait_predicted(browser, &predicted);
    }
    assert_eq!(state(browser, "observed.length"), json!(3));
    assert_ne!(pixels(browser, "plot"), plot, "the plot was not redrawn");
    // The band narrows where a point was added.
    let x = state(browser, "observed[1].position[0]").as_f64().unwrap();
    let n = prior_std.as_array().unwrap().len();
    let k = (((x + 1.0) / 2.0 * n as f64) as usize).min(n - 1);
    let std_now = state(browser, &format!("std[{k}][0]")).as_f64().unwrap();
    let std_before = prior_std[k].as_f64().unwrap();
    assert!(
        std_now < 0.5 * std_before,
        "std at x = {x}: {std_before} → {std_now}"
    );
    assert_eq!(state(browser, "posterior.mean.length"), json!(n));
    // A test polynomial, a few of its points, and samples.
    browser.click("#clear");
    browser.wait_for(
        "return pixelTransformer.observed.length === 0 && !pixelTransformer.busy;",
        30,
    );
    browser.click("#show-hidden");
    reveal_random(browser, 2, 6);
    let plot = pixels(browser, "plot");
    sample(browser, 3);
    assert_ne!(pixels(browser, "plot"), plot, "the samples were not drawn");
    shoot(browser, "polynomial");
}

/// A volume page (P = 3): a slice with a slider; moving it redraws the mean.
fn volume_page(browser: &Browser, url: &str, observe: usize, name: &str) {
    open(browser, url);
    assert_eq!(state(browser, "slice.length"), json!(1));
    reveal_random(browser, 1, observe);
    let mean = pixels(browser, "mean");
    let predicted = state(browser, "predictions");
    let n = state(browser, "info.grid[2]").as_u64().unwrap();
    set(browser, "slice-2", &(n / 4).to_string());
    wait_predicted(browser, &predicted);
    assert_eq!(state(browser, "slice[0]"), json!(n / 4));
    assert_ne!(
        pixels(browser, "mean"),
        mean,
        "another slice, the same mean"
    );
    // Back to the middle slice, for the picture.
    let predicted = state(browser, "predictions");
    set(browser, "slice-2", &(n / 2).to_string());
    wait_predicted(browser, &predicted);
    browser.click("#show-hidden");
    sample(browser, 2);
    shoot(browser, name);
}

#[test]
fn the_page_works_in_a_real_browser() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let server = support::serve_pretrained::<2, 1, ImageDomain<1>>(support::MNIST);
    image_page(&browser, &server.url(), None, "image-mnist");
    server.stop().unwrap();

    // Colour (V = 3), with an untrained tiny model: the page's colour
    // picker and RGB drawing, not the model, are under test.
    let domain = ImageDomain::<3>::from_config(&ImageConfig::of(DatasetKind::Shapes)).unwrap();
    let model = Model::new(
        Preset::Tiny.config(),
        BinnedMixture::gaussian(3, 1e-3),
        0,
        &Cpu::default(),
    )
    .unwrap();
    let options = support::test_options(Default::default());
    let server = support::start(domain, model, options);
    image_page(
        &browser,
        &server.url(),
        Some([200, 40, 0]),
        "image-colour-untrained",
    );
    server.stop().unwrap();

    let server =
        support::serve_pretrained::<1, 1, PolynomialDomain>("domains/polynomial/pretrained");
    polynomial_page(&browser, &server.url());
    server.stop().unwrap();

    let server = support::serve_pretrained::<3, 1, SdfDomain>("domains/sdf/pretrained/chairs");
    volume_page(&browser, &server.url(), 400, "sdf");
    server.stop().unwrap();

    let server =
        support::serve_pretrained::<3, 1, VideoDomain<1>>("domains/video/pretrained/moving-mnist");
    volume_page(&browser, &server.url(), 1024, "video");
    server.stop().unwrap();
}
