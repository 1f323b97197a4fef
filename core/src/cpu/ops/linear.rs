//! Fully connected layer `y = x·Wᵀ + b` with PyTorch's weight layout `W [dout, din]`.
//!
//! Parallelised over blocks of *output columns* (a function of the shapes only), so each
//! task packs only its slice of `W`; the parameter gradient is split over the rows of
//! `dW` and sums the whole batch inside one GEMM per block, so no cross-task reduction is
//! needed and the result is bit-identical for any number of threads.

use rayon::prelude::*;

use super::gemm::{MatMut, MatRef, gemm};
use super::scalar::Scalar;
use super::util::Scratch;

/// Minimum multiply-accumulates per rayon task (smaller layers stay on one thread).
const MIN_TASK_MACS: usize = 1 << 17;
/// Maximum number of column blocks.
const MAX_TASKS: usize = 8;

/// Columns per task when an `[m, k]·[k, n]` product is split over its `n` columns:
/// a multiple of 16 (the widest GEMM micro-kernel), a function of the shapes only.
fn cols_per_task(m: usize, k: usize, n: usize) -> usize {
    let min_cols = MIN_TASK_MACS.div_ceil((m * k).max(1));
    let c = n.div_ceil(MAX_TASKS).max(min_cols).next_multiple_of(16);
    c.min(n).max(1)
}

/// `out[m, n] (=|+=) a[m, k]·B[k, n] + bias`, split over column blocks; `b_at(j0)` gives the
/// slice and strides of `B[:, j0..]`. Each block is computed into scratch and copied.
fn split_cols<'b, T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b_at: impl Fn(usize) -> (&'b [T], isize, isize) + Sync,
    bias: Option<&[T]>,
    out: &mut [T],
    acc: bool,
) {
    let cols = cols_per_task(m, k, n);
    let run_direct = |out: &mut [T]| {
        let beta = match (bias, acc) {
            (Some(bv), false) => {
                out.chunks_exact_mut(n)
                    .for_each(|row| row.copy_from_slice(bv));
                T::ONE
            }
            (Some(bv), true) => {
                out.chunks_exact_mut(n)
                    .for_each(|row| row.iter_mut().zip(bv).for_each(|(o, &v)| *o += v));
                T::ONE
            }
            (None, false) => T::ZERO,
            (None, true) => T::ONE,
        };
        let (bs, rsb, csb) = b_at(0);
        gemm(
            T::ONE,
            MatRef::new(a, m, k, (k as isize, 1)),
            MatRef::new(bs, k, n, (rsb, csb)),
            beta,
            MatMut::new(out, m, n, (n as isize, 1)),
        );
    };
    if cols >= n {
        run_direct(out);
        return;
    }
    let blocks = n.div_ceil(cols);
    let mut tmp = Scratch::<T>::new(m * cols * blocks);
    tmp.par_chunks_mut(m * cols)
        .enumerate()
        .for_each(|(t, blk)| {
            let (j0, j1) = (t * cols, ((t + 1) * cols).min(n));
            let nc = j1 - j0;
            let blk = &mut blk[..m * nc];
            let (bs, rsb, csb) = b_at(j0);
            gemm(
                T::ONE,
                MatRef::new(a, m, k, (k as isize, 1)),
                MatRef::new(bs, k, nc, (rsb, csb)),
                T::ZERO,
                MatMut::new(blk, m, nc, (nc as isize, 1)),
            );
        });
    let tmp: &[T] = &tmp;
    let copy_row = |i: usize, row: &mut [T]| {
        for t in 0..blocks {
            let (j0, j1) = (t * cols, ((t + 1) * cols).min(n));
            let nc = j1 - j0;
            let src = &tmp[t * m * cols + i * nc..t * m * cols + (i + 1) * nc];
            let dst = &mut row[j0..j1];
            match (acc, bias) {
                (false, None) => dst.copy_from_slice(src),
                (false, Some(bv)) => dst
                    .iter_mut()
                    .zip(src)
                    .zip(&bv[j0..j1])
                    .for_each(|((d, &s), &v)| *d = s + v),
                (true, None) => dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s),
                (true, Some(bv)) => dst
                    .iter_mut()
                    .zip(src)
                    .zip(&bv[j0..j1])
                    .for_each(|((d, &s), &v)| *d += s + v),
            }
        }
    };
    out.par_chunks_mut(n)
        .enumerate()
        .for_each(|(i, row)| copy_row(i, row));
}

fn check(f: &str, what: &str, len: usize, want: usize, formula: &str) {
    assert!(
        len == want,
        "{f}: `{what}` has length {len} but the shape needs {formula} = {want}"
    );
}

/// Forward pass: `y[n, o] = b[o] + Σ_i x[n, i]·w[o, i]`; `y` is overwritten.
///
/// Shapes: `x [batch, din]`, `w [dout, din]`, `b [dout]`, `y [batch, dout]`. Parallel
/// over blocks of output columns (fixed by the shapes).
///
/// # Panics
///
/// If a slice length does not match.
pub fn linear_forward<T: Scalar>(
    batch: usize,
    din: usize,
    dout: usize,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
) {
    const F: &str = "linear_forward";
    check(F, "x", x.len(), batch * din, "batch·din");
    check(F, "w", w.len(), dout * din, "dout·din");
    check(F, "y", y.len(), batch * dout, "batch·dout");
    if let Some(b) = b {
        check(F, "b", b.len(), dout, "dout");
    }
    if batch == 0 || dout == 0 {
        return;
    }
    // B = Wᵀ: B[i, o] = w[o·din + i]; columns from o = j0 start at w[j0·din].
    split_cols(
        batch,
        din,
        dout,
        x,
        |j0| (&w[(j0 * din).min(w.len())..], 1, din as isize),
        b,
        y,
        false,
    );
}

/// Backward pass to the input: `dx[n, i] = Σ_o dy[n, o]·w[o, i]`; added into `dx` if
/// `acc`, else overwriting it.
///
/// Shapes: `dy [batch, dout]`, `w [dout, din]`, `dx [batch, din]`. Parallel over blocks of
/// `dx` columns (fixed by the shapes).
///
/// # Panics
///
/// If a slice length does not match.
pub fn linear_backward_input<T: Scalar>(
    batch: usize,
    din: usize,
    dout: usize,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    acc: bool,
) {
    const F: &str = "linear_backward_input";
    check(F, "dy", dy.len(), batch * dout, "batch·dout");
    check(F, "w", w.len(), dout * din, "dout·din");
    check(F, "dx", dx.len(), batch * din, "batch·din");
    if batch == 0 || din == 0 {
        return;
    }
    // B = W: B[o, i] = w[o·din + i]; columns from i = j0 start at w[j0].
    split_cols(
        batch,
        dout,
        din,
        dy,
        |j0| (&w[j0.min(w.len())..], din as isize, 1),
        None,
        dx,
        acc,
    );
}

/// Backward pass to the parameters, **accumulating**: `dw[o, i] += Σ_n dy[n, o]·x[n, i]`,
/// `db[o] += Σ_n dy[n, o]`.
///
/// Shapes: `x [batch, din]`, `dy [batch, dout]`, `dw [dout, din]`, `db [dout]`. Parallel
/// over blocks of rows of `dw` (fixed by the shapes), each summing the whole batch, so
/// the result is bit-identical for any number of rayon threads.
///
/// # Panics
///
/// If a slice length does not match.
pub fn linear_backward_params<T: Scalar>(
    batch: usize,
    din: usize,
    dout: usize,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
) {
    const F: &str = "linear_backward_params";
    check(F, "x", x.len(), batch * din, "batch·din");
    check(F, "dy", dy.len(), batch * dout, "batch·dout");
    check(F, "dw", dw.len(), dout * din, "dout·din");
    if let Some(db) = db.as_deref() {
        check(F, "db", db.len(), dout, "dout");
    }
    if batch == 0 || dout == 0 {
        return;
    }
    if let Some(db) = db {
        // db[o] += Σ_n dy[n, o], the batch summed in order for every o.
        let mut s = Scratch::<T>::zeroed(dout);
        for row in dy.chunks_exact(dout) {
            s.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
        }
        db.iter_mut().zip(s.iter()).for_each(|(d, &v)| *d += v);
    }
    if din == 0 {
        return;
    }
    // dW rows o0..o1 += dy[:, o0..o1]ᵀ · x   (A[o, n] = dy[n·dout + o0 + o])
    let rows = cols_per_task(din, batch, dout);
    let run = |o0: usize, blk: &mut [T]| {
        let nr = blk.len() / din;
        gemm(
            T::ONE,
            MatRef::new(&dy[o0..], nr, batch, (1, dout as isize)),
            MatRef::new(x, batch, din, (din as isize, 1)),
            T::ONE,
            MatMut::new(blk, nr, din, (din as isize, 1)),
        );
    };
    if rows >= dout {
        run(0, dw);
    } else {
        dw.par_chunks_mut(rows * din)
            .enumerate()
            .for_each(|(t, blk)| run(t * rows, blk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::*;
    use proptest::prelude::*;

    fn naive(batch: usize, din: usize, dout: usize, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; batch * dout];
        for n in 0..batch {
            for o in 0..dout {
                y[n * dout + o] = b[o]
                    + (0..din)
                        .map(|i| x[n * din + i] * w[o * din + i])
                        .sum::<f64>();
            }
        }
        y
    }

    #[test]
    fn matches_naive_and_f32() {
        let mut r = rng(21);
        for &(batch, din, dout) in &[
            (1, 1, 1),
            (5, 7, 3),
            (64, 128, 256),
            (300, 33, 17),
            (4, 256, 4096),
        ] {
            let x = rand_vec(&mut r, batch * din);
            let w = rand_vec(&mut r, dout * din);
            let b = rand_vec(&mut r, dout);
            let dy = rand_vec(&mut r, batch * dout);
            let mut y = vec![f64::NAN; batch * dout];
            linear_forward(batch, din, dout, &x, &w, Some(&b), &mut y);
            assert_close(
                &y,
                &naive(batch, din, dout, &x, &w, &b),
                1e-13,
                "linear forward",
            );
            let mut dx = vec![f64::NAN; batch * din];
            linear_backward_input(batch, din, dout, &dy, &w, &mut dx, false);
            let mut dx_ref = vec![0.0; batch * din];
            let (mut dw_ref, mut db_ref) = (vec![0.0; dout * din], vec![0.0; dout]);
            for n in 0..batch {
                for o in 0..dout {
                    let d = dy[n * dout + o];
                    db_ref[o] += d;
                    for i in 0..din {
                        dx_ref[n * din + i] += d * w[o * din + i];
                        dw_ref[o * din + i] += d * x[n * din + i];
                    }
                }
            }
            assert_close(&dx, &dx_ref, 1e-13, "linear dx");
            let (mut dw, mut db) = (vec![0.0; dout * din], vec![0.0; dout]);
            linear_backward_params(batch, din, dout, &x, &dy, &mut dw, Some(&mut db));
            assert_close(&dw, &dw_ref, 1e-13, "linear dw");
            assert_close(&db, &db_ref, 1e-13, "linear db");
            // f32 vs f64 from the same (rounded) inputs
            let (x32, w32, b32, dy32) = (to_f32(&x), to_f32(&w), to_f32(&b), to_f32(&dy));
            let mut y32 = vec![0.0f32; batch * dout];
            linear_forward(batch, din, dout, &x32, &w32, Some(&b32), &mut y32);
            let want = naive(
                batch,
                din,
                dout,
                &to_f64(&x32),
                &to_f64(&w32),
                &to_f64(&b32),
            );
            assert_close(&to_f64(&y32), &want, 1e-6, "linear f32 forward");
            let (mut dw32, mut db32) = (vec![0.0f32; dout * din], vec![0.0f32; dout]);
            linear_backward_params(batch, din, dout, &x32, &dy32, &mut dw32, Some(&mut db32));
            let (mut dw64, mut db64) = (vec![0.0; dout * din], vec![0.0; dout]);
            linear_backward_params(
                batch,
                din,
                dout,
                &to_f64(&x32),
                &to_f64(&dy32),
                &mut dw64,
                Some(&mut db64),
            );
            assert_close(&to_f64(&dw32), &dw64, 1e-6, "linear f32 dw");
            assert_close(&to_f64(&db32), &db64, 1e-6, "linear f32 db");
        }
    }

    #[test]
    fn acc_and_threads() {
        for &(batch, din, dout) in &[(300, 64, 48), (7, 5, 3), (64, 512, 512)] {
            let mut r = rng(22);
            let x = to_f32(&rand_vec(&mut r, batch * din));
            let w = to_f32(&rand_vec(&mut r, dout * din));
            let b = to_f32(&rand_vec(&mut r, dout));
            let dy = to_f32(&rand_vec(&mut r, batch * dout));
            let base = to_f32(&rand_vec(&mut r, batch * din));
            assert_thread_invariant(
                "linear",
                || {
                    let mut y = vec![0.0f32; batch * dout];
                    linear_forward(batch, din, dout, &x, &w, Some(&b), &mut y);
                    let mut dx = base.clone();
                    linear_backward_input(batch, din, dout, &dy, &w, &mut dx, true);
                    let (mut dw, mut db) = (vec![1.0f32; dout * din], vec![1.0f32; dout]);
                    linear_backward_params(batch, din, dout, &x, &dy, &mut dw, Some(&mut db));
                    vec![y, dx, dw, db]
                },
                |a, b, what| assert_bits_eq(a, b, what),
            );
            let (x, w, dy, base) = (to_f64(&x), to_f64(&w), to_f64(&dy), to_f64(&base));
            let mut fresh = vec![f64::NAN; batch * din];
            linear_backward_input(batch, din, dout, &dy, &w, &mut fresh, false);
            let mut accd = base.clone();
            linear_backward_input(batch, din, dout, &dy, &w, &mut accd, true);
            let want: Vec<f64> = base.iter().zip(&fresh).map(|(a, b)| a + b).collect();
            assert_close(&accd, &want, 1e-14, "linear acc");
            let (mut dw, mut db) = (vec![0.0; dout * din], vec![0.0; dout]);
            linear_backward_params(batch, din, dout, &x, &dy, &mut dw, Some(&mut db));
            let (mut dw2, mut db2) = (dw.clone(), db.clone());
            linear_backward_params(batch, din, dout, &x, &dy, &mut dw2, Some(&mut db2));
            assert_close(
                &dw2,
                &dw.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
                1e-14,
                "dw accumulates",
            );
            assert_close(
                &db2,
                &db.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
                1e-14,
                "db accumulates",
            );
        }
    }

    proptest! {
        #![proptest_config(pt_config())]
        #[test]
        fn finite_differences(batch in 1usize..=3, din in 1usize..=6, dout in 1usize..=6, bias in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let x = rand_vec(&mut r, batch * din);
            let w = rand_vec(&mut r, dout * din);
            let b = rand_vec(&mut r, dout);
            let rr = rand_vec(&mut r, batch * dout);
            let bo = bias.then_some(&b[..]);
            let loss = |x: &[f64], w: &[f64], b: Option<&[f64]>| {
                let mut y = vec![0.0; batch * dout];
                linear_forward(batch, din, dout, x, w, b, &mut y);
                inner(&rr, &y)
            };
            let mut dx = vec![0.0; batch * din];
            linear_backward_input(batch, din, dout, &rr, &w, &mut dx, false);
            let (mut dw, mut db) = (vec![0.0; dout * din], vec![0.0; dout]);
            linear_backward_params(batch, din, dout, &x, &rr, &mut dw, Some(&mut db));
            check_grad("linear dx", &x, &dx, 1e-6, &mut r, |p| loss(p, &w, bo));
            check_grad("linear dw", &w, &dw, 1e-6, &mut r, |p| loss(&x, p, bo));
            check_grad("linear db", &b, &db, 1e-6, &mut r, |p| loss(&x, &w, Some(p)));
        }
    }
}
