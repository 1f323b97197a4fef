//! The bundled data sets: the 8×8 digits (embedded in the library) and MNIST-5k
//! (shipped in the repository's top-level `data/mnist5k/` folder).
//!
//! Provenance, licences and attribution: `hatebm-rs/data/README.md` and `data/README.md`.

use std::path::{Path, PathBuf};

use super::Dataset;
use super::npy::{NpyData, read_npy, read_npy_bytes};
use super::npy_dataset::labels_from_npy;
use crate::{Error, Result};

/// `digits_images.npy`: the UCI optdigits test set as shipped by scikit-learn,
/// `uint8 [1797, 8, 8]`, values 0..=16 (CC BY 4.0, Alpaydin & Kaynak, UCI).
pub const DIGITS_IMAGES_NPY: &[u8] = include_bytes!("../../data/digits_images.npy");

/// `digits_labels.npy`: the digit classes of [`DIGITS_IMAGES_NPY`], `uint8 [1797]`, 0..=9.
pub const DIGITS_LABELS_NPY: &[u8] = include_bytes!("../../data/digits_labels.npy");

/// The two files of an MNIST-5k folder: images (`uint8 [5000, 28, 28]`, 0..=255)
/// and labels (`uint8 [5000]`, 0..=9).
pub const MNIST5K_FILES: [&str; 2] = ["mnist5k_images.npy", "mnist5k_labels.npy"];

impl Dataset {
    /// The bundled 8×8 handwritten digits: 1797 samples of shape `[1, 8, 8]`, scaled
    /// by `x / 16 * 2 - 1` to exactly `[-1, 1]`, with labels 0..=9. The library's
    /// default data set; it needs no file.
    ///
    /// # Errors
    /// None in practice (the embedded bytes are checked by the tests); the
    /// `Result` is kept for uniformity with the other loaders.
    pub fn digits() -> Result<Self> {
        let images = read_npy_bytes(DIGITS_IMAGES_NPY, "embedded digits_images.npy")?;
        let labels = read_npy_bytes(DIGITS_LABELS_NPY, "embedded digits_labels.npy")?;
        Dataset::from_npy(
            "digits",
            images,
            Some(labels),
            Some(16.0),
            "embedded digits",
        )
    }

    /// MNIST-5k from a folder holding [`MNIST5K_FILES`]: 5000 samples of shape
    /// `[1, 28, 28]` scaled by `x / 255 * 2 - 1`, with labels.
    ///
    /// The samples are **sorted by label** (all 0s first): shuffle before taking
    /// batches (the [`Batcher`](super::Batcher) does) and split with
    /// [`Dataset::split`], never by taking a prefix. Use
    /// [`pad(2, -1.0)`](Dataset::pad) for 32×32 networks.
    ///
    /// # Errors
    /// [`Error::Io`] when a file is missing or unreadable; [`Error::Format`] when a
    /// file is not a `uint8` array of rank 3 (images) or 1 (labels).
    pub fn mnist5k(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let ip = dir.join(MNIST5K_FILES[0]);
        let lp = dir.join(MNIST5K_FILES[1]);
        let images = read_npy(&ip)?;
        let ctx = ip.display().to_string();
        if images.shape.len() != 3 || !matches!(images.data, NpyData::U8(_)) {
            return Err(Error::format(
                ctx,
                format!(
                    "expected uint8 images [N, 28, 28], got {} {:?}",
                    images.data.descr(),
                    images.shape
                ),
            ));
        }
        let labels = labels_from_npy(read_npy(&lp)?, &lp.display().to_string())?;
        let NpyData::U8(px) = images.data else {
            unreachable!("checked above")
        };
        Dataset::from_u8(
            "mnist5k",
            &px,
            vec![1, images.shape[1], images.shape[2]],
            Some(labels),
            255.0,
        )
    }
}

/// The bundled MNIST-5k folder, `<repository>/data/mnist5k`, found relative to this
/// crate's source directory (`CARGO_MANIFEST_DIR/../data/mnist5k`) when both
/// [`MNIST5K_FILES`] are there — that is, when running from a checkout of the
/// repository. A published crate or an installed binary does not have it.
///
/// # Errors
/// [`Error::Io`] (kind `NotFound`) naming the folder looked in, with a hint to pass
/// the folder explicitly.
pub fn bundled_mnist5k_dir() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist5k");
    if MNIST5K_FILES.iter().all(|f| dir.join(f).is_file()) {
        return Ok(dir);
    }
    Err(Error::io(
        dir,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "the bundled MNIST-5k folder (with {} and {}) is not here; it ships only in \
                 the libhatebm repository's data/mnist5k — give the folder's path explicitly",
                MNIST5K_FILES[0], MNIST5K_FILES[1]
            ),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_load_with_exact_range() {
        let d = Dataset::digits().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.sample_shape(), &[1, 8, 8]);
        assert_eq!(d.value_range(), Some((-1.0, 1.0)));
        let labels = d.labels().unwrap();
        let mut counts = [0usize; 10];
        labels.iter().for_each(|&l| counts[usize::from(l)] += 1);
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        // Every value is one of the 17 levels x / 16 * 2 - 1.
        assert!(d.data().iter().all(|&x| ((x + 1.0) * 8.0).fract() == 0.0));
    }

    #[test]
    fn bundled_mnist5k_loads_and_pads() {
        let dir = bundled_mnist5k_dir().expect("the repository ships data/mnist5k");
        let d = Dataset::mnist5k(&dir).unwrap();
        assert_eq!((d.len(), d.sample_shape()), (5000, &[1, 28, 28][..]));
        assert_eq!(d.value_range(), Some((-1.0, 1.0)));
        let labels = d.labels().unwrap();
        assert!(
            labels.windows(2).all(|w| w[0] <= w[1]),
            "documented as sorted"
        );
        assert_eq!(labels.iter().filter(|&&l| l == 3).count(), 500);
        let first = d.sample(0).to_vec();
        let p = d.pad(2, -1.0).unwrap();
        assert_eq!(p.sample_shape(), &[1, 32, 32]);
        let s = p.sample(0);
        assert!(s[..64].iter().all(|&x| x == -1.0));
        assert_eq!(&s[2 * 32 + 2..2 * 32 + 30], &first[..28]);
    }

    #[test]
    fn mnist5k_missing_folder_is_a_clear_error() {
        let e = Dataset::mnist5k("/definitely/not/here").unwrap_err();
        assert!(
            matches!(&e, Error::Io { path, .. } if path.ends_with("mnist5k_images.npy")),
            "{e}"
        );
    }
}
