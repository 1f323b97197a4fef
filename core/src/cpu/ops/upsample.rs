//! Bilinear ×2 upsampling with half-pixel centres, NCHW: PyTorch's
//! `interpolate(scale_factor=2, mode='bilinear', align_corners=False)` = TF2 / Keras
//! `UpSampling2D(interpolation='bilinear')`.
//!
//! Output coordinate `o` reads the source coordinate `src = max((o + 0.5)/2 − 0.5, 0)`,
//! neighbours `i0 = ⌊src⌋`, `i1 = min(i0 + 1, n − 1)` (edge-clamped) with weights
//! `1 − λ`, `λ = src − i0`. All weights are multiples of 1/4, so the taps are exact.

use super::scalar::Scalar;
use super::util::par_rows;

/// Taps `(i0, i1, w0, w1)` of output index `o` for an input extent `n` (PyTorch's
/// `area_pixel_compute_source_index` with scale 1/2, `align_corners = false`).
#[inline]
fn taps<T: Scalar>(o: usize, n: usize) -> (usize, usize, T, T) {
    // src = (o + 0.5)·0.5 − 0.5 = o/2 − 1/4, exact in binary floating point.
    let src4 = 2 * o as isize - 1; // 4·src
    let src4 = src4.max(0) as usize;
    let i0 = (src4 / 4).min(n - 1);
    let l1 = T::from_f64((src4 - 4 * (src4 / 4)) as f64 * 0.25);
    let i1 = if i0 + 1 < n { i0 + 1 } else { i0 };
    (i0, i1, T::ONE - l1, l1)
}

fn check(f: &str, what: &str, len: usize, want: usize, formula: &str) {
    assert!(
        len == want,
        "{f}: `{what}` has length {len} but the shape needs {formula} = {want}"
    );
}

/// Forward pass: `y [b, c, 2h, 2w]` from `x [b, c, h, w]`,
/// `y[oi, oj] = a0·(b0·x[r0, c0] + b1·x[r0, c1]) + a1·(b0·x[r1, c0] + b1·x[r1, c1])` with
/// the row taps `(r0, r1, a0, a1)` of `oi` and column taps `(c0, c1, b0, b1)` of `oj`;
/// `y` is overwritten. Parallel over planes.
///
/// # Panics
///
/// If a slice length does not match.
pub fn upsample_bilinear2_forward<T: Scalar>(
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &[T],
    y: &mut [T],
) {
    const F: &str = "upsample_bilinear2_forward";
    check(F, "x", x.len(), b * c * h * w, "b·c·h·w");
    check(F, "y", y.len(), b * c * 4 * h * w, "b·c·2h·2w");
    if h == 0 || w == 0 {
        return;
    }
    let (oh, ow) = (2 * h, 2 * w);
    // The taps depend only on the output coordinate: computed once per call.
    let rows: Vec<(usize, usize, T, T)> = (0..oh).map(|o| taps::<T>(o, h)).collect();
    let cols: Vec<(usize, usize, T, T)> = (0..ow).map(|o| taps::<T>(o, w)).collect();
    par_rows(x, h * w, y, oh * ow, |x, y| {
        for (yp, xp) in y.chunks_exact_mut(oh * ow).zip(x.chunks_exact(h * w)) {
            for (yr, &(r0, r1, a0, a1)) in yp.chunks_exact_mut(ow).zip(&rows) {
                let (x0, x1) = (&xp[r0 * w..(r0 + 1) * w], &xp[r1 * w..(r1 + 1) * w]);
                for (v, &(c0, c1, b0, b1)) in yr.iter_mut().zip(&cols) {
                    *v = a0 * (b0 * x0[c0] + b1 * x0[c1]) + a1 * (b0 * x1[c0] + b1 * x1[c1]);
                }
            }
        }
    });
}

/// Backward pass: `dx [b, c, h, w]` from `dy [b, c, 2h, 2w]`; every output pixel scatters
/// `a·b·dy` to its four taps (in row-major output order, per plane). Added into `dx` if
/// `acc`, else overwriting it. Parallel over planes.
///
/// # Panics
///
/// If a slice length does not match.
pub fn upsample_bilinear2_backward<T: Scalar>(
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    dy: &[T],
    dx: &mut [T],
    acc: bool,
) {
    const F: &str = "upsample_bilinear2_backward";
    check(F, "dy", dy.len(), b * c * 4 * h * w, "b·c·2h·2w");
    check(F, "dx", dx.len(), b * c * h * w, "b·c·h·w");
    if h == 0 || w == 0 {
        return;
    }
    let (oh, ow) = (2 * h, 2 * w);
    let rows: Vec<(usize, usize, T, T)> = (0..oh).map(|o| taps::<T>(o, h)).collect();
    let cols: Vec<(usize, usize, T, T)> = (0..ow).map(|o| taps::<T>(o, w)).collect();
    par_rows(dy, oh * ow, dx, h * w, |dy, dx| {
        for (xp, yp) in dx.chunks_exact_mut(h * w).zip(dy.chunks_exact(oh * ow)) {
            if !acc {
                xp.fill(T::ZERO);
            }
            for (yr, &(r0, r1, a0, a1)) in yp.chunks_exact(ow).zip(&rows) {
                for (&g, &(c0, c1, b0, b1)) in yr.iter().zip(&cols) {
                    xp[r0 * w + c0] += a0 * b0 * g;
                    xp[r0 * w + c1] += a0 * b1 * g;
                    xp[r1 * w + c0] += a1 * b0 * g;
                    xp[r1 * w + c1] += a1 * b1 * g;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::*;
    use proptest::prelude::*;

    /// Direct formula with floating-point source coordinates (f64).
    fn naive(b: usize, c: usize, h: usize, w: usize, x: &[f64]) -> Vec<f64> {
        let tap = |o: usize, n: usize| {
            let src = ((o as f64 + 0.5) / 2.0 - 0.5).max(0.0);
            let i0 = src.floor() as usize;
            let l = src - i0 as f64;
            (i0, (i0 + 1).min(n - 1), 1.0 - l, l)
        };
        let mut y = vec![0.0; b * c * 4 * h * w];
        for p in 0..b * c {
            for oi in 0..2 * h {
                for oj in 0..2 * w {
                    let (r0, r1, a0, a1) = tap(oi, h);
                    let (c0, c1, b0, b1) = tap(oj, w);
                    let at = |r: usize, cc: usize| x[p * h * w + r * w + cc];
                    y[p * 4 * h * w + oi * 2 * w + oj] = a0 * b0 * at(r0, c0)
                        + a0 * b1 * at(r0, c1)
                        + a1 * b0 * at(r1, c0)
                        + a1 * b1 * at(r1, c1);
                }
            }
        }
        y
    }

    #[test]
    fn torch_example() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut y = [0.0f32; 16];
        upsample_bilinear2_forward(1, 1, 2, 2, &x, &mut y);
        let want = [
            1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(y, want);
    }

    #[test]
    fn matches_naive_and_threads() {
        let mut r = rng(51);
        for &(b, c, h, w) in &[(1, 1, 1, 1), (2, 3, 1, 5), (2, 2, 4, 3), (3, 40, 16, 16)] {
            let x = rand_vec(&mut r, b * c * h * w);
            let mut y = vec![f64::NAN; 4 * x.len()];
            upsample_bilinear2_forward(b, c, h, w, &x, &mut y);
            assert_close(&y, &naive(b, c, h, w, &x), 1e-15, "upsample");
            let x32 = to_f32(&x);
            let dy = to_f32(&rand_vec(&mut r, 4 * x.len()));
            let base = to_f32(&rand_vec(&mut r, x.len()));
            assert_thread_invariant(
                "upsample",
                || {
                    let mut y = vec![0.0f32; 4 * x32.len()];
                    upsample_bilinear2_forward(b, c, h, w, &x32, &mut y);
                    let mut dx = vec![f32::NAN; x32.len()];
                    upsample_bilinear2_backward(b, c, h, w, &dy, &mut dx, false);
                    let mut dxa = base.clone();
                    upsample_bilinear2_backward(b, c, h, w, &dy, &mut dxa, true);
                    vec![y, dx, dxa]
                },
                |a, b, what| assert_bits_eq(a, b, what),
            );
            let mut dx = vec![f64::NAN; x.len()];
            let dy = to_f64(&dy);
            upsample_bilinear2_backward(b, c, h, w, &dy, &mut dx, false);
            let base = to_f64(&base);
            let mut dxa = base.clone();
            upsample_bilinear2_backward(b, c, h, w, &dy, &mut dxa, true);
            let want: Vec<f64> = base.iter().zip(&dx).map(|(a, b)| a + b).collect();
            assert_close(&dxa, &want, 1e-14, "upsample acc");
        }
    }

    proptest! {
        #![proptest_config(pt_config())]
        #[test]
        fn finite_differences(b in 1usize..=3, c in 1usize..=4, h in 1usize..=6, w in 1usize..=6, seed in any::<u64>()) {
            let mut r = rng(seed);
            let x = rand_vec(&mut r, b * c * h * w);
            let rr = rand_vec(&mut r, 4 * x.len());
            let mut dx = vec![0.0; x.len()];
            upsample_bilinear2_backward(b, c, h, w, &rr, &mut dx, false);
            check_grad("upsample dx", &x, &dx, 1e-6, &mut r, |p| {
                let mut y = vec![0.0; rr.len()];
                upsample_bilinear2_forward(b, c, h, w, p, &mut y);
                inner(&rr, &y)
            });
        }
    }
}
