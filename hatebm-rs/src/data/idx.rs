//! MNIST IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, ...).
//!
//! The format: two zero bytes, a type byte (`0x08` = unsigned byte, the only one
//! supported), the number of dimensions, then each dimension as a big-endian
//! `u32`, then the data in C order. Images have magic `0x00000803`
//! (`[n, rows, cols]`), labels `0x00000801` (`[n]`).
//!
//! **Gzip is not supported** (it would be an extra dependency for a one-off step):
//! the files as distributed end in `.gz` and must be decompressed first
//! (`gunzip *.gz`). A gzip file is recognised by its magic `1f 8b` and rejected
//! with an error saying so.

use std::path::Path;

use super::Dataset;
use crate::{Error, Result};

/// The magic number of an IDX image file (unsigned bytes, 3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an IDX label file (unsigned bytes, 1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The images of an IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// The number of images.
    pub n: usize,
    /// Rows per image (28 for MNIST).
    pub rows: usize,
    /// Columns per image (28 for MNIST).
    pub cols: usize,
    /// `n * rows * cols` pixels, `[n, rows, cols]` in C order, 0..=255.
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (magic `0x00000803`).
///
/// # Errors
/// [`Error::Io`] when unreadable; [`Error::Format`] naming the file — see
/// [`read_idx_images_bytes`].
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_idx_images_bytes(&bytes, &path.display().to_string())
}

/// Parses the bytes of an IDX image file; `context` names the source in errors.
///
/// # Errors
/// [`Error::Format`] for gzip data ("decompress first"), a wrong magic (a label
/// file, another element type or rank), or data that is truncated or too long.
pub fn read_idx_images_bytes(bytes: &[u8], context: &str) -> Result<IdxImages> {
    let (dims, pixels) = parse(bytes, context, IDX_IMAGES_MAGIC)?;
    Ok(IdxImages {
        n: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels: pixels.to_vec(),
    })
}

/// Reads an IDX label file (magic `0x00000801`).
///
/// # Errors
/// [`Error::Io`] when unreadable; [`Error::Format`] naming the file — see
/// [`read_idx_labels_bytes`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_idx_labels_bytes(&bytes, &path.display().to_string())
}

/// Parses the bytes of an IDX label file; `context` names the source in errors.
///
/// # Errors
/// As [`read_idx_images_bytes`], with magic `0x00000801`.
pub fn read_idx_labels_bytes(bytes: &[u8], context: &str) -> Result<Vec<u8>> {
    Ok(parse(bytes, context, IDX_LABELS_MAGIC)?.1.to_vec())
}

/// Loads an IDX image file (and optionally its label file) as a data set of
/// `[1, rows, cols]` samples scaled by `x / 255 * 2 - 1`, named after the image
/// file.
///
/// # Errors
/// As [`read_idx_images`] / [`read_idx_labels`]; [`Error::ShapeMismatch`] when the
/// label count differs from the image count.
pub fn load_idx(images: &Path, labels: Option<&Path>) -> Result<Dataset> {
    let im = read_idx_images(images)?;
    let labels = labels.map(read_idx_labels).transpose()?;
    let name = images
        .file_name()
        .map_or_else(|| "idx".to_owned(), |s| s.to_string_lossy().into_owned());
    Dataset::from_u8(name, &im.pixels, vec![1, im.rows, im.cols], labels, 255.0)
}

fn describe(magic: u32) -> String {
    match magic {
        IDX_IMAGES_MAGIC => "an IDX image file (0x00000803)".into(),
        IDX_LABELS_MAGIC => "an IDX label file (0x00000801)".into(),
        m => format!("magic 0x{m:08x}"),
    }
}

fn parse<'a>(bytes: &'a [u8], context: &str, want: u32) -> Result<(Vec<usize>, &'a [u8])> {
    let fail = |m: String| Error::format(context, m);
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(fail(
            "this is gzip-compressed; decompress first (e.g. `gunzip file.gz`): \
             IDX files are read uncompressed"
                .into(),
        ));
    }
    if bytes.len() < 4 {
        return Err(fail(format!(
            "truncated: {} bytes, no IDX magic",
            bytes.len()
        )));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != want {
        let hint = if bytes[0] != 0 || bytes[1] != 0 {
            " (not an IDX file)"
        } else if bytes[2] != 0x08 {
            " (only unsigned-byte IDX data, type 0x08, is supported)"
        } else {
            ""
        };
        return Err(fail(format!(
            "expected {}, found {}{hint}",
            describe(want),
            describe(magic)
        )));
    }
    let ndim = usize::from(bytes[3]);
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(fail("truncated inside the dimension list".into()));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fail(format!("dimensions {dims:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() < count {
        return Err(fail(format!(
            "truncated data: dimensions {dims:?} need {count} bytes, found {}",
            body.len()
        )));
    }
    if body.len() > count {
        return Err(fail(format!(
            "{} trailing bytes after the data of dimensions {dims:?}",
            body.len() - count
        )));
    }
    Ok((dims, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;

    fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        dims.iter()
            .for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
        b.extend_from_slice(body);
        b
    }

    fn msg(e: Error) -> String {
        match e {
            Error::Format { context, message } => format!("{context}: {message}"),
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn loads_images_and_labels() {
        let dir = TempDir::new("idx");
        let px: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
        let ip = dir.write("img-idx3-ubyte", &idx(IDX_IMAGES_MAGIC, &[2, 2, 3], &px));
        let lp = dir.write("lab-idx1-ubyte", &idx(IDX_LABELS_MAGIC, &[2], &[7, 1]));
        let im = read_idx_images(&ip).unwrap();
        assert_eq!((im.n, im.rows, im.cols), (2, 2, 3));
        assert_eq!(im.pixels, px);
        let d = load_idx(&ip, Some(&lp)).unwrap();
        assert_eq!(d.sample_shape(), &[1, 2, 3]);
        assert_eq!(d.labels(), Some(&[7u8, 1][..]));
        assert_eq!(d.data()[0], -1.0);
        let bad_count = dir.write("l3", &idx(IDX_LABELS_MAGIC, &[3], &[0, 0, 0]));
        assert!(matches!(
            load_idx(&ip, Some(&bad_count)),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn rejects_wrong_magic() {
        let labels = idx(IDX_LABELS_MAGIC, &[2], &[0, 1]);
        let m = msg(read_idx_images_bytes(&labels, "x-idx").unwrap_err());
        assert!(m.contains("x-idx") && m.contains("label file"), "{m}");
        let ints = idx(0x0000_0c03, &[1, 1, 1], &[0; 4]);
        let m = msg(read_idx_images_bytes(&ints, "x").unwrap_err());
        assert!(m.contains("type 0x08"), "{m}");
        let m = msg(read_idx_labels_bytes(b"PK\x03\x04 zip", "x").unwrap_err());
        assert!(m.contains("not an IDX file"), "{m}");
    }

    #[test]
    fn rejects_gzip_with_a_hint() {
        let dir = TempDir::new("idx-gz");
        let p = dir.write("train-images-idx3-ubyte.gz", &[0x1f, 0x8b, 8, 0, 0, 0]);
        let m = msg(read_idx_images(&p).unwrap_err());
        assert!(
            m.contains("train-images-idx3-ubyte.gz") && m.contains("decompress first"),
            "{m}"
        );
    }

    #[test]
    fn rejects_truncated_and_long() {
        let full = idx(IDX_IMAGES_MAGIC, &[2, 2, 2], &[0; 8]);
        let m = msg(read_idx_images_bytes(&full[..full.len() - 1], "t").unwrap_err());
        assert!(
            m.contains("truncated data") && m.contains("need 8 bytes, found 7"),
            "{m}"
        );
        let m = msg(read_idx_images_bytes(&full[..9], "t").unwrap_err());
        assert!(m.contains("truncated"), "{m}");
        let m = msg(read_idx_images_bytes(&full[..2], "t").unwrap_err());
        assert!(m.contains("truncated"), "{m}");
        let mut long = full.clone();
        long.push(1);
        let m = msg(read_idx_images_bytes(&long, "t").unwrap_err());
        assert!(m.contains("trailing"), "{m}");
    }
}
