//! Batch normalisation over `x [b, c, hw]` (per channel `c`; `hw = 1` for vectors).
//!
//! * Inference: `y = (x − mean) / sqrt(var + eps) · gamma + beta` with given (running)
//!   statistics, computed as `(x − mean)·s + beta` with `s = gamma / sqrt(var + eps)`.
//! * Training: the statistics are the batch mean and the **biased** batch variance
//!   (divide by `N = b·hw`), as PyTorch and Keras normalise; the forward pass returns
//!   both so the backward pass can reuse them ([`bn_unbiased_var`] converts the variance
//!   for a PyTorch-style running-variance update).
//!
//! Per-channel reductions are parallel over channels and sum over the batch in a fixed
//! order (bit-identical for any number of threads); element-wise parts are parallel over
//! the batch.

use rayon::prelude::*;

use super::scalar::Scalar;
use super::util::{PAR_MIN_ELEMS, Scratch, dot_dev, par_rows, par_rows3, sum, sum_sq_dev};

fn check(f: &str, what: &str, len: usize, want: usize, formula: &str) {
    assert!(
        len == want,
        "{f}: `{what}` has length {len} but the shape needs {formula} = {want}"
    );
}

/// The parameter-gradient outputs of a batch-norm backward pass: each `[c]` (one value
/// per channel) and **accumulated into** (`+=`), never overwritten; `None` skips that
/// gradient (and its reduction, when both are `None`).
#[derive(Debug, Default)]
pub struct BnParamGrads<'a, T> {
    /// `dgamma += Σ_{n,p} dy·x̂` (`x̂` the normalised input).
    pub dgamma: Option<&'a mut [T]>,
    /// `dbeta += Σ_{n,p} dy`.
    pub dbeta: Option<&'a mut [T]>,
}

impl<'a, T> BnParamGrads<'a, T> {
    /// Accumulate into both `dgamma` and `dbeta`.
    pub fn both(dgamma: &'a mut [T], dbeta: &'a mut [T]) -> Self {
        BnParamGrads {
            dgamma: Some(dgamma),
            dbeta: Some(dbeta),
        }
    }

    /// No parameter gradients (input gradient only).
    pub fn none() -> Self {
        BnParamGrads {
            dgamma: None,
            dbeta: None,
        }
    }
}

/// Per-channel sums `out1[ch] = Σ_n f(n, ch).0`, `out2[ch] = Σ_n f(n, ch).1`, the batch
/// summed in order `n = 0, 1, …` for every channel (any channel split gives the same
/// bits). Parallel over channel blocks for large inputs.
fn channel_sums<T: Scalar>(
    b: usize,
    c: usize,
    work: usize,
    out1: &mut [T],
    out2: &mut [T],
    f: impl Fn(usize, usize) -> (T, T) + Sync + Send,
) {
    let run = |c0: usize, o1: &mut [T], o2: &mut [T]| {
        o1.fill(T::ZERO);
        o2.fill(T::ZERO);
        for n in 0..b {
            for (j, (a1, a2)) in o1.iter_mut().zip(o2.iter_mut()).enumerate() {
                let (v1, v2) = f(n, c0 + j);
                *a1 += v1;
                *a2 += v2;
            }
        }
    };
    if work < PAR_MIN_ELEMS || c < 2 {
        run(0, out1, out2);
    } else {
        let cc = c.div_ceil(8);
        out1.par_chunks_mut(cc)
            .zip(out2.par_chunks_mut(cc))
            .enumerate()
            .for_each(|(t, (o1, o2))| run(t * cc, o1, o2));
    }
}

/// `y[n, ch, ·] = (x[n, ch, ·] − shift[ch])·scale[ch] + beta[ch]`, parallel over the batch.
fn affine<T: Scalar>(
    c: usize,
    hw: usize,
    x: &[T],
    shift: &[T],
    scale: &[T],
    beta: &[T],
    y: &mut [T],
) {
    par_rows(x, c * hw, y, c * hw, |x, y| {
        for (yr, xr) in y.chunks_exact_mut(c * hw).zip(x.chunks_exact(c * hw)) {
            for ch in 0..c {
                let (m, s, bt) = (shift[ch], scale[ch], beta[ch]);
                let (yc, xc) = (&mut yr[ch * hw..(ch + 1) * hw], &xr[ch * hw..(ch + 1) * hw]);
                for (o, &v) in yc.iter_mut().zip(xc) {
                    *o = (v - m) * s + bt;
                }
            }
        }
    });
}

/// Inference-mode forward: `y = (x − mean)/sqrt(var + eps)·gamma + beta` per channel;
/// `y` is overwritten.
///
/// Shapes: `x, y [b, c, hw]`; `gamma, beta, mean, var [c]` (running statistics).
///
/// # Panics
///
/// If a slice length does not match.
pub fn bn_inference_forward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
    y: &mut [T],
) {
    const F: &str = "bn_inference_forward";
    check(F, "x", x.len(), b * c * hw, "b·c·hw");
    check(F, "y", y.len(), b * c * hw, "b·c·hw");
    for (n, s) in [
        ("gamma", gamma),
        ("beta", beta),
        ("mean", mean),
        ("var", var),
    ] {
        check(F, n, s.len(), c, "c");
    }
    let mut scale = Scratch::<T>::new(c);
    for (s, (&g, &v)) in scale.iter_mut().zip(gamma.iter().zip(var)) {
        *s = g / (v + eps).sqrt();
    }
    affine(c, hw, x, mean, &scale, beta, y);
}

/// Inference-mode backward (statistics are constants):
/// `dx = dy·gamma/sqrt(var + eps)` (added into `dx` if `acc`, else overwriting it; skipped
/// if `dx` is `None`), and **accumulating** `dgamma += Σ_{n,p} dy·(x − mean)/sqrt(var + eps)`,
/// `dbeta += Σ_{n,p} dy` (each skipped if `None`, see [`BnParamGrads`]).
///
/// Shapes: `x, dy, dx [b, c, hw]`; `gamma, mean, var, dgamma, dbeta [c]`.
///
/// # Panics
///
/// If a slice length does not match.
pub fn bn_inference_backward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    var: &[T],
    dx: Option<&mut [T]>,
    acc: bool,
    grads: BnParamGrads<'_, T>,
) {
    const F: &str = "bn_inference_backward";
    let BnParamGrads { dgamma, dbeta } = grads;
    check(F, "x", x.len(), b * c * hw, "b·c·hw");
    check(F, "dy", dy.len(), b * c * hw, "b·c·hw");
    for (n, s) in [("gamma", gamma), ("mean", mean), ("var", var)] {
        check(F, n, s.len(), c, "c");
    }
    if let Some(dx) = dx.as_deref() {
        check(F, "dx", dx.len(), b * c * hw, "b·c·hw");
    }
    for (n, s) in [("dgamma", dgamma.as_deref()), ("dbeta", dbeta.as_deref())] {
        if let Some(s) = s {
            check(F, n, s.len(), c, "c");
        }
    }
    if let Some(dx) = dx {
        let mut scale = Scratch::<T>::new(c);
        for (s, (&g, &v)) in scale.iter_mut().zip(gamma.iter().zip(var)) {
            *s = g / (v + eps).sqrt();
        }
        par_rows(dy, c * hw, dx, c * hw, |dy, dx| {
            for (xr, yr) in dx.chunks_exact_mut(c * hw).zip(dy.chunks_exact(c * hw)) {
                for ch in 0..c {
                    let s = scale[ch];
                    let (d, g) = (&mut xr[ch * hw..(ch + 1) * hw], &yr[ch * hw..(ch + 1) * hw]);
                    if acc {
                        d.iter_mut().zip(g).for_each(|(d, &g)| *d += g * s);
                    } else {
                        d.iter_mut().zip(g).for_each(|(d, &g)| *d = g * s);
                    }
                }
            }
        });
    }
    if dgamma.is_none() && dbeta.is_none() {
        return;
    }
    let mut s_dy = Scratch::<T>::new(c);
    let mut s_dyx = Scratch::<T>::new(c);
    let at = |n: usize, ch: usize| (n * c + ch) * hw;
    channel_sums(b, c, b * c * hw, &mut s_dy, &mut s_dyx, |n, ch| {
        let (dyc, xc) = (
            &dy[at(n, ch)..at(n, ch) + hw],
            &x[at(n, ch)..at(n, ch) + hw],
        );
        (sum(dyc), dot_dev(dyc, xc, mean[ch]))
    });
    if let Some(dg) = dgamma {
        for ch in 0..c {
            dg[ch] += s_dyx[ch] / (var[ch] + eps).sqrt();
        }
    }
    if let Some(db) = dbeta {
        db.iter_mut().zip(s_dy.iter()).for_each(|(d, &s)| *d += s);
    }
}

/// Training-mode forward: normalises with the batch statistics over `N = b·hw` values per
/// channel, `mean = Σx/N`, `var = Σ(x − mean)²/N` (biased, two-pass), and writes them to
/// `batch_mean` and `batch_var_biased` (for [`bn_train_backward`]; convert with
/// [`bn_unbiased_var`] for a PyTorch-style running-variance update). `y` is overwritten.
///
/// Shapes: `x, y [b, c, hw]`; `gamma, beta, batch_mean, batch_var_biased [c]`.
///
/// # Panics
///
/// If `b·hw == 0` (no statistics) or a slice length does not match.
pub fn bn_train_forward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    y: &mut [T],
    batch_mean: &mut [T],
    batch_var_biased: &mut [T],
) {
    const F: &str = "bn_train_forward";
    assert!(
        b * hw > 0 || c == 0,
        "{F}: batch statistics need b·hw > 0 values per channel"
    );
    check(F, "x", x.len(), b * c * hw, "b·c·hw");
    check(F, "y", y.len(), b * c * hw, "b·c·hw");
    for (n, s) in [("gamma", gamma), ("beta", beta)] {
        check(F, n, s.len(), c, "c");
    }
    check(F, "batch_mean", batch_mean.len(), c, "c");
    check(F, "batch_var_biased", batch_var_biased.len(), c, "c");
    if c == 0 {
        return;
    }
    let nn = T::from_usize(b * hw);
    let at = |n: usize, ch: usize| (n * c + ch) * hw;
    let mut unused = Scratch::<T>::new(c);
    channel_sums(b, c, b * c * hw, batch_mean, &mut unused, |n, ch| {
        (sum(&x[at(n, ch)..at(n, ch) + hw]), T::ZERO)
    });
    batch_mean.iter_mut().for_each(|m| *m /= nn);
    let mean: &[T] = batch_mean;
    channel_sums(b, c, b * c * hw, batch_var_biased, &mut unused, |n, ch| {
        (sum_sq_dev(&x[at(n, ch)..at(n, ch) + hw], mean[ch]), T::ZERO)
    });
    batch_var_biased.iter_mut().for_each(|v| *v /= nn);
    let mut scale = Scratch::<T>::new(c);
    for (s, (&g, &v)) in scale
        .iter_mut()
        .zip(gamma.iter().zip(batch_var_biased.iter()))
    {
        *s = g / (v + eps).sqrt();
    }
    affine(c, hw, x, mean, &scale, beta, y);
}

/// Training-mode backward, through the batch statistics: with `s = sqrt(var + eps)`,
/// `x̂ = (x − mean)/s`,
/// `dx = gamma/s · (dy − mean(dy) − x̂·mean(dy·x̂))` (means over the `N = b·hw` values of
/// the channel; added into `dx` if `acc`, else overwriting it), and **accumulating**
/// `dgamma += Σ dy·x̂`, `dbeta += Σ dy` (each skipped if `None`, see [`BnParamGrads`]).
///
/// `batch_mean` / `batch_var_biased` are the outputs of [`bn_train_forward`] for the
/// same `x`. Shapes: `x, dy, dx [b, c, hw]`; `gamma, batch_mean, batch_var_biased,
/// dgamma, dbeta [c]`.
///
/// # Panics
///
/// If `b·hw == 0` or a slice length does not match.
pub fn bn_train_backward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    dy: &[T],
    gamma: &[T],
    batch_mean: &[T],
    batch_var_biased: &[T],
    dx: &mut [T],
    acc: bool,
    grads: BnParamGrads<'_, T>,
) {
    const F: &str = "bn_train_backward";
    let BnParamGrads { dgamma, dbeta } = grads;
    assert!(
        b * hw > 0 || c == 0,
        "{F}: batch statistics need b·hw > 0 values per channel"
    );
    check(F, "x", x.len(), b * c * hw, "b·c·hw");
    check(F, "dy", dy.len(), b * c * hw, "b·c·hw");
    check(F, "dx", dx.len(), b * c * hw, "b·c·hw");
    for (n, s) in [
        ("gamma", gamma),
        ("batch_mean", batch_mean),
        ("batch_var_biased", batch_var_biased),
    ] {
        check(F, n, s.len(), c, "c");
    }
    for (n, s) in [("dgamma", dgamma.as_deref()), ("dbeta", dbeta.as_deref())] {
        if let Some(s) = s {
            check(F, n, s.len(), c, "c");
        }
    }
    if c == 0 {
        return;
    }
    let nn = T::from_usize(b * hw);
    let at = |n: usize, ch: usize| (n * c + ch) * hw;
    let mut s_dy = Scratch::<T>::new(c);
    let mut s_dyx = Scratch::<T>::new(c);
    channel_sums(b, c, b * c * hw, &mut s_dy, &mut s_dyx, |n, ch| {
        let (dyc, xc) = (
            &dy[at(n, ch)..at(n, ch) + hw],
            &x[at(n, ch)..at(n, ch) + hw],
        );
        (sum(dyc), dot_dev(dyc, xc, batch_mean[ch]))
    });
    // Per channel: k1 = gamma/s, m = mean(dy), k2 = Σ dy·(x − mean) / ((var + eps)·N).
    let mut coef = Scratch::<T>::new(3 * c);
    for ch in 0..c {
        let ve = batch_var_biased[ch] + eps;
        coef[3 * ch] = gamma[ch] / ve.sqrt();
        coef[3 * ch + 1] = s_dy[ch] / nn;
        coef[3 * ch + 2] = s_dyx[ch] / (ve * nn);
    }
    let coef: &[T] = &coef;
    let row = c * hw;
    par_rows3(x, dy, row, dx, row, |x, dy, dx| {
        for ((dxr, dyr), xr) in dx
            .chunks_exact_mut(row)
            .zip(dy.chunks_exact(row))
            .zip(x.chunks_exact(row))
        {
            for ch in 0..c {
                let (k1, m, k2, mu) = (
                    coef[3 * ch],
                    coef[3 * ch + 1],
                    coef[3 * ch + 2],
                    batch_mean[ch],
                );
                let r = ch * hw..(ch + 1) * hw;
                let it = dxr[r.clone()].iter_mut().zip(&dyr[r.clone()]).zip(&xr[r]);
                if acc {
                    it.for_each(|((d, &g), &v)| *d += k1 * ((g - m) - (v - mu) * k2));
                } else {
                    it.for_each(|((d, &g), &v)| *d = k1 * ((g - m) - (v - mu) * k2));
                }
            }
        }
    });
    if let Some(dg) = dgamma {
        for ch in 0..c {
            dg[ch] += s_dyx[ch] / (batch_var_biased[ch] + eps).sqrt();
        }
    }
    if let Some(db) = dbeta {
        db.iter_mut().zip(s_dy.iter()).for_each(|(d, &s)| *d += s);
    }
}

/// Converts the biased batch variance of [`bn_train_forward`] to the unbiased one,
/// `out = var_biased · N/(N − 1)` with `N = b·hw` (PyTorch updates `running_var` with the
/// unbiased variance; Keras uses the biased one). `N = 1` gives NaN (0·1/0).
///
/// # Panics
///
/// If `out.len() != var_biased.len()`.
pub fn bn_unbiased_var<T: Scalar>(b: usize, hw: usize, var_biased: &[T], out: &mut [T]) {
    assert!(
        out.len() == var_biased.len(),
        "bn_unbiased_var: `out` has length {} but `var_biased` has length {}",
        out.len(),
        var_biased.len()
    );
    let n = b * hw;
    let (nn, n1) = (T::from_usize(n), T::from_usize(n.saturating_sub(1)));
    for (o, &v) in out.iter_mut().zip(var_biased) {
        *o = v * nn / n1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::*;
    use proptest::prelude::*;

    struct Bn {
        b: usize,
        c: usize,
        hw: usize,
        x: Vec<f64>,
        gamma: Vec<f64>,
        beta: Vec<f64>,
        mean: Vec<f64>,
        var: Vec<f64>,
        dy: Vec<f64>,
    }

    fn data(b: usize, c: usize, hw: usize, seed: u64) -> Bn {
        let mut r = rng(seed);
        Bn {
            b,
            c,
            hw,
            x: rand_vec(&mut r, b * c * hw),
            gamma: rand_range(&mut r, c, 0.5, 1.5),
            beta: rand_vec(&mut r, c),
            mean: rand_range(&mut r, c, -0.2, 0.2),
            var: rand_range(&mut r, c, 0.5, 2.0),
            dy: rand_vec(&mut r, b * c * hw),
        }
    }

    /// Naive batch statistics (f64): per-channel mean and biased variance.
    fn naive_stats(d: &Bn) -> (Vec<f64>, Vec<f64>) {
        let n = (d.b * d.hw) as f64;
        let vals = |ch: usize| {
            (0..d.b).flat_map(move |i| (0..d.hw).map(move |p| (i * d.c + ch) * d.hw + p))
        };
        let mean: Vec<f64> = (0..d.c)
            .map(|ch| vals(ch).map(|i| d.x[i]).sum::<f64>() / n)
            .collect();
        let var = (0..d.c)
            .map(|ch| vals(ch).map(|i| (d.x[i] - mean[ch]).powi(2)).sum::<f64>() / n)
            .collect();
        (mean, var)
    }

    fn naive_norm(d: &Bn, mean: &[f64], var: &[f64], eps: f64) -> Vec<f64> {
        let mut y = vec![0.0; d.x.len()];
        for (i, v) in y.iter_mut().enumerate() {
            let ch = (i / d.hw) % d.c;
            *v = (d.x[i] - mean[ch]) / (var[ch] + eps).sqrt() * d.gamma[ch] + d.beta[ch];
        }
        y
    }

    #[test]
    fn matches_naive() {
        let eps = 1e-3;
        for &(b, c, hw) in &[(1, 1, 1), (4, 3, 1), (3, 5, 7), (8, 64, 64)] {
            let d = data(b, c, hw, 40);
            let mut y = vec![f64::NAN; d.x.len()];
            bn_inference_forward(
                b, c, hw, eps, &d.x, &d.gamma, &d.beta, &d.mean, &d.var, &mut y,
            );
            assert_close(
                &y,
                &naive_norm(&d, &d.mean, &d.var, eps),
                1e-14,
                "bn inference",
            );
            let (mut m, mut v) = (vec![0.0; c], vec![0.0; c]);
            bn_train_forward(
                b, c, hw, eps, &d.x, &d.gamma, &d.beta, &mut y, &mut m, &mut v,
            );
            let (mr, vr) = naive_stats(&d);
            assert_close(&m, &mr, 1e-14, "batch mean");
            assert_close(&v, &vr, 1e-14, "batch var");
            assert_close(&y, &naive_norm(&d, &mr, &vr, eps), 1e-14, "bn train");
            if b * hw > 1 {
                let mut u = vec![0.0; c];
                bn_unbiased_var(b, hw, &v, &mut u);
                let n = (b * hw) as f64;
                assert_close(
                    &u,
                    &vr.iter().map(|v| v * n / (n - 1.0)).collect::<Vec<_>>(),
                    1e-14,
                    "unbiased",
                );
            }
        }
    }

    #[test]
    fn f32_matches_f64() {
        let d = data(8, 16, 100, 41);
        let f = |v: &[f64]| to_f32(v);
        let (x, g, bt, m, v, dy) = (
            f(&d.x),
            f(&d.gamma),
            f(&d.beta),
            f(&d.mean),
            f(&d.var),
            f(&d.dy),
        );
        let n = d.x.len();
        let mut y32 = vec![0.0f32; n];
        let (mut m32, mut v32) = (vec![0.0f32; 16], vec![0.0f32; 16]);
        bn_train_forward(8, 16, 100, 1e-3, &x, &g, &bt, &mut y32, &mut m32, &mut v32);
        let mut y64 = vec![0.0; n];
        let (mut m64, mut v64) = (vec![0.0; 16], vec![0.0; 16]);
        let (x6, g6, b6, dy6) = (to_f64(&x), to_f64(&g), to_f64(&bt), to_f64(&dy));
        bn_train_forward(
            8, 16, 100, 1e-3, &x6, &g6, &b6, &mut y64, &mut m64, &mut v64,
        );
        assert_close(&to_f64(&y32), &y64, 1e-6, "bn train f32 y");
        let mut dx32 = vec![0.0f32; n];
        let (mut dg32, mut db32) = (vec![0.0f32; 16], vec![0.0f32; 16]);
        bn_train_backward(
            8,
            16,
            100,
            1e-3,
            &x,
            &dy,
            &g,
            &m32,
            &v32,
            &mut dx32,
            false,
            BnParamGrads::both(&mut dg32, &mut db32),
        );
        let mut dx64 = vec![0.0; n];
        let (mut dg64, mut db64) = (vec![0.0; 16], vec![0.0; 16]);
        bn_train_backward(
            8,
            16,
            100,
            1e-3,
            &x6,
            &dy6,
            &g6,
            &m64,
            &v64,
            &mut dx64,
            false,
            BnParamGrads::both(&mut dg64, &mut db64),
        );
        assert_close(&to_f64(&dx32), &dx64, 1e-5, "bn train f32 dx");
        assert_close(&to_f64(&dg32), &dg64, 1e-6, "bn train f32 dgamma");
        assert_close(&to_f64(&db32), &db64, 1e-6, "bn train f32 dbeta");
        bn_inference_forward(8, 16, 100, 1e-3, &x, &g, &bt, &m, &v, &mut y32);
        bn_inference_forward(
            8,
            16,
            100,
            1e-3,
            &x6,
            &g6,
            &b6,
            &to_f64(&m),
            &to_f64(&v),
            &mut y64,
        );
        assert_close(&to_f64(&y32), &y64, 1e-6, "bn inference f32");
    }

    #[test]
    fn acc_and_threads() {
        for &(b, c, hw) in &[(16, 64, 64), (300, 40, 1), (3, 5, 7)] {
            let d = data(b, c, hw, 42);
            let f = |v: &[f64]| to_f32(v);
            let (x, g, bt, m, v, dy) = (
                f(&d.x),
                f(&d.gamma),
                f(&d.beta),
                f(&d.mean),
                f(&d.var),
                f(&d.dy),
            );
            let base = f(&rand_vec(&mut rng(43), d.x.len()));
            let n = d.x.len();
            assert_thread_invariant(
                "batchnorm",
                || {
                    let mut y = vec![0.0f32; n];
                    bn_inference_forward(b, c, hw, 1e-3, &x, &g, &bt, &m, &v, &mut y);
                    let mut dx = vec![f32::NAN; n];
                    let (mut dg, mut db) = (vec![0.5f32; c], vec![0.5f32; c]);
                    bn_inference_backward(
                        b,
                        c,
                        hw,
                        1e-3,
                        &x,
                        &dy,
                        &g,
                        &m,
                        &v,
                        Some(&mut dx),
                        false,
                        BnParamGrads::both(&mut dg, &mut db),
                    );
                    let mut dxa = base.clone();
                    bn_inference_backward(
                        b,
                        c,
                        hw,
                        1e-3,
                        &x,
                        &dy,
                        &g,
                        &m,
                        &v,
                        Some(&mut dxa),
                        true,
                        BnParamGrads::none(),
                    );
                    for ((a, &f), &b0) in dxa.iter().zip(&dx).zip(&base) {
                        assert_eq!(*a, b0 + f, "inference acc adds");
                    }
                    let mut yt = vec![0.0f32; n];
                    let (mut bm, mut bv) = (vec![0.0f32; c], vec![0.0f32; c]);
                    bn_train_forward(b, c, hw, 1e-3, &x, &g, &bt, &mut yt, &mut bm, &mut bv);
                    let mut dxt = vec![f32::NAN; n];
                    let (mut dgt, mut dbt) = (vec![0.5f32; c], vec![0.5f32; c]);
                    bn_train_backward(
                        b,
                        c,
                        hw,
                        1e-3,
                        &x,
                        &dy,
                        &g,
                        &bm,
                        &bv,
                        &mut dxt,
                        false,
                        BnParamGrads::both(&mut dgt, &mut dbt),
                    );
                    let mut dxta = base.clone();
                    bn_train_backward(
                        b,
                        c,
                        hw,
                        1e-3,
                        &x,
                        &dy,
                        &g,
                        &bm,
                        &bv,
                        &mut dxta,
                        true,
                        BnParamGrads::none(),
                    );
                    for ((a, &f), &b0) in dxta.iter().zip(&dxt).zip(&base) {
                        assert_eq!(*a, b0 + f, "train acc adds");
                    }
                    vec![y, dx, dg, db, yt, bm, bv, dxt, dgt, dbt]
                },
                |a, b, what| assert_bits_eq(a, b, what),
            );
        }
    }

    proptest! {
        #![proptest_config(pt_config())]
        #[test]
        fn finite_differences(b in 1usize..=3, c in 1usize..=4, hw in 1usize..=9, seed in any::<u64>()) {
            let eps = 1e-3;
            let d = data(b, c, hw, seed);
            let mut r = rng(seed ^ 0x5eed);
            let rr = d.dy.clone();
            let n = d.x.len();
            // Inference mode.
            let inf = |x: &[f64], g: &[f64], bt: &[f64]| {
                let mut y = vec![0.0; n];
                bn_inference_forward(b, c, hw, eps, x, g, bt, &d.mean, &d.var, &mut y);
                inner(&rr, &y)
            };
            let mut dx = vec![0.0; n];
            let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
            bn_inference_backward(b, c, hw, eps, &d.x, &rr, &d.gamma, &d.mean, &d.var, Some(&mut dx), false, BnParamGrads::both(&mut dg, &mut db));
            check_grad("bn inference dx", &d.x, &dx, 1e-6, &mut r, |p| inf(p, &d.gamma, &d.beta));
            check_grad("bn inference dgamma", &d.gamma, &dg, 1e-6, &mut r, |p| inf(&d.x, p, &d.beta));
            check_grad("bn inference dbeta", &d.beta, &db, 1e-6, &mut r, |p| inf(&d.x, &d.gamma, p));
            // Training mode (gradient through the batch statistics).
            let tr = |x: &[f64], g: &[f64], bt: &[f64]| {
                let mut y = vec![0.0; n];
                let (mut m, mut v) = (vec![0.0; c], vec![0.0; c]);
                bn_train_forward(b, c, hw, eps, x, g, bt, &mut y, &mut m, &mut v);
                inner(&rr, &y)
            };
            let mut y = vec![0.0; n];
            let (mut m, mut v) = (vec![0.0; c], vec![0.0; c]);
            bn_train_forward(b, c, hw, eps, &d.x, &d.gamma, &d.beta, &mut y, &mut m, &mut v);
            let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
            bn_train_backward(b, c, hw, eps, &d.x, &rr, &d.gamma, &m, &v, &mut dx, false, BnParamGrads::both(&mut dg, &mut db));
            check_grad("bn train dx", &d.x, &dx, 1e-6, &mut r, |p| tr(p, &d.gamma, &d.beta));
            check_grad("bn train dgamma", &d.gamma, &dg, 1e-6, &mut r, |p| tr(&d.x, p, &d.beta));
            check_grad("bn train dbeta", &d.beta, &db, 1e-6, &mut r, |p| tr(&d.x, &d.gamma, p));
        }
    }
}
