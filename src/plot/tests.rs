use super::canvas::*;
use super::function_grid::*;
use super::line_chart::*;
use super::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty directory under the system temp dir (no tempfile crate here).
fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "pixel-transformer-plot-{}-{name}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{path:?} is not a PNG"
    );
}

fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("<svg"), "{path:?} is not an SVG");
}

/// Only the requested file is left behind: no temporary files.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected);
}

fn poly(x: f64) -> f64 {
    0.5 + x - 1.5 * x * x + 0.8 * x.powi(5)
}

fn panel(title: &str, n_obs: usize) -> FunctionPanel {
    let xs: Vec<f64> = (0..=200).map(|i| -1.0 + i as f64 / 100.0).collect();
    let truth: Vec<f64> = xs.iter().map(|&x| poly(x)).collect();
    let spread = 1.0 / (1.0 + n_obs as f64);
    let mean: Vec<f64> = xs
        .iter()
        .map(|&x| poly(x) + spread * (3.0 * x).sin())
        .collect();
    let std: Vec<f64> = xs.iter().map(|&x| spread * (1.0 + x * x)).collect();
    let samples = (0..3)
        .map(|k| {
            xs.iter()
                .zip(&mean)
                .map(|(&x, &m)| m + spread * ((k as f64 + 1.0) * 4.0 * x).cos())
                .collect()
        })
        .collect();
    let reference_mean = Some(mean.iter().map(|m| m + 0.05).collect());
    let observed = (0..n_obs)
        .map(|i| {
            let x = -0.9 + 1.8 * i as f64 / n_obs.max(2) as f64;
            (x, poly(x))
        })
        .collect();
    FunctionPanel {
        title: title.into(),
        xs,
        truth: Some(truth),
        mean,
        std,
        samples,
        reference_mean,
        observed,
    }
}

#[test]
fn function_grid_png_and_svg() {
    let dir = scratch_dir("grid");
    let mut panels: Vec<FunctionPanel> = [1, 2, 4, 8]
        .iter()
        .map(|&n| panel(&format!("|S| = {n}"), n))
        .collect();
    // A wild sample and some NaNs must neither panic nor squash the y range.
    panels[0].samples[0][50] = 1e6;
    panels[1].mean[10] = f64::NAN;
    panels[1].samples[1][20] = f64::INFINITY;
    let png = dir.join("grid.png");
    let svg = dir.join("grid.svg");
    plot_function_grid(&png, &panels, 2).unwrap();
    plot_function_grid(&svg, &panels, 3).unwrap();
    assert_png(&png);
    assert_svg(&svg);
    assert_only(&dir, &["grid.png", "grid.svg"]);
    // Overwriting an existing file works.
    plot_function_grid(&png, &panels[..1], 1).unwrap();
    assert_png(&png);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn minimal_panel_without_optional_parts() {
    let dir = scratch_dir("minimal");
    let panels = [FunctionPanel {
        title: "flat".into(),
        xs: vec![0.0, 1.0],
        mean: vec![2.0, 2.0],
        std: vec![0.0, 0.0],
        ..Default::default()
    }];
    let png = dir.join("flat.PNG");
    plot_function_grid(&png, &panels, 4).unwrap();
    assert_png(&png);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn function_grid_rejects_bad_input() {
    let dir = scratch_dir("grid-errors");
    let png = dir.join("bad.png");
    let good = panel("ok", 3);

    let e = plot_function_grid(&png, &[], 2).unwrap_err();
    assert!(matches!(e, PlotError::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("bad.png"), "{e}");

    assert!(plot_function_grid(&png, std::slice::from_ref(&good), 0).is_err());

    let mut short = good.clone();
    short.std.pop();
    let e = plot_function_grid(&png, &[good.clone(), short], 2).unwrap_err();
    assert!(e.to_string().contains("std"), "{e}");

    let mut short_sample = good.clone();
    short_sample.samples[2].truncate(5);
    assert!(plot_function_grid(&png, &[short_sample], 2).is_err());

    let mut bad_truth = good.clone();
    bad_truth.truth = Some(vec![0.0]);
    assert!(plot_function_grid(&png, &[bad_truth], 2).is_err());

    let mut all_nan = good.clone();
    all_nan.mean.iter_mut().for_each(|m| *m = f64::NAN);
    assert!(plot_function_grid(&png, &[all_nan], 2).is_err());

    let empty = FunctionPanel::default();
    assert!(plot_function_grid(&png, &[empty], 2).is_err());

    let e = plot_function_grid(&dir.join("grid.jpg"), std::slice::from_ref(&good), 1).unwrap_err();
    assert!(matches!(e, PlotError::UnsupportedFormat { .. }), "{e}");
    assert!(e.to_string().contains("grid.jpg"), "{e}");
    assert!(plot_function_grid(&dir.join("noext"), &[good], 1).is_err());

    assert_only(&dir, &[]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_directories_are_created_and_unwritable_ones_name_the_file() {
    let dir = scratch_dir("missing");
    // A folder that does not exist yet is created (users pass fresh --out folders).
    let png = dir.join("no-such-dir").join("grid.png");
    plot_function_grid(&png, &[panel("x", 2)], 1).unwrap();
    assert!(png.exists());
    // A "folder" that is really a file cannot be created: the error names the target.
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let e = plot_function_grid(&blocker.join("grid.png"), &[panel("x", 2)], 1).unwrap_err();
    assert!(e.to_string().contains("grid.png"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn curves() -> LineChart {
    let loss: Vec<(f64, f64)> = (1..=500)
        .map(|i| (i as f64, 2.0 / (i as f64).sqrt() + 0.1))
        .collect();
    let mut noisy = loss.clone();
    noisy[100].1 = f64::NAN;
    noisy.iter_mut().for_each(|p| p.1 *= 1.2);
    let sizes: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    let metric = sizes.iter().map(|&s| (s, 1.5 - s.ln())).collect();
    LineChart {
        title: "Test chart".into(),
        x_label: "step".into(),
        y_label: "loss (nats)".into(),
        log_x: false,
        log_y: false,
        series: vec![
            Series {
                name: "train".into(),
                points: loss,
                dashed: false,
            },
            Series {
                name: "validation".into(),
                points: noisy,
                dashed: false,
            },
            Series {
                name: "metric".into(),
                points: metric,
                dashed: true,
            },
        ],
    }
}

#[test]
fn line_chart_png_and_svg_all_axis_kinds() {
    let dir = scratch_dir("lines");
    let mut names = Vec::new();
    for (log_x, log_y) in [(false, false), (true, false), (false, true), (true, true)] {
        let chart = LineChart {
            log_x,
            log_y,
            ..curves()
        };
        let stem = format!("lines-{log_x}-{log_y}");
        let png = dir.join(format!("{stem}.png"));
        let svg = dir.join(format!("{stem}.svg"));
        plot_lines(&png, &chart).unwrap();
        plot_lines(&svg, &chart).unwrap();
        assert_png(&png);
        assert_svg(&svg);
        names.push(format!("{stem}.png"));
        names.push(format!("{stem}.svg"));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_only(&dir, &names);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_axes_skip_non_positive_values() {
    let dir = scratch_dir("log");
    let chart = LineChart {
        title: "log".into(),
        log_x: true,
        log_y: true,
        series: vec![
            Series {
                name: "mixed".into(),
                points: vec![(0.0, 1.0), (1.0, -2.0), (2.0, 3.0), (4.0, 5.0)],
                dashed: false,
            },
            Series {
                name: "never positive".into(),
                points: vec![(1.0, -1.0), (2.0, 0.0)],
                dashed: true,
            },
        ],
        ..Default::default()
    };
    let png = dir.join("log.png");
    plot_lines(&png, &chart).unwrap();
    assert_png(&png);

    // Nothing drawable at all is an error.
    let nothing = LineChart {
        series: vec![chart.series[1].clone()],
        ..chart.clone()
    };
    let e = plot_lines(&dir.join("nothing.svg"), &nothing).unwrap_err();
    assert!(matches!(e, PlotError::InvalidInput { .. }), "{e}");
    assert_only(&dir, &["log.png"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn line_chart_rejects_bad_input() {
    let dir = scratch_dir("lines-errors");
    let empty = LineChart::default();
    assert!(plot_lines(&dir.join("a.png"), &empty).is_err());
    let nan_only = LineChart {
        series: vec![Series {
            name: "nan".into(),
            points: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
            dashed: false,
        }],
        ..Default::default()
    };
    assert!(plot_lines(&dir.join("b.svg"), &nan_only).is_err());
    let e = plot_lines(&dir.join("c.pdf"), &curves()).unwrap_err();
    assert!(matches!(e, PlotError::UnsupportedFormat { .. }));
    assert_only(&dir, &[]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn single_point_series_is_drawn() {
    let dir = scratch_dir("single");
    let chart = LineChart {
        series: vec![Series {
            name: "one".into(),
            points: vec![(3.0, 3.0)],
            dashed: false,
        }],
        ..Default::default()
    };
    plot_lines(&dir.join("one.svg"), &chart).unwrap();
    assert_svg(&dir.join("one.svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn temp_path_keeps_extension_and_directory() {
    let tmp = temp_path(Path::new("out/fig.png")).unwrap();
    assert_eq!(tmp, Path::new("out/.fig.png.tmp.png"));
    assert!(temp_path(Path::new("/")).is_err());
}

#[test]
fn clipping_breaks_lines_at_the_range() {
    let xs = [0.0, 1.0, 2.0, 3.0, 4.0];
    let ys = [0.0, 2.0, 0.0, f64::NAN, 0.5];
    let lines = clipped_polylines(&xs, &ys, -1.0, 1.0);
    assert_eq!(
        lines,
        vec![vec![(0.0, 0.0), (0.5, 1.0)], vec![(1.5, 1.0), (2.0, 0.0)]]
    );
    // Fully inside: one unbroken line.
    let lines = clipped_polylines(&xs[..3], &[0.1, 0.2, 0.3], -1.0, 1.0);
    assert_eq!(lines, vec![vec![(0.0, 0.1), (1.0, 0.2), (2.0, 0.3)]]);
    // Fully outside: nothing.
    assert!(clipped_polylines(&xs[..2], &[5.0, 6.0], -1.0, 1.0).is_empty());
}

#[test]
fn shared_range_ignores_wild_samples() {
    let mut p = panel("p", 3);
    p.samples[0][0] = 1e9;
    let (lo, hi) = shared_y_range(&[p]).unwrap();
    assert!(lo > -10.0 && hi < 10.0, "{lo}..{hi}");
}

#[test]
fn tick_labels_are_compact() {
    assert_eq!(format_tick(0.5, 2.0), "0.5");
    assert_eq!(format_tick(2.0, 2.0), "2");
    assert_eq!(format_tick(0.0, 2.0), "0");
    assert_eq!(format_tick(1234.0, 1000.0), "1234");
    assert_eq!(format_tick(1e6, 1e6), "1.0e6");
    assert_eq!(format_log_tick(0.01, 2.0), "0.01");
    assert_eq!(format_log_tick(100.0, 2.0), "100");
    assert_eq!(format_log_tick(0.2, 2.0), "0.2");
    assert_eq!(format_log_tick(0.3, 2.0), "");
    assert_eq!(format_log_tick(0.2, 5.0), "");
    assert_eq!(format_log_tick(0.9999999999, 5.0), "1");
}
