//! Analytic test energies, generic over any [`Backend`]: their exact gradients
//! and stationary distributions are known, so sampler properties can be checked
//! against closed forms.
//!
//! Every energy here is a diagonal quadratic `U(x) = ½ Σ_i a_i x_i²` per sample
//! (gradient `a ⊙ x`), which covers
//! * a convex quadratic with random positive curvatures ([`DiagQuadratic::new`]);
//! * the isotropic Gaussian `‖x‖²/(2σ²)` ([`DiagQuadratic::gaussian`], `a = 1/σ²`);
//! * the zero energy ([`DiagQuadratic::zero`]), to isolate the residual prior;
//! * energies with huge gradients (large `a`), to exercise clipping.
//!
//! They only use [`Backend`] operations (host copies included), so they run on
//! every backend; speed is irrelevant for tests.

use hatebm_rs::backend::{Backend, shape};
use hatebm_rs::model::Energy;
use hatebm_rs::params::{Grads, ParamSet};
use hatebm_rs::{Error, Result};

/// `U(x) = ½ Σ_i a_i x_i²` for every sample `x` of shape `sample_shape`.
#[derive(Debug)]
pub struct DiagQuadratic<B: Backend> {
    be: B,
    curv: Vec<f32>,
    sample_shape: Vec<usize>,
    params: ParamSet<B>,
}

impl<B: Backend> DiagQuadratic<B> {
    /// A quadratic with curvatures `curv` (one per element of a sample, row-major).
    ///
    /// # Panics
    /// If `curv.len()` is not the number of elements of `sample_shape`.
    pub fn new(be: &B, sample_shape: &[usize], curv: Vec<f32>) -> Self {
        assert_eq!(
            curv.len(),
            shape::numel(sample_shape),
            "one curvature per sample element"
        );
        DiagQuadratic {
            be: be.clone(),
            curv,
            sample_shape: sample_shape.to_vec(),
            params: ParamSet::init(be, &[], 0).expect("empty parameter set"),
        }
    }

    /// The isotropic quadratic `(a/2)‖x‖²`.
    pub fn isotropic(be: &B, sample_shape: &[usize], a: f32) -> Self {
        Self::new(be, sample_shape, vec![a; shape::numel(sample_shape)])
    }

    /// The Gaussian energy `‖x‖²/(2σ²)` (curvature `1/σ²`, computed in f32).
    pub fn gaussian(be: &B, sample_shape: &[usize], sigma: f32) -> Self {
        Self::isotropic(be, sample_shape, 1.0 / (sigma * sigma))
    }

    /// The zero energy `U ≡ 0`.
    pub fn zero(be: &B, sample_shape: &[usize]) -> Self {
        Self::isotropic(be, sample_shape, 0.0)
    }

    /// The curvatures `a_i`.
    pub fn curvatures(&self) -> &[f32] {
        &self.curv
    }

    /// The largest curvature `λ_max`.
    pub fn lambda_max(&self) -> f32 {
        self.curv.iter().copied().fold(0.0, f32::max)
    }

    /// `U` of every row of host data `x` (`[B · D]`), accumulated in f64.
    pub fn energies_host(&self, x: &[f32]) -> Vec<f64> {
        x.chunks(self.curv.len())
            .map(|row| {
                row.iter()
                    .zip(&self.curv)
                    .map(|(&v, &a)| 0.5 * f64::from(a) * f64::from(v) * f64::from(v))
                    .sum()
            })
            .collect()
    }

    /// `∇U = a ⊙ x` of host data `x`, in f32 exactly as [`Energy::energy_grad_x`] computes it.
    pub fn grad_host(&self, x: &[f32]) -> Vec<f32> {
        x.chunks(self.curv.len())
            .flat_map(|row| row.iter().zip(&self.curv).map(|(&v, &a)| a * v))
            .collect()
    }

    fn check(&self, x: &B::Tensor) -> Result<usize> {
        let s = self.be.shape(x);
        let batch = s.first().copied().unwrap_or(0);
        let want = shape::batched(batch, &self.sample_shape);
        if s != want {
            return Err(Error::shape("quadratic energy input", &want, &s));
        }
        Ok(batch)
    }
}

impl<B: Backend> Energy<B> for DiagQuadratic<B> {
    fn describe(&self) -> String {
        format!("DiagQuadratic(dim={})", self.curv.len())
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    fn energy(&self, x: &B::Tensor) -> Result<B::Tensor> {
        let batch = self.check(x)?;
        let e: Vec<f32> = self
            .energies_host(&self.be.to_host(x)?)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        self.be.from_host(&e, &[batch])
    }

    fn energy_grad_x(&self, x: &B::Tensor) -> Result<(B::Tensor, B::Tensor)> {
        let batch = self.check(x)?;
        let host = self.be.to_host(x)?;
        let e: Vec<f32> = self
            .energies_host(&host)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let g = self.grad_host(&host);
        Ok((
            self.be.from_host(&e, &[batch])?,
            self.be.from_host(&g, &self.be.shape(x))?,
        ))
    }

    fn energy_grad_params(
        &self,
        _x: &B::Tensor,
        _weights: &[f32],
        _grads: &mut Grads<B>,
    ) -> Result<B::Tensor> {
        Err(Error::InvalidArgument(
            "an analytic test energy has no parameters".into(),
        ))
    }

    fn params(&self) -> &ParamSet<B> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<B> {
        &mut self.params
    }
}
