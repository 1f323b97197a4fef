//! Layer helpers shared by the tch networks: thin wrappers over libtorch ops
//! with the exact conventions of the golden README (3×3 convolutions with
//! padding 1, 1×1 without, 2×2 average pooling, bilinear ×2 upsampling with
//! half-pixel centres, batch norm with eps 1e-3) and parameter binding for
//! autograd.

use hatebm_core::nets::arch::BN_EPS;
use hatebm_core::params::ParamSet;
use hatebm_core::{Error, Result};
use tch::Tensor;

use crate::TchBackend;
use crate::tensor::TchResultExt;

/// Indices of a convolution's weight and bias.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvIdx {
    pub w: usize,
    pub b: usize,
}

/// Indices of a batch norm's parameters and running statistics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BnIdx {
    pub gamma: usize,
    pub beta: usize,
    pub mean: usize,
    pub var: usize,
}

/// A parameter index by name.
pub(crate) fn idx(params: &ParamSet<TchBackend>, name: &str) -> Result<usize> {
    params
        .index_of(name)
        .ok_or_else(|| Error::Param(format!("internal: parameter `{name}` missing")))
}

/// The indices of conv `prefix`.
pub(crate) fn conv_idx(params: &ParamSet<TchBackend>, prefix: &str) -> Result<ConvIdx> {
    Ok(ConvIdx {
        w: idx(params, &format!("{prefix}.weight"))?,
        b: idx(params, &format!("{prefix}.bias"))?,
    })
}

/// The indices of batch norm `prefix`.
pub(crate) fn bn_idx(params: &ParamSet<TchBackend>, prefix: &str) -> Result<BnIdx> {
    Ok(BnIdx {
        gamma: idx(params, &format!("{prefix}.weight"))?,
        beta: idx(params, &format!("{prefix}.bias"))?,
        mean: idx(params, &format!("{prefix}.running_mean"))?,
        var: idx(params, &format!("{prefix}.running_var"))?,
    })
}

/// The parameters of one evaluation: per-call aliases of the stored values.
///
/// Trainable parameters whose gradients are wanted are fresh `detach()`ed
/// aliases with `requires_grad` (new tensor objects sharing the storage, so
/// the stored values are never touched and no graph outlives the call); the
/// others are plain handles.
pub(crate) struct Bound {
    /// One tensor per parameter, in the set's order.
    pub t: Vec<Tensor>,
    /// Indices of the parameters that require gradients.
    pub tracked: Vec<usize>,
}

impl Bound {
    /// Binds `params`; `track` asks for gradients of every trainable parameter.
    pub fn new(params: &ParamSet<TchBackend>, track: bool) -> Result<Self> {
        let mut t = Vec::with_capacity(params.len());
        let mut tracked = Vec::new();
        for (i, p) in params.iter().enumerate() {
            if track && p.spec.trainable {
                t.push(
                    p.value
                        .inner
                        .f_detach()
                        .tch()?
                        .f_set_requires_grad(true)
                        .tch()?,
                );
                tracked.push(i);
            } else {
                t.push(p.value.inner.shallow_clone());
            }
        }
        Ok(Bound { t, tracked })
    }

    /// Parameter `i`.
    pub fn p(&self, i: usize) -> &Tensor {
        &self.t[i]
    }

    /// The tracked parameters, in order.
    pub fn tracked_tensors(&self) -> Vec<&Tensor> {
        self.tracked.iter().map(|&i| &self.t[i]).collect()
    }
}

/// Convolution with weight/bias `c`, stride 1, "same" padding (`k / 2`).
pub(crate) fn conv(p: &Bound, c: ConvIdx, x: &Tensor, k: i64) -> Result<Tensor> {
    let pad = k / 2;
    x.f_conv2d(p.p(c.w), Some(p.p(c.b)), [1, 1], [pad, pad], [1, 1], 1)
        .tch()
}

/// 2×2 average pooling, stride 2.
pub(crate) fn pool2(x: &Tensor) -> Result<Tensor> {
    x.f_avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
        .tch()
}

/// Bilinear ×2 upsampling with half-pixel centres (`align_corners=False`), as
/// `torch.nn.functional.interpolate(scale_factor=2, mode='bilinear')`.
pub(crate) fn up2(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 4 {
        return Err(Error::InvalidArgument(format!(
            "internal: upsampling a {}-D tensor",
            s.len()
        )));
    }
    x.f_upsample_bilinear2d([s[2] * 2, s[3] * 2], false, 2.0, 2.0)
        .tch()
}

/// Batch norm (eps 1e-3): inference mode with the running statistics, or
/// training mode with the batch statistics (biased variance) — the running
/// statistics are then neither used nor updated.
pub(crate) fn bn(p: &Bound, n: BnIdx, x: &Tensor, training: bool) -> Result<Tensor> {
    if training {
        x.f_batch_norm(
            Some(p.p(n.gamma)),
            Some(p.p(n.beta)),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.0,
            f64::from(BN_EPS),
            true,
        )
        .tch()
    } else {
        x.f_batch_norm(
            Some(p.p(n.gamma)),
            Some(p.p(n.beta)),
            Some(p.p(n.mean)),
            Some(p.p(n.var)),
            false,
            0.0,
            f64::from(BN_EPS),
            true,
        )
        .tch()
    }
}

/// `x W^T + b` (or without bias).
pub(crate) fn linear(p: &Bound, w: usize, b: Option<usize>, x: &Tensor) -> Result<Tensor> {
    x.f_linear(p.p(w), b.map(|b| p.p(b))).tch()
}
