//! A nearest-training-neighbour check against memorisation.
//!
//! For every generated sample `g`, `δ(g) = minₜ ‖g − t‖` over the training set;
//! for every held-out real sample `h` (same distribution, **not** in the
//! training set), `δ(h)` likewise. A model that generalises produces samples no
//! closer to the training points than fresh data are, so the two distance
//! distributions should match; a model that copies training points produces a
//! left tail of near-zero distances. The report compares the 5th percentiles:
//!
//! `ratio_p5 = p5(δ(generated)) / p5(δ(held-out))`, and memorisation is
//! **suspected when `ratio_p5 <` [`DEFAULT_MEMORIZATION_THRESHOLD`] `= 0.5`**:
//! the closest 5 % of generated samples sit at less than half the distance at
//! which the closest 5 % of fresh data sit. Why this rule:
//!
//! * the 5th percentile reacts as soon as ≥ 5 % of the samples are (near-)copies
//!   (it drops to ~0), while the median would need half of them;
//! * the held-out set calibrates the scale, so one threshold serves any data set
//!   and feature space; the ratio of order statistics has a sampling spread of
//!   ~10–20 % for a few hundred samples per set, far from 0.5;
//! * blurry or off-manifold samples have *larger* distances (ratio > 1) and are
//!   not flagged: this check says nothing about quality.
//!
//! The closest pairs (generated index, training index, distance) are returned so
//! that a harness can draw them side by side for a visual check. Distances are
//! exact Euclidean distances in the input space (pixels or features), brute
//! force over the training set: `O((n_gen + n_held) · n_train · d)`.

use rayon::prelude::*;

use super::{Real, quantile_sorted, sq_dist, to_f64_checked};
use crate::Result;

/// The default threshold on [`MemorizationReport::ratio_p5`] below which
/// memorisation is suspected.
pub const DEFAULT_MEMORIZATION_THRESHOLD: f64 = 0.5;

/// Options of [`memorization_check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemorizationConfig {
    /// Memorisation is suspected when `ratio_p5 < threshold` (default
    /// [`DEFAULT_MEMORIZATION_THRESHOLD`]; must be finite and > 0).
    pub threshold: f64,
    /// How many closest (generated, training) pairs to return (default 16).
    pub n_pairs: usize,
}

impl Default for MemorizationConfig {
    fn default() -> Self {
        MemorizationConfig {
            threshold: DEFAULT_MEMORIZATION_THRESHOLD,
            n_pairs: 16,
        }
    }
}

/// Summary of a set of nearest-neighbour distances (input units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NnStats {
    /// The smallest distance.
    pub min: f64,
    /// The 5th percentile (linear interpolation, NumPy's default).
    pub p5: f64,
    /// The median.
    pub median: f64,
    /// The mean.
    pub mean: f64,
}

/// A generated sample and its nearest training sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosestPair {
    /// Row index in the generated set.
    pub generated: usize,
    /// Row index of its nearest training sample (lowest index on ties).
    pub train: usize,
    /// Their Euclidean distance.
    pub distance: f64,
}

/// The result of [`memorization_check`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemorizationReport {
    /// Nearest-training-neighbour distances of the generated samples.
    pub generated: NnStats,
    /// Nearest-training-neighbour distances of the held-out real samples.
    pub held_out: NnStats,
    /// `generated.p5 / held_out.p5` (1 when both are 0, +∞ when only the
    /// held-out one is 0). About 1 for a generator that behaves like fresh data.
    pub ratio_p5: f64,
    /// `generated.median / held_out.median` (same conventions).
    pub ratio_median: f64,
    /// Fraction of generated samples closer to the training set than the
    /// held-out 5th percentile (≈ 0.05 for fresh-data-like samples).
    pub frac_below_held_out_p5: f64,
    /// The threshold applied.
    pub threshold: f64,
    /// The verdict: `ratio_p5 < threshold`.
    pub suspected: bool,
    /// The `n_pairs` generated samples closest to the training set, closest first
    /// (ties: lower generated index first).
    pub closest_pairs: Vec<ClosestPair>,
    /// Per generated sample, the distance to its nearest training sample.
    pub generated_distances: Vec<f64>,
    /// Per held-out sample, the distance to its nearest training sample.
    pub held_out_distances: Vec<f64>,
}

/// Compares how close generated samples (`[n_gen, d]`) and held-out real samples
/// (`[n_held, d]`) lie to the training set (`[n_train, d]`); all row-major, in
/// the same space (raw data or features). The held-out set must not overlap the
/// training set. See the module documentation for the rule.
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for `d == 0`, an
/// empty set, or a threshold that is not finite and positive;
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when a length is not
/// `n·d`; [`Error::NonFinite`](crate::Error::NonFinite) for a NaN / ±∞ input.
pub fn memorization_check<T: Real>(
    train: &[T],
    n_train: usize,
    generated: &[T],
    n_gen: usize,
    held_out: &[T],
    n_held: usize,
    d: usize,
    config: &MemorizationConfig,
) -> Result<MemorizationReport> {
    crate::ensure!(
        config.threshold.is_finite() && config.threshold > 0.0,
        "memorisation threshold must be finite and > 0, got {}",
        config.threshold
    );
    let train = to_f64_checked("memorisation training set", train, n_train, d, 1)?;
    let generated = to_f64_checked("memorisation generated set", generated, n_gen, d, 1)?;
    let held_out = to_f64_checked("memorisation held-out set", held_out, n_held, d, 1)?;
    let gen_nn = nearest(&generated, &train, d);
    let held_nn = nearest(&held_out, &train, d);
    let generated_distances: Vec<f64> = gen_nn.iter().map(|p| p.1).collect();
    let held_out_distances: Vec<f64> = held_nn.iter().map(|p| p.1).collect();
    let gs = stats(&generated_distances);
    let hs = stats(&held_out_distances);
    let ratio = |g: f64, h: f64| {
        if h > 0.0 {
            g / h
        } else if g > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    };
    let ratio_p5 = ratio(gs.p5, hs.p5);
    let below = generated_distances.iter().filter(|&&x| x < hs.p5).count();
    let mut order: Vec<usize> = (0..n_gen).collect();
    order.sort_by(|&a, &b| {
        generated_distances[a]
            .total_cmp(&generated_distances[b])
            .then(a.cmp(&b))
    });
    let closest_pairs = order
        .iter()
        .take(config.n_pairs)
        .map(|&i| ClosestPair {
            generated: i,
            train: gen_nn[i].0,
            distance: gen_nn[i].1,
        })
        .collect();
    Ok(MemorizationReport {
        generated: gs,
        held_out: hs,
        ratio_p5,
        ratio_median: ratio(gs.median, hs.median),
        frac_below_held_out_p5: below as f64 / n_gen as f64,
        threshold: config.threshold,
        suspected: ratio_p5 < config.threshold,
        closest_pairs,
        generated_distances,
        held_out_distances,
    })
}

/// For each query row, `(index, distance)` of its nearest reference row (lowest
/// index on ties).
fn nearest(queries: &[f64], reference: &[f64], d: usize) -> Vec<(usize, f64)> {
    queries
        .par_chunks_exact(d)
        .map(|q| {
            let mut best = (0, f64::INFINITY);
            for (j, r) in reference.chunks_exact(d).enumerate() {
                let dist = sq_dist(q, r);
                if dist < best.1 {
                    best = (j, dist);
                }
            }
            (best.0, best.1.sqrt())
        })
        .collect()
}

fn stats(values: &[f64]) -> NnStats {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    NnStats {
        min: s[0],
        p5: quantile_sorted(&s, 0.05),
        median: quantile_sorted(&s, 0.5),
        mean: s.iter().sum::<f64>() / s.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::metrics::testutil::gaussian;

    fn check(train: &[f64], gen_: &[f64], held: &[f64], d: usize) -> MemorizationReport {
        memorization_check(
            train,
            train.len() / d,
            gen_,
            gen_.len() / d,
            held,
            held.len() / d,
            d,
            &MemorizationConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn copies_of_training_points_are_flagged() {
        let d = 8;
        let train = gaussian(1000, d, 1);
        let held = gaussian(300, d, 2);
        // Every generated sample is a training sample, slightly perturbed.
        let noise = gaussian(300, d, 3);
        let copies: Vec<f64> = (0..300)
            .flat_map(|i| {
                let t = (i * 7) % 1000;
                (0..d).map(move |j| (t, j))
            })
            .zip(&noise)
            .map(|((t, j), e)| train[t * d + j] + 1e-3 * e)
            .collect();
        let r = check(&train, &copies, &held, d);
        assert!(r.suspected && r.ratio_p5 < 0.01, "{r:?}");
        assert!(r.frac_below_held_out_p5 > 0.99);
        let p = r.closest_pairs[0];
        assert_eq!(p.train, (p.generated * 7) % 1000);
        assert_eq!(r.closest_pairs.len(), 16);
        assert!(
            r.closest_pairs
                .windows(2)
                .all(|w| w[0].distance <= w[1].distance)
        );
        // Copying only 10 % of the samples (the rest fresh) is still flagged.
        let mut mixed = gaussian(300, d, 4);
        mixed[..30 * d].copy_from_slice(&copies[..30 * d]);
        let r = check(&train, &mixed, &held, d);
        assert!(r.suspected, "{r:?}");
        assert!(r.closest_pairs.iter().all(|p| p.generated < 30));
        // Exact copies: distance 0 and the right training index.
        let exact = train[5 * d..8 * d].to_vec();
        let r = check(&train, &exact, &held, d);
        assert_eq!(r.generated.min, 0.0);
        assert_eq!(r.ratio_p5, 0.0);
        assert_eq!(
            r.closest_pairs,
            (0..3)
                .map(|i| ClosestPair {
                    generated: i,
                    train: 5 + i,
                    distance: 0.0
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn fresh_samples_are_not_flagged() {
        let d = 8;
        let train = gaussian(1000, d, 1);
        let held = gaussian(400, d, 2);
        let fresh = gaussian(400, d, 5);
        let r = check(&train, &fresh, &held, d);
        assert!(!r.suspected, "{r:?}");
        assert!((0.7..1.4).contains(&r.ratio_p5), "{r:?}");
        assert!((0.85..1.15).contains(&r.ratio_median), "{r:?}");
        assert!(r.frac_below_held_out_p5 < 0.12, "{r:?}");
        // Blurry samples (shrunk towards the mean, off the data) are not flagged either.
        let blurry: Vec<f64> = fresh.iter().map(|v| 0.3 * v + 2.0).collect();
        assert!(!check(&train, &blurry, &held, d).suspected);
        let r2 = check(&train, &fresh, &held, d);
        assert_eq!(r, r2);
        assert_eq!(r.generated_distances.len(), 400);
        assert_eq!(r.held_out_distances.len(), 400);
    }

    #[test]
    fn stats_and_ratio_conventions() {
        let s = stats(&[4.0, 0.0, 2.0, 1.0, 3.0]);
        assert_eq!((s.min, s.median, s.mean), (0.0, 2.0, 2.0));
        assert!((s.p5 - 0.2).abs() < 1e-12);
        // Held-out duplicates of training points: both p5 are 0 → ratio 1.
        let train = vec![0.0, 1.0, 2.0];
        let r = memorization_check(
            &train,
            3,
            &train,
            3,
            &train,
            3,
            1,
            &MemorizationConfig::default(),
        )
        .unwrap();
        assert_eq!((r.ratio_p5, r.suspected), (1.0, false));
        let r = memorization_check(
            &train,
            3,
            &[0.5],
            1,
            &train,
            3,
            1,
            &MemorizationConfig::default(),
        )
        .unwrap();
        assert_eq!(r.ratio_p5, f64::INFINITY);
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = vec![0.0f32; 6];
        let c = MemorizationConfig::default();
        assert!(matches!(
            memorization_check(&x, 3, &x, 0, &x, 3, 2, &c),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            memorization_check(&x, 3, &x, 2, &x, 3, 2, &c),
            Err(Error::ShapeMismatch { .. })
        ));
        let bad_t = MemorizationConfig {
            threshold: f64::NAN,
            ..c
        };
        assert!(matches!(
            memorization_check(&x, 3, &x, 3, &x, 3, 2, &bad_t),
            Err(Error::InvalidArgument(_))
        ));
        let mut nan = x.clone();
        nan[5] = f32::NAN;
        let e = memorization_check(&x, 3, &x, 3, &nan, 3, 2, &c).unwrap_err();
        assert!(
            matches!(e, Error::NonFinite(_)) && e.to_string().contains("held-out"),
            "{e}"
        );
    }
}
