//! Principal component analysis: a fixed, reproducible feature space for image
//! metrics (the project ships no pretrained Inception network).
//!
//! [`Pca::fit`] finds the top-`k` eigenvectors of the unbiased covariance of the
//! centred data:
//!
//! * `d ≤ 128`: the covariance is formed and fully diagonalised by Jacobi
//!   ([`super::sym_eigen`]) — exact to rounding.
//! * `d > 128`: subspace iteration with Rayleigh–Ritz on an `l = min(d, 2k + 8)`
//!   dimensional block, started from a ChaCha8 Gaussian block (the seed). Each
//!   iteration multiplies the block by the covariance, solves the `l × l`
//!   Rayleigh–Ritz eigenproblem exactly (Jacobi), and re-orthonormalises the
//!   Ritz block (modified Gram–Schmidt, twice). It stops when every one of the
//!   top `k` Ritz pairs has residual `‖C u − θ u‖ ≤ 1e-7 · θ₁`, or after
//!   [`MAX_ITERATIONS`]. The covariance is applied explicitly (formed once by
//!   GEMM) or implicitly as `Xcᵀ(Xc Q)/(n−1)`, whichever the flop count favours;
//!   the data are streamed in row blocks, so memory stays `O(d² + 512·d)`.
//!
//! Components are sign-normalised (the entry of largest magnitude is positive,
//! first such entry on ties), so a refit with another seed gives the same
//! directions up to the convergence tolerance. The mean and the components are
//! rounded to `f32` when the fit ends — the fitted object *is* those `f32`
//! tensors, so a [`Pca`] loaded from its file transforms bit-identically to the
//! one that wrote it.

use ndarray::{Array2, linalg::general_mat_mul};

use super::linalg::{jacobi, symmetrised};
use super::{Real, check_shape};
use crate::{Error, Result};

mod io;
mod subspace;
#[cfg(test)]
mod tests;

use subspace::{CovOp, Method, subspace_iteration};

/// Up to this feature dimension the covariance is diagonalised in full by Jacobi.
pub const DENSE_MAX_DIM: usize = 128;

/// The iteration limit of the subspace iteration.
pub const MAX_ITERATIONS: usize = 100;

/// The convergence tolerance: the largest residual `‖C u_i − θ_i u_i‖` of the
/// top-`k` Ritz pairs, relative to the largest eigenvalue `θ₁`.
pub const TOLERANCE: f64 = 1e-7;

/// The `format` metadata value of a saved PCA.
pub const FORMAT: &str = "hatebm-pca";

/// The `format_version` metadata value written by this version.
pub const FORMAT_VERSION: &str = "1";

/// Rows streamed per block when forming products with the data.
const BLOCK_ROWS: usize = 512;

/// A fitted PCA: mean `[d]`, orthonormal components `[k, d]` (rows), and the
/// variance of the fitting data along each component.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    d: usize,
    k: usize,
    mean: Vec<f32>,
    components: Vec<f32>,
    explained_variance: Vec<f64>,
    total_variance: f64,
    n_fit: usize,
    seed: u64,
    iterations: usize,
    residual: f64,
}

impl Pca {
    /// Fits the top-`k` principal directions of `n` samples of `d` features
    /// (`data`: `[n, d]` row-major). Deterministic given `(data, k, seed)` on a
    /// given machine and build (GEMM kernels are chosen by CPU features, so two
    /// CPUs may differ in the last bits; ship the saved file to share a space).
    ///
    /// Runs on the calling thread. Cost: `O(n·d²)` to form the covariance plus
    /// `O(d²·l)` per iteration (`l = 2k + 8`) — 0.2–0.6 s for
    /// `n = 5000, d = 1024, k = 32` on one core.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `data.len() != n·d`;
    /// [`Error::InvalidArgument`] for `d == 0`, `n < 2`, or `k` outside
    /// `1..=min(d, n − 1)` (the centred data have rank at most `n − 1`);
    /// [`Error::NonFinite`] for a NaN / ±∞ value.
    pub fn fit<T: Real>(data: &[T], n: usize, d: usize, k: usize, seed: u64) -> Result<Pca> {
        Self::fit_with(data, n, d, k, seed, None)
    }

    /// [`fit`](Self::fit), optionally forcing the method (for tests).
    fn fit_with<T: Real>(
        data: &[T],
        n: usize,
        d: usize,
        k: usize,
        seed: u64,
        force: Option<Method>,
    ) -> Result<Pca> {
        check_shape("PCA data", data, n, d, 2)?;
        crate::ensure!(
            k >= 1 && k <= d.min(n - 1),
            "PCA: k must be in 1..={} (min(d, n - 1) for n = {n}, d = {d}), got {k}",
            d.min(n - 1)
        );
        let mean = mean_checked(data, n, d)?;
        let total_variance = {
            let mut ss = 0.0;
            for row in data.chunks_exact(d) {
                for (v, m) in row.iter().zip(&mean) {
                    let t = v.to_f64() - m;
                    ss += t * t;
                }
            }
            ss / (n - 1) as f64
        };
        let l = d.min(2 * k + 8);
        let method = force.unwrap_or_else(|| Method::choose(n, d, l));
        let (values, vectors, iterations, residual) = match method {
            Method::Dense => {
                let e = jacobi(&covariance(data, n, d, &mean), d);
                (e.values, e.vectors, 0, 0.0)
            }
            Method::Explicit => {
                let c =
                    Array2::from_shape_vec((d, d), covariance(data, n, d, &mean)).expect("d × d");
                subspace_iteration(&CovOp::<T>::Explicit(c), d, k, l, seed)
            }
            Method::Implicit => {
                let op = CovOp::Implicit {
                    data,
                    n,
                    d,
                    mean: &mean,
                };
                subspace_iteration(&op, d, k, l, seed)
            }
        };
        let mut components = Vec::with_capacity(k * d);
        for row in vectors.chunks_exact(d).take(k) {
            // Sign: make the largest-magnitude entry (first on ties) positive.
            let mut arg = 0;
            for (j, v) in row.iter().enumerate() {
                if v.abs() > row[arg].abs() {
                    arg = j;
                }
            }
            let sign = if row[arg] < 0.0 { -1.0 } else { 1.0 };
            components.extend(row.iter().map(|v| (sign * v) as f32));
        }
        Ok(Pca {
            d,
            k,
            mean: mean.iter().map(|&m| m as f32).collect(),
            components,
            explained_variance: values[..k].iter().map(|v| v.max(0.0)).collect(),
            total_variance,
            n_fit: n,
            seed,
            iterations,
            residual,
        })
    }

    /// Projects `n` samples of [`dim`](Self::dim) features onto the components:
    /// `(x − mean) · componentsᵀ`, an `[n, k]` row-major `f64` buffer in the
    /// data's units (not whitened). Streams the input in blocks of rows.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `data.len() != n·dim`; [`Error::NonFinite`]
    /// for a NaN / ±∞ value. `n == 0` gives an empty result.
    pub fn transform<T: Real>(&self, data: &[T], n: usize) -> Result<Vec<f64>> {
        check_shape("PCA transform input", data, n, self.d, 0)?;
        let (d, k) = (self.d, self.k);
        let comp = Array2::from_shape_vec(
            (k, d),
            self.components.iter().map(|&v| f64::from(v)).collect(),
        )
        .expect("k × d");
        let mean: Vec<f64> = self.mean.iter().map(|&v| f64::from(v)).collect();
        let mut out = Vec::with_capacity(n * k);
        for (b, block) in data.chunks(BLOCK_ROWS * d).enumerate() {
            let xc = centred_block(block, d, &mean, "PCA transform input", b * BLOCK_ROWS)?;
            out.extend(xc.dot(&comp.t()).iter());
        }
        Ok(out)
    }

    /// The input feature dimension `d`.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The number of components `k` (the output dimension of
    /// [`transform`](Self::transform)).
    pub fn n_components(&self) -> usize {
        self.k
    }

    /// The mean of the fitting data, `[d]`.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The components, `[k, d]` row-major, orthonormal rows, in order of
    /// decreasing explained variance.
    pub fn components(&self) -> &[f32] {
        &self.components
    }

    /// The unbiased variance (divisor `n − 1`) of the fitting data along each
    /// component, `[k]`, non-increasing, in squared data units: the top `k`
    /// eigenvalues of the covariance.
    pub fn explained_variance(&self) -> &[f64] {
        &self.explained_variance
    }

    /// The total variance of the fitting data (the trace of its covariance).
    pub fn total_variance(&self) -> f64 {
        self.total_variance
    }

    /// [`explained_variance`](Self::explained_variance) divided by
    /// [`total_variance`](Self::total_variance) (zeros when the data were constant).
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        self.explained_variance
            .iter()
            .map(|v| {
                if self.total_variance > 0.0 {
                    v / self.total_variance
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The number of samples the PCA was fitted on.
    pub fn n_fit(&self) -> usize {
        self.n_fit
    }

    /// The seed of the fit.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Subspace iterations used (0 for the dense Jacobi path, `d ≤ 128`).
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// The final relative residual `maxᵢ ‖C uᵢ − θᵢ uᵢ‖ / θ₁` over the top `k`
    /// Ritz pairs (0 for the dense path); ≤ [`TOLERANCE`] unless the iteration
    /// limit was reached (nearly flat spectra).
    pub fn residual(&self) -> f64 {
        self.residual
    }
}

/// Column means in `f64`, rejecting NaN / ±∞ (named by sample and feature).
fn mean_checked<T: Real>(data: &[T], n: usize, d: usize) -> Result<Vec<f64>> {
    let mut mean = vec![0.0; d];
    for (i, row) in data.chunks_exact(d).enumerate() {
        for (j, (m, v)) in mean.iter_mut().zip(row).enumerate() {
            let v = v.to_f64();
            if !v.is_finite() {
                return Err(Error::NonFinite(format!(
                    "PCA data: sample {i}, feature {j} is {v}"
                )));
            }
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    Ok(mean)
}

/// A block of rows, widened and centred; `first` is the index of its first row
/// (for error messages).
fn centred_block<T: Real>(
    block: &[T],
    d: usize,
    mean: &[f64],
    what: &str,
    first: usize,
) -> Result<Array2<f64>> {
    let rows = block.len() / d;
    let mut xc = Array2::zeros((rows, d));
    for (i, (mut out, row)) in xc
        .rows_mut()
        .into_iter()
        .zip(block.chunks_exact(d))
        .enumerate()
    {
        for (j, ((o, v), m)) in out.iter_mut().zip(row).zip(mean).enumerate() {
            let v = v.to_f64();
            if !v.is_finite() {
                return Err(Error::NonFinite(format!(
                    "{what}: sample {}, feature {j} is {v}",
                    first + i
                )));
            }
            *o = v - m;
        }
    }
    Ok(xc)
}

/// The unbiased covariance `[d × d]` of validated data, accumulated over row blocks.
fn covariance<T: Real>(data: &[T], n: usize, d: usize, mean: &[f64]) -> Vec<f64> {
    let mut c = Array2::<f64>::zeros((d, d));
    for block in data.chunks(BLOCK_ROWS * d) {
        let xc = centred_block(block, d, mean, "", 0).expect("validated by mean_checked");
        general_mat_mul(1.0, &xc.t(), &xc, 1.0, &mut c);
    }
    c /= (n - 1) as f64;
    symmetrised(c)
}
