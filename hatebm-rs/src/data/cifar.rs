//! CIFAR-10 binary batches (`data_batch_1.bin` .. `data_batch_5.bin`,
//! `test_batch.bin` from `cifar-10-binary.tar.gz`, extracted).
//!
//! Each file is a sequence of 3073-byte records: one label byte (0..=9), then a
//! 32×32 colour image as 1024 red, 1024 green and 1024 blue bytes, each plane in
//! row-major order — already channel-first (`[3, 32, 32]`).

use std::path::{Path, PathBuf};

use super::Dataset;
use crate::{Error, Result};

/// Bytes per record: 1 label + 3 × 32 × 32 pixels.
pub const CIFAR10_RECORD_LEN: usize = 1 + CIFAR10_IMAGE_LEN;
/// Bytes per image: `[3, 32, 32]`.
pub const CIFAR10_IMAGE_LEN: usize = 3 * 32 * 32;
/// The class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Splits the bytes of one batch file into `(pixels, labels)`: pixels
/// `[n, 3, 32, 32]` (0..=255), labels `[n]` (0..=9). `context` names the source.
///
/// # Errors
/// [`Error::Format`] for an empty file, a length that is not a multiple of 3073
/// (not a CIFAR-10 binary batch; CIFAR-100 has 3074-byte records), gzip/tar data
/// that was not extracted, or a label above 9.
pub fn read_cifar10_bytes(bytes: &[u8], context: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let fail = |m: String| Error::format(context, m);
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(fail(
            "this is gzip-compressed (the cifar-10-binary.tar.gz archive?): extract the \
             data_batch_*.bin files first"
                .into(),
        ));
    }
    if bytes.is_empty() {
        return Err(fail("empty file: no CIFAR-10 records".into()));
    }
    if !bytes.len().is_multiple_of(CIFAR10_RECORD_LEN) {
        return Err(fail(format!(
            "length {} is not a multiple of the CIFAR-10 record size {CIFAR10_RECORD_LEN} \
             (1 label byte + 3072 pixel bytes); truncated, or not a CIFAR-10 binary batch",
            bytes.len()
        )));
    }
    let n = bytes.len() / CIFAR10_RECORD_LEN;
    let mut pixels = Vec::with_capacity(n * CIFAR10_IMAGE_LEN);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(CIFAR10_RECORD_LEN).enumerate() {
        if rec[0] > 9 {
            return Err(fail(format!(
                "record {i} has label {} (CIFAR-10 labels are 0..=9)",
                rec[0]
            )));
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((pixels, labels))
}

/// Loads and concatenates CIFAR-10 binary batch files, in the order given, as a
/// data set of `[3, 32, 32]` samples scaled by `x / 255 * 2 - 1`, with labels.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty file list; [`Error::Io`] when a file is
/// unreadable; [`Error::Format`] naming the file as in [`read_cifar10_bytes`].
pub fn load_cifar10(files: &[PathBuf]) -> Result<Dataset> {
    crate::ensure!(!files.is_empty(), "no CIFAR-10 batch files given");
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        let (p, l) = read_cifar10_bytes(&bytes, &f.display().to_string())?;
        pixels.extend_from_slice(&p);
        labels.extend_from_slice(&l);
    }
    Dataset::from_u8("cifar10", &pixels, vec![3, 32, 32], Some(labels), 255.0)
}

/// The standard training files `data_batch_1.bin` .. `data_batch_5.bin` in `dir`.
pub fn cifar10_train_files(dir: &Path) -> Vec<PathBuf> {
    (1..=5)
        .map(|i| dir.join(format!("data_batch_{i}.bin")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(fill, CIFAR10_IMAGE_LEN));
        r
    }

    #[test]
    fn loads_and_concatenates() {
        let dir = TempDir::new("cifar");
        let a = dir.write("data_batch_1.bin", &[record(3, 0), record(9, 255)].concat());
        let b = dir.write("data_batch_2.bin", &record(0, 51));
        let d = load_cifar10(&[a, b]).unwrap();
        assert_eq!((d.len(), d.sample_shape()), (3, &[3, 32, 32][..]));
        assert_eq!(d.labels(), Some(&[3u8, 9, 0][..]));
        assert_eq!(d.sample(0)[0], -1.0);
        assert_eq!(d.sample(1)[3071], 1.0);
        assert!((d.sample(2)[5] - (51.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-7);
        assert_eq!(
            cifar10_train_files(dir.path())[4],
            dir.path().join("data_batch_5.bin")
        );
    }

    #[test]
    fn rejects_bad_lengths_labels_and_archives() {
        let dir = TempDir::new("cifar-bad");
        let mut short = record(1, 0);
        short.pop();
        let p = dir.write("data_batch_1.bin", &short);
        let e = load_cifar10(std::slice::from_ref(&p)).unwrap_err();
        assert!(
            matches!(&e, Error::Format { context, message }
                if context.ends_with("data_batch_1.bin") && message.contains("multiple of")),
            "{e}"
        );
        let bad_label = dir.write("b.bin", &record(10, 0));
        assert!(
            load_cifar10(&[bad_label])
                .unwrap_err()
                .to_string()
                .contains("label 10")
        );
        let empty = dir.write("e.bin", b"");
        assert!(
            load_cifar10(&[empty])
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(
            read_cifar10_bytes(&[0x1f, 0x8b, 0], "g")
                .unwrap_err()
                .to_string()
                .contains("extract")
        );
        assert!(matches!(load_cifar10(&[]), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            load_cifar10(&[dir.path().join("none.bin")]),
            Err(Error::Io { .. })
        ));
    }
}
