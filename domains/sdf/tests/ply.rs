//! PLY files: written with ply-rs, read back with ply-rs and with a small
//! independent parser (below), in binary and ASCII.

use std::collections::HashMap;
use std::path::Path;

use pixel_transformer_sdf::ply::{sdf_colour, write_mesh, write_points, PlyFormat};
use pixel_transformer_sdf::{marching_cubes, Family, SdfGrid};
use ply_rs::parser::Parser;
use ply_rs::ply::{DefaultElement, Property};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What the independent parser found: element counts, and the vertex
/// positions and face index lists.
struct Parsed {
    counts: HashMap<String, usize>,
    positions: Vec<[f32; 3]>,
    faces: Vec<Vec<u32>>,
}

/// A minimal PLY reader written from the format description, supporting
/// exactly what a viewer needs for these files: `float`/`uchar` vertex
/// properties and a `uchar`/`int` face list, ASCII or binary little-endian.
fn parse_independently(bytes: &[u8]) -> Parsed {
    let end = b"end_header\n";
    let header_end = bytes
        .windows(end.len())
        .position(|w| w == end)
        .expect("a header")
        + end.len();
    let header = std::str::from_utf8(&bytes[..header_end]).unwrap();
    let mut lines = header.lines();
    assert_eq!(lines.next(), Some("ply"));
    let mut ascii = false;
    // (name, count, [(property, type or "list")]) in file order.
    type Element = (String, usize, Vec<(String, String)>);
    let mut elements: Vec<Element> = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["format", f, "1.0"] => ascii = *f == "ascii",
            ["element", name, n] => elements.push((name.to_string(), n.parse().unwrap(), vec![])),
            ["property", "list", count, item, name] => {
                assert_eq!((*count, *item), ("uchar", "int"));
                elements
                    .last_mut()
                    .unwrap()
                    .2
                    .push((name.to_string(), "list".into()));
            }
            ["property", ty, name] => elements
                .last_mut()
                .unwrap()
                .2
                .push((name.to_string(), ty.to_string())),
            _ => {}
        }
    }
    let body = &bytes[header_end..];
    let mut words = std::str::from_utf8(body)
        .ok()
        .filter(|_| ascii)
        .map(|t| t.split_whitespace());
    let mut at = 0usize;
    let mut take = |n: usize| {
        let s = &body[at..at + n];
        at += n;
        s
    };
    let mut parsed = Parsed {
        counts: HashMap::new(),
        positions: Vec::new(),
        faces: Vec::new(),
    };
    for (name, count, props) in &elements {
        parsed.counts.insert(name.clone(), *count);
        for _ in 0..*count {
            let mut position = [0.0f32; 3];
            for (prop, ty) in props {
                let mut number = |ty: &str| -> f64 {
                    if let Some(w) = words.as_mut() {
                        return w.next().unwrap().parse().unwrap();
                    }
                    match ty {
                        "float" => f32::from_le_bytes(take(4).try_into().unwrap()) as f64,
                        "int" => i32::from_le_bytes(take(4).try_into().unwrap()) as f64,
                        "uchar" => take(1)[0] as f64,
                        other => panic!("unexpected type {other}"),
                    }
                };
                if ty == "list" {
                    let n = number("uchar") as usize;
                    parsed
                        .faces
                        .push((0..n).map(|_| number("int") as u32).collect());
                } else {
                    let v = number(ty);
                    if let Some(k) = ["x", "y", "z"].iter().position(|a| a == prop) {
                        position[k] = v as f32;
                    }
                }
            }
            if name == "vertex" {
                parsed.positions.push(position);
            }
        }
    }
    match words.as_mut() {
        Some(w) => assert!(w.next().is_none(), "trailing values"),
        None => assert_eq!(at, body.len(), "trailing bytes"),
    }
    parsed
}

fn read_with_ply_rs(path: &Path) -> ply_rs::ply::Ply<DefaultElement> {
    let mut f = std::fs::File::open(path).unwrap();
    Parser::<DefaultElement>::new().read_ply(&mut f).unwrap()
}

#[test]
fn meshes_read_back_with_the_same_counts_in_two_parsers() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let chair = Family::Chairs.draw(&mut rng);
    let grid = SdfGrid::from_signal(&chair, [40, 40, 40]).unwrap();
    let mesh = marching_cubes(&grid, 0.0);
    assert!(mesh.triangles.len() > 500);
    let dir = tempfile::tempdir().unwrap();
    let colours: Vec<[u8; 3]> = (0..mesh.positions.len())
        .map(|i| [i as u8, 7, 200])
        .collect();
    for (format, colours) in [
        (PlyFormat::BinaryLittleEndian, None),
        (PlyFormat::Ascii, None),
        (PlyFormat::BinaryLittleEndian, Some(&colours[..])),
    ] {
        let path = dir.path().join("chair.ply");
        write_mesh(&path, &mesh, colours, format).unwrap();
        let ply = read_with_ply_rs(&path);
        assert_eq!(ply.payload["vertex"].len(), mesh.positions.len());
        assert_eq!(ply.payload["face"].len(), mesh.triangles.len());
        let v = &ply.payload["vertex"][5];
        assert_eq!(v["x"], Property::Float(mesh.positions[5][0]));
        assert!(v.contains_key("nx"));
        assert_eq!(v.contains_key("red"), colours.is_some());
        assert_eq!(
            ply.payload["face"][3]["vertex_indices"],
            Property::ListInt(mesh.triangles[3].iter().map(|&i| i as i32).collect())
        );
        let bytes = std::fs::read(&path).unwrap();
        let header = String::from_utf8_lossy(&bytes[..200]).to_string();
        let expected = match format {
            PlyFormat::Ascii => "format ascii 1.0",
            PlyFormat::BinaryLittleEndian => "format binary_little_endian 1.0",
        };
        assert!(header.contains(expected), "{header}");
        let other = parse_independently(&bytes);
        assert_eq!(other.counts["vertex"], mesh.positions.len());
        assert_eq!(other.counts["face"], mesh.triangles.len());
        assert_eq!(other.faces.len(), mesh.triangles.len());
        assert!(other.faces.iter().all(|f| f.len() == 3));
        assert_eq!(other.faces[10], mesh.triangles[10].to_vec());
        for (a, b) in other.positions.iter().zip(&mesh.positions) {
            for k in 0..3 {
                assert!((a[k] - b[k]).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn point_clouds_carry_colours_by_signed_distance() {
    let positions = vec![[0.1, 0.2, 0.3], [-0.5, 0.0, 0.9], [0.0, 0.0, 0.0]];
    let values = [0.3f32, -0.3, 0.0];
    let colours: Vec<[u8; 3]> = values.iter().map(|&v| sdf_colour(v, 0.3)).collect();
    assert_eq!(colours, vec![[255, 0, 0], [0, 0, 255], [255, 255, 255]]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.ply");
    write_points(&path, &positions, &colours, PlyFormat::Ascii).unwrap();
    let ply = read_with_ply_rs(&path);
    assert_eq!(ply.payload["vertex"].len(), 3);
    assert!(!ply.payload.contains_key("face"));
    assert_eq!(ply.payload["vertex"][1]["blue"], Property::UChar(255));
    let other = parse_independently(&std::fs::read(&path).unwrap());
    assert_eq!(other.positions, positions);
    // Mismatched lengths are refused, not written.
    assert!(write_points(&path, &positions, &colours[..2], PlyFormat::Ascii).is_err());
}
