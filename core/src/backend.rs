//! The [`Backend`] trait: a tensor type plus the few element-wise and row
//! operations the Hat EBM algorithms need.
//!
//! A backend is a *type* (burn-style). Algorithms (`sampler`, `train`, `bank`) are
//! written once, generic over `B: Backend`, and monomorphised; the closed
//! run-time enum that picks a backend from a string lives above the core (in the
//! FFI crate), because only it knows every backend that was compiled in.
//!
//! Design rules:
//! * Tensors are `f32`, batch-major, row-major contiguous; images are NCHW. The
//!   first axis is always the batch (a "row" is one sample).
//! * Every method returns [`Result`], so a device error (e.g. CUDA out of memory)
//!   is an error, not a panic.
//! * Operations that sit inside a Langevin loop mutate in place and never need a
//!   host round trip: a GPU backend keeps everything on the device. Only
//!   [`Backend::to_host`] and the scalar reductions ([`Backend::sum`],
//!   [`Backend::sq_norm`], [`Backend::all_finite`]) synchronise, and the
//!   algorithms call them outside the hot loop (once per sampling call or
//!   training step).
//! * Noise is addressed, not streamed: [`Backend::fill_normal`] fills row `r` of
//!   a tensor from the key `(seed, stream, counter, row_offset + r)`, so the noise
//!   of chain *i* at step *k* does not depend on how chains are split into
//!   batches, threads or shards (see [`crate::noise`]).
//! * Fused operations ([`Backend::langevin_update`], [`Backend::adam_update`],
//!   [`Backend::ema_update`]) have the exact arithmetic of the reference code
//!   written down in their docs; a backend may implement them with any kernel
//!   that performs the same float32 operations.

use std::fmt::Debug;

use crate::Result;
use crate::noise::NoiseKey;

/// Hyper-parameters of one fused Keras-style Adam step (see [`Backend::adam_update`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// `alpha = lr · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ)` for this step `t` (computed by the optimiser).
    pub alpha: f32,
    /// `1 − β₁`, computed in float32 from `f32(β₁)` (Keras does so).
    pub one_minus_beta1: f32,
    /// `1 − β₂`, computed in float32 from `f32(β₂)`.
    pub one_minus_beta2: f32,
    /// ε added to `sqrt(v)` (not bias-corrected; Keras `epsilon`, default 1e-7).
    pub eps: f32,
}

/// Parameters of one fused Langevin update of one block (see [`Backend::langevin_update`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LangevinUpdate {
    /// Drift step `s = ε²/2` (multiplies the gradient).
    pub step: f32,
    /// Noise scale `ε` (multiplies the standard normal noise); ignored without noise.
    pub noise_scale: f32,
    /// Per-sample clipping threshold on the *gradient* norm, `c = max_drift / s`, or `None`.
    pub clip: Option<f32>,
}

/// A compute backend: its device, its tensor type and the primitive operations.
///
/// Implementations: [`crate::cpu::CpuBackend`] (reference, ndarray +
/// matrixmultiply) and `hatebm_tch::TchBackend` (libtorch, CPU or CUDA).
pub trait Backend: Clone + Debug + Send + Sync + 'static {
    /// Where tensors live (e.g. the CPU, or `cuda:0`).
    type Device: Clone + Debug + PartialEq + Send + Sync;
    /// The tensor type: `f32`, contiguous, batch-major.
    type Tensor: Clone + Debug + Send + Sync;

    /// A short name for logs and errors, e.g. `cpu`, `tch:cuda:0`.
    fn name(&self) -> String;

    /// A one-line description of what this backend computes on, for the
    /// run-start log line: [`Backend::name`] by default; backends add what an
    /// operator wants to know (the CPU model and kernel path, the libtorch
    /// version and CUDA devices).
    fn describe(&self) -> String {
        self.name()
    }

    /// The device this backend computes on.
    fn device(&self) -> &Self::Device;

    /// Waits until all queued work has finished (no-op on synchronous backends).
    /// Benchmarks call it before stopping a timer.
    ///
    /// # Errors
    /// A device error reported by the backend library.
    fn sync(&self) -> Result<()>;

    /// The shape of a tensor.
    fn shape(&self, t: &Self::Tensor) -> Vec<usize>;

    /// A tensor of zeros.
    ///
    /// # Errors
    /// Allocation failure on the device.
    fn zeros(&self, shape: &[usize]) -> Result<Self::Tensor>;

    /// Uploads host data (row-major) as a tensor of the given shape.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `data.len()` is not the product of `shape`.
    #[allow(clippy::wrong_self_convention)]
    fn from_host(&self, data: &[f32], shape: &[usize]) -> Result<Self::Tensor>;

    /// Copies a tensor to the host (row-major). Synchronises.
    ///
    /// # Errors
    /// A device error.
    fn to_host(&self, t: &Self::Tensor) -> Result<Vec<f32>>;

    /// Returns the same data viewed with another shape (same element count).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the element counts differ.
    fn reshape(&self, t: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;

    /// Overwrites every element of `t` with standard normal noise addressed by
    /// `key`: row `r` (index along the first axis) receives the stream
    /// `(key.seed, key.stream, key.counter, key.row_offset + r)`.
    ///
    /// Backends that own a device generator may, in a documented non-portable
    /// mode, draw from it instead (see the tch backend); the CPU backend always
    /// uses [`crate::noise::fill_normal_rows`].
    ///
    /// # Errors
    /// A device error.
    fn fill_normal(&self, t: &mut Self::Tensor, key: NoiseKey) -> Result<()>;

    /// Sets every element to `value`.
    ///
    /// # Errors
    /// A device error.
    fn fill(&self, t: &mut Self::Tensor, value: f32) -> Result<()>;

    /// `dst ← src` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on different shapes.
    fn copy_from(&self, dst: &mut Self::Tensor, src: &Self::Tensor) -> Result<()>;

    /// `y ← y + a·x` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on different shapes.
    fn axpy(&self, y: &mut Self::Tensor, a: f32, x: &Self::Tensor) -> Result<()>;

    /// `y ← a·y + b·x` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on different shapes.
    fn axpby(&self, y: &mut Self::Tensor, a: f32, b: f32, x: &Self::Tensor) -> Result<()>;

    /// `y ← a·y`.
    ///
    /// # Errors
    /// A device error.
    fn scale(&self, y: &mut Self::Tensor, a: f32) -> Result<()>;

    /// `y ← y ⊙ x`, the element-wise product (same shape; HMC's diagonal
    /// mass matrices).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on different shapes.
    fn mul_assign(&self, y: &mut Self::Tensor, x: &Self::Tensor) -> Result<()>;

    /// `a + b` as a new tensor (same shape).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on different shapes.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        let mut out = a.clone();
        self.axpy(&mut out, 1.0, b)?;
        Ok(out)
    }

    /// `a − b` as a new tensor (same shape).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on different shapes.
    fn sub(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        let mut out = a.clone();
        self.axpy(&mut out, -1.0, b)?;
        Ok(out)
    }

    /// Sum of all elements (accumulated in f64 on the CPU backend), on the host.
    ///
    /// # Errors
    /// A device error.
    fn sum(&self, t: &Self::Tensor) -> Result<f64>;

    /// Squared L2 norm of all elements, on the host.
    ///
    /// # Errors
    /// A device error.
    fn sq_norm(&self, t: &Self::Tensor) -> Result<f64>;

    /// Whether every element is finite. Synchronises.
    ///
    /// # Errors
    /// A device error.
    fn all_finite(&self, t: &Self::Tensor) -> Result<bool>;

    /// Per-row (per-sample) L2 norms: `[B, ...] → [B]`.
    ///
    /// # Errors
    /// A device error.
    fn row_norms(&self, t: &Self::Tensor) -> Result<Self::Tensor>;

    /// Rows `idx` of `t`, in that order: `[N, ...] → [idx.len(), ...]`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if an index is out of range.
    fn gather_rows(&self, t: &Self::Tensor, idx: &[usize]) -> Result<Self::Tensor>;

    /// `t[idx[i]] ← src[i]` for every `i` (indices must be unique).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for out-of-range or repeated indices,
    /// [`crate::Error::ShapeMismatch`] if `src` rows do not match.
    fn scatter_rows(&self, t: &mut Self::Tensor, idx: &[usize], src: &Self::Tensor) -> Result<()>;

    /// Copies `src` (any shape with `row_len(dst)` elements) into row `row` of
    /// `dst`, in place and without allocating (used to record per-step
    /// diagnostics on the device).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `row` is out of range,
    /// [`crate::Error::ShapeMismatch`] if the element counts differ.
    fn copy_into_row(&self, dst: &mut Self::Tensor, row: usize, src: &Self::Tensor) -> Result<()>;

    /// Rows `start .. start + len` as a new tensor.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if the range is out of bounds.
    fn slice_rows(&self, t: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor>;

    /// Concatenation along the batch axis.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the per-sample shapes differ,
    /// [`crate::Error::InvalidArgument`] for an empty list.
    fn concat_rows(&self, parts: &[&Self::Tensor]) -> Result<Self::Tensor>;

    /// One fused Langevin update of a block `s` given its full gradient `g`
    /// (already including temperature and prior terms), in place:
    ///
    /// 1. `n_b = ‖g_b‖₂` for every sample `b`, written to `norms` (`[B]`);
    /// 2. if `p.clip = Some(c)`: `g_b ← g_b · c / max(n_b, c)` (exactly
    ///    `tf.clip_by_norm`'s form; `g` is modified);
    /// 3. `s ← s − p.step · g + p.noise_scale · ξ` where `ξ = noise` (or no noise term
    ///    when `noise` is `None`).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on inconsistent shapes.
    fn langevin_update(
        &self,
        s: &mut Self::Tensor,
        g: &mut Self::Tensor,
        noise: Option<&Self::Tensor>,
        p: LangevinUpdate,
        norms: &mut Self::Tensor,
    ) -> Result<()>;

    /// One fused Keras/TF `ApplyAdam` step on one tensor, in place:
    /// `m += (g − m)(1 − β₁)`, `v += (g² − v)(1 − β₂)`, `p −= alpha · m / (sqrt(v) + eps)`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on inconsistent shapes.
    fn adam_update(
        &self,
        p: &mut Self::Tensor,
        g: &Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        h: AdamStep,
    ) -> Result<()>;

    /// Moving-average update `ema ← ema − one_minus_decay · (ema − p)` (tfa
    /// `MovingAverage` form).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] on inconsistent shapes.
    fn ema_update(
        &self,
        ema: &mut Self::Tensor,
        p: &Self::Tensor,
        one_minus_decay: f32,
    ) -> Result<()>;

    /// Clips a whole tensor to L2 norm at most `max_norm`: `g ← g · c / max(‖g‖, c)`
    /// (Keras `clipnorm` per tensor). Returns the norm before clipping.
    ///
    /// # Errors
    /// A device error.
    fn clip_by_norm(&self, g: &mut Self::Tensor, max_norm: f32) -> Result<f32> {
        let n = self.sq_norm(g)?.sqrt() as f32;
        if n > max_norm {
            self.scale(g, max_norm / n)?;
        }
        Ok(n)
    }
}

/// Shape helpers shared by backends and algorithms.
pub mod shape {
    /// Number of elements of a shape.
    pub fn numel(shape: &[usize]) -> usize {
        shape.iter().product()
    }

    /// Elements per row (per sample): the product of all but the first axis.
    pub fn row_len(shape: &[usize]) -> usize {
        shape.iter().skip(1).product()
    }

    /// `[batch] ++ sample_shape`.
    pub fn batched(batch: usize, sample_shape: &[usize]) -> Vec<usize> {
        let mut s = Vec::with_capacity(sample_shape.len() + 1);
        s.push(batch);
        s.extend_from_slice(sample_shape);
        s
    }
}
