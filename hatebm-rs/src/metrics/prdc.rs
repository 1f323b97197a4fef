//! k-nearest-neighbour precision and recall (Kynkäänniemi et al., NeurIPS 2019),
//! with density and coverage (Naeem et al., ICML 2020) from the same distances.
//!
//! Each real sample `xᵢ` gets the ball `B(xᵢ, rᵢ)` whose radius `rᵢ` is the
//! distance to its `k`-th nearest *other* real sample; each generated sample `yⱼ`
//! gets `B(yⱼ, ρⱼ)` from the generated set likewise. Then
//!
//! * precision = fraction of `yⱼ` inside at least one real ball (sample quality);
//! * recall = fraction of `xᵢ` inside at least one generated ball (diversity);
//! * density = `(1 / (k·M)) Σⱼ #{i : yⱼ ∈ B(xᵢ, rᵢ)}` (≈ 1 when the sets match,
//!   can exceed 1 where generated samples crowd dense real regions);
//! * coverage = fraction of `xᵢ` whose own ball contains at least one `yⱼ` (less
//!   sensitive to generated outliers than recall).
//!
//! Balls are closed (`‖y − x‖ ≤ r`), as in the reference implementations.
//! Distances are exact Euclidean distances between the `f64`-widened rows,
//! computed brute force: cost `O((N + M)² · d)` — use a PCA feature space for
//! images. Rows are processed in parallel (rayon); every result is an integer
//! count or an order statistic, so it is identical for any thread count.

use rayon::prelude::*;

use super::{Real, sq_dist, to_f64_checked};
use crate::Result;

/// The neighbourhood size of Kynkäänniemi et al. (their recommended `k = 3`).
pub const DEFAULT_K: usize = 3;

/// k-NN precision, recall, density and coverage of a generated set against a
/// real one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionRecall {
    /// Fraction of generated samples inside some real sample's k-NN ball, in `[0, 1]`.
    pub precision: f64,
    /// Fraction of real samples inside some generated sample's k-NN ball, in `[0, 1]`.
    pub recall: f64,
    /// Mean number of real k-NN balls containing a generated sample, divided by `k`
    /// (`≥ 0`; ≈ 1 for matching distributions).
    pub density: f64,
    /// Fraction of real samples whose k-NN ball contains a generated sample, in `[0, 1]`.
    pub coverage: f64,
    /// The neighbourhood size used.
    pub k: usize,
}

/// k-NN precision / recall (and density / coverage) of `fake` (`[n_fake, d]`)
/// against `real` (`[n_real, d]`), both row-major, with neighbourhood size `k`
/// ([`DEFAULT_K`] = 3 is the usual choice). Inputs may be raw data or features
/// (e.g. [`super::FeatureSpace::features`]); the result is dimensionless.
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for `k == 0`,
/// `d == 0`, or a set with `≤ k` samples (a k-NN radius needs `k` other samples);
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when a length is not
/// `n·d`; [`Error::NonFinite`](crate::Error::NonFinite) for a NaN / ±∞ input.
pub fn precision_recall<T: Real>(
    real: &[T],
    n_real: usize,
    fake: &[T],
    n_fake: usize,
    d: usize,
    k: usize,
) -> Result<PrecisionRecall> {
    crate::ensure!(k >= 1, "precision/recall: k must be >= 1");
    let real = to_f64_checked("precision/recall real set", real, n_real, d, k + 1)?;
    let fake = to_f64_checked("precision/recall generated set", fake, n_fake, d, k + 1)?;
    let r_real = knn_sq_radii(&real, d, k);
    let r_fake = knn_sq_radii(&fake, d, k);
    // Generated rows: how many real balls hold each one.
    let counts: Vec<usize> = fake
        .par_chunks_exact(d)
        .map(|y| {
            real.chunks_exact(d)
                .zip(&r_real)
                .filter(|(x, r)| sq_dist(y, x) <= **r)
                .count()
        })
        .collect();
    // Real rows: (inside some generated ball, own ball holds a generated sample).
    let flags: Vec<(bool, bool)> = real
        .par_chunks_exact(d)
        .zip(&r_real)
        .map(|(x, &rx)| {
            let (mut recalled, mut covered) = (false, false);
            for (y, &ry) in fake.chunks_exact(d).zip(&r_fake) {
                let dist = sq_dist(x, y);
                recalled |= dist <= ry;
                covered |= dist <= rx;
                if recalled && covered {
                    break;
                }
            }
            (recalled, covered)
        })
        .collect();
    let precise = counts.iter().filter(|&&c| c > 0).count();
    let total: usize = counts.iter().sum();
    let recalled = flags.iter().filter(|f| f.0).count();
    let covered = flags.iter().filter(|f| f.1).count();
    Ok(PrecisionRecall {
        precision: precise as f64 / n_fake as f64,
        recall: recalled as f64 / n_real as f64,
        density: total as f64 / (k * n_fake) as f64,
        coverage: covered as f64 / n_real as f64,
        k,
    })
}

/// For each row, the squared distance to its `k`-th nearest other row
/// (`n > k` rows of `d` values).
pub(crate) fn knn_sq_radii(x: &[f64], d: usize, k: usize) -> Vec<f64> {
    let n = x.len() / d;
    debug_assert!(n > k);
    (0..n)
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(n - 1),
            |buf: &mut Vec<f64>, i| {
                buf.clear();
                let xi = &x[i * d..(i + 1) * d];
                for (j, xj) in x.chunks_exact(d).enumerate() {
                    if j != i {
                        buf.push(sq_dist(xi, xj));
                    }
                }
                *buf.select_nth_unstable_by(k - 1, f64::total_cmp).1
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::metrics::testutil::gaussian;

    /// `n` points from `modes` well-separated 4-D Gaussian blobs (centres 20 apart
    /// along the first axis, std 1), drawing modes from `allowed` round-robin.
    fn blobs(n: usize, allowed: &[usize], seed: u64) -> Vec<f64> {
        let d = 4;
        let z = gaussian(n, d, seed);
        let mut x = Vec::with_capacity(n * d);
        for i in 0..n {
            let m = allowed[i % allowed.len()];
            for j in 0..d {
                x.push(z[i * d + j] + if j == 0 { 20.0 * m as f64 } else { 0.0 });
            }
        }
        x
    }

    #[test]
    fn identical_sets_are_perfect() {
        let x = gaussian(300, 5, 1);
        let pr = precision_recall(&x, 300, &x, 300, 5, DEFAULT_K).unwrap();
        assert_eq!(
            (pr.precision, pr.recall, pr.coverage, pr.k),
            (1.0, 1.0, 1.0, 3)
        );
        assert!(pr.density >= 1.0 / 3.0, "{}", pr.density);
    }

    #[test]
    fn far_apart_sets_score_zero() {
        let a = gaussian(200, 3, 1);
        let b: Vec<f64> = gaussian(150, 3, 2).iter().map(|v| v + 1000.0).collect();
        let pr = precision_recall(&a, 200, &b, 150, 3, 3).unwrap();
        assert_eq!(
            (pr.precision, pr.recall, pr.density, pr.coverage),
            (0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn same_distribution_scores_high_and_is_symmetric_in_roles() {
        let a = gaussian(1000, 4, 3);
        let b = gaussian(1000, 4, 4);
        let ab = precision_recall(&a, 1000, &b, 1000, 4, 3).unwrap();
        let ba = precision_recall(&b, 1000, &a, 1000, 4, 3).unwrap();
        assert!(ab.precision > 0.8 && ab.recall > 0.8, "{ab:?}");
        // Naeem et al.: for equal distributions E[coverage] ≈ 1 − 2^{−k} = 0.875.
        assert!((ab.density - 1.0).abs() < 0.15, "{ab:?}");
        assert!((ab.coverage - 0.875).abs() < 0.05, "{ab:?}");
        // Swapping the roles swaps precision and recall exactly.
        assert_eq!((ab.precision, ab.recall), (ba.recall, ba.precision));
    }

    #[test]
    fn half_the_modes_gives_half_the_recall() {
        let all: Vec<usize> = (0..8).collect();
        let real = blobs(2000, &all, 5);
        let fake = blobs(2000, &[0, 2, 4, 6], 6);
        let pr = precision_recall(&real, 2000, &fake, 2000, 4, 3).unwrap();
        // Exactly 1000 real samples lie in the covered modes; a few tail points of
        // those modes fall outside every generated ball.
        assert!(pr.recall > 0.45 && pr.recall <= 0.5, "{pr:?}");
        assert!(pr.coverage > 0.45 && pr.coverage <= 0.5, "{pr:?}");
        assert!(pr.precision > 0.9, "{pr:?}");
        // Mode collapse onto one point: perfect precision, almost no recall.
        let collapsed: Vec<f64> = (0..100).flat_map(|_| [0.0, 0.0, 0.0, 0.0]).collect();
        let pr = precision_recall(&real, 2000, &collapsed, 100, 4, 3).unwrap();
        assert_eq!(pr.precision, 1.0);
        assert!(pr.recall < 0.01, "{pr:?}");
    }

    #[test]
    fn deterministic_and_precision_agnostic() {
        let a = gaussian(300, 6, 7);
        let b: Vec<f64> = gaussian(200, 6, 8).iter().map(|v| v * 1.3).collect();
        let p1 = precision_recall(&a, 300, &b, 200, 6, 5).unwrap();
        let p2 = precision_recall(&a, 300, &b, 200, 6, 5).unwrap();
        assert_eq!(p1, p2);
        let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        let p3 = precision_recall(&af, 300, &bf, 200, 6, 5).unwrap();
        assert!(
            (p3.precision - p1.precision).abs() <= 0.01 && (p3.recall - p1.recall).abs() <= 0.01
        );
        // The k-NN radius by brute force for one row.
        let r = knn_sq_radii(&a, 6, 5);
        let mut dists: Vec<f64> = (1..300)
            .map(|j| sq_dist(&a[..6], &a[j * 6..j * 6 + 6]))
            .collect();
        dists.sort_by(f64::total_cmp);
        assert_eq!(r[0], dists[4]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = vec![0.0f32; 12];
        assert!(matches!(
            precision_recall(&x, 4, &x, 4, 3, 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            precision_recall(&x, 4, &x, 4, 3, 4),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            precision_recall(&x, 4, &x, 3, 3, 1),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut bad = x.clone();
        bad[0] = f32::NAN;
        let e = precision_recall(&x, 4, &bad, 4, 3, 1).unwrap_err();
        assert!(
            matches!(e, Error::NonFinite(_)) && e.to_string().contains("generated"),
            "{e}"
        );
    }
}
