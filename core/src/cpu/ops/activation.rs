//! Element-wise activations: ReLU, LeakyReLU, tanh (exact, PyTorch's conventions).
//!
//! Backward passes take the forward **input** `x` for ReLU / LeakyReLU and the forward
//! **output** `y` for tanh. NaN propagates through the forward passes (`relu(NaN) = NaN`).

use super::scalar::Scalar;
use super::util::{par_zip, par_zip3};

fn check_len(f: &str, a: (&str, usize), b: (&str, usize)) {
    assert!(
        a.1 == b.1,
        "{f}: `{}` has length {} but `{}` has length {}",
        a.0,
        a.1,
        b.0,
        b.1
    );
}

#[inline(always)]
fn store<T: Scalar>(d: &mut T, v: T, acc: bool) {
    if acc { *d += v } else { *d = v }
}

/// `y = max(x, 0)`, with `relu(NaN) = NaN`; `y` is overwritten.
///
/// # Panics
///
/// If `x.len() != y.len()`.
pub fn relu_forward<T: Scalar>(x: &[T], y: &mut [T]) {
    check_len("relu_forward", ("x", x.len()), ("y", y.len()));
    par_zip(x, y, |x, y| {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = if v <= T::ZERO { T::ZERO } else { v };
        }
    });
}

/// `dx = dy if x > 0 else 0` (so `relu'(0) = 0`, as PyTorch); added into `dx` if `acc`,
/// else overwriting it. `x` is the forward input.
///
/// # Panics
///
/// If the three lengths differ.
pub fn relu_backward<T: Scalar>(x: &[T], dy: &[T], dx: &mut [T], acc: bool) {
    check_len("relu_backward", ("x", x.len()), ("dx", dx.len()));
    check_len("relu_backward", ("dy", dy.len()), ("dx", dx.len()));
    par_zip3(x, dy, dx, |x, dy, dx| {
        for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            store(d, if v <= T::ZERO { T::ZERO } else { g }, acc);
        }
    });
}

/// `y = x if x > 0 else slope·x`; `y` is overwritten.
///
/// # Panics
///
/// If `x.len() != y.len()`.
pub fn leaky_relu_forward<T: Scalar>(slope: T, x: &[T], y: &mut [T]) {
    check_len("leaky_relu_forward", ("x", x.len()), ("y", y.len()));
    par_zip(x, y, |x, y| {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = if v > T::ZERO { v } else { v * slope };
        }
    });
}

/// `dx = dy if x > 0 else slope·dy` (PyTorch: the derivative at 0 is `slope`); added into
/// `dx` if `acc`, else overwriting it. `x` is the forward input.
///
/// # Panics
///
/// If the three lengths differ.
pub fn leaky_relu_backward<T: Scalar>(slope: T, x: &[T], dy: &[T], dx: &mut [T], acc: bool) {
    check_len("leaky_relu_backward", ("x", x.len()), ("dx", dx.len()));
    check_len("leaky_relu_backward", ("dy", dy.len()), ("dx", dx.len()));
    par_zip3(x, dy, dx, |x, dy, dx| {
        for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            store(d, if v > T::ZERO { g } else { g * slope }, acc);
        }
    });
}

/// `y = tanh(x)` (the standard library's `tanh`, no approximation); `y` is overwritten.
///
/// # Panics
///
/// If `x.len() != y.len()`.
pub fn tanh_forward<T: Scalar>(x: &[T], y: &mut [T]) {
    check_len("tanh_forward", ("x", x.len()), ("y", y.len()));
    par_zip(x, y, |x, y| {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v.tanh();
        }
    });
}

/// `dx = dy·(1 − y²)` where `y = tanh(x)` is the forward **output**; added into `dx` if
/// `acc`, else overwriting it.
///
/// # Panics
///
/// If the three lengths differ.
pub fn tanh_backward<T: Scalar>(y: &[T], dy: &[T], dx: &mut [T], acc: bool) {
    check_len("tanh_backward", ("y", y.len()), ("dx", dx.len()));
    check_len("tanh_backward", ("dy", dy.len()), ("dx", dx.len()));
    par_zip3(y, dy, dx, |y, dy, dx| {
        for ((d, &v), &g) in dx.iter_mut().zip(y).zip(dy) {
            store(d, g * (T::ONE - v * v), acc);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn values_and_conventions() {
        let x = [-2.0f64, -0.0, 0.0, 0.5, f64::NAN];
        let mut y = [9.0; 5];
        relu_forward(&x, &mut y);
        assert_eq!(&y[..4], &[0.0, 0.0, 0.0, 0.5]);
        assert!(y[4].is_nan());
        leaky_relu_forward(0.2, &x, &mut y);
        assert_eq!(&y[..4], &[-0.4, -0.0, 0.0, 0.5]);
        let dy = [1.0; 5];
        let mut dx = [9.0; 5];
        relu_backward(&x, &dy, &mut dx, false);
        assert_eq!(&dx[..4], &[0.0, 0.0, 0.0, 1.0]);
        leaky_relu_backward(0.2, &x, &dy, &mut dx, false);
        assert_eq!(&dx[..4], &[0.2, 0.2, 0.2, 1.0]);
        tanh_forward(&x[..4], &mut y[..4]);
        assert_eq!(y[3], 0.5f64.tanh());
    }

    #[test]
    fn acc_and_threads() {
        let n = 100_003;
        let mut r = rng(31);
        let x = to_f32(&rand_vec(&mut r, n));
        let dy = to_f32(&rand_vec(&mut r, n));
        let base = to_f32(&rand_vec(&mut r, n));
        assert_thread_invariant(
            "activations",
            || {
                let mut outs = Vec::new();
                let mut y = vec![0.0f32; n];
                relu_forward(&x, &mut y);
                outs.push(y.clone());
                leaky_relu_forward(0.2, &x, &mut y);
                outs.push(y.clone());
                tanh_forward(&x, &mut y);
                outs.push(y.clone());
                for kind in 0..3 {
                    let mut fresh = vec![f32::NAN; n];
                    let mut acc = base.clone();
                    for (d, a) in [(&mut fresh, false), (&mut acc, true)] {
                        match kind {
                            0 => relu_backward(&x, &dy, d, a),
                            1 => leaky_relu_backward(0.2, &x, &dy, d, a),
                            _ => tanh_backward(&y, &dy, d, a),
                        }
                    }
                    for ((a, f), b) in acc.iter().zip(&fresh).zip(&base) {
                        assert_eq!(*a, b + f, "acc adds");
                    }
                    outs.push(fresh);
                }
                outs
            },
            |a, b, what| assert_bits_eq(a, b, what),
        );
        // f32 against f64
        let mut y32 = vec![0.0f32; n];
        tanh_forward(&x, &mut y32);
        let mut y64 = vec![0.0f64; n];
        tanh_forward(&to_f64(&x), &mut y64);
        assert_close(&to_f64(&y32), &y64, 1e-6, "tanh f32");
    }

    proptest! {
        #![proptest_config(pt_config())]
        #[test]
        fn finite_differences(n in 1usize..=40, slope in 0.0f64..1.0, seed in any::<u64>()) {
            let mut r = rng(seed);
            let x = rand_away_from_zero(&mut r, n, 1e-3);
            let rr = rand_vec(&mut r, n);
            let mut dx = vec![0.0; n];
            relu_backward(&x, &rr, &mut dx, false);
            check_grad("relu", &x, &dx, 1e-6, &mut r, |p| { let mut y = vec![0.0; n]; relu_forward(p, &mut y); inner(&rr, &y) });
            leaky_relu_backward(slope, &x, &rr, &mut dx, false);
            check_grad("leaky_relu", &x, &dx, 1e-6, &mut r, |p| { let mut y = vec![0.0; n]; leaky_relu_forward(slope, p, &mut y); inner(&rr, &y) });
            let x = rand_range(&mut r, n, -3.0, 3.0);
            let mut y = vec![0.0; n];
            tanh_forward(&x, &mut y);
            tanh_backward(&y, &rr, &mut dx, false);
            check_grad("tanh", &x, &dx, 1e-6, &mut r, |p| { let mut y = vec![0.0; n]; tanh_forward(p, &mut y); inner(&rr, &y) });
        }
    }
}
