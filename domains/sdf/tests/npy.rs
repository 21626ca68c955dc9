//! The `.npy` loader on good and malformed files.

use std::path::Path;

use pixel_transformer::{Error, SpatialSignal};
use pixel_transformer_sdf::load_npy;
use pixel_transformer_sdf::npy::encode_npy;

/// A `.npy` file with the given header dict and data bytes (format 1.0).
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Asserts a Malformed error naming the file and containing `needle`.
fn assert_malformed(path: &Path, needle: &str) {
    match load_npy(path) {
        Err(Error::Malformed { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!(
            "{}: expected a Malformed error, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn float32_and_float64_grids_load_with_x_fastest() {
    let dir = tempfile::tempdir().unwrap();
    // Shape (D, H, W) = (2, 3, 4): value = 100 z + 10 y + x.
    let values: Vec<f32> = (0..24)
        .map(|i| (100 * (i / 12) + 10 * (i / 4 % 3) + i % 4) as f32)
        .collect();
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }";
    let g = load_npy(&write(dir.path(), "a.npy", &npy(dict, &f32_bytes(&values)))).unwrap();
    assert_eq!(g.shape(), [4, 3, 2]);
    assert_eq!(g.at(3, 2, 1), 123.0);
    let f64_data: Vec<u8> = values
        .iter()
        .flat_map(|&v| (v as f64).to_le_bytes())
        .collect();
    let dict64 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }";
    let g64 = load_npy(&write(dir.path(), "b.npy", &npy(dict64, &f64_data))).unwrap();
    assert_eq!(g64, g);
    // Our own encoder round-trips.
    let back = load_npy(&write(dir.path(), "c.npy", &encode_npy(&g))).unwrap();
    assert_eq!(back, g);
    assert_eq!(back.value_at(back.position(1, 1, 0)), [11.0]);
}

#[test]
fn malformed_files_are_typed_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = f32_bytes(&[0.5; 8]);
    let cube = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic.npy", b"PK\x03\x04 not numpy".to_vec(), "magic"),
        ("empty.npy", Vec::new(), "magic"),
        (
            "int.npy",
            npy(
                "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2, 2), }",
                &ok,
            ),
            "dtype <i4",
        ),
        (
            "bigendian.npy",
            npy(
                "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2, 2), }",
                &ok,
            ),
            "dtype >f4",
        ),
        (
            "rank2.npy",
            npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }",
                &ok,
            ),
            "rank 3",
        ),
        (
            "rank4.npy",
            npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2, 2), }",
                &ok,
            ),
            "rank 3",
        ),
        (
            "fortran.npy",
            npy(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2, 2), }",
                &ok,
            ),
            "Fortran",
        ),
        ("truncated.npy", npy(cube, &ok[..30]), "truncated"),
        (
            "extra.npy",
            npy(cube, &[ok.clone(), vec![0; 4]].concat()),
            "needs 32 data bytes",
        ),
        (
            "nan.npy",
            npy(
                cube,
                &f32_bytes(&[0.5, 0.5, f32::NAN, 0.5, 0.5, 0.5, 0.5, 0.5]),
            ),
            "not finite",
        ),
        (
            "huge.npy",
            npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }",
                &ok,
            ),
            "outside 2..=256",
        ),
        (
            "noshape.npy",
            npy("{'descr': '<f4', 'fortran_order': False, }", &ok),
            "'shape'",
        ),
        (
            "version9.npy",
            b"\x93NUMPY\x09\x00\x10\x00{}".to_vec(),
            "version 9",
        ),
    ];
    for (name, bytes, needle) in cases {
        assert_malformed(&write(d, name, &bytes), needle);
    }
    // A header length that runs past the end of the file.
    let mut long = npy(cube, &ok);
    long[8..10].copy_from_slice(&60000u16.to_le_bytes());
    assert_malformed(&write(d, "longheader.npy", &long), "does not fit");
    // A missing file is an I/O error naming it.
    let missing = d.join("missing.npy");
    assert!(matches!(load_npy(&missing), Err(Error::Io { path, .. }) if path == missing));
}
