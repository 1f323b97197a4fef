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

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis, linalg::general_mat_mul};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::linalg::{jacobi, symmetrised};
use super::{Real, check_shape};
use crate::weights::TensorFile;
use crate::{Error, Result};

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
    /// `O(d²·l)` per iteration (`l = 2k + 8`) — about 0.6 s for
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

    /// Serialises to safetensors bytes: tensors `mean` `[d]` and `components`
    /// `[k, d]` (F32), metadata `format` = `hatebm-pca`, `format_version` = `1`,
    /// `explained_variance` (comma-separated `f64`, shortest round-trip form),
    /// `total_variance`, `n_fit`, `seed`, `iterations`, `residual`.
    ///
    /// # Errors
    /// None in practice (the shapes are consistent by construction).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::weights::to_bytes(&self.tensors(), &self.metadata())
    }

    /// Writes [`to_bytes`](Self::to_bytes) to `path` atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::weights::write(path.as_ref(), &self.tensors(), &self.metadata())
    }

    /// Reads a PCA written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; otherwise as
    /// [`from_bytes`](Self::from_bytes).
    pub fn load(path: impl AsRef<Path>) -> Result<Pca> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses [`to_bytes`](Self::to_bytes) output; `context` names the source in
    /// errors.
    ///
    /// # Errors
    /// [`Error::Format`] for a corrupt file, a wrong `format` / `format_version`,
    /// missing or malformed metadata or tensors, inconsistent shapes, a
    /// non-finite value, or components that are not orthonormal (to 1e-4).
    pub fn from_bytes(bytes: &[u8], context: &str) -> Result<Pca> {
        let file = TensorFile::from_bytes(bytes, context)?;
        let fmt = |m: String| Error::format(context, m);
        let meta = |key: &str| {
            file.metadata
                .get(key)
                .ok_or_else(|| fmt(format!("metadata key `{key}` is missing")))
        };
        if meta("format")? != FORMAT {
            return Err(fmt(format!(
                "`format` is `{}`, expected `{FORMAT}`",
                meta("format")?
            )));
        }
        if meta("format_version")? != FORMAT_VERSION {
            return Err(fmt(format!(
                "unsupported format_version `{}` (this build reads `{FORMAT_VERSION}`)",
                meta("format_version")?
            )));
        }
        let tensor = |name: &str| file.f32(name).map_err(|e| fmt(e.to_string()));
        let (ms, mean) = tensor("mean")?;
        let (cs, comps) = tensor("components")?;
        let (d, k) = match (ms, cs) {
            ([d], [k, d2]) if *d >= 1 && d2 == d && (1..=*d).contains(k) => (*d, *k),
            _ => {
                return Err(fmt(format!(
                    "tensor shapes mean {ms:?} and components {cs:?} are not [d] and [k, d] \
                     with 1 <= k <= d"
                )));
            }
        };
        if mean.iter().chain(comps).any(|v| !v.is_finite()) {
            return Err(fmt("a tensor holds a NaN or infinity".into()));
        }
        let parse_f64 = |key: &str, s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    fmt(format!(
                        "metadata `{key}`: `{s}` is not a finite number >= 0"
                    ))
                })
        };
        let parse_u64 = |key: &str| {
            meta(key)?
                .parse::<u64>()
                .map_err(|_| fmt(format!("metadata `{key}` is not an integer")))
        };
        let ev_text = meta("explained_variance")?;
        let explained_variance = ev_text
            .split(',')
            .map(|s| parse_f64("explained_variance", s))
            .collect::<Result<Vec<f64>>>()?;
        if explained_variance.len() != k {
            return Err(fmt(format!(
                "`explained_variance` has {} values for {k} components",
                explained_variance.len()
            )));
        }
        let total_variance = parse_f64("total_variance", meta("total_variance")?)?;
        let residual = parse_f64("residual", meta("residual")?)?;
        let n_fit = usize::try_from(parse_u64("n_fit")?)
            .map_err(|_| fmt("metadata `n_fit` is out of range".into()))?;
        let iterations = usize::try_from(parse_u64("iterations")?)
            .map_err(|_| fmt("metadata `iterations` is out of range".into()))?;
        let seed = parse_u64("seed")?;
        // The rows must be orthonormal (f32 rounding leaves ~1e-7).
        for i in 0..k {
            for j in 0..=i {
                let dot: f64 = comps[i * d..(i + 1) * d]
                    .iter()
                    .zip(&comps[j * d..(j + 1) * d])
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                if (dot - want).abs() > 1e-4 {
                    return Err(fmt(format!(
                        "components are not orthonormal: row {i} · row {j} = {dot}"
                    )));
                }
            }
        }
        Ok(Pca {
            d,
            k,
            mean: mean.to_vec(),
            components: comps.to_vec(),
            explained_variance,
            total_variance,
            n_fit,
            seed,
            iterations,
            residual,
        })
    }

    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![
            ("mean".into(), vec![self.d], self.mean.clone()),
            (
                "components".into(),
                vec![self.k, self.d],
                self.components.clone(),
            ),
        ]
    }

    fn metadata(&self) -> HashMap<String, String> {
        let ev: Vec<String> = self
            .explained_variance
            .iter()
            .map(|v| v.to_string())
            .collect();
        [
            ("format", FORMAT.to_owned()),
            ("format_version", FORMAT_VERSION.to_owned()),
            ("explained_variance", ev.join(",")),
            ("total_variance", self.total_variance.to_string()),
            ("n_fit", self.n_fit.to_string()),
            ("seed", self.seed.to_string()),
            ("iterations", self.iterations.to_string()),
            ("residual", self.residual.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
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

/// How the eigenproblem is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// Full Jacobi of the formed covariance.
    Dense,
    /// Subspace iteration with the formed covariance.
    Explicit,
    /// Subspace iteration applying `Xcᵀ(Xc Q)` from the data.
    Implicit,
}

impl Method {
    /// `Dense` up to [`DENSE_MAX_DIM`]; then the cheaper of the two subspace
    /// variants by flop count — explicit: `2nd²` once + `2d²l` per iteration;
    /// implicit: `4ndl` per iteration; assuming ~30 iterations — with the `d × d`
    /// matrix capped at ~1 GiB.
    fn choose(n: usize, d: usize, l: usize) -> Method {
        if d <= DENSE_MAX_DIM {
            return Method::Dense;
        }
        let (nf, df, lf) = (n as f64, d as f64, l as f64);
        let explicit = 2.0 * nf * df * df + 60.0 * df * df * lf;
        let implicit = 120.0 * nf * df * lf;
        if explicit <= implicit && d <= 11_000 {
            Method::Explicit
        } else {
            Method::Implicit
        }
    }
}

/// How the covariance is applied to a block of row vectors.
enum CovOp<'a, T> {
    /// The formed `d × d` covariance.
    Explicit(Array2<f64>),
    /// `Xcᵀ (Xc q) / (n − 1)`, streaming the data.
    Implicit {
        data: &'a [T],
        n: usize,
        d: usize,
        mean: &'a [f64],
    },
}

impl<T: Real> CovOp<'_, T> {
    /// `Q C` for `Q` `[l, d]` (rows are vectors; `C` is symmetric).
    fn apply(&self, q: &Array2<f64>) -> Array2<f64> {
        match self {
            CovOp::Explicit(c) => q.dot(c),
            CovOp::Implicit { data, n, d, mean } => {
                let mut z = Array2::<f64>::zeros(q.raw_dim());
                for block in data.chunks(BLOCK_ROWS * d) {
                    let xc = centred_block(block, *d, mean, "", 0).expect("validated");
                    let y = q.dot(&xc.t()); // [l, rows]
                    general_mat_mul(1.0, &y, &xc, 1.0, &mut z);
                }
                z / (*n - 1) as f64
            }
        }
    }
}

/// Subspace iteration with Rayleigh–Ritz; returns `(values [l] desc, vectors
/// [l, d] rows, iterations, relative residual)`.
fn subspace_iteration<T: Real>(
    op: &CovOp<'_, T>,
    d: usize,
    k: usize,
    l: usize,
    seed: u64,
) -> (Vec<f64>, Vec<f64>, usize, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut q = Array2::from_shape_simple_fn((l, d), || rng.sample::<f64, _>(StandardNormal));
    orthonormalise_rows(&mut q, &mut rng);
    let mut result = None;
    for it in 1..=MAX_ITERATIONS {
        let z = op.apply(&q); // rows: C q_i
        let h = symmetrised(z.dot(&q.t())); // q_i · C q_j
        let e = jacobi(&h, l);
        let w = ArrayView2::from_shape((l, l), &e.vectors).expect("l × l");
        let u = w.dot(&q); // Ritz vectors (rows)
        let mut cu = w.dot(&z); // C u_i
        let top = e.values[0];
        let residual = if top > 0.0 {
            (0..k)
                .map(|i| {
                    let r: f64 = cu
                        .row(i)
                        .iter()
                        .zip(u.row(i))
                        .map(|(a, b)| (a - e.values[i] * b).powi(2))
                        .sum();
                    r.sqrt() / top
                })
                .fold(0.0, f64::max)
        } else {
            0.0
        };
        let done = residual <= TOLERANCE || it == MAX_ITERATIONS;
        if done {
            result = Some((e.values, u.into_raw_vec_and_offset().0, it, residual));
            break;
        }
        orthonormalise_rows(&mut cu, &mut rng);
        q = cu;
    }
    result.expect("the loop runs at least once and returns on its last iteration")
}

/// Orthonormalises the rows of `q` in order by modified Gram–Schmidt, applied
/// twice ("twice is enough"). A row that is (numerically) in the span of the
/// previous ones is replaced by a fresh Gaussian row from `rng`, so the result
/// always has `l` orthonormal rows (requires `l ≤ d`).
fn orthonormalise_rows(q: &mut Array2<f64>, rng: &mut ChaCha8Rng) {
    let (l, d) = q.dim();
    debug_assert!(l <= d);
    let scale = q
        .rows()
        .into_iter()
        .map(|r| r.dot(&r).sqrt())
        .fold(0.0, f64::max);
    for i in 0..l {
        let mut attempts = 0;
        loop {
            let (done, mut rest) = q.view_mut().split_at(Axis(0), i);
            let mut row = rest.row_mut(0);
            let norm0 = row.dot(&row).sqrt();
            for _ in 0..2 {
                for prev in done.rows() {
                    let c = prev.dot(&row);
                    row.scaled_add(-c, &prev);
                }
            }
            let norm = row.dot(&row).sqrt();
            let independent = norm > 1e-8 * norm0 && norm > 1e-13 * scale && norm > 0.0;
            if independent || attempts >= 8 {
                row /= norm.max(f64::MIN_POSITIVE);
                break;
            }
            attempts += 1;
            for v in row.iter_mut() {
                *v = rng.sample(StandardNormal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testutil::gaussian;
    use crate::metrics::to_f64_checked;

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

    /// Timing for the documented size (`cargo test -p hatebm-core --release
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
}
