//! Evaluation metrics: Fréchet distance in a fixed PCA feature space, k-NN
//! precision / recall (with density and coverage), a nearest-training-neighbour
//! memorisation check, 2-D toy metrics (mode coverage, MMD², energy distance),
//! and out-of-distribution detection (AUROC of energy and gradient-norm scores).
//!
//! Conventions shared by every function here:
//!
//! * **Layout.** Sample sets are row-major host buffers of `n` samples × `d`
//!   features (`data.len() == n * d`); a `[C, H, W]` image is flattened to
//!   `d = C·H·W` in C order, exactly as [`crate::data::Dataset::data`] stores it.
//! * **Precision.** Inputs are `f32` or `f64` (the [`Real`] trait); every value is
//!   widened to `f64` and all arithmetic is done in `f64`.
//! * **Validation.** A length that is not `n * d` is [`Error::ShapeMismatch`]; a
//!   zero dimension, too few samples or an out-of-range parameter is
//!   [`Error::InvalidArgument`]; a NaN or ±∞ anywhere in the input is
//!   [`Error::NonFinite`] naming the set, the sample and the feature. No function
//!   panics on user input.
//! * **Determinism.** Results depend only on the inputs (and the seed, for
//!   [`Pca::fit`]): parallel loops (rayon) reduce in a fixed order or count
//!   integers, and ties are broken towards the lowest index.
//!
//! | module | what | main entry points |
//! |---|---|---|
//! | [`linalg`] | Jacobi eigendecomposition of symmetric matrices | [`sym_eigen`] |
//! | [`pca`] | PCA feature space, safetensors save / load | [`Pca`] |
//! | [`frechet`] | Fréchet distance between Gaussian fits | [`frechet_distance`], [`fd_in_space`] |
//! | [`prdc`] | k-NN precision, recall, density, coverage | [`precision_recall`] |
//! | [`memorization`] | nearest-training-neighbour check | [`memorization_check`] |
//! | [`toy`] | 2-D mode coverage; MMD² and energy distance | [`mode_coverage`], [`two_sample_distances`] |
//! | [`ood`] | OOD scores and AUROC (Mann–Whitney U) | [`OodScores`], [`auroc`] |
//! | [`ood_sets`] | OOD image sets from an in-distribution batch | [`build_ood_set`], [`OodKind`] |
//! | [`mod@ood_report`] | every OOD set against one batch (`ood.json`) | [`ood_report()`] |
//!
//! `docs/metrics.md` gives the formulas, the estimators and the reasons for each choice.
//!
//! ```
//! use hatebm_rs::metrics::{FeatureSpace, Pca, fd_in_space, precision_recall};
//!
//! // 200 "training images" of 16 features and 100 "generated" ones.
//! let train: Vec<f32> = (0..200 * 16).map(|i| ((i * 7919) % 97) as f32 / 97.0).collect();
//! let fake: Vec<f32> = (0..100 * 16).map(|i| ((i * 104729) % 89) as f32 / 89.0).collect();
//! let pca = Pca::fit(&train, 200, 16, 4, 0)?; // fitted once, on the training split
//! let space = FeatureSpace::Pca(pca);
//! let fd = fd_in_space(&space, &train, &fake, 200, 100, 16)?;
//! let pr = precision_recall(&train, 200, &fake, 100, 16, 3)?;
//! assert!(fd >= 0.0 && (0.0..=1.0).contains(&pr.precision));
//! # Ok::<(), hatebm_rs::Error>(())
//! ```

pub mod classifier;
pub mod frechet;
pub mod linalg;
pub mod memorization;
pub mod ood;
pub mod ood_report;
pub mod ood_sets;
pub mod pca;
pub mod prdc;
pub mod toy;

pub use classifier::{ClassHistogram, Classifier};
pub use frechet::{FeatureSpace, fd_in_space, frechet_distance};
pub use linalg::{SymEigen, sym_eigen};
pub use memorization::{
    ClosestPair, DEFAULT_MEMORIZATION_THRESHOLD, MemorizationConfig, MemorizationReport, NnStats,
    memorization_check,
};
pub use ood::{OodScores, auroc};
pub use ood_report::{OodReport, OodSetReport, ood_report};
pub use ood_sets::{ImageBatch, OodKind, build_ood_set};
pub use pca::Pca;
pub use prdc::{DEFAULT_K, PrecisionRecall, precision_recall};
pub use toy::{
    Bandwidth, CoverageConfig, DEFAULT_MIN_FRACTION, ModeCoverage, TwoSample, energy_distance,
    mmd2_rbf, mode_coverage, mode_coverage_for, two_sample_distances,
};

use crate::{Error, Result};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// An element type the metrics accept: `f32` or `f64`. Values are widened to
/// `f64` before any arithmetic.
pub trait Real: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The value as `f64` (exact for both implementations).
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

/// Checks that `data` holds `n × d` values (`d ≥ 1`, `n ≥ min_n`).
pub(crate) fn check_shape<T>(
    what: &str,
    data: &[T],
    n: usize,
    d: usize,
    min_n: usize,
) -> Result<()> {
    crate::ensure!(d >= 1, "{what}: the feature dimension must be >= 1, got 0");
    crate::ensure!(
        n >= min_n,
        "{what}: at least {min_n} samples are needed, got {n}"
    );
    match n.checked_mul(d) {
        Some(len) if len == data.len() => Ok(()),
        _ => Err(Error::ShapeMismatch {
            what: what.to_owned(),
            expected: format!("[{n}, {d}] ({} values)", n.saturating_mul(d)),
            got: format!("{} values", data.len()),
        }),
    }
}

/// Validates the shape and finiteness of an `n × d` set and widens it to `f64`.
pub(crate) fn to_f64_checked<T: Real>(
    what: &str,
    data: &[T],
    n: usize,
    d: usize,
    min_n: usize,
) -> Result<Vec<f64>> {
    check_shape(what, data, n, d, min_n)?;
    let out: Vec<f64> = data.iter().map(|v| v.to_f64()).collect();
    if let Some(pos) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "{what}: sample {}, feature {} is {}",
            pos / d,
            pos % d,
            out[pos]
        )));
    }
    Ok(out)
}

/// The squared Euclidean distance between two equal-length rows, summed in a
/// fixed order (four interleaved accumulators, so the compiler can vectorise it).
#[inline]
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let (ac, ar) = (a.chunks_exact(4), a.chunks_exact(4).remainder());
    let br = b.chunks_exact(4).remainder();
    for (x, y) in ac.zip(b.chunks_exact(4)) {
        for j in 0..4 {
            let t = x[j] - y[j];
            acc[j] += t * t;
        }
    }
    let mut tail = 0.0;
    for (x, y) in ar.iter().zip(br) {
        let t = x - y;
        tail += t * t;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The `p`-quantile (`0 ≤ p ≤ 1`) of already sorted values by linear
/// interpolation between order statistics (NumPy's default, Hyndman–Fan type 7).
/// `sorted` must be non-empty.
pub(crate) fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
pub(crate) mod testutil {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// `n × d` standard normal values from a seeded ChaCha8 stream.
    pub fn gaussian(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d).map(|_| rng.sample(StandardNormal)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_shape_and_position() {
        let e = to_f64_checked("real", &[0.0f32; 5], 2, 3, 1).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        let e = to_f64_checked("real", &[0.0f32; 6], 2, 0, 1).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let e = to_f64_checked("real", &[0.0f32; 6], 2, 3, 3).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let e = to_f64_checked("fake", &[0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0], 2, 3, 1).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e}");
        assert!(e.to_string().contains("fake: sample 1, feature 1"), "{e}");
        let e = check_shape("x", &[0.0f64; 4], usize::MAX, 2, 0).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    }

    #[test]
    fn sq_dist_and_quantiles() {
        let a: Vec<f64> = (0..7).map(f64::from).collect();
        let b = vec![0.0; 7];
        assert_eq!(sq_dist(&a, &b), 91.0);
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&s, 0.0), 1.0);
        assert_eq!(quantile_sorted(&s, 0.5), 3.0);
        assert_eq!(quantile_sorted(&s, 1.0), 5.0);
        assert!((quantile_sorted(&s, 0.05) - 1.2).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[7.0], 0.3), 7.0);
    }

    /// Timings of the pairwise metrics (`cargo test -p hatebm-rs --lib
    /// metrics_timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn metrics_timing() {
        let (n, d) = (5000, 32);
        let a = testutil::gaussian(n, d, 1);
        let b = testutil::gaussian(n, d, 2);
        let t = std::time::Instant::now();
        let pr = precision_recall(&a, n, &b, n, d, 3).unwrap();
        eprintln!(
            "precision_recall {n} x {n}, d={d}: {:?} {pr:?}",
            t.elapsed()
        );
        let t = std::time::Instant::now();
        let r = memorization_check(
            &a,
            n,
            &b[..d * 1000],
            1000,
            &b[d * 1000..d * 2000],
            1000,
            d,
            &MemorizationConfig::default(),
        )
        .unwrap();
        eprintln!(
            "memorization 5000 train, 1000 + 1000, d={d}: {:?} ratio {}",
            t.elapsed(),
            r.ratio_p5
        );
        let (m, d2) = (2000, 2);
        let x = testutil::gaussian(m, d2, 3);
        let y = testutil::gaussian(m, d2, 4);
        let t = std::time::Instant::now();
        let ts = two_sample_distances(&x, m, &y, m, d2, &Bandwidth::Median).unwrap();
        eprintln!("two_sample {m} x {m}, d=2: {:?} {ts:?}", t.elapsed());
        let k = 64;
        let t = std::time::Instant::now();
        let f = frechet_distance(&a[..2000 * k], 2000, &b[..2000 * k], 2000, k).unwrap();
        eprintln!("frechet 2000 x 2000, d={k}: {:?} {f}", t.elapsed());
    }
}
