//! The model traits: an [`Energy`] H(x; θ) and a [`Generator`] G(z; φ).
//!
//! Both are object-safe (`Box<dyn Energy<B>>` works) and take `&self` for every
//! evaluation, so a sampler can evaluate one model from several places; a
//! backend implementation keeps any scratch memory behind interior mutability.
//! Three kinds of implementors exist:
//!
//! * the built-in networks of each backend (analytic backward passes on the CPU
//!   backend, autograd on the tch backend);
//! * user models written in Rust;
//! * user models written in C, through callbacks on host buffers (see the FFI
//!   crate): they usually provide only [`Energy::energy`] and
//!   [`Energy::energy_grad_x`] (enough for sampling), and return an error from
//!   the parameter-gradient methods.
//!
//! Gradients w.r.t. parameters are *accumulated* into a [`Grads`] aligned with
//! [`Energy::params`] / [`Generator::params`], so contrastive losses over
//! several batches add up without extra buffers.

use crate::backend::Backend;
use crate::params::{Grads, ParamSet};
use crate::{Error, Result};

/// An energy function U(x) = H(x; θ), one scalar per sample (lower = more likely).
pub trait Energy<B: Backend>: Send + Sync {
    /// A short human-readable description, e.g. `EBMSNGAN32(nch=3, ngf=16)`.
    fn describe(&self) -> String;

    /// The shape of one input sample, e.g. `[3, 32, 32]` or `[2]`.
    fn sample_shape(&self) -> &[usize];

    /// U(x) per sample: `x [B, ...sample_shape] → [B]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a wrong input shape; backend or callback errors.
    fn energy(&self, x: &B::Tensor) -> Result<B::Tensor>;

    /// U(x) per sample and `∂(Σ_b U(x_b))/∂x` (the per-sample input gradients),
    /// in one pass.
    ///
    /// # Errors
    /// As [`Energy::energy`].
    fn energy_grad_x(&self, x: &B::Tensor) -> Result<(B::Tensor, B::Tensor)>;

    /// [`Energy::energy_grad_x`] into caller-owned tensors (`e` of shape `[B]`,
    /// `g` shaped like `x`), so a sampler's hot loop need not allocate. The
    /// default calls [`Energy::energy_grad_x`] and moves the results in;
    /// networks override it to write into the given buffers.
    ///
    /// # Errors
    /// As [`Energy::energy_grad_x`].
    fn energy_grad_x_into(
        &self,
        x: &B::Tensor,
        e: &mut B::Tensor,
        g: &mut B::Tensor,
    ) -> Result<()> {
        let (a, b) = self.energy_grad_x(x)?;
        *e = a;
        *g = b;
        Ok(())
    }

    /// Accumulates `Σ_b w_b · ∂U(x_b)/∂θ` into `grads` (aligned with
    /// [`Energy::params`]) and returns U(x) per sample. `weights` has one entry
    /// per sample (e.g. `+1/(B·T)` for data and `−1/(B·T)` for samples).
    ///
    /// # Errors
    /// As [`Energy::energy`]; [`Error::InvalidArgument`] if the model has no
    /// trainable parameters (e.g. a C callback energy) or `weights` has the wrong
    /// length.
    fn energy_grad_params(
        &self,
        x: &B::Tensor,
        weights: &[f32],
        grads: &mut Grads<B>,
    ) -> Result<B::Tensor>;

    /// The parameters (weights and buffers) in their canonical order.
    fn params(&self) -> &ParamSet<B>;

    /// The parameters, mutably (optimisers, EMA swaps, loading).
    fn params_mut(&mut self) -> &mut ParamSet<B>;
}

/// A generator x = G(z; φ) mapping latents to samples.
pub trait Generator<B: Backend>: Send + Sync {
    /// A short human-readable description.
    fn describe(&self) -> String;

    /// The shape of one latent, e.g. `[128]` or `[1, 16, 16]`.
    fn latent_shape(&self) -> &[usize];

    /// The shape of one output sample, e.g. `[3, 32, 32]`.
    fn output_shape(&self) -> &[usize];

    /// G(z): `[B, ...latent_shape] → [B, ...output_shape]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a wrong latent shape; backend or callback errors.
    fn forward(&self, z: &B::Tensor) -> Result<B::Tensor>;

    /// The vector-Jacobian product w.r.t. the latent: `∂(Σ ⟨G(z), cot⟩)/∂z`.
    ///
    /// # Errors
    /// As [`Generator::forward`], plus a shape error if `cot` does not match G(z).
    fn vjp_latent(&self, z: &B::Tensor, cot: &B::Tensor) -> Result<B::Tensor>;

    /// Accumulates `∂(Σ ⟨G(z), cot⟩)/∂φ` into `grads` (aligned with
    /// [`Generator::params`]).
    ///
    /// # Errors
    /// As [`Generator::vjp_latent`]; [`Error::InvalidArgument`] for a model
    /// without trainable parameters.
    fn vjp_params(&self, z: &B::Tensor, cot: &B::Tensor, grads: &mut Grads<B>) -> Result<()>;

    /// The generator loss `factor · mean((G(z) − x)²)` (mean over all elements),
    /// accumulating its parameter gradient into `grads`; returns the loss.
    ///
    /// The default implementation runs [`Generator::forward`] then
    /// [`Generator::vjp_params`]; networks override it to reuse the forward pass.
    ///
    /// # Errors
    /// As [`Generator::vjp_params`].
    fn mse_grad_params(
        &self,
        backend: &B,
        z: &B::Tensor,
        x: &B::Tensor,
        factor: f32,
        grads: &mut Grads<B>,
    ) -> Result<f64> {
        let g = self.forward(z)?;
        let shape = backend.shape(&g);
        if backend.shape(x) != shape {
            return Err(Error::shape(
                "generator target x",
                &shape,
                &backend.shape(x),
            ));
        }
        let mut diff = backend.sub(&g, x)?;
        let n = crate::backend::shape::numel(&shape) as f64;
        let loss = f64::from(factor) * backend.sq_norm(&diff)? / n;
        backend.scale(&mut diff, (2.0 * f64::from(factor) / n) as f32)?;
        self.vjp_params(z, &diff, grads)?;
        Ok(loss)
    }

    /// Whether batch norm uses batch statistics (training mode). Default: no.
    fn bn_training(&self) -> bool {
        false
    }

    /// Switches batch norm between inference mode (running statistics, the
    /// Hat EBM default) and training mode (batch statistics; cooperative-learning
    /// baseline). Networks without batch norm ignore it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the model cannot switch.
    fn set_bn_training(&mut self, on: bool) -> Result<()> {
        if on {
            return Err(Error::InvalidArgument(format!(
                "{} has no batch-norm training mode",
                self.describe()
            )));
        }
        Ok(())
    }

    /// The parameters (weights and buffers) in their canonical order.
    fn params(&self) -> &ParamSet<B>;

    /// The parameters, mutably.
    fn params_mut(&mut self) -> &mut ParamSet<B>;
}
