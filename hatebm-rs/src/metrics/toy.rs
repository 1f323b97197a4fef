//! Metrics for the 2-D toy distributions: per-mode coverage for the ring and
//! grid mixtures, and two-sample distances to the true distribution (MMD² with a
//! multi-bandwidth RBF kernel, and the energy distance).
//!
//! The two-sample distances work in any dimension `d`; the coverage functions
//! take 2-D samples (`[n, 2]` row-major).

use rayon::prelude::*;

use super::{Real, sq_dist, to_f64_checked};
use crate::data::ToyDistribution;
use crate::{Error, Result};

/// The usual coverage threshold: a mode holding ≥ 5 % of the samples is covered.
pub const DEFAULT_MIN_FRACTION: f64 = 0.05;

/// Options of [`mode_coverage`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoverageConfig {
    /// A mode counts as covered when it holds at least this fraction of all
    /// samples (in `[0, 1]`). `None` (the default) means `min(0.05, 0.5 / K)` for
    /// `K` modes: 5 % — the usual threshold — unless that is more than half the
    /// uniform share, as for `grid25` (4 % per mode), where it becomes 2 %.
    pub min_fraction: Option<f64>,
    /// A sample is "high quality" when it lies within `radius_std · std` (Euclidean)
    /// of its nearest centre (default 3; finite, > 0).
    pub radius_std: f64,
}

impl Default for CoverageConfig {
    fn default() -> Self {
        CoverageConfig {
            min_fraction: None,
            radius_std: 3.0,
        }
    }
}

/// Per-mode coverage of a 2-D sample set ([`mode_coverage`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModeCoverage {
    /// Per mode, the fraction of samples whose nearest centre it is (sums to 1).
    pub fractions: Vec<f64>,
    /// Per mode, the fraction of all samples that are nearest to it **and** within
    /// the radius of it.
    pub fractions_within: Vec<f64>,
    /// The fraction of samples within the radius of their nearest centre (the
    /// "high-quality" fraction; `1 − exp(−r²/2σ²)` ≈ 0.989 for a perfect sampler
    /// at 3σ in 2-D).
    pub within: f64,
    /// The number of modes with `fractions[m] ≥ min_fraction`.
    pub modes_covered: usize,
    /// The number of modes with `fractions_within[m] ≥ min_fraction`.
    pub modes_covered_within: usize,
    /// `KL(fractions ‖ uniform) = Σ pₘ ln(K pₘ)` in nats: 0 when the modes are hit
    /// equally often, `ln K` when all samples are on one mode.
    pub kl_to_uniform: f64,
    /// The absolute radius used, `radius_std · std` (input units).
    pub radius: f64,
    /// The coverage threshold used (the effective `min_fraction`).
    pub min_fraction: f64,
}

/// Mode coverage of `n` 2-D samples (`[n, 2]` row-major) with respect to the
/// mode `centres` (e.g. [`ToyDistribution::mode_centres`]) of per-coordinate std
/// `std`: each sample is assigned to its nearest centre (lowest index on ties),
/// then the fractions per mode, the fraction within `radius_std · std`, and the
/// covered-mode counts are reported (see [`ModeCoverage`]).
///
/// # Errors
/// [`Error::InvalidArgument`] for `n == 0`, no centres, a non-finite centre, a
/// negative or non-finite `std`, or a bad config; [`Error::ShapeMismatch`] when
/// `samples.len() != 2n`; [`Error::NonFinite`] for a NaN / ±∞ sample.
pub fn mode_coverage<T: Real>(
    samples: &[T],
    n: usize,
    centres: &[[f32; 2]],
    std: f64,
    config: &CoverageConfig,
) -> Result<ModeCoverage> {
    crate::ensure!(!centres.is_empty(), "mode coverage: no mode centres given");
    crate::ensure!(
        centres.iter().flatten().all(|c| c.is_finite()),
        "mode coverage: a mode centre is not finite"
    );
    crate::ensure!(
        std.is_finite() && std >= 0.0,
        "mode coverage: std must be finite and >= 0, got {std}"
    );
    let min_fraction = config
        .min_fraction
        .unwrap_or_else(|| DEFAULT_MIN_FRACTION.min(0.5 / centres.len() as f64));
    crate::ensure!(
        (0.0..=1.0).contains(&min_fraction),
        "mode coverage: min_fraction must be in [0, 1], got {min_fraction}"
    );
    crate::ensure!(
        config.radius_std.is_finite() && config.radius_std > 0.0,
        "mode coverage: radius_std must be finite and > 0, got {}",
        config.radius_std
    );
    let x = to_f64_checked("mode coverage samples", samples, n, 2, 1)?;
    let k = centres.len();
    let radius = config.radius_std * std;
    let r2 = radius * radius;
    let c: Vec<[f64; 2]> = centres
        .iter()
        .map(|p| [f64::from(p[0]), f64::from(p[1])])
        .collect();
    let mut counts = vec![0usize; k];
    let mut counts_within = vec![0usize; k];
    for p in x.chunks_exact(2) {
        let (mut best, mut best_d) = (0, f64::INFINITY);
        for (m, cm) in c.iter().enumerate() {
            let dist = sq_dist(p, cm);
            if dist < best_d {
                (best, best_d) = (m, dist);
            }
        }
        counts[best] += 1;
        if best_d <= r2 {
            counts_within[best] += 1;
        }
    }
    let frac = |v: &[usize]| -> Vec<f64> { v.iter().map(|&c| c as f64 / n as f64).collect() };
    let fractions = frac(&counts);
    let fractions_within = frac(&counts_within);
    let covered = |f: &[f64]| f.iter().filter(|&&p| p >= min_fraction).count();
    let kl_to_uniform = fractions
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * (p * k as f64).ln())
        .sum::<f64>()
        .max(0.0);
    Ok(ModeCoverage {
        modes_covered: covered(&fractions),
        modes_covered_within: covered(&fractions_within),
        within: counts_within.iter().sum::<usize>() as f64 / n as f64,
        fractions,
        fractions_within,
        kl_to_uniform,
        radius,
        min_fraction,
    })
}

/// [`mode_coverage`] with the centres and std of a toy distribution.
///
/// # Errors
/// [`Error::InvalidArgument`] for a distribution without discrete modes (two
/// moons, swiss roll, checkerboard) or invalid parameters; otherwise as
/// [`mode_coverage`].
pub fn mode_coverage_for<T: Real>(
    dist: &ToyDistribution,
    samples: &[T],
    n: usize,
    config: &CoverageConfig,
) -> Result<ModeCoverage> {
    dist.validate()?;
    match (dist.mode_centres(), dist.mode_std()) {
        (Some(c), Some(s)) => mode_coverage(samples, n, &c, f64::from(s), config),
        _ => Err(Error::InvalidArgument(format!(
            "mode coverage: `{}` has no discrete modes (use the two-sample distances)",
            dist.name()
        ))),
    }
}

/// The kernel bandwidths of [`mmd2_rbf`] / [`two_sample_distances`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Bandwidth {
    /// The default rule: seven bandwidths `σₗ = m · 2^{1−l}`, `l = 0..7` (from `2m`
    /// down to `m/32`), where `m` is the median pairwise Euclidean distance among
    /// the first `min(n_real, 1000)` **real** samples (the upper median: the
    /// `⌊P/2⌋`-th smallest of the `P` pairs). Depending only on the reference set,
    /// the kernel is the same for every model compared against it; the range of
    /// scales sees both the global layout (modes) and the fine structure (mode
    /// width) of the toy distributions.
    #[default]
    Median,
    /// Explicit bandwidths `σₗ` (each finite and > 0), in input units.
    Fixed(Vec<f64>),
}

/// The samples used by the [`Bandwidth::Median`] rule.
pub const MEDIAN_MAX_SAMPLES: usize = 1000;

/// The MMD² and energy distance of two samples ([`two_sample_distances`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TwoSample {
    /// Unbiased MMD² with the averaged RBF kernel (dimensionless; ≈ 0 ± O(1/n)
    /// for equal distributions, may be slightly negative).
    pub mmd2: f64,
    /// The energy distance `2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖` with U-statistics for the
    /// within-set terms (input units; ≈ 0 for equal distributions, may be slightly
    /// negative).
    pub energy: f64,
    /// The bandwidths used.
    pub bandwidths: Vec<f64>,
}

/// The unbiased MMD² between `real` (`[n_real, d]`) and `fake` (`[n_fake, d]`)
/// with the kernel `k(x, y) = (1/L) Σₗ exp(−‖x − y‖² / (2σₗ²))`:
///
/// `MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(xᵢ, xⱼ) + 1/(n(n−1)) Σ_{i≠j} k(yᵢ, yⱼ) − 2/(mn) Σ_{i,j} k(xᵢ, yⱼ)`
///
/// (Gretton et al., JMLR 2012). Cost `O((m + n)² · d)` plus `L` exponentials per
/// pair. See [`two_sample_distances`] for the errors.
///
/// # Errors
/// As [`two_sample_distances`].
pub fn mmd2_rbf<T: Real>(
    real: &[T],
    n_real: usize,
    fake: &[T],
    n_fake: usize,
    d: usize,
    bandwidth: &Bandwidth,
) -> Result<f64> {
    Ok(two_sample_distances(real, n_real, fake, n_fake, d, bandwidth)?.mmd2)
}

/// The energy distance (Székely & Rizzo) between `real` and `fake`:
/// `2/(mn) Σ ‖xᵢ − yⱼ‖ − 1/(m(m−1)) Σ_{i≠j} ‖xᵢ − xⱼ‖ − 1/(n(n−1)) Σ_{i≠j} ‖yᵢ − yⱼ‖`,
/// in input units; zero in expectation iff the distributions are equal. No
/// tuning parameter.
///
/// # Errors
/// As [`two_sample_distances`] (without the bandwidth checks).
pub fn energy_distance<T: Real>(
    real: &[T],
    n_real: usize,
    fake: &[T],
    n_fake: usize,
    d: usize,
) -> Result<f64> {
    let x = to_f64_checked("energy distance real set", real, n_real, d, 2)?;
    let y = to_f64_checked("energy distance generated set", fake, n_fake, d, 2)?;
    let (_, e) = pair_sums(&x, &y, d, &[]);
    Ok(e)
}

/// Both the unbiased MMD² ([`mmd2_rbf`]) and the energy distance
/// ([`energy_distance`]) from one pass over the pairs.
///
/// # Errors
/// [`Error::InvalidArgument`] for `d == 0`, fewer than 2 samples in a set, a
/// fixed bandwidth list that is empty or has a non-positive / non-finite entry,
/// or (median rule) real samples that are all identical;
/// [`Error::ShapeMismatch`] when a length is not `n·d`; [`Error::NonFinite`] for
/// a NaN / ±∞ input.
pub fn two_sample_distances<T: Real>(
    real: &[T],
    n_real: usize,
    fake: &[T],
    n_fake: usize,
    d: usize,
    bandwidth: &Bandwidth,
) -> Result<TwoSample> {
    let x = to_f64_checked("two-sample real set", real, n_real, d, 2)?;
    let y = to_f64_checked("two-sample generated set", fake, n_fake, d, 2)?;
    let bandwidths = match bandwidth {
        Bandwidth::Fixed(s) => {
            crate::ensure!(!s.is_empty(), "MMD: the bandwidth list is empty");
            crate::ensure!(
                s.iter().all(|v| v.is_finite() && *v > 0.0),
                "MMD: bandwidths must be finite and > 0, got {s:?}"
            );
            s.clone()
        }
        Bandwidth::Median => {
            let m = median_distance(&x, d);
            crate::ensure!(
                m.is_finite() && m > 0.0,
                "MMD: the median distance between real samples is 0 (they are mostly \
                 identical); give Bandwidth::Fixed"
            );
            (0..7).map(|l| m * 2f64.powi(1 - l)).collect()
        }
    };
    let gammas: Vec<f64> = bandwidths.iter().map(|s| 0.5 / (s * s)).collect();
    let (mmd2, energy) = pair_sums(&x, &y, d, &gammas);
    Ok(TwoSample {
        mmd2,
        energy,
        bandwidths,
    })
}

/// The upper median of the pairwise distances among the first
/// [`MEDIAN_MAX_SAMPLES`] rows.
fn median_distance(x: &[f64], d: usize) -> f64 {
    let n = (x.len() / d).min(MEDIAN_MAX_SAMPLES);
    let mut dist: Vec<f64> = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            dist.push(sq_dist(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]));
        }
    }
    let mid = dist.len() / 2;
    dist.select_nth_unstable_by(mid, f64::total_cmp).1.sqrt()
}

/// `(MMD²_u, energy distance)`; the kernel is the mean over `gammas` of
/// `exp(−γ ‖·‖²)` (MMD² is 0 when `gammas` is empty).
fn pair_sums(x: &[f64], y: &[f64], d: usize, gammas: &[f64]) -> (f64, f64) {
    let (m, n) = (x.len() / d, y.len() / d);
    let kern = |d2: f64| -> f64 {
        if gammas.is_empty() {
            0.0
        } else {
            gammas.iter().map(|g| (-g * d2).exp()).sum::<f64>() / gammas.len() as f64
        }
    };
    // Sums over i < j within a set (doubled below), and over all cross pairs; per-row
    // partial sums are reduced in row order, so the result does not depend on threads.
    let within = |z: &[f64]| -> (f64, f64) {
        let rows: Vec<(f64, f64)> = z
            .par_chunks_exact(d)
            .enumerate()
            .map(|(i, a)| {
                z[(i + 1) * d..]
                    .chunks_exact(d)
                    .fold((0.0, 0.0), |(k, e), b| {
                        let d2 = sq_dist(a, b);
                        (k + kern(d2), e + d2.sqrt())
                    })
            })
            .collect();
        rows.iter().fold((0.0, 0.0), |(k, e), r| (k + r.0, e + r.1))
    };
    let (kxx, exx) = within(x);
    let (kyy, eyy) = within(y);
    let rows: Vec<(f64, f64)> = x
        .par_chunks_exact(d)
        .map(|a| {
            y.chunks_exact(d).fold((0.0, 0.0), |(k, e), b| {
                let d2 = sq_dist(a, b);
                (k + kern(d2), e + d2.sqrt())
            })
        })
        .collect();
    let (kxy, exy) = rows.iter().fold((0.0, 0.0), |(k, e), r| (k + r.0, e + r.1));
    let (mf, nf) = (m as f64, n as f64);
    let pm = mf * (mf - 1.0) / 2.0; // unordered pairs: Σ_{i≠j} / (m(m−1)) = Σ_{i<j} / (m(m−1)/2)
    let pn = nf * (nf - 1.0) / 2.0;
    let mmd2 = kxx / pm + kyy / pn - 2.0 * kxy / (mf * nf);
    let energy = 2.0 * exy / (mf * nf) - exx / pm - eyy / pn;
    (mmd2, energy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_centres(centres: &[[f32; 2]], per_mode: usize) -> Vec<f32> {
        centres
            .iter()
            .flat_map(|c| std::iter::repeat_n(*c, per_mode))
            .flatten()
            .collect()
    }

    #[test]
    fn samples_at_the_modes_cover_everything() {
        for dist in [ToyDistribution::ring8(), ToyDistribution::grid25()] {
            let c = dist.mode_centres().unwrap();
            let k = c.len();
            let x = at_centres(&c, 4);
            let cov = mode_coverage_for(&dist, &x, 4 * k, &CoverageConfig::default()).unwrap();
            assert_eq!(cov.modes_covered, k);
            assert_eq!(cov.modes_covered_within, k);
            assert_eq!(cov.within, 1.0);
            assert!(
                cov.fractions
                    .iter()
                    .all(|&f| (f - 1.0 / k as f64).abs() < 1e-15)
            );
            assert!(cov.kl_to_uniform.abs() < 1e-12, "{}", cov.kl_to_uniform);
            assert!((cov.radius - 3.0 * f64::from(dist.mode_std().unwrap())).abs() < 1e-9);
        }
    }

    #[test]
    fn one_mode_only_is_one_covered_mode() {
        let dist = ToyDistribution::ring8();
        let c = dist.mode_centres().unwrap();
        let x: Vec<f32> = (0..100)
            .flat_map(|i| [c[3][0] + 0.001 * (i % 3) as f32, c[3][1]])
            .collect();
        let cov = mode_coverage_for(&dist, &x, 100, &CoverageConfig::default()).unwrap();
        assert_eq!((cov.modes_covered, cov.modes_covered_within), (1, 1));
        assert_eq!(cov.fractions[3], 1.0);
        assert!((cov.kl_to_uniform - 8f64.ln()).abs() < 1e-12);
        // Off-mode samples: assigned to the nearest mode but not "within".
        let x: Vec<f32> = (0..10).flat_map(|_| [c[0][0] + 0.5, c[0][1]]).collect();
        let cov = mode_coverage_for(&dist, &x, 10, &CoverageConfig::default()).unwrap();
        assert_eq!(
            (cov.modes_covered, cov.modes_covered_within, cov.within),
            (1, 0, 0.0)
        );
    }

    #[test]
    fn true_samples_score_as_expected_and_threshold_is_configurable() {
        let dist = ToyDistribution::grid25();
        let (x, _) = dist.sample_seeded(5000, 1).unwrap();
        let cov = mode_coverage_for(&dist, &x, 5000, &CoverageConfig::default()).unwrap();
        // Each mode holds ~4 %: the default threshold is 2 % for grid25 and counts all
        // of them; a fixed 5 % threshold counts (almost) none.
        assert_eq!((cov.modes_covered, cov.min_fraction), (25, 0.02));
        let cfg = CoverageConfig {
            min_fraction: Some(0.05),
            ..Default::default()
        };
        let cov5 = mode_coverage_for(&dist, &x, 5000, &cfg).unwrap();
        assert!(cov5.modes_covered < 5, "{}", cov5.modes_covered);
        let ring = ToyDistribution::ring8();
        let (r, _) = ring.sample_seeded(1000, 2).unwrap();
        let cr = mode_coverage_for(&ring, &r, 1000, &CoverageConfig::default()).unwrap();
        assert_eq!((cr.modes_covered, cr.min_fraction), (8, 0.05));
        // P(‖z‖ ≤ 3) for a 2-D standard normal = 1 − e^{−4.5} ≈ 0.9889.
        assert!((cov.within - 0.9889).abs() < 0.01, "{}", cov.within);
        assert!(cov.kl_to_uniform < 0.01);
        assert!(matches!(
            mode_coverage_for(&ToyDistribution::Checkerboard, &x, 5000, &cfg),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn mmd_and_energy_vanish_for_equal_distributions_and_grow_with_shift() {
        let dist = ToyDistribution::ring8();
        let n = 800;
        let (a, _) = dist.sample_seeded(n, 1).unwrap();
        let (b, _) = dist.sample_seeded(n, 2).unwrap();
        let same = two_sample_distances(&a, n, &b, n, 2, &Bandwidth::Median).unwrap();
        assert_eq!(same.bandwidths.len(), 7);
        assert!(
            (same.bandwidths[0] / 2.0 - 2.83).abs() < 0.2,
            "{:?}",
            same.bandwidths
        );
        assert!(same.mmd2.abs() < 0.005, "{same:?}");
        assert!(same.energy.abs() < 0.02, "{same:?}");
        let shifted: Vec<f32> = b
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 2 == 0 { v + 0.3 } else { *v })
            .collect();
        let diff = two_sample_distances(&a, n, &shifted, n, 2, &Bandwidth::Median).unwrap();
        assert!(diff.mmd2 > 0.03, "{diff:?}");
        assert!(diff.energy > 0.05, "{diff:?}");
        // Mode collapse (half the modes) is also seen.
        let (c, l) = dist.sample_seeded(2 * n, 3).unwrap();
        let half: Vec<f32> = c
            .chunks(2)
            .zip(l.unwrap())
            .filter(|(_, m)| m % 2 == 0)
            .flat_map(|(p, _)| p.to_vec())
            .take(2 * n)
            .collect();
        let nh = half.len() / 2;
        let collapsed = two_sample_distances(&a, n, &half, nh, 2, &Bandwidth::Median).unwrap();
        assert!(
            collapsed.mmd2 > 0.05 && collapsed.energy > 0.05,
            "{collapsed:?}"
        );
        // Wrappers agree with the combined function.
        assert_eq!(
            mmd2_rbf(&a, n, &b, n, 2, &Bandwidth::Median).unwrap(),
            same.mmd2
        );
        assert_eq!(energy_distance(&a, n, &b, n, 2).unwrap(), same.energy);
    }

    #[test]
    fn hand_computed_values() {
        // 1-D: X = {0, 1}, Y = {2, 4}, σ = 1 → k(a, b) = exp(−(a − b)²/2).
        let x = [0.0f64, 1.0];
        let y = [2.0f64, 4.0];
        let k = |t: f64| (-t * t / 2.0).exp();
        let want = k(1.0) + k(2.0) - 2.0 * (k(2.0) + k(4.0) + k(1.0) + k(3.0)) / 4.0;
        let got = two_sample_distances(&x, 2, &y, 2, 1, &Bandwidth::Fixed(vec![1.0])).unwrap();
        assert!((got.mmd2 - want).abs() < 1e-15, "{} vs {want}", got.mmd2);
        // Energy: 2·mean|x − y| − mean|x − x'| − mean|y − y'| = 2·2.5 − 1 − 2.
        assert!((got.energy - 2.0).abs() < 1e-15, "{}", got.energy);
        // Two bandwidths average the kernels.
        let k2 = |t: f64| ((-t * t / 2.0).exp() + (-t * t / 8.0).exp()) / 2.0;
        let want2 = k2(1.0) + k2(2.0) - 2.0 * (k2(2.0) + k2(4.0) + k2(1.0) + k2(3.0)) / 4.0;
        let got2 = mmd2_rbf(&x, 2, &y, 2, 1, &Bandwidth::Fixed(vec![1.0, 2.0])).unwrap();
        assert!((got2 - want2).abs() < 1e-15);
        // Median rule: pairwise distances {1, 2, 3} → m = 2, σ = 4, 2, 1, ..., 1/16.
        let r = [0.0f64, 1.0, 3.0];
        let t = two_sample_distances(&r, 3, &y, 2, 1, &Bandwidth::Median).unwrap();
        assert_eq!(t.bandwidths, vec![4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = [0.0f32; 4];
        let c = CoverageConfig::default();
        let centres = [[0.0f32, 0.0]];
        assert!(matches!(
            mode_coverage(&x, 2, &[], 0.1, &c),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            mode_coverage(&x, 2, &centres, -1.0, &c),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            mode_coverage(&x, 0, &centres, 0.1, &c),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            mode_coverage(&x, 3, &centres, 0.1, &c),
            Err(Error::ShapeMismatch { .. })
        ));
        let bad = CoverageConfig {
            min_fraction: Some(1.5),
            ..c
        };
        assert!(matches!(
            mode_coverage(&x, 2, &centres, 0.1, &bad),
            Err(Error::InvalidArgument(_))
        ));
        let bad = CoverageConfig {
            radius_std: 0.0,
            ..c
        };
        assert!(matches!(
            mode_coverage(&x, 2, &centres, 0.1, &bad),
            Err(Error::InvalidArgument(_))
        ));
        let nan = [0.0f32, f32::NAN];
        assert!(matches!(
            mode_coverage(&nan, 1, &centres, 0.1, &c),
            Err(Error::NonFinite(_))
        ));
        let y = [0.0f32, 1.0, 2.0, 3.0];
        assert!(matches!(
            mmd2_rbf(&x, 4, &y, 4, 1, &Bandwidth::Median),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            mmd2_rbf(&y, 4, &y, 4, 1, &Bandwidth::Fixed(vec![])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            mmd2_rbf(&y, 4, &y, 4, 1, &Bandwidth::Fixed(vec![0.0])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            energy_distance(&y, 3, &y, 4, 1),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            energy_distance(&y[..1], 1, &y, 4, 1),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            energy_distance(&y, 4, &nan, 2, 1),
            Err(Error::NonFinite(_))
        ));
    }
}
