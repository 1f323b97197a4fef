//! Fully connected layer `y = x·Wᵀ + b` with PyTorch's weight layout `W [dout, din]`.

use rayon::prelude::*;

use super::gemm::gemm;
use super::scalar::Scalar;
use super::util::{Scratch, add_partials, reduce_partition};

/// Minimum multiply-accumulates per rayon task (smaller layers stay on one thread).
const MIN_TASK_MACS: usize = 1 << 16;
/// Maximum number of row blocks of the forward / backward-input passes.
const MAX_TASKS: usize = 8;

/// Rows per task for a `[batch, din]·[din, dout]` product: a function of the shapes only.
fn rows_per_task(batch: usize, din: usize, dout: usize) -> usize {
    let min_rows = MIN_TASK_MACS.div_ceil((din * dout).max(1));
    batch.div_ceil(MAX_TASKS).max(min_rows).max(1)
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
/// over blocks of rows; per-row results do not depend on the number of threads.
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
    let rows = rows_per_task(batch, din, dout);
    let run = |xr: &[T], yr: &mut [T]| {
        let beta = match b {
            Some(b) => {
                yr.chunks_exact_mut(dout)
                    .for_each(|row| row.copy_from_slice(b));
                T::ONE
            }
            None => T::ZERO,
        };
        let n = yr.len() / dout;
        gemm(
            n,
            din,
            dout,
            T::ONE,
            xr,
            din as isize,
            1,
            w,
            1,
            din as isize,
            beta,
            yr,
            dout as isize,
            1,
        );
    };
    if rows >= batch {
        run(x, y);
    } else {
        y.par_chunks_mut(rows * dout)
            .enumerate()
            .for_each(|(t, yr)| run(&x[t * rows * din..(t * rows + yr.len() / dout) * din], yr));
    }
}

/// Backward pass to the input: `dx[n, i] = Σ_o dy[n, o]·w[o, i]`; added into `dx` if
/// `acc`, else overwriting it.
///
/// Shapes: `dy [batch, dout]`, `w [dout, din]`, `dx [batch, din]`.
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
    let beta = if acc { T::ONE } else { T::ZERO };
    let rows = rows_per_task(batch, din, dout);
    let run = |dyr: &[T], dxr: &mut [T]| {
        let n = dxr.len() / din;
        gemm(
            n,
            dout,
            din,
            T::ONE,
            dyr,
            dout as isize,
            1,
            w,
            din as isize,
            1,
            beta,
            dxr,
            din as isize,
            1,
        );
    };
    if rows >= batch {
        run(dy, dx);
    } else {
        dx.par_chunks_mut(rows * din)
            .enumerate()
            .for_each(|(t, dxr)| {
                run(
                    &dy[t * rows * dout..(t * rows + dxr.len() / din) * dout],
                    dxr,
                )
            });
    }
}

/// Backward pass to the parameters, **accumulating**: `dw[o, i] += Σ_n dy[n, o]·x[n, i]`,
/// `db[o] += Σ_n dy[n, o]`.
///
/// Shapes: `x [batch, din]`, `dy [batch, dout]`, `dw [dout, din]`, `db [dout]`. The batch
/// is reduced in at most 8 contiguous row parts fixed by the shapes, added in order:
/// bit-identical for any number of rayon threads.
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
    let min_rows = MIN_TASK_MACS.div_ceil((din * dout).max(1));
    let (per, parts) = reduce_partition(batch, min_rows);
    let wl = (dout * din).max(1);
    let mut pw = Scratch::<T>::new(parts * wl);
    let mut pb = Scratch::<T>::zeroed(parts * dout);
    let want_b = db.is_some();
    let run = |p: usize, pw: &mut [T], pb: &mut [T]| {
        let (r0, r1) = (p * per, ((p + 1) * per).min(batch));
        let (xp, dyp) = (&x[r0 * din..r1 * din], &dy[r0 * dout..r1 * dout]);
        // pw[o, i] = Σ_n dyp[n, o]·xp[n, i]  (A = dypᵀ)
        gemm(
            dout,
            r1 - r0,
            din,
            T::ONE,
            dyp,
            1,
            dout as isize,
            xp,
            din as isize,
            1,
            T::ZERO,
            pw,
            din as isize,
            1,
        );
        if want_b {
            for row in dyp.chunks_exact(dout) {
                pb.iter_mut().zip(row).for_each(|(b, &v)| *b += v);
            }
        }
    };
    if parts == 1 {
        run(0, &mut pw, &mut pb);
    } else {
        pw.par_chunks_mut(wl)
            .zip(pb.par_chunks_mut(dout))
            .enumerate()
            .for_each(|(p, (pw, pb))| run(p, pw, pb));
    }
    if din > 0 {
        add_partials(&pw, dw);
    }
    if let Some(db) = db {
        add_partials(&pb, db);
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
        #![proptest_config(pt_config(64))]
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
