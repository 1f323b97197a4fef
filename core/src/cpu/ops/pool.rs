//! Average pooling: 2×2 stride-2 (no padding) and global average pooling, NCHW.

use super::scalar::Scalar;
use super::util::{par_rows, sum};

fn check(f: &str, what: &str, len: usize, want: usize, formula: &str) {
    assert!(
        len == want,
        "{f}: `{what}` has length {len} but the shape needs {formula} = {want}"
    );
}

/// 2×2 average pooling with stride 2: `y[n, c, i, j] = (x[2i, 2j] + x[2i, 2j+1] +
/// x[2i+1, 2j] + x[2i+1, 2j+1]) / 4` (summed in that order, as PyTorch's CPU kernel).
///
/// Shapes: `x [b, c, h, w]`, `y [b, c, h/2, w/2]`; `y` is overwritten.
///
/// # Panics
///
/// If `h` or `w` is odd, or a slice length does not match.
pub fn avg_pool2_forward<T: Scalar>(b: usize, c: usize, h: usize, w: usize, x: &[T], y: &mut [T]) {
    const F: &str = "avg_pool2_forward";
    assert!(
        h.is_multiple_of(2) && w.is_multiple_of(2),
        "{F}: h = {h} and w = {w} must be even"
    );
    check(F, "x", x.len(), b * c * h * w, "b·c·h·w");
    check(
        F,
        "y",
        y.len(),
        b * c * (h / 2) * (w / 2),
        "b·c·(h/2)·(w/2)",
    );
    let ow = w / 2;
    let q = T::from_f64(0.25);
    par_rows(x, 2 * w, y, ow, |x, y| {
        for (yr, xr) in y.chunks_exact_mut(ow).zip(x.chunks_exact(2 * w)) {
            let (r0, r1) = xr.split_at(w);
            for (j, v) in yr.iter_mut().enumerate() {
                *v = (((r0[2 * j] + r0[2 * j + 1]) + r1[2 * j]) + r1[2 * j + 1]) * q;
            }
        }
    });
}

/// Backward of [`avg_pool2_forward`]: `dx[n, c, 2i + a, 2j + b] = dy[n, c, i, j] / 4` for
/// `a, b ∈ {0, 1}`; added into `dx` if `acc`, else overwriting it.
///
/// Shapes: `dy [b, c, h/2, w/2]`, `dx [b, c, h, w]` (`h`, `w` are the *input* sizes).
///
/// # Panics
///
/// If `h` or `w` is odd, or a slice length does not match.
pub fn avg_pool2_backward<T: Scalar>(
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    dy: &[T],
    dx: &mut [T],
    acc: bool,
) {
    const F: &str = "avg_pool2_backward";
    assert!(
        h.is_multiple_of(2) && w.is_multiple_of(2),
        "{F}: h = {h} and w = {w} must be even"
    );
    check(
        F,
        "dy",
        dy.len(),
        b * c * (h / 2) * (w / 2),
        "b·c·(h/2)·(w/2)",
    );
    check(F, "dx", dx.len(), b * c * h * w, "b·c·h·w");
    let ow = w / 2;
    let q = T::from_f64(0.25);
    par_rows(dy, ow, dx, 2 * w, |dy, dx| {
        for (xr, yr) in dx.chunks_exact_mut(2 * w).zip(dy.chunks_exact(ow)) {
            for row in xr.chunks_exact_mut(w) {
                for (pair, &g) in row.chunks_exact_mut(2).zip(yr) {
                    let v = g * q;
                    if acc {
                        pair[0] += v;
                        pair[1] += v;
                    } else {
                        pair[0] = v;
                        pair[1] = v;
                    }
                }
            }
        }
    });
}

/// Global average pooling: `y[n, c] = (Σ_p x[n, c, p]) / hw`.
///
/// Shapes: `x [b, c, hw]` (any spatial shape flattened), `y [b, c]`; `y` is overwritten.
/// The sum uses a fixed 8-lane order (deterministic, vectorised). `hw = 0` gives NaN
/// (0/0), as PyTorch's mean of an empty tensor.
///
/// # Panics
///
/// If a slice length does not match.
pub fn global_avg_pool_forward<T: Scalar>(b: usize, c: usize, hw: usize, x: &[T], y: &mut [T]) {
    const F: &str = "global_avg_pool_forward";
    check(F, "x", x.len(), b * c * hw, "b·c·hw");
    check(F, "y", y.len(), b * c, "b·c");
    let n = T::from_usize(hw);
    if hw == 0 {
        y.fill(T::ZERO / n);
        return;
    }
    par_rows(x, hw, y, 1, |x, y| {
        for (v, xr) in y.iter_mut().zip(x.chunks_exact(hw)) {
            *v = sum(xr) / n;
        }
    });
}

/// Backward of [`global_avg_pool_forward`]: `dx[n, c, p] = dy[n, c] / hw`; added into
/// `dx` if `acc`, else overwriting it.
///
/// Shapes: `dy [b, c]`, `dx [b, c, hw]`.
///
/// # Panics
///
/// If a slice length does not match.
pub fn global_avg_pool_backward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    dy: &[T],
    dx: &mut [T],
    acc: bool,
) {
    const F: &str = "global_avg_pool_backward";
    check(F, "dy", dy.len(), b * c, "b·c");
    check(F, "dx", dx.len(), b * c * hw, "b·c·hw");
    if hw == 0 {
        return;
    }
    let n = T::from_usize(hw);
    par_rows(dy, 1, dx, hw, |dy, dx| {
        for (xr, &g) in dx.chunks_exact_mut(hw).zip(dy) {
            let v = g / n;
            if acc {
                xr.iter_mut().for_each(|d| *d += v);
            } else {
                xr.fill(v);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::*;
    use proptest::prelude::*;

    fn naive_pool(b: usize, c: usize, h: usize, w: usize, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; b * c * h * w / 4];
        for p in 0..b * c {
            for i in 0..h / 2 {
                for j in 0..w / 2 {
                    let at = |a: usize, bb: usize| x[p * h * w + (2 * i + a) * w + 2 * j + bb];
                    y[p * h * w / 4 + i * (w / 2) + j] =
                        (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0;
                }
            }
        }
        y
    }

    #[test]
    fn matches_naive() {
        let mut r = rng(3);
        for &(b, c, h, w) in &[(2, 3, 4, 6), (1, 1, 2, 2), (3, 70, 32, 34)] {
            let x = rand_vec(&mut r, b * c * h * w);
            let mut y = vec![f64::NAN; b * c * h * w / 4];
            avg_pool2_forward(b, c, h, w, &x, &mut y);
            assert_close(&y, &naive_pool(b, c, h, w, &x), 1e-15, "avg_pool2");
            let mut g = vec![f64::NAN; b * c];
            global_avg_pool_forward(b, c, h * w, &x, &mut g);
            let want: Vec<f64> = x
                .chunks(h * w)
                .map(|p| p.iter().sum::<f64>() / (h * w) as f64)
                .collect();
            assert_close(&g, &want, 1e-14, "global_avg_pool");
        }
    }

    #[test]
    fn acc_semantics_and_threads() {
        let (b, c, h, w) = (3, 50, 24, 20);
        let mut r = rng(4);
        let x = to_f32(&rand_vec(&mut r, b * c * h * w));
        let dy = to_f32(&rand_vec(&mut r, b * c * h * w / 4));
        let dg = to_f32(&rand_vec(&mut r, b * c));
        let base = to_f32(&rand_vec(&mut r, b * c * h * w));
        assert_thread_invariant(
            "pool",
            || {
                let mut y = vec![0.0f32; b * c * h * w / 4];
                avg_pool2_forward(b, c, h, w, &x, &mut y);
                let mut dx = vec![f32::NAN; b * c * h * w];
                avg_pool2_backward(b, c, h, w, &dy, &mut dx, false);
                let mut dxa = base.clone();
                avg_pool2_backward(b, c, h, w, &dy, &mut dxa, true);
                for ((a, &d), &b0) in dxa.iter().zip(&dx).zip(&base) {
                    assert_eq!(*a, b0 + d, "acc adds exactly");
                }
                let mut g = vec![0.0f32; b * c];
                global_avg_pool_forward(b, c, h * w, &x, &mut g);
                let mut gx = vec![f32::NAN; b * c * h * w];
                global_avg_pool_backward(b, c, h * w, &dg, &mut gx, false);
                let mut gxa = base.clone();
                global_avg_pool_backward(b, c, h * w, &dg, &mut gxa, true);
                for ((a, &d), &b0) in gxa.iter().zip(&gx).zip(&base) {
                    assert_eq!(*a, b0 + d, "acc adds exactly");
                }
                vec![y, dx, g, gx]
            },
            |a, b, what| assert_bits_eq(a, b, what),
        );
    }

    #[test]
    #[should_panic(expected = "must be even")]
    fn odd_size_panics() {
        avg_pool2_forward(1, 1, 3, 2, &[0.0f32; 6], &mut [0.0; 2]);
    }

    proptest! {
        #![proptest_config(pt_config())]
        #[test]
        fn finite_differences(b in 1usize..=3, c in 1usize..=4, h2 in 1usize..=3, w2 in 1usize..=3, seed in any::<u64>()) {
            let (h, w) = (2 * h2, 2 * w2);
            let mut r = rng(seed);
            let x = rand_vec(&mut r, b * c * h * w);
            let rp = rand_vec(&mut r, b * c * h2 * w2);
            let rg = rand_vec(&mut r, b * c);
            let mut dx = vec![0.0; x.len()];
            avg_pool2_backward(b, c, h, w, &rp, &mut dx, false);
            check_grad("avg_pool2 dx", &x, &dx, 1e-6, &mut r, |p| {
                let mut y = vec![0.0; rp.len()];
                avg_pool2_forward(b, c, h, w, p, &mut y);
                inner(&rp, &y)
            });
            global_avg_pool_backward(b, c, h * w, &rg, &mut dx, false);
            check_grad("global_avg_pool dx", &x, &dx, 1e-6, &mut r, |p| {
                let mut y = vec![0.0; rg.len()];
                global_avg_pool_forward(b, c, h * w, p, &mut y);
                inner(&rg, &y)
            });
        }
    }
}
