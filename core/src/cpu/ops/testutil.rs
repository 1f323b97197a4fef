//! Test support shared by the kernel tests: seeded data, normwise comparisons,
//! finite-difference gradient checks and fixed-size rayon pools.

use proptest::test_runner::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::conv::Conv2dGeom;
use super::scalar::Scalar;

pub type TestRng = ChaCha8Rng;

pub fn rng(seed: u64) -> TestRng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` values uniform in `[-1, 1)`.
pub fn rand_vec(r: &mut TestRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

/// `n` values uniform in `[lo, hi)`.
pub fn rand_range(r: &mut TestRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// `n` values with `|v| ∈ [margin, 1)` and random sign (kept away from a kink at 0).
pub fn rand_away_from_zero(r: &mut TestRng, n: usize, margin: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let m = r.random_range(margin..1.0);
            if r.random_bool(0.5) { m } else { -m }
        })
        .collect()
}

pub fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

pub fn to_f64<T: Scalar>(x: &[T]) -> Vec<f64> {
    x.iter().map(|&v| v.to_f64()).collect()
}

pub fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Normwise comparison: `max|got − want| ≤ tol · max(max|want|, 1e-300)`.
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    let scale = max_abs(want).max(1e-300);
    assert!(
        err <= tol * scale,
        "{what}: normwise error {:.3e} > {tol:.1e} (max|want| = {scale:.3e})",
        err / scale
    );
}

/// Bitwise equality of two slices.
pub fn assert_bits_eq<T: Scalar>(a: &[T], b: &[T], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_f64().to_bits() == y.to_f64().to_bits(),
            "{what}: element {i} differs: {x:?} vs {y:?}"
        );
    }
}

/// Runs `f` inside a fresh rayon pool of `n` threads.
pub fn in_pool<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .expect("rayon pool")
        .install(f)
}

/// Runs `f` in 1- and 3-thread pools and asserts bit-identical results.
pub fn assert_thread_invariant<R: Send>(
    what: &str,
    f: impl Fn() -> Vec<R> + Send + Sync,
    eq: impl Fn(&R, &R, &str),
) {
    let one = in_pool(1, &f);
    let three = in_pool(3, &f);
    assert_eq!(one.len(), three.len());
    for (i, (a, b)) in one.iter().zip(&three).enumerate() {
        eq(a, b, &format!("{what} output {i} (1 vs 3 threads)"));
    }
    // And the global pool (2 cores here) once more.
    let global = f();
    for (i, (a, b)) in one.iter().zip(&global).enumerate() {
        eq(
            a,
            b,
            &format!("{what} output {i} (1 thread vs global pool)"),
        );
    }
}

/// `⟨a, b⟩` in f64.
pub fn inner(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks the analytic gradient `grad` of a scalar function `loss` at `v` against
/// central differences: on every coordinate (up to 200, else 100 random ones) and along 2 random directions.
/// Normwise relative tolerance `tol` against `max|grad|` (absolute floor 1e-9).
pub fn check_grad(
    what: &str,
    v: &[f64],
    grad: &[f64],
    tol: f64,
    r: &mut TestRng,
    mut loss: impl FnMut(&[f64]) -> f64,
) {
    assert_eq!(v.len(), grad.len(), "{what}: gradient length");
    let n = v.len();
    if n == 0 {
        return;
    }
    let scale = max_abs(grad).max(1e-3);
    let mut p = v.to_vec();
    let h = 1e-5;
    let coords: Vec<usize> = if n <= 200 {
        (0..n).collect()
    } else {
        (0..100).map(|_| r.random_range(0..n)).collect()
    };
    for i in coords {
        let hi = h * v[i].abs().max(1.0);
        p[i] = v[i] + hi;
        let fp = loss(&p);
        p[i] = v[i] - hi;
        let fm = loss(&p);
        p[i] = v[i];
        let fd = (fp - fm) / (2.0 * hi);
        assert!(
            (fd - grad[i]).abs() <= tol * scale + 1e-9,
            "{what}[{i}]: finite difference {fd:.12e} vs analytic {:.12e} (rel {:.2e} of max|grad| {scale:.3e})",
            grad[i],
            (fd - grad[i]).abs() / scale
        );
    }
    for _ in 0..2 {
        let d = rand_vec(r, n);
        let dnorm = max_abs(&d).max(1e-300);
        for (pi, (vi, di)) in p.iter_mut().zip(v.iter().zip(&d)) {
            *pi = vi + h * di;
        }
        let fp = loss(&p);
        for (pi, (vi, di)) in p.iter_mut().zip(v.iter().zip(&d)) {
            *pi = vi - h * di;
        }
        let fm = loss(&p);
        p.copy_from_slice(v);
        let fd = (fp - fm) / (2.0 * h);
        let an = inner(grad, &d);
        let dscale = grad
            .iter()
            .zip(&d)
            .map(|(g, d)| (g * d).abs())
            .sum::<f64>()
            .max(1e-3 * dnorm);
        assert!(
            (fd - an).abs() <= tol * dscale + 1e-9,
            "{what}: directional finite difference {fd:.12e} vs analytic {an:.12e}"
        );
    }
}

/// Proptest configuration: proptest's default, i.e. `PROPTEST_CASES` cases if set, else 256.
pub fn pt_config() -> Config {
    Config::default()
}

/// Direct 7-loop SAME convolution in f64 (the reference of the convolution kernels).
pub fn naive_conv_forward(g: &Conv2dGeom, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let (h, wd, k) = (g.h as isize, g.w as isize, g.k);
    let p = (k / 2) as isize;
    let mut y = vec![0.0; g.y_len()];
    for n in 0..g.batch {
        for co in 0..g.cout {
            for i in 0..h {
                for j in 0..wd {
                    let mut s = b.map_or(0.0, |b| b[co]);
                    for ci in 0..g.cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (ii, jj) = (i + ky as isize - p, j + kx as isize - p);
                                if ii < 0 || jj < 0 || ii >= h || jj >= wd {
                                    continue;
                                }
                                s += w[((co * g.cin + ci) * k + ky) * k + kx]
                                    * x[((n * g.cin + ci) * g.h + ii as usize) * g.w + jj as usize];
                            }
                        }
                    }
                    y[((n * g.cout + co) * g.h + i as usize) * g.w + j as usize] = s;
                }
            }
        }
    }
    y
}
