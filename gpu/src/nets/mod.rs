//! The built-in networks on the tch backend: [`TchEnergy`] (MLP and SN-GAN
//! EBM 32/64/128) and [`TchGenerator`] (MLP, SN-GAN generator 32/64/128,
//! `GenDecoder32`), built from the core's architecture descriptions so that
//! parameter names, shapes and initial values are those of every other backend.
//!
//! Gradients come from libtorch's autograd, one graph per call: the input (or
//! per-call `detach()`ed aliases of the parameters) is marked
//! `requires_grad`, the forward pass is recorded, and `torch.autograd.grad`
//! (tch's `run_backward`, without `keep_graph`) returns exactly the gradients
//! asked for, which are then detached results; nothing of the graph outlives the
//! call and the stored parameters never require gradients. Evaluations that
//! need no gradient run under `no_grad`.

mod layers;
mod mlp;
mod sngan;

use hatebm_core::backend::shape::batched;
use hatebm_core::model::{Energy, Generator};
use hatebm_core::nets::BuildNets;
use hatebm_core::nets::arch::{EnergyArch, GeneratorArch};
use hatebm_core::params::{Grads, ParamSet};
use hatebm_core::{Backend, Error, Result};
use tch::{Kind, Tensor};

use crate::TchBackend;
use crate::tensor::{TchResultExt, TchTensor};
use layers::Bound;

/// The network-specific part of an energy.
enum EnergyBody {
    Mlp(mlp::Mlp),
    Sngan(sngan::SnganEbm),
}

/// The network-specific part of a generator.
enum GenBody {
    Mlp(mlp::Mlp),
    Conv(sngan::ConvGen),
}

/// A built-in energy network on the tch backend.
pub struct TchEnergy {
    arch: EnergyArch,
    sample_shape: Vec<usize>,
    body: EnergyBody,
    params: ParamSet<TchBackend>,
    be: TchBackend,
}

impl std::fmt::Debug for TchEnergy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TchEnergy")
            .field("arch", &self.arch)
            .field("device", self.be.device())
            .finish_non_exhaustive()
    }
}

/// A built-in generator network on the tch backend.
pub struct TchGenerator {
    arch: GeneratorArch,
    latent_shape: Vec<usize>,
    output_shape: Vec<usize>,
    body: GenBody,
    bn_training: bool,
    params: ParamSet<TchBackend>,
    be: TchBackend,
}

impl std::fmt::Debug for TchGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TchGenerator")
            .field("arch", &self.arch)
            .field("device", self.be.device())
            .field("bn_training", &self.bn_training)
            .finish_non_exhaustive()
    }
}

/// Checks a network input: shape `[B, ...sample]` with `B ≥ 1`; returns `B`.
fn check_input(what: &str, x: &TchTensor, sample: &[usize]) -> Result<usize> {
    let s = x.shape();
    if s.len() != sample.len() + 1 || s[1..] != *sample || s[0] == 0 {
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

/// A fresh alias of `x` that records gradients.
fn tracked_input(x: &TchTensor) -> Result<Tensor> {
    x.inner.f_detach().tch()?.f_set_requires_grad(true).tch()
}

/// A detached, contiguous result of a pass.
fn finish(t: &Tensor) -> Result<TchTensor> {
    Ok(TchTensor::wrap(t.f_detach().tch()?.f_contiguous().tch()?))
}

/// `d(Σ root)/d inputs` (one backward pass, graph freed afterwards).
fn grads_of(root: &Tensor, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    Tensor::f_run_backward(&[root], inputs, false, false).tch()
}

/// Adds the gradients of the tracked parameters of `bound` into `grads`.
fn accumulate(bound: &Bound, gs: Vec<Tensor>, grads: &mut Grads<TchBackend>) -> Result<()> {
    if grads.tensors.len() != bound.t.len() {
        return Err(Error::InvalidArgument(
            "gradient set does not match the network".into(),
        ));
    }
    for (&i, g) in bound.tracked.iter().zip(gs) {
        let slot = grads.tensors[i].as_mut().ok_or_else(|| {
            Error::InvalidArgument("gradient slot missing for a trainable parameter".into())
        })?;
        if slot.inner.size() != g.size() {
            return Err(Error::InvalidArgument(
                "gradient set does not match the network".into(),
            ));
        }
        slot.inner.f_add_(&g).done()?;
    }
    Ok(())
}

/// Runs `f` with gradient recording on (whatever the caller's mode).
fn with_grad<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    tch::with_grad(f)
}

impl TchEnergy {
    /// Builds the network on `be` with Glorot-uniform weights and zero biases
    /// from `seed` (bit-identical to the CPU backend's initial weights).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid architecture; backend errors.
    pub fn new(be: &TchBackend, arch: &EnergyArch, seed: u64) -> Result<Self> {
        let params = ParamSet::init(be, &arch.param_specs()?, seed)?;
        let body = match arch {
            EnergyArch::Mlp { dims } => {
                EnergyBody::Mlp(mlp::Mlp::new(dims.len() - 1, &params, *be.device())?)
            }
            EnergyArch::Sngan { .. } => EnergyBody::Sngan(sngan::SnganEbm::new(arch, &params)?),
        };
        Ok(TchEnergy {
            arch: arch.clone(),
            sample_shape: arch.sample_shape(),
            body,
            params,
            be: be.clone(),
        })
    }

    /// U(x) per sample, `[B]` (recorded if any input requires gradients).
    fn forward(&self, p: &Bound, x: &Tensor) -> Result<Tensor> {
        match &self.body {
            EnergyBody::Mlp(m) => m.forward(p, x)?.f_squeeze_dim(1).tch(),
            EnergyBody::Sngan(s) => s.forward(p, x),
        }
    }
}

impl Energy<TchBackend> for TchEnergy {
    fn describe(&self) -> String {
        self.arch.describe()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    fn energy(&self, x: &TchTensor) -> Result<TchTensor> {
        check_input("energy input", x, &self.sample_shape)?;
        let _ng = tch::no_grad_guard();
        let p = Bound::new(&self.params, false)?;
        finish(&self.forward(&p, &x.inner)?)
    }

    fn energy_grad_x(&self, x: &TchTensor) -> Result<(TchTensor, TchTensor)> {
        check_input("energy input", x, &self.sample_shape)?;
        with_grad(|| {
            let p = Bound::new(&self.params, false)?;
            let xin = tracked_input(x)?;
            let e = self.forward(&p, &xin)?;
            let mut g = grads_of(&e, &[&xin])?;
            let gx = g
                .pop()
                .ok_or_else(|| Error::Backend("autograd: no gradient".into()))?;
            Ok((finish(&e)?, finish(&gx)?))
        })
    }

    fn energy_grad_params(
        &self,
        x: &TchTensor,
        weights: &[f32],
        grads: &mut Grads<TchBackend>,
    ) -> Result<TchTensor> {
        let batch = check_input("energy input", x, &self.sample_shape)?;
        if weights.len() != batch {
            return Err(Error::shape(
                "energy sample weights",
                &[batch],
                &[weights.len()],
            ));
        }
        let w = self.be.from_host(weights, &[batch])?;
        with_grad(|| {
            let p = Bound::new(&self.params, true)?;
            let e = self.forward(&p, &x.inner)?;
            // d(Σ_b w_b U_b)/dθ: the cotangent of U is exactly w.
            let root = e.f_mul(&w.inner).tch()?;
            let gs = grads_of(&root, &p.tracked_tensors())?;
            let _ng = tch::no_grad_guard();
            accumulate(&p, gs, grads)?;
            finish(&e)
        })
    }

    fn params(&self) -> &ParamSet<TchBackend> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<TchBackend> {
        &mut self.params
    }
}

impl TchGenerator {
    /// Builds the network on `be` (Glorot-uniform weights, zero biases, BN
    /// identity statistics) from `seed`, bit-identical to the CPU backend's.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid architecture; backend errors.
    pub fn new(be: &TchBackend, arch: &GeneratorArch, seed: u64) -> Result<Self> {
        let params = ParamSet::init(be, &arch.param_specs()?, seed)?;
        let body = match arch {
            GeneratorArch::Mlp { dims } => {
                GenBody::Mlp(mlp::Mlp::new(dims.len() - 1, &params, *be.device())?)
            }
            GeneratorArch::Sngan { .. } | GeneratorArch::Decoder32 { .. } => {
                GenBody::Conv(sngan::ConvGen::new(arch, &params)?)
            }
        };
        Ok(TchGenerator {
            arch: arch.clone(),
            latent_shape: arch.latent_shape(),
            output_shape: arch.output_shape(),
            body,
            bn_training: false,
            params,
            be: be.clone(),
        })
    }

    fn forward_t(&self, p: &Bound, z: &Tensor) -> Result<Tensor> {
        match &self.body {
            GenBody::Mlp(m) => m.forward(p, z),
            GenBody::Conv(c) => c.forward(p, z, self.bn_training),
        }
    }

    fn check_cot(&self, cot: &TchTensor, batch: usize) -> Result<()> {
        let want = batched(batch, &self.output_shape);
        if cot.shape() != want {
            return Err(Error::shape("generator cotangent", &want, &cot.shape()));
        }
        Ok(())
    }
}

impl Generator<TchBackend> for TchGenerator {
    fn describe(&self) -> String {
        self.arch.describe()
    }

    fn latent_shape(&self) -> &[usize] {
        &self.latent_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&self, z: &TchTensor) -> Result<TchTensor> {
        check_input("generator latent", z, &self.latent_shape)?;
        let _ng = tch::no_grad_guard();
        let p = Bound::new(&self.params, false)?;
        finish(&self.forward_t(&p, &z.inner)?)
    }

    fn vjp_latent(&self, z: &TchTensor, cot: &TchTensor) -> Result<TchTensor> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        self.check_cot(cot, batch)?;
        with_grad(|| {
            let p = Bound::new(&self.params, false)?;
            let zin = tracked_input(z)?;
            let y = self.forward_t(&p, &zin)?;
            let root = y.f_mul(&cot.inner).tch()?;
            let mut g = grads_of(&root, &[&zin])?;
            let dz = g
                .pop()
                .ok_or_else(|| Error::Backend("autograd: no gradient".into()))?;
            finish(&dz)
        })
    }

    fn vjp_params(
        &self,
        z: &TchTensor,
        cot: &TchTensor,
        grads: &mut Grads<TchBackend>,
    ) -> Result<()> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        self.check_cot(cot, batch)?;
        with_grad(|| {
            let p = Bound::new(&self.params, true)?;
            let y = self.forward_t(&p, &z.inner)?;
            let root = y.f_mul(&cot.inner).tch()?;
            let gs = grads_of(&root, &p.tracked_tensors())?;
            let _ng = tch::no_grad_guard();
            accumulate(&p, gs, grads)
        })
    }

    /// One forward pass: the loss `factor · mean((G(z) − x)²)` is formed from the
    /// recorded output (float64 sum of squares on the device, one host copy),
    /// and its cotangent `(2·factor/N) · (G(z) − x)` (float32, as the CPU
    /// backend rounds it) is pulled back through the same graph.
    fn mse_grad_params(
        &self,
        _backend: &TchBackend,
        z: &TchTensor,
        x: &TchTensor,
        factor: f32,
        grads: &mut Grads<TchBackend>,
    ) -> Result<f64> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        self.check_cot(x, batch)?;
        with_grad(|| {
            let p = Bound::new(&self.params, true)?;
            let y = self.forward_t(&p, &z.inner)?;
            let (loss, cot) = {
                let _ng = tch::no_grad_guard();
                let d = y.f_detach().tch()?.f_sub(&x.inner).tch()?;
                let n = d.numel().max(1) as f64;
                let ss = d
                    .f_to_kind(Kind::Double)
                    .tch()?
                    .f_square_()
                    .tch()?
                    .f_sum(Kind::Double)
                    .tch()?
                    .f_double_value(&[])
                    .tch()?;
                let scale = (2.0 * f64::from(factor) / n) as f32;
                let cot = d.f_mul_scalar(f64::from(scale)).tch()?;
                (f64::from(factor) * ss / n, cot)
            };
            let root = y.f_mul(&cot).tch()?;
            let gs = grads_of(&root, &p.tracked_tensors())?;
            let _ng = tch::no_grad_guard();
            accumulate(&p, gs, grads)?;
            Ok(loss)
        })
    }

    fn bn_training(&self) -> bool {
        self.bn_training
    }

    fn set_bn_training(&mut self, on: bool) -> Result<()> {
        if on && matches!(self.body, GenBody::Mlp(_)) {
            return Err(Error::InvalidArgument(format!(
                "{} has no batch-norm training mode",
                self.describe()
            )));
        }
        self.bn_training = on;
        Ok(())
    }

    fn params(&self) -> &ParamSet<TchBackend> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<TchBackend> {
        &mut self.params
    }
}

impl BuildNets for TchBackend {
    fn build_energy(&self, arch: &EnergyArch, seed: u64) -> Result<Box<dyn Energy<TchBackend>>> {
        Ok(Box::new(TchEnergy::new(self, arch, seed)?))
    }

    fn build_generator(
        &self,
        arch: &GeneratorArch,
        seed: u64,
    ) -> Result<Box<dyn Generator<TchBackend>>> {
        Ok(Box::new(TchGenerator::new(self, arch, seed)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hatebm_core::noise::{NoiseKey, Stream};

    fn input(be: &TchBackend, shape: &[usize], seed: u64) -> TchTensor {
        let mut t = be.zeros(shape).unwrap();
        be.fill_normal(&mut t, NoiseKey::new(seed, Stream::User, [0, 0]))
            .unwrap();
        t
    }

    fn host(be: &TchBackend, t: &TchTensor) -> Vec<f32> {
        be.to_host(t).unwrap()
    }

    /// One network evaluated from several threads at once (`Energy: Sync`)
    /// gives the single-threaded results.
    #[test]
    fn concurrent_evaluations_agree() {
        let be = TchBackend::cpu();
        let arch = EnergyArch::Sngan {
            res: 32,
            nch: 1,
            ngf: 8,
        };
        let net = be.build_energy(&arch, 1).unwrap();
        let x = input(&be, &[2, 1, 32, 32], 3);
        let (e0, g0) = net.energy_grad_x(&x).unwrap();
        let (e0, g0) = (host(&be, &e0), host(&be, &g0));
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..3 {
                        let (e, g) = net.energy_grad_x(&x).unwrap();
                        assert_eq!(host(&be, &e), e0);
                        assert_eq!(host(&be, &g), g0);
                    }
                });
            }
        });
    }

    /// Parameter gradients accumulate into `Grads`, are weighted per sample,
    /// and the stored parameters never require gradients.
    #[test]
    fn param_grads_accumulate_and_weights_apply() {
        let be = TchBackend::cpu();
        let net = be
            .build_energy(
                &EnergyArch::Mlp {
                    dims: vec![3, 8, 1],
                },
                0,
            )
            .unwrap();
        let x = input(&be, &[4, 3], 1);
        let mut once = Grads::zeros_like(&be, net.params()).unwrap();
        net.energy_grad_params(&x, &[1.0, -2.0, 0.5, 0.0], &mut once)
            .unwrap();
        let mut twice = Grads::zeros_like(&be, net.params()).unwrap();
        for _ in 0..2 {
            net.energy_grad_params(&x, &[1.0, -2.0, 0.5, 0.0], &mut twice)
                .unwrap();
        }
        for (a, b) in once.tensors.iter().zip(&twice.tensors) {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            let doubled: Vec<f32> = host(&be, a).iter().map(|v| 2.0 * v).collect();
            assert_eq!(host(&be, b), doubled);
        }
        assert!(net.params().iter().all(|p| !p.value.inner.requires_grad()));
        assert!(net.energy_grad_params(&x, &[1.0], &mut once).is_err());
        let bad = input(&be, &[4, 2], 1);
        assert!(matches!(net.energy(&bad), Err(Error::ShapeMismatch { .. })));
    }

    /// The one-pass `mse_grad_params` equals the trait's default (forward, then
    /// `vjp_params` with the loss's cotangent).
    #[test]
    fn mse_matches_default_implementation() {
        let be = TchBackend::cpu();
        let arch = GeneratorArch::Sngan {
            res: 32,
            nz: 8,
            ngf: 8,
            nch: 1,
            out_factor: 2.0,
        };
        let net = be.build_generator(&arch, 2).unwrap();
        let z = input(&be, &[3, 8], 4);
        let x = input(&be, &[3, 1, 32, 32], 5);
        let mut g1 = Grads::zeros_like(&be, net.params()).unwrap();
        let l1 = net.mse_grad_params(&be, &z, &x, 10.0, &mut g1).unwrap();
        // The default implementation of the trait, spelled out.
        let y = net.forward(&z).unwrap();
        let mut diff = be.sub(&y, &x).unwrap();
        let n = (3 * 32 * 32) as f64;
        let l2 = 10.0 * be.sq_norm(&diff).unwrap() / n;
        be.scale(&mut diff, (2.0 * 10.0 / n) as f32).unwrap();
        let mut g2 = Grads::zeros_like(&be, net.params()).unwrap();
        net.vjp_params(&z, &diff, &mut g2).unwrap();
        assert!((l1 - l2).abs() <= 1e-12 * l2.abs(), "{l1} vs {l2}");
        for (a, b) in g1.tensors.iter().zip(&g2.tensors) {
            if let (Some(a), Some(b)) = (a, b) {
                assert_eq!(host(&be, a), host(&be, b));
            }
        }
    }
}
