//! Plumbing shared by the CPU networks: a buffer pool (so that steady-state
//! forward/backward passes do not allocate), parameter/gradient slice access,
//! and thin wrappers that bind the layer kernels of [`crate::cpu::ops`] to
//! parameter indices.

use std::sync::Mutex;

use crate::cpu::ops;
use crate::cpu::{CpuBackend, CpuTensor};
use crate::params::{Grads, ParamSet};
use crate::{Error, Result};

/// A pool of `Vec<f32>` buffers reused across passes.
///
/// `take(n)` returns a zero-length-agnostic buffer of exactly `n` elements
/// (contents unspecified: every kernel overwrites its output unless it is
/// documented to accumulate, in which case the caller zeroes it first);
/// `give` returns it. After the first pass of a given batch size no allocation
/// happens.
#[derive(Debug, Default)]
pub struct BufPool {
    free: Mutex<Vec<Vec<f32>>>,
}

impl BufPool {
    /// Takes a buffer of length `n` (unspecified contents).
    ///
    /// Prefers the smallest buffer that already *holds* `n` elements (shrinking
    /// its length is free), then the smallest that has the capacity (growing
    /// zero-fills the new part), then a new one. In steady state every request
    /// is served by truncation, without allocating or writing memory.
    pub fn take(&self, n: usize) -> Vec<f32> {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pick = |key: fn(&Vec<f32>) -> usize| -> Option<usize> {
            free.iter()
                .enumerate()
                .filter(|(_, b)| key(b) >= n)
                .min_by_key(|(_, b)| key(b))
                .map(|(i, _)| i)
        };
        let chosen = pick(Vec::len).or_else(|| pick(Vec::capacity));
        let mut v = match chosen {
            Some(i) => free.swap_remove(i),
            None => Vec::new(),
        };
        drop(free);
        if v.len() >= n {
            v.truncate(n);
        } else {
            v.resize(n, 0.0);
        }
        v
    }

    /// Returns a buffer to the pool.
    pub fn give(&self, v: Vec<f32>) {
        if v.capacity() > 0 {
            self.free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(v);
        }
    }
}

/// Indices of a convolution's weight and bias in the parameter set.
#[derive(Clone, Copy, Debug)]
pub struct ConvIdx {
    pub w: usize,
    pub b: usize,
}

/// Indices of a batch norm's parameters and running statistics.
#[derive(Clone, Copy, Debug)]
pub struct BnIdx {
    pub gamma: usize,
    pub beta: usize,
    pub mean: usize,
    pub var: usize,
}

/// Looks up a parameter index by name.
pub fn idx(params: &ParamSet<CpuBackend>, name: &str) -> Result<usize> {
    params
        .index_of(name)
        .ok_or_else(|| Error::Param(format!("internal: parameter `{name}` missing")))
}

/// The indices of conv `prefix`.
pub fn conv_idx(params: &ParamSet<CpuBackend>, prefix: &str) -> Result<ConvIdx> {
    Ok(ConvIdx {
        w: idx(params, &format!("{prefix}.weight"))?,
        b: idx(params, &format!("{prefix}.bias"))?,
    })
}

/// The indices of batch norm `prefix`.
pub fn bn_idx(params: &ParamSet<CpuBackend>, prefix: &str) -> Result<BnIdx> {
    Ok(BnIdx {
        gamma: idx(params, &format!("{prefix}.weight"))?,
        beta: idx(params, &format!("{prefix}.bias"))?,
        mean: idx(params, &format!("{prefix}.running_mean"))?,
        var: idx(params, &format!("{prefix}.running_var"))?,
    })
}

/// The value of parameter `i` as a slice.
pub fn pv(params: &ParamSet<CpuBackend>, i: usize) -> &[f32] {
    params.value(i).as_slice()
}

/// Mutable gradient slices of two distinct parameters (e.g. weight and bias).
///
/// # Errors
/// [`Error::InvalidArgument`] if either parameter has no gradient slot (a
/// buffer, or a `Grads` built for another network).
pub fn grad_pair(
    grads: &mut Grads<CpuBackend>,
    i: usize,
    j: usize,
) -> Result<(&mut [f32], &mut [f32])> {
    assert_ne!(i, j, "grad_pair needs two distinct parameters");
    let (lo, hi, swap) = if i < j { (i, j, false) } else { (j, i, true) };
    let n = grads.tensors.len();
    if hi >= n {
        return Err(Error::InvalidArgument(
            "gradient set does not match the network".into(),
        ));
    }
    let (a, b) = grads.tensors.split_at_mut(hi);
    let gl = a[lo].as_mut().ok_or_else(no_grad)?.as_slice_mut();
    let gh = b[0].as_mut().ok_or_else(no_grad)?.as_slice_mut();
    Ok(if swap { (gh, gl) } else { (gl, gh) })
}

/// The mutable gradient slice of one parameter.
///
/// # Errors
/// As [`grad_pair`].
pub fn grad_one(grads: &mut Grads<CpuBackend>, i: usize) -> Result<&mut [f32]> {
    Ok(grads
        .tensors
        .get_mut(i)
        .ok_or_else(|| Error::InvalidArgument("gradient set does not match the network".into()))?
        .as_mut()
        .ok_or_else(no_grad)?
        .as_slice_mut())
}

fn no_grad() -> Error {
    Error::InvalidArgument("gradient slot missing for a trainable parameter".into())
}

/// Checks a network input: shape `[B, ...sample]` with `B ≥ 1`; returns `B`.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming `what`.
pub fn check_input(what: &str, x: &CpuTensor, sample: &[usize]) -> Result<usize> {
    let s = x.shape();
    if s.len() != sample.len() + 1 || s[1..] != *sample || s[0] == 0 {
        let mut want = vec![0usize];
        want.extend_from_slice(sample);
        return Err(Error::ShapeMismatch {
            what: what.into(),
            expected: format!(
                "[B>=1, {}]",
                sample
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            got: format!("{s:?}"),
        });
    }
    Ok(s[0])
}

/// 3×3 or 1×1 convolution forward with parameters `c`.
pub fn conv_fwd(
    params: &ParamSet<CpuBackend>,
    c: ConvIdx,
    g: &ops::Conv2dGeom,
    x: &[f32],
    y: &mut [f32],
) {
    ops::conv2d_forward(g, x, pv(params, c.w), Some(pv(params, c.b)), y);
}

/// Convolution backward: input gradient (if `dx` is given; `acc` as in the
/// kernels) and parameter gradients (if `grads` is given).
///
/// # Errors
/// As [`grad_pair`].
pub fn conv_bwd(
    params: &ParamSet<CpuBackend>,
    c: ConvIdx,
    g: &ops::Conv2dGeom,
    x: &[f32],
    dy: &[f32],
    dx: Option<(&mut [f32], bool)>,
    grads: Option<&mut Grads<CpuBackend>>,
) -> Result<()> {
    if let Some(gr) = grads {
        let (dw, db) = grad_pair(gr, c.w, c.b)?;
        ops::conv2d_backward_params(g, x, dy, dw, Some(db));
    }
    if let Some((dx, acc)) = dx {
        ops::conv2d_backward_input(g, dy, pv(params, c.w), dx, acc);
    }
    Ok(())
}

/// Inference-mode batch norm forward.
pub fn bn_fwd(
    params: &ParamSet<CpuBackend>,
    n: BnIdx,
    b: usize,
    c: usize,
    hw: usize,
    eps: f32,
    x: &[f32],
    y: &mut [f32],
) {
    ops::bn_inference_forward(
        b,
        c,
        hw,
        eps,
        x,
        pv(params, n.gamma),
        pv(params, n.beta),
        pv(params, n.mean),
        pv(params, n.var),
        y,
    );
}

/// Inference-mode batch norm backward (input gradient overwrites `dx`).
///
/// # Errors
/// As [`grad_pair`].
pub fn bn_bwd(
    params: &ParamSet<CpuBackend>,
    n: BnIdx,
    b: usize,
    c: usize,
    hw: usize,
    eps: f32,
    x: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    grads: Option<&mut Grads<CpuBackend>>,
) -> Result<()> {
    let (gamma, mean, var) = (pv(params, n.gamma), pv(params, n.mean), pv(params, n.var));
    let pgrads = match grads {
        Some(gr) => {
            let (dg, db) = grad_pair(gr, n.gamma, n.beta)?;
            ops::BnParamGrads::both(dg, db)
        }
        None => ops::BnParamGrads::none(),
    };
    ops::bn_inference_backward(b, c, hw, eps, x, dy, gamma, mean, var, dx, false, pgrads);
    Ok(())
}

/// `y[i] += x[i]`.
pub fn add_into(y: &mut [f32], x: &[f32]) {
    debug_assert_eq!(y.len(), x.len());
    for (a, &b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

/// The generator loss `factor · mean((y − x)²)` (f64 accumulation) and its
/// cotangent `2·factor/N · (y − x)` w.r.t. `y`, in a pooled buffer.
pub fn mse_cotangent(pool: &BufPool, y: &[f32], x: &[f32], factor: f32) -> (f64, Vec<f32>) {
    debug_assert_eq!(y.len(), x.len());
    let n = y.len().max(1) as f64;
    let scale = (2.0 * f64::from(factor) / n) as f32;
    let mut cot = pool.take(y.len());
    let mut ss = 0.0f64;
    for ((c, &a), &b) in cot.iter_mut().zip(y).zip(x) {
        let d = a - b;
        ss += f64::from(d) * f64::from(d);
        *c = d * scale;
    }
    (f64::from(factor) * ss / n, cot)
}

/// Makes `t` a tensor of `shape` (reusing its buffer when the shape already
/// matches, the steady state of a sampler loop).
pub fn ensure_shape(t: &mut CpuTensor, shape: &[usize]) {
    if t.shape() != shape {
        *t = CpuTensor::zeros(shape);
    }
}

/// Checks that `t` is `[batch, ...sample]` (e.g. a cotangent against the
/// output it belongs to).
///
/// # Errors
/// [`Error::ShapeMismatch`] naming `what`.
pub fn check_rows(what: &str, t: &CpuTensor, batch: usize, sample: &[usize]) -> Result<()> {
    let want = crate::backend::shape::batched(batch, sample);
    if t.shape() != want.as_slice() {
        return Err(Error::shape(what, &want, t.shape()));
    }
    Ok(())
}
