//! Evaluation metrics for harnesses: the Frechet distance (raw features or a
//! PCA space fitted on the real set), k-NN precision / recall, 2-D mode
//! coverage, MMD^2 and the energy distance -- the numbers `eval.json` reports,
//! computed by `hatebm_rs::metrics` on caller buffers.
//!
//! Conventions (as everywhere in the ABI, `docs/c-abi.md`): every buffer is
//! followed by its length in elements, then the number of rows it holds; the
//! length must be `rows * dim` (`HATEBM_SHAPE_MISMATCH` otherwise). Inputs are
//! `float`, row-major, one sample per row; all arithmetic is `double`.
//! Out-params are checked before any work and written only on success. A NaN
//! or infinity in an input is `HATEBM_NUMERIC` (the message names the set,
//! sample and feature); too few samples, `dim == 0` or a bad parameter is
//! `HATEBM_INVALID_ARGUMENT`. Every function is thread-safe (no shared state;
//! the pairwise loops run on the library's thread pool) and deterministic: the
//! result does not depend on the number of threads.

use hatebm_rs::metrics::{self, Bandwidth, CoverageConfig, FeatureSpace, Pca};

use crate::error::{Failure, FfiResult};
use crate::handle::{expect_disjoint, expect_len, try_out, try_slice, try_slice_mut};
use crate::status::hatebm_status;

/// Borrows a read-only sample set `ptr[len]` of `n` rows of `dim` floats.
///
/// # Safety
/// As `try_slice`: `ptr` has `len` readable floats (or is NULL with `len == 0`).
unsafe fn sample_set<'a>(
    ptr: *const f32,
    len: usize,
    n: usize,
    dim: usize,
    name: &'static str,
) -> FfiResult<&'a [f32]> {
    // SAFETY: forwarded from this function's contract.
    let s = unsafe { try_slice(ptr, len, name) }?;
    expect_len(name, s.len(), n, dim, "dim")?;
    Ok(s)
}

/// Frechet distance between Gaussian fits of two sets of raw features,
/// `a[n_a * dim]` and `b[n_b * dim]`:
/// `|mu_a - mu_b|^2 + Tr(C_a) + Tr(C_b) - 2 Tr((C_a^1/2 C_b C_a^1/2)^1/2)` with
/// unbiased covariances (FID's formula, in squared input units). Writes
/// `*out_fd` (>= 0) on success.
///
/// `HATEBM_INVALID_ARGUMENT` for `dim == 0`, `dim > 512` (project first, e.g.
/// with `hatebm_metrics_frechet_pca`) or fewer than 2 samples in a set. The
/// estimate is biased upwards by roughly O(dim / n): compare values computed
/// with equal sample sizes. Thread-safe.
///
/// # Safety
/// `a` has `a_len` and `b` has `b_len` readable floats (each may be NULL only
/// with length 0); `out_fd` is NULL or points to a writable double.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_metrics_frechet(
    a: *const f32,
    a_len: usize,
    n_a: usize,
    b: *const f32,
    b_len: usize,
    n_b: usize,
    dim: usize,
    out_fd: *mut f64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out_fd, "out_fd") }?;
        // SAFETY: forwarded from this function's contract.
        let a = unsafe { sample_set(a, a_len, n_a, dim, "a") }?;
        // SAFETY: forwarded from this function's contract.
        let b = unsafe { sample_set(b, b_len, n_b, dim, "b") }?;
        let fd = metrics::frechet_distance(a, n_a, b, n_b, dim)?;
        out.write(fd);
        Ok(())
    }
}

/// Frechet distance in a PCA feature space fitted on the real set: the top-`k`
/// principal components of `real[n_real * dim]` (deterministic given `seed`),
/// then the Frechet distance between the projections of `real` and
/// `fake[n_fake * dim]` (in squared input units of the projected coordinates;
/// not whitened). This is how `eval.json` scores images, except that a run fits
/// its PCA once on the training split and compares with held-out data: values
/// are comparable only between calls with the same real set, `k`, seed and
/// sample sizes. Writes `*out_fd` on success.
///
/// `HATEBM_INVALID_ARGUMENT` for `dim == 0`, `k` outside `1..=min(dim,
/// n_real - 1)`, `k > 512`, or fewer than 2 samples in a set. Cost: the fit is
/// O(n_real * dim^2) (about 0.2 s for 5000 x 1024, k = 32, on one core). Thread-safe.
///
/// # Safety
/// As `hatebm_metrics_frechet`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_metrics_frechet_pca(
    real: *const f32,
    real_len: usize,
    n_real: usize,
    fake: *const f32,
    fake_len: usize,
    n_fake: usize,
    dim: usize,
    k: usize,
    seed: u64,
    out_fd: *mut f64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out_fd, "out_fd") }?;
        // SAFETY: forwarded from this function's contract.
        let real = unsafe { sample_set(real, real_len, n_real, dim, "real") }?;
        // SAFETY: forwarded from this function's contract.
        let fake = unsafe { sample_set(fake, fake_len, n_fake, dim, "fake") }?;
        if n_fake < 2 {
            return Err(Failure::invalid(format!(
                "at least 2 generated samples are needed, got {n_fake}"
            )));
        }
        if k > metrics::frechet::MAX_DIM {
            return Err(Failure::invalid(format!(
                "k = {k} exceeds {} components",
                metrics::frechet::MAX_DIM
            )));
        }
        let space = FeatureSpace::Pca(Pca::fit(real, n_real, dim, k, seed)?);
        let fd = metrics::fd_in_space(&space, real, fake, n_real, n_fake, dim)?;
        out.write(fd);
        Ok(())
    }
}

/// k-NN precision and recall (Kynkaanniemi et al. 2019) of `fake[n_fake * dim]`
/// against `real[n_real * dim]` with neighbourhood size `k` (3 is the usual
/// choice): precision = fraction of generated samples inside some real
/// sample's k-NN ball (quality), recall = fraction of real samples inside some
/// generated sample's ball (diversity). Distances are Euclidean in the given
/// features: pass PCA features or other low-dimensional embeddings for images.
/// Writes `*out_precision` and `*out_recall` (both in [0, 1]) on success.
///
/// `HATEBM_INVALID_ARGUMENT` for `k == 0`, `dim == 0`, or a set with at most
/// `k` samples. Cost O((n_real + n_fake)^2 * dim). Thread-safe.
///
/// # Safety
/// `real` has `real_len` and `fake` has `fake_len` readable floats (each may be
/// NULL only with length 0); `out_precision` and `out_recall` are NULL or point
/// to writable doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_metrics_precision_recall(
    real: *const f32,
    real_len: usize,
    n_real: usize,
    fake: *const f32,
    fake_len: usize,
    n_fake: usize,
    dim: usize,
    k: usize,
    out_precision: *mut f64,
    out_recall: *mut f64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out_p = unsafe { try_out(out_precision, "out_precision") }?;
        // SAFETY: forwarded from this function's contract.
        let out_r = unsafe { try_out(out_recall, "out_recall") }?;
        // SAFETY: forwarded from this function's contract.
        let real = unsafe { sample_set(real, real_len, n_real, dim, "real") }?;
        // SAFETY: forwarded from this function's contract.
        let fake = unsafe { sample_set(fake, fake_len, n_fake, dim, "fake") }?;
        let pr = metrics::precision_recall(real, n_real, fake, n_fake, dim, k)?;
        out_p.write(pr.precision);
        out_r.write(pr.recall);
        Ok(())
    }
}

/// The result of `hatebm_metrics_mode_coverage` (an output struct: the library
/// writes every field, `struct_size` included).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_mode_coverage {
    /// `sizeof(hatebm_mode_coverage)`, written by the library.
    pub struct_size: u32,
    /// Fraction of samples within `radius` of their nearest centre (the
    /// "high-quality" fraction; about 0.989 for a perfect sampler at 3 std).
    pub within: f64,
    /// Modes holding at least `min_fraction` of all samples (by nearest centre).
    pub modes_covered: usize,
    /// Modes holding at least `min_fraction` of all samples counting only
    /// samples within `radius` of it.
    pub modes_covered_within: usize,
    /// KL(fractions || uniform) in nats: 0 for balanced modes, ln(n_modes) when
    /// every sample is on one mode.
    pub kl_to_uniform: f64,
    /// The radius used, `radius_std * std` (input units).
    pub radius: f64,
    /// The coverage threshold used.
    pub min_fraction: f64,
}

/// Mode coverage of `n` 2-D samples `samples[n * 2]` with respect to `n_modes`
/// mode centres `centres[n_modes * 2]` of per-coordinate standard deviation
/// `std`: each sample is assigned to its nearest centre (lowest index on ties).
/// `min_fraction` is the share a mode needs to count as covered (negative
/// selects the default `min(0.05, 0.5 / n_modes)`); `radius_std` the
/// "high-quality" radius in units of `std` (0 selects the default 3).
///
/// On success writes `*out` and, when `out_fractions` is not NULL, the
/// fraction of samples nearest to each mode into `out_fractions[n_modes]`
/// (`fractions_len` must then be `n_modes`; NULL with 0 skips them).
///
/// `HATEBM_INVALID_ARGUMENT` for `n == 0`, `n_modes == 0`, a non-finite centre,
/// a negative or non-finite `std`, `min_fraction > 1` or NaN, a negative or
/// non-finite `radius_std`, or `out_fractions` overlapping an input.
/// Thread-safe.
///
/// # Safety
/// `samples` has `samples_len` and `centres` has `centres_len` readable floats;
/// `out` is NULL or writable; `out_fractions` has `fractions_len` writable
/// doubles (or is NULL with `fractions_len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_metrics_mode_coverage(
    samples: *const f32,
    samples_len: usize,
    n: usize,
    centres: *const f32,
    centres_len: usize,
    n_modes: usize,
    std: f32,
    min_fraction: f64,
    radius_std: f64,
    out: *mut hatebm_mode_coverage,
    out_fractions: *mut f64,
    fractions_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        expect_disjoint(
            (samples, samples_len, "samples"),
            (out_fractions.cast_const(), fractions_len, "out_fractions"),
        )?;
        expect_disjoint(
            (centres, centres_len, "centres"),
            (out_fractions.cast_const(), fractions_len, "out_fractions"),
        )?;
        // SAFETY: forwarded from this function's contract.
        let fractions = unsafe { try_slice_mut(out_fractions, fractions_len, "out_fractions") }?;
        if !out_fractions.is_null() {
            expect_len("out_fractions", fractions.len(), n_modes, 1, "1")?;
        }
        // SAFETY: forwarded from this function's contract.
        let samples = unsafe { sample_set(samples, samples_len, n, 2, "samples") }?;
        // SAFETY: forwarded from this function's contract.
        let centres = unsafe { sample_set(centres, centres_len, n_modes, 2, "centres") }?;
        let centres: Vec<[f32; 2]> = centres.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
        let config = CoverageConfig {
            min_fraction: if min_fraction < 0.0 { None } else { Some(min_fraction) },
            radius_std: if radius_std == 0.0 { 3.0 } else { radius_std },
        };
        let cov = metrics::mode_coverage(samples, n, &centres, f64::from(std), &config)?;
        if !out_fractions.is_null() {
            fractions.copy_from_slice(&cov.fractions);
        }
        out.write(hatebm_mode_coverage {
            struct_size: std::mem::size_of::<hatebm_mode_coverage>() as u32,
            within: cov.within,
            modes_covered: cov.modes_covered,
            modes_covered_within: cov.modes_covered_within,
            kl_to_uniform: cov.kl_to_uniform,
            radius: cov.radius,
            min_fraction: cov.min_fraction,
        });
        Ok(())
    }
}

/// Unbiased MMD^2 (Gretton et al. 2012) between `real[n_real * dim]` and
/// `fake[n_fake * dim]` with the averaged RBF kernel
/// `k(x, y) = (1/L) sum_l exp(-|x - y|^2 / (2 s_l^2))`. The bandwidths `s_l`
/// are `bandwidths[0..n_bandwidths]` (each finite and > 0), or, when
/// `bandwidths` is NULL and `n_bandwidths` is 0, the median rule: seven
/// bandwidths `m * 2^(1 - l)`, l = 0..6, where `m` is the median distance
/// among the first 1000 real samples (so the kernel depends on the real set
/// only). Writes `*out_mmd2` on success (about 0 +- O(1/n) for equal
/// distributions; may be slightly negative).
///
/// `HATEBM_INVALID_ARGUMENT` for `dim == 0`, fewer than 2 samples in a set, a
/// bad bandwidth, or (median rule) real samples that are all identical. Cost
/// O((n_real + n_fake)^2 * dim). Thread-safe.
///
/// # Safety
/// `real` has `real_len` and `fake` has `fake_len` readable floats;
/// `bandwidths` has `n_bandwidths` readable doubles (each may be NULL only with
/// length 0); `out_mmd2` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_metrics_mmd2(
    real: *const f32,
    real_len: usize,
    n_real: usize,
    fake: *const f32,
    fake_len: usize,
    n_fake: usize,
    dim: usize,
    bandwidths: *const f64,
    n_bandwidths: usize,
    out_mmd2: *mut f64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out_mmd2, "out_mmd2") }?;
        // SAFETY: forwarded from this function's contract.
        let real = unsafe { sample_set(real, real_len, n_real, dim, "real") }?;
        // SAFETY: forwarded from this function's contract.
        let fake = unsafe { sample_set(fake, fake_len, n_fake, dim, "fake") }?;
        // SAFETY: forwarded from this function's contract.
        let bw = unsafe { try_slice(bandwidths, n_bandwidths, "bandwidths") }?;
        let bandwidth = if bw.is_empty() {
            Bandwidth::Median
        } else {
            Bandwidth::Fixed(bw.to_vec())
        };
        let mmd2 = metrics::mmd2_rbf(real, n_real, fake, n_fake, dim, &bandwidth)?;
        out.write(mmd2);
        Ok(())
    }
}

/// Energy distance (Szekely & Rizzo) between `real[n_real * dim]` and
/// `fake[n_fake * dim]`: `2 E|X - Y| - E|X - X'| - E|Y - Y'|` with U-statistics
/// for the within-set terms, in input units; 0 in expectation iff the
/// distributions are equal (may be slightly negative). No tuning parameter.
/// Writes `*out_energy` on success.
///
/// `HATEBM_INVALID_ARGUMENT` for `dim == 0` or fewer than 2 samples in a set.
/// Cost O((n_real + n_fake)^2 * dim). Thread-safe.
///
/// # Safety
/// `real` has `real_len` and `fake` has `fake_len` readable floats (each may be
/// NULL only with length 0); `out_energy` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_metrics_energy_distance(
    real: *const f32,
    real_len: usize,
    n_real: usize,
    fake: *const f32,
    fake_len: usize,
    n_fake: usize,
    dim: usize,
    out_energy: *mut f64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out_energy, "out_energy") }?;
        // SAFETY: forwarded from this function's contract.
        let real = unsafe { sample_set(real, real_len, n_real, dim, "real") }?;
        // SAFETY: forwarded from this function's contract.
        let fake = unsafe { sample_set(fake, fake_len, n_fake, dim, "fake") }?;
        let e = metrics::energy_distance(real, n_real, fake, n_fake, dim)?;
        out.write(e);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The C entry points against `hatebm_rs::metrics` on the same inputs
    //! (bit-identical: the same code runs), plus the ABI rules: out-params
    //! untouched on failure, lengths checked, NULL handling, statuses.

    use std::ptr::{null, null_mut};

    use hatebm_rs::data::ToyDistribution;
    use hatebm_rs::metrics::{self as m, Bandwidth, CoverageConfig, FeatureSpace, Pca};

    use super::*;
    use crate::error::last_error_string;
    use crate::status::*;

    /// `n * d` pseudo-Gaussian values (SplitMix64 + Box-Muller), scaled and shifted.
    fn gaussian(n: usize, d: usize, seed: u64, scale: f32, shift: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        let mut next = || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n * d)
            .map(|_| {
                let (u, v) = (next(), next());
                let g = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                g as f32 * scale + shift
            })
            .collect()
    }

    #[test]
    fn frechet_matches_core() {
        let (d, na, nb) = (6, 300, 200);
        let a = gaussian(na, d, 1, 1.0, 0.0);
        let b = gaussian(nb, d, 2, 1.3, 0.2);
        let want = m::frechet_distance(&a, na, &b, nb, d).unwrap();
        let mut fd = -1.0;
        // SAFETY: buffers are valid for the stated lengths.
        let st = unsafe {
            hatebm_metrics_frechet(a.as_ptr(), a.len(), na, b.as_ptr(), b.len(), nb, d, &mut fd)
        };
        assert_eq!(st, HATEBM_OK);
        assert_eq!(fd.to_bits(), want.to_bits());
        assert!(fd > 0.1, "{fd}");
        // Identical sets: 0 up to rounding.
        // SAFETY: as above.
        let st = unsafe {
            hatebm_metrics_frechet(a.as_ptr(), a.len(), na, a.as_ptr(), a.len(), na, d, &mut fd)
        };
        assert_eq!(st, HATEBM_OK);
        assert!((0.0..1e-12).contains(&fd), "{fd}");
    }

    #[test]
    fn frechet_pca_matches_core() {
        let (d, nr, nf, k) = (40, 400, 250, 8);
        let real = gaussian(nr, d, 3, 1.0, 0.0);
        let fake = gaussian(nf, d, 4, 0.7, 0.1);
        let space = FeatureSpace::Pca(Pca::fit(&real, nr, d, k, 5).unwrap());
        let want = m::fd_in_space(&space, &real, &fake, nr, nf, d).unwrap();
        let mut fd = -1.0;
        // SAFETY: buffers are valid for the stated lengths.
        let st = unsafe {
            hatebm_metrics_frechet_pca(
                real.as_ptr(),
                real.len(),
                nr,
                fake.as_ptr(),
                fake.len(),
                nf,
                d,
                k,
                5,
                &mut fd,
            )
        };
        assert_eq!(st, HATEBM_OK, "{}", last_error_string());
        assert_eq!(fd.to_bits(), want.to_bits());
        // k out of range: INVALID_ARGUMENT, out untouched.
        let mut fd = -7.0;
        for bad_k in [0, d + 1, 600] {
            // SAFETY: as above.
            let st = unsafe {
                hatebm_metrics_frechet_pca(
                    real.as_ptr(),
                    real.len(),
                    nr,
                    fake.as_ptr(),
                    fake.len(),
                    nf,
                    d,
                    bad_k,
                    5,
                    &mut fd,
                )
            };
            assert_eq!(st, HATEBM_INVALID_ARGUMENT, "k = {bad_k}");
            assert_eq!(fd, -7.0);
        }
    }

    #[test]
    fn precision_recall_matches_core() {
        let (d, nr, nf) = (5, 220, 180);
        let real = gaussian(nr, d, 6, 1.0, 0.0);
        let fake = gaussian(nf, d, 7, 0.5, 0.3);
        let want = m::precision_recall(&real, nr, &fake, nf, d, 3).unwrap();
        let (mut p, mut r) = (-1.0, -1.0);
        // SAFETY: buffers are valid for the stated lengths.
        let st = unsafe {
            hatebm_metrics_precision_recall(
                real.as_ptr(),
                real.len(),
                nr,
                fake.as_ptr(),
                fake.len(),
                nf,
                d,
                3,
                &mut p,
                &mut r,
            )
        };
        assert_eq!(st, HATEBM_OK);
        assert_eq!(
            (p.to_bits(), r.to_bits()),
            (want.precision.to_bits(), want.recall.to_bits())
        );
        // A narrower generator: high precision, lower recall.
        assert!(p > r, "{p} {r}");
        // k = 0 and k >= n are INVALID_ARGUMENT; a NULL out is NULL_PARAMETER.
        let (mut p, mut r) = (-1.0, -2.0);
        for k in [0, nf] {
            // SAFETY: as above.
            let st = unsafe {
                hatebm_metrics_precision_recall(
                    real.as_ptr(),
                    real.len(),
                    nr,
                    fake.as_ptr(),
                    fake.len(),
                    nf,
                    d,
                    k,
                    &mut p,
                    &mut r,
                )
            };
            assert_eq!(st, HATEBM_INVALID_ARGUMENT, "k = {k}");
        }
        // SAFETY: as above; out_recall is NULL.
        let st = unsafe {
            hatebm_metrics_precision_recall(
                real.as_ptr(),
                real.len(),
                nr,
                fake.as_ptr(),
                fake.len(),
                nf,
                d,
                3,
                &mut p,
                null_mut(),
            )
        };
        assert_eq!(st, HATEBM_NULL_PARAMETER);
        assert!(last_error_string().contains("`out_recall`"));
        assert_eq!((p, r), (-1.0, -2.0));
    }

    #[test]
    fn mode_coverage_matches_core() {
        let dist = ToyDistribution::ring8();
        let centres = dist.mode_centres().unwrap();
        let std = dist.mode_std().unwrap();
        let (mut x, _) = dist.sample_seeded(800, 11).unwrap();
        // Move a quarter of the samples onto mode 0 (imbalanced).
        for i in 0..200 {
            x[2 * i] = centres[0][0];
            x[2 * i + 1] = centres[0][1];
        }
        let flat: Vec<f32> = centres.iter().flatten().copied().collect();
        for (min_fraction, radius_std) in [(-1.0, 0.0), (0.1, 2.0)] {
            let cfg = CoverageConfig {
                min_fraction: (min_fraction >= 0.0).then_some(min_fraction),
                radius_std: if radius_std == 0.0 { 3.0 } else { radius_std },
            };
            let want = m::mode_coverage(&x, 800, &centres, f64::from(std), &cfg).unwrap();
            let mut out = hatebm_mode_coverage {
                struct_size: 0,
                within: -1.0,
                modes_covered: 99,
                modes_covered_within: 99,
                kl_to_uniform: -1.0,
                radius: -1.0,
                min_fraction: -1.0,
            };
            let mut fr = vec![-1.0f64; 8];
            // SAFETY: buffers are valid for the stated lengths.
            let st = unsafe {
                hatebm_metrics_mode_coverage(
                    x.as_ptr(),
                    x.len(),
                    800,
                    flat.as_ptr(),
                    flat.len(),
                    8,
                    std,
                    min_fraction,
                    radius_std,
                    &mut out,
                    fr.as_mut_ptr(),
                    fr.len(),
                )
            };
            assert_eq!(st, HATEBM_OK, "{}", last_error_string());
            assert_eq!(
                out.struct_size as usize,
                std::mem::size_of::<hatebm_mode_coverage>()
            );
            assert_eq!(out.within.to_bits(), want.within.to_bits());
            assert_eq!(out.modes_covered, want.modes_covered);
            assert_eq!(out.modes_covered_within, want.modes_covered_within);
            assert_eq!(out.kl_to_uniform.to_bits(), want.kl_to_uniform.to_bits());
            assert_eq!(out.radius, want.radius);
            assert_eq!(out.min_fraction, want.min_fraction);
            assert_eq!(fr, want.fractions);
            assert!(out.kl_to_uniform > 0.05);
        }
        // Without fractions.
        let mut out = std::mem::MaybeUninit::<hatebm_mode_coverage>::uninit();
        // SAFETY: as above; out_fractions NULL with length 0.
        let st = unsafe {
            hatebm_metrics_mode_coverage(
                x.as_ptr(),
                x.len(),
                800,
                flat.as_ptr(),
                flat.len(),
                8,
                std,
                -1.0,
                0.0,
                out.as_mut_ptr(),
                null_mut(),
                0,
            )
        };
        assert_eq!(st, HATEBM_OK);
        // Wrong fraction length: SHAPE_MISMATCH, nothing written.
        let mut fr = vec![-1.0f64; 7];
        let mut out2 = hatebm_mode_coverage {
            struct_size: 0,
            within: -1.0,
            modes_covered: 99,
            modes_covered_within: 99,
            kl_to_uniform: -1.0,
            radius: -1.0,
            min_fraction: -1.0,
        };
        let before = out2;
        // SAFETY: as above.
        let st = unsafe {
            hatebm_metrics_mode_coverage(
                x.as_ptr(),
                x.len(),
                800,
                flat.as_ptr(),
                flat.len(),
                8,
                std,
                -1.0,
                0.0,
                &mut out2,
                fr.as_mut_ptr(),
                fr.len(),
            )
        };
        assert_eq!(st, HATEBM_SHAPE_MISMATCH);
        assert_eq!(out2, before);
        assert!(fr.iter().all(|&v| v == -1.0));
        // Bad parameters: INVALID_ARGUMENT.
        for (std_, mf, rs) in [
            (-1.0f32, -1.0, 0.0),
            (std, 1.5, 0.0),
            (std, f64::NAN, 0.0),
            (std, -1.0, -2.0),
        ] {
            // SAFETY: as above.
            let st = unsafe {
                hatebm_metrics_mode_coverage(
                    x.as_ptr(),
                    x.len(),
                    800,
                    flat.as_ptr(),
                    flat.len(),
                    8,
                    std_,
                    mf,
                    rs,
                    &mut out2,
                    null_mut(),
                    0,
                )
            };
            assert_eq!(st, HATEBM_INVALID_ARGUMENT, "{std_} {mf} {rs}");
        }
        assert_eq!(out2, before);
    }

    #[test]
    fn two_sample_distances_match_core() {
        let (d, nr, nf) = (3, 150, 120);
        let real = gaussian(nr, d, 8, 1.0, 0.0);
        let fake = gaussian(nf, d, 9, 1.0, 0.4);
        let want = m::two_sample_distances(&real, nr, &fake, nf, d, &Bandwidth::Median).unwrap();
        let (mut mmd, mut e) = (-1.0, -1.0);
        // SAFETY: buffers are valid for the stated lengths.
        unsafe {
            assert_eq!(
                hatebm_metrics_mmd2(
                    real.as_ptr(),
                    real.len(),
                    nr,
                    fake.as_ptr(),
                    fake.len(),
                    nf,
                    d,
                    null(),
                    0,
                    &mut mmd
                ),
                HATEBM_OK
            );
            assert_eq!(
                hatebm_metrics_energy_distance(
                    real.as_ptr(),
                    real.len(),
                    nr,
                    fake.as_ptr(),
                    fake.len(),
                    nf,
                    d,
                    &mut e
                ),
                HATEBM_OK
            );
        }
        assert_eq!(mmd.to_bits(), want.mmd2.to_bits());
        assert_eq!(e.to_bits(), want.energy.to_bits());
        assert!(mmd > 0.0 && e > 0.0);
        // Fixed bandwidths.
        let bw = [0.5f64, 2.0];
        let want = m::mmd2_rbf(&real, nr, &fake, nf, d, &Bandwidth::Fixed(bw.to_vec())).unwrap();
        // SAFETY: as above.
        let st = unsafe {
            hatebm_metrics_mmd2(
                real.as_ptr(),
                real.len(),
                nr,
                fake.as_ptr(),
                fake.len(),
                nf,
                d,
                bw.as_ptr(),
                bw.len(),
                &mut mmd,
            )
        };
        assert_eq!(st, HATEBM_OK);
        assert_eq!(mmd.to_bits(), want.to_bits());
        // A non-positive bandwidth is INVALID_ARGUMENT.
        let bad = [1.0f64, 0.0];
        let mut keep = -3.0;
        // SAFETY: as above.
        let st = unsafe {
            hatebm_metrics_mmd2(
                real.as_ptr(),
                real.len(),
                nr,
                fake.as_ptr(),
                fake.len(),
                nf,
                d,
                bad.as_ptr(),
                bad.len(),
                &mut keep,
            )
        };
        assert_eq!((st, keep), (HATEBM_INVALID_ARGUMENT, -3.0));
    }

    #[test]
    fn lengths_nulls_and_non_finite_values() {
        let (d, n) = (4, 10);
        let a = gaussian(n, d, 10, 1.0, 0.0);
        let mut fd = -5.0;
        // SAFETY: every buffer is valid for the length passed (or NULL with 0).
        unsafe {
            // Length is not n * dim.
            assert_eq!(
                hatebm_metrics_frechet(
                    a.as_ptr(),
                    a.len() - 1,
                    n,
                    a.as_ptr(),
                    a.len(),
                    n,
                    d,
                    &mut fd
                ),
                HATEBM_SHAPE_MISMATCH
            );
            assert!(last_error_string().contains("buffer `a` has 39 elements"));
            // NULL buffer with a length, NULL out.
            assert_eq!(
                hatebm_metrics_frechet(null(), 40, n, a.as_ptr(), a.len(), n, d, &mut fd),
                HATEBM_NULL_PARAMETER
            );
            assert_eq!(
                hatebm_metrics_frechet(
                    a.as_ptr(),
                    a.len(),
                    n,
                    a.as_ptr(),
                    a.len(),
                    n,
                    d,
                    null_mut()
                ),
                HATEBM_NULL_PARAMETER
            );
            // Empty sets / dim 0: INVALID_ARGUMENT from the core.
            assert_eq!(
                hatebm_metrics_frechet(null(), 0, 0, a.as_ptr(), a.len(), n, d, &mut fd),
                HATEBM_INVALID_ARGUMENT
            );
            assert_eq!(
                hatebm_metrics_energy_distance(null(), 0, n, null(), 0, n, 0, &mut fd),
                HATEBM_INVALID_ARGUMENT
            );
            // dim > 512 for the raw Frechet distance.
            let big = vec![0.0f32; 2 * 513];
            assert_eq!(
                hatebm_metrics_frechet(
                    big.as_ptr(),
                    big.len(),
                    2,
                    big.as_ptr(),
                    big.len(),
                    2,
                    513,
                    &mut fd
                ),
                HATEBM_INVALID_ARGUMENT
            );
            // NaN: NUMERIC naming the position.
            let mut b = a.clone();
            b[6] = f32::NAN;
            assert_eq!(
                hatebm_metrics_frechet(a.as_ptr(), a.len(), n, b.as_ptr(), b.len(), n, d, &mut fd),
                HATEBM_NUMERIC
            );
            assert!(
                last_error_string().contains("sample 1, feature 2"),
                "{}",
                last_error_string()
            );
            assert_eq!(
                hatebm_metrics_mmd2(
                    a.as_ptr(),
                    a.len(),
                    n,
                    b.as_ptr(),
                    b.len(),
                    n,
                    d,
                    null(),
                    0,
                    &mut fd
                ),
                HATEBM_NUMERIC
            );
            // Misaligned input.
            let raw = a.as_ptr().cast::<u8>().add(1).cast::<f32>();
            assert_eq!(
                hatebm_metrics_energy_distance(raw, 4, 1, a.as_ptr(), a.len(), n, d, &mut fd),
                HATEBM_INVALID_ARGUMENT
            );
        }
        assert_eq!(fd, -5.0, "out-param written on failure");
        assert!(last_error_string().starts_with("hatebm_metrics_energy_distance: "));
    }
}
