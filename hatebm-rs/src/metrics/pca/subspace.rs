//! Subspace iteration with Rayleigh–Ritz for the top eigenvectors of a covariance.

use ndarray::{Array2, ArrayView2, Axis, linalg::general_mat_mul};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{BLOCK_ROWS, DENSE_MAX_DIM, MAX_ITERATIONS, TOLERANCE, centred_block};
use crate::metrics::Real;
use crate::metrics::linalg::{jacobi, symmetrised};

/// How the eigenproblem is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
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
    pub(super) fn choose(n: usize, d: usize, l: usize) -> Method {
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
pub(super) enum CovOp<'a, T> {
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
pub(super) fn subspace_iteration<T: Real>(
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
pub(super) fn orthonormalise_rows(q: &mut Array2<f64>, rng: &mut ChaCha8Rng) {
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
