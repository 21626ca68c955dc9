//! NumPy `.npy` loader for SDF grids, the usual storage of SDF data sets.
//!
//! Accepted: format versions 1–3, little-endian `float32` (`<f4`) or
//! `float64` (`<f8`, converted), C order, rank 3, shape `(D, H, W)` indexed
//! `[z][y][x]` (see [`SdfGrid`] for the position convention). Anything else
//! is an [`Error::Malformed`] naming the file and the problem; the data size
//! the header promises is checked against the file before anything is allocated.

use std::path::Path;

use pixel_transformer::{Error, Result};

use crate::grid::{SdfGrid, MAX_SIDE};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Largest header we accept; NumPy pads headers to a few hundred bytes.
const MAX_HEADER: usize = 1 << 16;

/// Reads an SDF grid from a `.npy` file.
pub fn load_npy(path: &Path) -> Result<SdfGrid> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let limit = (MAX_SIDE * MAX_SIDE * MAX_SIDE * 8 + MAX_HEADER + 16) as u64;
    if size > limit {
        return Err(malformed(
            path,
            format!("{size} bytes is larger than any accepted grid ({MAX_SIDE}³ values)"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes).map_err(|message| malformed(path, message))
}

fn malformed(path: &Path, message: String) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        message,
    }
}

/// Parses the bytes of a `.npy` file; errors are messages without the file name.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<SdfGrid, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a NumPy .npy file (bad magic number)".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
            (n, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    if header_len > MAX_HEADER || start + header_len > bytes.len() {
        return Err(format!(
            "header of {header_len} bytes does not fit in the file ({} bytes)",
            bytes.len()
        ));
    }
    let header = std::str::from_utf8(&bytes[start..start + header_len])
        .map_err(|_| "header is not text".to_string())?;
    let descr = dict_value(header, "descr")?;
    let width = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!(
                "dtype {other} is not supported: SDF grids must be little-endian float32 ('<f4') or float64 ('<f8')"
            ))
        }
    };
    if dict_value(header, "fortran_order")?.trim() != "False" {
        return Err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let shape = parse_shape(dict_value(header, "shape")?)?;
    let [d, h, w] = match shape[..] {
        [d, h, w] => [d, h, w],
        _ => {
            return Err(format!(
                "an SDF grid has rank 3 (D, H, W), this array has shape {shape:?}"
            ))
        }
    };
    if [d, h, w].iter().any(|&n| !(2..=MAX_SIDE).contains(&n)) {
        return Err(format!(
            "shape ({d}, {h}, {w}) is outside 2..={MAX_SIDE} samples per axis"
        ));
    }
    let data = &bytes[start + header_len..];
    let expected = d * h * w * width;
    if data.len() != expected {
        return Err(format!(
            "shape ({d}, {h}, {w}) needs {expected} data bytes, the file has {}{}",
            data.len(),
            if data.len() < expected {
                " (truncated)"
            } else {
                ""
            }
        ));
    }
    let values: Vec<f32> = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    SdfGrid::new([w, h, d], values).map_err(|e| match e {
        Error::InvalidInput(m) => m,
        other => other.to_string(),
    })
}

/// The text of `key`'s value in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> std::result::Result<&'a str, String> {
    let missing = || format!("header has no '{key}' entry: {header:?}");
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))
        .ok_or_else(missing)?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(missing)?
        .trim_start();
    // A tuple value ends at its closing parenthesis, anything else at the next comma or brace.
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(missing)?;
    Ok(&rest[..end])
}

fn parse_shape(text: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape {text}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {text}")))
        .collect()
}

/// Encodes a grid as a version-1 `.npy` file (`<f4`, shape `(D, H, W)`), e.g.
/// to save a predicted field for other tools.
pub fn encode_npy(grid: &SdfGrid) -> Vec<u8> {
    let [w, h, d] = grid.shape();
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({d}, {h}, {w}), }}");
    // Pad so that the data start on a multiple of 64 bytes, as NumPy does.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + grid.values().len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in grid.values() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
