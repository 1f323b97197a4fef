//! General matrix multiplication: the one place in `hatebm-core` with `unsafe` code.
//!
//! [`gemm`] is a safe, bounds-checked wrapper over `matrixmultiply::sgemm` / `dgemm`
//! (single-threaded: the crate is built without its `threading` feature, the kernels
//! parallelise over the batch themselves). [`gemm_nn`], [`gemm_nt`] and [`gemm_tn`]
//! are shorthands for contiguous row-major operands.

use super::scalar::Scalar;

/// The raw `matrixmultiply` entry point of a [`Scalar`] type.
///
/// Sealed: this trait lives in a private module, so it can be neither named nor
/// implemented outside `hatebm-core`; call the checked [`gemm`] instead.
pub trait RawGemm: Sized {
    /// `C ← alpha·A·B + beta·C` on raw pointers, exactly `matrixmultiply::{s,d}gemm`.
    ///
    /// # Safety
    ///
    /// The contract of `matrixmultiply::sgemm` / `dgemm`: for every `i < m`, `l < k`,
    /// `j < n`, the element offsets `i·rsa + l·csa` of `a`, `l·rsb + j·csb` of `b` and
    /// `i·rsc + j·csc` of `c` must be in bounds of one live allocation each; `a` and `b`
    /// must be valid for reads and `c` for reads and writes; the elements of `C` must not
    /// alias each other (distinct `(i, j)` ⇒ distinct offsets) nor any element of `A` or
    /// `B`; and nothing else may access `C` during the call.
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl RawGemm for f32 {
    #[inline]
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: the caller upholds matrixmultiply's contract, restated in the
        // `# Safety` section of `RawGemm::raw_gemm`.
        unsafe {
            matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}

impl RawGemm for f64 {
    #[inline]
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: the caller upholds matrixmultiply's contract, restated in the
        // `# Safety` section of `RawGemm::raw_gemm`.
        unsafe {
            matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}

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

/// General matrix multiplication with explicit strides:
/// `C[m×n] ← alpha·A[m×k]·B[k×n] + beta·C`.
///
/// Element `(i, j)` of a matrix `X` is `x[i·rsx + j·csx]` (row and column strides in
/// elements), so transposed operands are expressed by swapping strides: a row-major
/// `[k×m]` slice used as `Aᵀ` has `rsa = 1, csa = m`. Every extent is checked against
/// the slice lengths before `matrixmultiply` is called; strides may be negative only
/// where the matching extent is 1 (element `(0, 0)` is always the slice's first
/// element). Runs single-threaded on the calling thread.
///
/// If `beta == 0`, `C` is not read: NaN or garbage in `C` is overwritten. If `k == 0`,
/// the result is `beta·C`. If `m == 0` or `n == 0` nothing happens.
///
/// # Panics
///
/// If any element of `A` (when `m, k > 0`), `B` (when `k, n > 0`) or `C` (when
/// `m, n > 0`) falls outside its slice, or if two elements of `C` share an offset.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    rsa: isize,
    csa: isize,
    b: &[T],
    rsb: isize,
    csb: isize,
    beta: T,
    c: &mut [T],
    rsc: isize,
    csc: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        check_bounds("A", m, k, rsa, csa, a.len());
        check_bounds("B", k, n, rsb, csb, b.len());
    }
    check_bounds("C", m, n, rsc, csc, c.len());
    check_no_self_alias(m, n, rsc, csc);
    // SAFETY: matrixmultiply's contract (see `RawGemm::raw_gemm`):
    // * in bounds: `check_bounds` proved every offset `i·rs + j·cs` of A (m×k), B (k×n)
    //   and C (m×n) lies in `0..len` of its slice (A and B are not read when k == 0,
    //   and we returned early when C is empty), so all reads/writes stay inside the
    //   three live slices;
    // * C's elements do not alias each other: `check_no_self_alias`;
    // * C does not alias A or B, and nothing else touches C during the call: `c` is a
    //   `&mut` borrow, exclusive against the shared borrows `a` and `b`;
    // * `matrixmultiply` is built without threading, so the call is confined to this
    //   thread and the borrows outlive it.
    unsafe {
        T::raw_gemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

/// [`gemm`] with `alpha = 1` and the strides of each operand as a `(row, column)` pair
/// (crate-internal shorthand that keeps the kernels readable).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn gemm_s<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (rsa, csa): (isize, isize),
    b: &[T],
    (rsb, csb): (isize, isize),
    beta: T,
    c: &mut [T],
    (rsc, csc): (isize, isize),
) {
    gemm(m, k, n, T::ONE, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

fn stride(x: usize) -> isize {
    isize::try_from(x).expect("gemm: extent does not fit in isize")
}

/// `C ← alpha·A·B + beta·C` with contiguous row-major `a` `[m×k]`, `b` `[k×n]`, `c` `[m×n]`.
///
/// # Panics
///
/// If `a.len() != m·k`, `b.len() != k·n` or `c.len() != m·n`.
#[allow(clippy::too_many_arguments)]
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
        m,
        k,
        n,
        alpha,
        a,
        stride(k),
        1,
        b,
        stride(n),
        1,
        beta,
        c,
        stride(n),
        1,
    );
}

/// `C ← alpha·A·Bᵀ + beta·C` with contiguous row-major `a` `[m×k]`, `b` `[n×k]`, `c` `[m×n]`.
///
/// # Panics
///
/// If `a.len() != m·k`, `b.len() != n·k` or `c.len() != m·n`.
#[allow(clippy::too_many_arguments)]
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
        m,
        k,
        n,
        alpha,
        a,
        stride(k),
        1,
        b,
        1,
        stride(k),
        beta,
        c,
        stride(n),
        1,
    );
}

/// `C ← alpha·Aᵀ·B + beta·C` with contiguous row-major `a` `[k×m]`, `b` `[k×n]`, `c` `[m×n]`.
///
/// # Panics
///
/// If `a.len() != k·m`, `b.len() != k·n` or `c.len() != m·n`.
#[allow(clippy::too_many_arguments)]
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
        m,
        k,
        n,
        alpha,
        a,
        1,
        stride(m),
        b,
        stride(n),
        1,
        beta,
        c,
        stride(n),
        1,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::{assert_close, rand_vec, rng};

    /// Naive triple loop over the same strided layout.
    #[allow(clippy::too_many_arguments)]
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
                                m, k, n, alpha, &a, sa.0, sa.1, &b, sb.0, sb.1, beta, &mut got,
                                sc.0, sc.1,
                            );
                            assert_close(&got, &want, 1e-13, "gemm f64");
                            // f32 against the f64 result.
                            let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                            let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                            let mut c32: Vec<f32> = c0.iter().map(|&v| v as f32).collect();
                            gemm(
                                m,
                                k,
                                n,
                                alpha as f32,
                                &a32,
                                sa.0,
                                sa.1,
                                &b32,
                                sb.0,
                                sb.1,
                                beta as f32,
                                &mut c32,
                                sc.0,
                                sc.1,
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
        gemm(2, 3, 2, 1.0, &a, 3, 1, &b, 2, 1, 0.0, &mut c, 2, 1);
    }

    #[test]
    #[should_panic(expected = "aliasing")]
    fn aliasing_c_panics() {
        let a = [0.0f64; 6];
        let b = [0.0f64; 6];
        let mut c = [0.0f64; 4];
        gemm(2, 3, 2, 1.0, &a, 3, 1, &b, 2, 1, 0.0, &mut c, 1, 1);
    }

    #[test]
    #[should_panic(expected = "before the start")]
    fn negative_stride_panics() {
        let a = [0.0f64; 6];
        let b = [0.0f64; 6];
        let mut c = [0.0f64; 4];
        gemm(2, 3, 2, 1.0, &a, -3, 1, &b, 2, 1, 0.0, &mut c, 2, 1);
    }
}
