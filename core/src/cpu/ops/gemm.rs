//! General matrix multiplication: the one place in `hatebm-core` with `unsafe` code.
//!
//! [`gemm`] is a safe, bounds-checked wrapper over `matrixmultiply::sgemm` / `dgemm`
//! (single-threaded: the crate is built without its `threading` feature, the kernels
//! parallelise over the batch themselves). [`gemm_nn`], [`gemm_nt`] and [`gemm_tn`]
//! are shorthands for contiguous row-major operands.

use super::scalar::Scalar;

/// A strided view of a `rows × cols` matrix inside a slice `data` (`&[T]` or
/// `&mut [T]`, see [`MatRef`] and [`MatMut`]): element `(i, j)` is `data[i·rs + j·cs]`,
/// with row and column strides in elements, so a transposed operand is the same slice
/// with the strides swapped ([`MatRef::t`]).
///
/// Constructing a view checks nothing; [`gemm`] checks every element's offset against
/// `data.len()` (and, for the output, that distinct elements have distinct offsets)
/// before it reads or writes. A [`MatRef`] is `Copy`: pass it by value.
#[derive(Clone, Copy, Debug)]
pub struct Mat<S> {
    data: S,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

/// A read-only [`Mat`] view (the `A` and `B` operands of [`gemm`]).
pub type MatRef<'a, T> = Mat<&'a [T]>;
/// A writable [`Mat`] view (the `C` operand of [`gemm`]).
pub type MatMut<'a, T> = Mat<&'a mut [T]>;

impl<S> Mat<S> {
    /// The `rows × cols` matrix of `data` with strides `(rs, cs)` (element `(0, 0)` is
    /// `data[0]`).
    #[inline]
    pub fn new(data: S, rows: usize, cols: usize, (rs, cs): (isize, isize)) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }
}

impl<T, S: std::ops::Deref<Target = [T]>> Mat<S> {
    /// The contiguous row-major `rows × cols` matrix of `data`: strides `(cols, 1)`.
    ///
    /// # Panics
    ///
    /// If `data.len() != rows·cols`.
    #[inline]
    pub fn row_major(data: S, rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "gemm: a row-major [{rows}×{cols}] matrix needs {} elements",
            rows * cols
        );
        Mat::new(data, rows, cols, (stride(cols), 1))
    }
}

impl<T> MatRef<'_, T> {
    /// The transpose `[cols × rows]`: the same elements with the strides swapped.
    #[inline]
    pub fn t(self) -> Self {
        Mat::new(self.data, self.cols, self.rows, (self.cs, self.rs))
    }
}

/// The raw `matrixmultiply` entry point of a [`Scalar`] type.
///
/// Sealed: this trait lives in a private module, so it can be neither named nor
/// implemented outside `hatebm-core`; call the checked [`gemm`] instead.
pub trait RawGemm: Sized {
    /// `C ← alpha·A·B + beta·C`, exactly `matrixmultiply::{s,d}gemm` on the views'
    /// pointers and strides, with `m = a.rows`, `k = a.cols`, `n = b.cols`.
    ///
    /// # Safety
    ///
    /// The contract of `matrixmultiply::sgemm` / `dgemm`, in terms of the views:
    /// `b.rows == a.cols`, `c.rows == a.rows` and `c.cols == b.cols`; for every
    /// `i < m`, `l < k`, `j < n`, the offsets `i·a.rs + l·a.cs` of `a.data`,
    /// `l·b.rs + j·b.cs` of `b.data` and `i·c.rs + j·c.cs` of `c.data` lie in `0..len`
    /// of that slice; and the elements of `C` do not alias each other (distinct
    /// `(i, j)` ⇒ distinct offsets). That `C` aliases neither `A` nor `B` and that
    /// nothing else accesses `C` during the call follow from `c` holding a `&mut`
    /// borrow.
    unsafe fn raw_gemm(
        alpha: Self,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        beta: Self,
        c: MatMut<'_, Self>,
    );
}

/// Implements [`RawGemm`] for one type with its `matrixmultiply` function.
macro_rules! raw_gemm_impl {
    ($t:ty, $f:path) => {
        impl RawGemm for $t {
            #[inline]
            unsafe fn raw_gemm(
                alpha: $t,
                a: MatRef<'_, $t>,
                b: MatRef<'_, $t>,
                beta: $t,
                c: MatMut<'_, $t>,
            ) {
                // SAFETY: the caller upholds matrixmultiply's contract, restated in the
                // `# Safety` section of `RawGemm::raw_gemm`.
                unsafe {
                    $f(
                        a.rows,
                        a.cols,
                        b.cols,
                        alpha,
                        a.data.as_ptr(),
                        a.rs,
                        a.cs,
                        b.data.as_ptr(),
                        b.rs,
                        b.cs,
                        beta,
                        c.data.as_mut_ptr(),
                        c.rs,
                        c.cs,
                    )
                }
            }
        }
    };
}

raw_gemm_impl!(f32, matrixmultiply::sgemm);
raw_gemm_impl!(f64, matrixmultiply::dgemm);

/// Checks that every element `(i, j)`, `i < rows`, `j < cols`, of a strided matrix lies
/// inside a slice of length `len`.
fn check_bounds(what: &str, rows: usize, cols: usize, rs: isize, cs: isize, len: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let (r, c) = ((rows - 1) as i128, (cols - 1) as i128);
    let (rs, cs) = (rs as i128, cs as i128);
    let lo = r * rs.min(0) + c * cs.min(0);
    let hi = r * rs.max(0) + c * cs.max(0);
    assert!(
        lo >= 0,
        "gemm: {what} [{rows}×{cols}] with strides ({rs}, {cs}) reaches offset {lo} before the start of its slice"
    );
    assert!(
        hi < len as i128,
        "gemm: {what} [{rows}×{cols}] with strides ({rs}, {cs}) needs offset {hi} but its slice has length {len}"
    );
}

/// Checks that distinct elements of the output matrix have distinct offsets
/// (a sufficient condition: the larger stride steps over the whole extent of the smaller).
fn check_no_self_alias(rows: usize, cols: usize, rs: isize, cs: isize) {
    if rows <= 1 && cols <= 1 {
        return;
    }
    if rows <= 1 {
        assert!(
            cs != 0,
            "gemm: C has {cols} columns but column stride 0 (aliasing outputs)"
        );
        return;
    }
    if cols <= 1 {
        assert!(
            rs != 0,
            "gemm: C has {rows} rows but row stride 0 (aliasing outputs)"
        );
        return;
    }
    let (a, b) = (rs.unsigned_abs() as u128, cs.unsigned_abs() as u128);
    let ((s1, n1), s2) = if a <= b {
        ((a, rows), b)
    } else {
        ((b, cols), a)
    };
    assert!(
        s1 != 0 && s2 > s1 * (n1 as u128 - 1),
        "gemm: C [{rows}×{cols}] with strides ({rs}, {cs}) has aliasing (overlapping) elements"
    );
}

/// General matrix multiplication on strided views:
/// `C[m×n] ← alpha·A[m×k]·B[k×n] + beta·C`, with `m = a.rows`, `k = a.cols`,
/// `n = b.cols`.
///
/// Element `(i, j)` of a view is `data[i·rs + j·cs]`, so transposed operands are
/// expressed by swapping strides ([`MatRef::t`]): a row-major `[k×m]` slice used as
/// `Aᵀ` has `rs = 1, cs = m`. Every extent is checked against the slice lengths before
/// `matrixmultiply` is called; strides may be negative only where the matching extent
/// is 1 (element `(0, 0)` is always the slice's first element). Runs single-threaded
/// on the calling thread.
///
/// If `beta == 0`, `C` is not read: NaN or garbage in `C` is overwritten. If `k == 0`,
/// the result is `beta·C`. If `m == 0` or `n == 0` nothing happens.
///
/// # Panics
///
/// If the shapes disagree (`b.rows != a.cols`, or `C` is not `[a.rows × b.cols]`), if
/// any element of `A` (when `m, k > 0`), `B` (when `k, n > 0`) or `C` (when `m, n > 0`)
/// falls outside its slice, or if two elements of `C` share an offset.
pub fn gemm<T: Scalar>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.rows == m && c.cols == n,
        "gemm: shapes A [{m}×{k}] · B [{}×{n}] → C [{}×{}] disagree",
        b.rows,
        c.rows,
        c.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        check_bounds("A", m, k, a.rs, a.cs, a.data.len());
        check_bounds("B", k, n, b.rs, b.cs, b.data.len());
    }
    check_bounds("C", m, n, c.rs, c.cs, c.data.len());
    check_no_self_alias(m, n, c.rs, c.cs);
    // SAFETY: matrixmultiply's contract (see `RawGemm::raw_gemm`):
    // * the shapes agree (asserted above);
    // * in bounds: `check_bounds` proved every offset `i·rs + j·cs` of A (m×k), B (k×n)
    //   and C (m×n) lies in `0..len` of its slice (A and B are not read when k == 0,
    //   and we returned early when C is empty), so all reads/writes stay inside the
    //   three live slices;
    // * C's elements do not alias each other: `check_no_self_alias`;
    // * C does not alias A or B, and nothing else touches C during the call: `c.data`
    //   is a `&mut` borrow, exclusive against the shared borrows `a.data` and `b.data`;
    // * `matrixmultiply` is built without threading, so the call is confined to this
    //   thread and the borrows outlive it.
    unsafe { T::raw_gemm(alpha, a, b, beta, c) }
}

fn stride(x: usize) -> isize {
    isize::try_from(x).expect("gemm: extent does not fit in isize")
}

/// `C ← alpha·A·B + beta·C` with contiguous row-major `a` `[m×k]`, `b` `[k×n]`, `c` `[m×n]`.
///
/// # Panics
///
/// If `a.len() != m·k`, `b.len() != k·n` or `c.len() != m·n`.
pub fn gemm_nn<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) {
    assert_eq!(a.len(), m * k, "gemm_nn: A must be [m={m}×k={k}]");
    assert_eq!(b.len(), k * n, "gemm_nn: B must be [k={k}×n={n}]");
    assert_eq!(c.len(), m * n, "gemm_nn: C must be [m={m}×n={n}]");
    gemm(
        alpha,
        MatRef::row_major(a, m, k),
        MatRef::row_major(b, k, n),
        beta,
        MatMut::row_major(c, m, n),
    );
}

/// `C ← alpha·A·Bᵀ + beta·C` with contiguous row-major `a` `[m×k]`, `b` `[n×k]`, `c` `[m×n]`.
///
/// # Panics
///
/// If `a.len() != m·k`, `b.len() != n·k` or `c.len() != m·n`.
pub fn gemm_nt<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) {
    assert_eq!(a.len(), m * k, "gemm_nt: A must be [m={m}×k={k}]");
    assert_eq!(b.len(), n * k, "gemm_nt: B must be [n={n}×k={k}]");
    assert_eq!(c.len(), m * n, "gemm_nt: C must be [m={m}×n={n}]");
    gemm(
        alpha,
        MatRef::row_major(a, m, k),
        MatRef::row_major(b, n, k).t(),
        beta,
        MatMut::row_major(c, m, n),
    );
}

/// `C ← alpha·Aᵀ·B + beta·C` with contiguous row-major `a` `[k×m]`, `b` `[k×n]`, `c` `[m×n]`.
///
/// # Panics
///
/// If `a.len() != k·m`, `b.len() != k·n` or `c.len() != m·n`.
pub fn gemm_tn<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) {
    assert_eq!(a.len(), k * m, "gemm_tn: A must be [k={k}×m={m}]");
    assert_eq!(b.len(), k * n, "gemm_tn: B must be [k={k}×n={n}]");
    assert_eq!(c.len(), m * n, "gemm_tn: C must be [m={m}×n={n}]");
    gemm(
        alpha,
        MatRef::row_major(a, k, m).t(),
        MatRef::row_major(b, k, n),
        beta,
        MatMut::row_major(c, m, n),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::{assert_close, rand_vec, rng};

    /// Naive triple loop over the same strided layout.
    fn naive(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: &[f64],
        (rsa, csa): (isize, isize),
        b: &[f64],
        (rsb, csb): (isize, isize),
        beta: f64,
        c: &mut [f64],
        (rsc, csc): (isize, isize),
    ) {
        for i in 0..m as isize {
            for j in 0..n as isize {
                let mut s = 0.0;
                for l in 0..k as isize {
                    s += a[(i * rsa + l * csa) as usize] * b[(l * rsb + j * csb) as usize];
                }
                let ci = (i * rsc + j * csc) as usize;
                c[ci] = alpha * s + if beta == 0.0 { 0.0 } else { beta * c[ci] };
            }
        }
    }

    /// Layout of an `r×c` matrix: 0 row-major, 1 column-major, 2 padded row-major,
    /// 3 padded column-major. Returns (strides, slice length).
    fn layout(kind: usize, r: usize, c: usize) -> ((isize, isize), usize) {
        let (r_, c_) = (r as isize, c as isize);
        match kind {
            0 => ((c_, 1), r * c),
            1 => ((1, r_), r * c),
            2 => ((c_ + 3, 1), (r * (c + 3)).max(1)),
            _ => ((2, 2 * r_ + 1), (c * (2 * r + 1)).max(1)),
        }
    }

    #[test]
    fn gemm_matches_naive_all_layouts() {
        let mut g = rng(1);
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 4), (17, 9, 33), (8, 0, 5), (64, 70, 19)] {
            for la in 0..4 {
                for lb in 0..4 {
                    for lc in 0..4 {
                        for &(alpha, beta) in &[(1.0, 0.0), (0.5, 1.0), (-1.5, 0.25), (0.0, 2.0)] {
                            let (sa, na) = layout(la, m, k);
                            let (sb, nb) = layout(lb, k, n);
                            let (sc, nc) = layout(lc, m, n);
                            let a = rand_vec(&mut g, na);
                            let b = rand_vec(&mut g, nb);
                            let c0 = rand_vec(&mut g, nc);
                            let mut want = c0.clone();
                            naive(m, k, n, alpha, &a, sa, &b, sb, beta, &mut want, sc);
                            let mut got = c0.clone();
                            gemm(
                                alpha,
                                MatRef::new(&a, m, k, sa),
                                MatRef::new(&b, k, n, sb),
                                beta,
                                MatMut::new(&mut got, m, n, sc),
                            );
                            assert_close(&got, &want, 1e-13, "gemm f64");
                            // f32 against the f64 result.
                            let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                            let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                            let mut c32: Vec<f32> = c0.iter().map(|&v| v as f32).collect();
                            gemm(
                                alpha as f32,
                                MatRef::new(&a32, m, k, sa),
                                MatRef::new(&b32, k, n, sb),
                                beta as f32,
                                MatMut::new(&mut c32, m, n, sc),
                            );
                            let c32: Vec<f64> = c32.iter().map(|&v| v as f64).collect();
                            assert_close(&c32, &want, 1e-5, "gemm f32");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn beta_zero_overwrites_nan() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [1.0f32, 0.0, 0.0, 1.0];
        let mut c = [f32::NAN; 4];
        gemm_nn(2, 2, 2, 1.0, &a, &b, 0.0, &mut c);
        assert_eq!(c, a);
    }

    #[test]
    fn wrappers_match_strided() {
        let mut g = rng(2);
        let (m, k, n) = (7, 11, 5);
        let a = rand_vec(&mut g, m * k);
        let at = rand_vec(&mut g, k * m);
        let b = rand_vec(&mut g, k * n);
        let bt = rand_vec(&mut g, n * k);
        let mut want = vec![0.0; m * n];
        let mut got = vec![0.0; m * n];
        naive(
            m,
            k,
            n,
            1.0,
            &a,
            (k as isize, 1),
            &bt,
            (1, k as isize),
            0.0,
            &mut want,
            (n as isize, 1),
        );
        gemm_nt(m, k, n, 1.0, &a, &bt, 0.0, &mut got);
        assert_close(&got, &want, 1e-13, "gemm_nt");
        naive(
            m,
            k,
            n,
            1.0,
            &at,
            (1, m as isize),
            &b,
            (n as isize, 1),
            0.0,
            &mut want,
            (n as isize, 1),
        );
        gemm_tn(m, k, n, 1.0, &at, &b, 0.0, &mut got);
        assert_close(&got, &want, 1e-13, "gemm_tn");
        naive(
            m,
            k,
            n,
            2.0,
            &a,
            (k as isize, 1),
            &b,
            (n as isize, 1),
            0.0,
            &mut want,
            (n as isize, 1),
        );
        gemm_nn(m, k, n, 2.0, &a, &b, 0.0, &mut got);
        assert_close(&got, &want, 1e-13, "gemm_nn");
    }

    #[test]
    #[should_panic(expected = "needs offset")]
    fn out_of_bounds_panics() {
        let a = [0.0f64; 5];
        let b = [0.0f64; 6];
        let mut c = [0.0f64; 4];
        gemm(
            1.0,
            MatRef::new(&a, 2, 3, (3, 1)),
            MatRef::new(&b, 3, 2, (2, 1)),
            0.0,
            MatMut::new(&mut c, 2, 2, (2, 1)),
        );
    }

    #[test]
    #[should_panic(expected = "aliasing")]
    fn aliasing_c_panics() {
        let a = [0.0f64; 6];
        let b = [0.0f64; 6];
        let mut c = [0.0f64; 4];
        gemm(
            1.0,
            MatRef::new(&a, 2, 3, (3, 1)),
            MatRef::new(&b, 3, 2, (2, 1)),
            0.0,
            MatMut::new(&mut c, 2, 2, (1, 1)),
        );
    }

    #[test]
    #[should_panic(expected = "before the start")]
    fn negative_stride_panics() {
        let a = [0.0f64; 6];
        let b = [0.0f64; 6];
        let mut c = [0.0f64; 4];
        gemm(
            1.0,
            MatRef::new(&a, 2, 3, (-3, 1)),
            MatRef::new(&b, 3, 2, (2, 1)),
            0.0,
            MatMut::new(&mut c, 2, 2, (2, 1)),
        );
    }
}
