use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::subspace::{Method, orthonormalise_rows};
use super::*;
use crate::metrics::linalg::jacobi;
use crate::metrics::testutil::gaussian;
use crate::metrics::to_f64_checked;
use crate::weights::TensorFile;

/// `n × d` data: `r` planted orthonormal directions with standard deviations
/// `sds`, plus isotropic noise of std `noise`, plus an offset. Returns the data
/// (f32) and the planted directions (rows).
fn planted(n: usize, d: usize, sds: &[f64], noise: f64, seed: u64) -> (Vec<f32>, Vec<f64>) {
    let r = sds.len();
    let mut dirs = Array2::from_shape_vec((r, d), gaussian(r, d, seed)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    orthonormalise_rows(&mut dirs, &mut rng);
    let z = gaussian(n, r, seed + 2);
    let e = gaussian(n, d, seed + 3);
    let mut x = Vec::with_capacity(n * d);
    for i in 0..n {
        for j in 0..d {
            let mut v = 0.5 + 0.01 * j as f64 + noise * e[i * d + j];
            for (c, sd) in sds.iter().enumerate() {
                v += sd * z[i * r + c] * dirs[[c, j]];
            }
            x.push(v as f32);
        }
    }
    (x, dirs.into_raw_vec_and_offset().0)
}

fn abs_cos(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, y)| f64::from(x) * y).sum();
    let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot.abs() / (na * nb)
}

#[test]
fn recovers_planted_directions_dense_and_iterative() {
    let sds = [5.0, 3.0, 2.0];
    for (d, n) in [(40usize, 2000usize), (300, 1500)] {
        let (x, dirs) = planted(n, d, &sds, 0.1, 7);
        let pca = Pca::fit(&x, n, d, 3, 11).unwrap();
        assert_eq!((pca.dim(), pca.n_components()), (d, 3));
        if d > DENSE_MAX_DIM {
            assert!(pca.iterations() >= 1 && pca.residual() <= TOLERANCE);
        } else {
            assert_eq!(pca.iterations(), 0);
        }
        for c in 0..3 {
            let cos = abs_cos(
                &pca.components()[c * d..(c + 1) * d],
                &dirs[c * d..(c + 1) * d],
            );
            assert!(cos > 0.999, "d={d} component {c}: |cos| = {cos}");
            // Variance ≈ sd² + noise² within sampling error (~3/sqrt(n/2)).
            let want = sds[c] * sds[c] + 0.01;
            let rel = (pca.explained_variance()[c] - want).abs() / want;
            assert!(
                rel < 0.12,
                "d={d} c={c}: {} vs {want}",
                pca.explained_variance()[c]
            );
        }
        let ratio: f64 = pca.explained_variance_ratio().iter().sum();
        let want = 38.0 / (38.0 + 0.01 * d as f64);
        assert!((ratio - want).abs() < 0.03, "{ratio} vs {want}");
        // The mean is the offset pattern.
        assert!((f64::from(pca.mean()[10]) - 0.6).abs() < 0.5);
    }
}

#[test]
fn iterative_path_matches_the_dense_eigendecomposition() {
    // d = 150 > DENSE_MAX_DIM: compare with a full Jacobi of the covariance.
    let (n, d, k) = (600, 150, 6);
    let sds: Vec<f64> = (0..20).map(|i| 4.0 * 0.8f64.powi(i)).collect();
    let (x, _) = planted(n, d, &sds, 0.05, 3);
    let pca = Pca::fit(&x, n, d, k, 5).unwrap();
    let xf = to_f64_checked("x", &x, n, d, 2).unwrap();
    let (_, cov) = super::super::linalg::mean_cov(&xf, n, d);
    let e = jacobi(&cov, d);
    for c in 0..k {
        let ev = pca.explained_variance()[c];
        assert!(
            (ev - e.values[c]).abs() < 1e-9 * e.values[0],
            "{c}: {ev} vs {}",
            e.values[c]
        );
        let cos = abs_cos(&pca.components()[c * d..(c + 1) * d], e.vector(c));
        assert!(cos > 1.0 - 1e-6, "component {c}: {cos}");
    }
    let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum();
    assert!((pca.total_variance() - trace).abs() < 1e-10 * trace);
}

#[test]
fn the_three_methods_agree() {
    let (n, d, k) = (400, 140, 5);
    let sds: Vec<f64> = (0..12).map(|i| 3.0 * 0.75f64.powi(i)).collect();
    let (x, _) = planted(n, d, &sds, 0.05, 6);
    assert_eq!(Method::choose(n, d, 2 * k + 8), Method::Explicit);
    assert_eq!(Method::choose(50, d, 2 * k + 8), Method::Implicit);
    assert_eq!(Method::choose(n, DENSE_MAX_DIM, 2 * k + 8), Method::Dense);
    let fits: Vec<Pca> = [Method::Dense, Method::Explicit, Method::Implicit]
        .into_iter()
        .map(|m| Pca::fit_with(&x, n, d, k, 1, Some(m)).unwrap())
        .collect();
    for f in &fits[1..] {
        for c in 0..k {
            let (a, b) = (fits[0].explained_variance()[c], f.explained_variance()[c]);
            assert!(
                (a - b).abs() < 1e-10 * fits[0].explained_variance()[0],
                "{c}: {a} {b}"
            );
        }
        let diff = fits[0]
            .components()
            .iter()
            .zip(f.components())
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{diff}");
    }
}

#[test]
fn deterministic_by_seed_and_sign_normalised() {
    let (n, d) = (500, 200);
    let (x, _) = planted(n, d, &[3.0, 2.0, 1.5, 1.0], 0.2, 1);
    let a = Pca::fit(&x, n, d, 4, 42).unwrap();
    let b = Pca::fit(&x, n, d, 4, 42).unwrap();
    assert_eq!(a, b);
    // Another seed: other start, same directions and signs to tolerance.
    let c = Pca::fit(&x, n, d, 4, 43).unwrap();
    let diff = a
        .components()
        .iter()
        .zip(c.components())
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "{diff}");
    for row in a.components().chunks(d) {
        let big = row
            .iter()
            .fold(0.0f32, |m, v| if v.abs() > m.abs() { *v } else { m });
        assert!(big > 0.0);
    }
    // Orthonormal rows.
    for i in 0..4 {
        for j in 0..4 {
            let dot: f64 = (0..d)
                .map(|t| {
                    f64::from(a.components()[i * d + t]) * f64::from(a.components()[j * d + t])
                })
                .sum();
            assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-6);
        }
    }
}

#[test]
fn transform_projects_centred_data() {
    let (n, d) = (300, 20);
    let (x, _) = planted(n, d, &[2.0, 1.0], 0.1, 4);
    let pca = Pca::fit(&x, n, d, 2, 0).unwrap();
    let y = pca.transform(&x, n).unwrap();
    assert_eq!(y.len(), n * 2);
    // Projected training data: mean ≈ 0, variances = explained variance.
    for c in 0..2 {
        let col: Vec<f64> = (0..n).map(|i| y[i * 2 + c]).collect();
        let m = col.iter().sum::<f64>() / n as f64;
        let v = col.iter().map(|t| (t - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!(m.abs() < 1e-5, "{m}");
        assert!((v - pca.explained_variance()[c]).abs() < 1e-5 * v, "{v}");
    }
    // f64 input gives the same result; the mean maps to 0.
    let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(pca.transform(&xf, n).unwrap(), y);
    let z = pca.transform(pca.mean(), 1).unwrap();
    assert!(z.iter().all(|v| *v == 0.0), "{z:?}");
    assert!(pca.transform::<f32>(&[], 0).unwrap().is_empty());
    // Bad input.
    assert!(matches!(
        pca.transform(&x[..d * 3 - 1], 3),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut bad = x[..d * 2].to_vec();
    bad[d + 3] = f32::INFINITY;
    let e = pca.transform(&bad, 2).unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)) && e.to_string().contains("sample 1, feature 3"));
}

#[test]
fn fit_rejects_bad_input() {
    let x = vec![0.5f32; 40];
    assert!(matches!(
        Pca::fit(&x, 10, 4, 0, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pca::fit(&x, 10, 4, 5, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pca::fit(&x[..4], 1, 4, 1, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pca::fit(&x, 3, 4, 2, 0),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Pca::fit(&x, 10, 0, 1, 0),
        Err(Error::InvalidArgument(_))
    ));
    let mut nan = x.clone();
    nan[13] = f32::NAN;
    assert!(matches!(
        Pca::fit(&nan, 10, 4, 2, 0),
        Err(Error::NonFinite(_))
    ));
    // Constant data: zero variance, still orthonormal components.
    let p = Pca::fit(&x, 10, 4, 2, 0).unwrap();
    assert_eq!(p.explained_variance(), &[0.0, 0.0]);
    assert_eq!(p.explained_variance_ratio(), vec![0.0, 0.0]);
    // Rank-deficient data in the iterative path (rank 2 < l).
    let (n, d) = (50, 160);
    let (x, _) = planted(n, d, &[3.0, 1.0], 0.0, 2);
    let p = Pca::fit(&x, n, d, 4, 0).unwrap();
    let ev = p.explained_variance();
    assert!(ev[0] > 1.0 && ev[1] > 0.1 && ev[2] < 1e-6 * ev[0], "{ev:?}");
}

#[test]
fn save_load_round_trip() {
    let (n, d) = (400, 150);
    let (x, _) = planted(n, d, &[3.0, 2.0, 1.0], 0.1, 8);
    let pca = Pca::fit(&x, n, d, 3, 99).unwrap();
    let dir = crate::data::testutil::TempDir::new("pca");
    let path = dir.path().join("pca.safetensors");
    pca.save(&path).unwrap();
    let back = Pca::load(&path).unwrap();
    assert_eq!(back, pca);
    assert_eq!(
        back.transform(&x, n).unwrap(),
        pca.transform(&x, n).unwrap()
    );
    assert_eq!((back.seed(), back.n_fit()), (99, 400));
    // The file is plain safetensors with the documented names.
    let f = TensorFile::read(&path).unwrap();
    assert_eq!(f.f32("components").unwrap().0, &[3, 150]);
    assert_eq!(f.metadata["format"], "hatebm-pca");
    // Corrupt / foreign files are format errors.
    let bytes = pca.to_bytes().unwrap();
    assert!(matches!(
        Pca::from_bytes(&bytes[..bytes.len() / 2], "x"),
        Err(Error::Format { .. })
    ));
    let mut meta = pca.metadata();
    meta.insert("format".into(), "other".into());
    let other = crate::weights::to_bytes(&pca.tensors(), &meta).unwrap();
    assert!(matches!(
        Pca::from_bytes(&other, "x"),
        Err(Error::Format { .. })
    ));
    let mut t = pca.tensors();
    t[1].2[0] += 0.5; // no longer orthonormal
    let skew = crate::weights::to_bytes(&t, &pca.metadata()).unwrap();
    let e = Pca::from_bytes(&skew, "pca.st").unwrap_err();
    assert!(
        e.to_string().contains("orthonormal") && e.to_string().contains("pca.st"),
        "{e}"
    );
    let mut meta = pca.metadata();
    meta.insert("explained_variance".into(), "1,2".into());
    let short = crate::weights::to_bytes(&pca.tensors(), &meta).unwrap();
    assert!(matches!(
        Pca::from_bytes(&short, "x"),
        Err(Error::Format { .. })
    ));
    assert!(matches!(
        Pca::load(dir.path().join("missing")),
        Err(Error::Io { .. })
    ));
}

/// Timing for the documented size (`cargo test -p hatebm-rs --release
/// pca_timing -- --ignored --nocapture`).
#[test]
#[ignore]
fn pca_timing_n5000_d1024_k32() {
    let (n, d, k) = (5000, 1024, 32);
    let sds: Vec<f64> = (0..64).map(|i| 3.0 / (1.0 + i as f64).powf(0.75)).collect();
    let (x, _) = planted(n, d, &sds, 0.05, 1);
    let t = std::time::Instant::now();
    let pca = Pca::fit(&x, n, d, k, 0).unwrap();
    let fit = t.elapsed();
    let t = std::time::Instant::now();
    let y = pca.transform(&x, n).unwrap();
    eprintln!(
        "PCA n={n} d={d} k={k}: fit {fit:?} ({} iterations, residual {:e}), transform {:?}, \
         ratio {:.3}",
        pca.iterations(),
        pca.residual(),
        t.elapsed(),
        pca.explained_variance_ratio().iter().sum::<f64>()
    );
    assert_eq!(y.len(), n * k);
    // A real spectrum: the bundled MNIST-5k (d = 784).
    if let Ok(dir) = crate::data::bundled_mnist5k_dir() {
        let ds = crate::data::Dataset::mnist5k(dir).unwrap();
        let t = std::time::Instant::now();
        let p = Pca::fit(ds.data(), ds.len(), ds.sample_len(), k, 0).unwrap();
        eprintln!(
            "PCA mnist5k n={} d={} k={k}: fit {:?} ({} iterations), ratio {:.3}",
            ds.len(),
            ds.sample_len(),
            t.elapsed(),
            p.iterations(),
            p.explained_variance_ratio().iter().sum::<f64>()
        );
    }
}
