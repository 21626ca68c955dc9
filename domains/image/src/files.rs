//! Small helpers shared by the loaders: reading, gunzipping, error values.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use pixel_transformer::{Error, Result};

/// The most a gzip file may expand to. Standard MNIST is 47 MB raw; the cap
/// stops a corrupt or hostile file from filling memory (a "gzip bomb").
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// A [`Error::Malformed`] naming `path`.
pub fn malformed(path: &Path, message: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a whole file, naming it in any error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Returns the bytes unchanged, or decompressed when they start with the gzip
/// magic (so `.gz` and raw files load alike, whatever they are named).
pub fn gunzip_if_needed<'a>(bytes: &'a [u8], path: &Path) -> Result<Cow<'a, [u8]>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed(path, format!("corrupt or truncated gzip data: {e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(malformed(
            path,
            format!(
                "decompresses to more than {} MiB",
                MAX_DECOMPRESSED_BYTES >> 20
            ),
        ));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_detected_by_content_and_corruption_is_an_error() {
        let path = Path::new("x.gz");
        assert_eq!(&*gunzip_if_needed(&[1, 2, 3], path).unwrap(), &[1, 2, 3]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(&*gunzip_if_needed(&gz, path).unwrap(), b"hello");
        let err = gunzip_if_needed(&gz[..gz.len() - 6], path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.gz") && err.contains("gzip"), "{err}");
    }
}
