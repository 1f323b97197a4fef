//! Out-of-distribution image sets built from an in-distribution batch: noise
//! in the data's range or with its moments, and simple transformations of the
//! images themselves (flips, colour inversion, a centre zoom).
//!
//! Layout: a batch is `n` images `[C, H, W]` flattened in C order
//! (`data.len() == n·C·H·W`), as [`crate::data::Dataset::data`] stores them;
//! every builder returns a batch of the same shape. The noise sets are
//! deterministic functions of `(seed, kind, image index)` (ChaCha8 streams
//! addressed by [`NoiseKey`] with [`Stream::User`]), so image `i` of a set
//! does not depend on `n`.

use rand::Rng;
use serde::Serialize;

use crate::noise::{NoiseKey, Stream, fill_normal_rows};
use crate::{Error, Result};

/// The counter tag of the OOD sets' noise keys (`[OOD_TAG, kind]`), so that
/// they never share a stream with another `Stream::User` draw of the crate.
const OOD_TAG: u64 = 0x00d0_5e75;

/// An in-distribution image batch to derive OOD sets from.
#[derive(Clone, Copy, Debug)]
pub struct ImageBatch<'a> {
    /// `n · C · H · W` values, image-major, C order.
    pub data: &'a [f32],
    /// Number of images (`≥ 1`).
    pub n: usize,
    /// `[C, H, W]` of one image (each `≥ 1`).
    pub dims: [usize; 3],
    /// The data set's value range `(lo, hi)`, `lo < hi` (e.g. `(-1, 1)`): the
    /// support of [`OodKind::Uniform`] and the mirror of [`OodKind::Invert`].
    pub range: (f32, f32),
}

impl ImageBatch<'_> {
    /// Checks the invariants of the fields and that every value is finite.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `n = 0`, a zero dimension or an empty or
    /// non-finite range; [`Error::ShapeMismatch`] when `data` does not hold
    /// `n` images; [`Error::NonFinite`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        let [c, h, w] = self.dims;
        crate::ensure!(self.n > 0, "OOD sets: the batch is empty");
        crate::ensure!(
            c > 0 && h > 0 && w > 0,
            "OOD sets: image dims {:?} have a zero entry",
            self.dims
        );
        let (lo, hi) = self.range;
        crate::ensure!(
            lo.is_finite() && hi.is_finite() && lo < hi,
            "OOD sets: the data range ({lo}, {hi}) must be finite with lo < hi"
        );
        let len = self
            .n
            .checked_mul(c * h * w)
            .filter(|&l| l == self.data.len());
        if len.is_none() {
            return Err(Error::shape(
                "OOD source images",
                &[self.n, c, h, w],
                &[self.data.len()],
            ));
        }
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "OOD source images: image {}, value {} is {}",
                i / (c * h * w),
                i % (c * h * w),
                self.data[i]
            )));
        }
        Ok(())
    }

    fn image_len(&self) -> usize {
        self.dims.iter().product()
    }
}

/// The OOD sets [`build_ood_set`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OodKind {
    /// Independent uniform values in the data range `[lo, hi)`.
    Uniform,
    /// Independent Gaussians with the batch's mean and standard deviation
    /// (one scalar each, over every value of the batch).
    Gaussian,
    /// The images mirrored left-right (`x[c, i, j] → x[c, i, W−1−j]`).
    HorizontalFlip,
    /// Colour inversion in the data range: `x → lo + hi − x` (`−x` for data
    /// in `[−1, 1]`).
    Invert,
    /// A centre 2× zoom: the centre `⌊H/2⌋ × ⌊W/2⌋` crop (top-left corner at
    /// `(⌊(H − ⌊H/2⌋)/2⌋, ⌊(W − ⌊W/2⌋)/2⌋)`) resized back to `H × W`
    /// bilinearly (half-pixel centres, edges clamped: PyTorch's
    /// `interpolate(mode = "bilinear", align_corners = False)`).
    Upscale,
}

impl OodKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [OodKind; 5] = [
        OodKind::Uniform,
        OodKind::Gaussian,
        OodKind::HorizontalFlip,
        OodKind::Invert,
        OodKind::Upscale,
    ];

    /// A short name (`uniform`, `gaussian`, `hflip`, `invert`, `upscale`).
    pub fn name(self) -> &'static str {
        match self {
            OodKind::Uniform => "uniform",
            OodKind::Gaussian => "gaussian",
            OodKind::HorizontalFlip => "hflip",
            OodKind::Invert => "invert",
            OodKind::Upscale => "upscale",
        }
    }

    fn id(self) -> u64 {
        match self {
            OodKind::Uniform => 1,
            OodKind::Gaussian => 2,
            OodKind::HorizontalFlip => 3,
            OodKind::Invert => 4,
            OodKind::Upscale => 5,
        }
    }
}

/// Builds the OOD set `kind` from `batch` (same shape as the batch; see the
/// module docs). `seed` matters only for the noise kinds.
///
/// # Errors
/// As [`ImageBatch::validate`]; [`Error::InvalidArgument`] for an upscale of
/// images smaller than 2 × 2.
pub fn build_ood_set(kind: OodKind, batch: &ImageBatch<'_>, seed: u64) -> Result<Vec<f32>> {
    batch.validate()?;
    let key = NoiseKey::new(seed, Stream::User, [OOD_TAG, kind.id()]);
    let d = batch.image_len();
    Ok(match kind {
        OodKind::Uniform => {
            let (lo, hi) = batch.range;
            let mut out = vec![0.0f32; batch.data.len()];
            for (i, img) in out.chunks_exact_mut(d).enumerate() {
                let mut rng = key.rng_for_row(i as u64);
                img.iter_mut().for_each(|v| *v = rng.random_range(lo..hi));
            }
            out
        }
        OodKind::Gaussian => {
            let (mean, std) = moments(batch.data);
            let mut out = vec![0.0f32; batch.data.len()];
            fill_normal_rows(&mut out, d, key);
            out.iter_mut()
                .for_each(|v| *v = (mean + std * f64::from(*v)) as f32);
            out
        }
        OodKind::HorizontalFlip => {
            let w = batch.dims[2];
            let mut out = batch.data.to_vec();
            out.chunks_exact_mut(w).for_each(<[f32]>::reverse);
            out
        }
        OodKind::Invert => {
            let (lo, hi) = batch.range;
            batch.data.iter().map(|&x| lo + hi - x).collect()
        }
        OodKind::Upscale => upscale_centre(batch)?,
    })
}

/// Mean and (population) standard deviation of all values, in `f64`.
fn moments(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

/// The centre-crop 2× bilinear zoom of [`OodKind::Upscale`].
fn upscale_centre(batch: &ImageBatch<'_>) -> Result<Vec<f32>> {
    let [_, h, w] = batch.dims;
    crate::ensure!(
        h >= 2 && w >= 2,
        "OOD sets: upscaling needs images of at least 2 x 2, got {h} x {w}"
    );
    let (ch, cw) = (h / 2, w / 2);
    let (oy, ox) = ((h - ch) / 2, (w - cw) / 2);
    // Source coordinate (inside the crop) and weight of each output row / column.
    let taps = |out: usize, crop: usize| -> Vec<(usize, usize, f32)> {
        (0..out)
            .map(|i| {
                let s = ((i as f64 + 0.5) * crop as f64 / out as f64 - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(crop - 1);
                let i1 = (i0 + 1).min(crop - 1);
                (i0, i1, (s - i0 as f64) as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, ch), taps(w, cw));
    let mut out = vec![0.0f32; batch.data.len()];
    for (src, dst) in batch
        .data
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(h * w))
    {
        let at = |y: usize, x: usize| src[(oy + y) * w + ox + x];
        for (i, &(y0, y1, fy)) in ty.iter().enumerate() {
            for (j, &(x0, x1, fx)) in tx.iter().enumerate() {
                let top = at(y0, x0) + fx * (at(y0, x1) - at(y0, x0));
                let bot = at(y1, x0) + fx * (at(y1, x1) - at(y1, x0));
                dst[i * w + j] = top + fy * (bot - top);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(data: &[f32], n: usize, dims: [usize; 3]) -> ImageBatch<'_> {
        ImageBatch {
            data,
            n,
            dims,
            range: (-1.0, 1.0),
        }
    }

    #[test]
    fn flip_and_invert_are_exact() {
        // Two 1 x 2 x 3 images.
        let x: Vec<f32> = (0..12).map(|i| i as f32 / 12.0).collect();
        let b = batch(&x, 2, [1, 2, 3]);
        let f = build_ood_set(OodKind::HorizontalFlip, &b, 0).unwrap();
        assert_eq!(&f[..6], &[x[2], x[1], x[0], x[5], x[4], x[3]]);
        let inv = build_ood_set(OodKind::Invert, &b, 0).unwrap();
        assert!(inv.iter().zip(&x).all(|(a, b)| *a == -*b));
        let b01 = ImageBatch {
            range: (0.0, 1.0),
            ..b
        };
        let inv = build_ood_set(OodKind::Invert, &b01, 0).unwrap();
        assert!(inv.iter().zip(&x).all(|(a, b)| *a == 1.0 - *b));
    }

    #[test]
    fn upscale_zooms_the_centre() {
        // A 4 x 4 image whose centre 2 x 2 is [[1, 2], [3, 4]] and border 0:
        // the zoom's corners are the centre's corners (edge clamp), its
        // inside a bilinear blend, and no border value (0) leaks in.
        let mut x = vec![0.0f32; 16];
        x[5] = 1.0;
        x[6] = 2.0;
        x[9] = 3.0;
        x[10] = 4.0;
        let z = build_ood_set(OodKind::Upscale, &batch(&x, 1, [1, 4, 4]), 0).unwrap();
        assert_eq!([z[0], z[3], z[12], z[15]], [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(z[1], 1.25, "{z:?}");
        assert!(z.iter().all(|&v| (1.0..=4.0).contains(&v)), "{z:?}");
        // A constant image stays constant.
        let c = vec![0.5f32; 2 * 3 * 5 * 7];
        let z = build_ood_set(OodKind::Upscale, &batch(&c, 2, [3, 5, 7]), 0).unwrap();
        assert!(z.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn noise_sets_are_seeded_in_range_and_matched() {
        let x: Vec<f32> = (0..400)
            .map(|i| ((i * 37) % 100) as f32 / 50.0 - 1.0)
            .collect();
        let b = batch(&x, 4, [1, 10, 10]);
        let u = build_ood_set(OodKind::Uniform, &b, 3).unwrap();
        assert!(u.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_eq!(u, build_ood_set(OodKind::Uniform, &b, 3).unwrap());
        assert_ne!(u, build_ood_set(OodKind::Uniform, &b, 4).unwrap());
        // Image i does not depend on the batch size.
        let b2 = batch(&x[..200], 2, [1, 10, 10]);
        assert_eq!(
            &u[..200],
            &build_ood_set(OodKind::Uniform, &b2, 3).unwrap()[..]
        );
        let g = build_ood_set(OodKind::Gaussian, &b, 3).unwrap();
        let (m0, s0) = moments(&x);
        let (m1, s1) = moments(&g);
        assert!(
            (m1 - m0).abs() < 0.2 && (s1 / s0 - 1.0).abs() < 0.2,
            "{m1} {s1}"
        );
    }

    #[test]
    fn bad_batches_are_typed_errors() {
        let x = [0.0f32; 8];
        let e = build_ood_set(OodKind::Invert, &batch(&x, 3, [1, 2, 2]), 0).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        let e = build_ood_set(OodKind::Invert, &batch(&x, 0, [1, 2, 2]), 0).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let e = build_ood_set(OodKind::Invert, &batch(&x, 2, [0, 2, 2]), 0).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let mut bad = x;
        bad[5] = f32::NAN;
        let e = build_ood_set(OodKind::HorizontalFlip, &batch(&bad, 2, [1, 2, 2]), 0).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e}");
        let e = build_ood_set(OodKind::Upscale, &batch(&x, 2, [1, 1, 4]), 0).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let rev = ImageBatch {
            range: (1.0, -1.0),
            ..batch(&x, 2, [1, 2, 2])
        };
        let e = build_ood_set(OodKind::Uniform, &rev, 0).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
}
