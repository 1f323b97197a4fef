//! Small dense linear algebra in `f64` for the metrics: the cyclic Jacobi
//! eigenvalue method for symmetric matrices, and sample means / covariances.
//!
//! Jacobi is chosen over tridiagonalisation + QL because it is short, easy to
//! verify, and computes small eigenvalues to high *relative* accuracy — which is
//! what the matrix square roots of the Fréchet distance need when a covariance is
//! nearly singular. Its cost is `O(d³)` per sweep with 6–10 sweeps, fine for the
//! `d ≤ 128`-ish matrices it is used on (PCA features, Rayleigh–Ritz problems).

use ndarray::{Array2, ArrayView2};

use crate::{Error, Result};

/// The eigendecomposition `A = V Λ Vᵀ` of a real symmetric `d × d` matrix, as
/// computed by [`sym_eigen`] (the fields are read through accessors, so the
/// shapes are always consistent).
#[derive(Debug, Clone, PartialEq)]
pub struct SymEigen {
    pub(crate) d: usize,
    pub(crate) values: Vec<f64>,
    pub(crate) vectors: Vec<f64>,
}

impl SymEigen {
    /// The matrix order `d`.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The `d` eigenvalues, in descending order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The orthonormal eigenvectors, `d × d` row-major, **one eigenvector per
    /// row**: row `i` (`vectors()[i*d..(i+1)*d]`) belongs to `values()[i]`.
    pub fn vectors(&self) -> &[f64] {
        &self.vectors
    }

    /// The eigenvector of `values[i]`.
    ///
    /// # Panics
    /// When `i >= d`.
    pub fn vector(&self, i: usize) -> &[f64] {
        &self.vectors[i * self.d..(i + 1) * self.d]
    }

    /// `V f(Λ) Vᵀ` as a `d × d` row-major matrix: a spectral function of the
    /// matrix, e.g. `f = |x| x.max(0.0).sqrt()` for the PSD square root.
    pub fn reconstruct_with(&self, f: impl Fn(f64) -> f64) -> Vec<f64> {
        let d = self.d;
        let fv: Vec<f64> = self.values.iter().map(|&x| f(x)).collect();
        let v = ArrayView2::from_shape((d, d), &self.vectors).expect("d × d by construction");
        // Rows of v are eigenvectors: A = vᵀ diag(f) v.
        let mut scaled = v.to_owned();
        for (mut row, &s) in scaled.rows_mut().into_iter().zip(&fv) {
            row *= s;
        }
        let out = v.t().dot(&scaled);
        symmetrised(out)
    }
}

/// The sweep limit of [`sym_eigen`]; convergence is quadratic and typically
/// takes 6–10 sweeps, so reaching it means the input was pathological.
const MAX_SWEEPS: usize = 100;

/// Eigendecomposition of the symmetric part `(A + Aᵀ)/2` of a `d × d`
/// row-major matrix by the cyclic Jacobi method (with the threshold strategy
/// and accumulated diagonal updates of Rutishauser's `jacobi` procedure).
///
/// Eigenvalues come out in descending order (ties keep the diagonal order), each
/// eigenvector as a row of [`SymEigen::vectors`]; the eigenvectors are
/// orthonormal to rounding (`‖VᵀV − I‖ ≈ d·ε`). The result is a deterministic
/// function of the input.
///
/// # Errors
/// [`Error::InvalidArgument`] for `d == 0`; [`Error::ShapeMismatch`] when
/// `a.len() != d²`; [`Error::NonFinite`] for a NaN / ±∞ entry.
pub fn sym_eigen(a: &[f64], d: usize) -> Result<SymEigen> {
    crate::ensure!(d >= 1, "sym_eigen: the matrix order must be >= 1");
    if d.checked_mul(d) != Some(a.len()) {
        return Err(Error::ShapeMismatch {
            what: "sym_eigen matrix".into(),
            expected: format!("[{d}, {d}]"),
            got: format!("{} values", a.len()),
        });
    }
    if let Some(p) = a.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "sym_eigen matrix: entry ({}, {}) is {}",
            p / d,
            p % d,
            a[p]
        )));
    }
    Ok(jacobi(a, d))
}

/// The Jacobi iteration on validated input.
pub(crate) fn jacobi(a_in: &[f64], n: usize) -> SymEigen {
    // Work on the strict upper triangle of the symmetric part; keep the diagonal in
    // `d`, with the rotations' diagonal increments accumulated in `z` and folded
    // into `b` once per sweep (less rounding than updating the diagonal in place).
    let mut a: Vec<f64> = vec![0.0; n * n];
    for p in 0..n {
        for q in p + 1..n {
            a[p * n + q] = 0.5 * (a_in[p * n + q] + a_in[q * n + p]);
        }
    }
    let mut d: Vec<f64> = (0..n).map(|p| a_in[p * n + p]).collect();
    let mut b = d.clone();
    let mut z = vec![0.0; n];
    // vt: rows are eigenvectors (vt[k][j] = V[j][k]), so rotations touch contiguous rows.
    let mut vt = vec![0.0; n * n];
    for p in 0..n {
        vt[p * n + p] = 1.0;
    }
    let mut converged = n == 1;
    for sweep in 1..=MAX_SWEEPS {
        let off: f64 = (0..n)
            .map(|p| {
                a[p * n + p + 1..(p + 1) * n]
                    .iter()
                    .map(|x| x.abs())
                    .sum::<f64>()
            })
            .sum();
        if off == 0.0 {
            converged = true;
            break;
        }
        // First sweeps: only rotate the large elements.
        let tresh = if sweep < 4 {
            0.2 * off / (n * n) as f64
        } else {
            0.0
        };
        for p in 0..n - 1 {
            for q in p + 1..n {
                let apq = a[p * n + q];
                let g = 100.0 * apq.abs();
                // After 4 sweeps, drop an element too small to change either diagonal entry.
                if sweep > 4 && d[p].abs() + g == d[p].abs() && d[q].abs() + g == d[q].abs() {
                    a[p * n + q] = 0.0;
                    continue;
                }
                if apq.abs() <= tresh {
                    continue;
                }
                let h = d[q] - d[p];
                let t = if h.abs() + g == h.abs() {
                    apq / h
                } else {
                    let theta = 0.5 * h / apq;
                    let t = 1.0 / (theta.abs() + (1.0 + theta * theta).sqrt());
                    if theta < 0.0 { -t } else { t }
                };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                let tau = s / (1.0 + c);
                let h = t * apq;
                z[p] -= h;
                z[q] += h;
                d[p] -= h;
                d[q] += h;
                a[p * n + q] = 0.0;
                let rot = |x: f64, y: f64| (x - s * (y + x * tau), y + s * (x - y * tau));
                for j in 0..p {
                    let (x, y) = rot(a[j * n + p], a[j * n + q]);
                    a[j * n + p] = x;
                    a[j * n + q] = y;
                }
                for j in p + 1..q {
                    let (x, y) = rot(a[p * n + j], a[j * n + q]);
                    a[p * n + j] = x;
                    a[j * n + q] = y;
                }
                for j in q + 1..n {
                    let (x, y) = rot(a[p * n + j], a[q * n + j]);
                    a[p * n + j] = x;
                    a[q * n + j] = y;
                }
                let (rp, rq) = vt.split_at_mut(q * n);
                for (x, y) in rp[p * n..(p + 1) * n].iter_mut().zip(&mut rq[..n]) {
                    let (nx, ny) = rot(*x, *y);
                    *x = nx;
                    *y = ny;
                }
            }
        }
        for p in 0..n {
            b[p] += z[p];
            d[p] = b[p];
            z[p] = 0.0;
        }
    }
    if !converged {
        log::warn!("sym_eigen: Jacobi did not converge in {MAX_SWEEPS} sweeps (d = {n})");
    }
    // Sort descending (stable: equal values keep their index order).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[j].total_cmp(&d[i]));
    let values = order.iter().map(|&i| d[i]).collect();
    let mut vectors = Vec::with_capacity(n * n);
    for &i in &order {
        vectors.extend_from_slice(&vt[i * n..(i + 1) * n]);
    }
    SymEigen {
        d: n,
        values,
        vectors,
    }
}

/// `(m + mᵀ) / 2`, in place.
pub(crate) fn symmetrised(mut m: Array2<f64>) -> Vec<f64> {
    let d = m.nrows();
    for i in 0..d {
        for j in i + 1..d {
            let v = 0.5 * (m[[i, j]] + m[[j, i]]);
            m[[i, j]] = v;
            m[[j, i]] = v;
        }
    }
    m.into_raw_vec_and_offset().0
}

/// The column means and the unbiased covariance (divisor `n − 1`) of an `n × d`
/// row-major set, `n ≥ 2`, computed in two passes (mean first, then centred
/// products) so that a large common offset does not cancel catastrophically.
/// Returns `(mean [d], covariance [d × d] row-major, exactly symmetric)`.
pub(crate) fn mean_cov(x: &[f64], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    debug_assert!(n >= 2 && x.len() == n * d);
    let mean = column_means(x, n, d);
    let mut xc = Array2::from_shape_vec((n, d), x.to_vec()).expect("n × d");
    for mut row in xc.rows_mut() {
        for (v, m) in row.iter_mut().zip(&mean) {
            *v -= m;
        }
    }
    let mut cov = xc.t().dot(&xc);
    cov /= (n - 1) as f64;
    (mean, symmetrised(cov))
}

/// Column means of an `n × d` row-major set (`n ≥ 1`).
pub(crate) fn column_means(x: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut mean = vec![0.0; d];
    for row in x.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    mean
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testutil::gaussian;

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// ‖VVᵀ − I‖_max for rows-as-vectors V.
    fn orthonormality_error(e: &SymEigen) -> f64 {
        let d = e.d;
        let mut worst: f64 = 0.0;
        for i in 0..d {
            for j in 0..d {
                let dot: f64 = e
                    .vector(i)
                    .iter()
                    .zip(e.vector(j))
                    .map(|(a, b)| a * b)
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                worst = worst.max((dot - want).abs());
            }
        }
        worst
    }

    #[test]
    fn diagonal_matrix_is_its_own_decomposition() {
        let a = [3.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 7.5];
        let e = sym_eigen(&a, 3).unwrap();
        assert_eq!(e.values, vec![7.5, 3.0, -1.0]);
        assert_eq!(e.vector(0), &[0.0, 0.0, 1.0]);
        assert_eq!(e.vector(1), &[1.0, 0.0, 0.0]);
        assert_eq!(e.vector(2), &[0.0, 1.0, 0.0]);
        let one = sym_eigen(&[-2.0], 1).unwrap();
        assert_eq!((one.values, one.vectors), (vec![-2.0], vec![1.0]));
    }

    #[test]
    fn rotated_diagonal_recovers_values_and_axes() {
        // A = R diag(5, 2) Rᵀ with R a rotation by 0.3 rad.
        let (c, s) = (0.3f64.cos(), 0.3f64.sin());
        let a = [
            5.0 * c * c + 2.0 * s * s,
            (5.0 - 2.0) * c * s,
            (5.0 - 2.0) * c * s,
            5.0 * s * s + 2.0 * c * c,
        ];
        let e = sym_eigen(&a, 2).unwrap();
        assert!(
            max_abs_diff(&e.values, &[5.0, 2.0]) < 1e-14,
            "{:?}",
            e.values
        );
        let v0 = e.vector(0);
        // Up to sign, the first eigenvector is (c, s).
        assert!((v0[0] * c + v0[1] * s).abs() > 1.0 - 1e-14);
        // A 3-D rotation of diag(1, 2, 3) about a skew axis.
        let (ux, uy, uz) = (1.0 / 3f64.sqrt(), 1.0 / 3f64.sqrt(), 1.0 / 3f64.sqrt());
        let (c, s) = (1.1f64.cos(), 1.1f64.sin());
        let r = [
            [
                c + ux * ux * (1.0 - c),
                ux * uy * (1.0 - c) - uz * s,
                ux * uz * (1.0 - c) + uy * s,
            ],
            [
                uy * ux * (1.0 - c) + uz * s,
                c + uy * uy * (1.0 - c),
                uy * uz * (1.0 - c) - ux * s,
            ],
            [
                uz * ux * (1.0 - c) - uy * s,
                uz * uy * (1.0 - c) + ux * s,
                c + uz * uz * (1.0 - c),
            ],
        ];
        let lam = [1.0, 2.0, 3.0];
        let mut a = [0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| r[i][k] * lam[k] * r[j][k]).sum();
            }
        }
        let e = sym_eigen(&a, 3).unwrap();
        assert!(
            max_abs_diff(&e.values, &[3.0, 2.0, 1.0]) < 1e-14,
            "{:?}",
            e.values
        );
        for (i, k) in [(0, 2), (1, 1), (2, 0)] {
            let dot: f64 = (0..3).map(|j| e.vector(i)[j] * r[j][k]).sum();
            assert!(dot.abs() > 1.0 - 1e-13, "{i}: {dot}");
        }
    }

    #[test]
    fn random_spd_reconstructs_and_is_orthonormal() {
        for (d, seed) in [(5usize, 1u64), (17, 2), (64, 3), (128, 4)] {
            // A = GᵀG / d + 1e-3 I: SPD with a spread of eigenvalues.
            let g = Array2::from_shape_vec((d, d), gaussian(d, d, seed)).unwrap();
            let mut a = g.t().dot(&g) / d as f64;
            for i in 0..d {
                a[[i, i]] += 1e-3;
            }
            let a = symmetrised(a);
            let e = sym_eigen(&a, d).unwrap();
            assert!(e.values.windows(2).all(|w| w[0] >= w[1]));
            assert!(e.values[d - 1] > 0.0);
            let scale = e.values[0];
            let back = e.reconstruct_with(|x| x);
            let err = max_abs_diff(&back, &a) / scale;
            assert!(err < 1e-13, "d={d}: reconstruction error {err:e}");
            let orth = orthonormality_error(&e);
            assert!(orth < 1e-13, "d={d}: orthonormality error {orth:e}");
            let trace: f64 = (0..d).map(|i| a[i * d + i]).sum();
            assert!((e.values.iter().sum::<f64>() - trace).abs() < 1e-12 * trace);
        }
    }

    #[test]
    fn singular_and_repeated_eigenvalues() {
        // Rank one: u uᵀ with ‖u‖² = 14 → eigenvalues 14, 0, 0.
        let u = [1.0, 2.0, 3.0];
        let a: Vec<f64> = (0..9).map(|i| u[i / 3] * u[i % 3]).collect();
        let e = sym_eigen(&a, 3).unwrap();
        assert!(
            max_abs_diff(&e.values, &[14.0, 0.0, 0.0]) < 1e-13,
            "{:?}",
            e.values
        );
        assert!(orthonormality_error(&e) < 1e-14);
        // Identity times 2: any basis, all eigenvalues exactly 2.
        let mut a = vec![0.0; 16];
        (0..4).for_each(|i| a[i * 5] = 2.0);
        assert_eq!(sym_eigen(&a, 4).unwrap().values, vec![2.0; 4]);
        // The symmetric part is what is decomposed.
        let e = sym_eigen(&[1.0, 2.0, 0.0, 1.0], 2).unwrap();
        assert!(
            max_abs_diff(&e.values, &[2.0, 0.0]) < 1e-15,
            "{:?}",
            e.values
        );
    }

    #[test]
    fn psd_square_root_squares_back() {
        let d = 12;
        let g = Array2::from_shape_vec((d, 2 * d), gaussian(d, 2 * d, 9)).unwrap();
        let a = symmetrised(g.dot(&g.t()));
        let root = sym_eigen(&a, d)
            .unwrap()
            .reconstruct_with(|x| x.max(0.0).sqrt());
        let r = Array2::from_shape_vec((d, d), root).unwrap();
        let sq = r.dot(&r).into_raw_vec_and_offset().0;
        assert!(max_abs_diff(&sq, &a) < 1e-12 * a.iter().fold(0.0f64, |m, x| m.max(x.abs())));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(sym_eigen(&[], 0), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            sym_eigen(&[1.0; 5], 2),
            Err(Error::ShapeMismatch { .. })
        ));
        let e = sym_eigen(&[1.0, f64::NAN, 0.0, 1.0], 2).unwrap_err();
        assert!(
            matches!(e, Error::NonFinite(_)) && e.to_string().contains("(0, 1)"),
            "{e}"
        );
    }

    #[test]
    fn mean_cov_is_two_pass_and_unbiased() {
        // A huge common offset must not destroy the variance.
        let x = [1e9 + 1.0, 5.0, 1e9 + 2.0, 7.0, 1e9 + 3.0, 9.0];
        let (m, c) = mean_cov(&x, 3, 2);
        assert_eq!(m, vec![1e9 + 2.0, 7.0]);
        assert_eq!(c, vec![1.0, 2.0, 2.0, 4.0]);
    }

    /// Jacobi cost (`cargo test -p hatebm-rs --lib jacobi_timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn jacobi_timing() {
        for d in [32usize, 64, 128, 256, 512] {
            let g = Array2::from_shape_vec((d, d), gaussian(d, d, 1)).unwrap();
            let a = symmetrised(g.t().dot(&g));
            let t = std::time::Instant::now();
            let e = sym_eigen(&a, d).unwrap();
            eprintln!("jacobi d={d}: {:?} (λ₁ = {:.3})", t.elapsed(), e.values[0]);
        }
    }
}
