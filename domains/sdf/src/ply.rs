//! PLY export with `ply-rs`: meshes and coloured point clouds.
//!
//! Meshes carry positions, unit normals and optional RGB colours per vertex,
//! and faces as `vertex_indices` lists; binary little-endian by default
//! (compact, read by MeshLab, Blender, Open3D and CloudCompare), ASCII on request.

use std::path::Path;

use pixel_transformer::{io::write_atomic, Error, Result};
use ply_rs::ply::{
    Addable, DefaultElement, ElementDef, Encoding, Ply, Property, PropertyDef, PropertyType,
    ScalarType,
};
use ply_rs::writer::Writer;

use crate::Mesh;

/// How the body of a PLY file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlyFormat {
    /// Binary, little-endian (the default: about a third of the ASCII size).
    #[default]
    BinaryLittleEndian,
    /// Human-readable text.
    Ascii,
}

fn float(name: &str) -> PropertyDef {
    PropertyDef::new(name.to_string(), PropertyType::Scalar(ScalarType::Float))
}

fn uchar(name: &str) -> PropertyDef {
    PropertyDef::new(name.to_string(), PropertyType::Scalar(ScalarType::UChar))
}

/// Builds the `vertex` element: positions, then normals and colours if given.
fn vertices(
    positions: &[[f32; 3]],
    normals: Option<&[[f32; 3]]>,
    colours: Option<&[[u8; 3]]>,
) -> (ElementDef, Vec<DefaultElement>) {
    let mut def = ElementDef::new("vertex".to_string());
    for n in ["x", "y", "z"] {
        def.properties.add(float(n));
    }
    if normals.is_some() {
        for n in ["nx", "ny", "nz"] {
            def.properties.add(float(n));
        }
    }
    if colours.is_some() {
        for n in ["red", "green", "blue"] {
            def.properties.add(uchar(n));
        }
    }
    let rows = positions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut e = DefaultElement::new();
            for (k, n) in ["x", "y", "z"].iter().enumerate() {
                e.insert(n.to_string(), Property::Float(p[k]));
            }
            if let Some(normals) = normals {
                for (k, n) in ["nx", "ny", "nz"].iter().enumerate() {
                    e.insert(n.to_string(), Property::Float(normals[i][k]));
                }
            }
            if let Some(colours) = colours {
                for (k, n) in ["red", "green", "blue"].iter().enumerate() {
                    e.insert(n.to_string(), Property::UChar(colours[i][k]));
                }
            }
            e
        })
        .collect();
    (def, rows)
}

fn encode(mut ply: Ply<DefaultElement>, format: PlyFormat, path: &Path) -> Result<Vec<u8>> {
    ply.header.encoding = match format {
        PlyFormat::BinaryLittleEndian => Encoding::BinaryLittleEndian,
        PlyFormat::Ascii => Encoding::Ascii,
    };
    ply.header
        .comments
        .push("written by pixel-transformer-sdf".to_string());
    ply.make_consistent()
        .map_err(|e| Error::invalid(format!("{}: inconsistent PLY data: {e:?}", path.display())))?;
    let writer = Writer::new();
    let mut bytes = Vec::new();
    let io = |e| Error::io(path, e);
    if format == PlyFormat::Ascii {
        writer.write_ply_unchecked(&mut bytes, &ply).map_err(io)?;
        return Ok(bytes);
    }
    // ply-rs 0.1.3 writes the length of a binary list as the element
    // definition's `count` (the number of faces) instead of the list's own
    // length, which corrupts every binary face list. So the body is written
    // element by element, with a definition whose `count` is the list length.
    writer.write_header(&mut bytes, &ply.header).map_err(io)?;
    for (name, def) in &ply.header.elements {
        let mut def = def.clone();
        for row in &ply.payload[name] {
            if let Some(len) = row.values().find_map(list_len) {
                def.count = len;
            }
            writer
                .write_little_endian_element(&mut bytes, row, &def)
                .map_err(io)?;
        }
    }
    Ok(bytes)
}

fn list_len(p: &Property) -> Option<usize> {
    match p {
        Property::ListInt(v) => Some(v.len()),
        Property::ListUInt(v) => Some(v.len()),
        _ => None,
    }
}

/// Writes `mesh` (with vertex normals and optional per-vertex colours) to `path`, atomically.
pub fn write_mesh(
    path: &Path,
    mesh: &Mesh,
    colours: Option<&[[u8; 3]]>,
    format: PlyFormat,
) -> Result<()> {
    if let Some(c) = colours {
        if c.len() != mesh.positions.len() {
            return Err(Error::invalid(format!(
                "{} colours for {} vertices",
                c.len(),
                mesh.positions.len()
            )));
        }
    }
    let mut ply = Ply::<DefaultElement>::new();
    let normals = mesh.vertex_normals();
    let (def, rows) = vertices(&mesh.positions, Some(&normals), colours);
    ply.header.elements.add(def);
    ply.payload.insert("vertex".to_string(), rows);
    let mut face = ElementDef::new("face".to_string());
    face.properties.add(PropertyDef::new(
        "vertex_indices".to_string(),
        PropertyType::List(ScalarType::UChar, ScalarType::Int),
    ));
    ply.header.elements.add(face);
    let faces = mesh
        .triangles
        .iter()
        .map(|t| {
            let mut e = DefaultElement::new();
            e.insert(
                "vertex_indices".to_string(),
                Property::ListInt(t.iter().map(|&i| i as i32).collect()),
            );
            e
        })
        .collect();
    ply.payload.insert("face".to_string(), faces);
    write_atomic(path, &encode(ply, format, path)?)
}

/// Writes a coloured point cloud (no faces) to `path`, atomically.
pub fn write_points(
    path: &Path,
    positions: &[[f32; 3]],
    colours: &[[u8; 3]],
    format: PlyFormat,
) -> Result<()> {
    if colours.len() != positions.len() {
        return Err(Error::invalid(format!(
            "{} colours for {} points",
            colours.len(),
            positions.len()
        )));
    }
    let mut ply = Ply::<DefaultElement>::new();
    let (def, rows) = vertices(positions, None, Some(colours));
    ply.header.elements.add(def);
    ply.payload.insert("vertex".to_string(), rows);
    write_atomic(path, &encode(ply, format, path)?)
}

/// The colour of a signed distance, as in the paper's Fig. 8: red outside
/// (higher values), blue inside, white on the surface; saturated at `±scale`.
pub fn sdf_colour(value: f32, scale: f32) -> [u8; 3] {
    let t = (value / scale).clamp(-1.0, 1.0);
    let fade = |t: f32| (255.0 * (1.0 - t.abs())).round() as u8;
    if t >= 0.0 {
        [255, fade(t), fade(t)]
    } else {
        [fade(t), fade(t), 255]
    }
}
