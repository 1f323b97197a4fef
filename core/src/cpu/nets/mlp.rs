//! MLP energy and MLP generator on the CPU backend.
//!
//! Both are the same stack `fc1 → LeakyReLU(0.2) → … → fcL` (no activation
//! after the last layer); the energy squeezes its `[B, 1]` output to `[B]`, the
//! generator's output is linear.

use super::common::{BufPool, check_input, ensure_shape, grad_pair, idx, pv};
use super::mlp_rows::{self, Layer};
use crate::cpu::ops;
use crate::cpu::{CpuBackend, CpuTensor};
use crate::model::{Energy, Generator};
use crate::nets::arch::{EnergyArch, GeneratorArch, LEAKY_SLOPE};
use crate::params::{Grads, ParamSet, ParamSpec};
use crate::{Error, Result};

/// The layer stack shared by the MLP energy and generator.
struct MlpStack {
    dims: Vec<usize>,
    /// (weight, bias) parameter indices per layer.
    layers: Vec<(usize, usize)>,
    params: ParamSet<CpuBackend>,
    pool: BufPool,
}

/// Saved activations: `inputs[i]` is layer i's input, `pre[i]` its output
/// before the activation (for i < L − 1).
struct Tape {
    inputs: Vec<Vec<f32>>,
    pre: Vec<Vec<f32>>,
}

impl MlpStack {
    fn new(dims: &[usize], specs: &[ParamSpec], seed: u64) -> Result<Self> {
        let params = ParamSet::init(&CpuBackend::new(), specs, seed)?;
        let layers = (1..dims.len())
            .map(|i| {
                Ok((
                    idx(&params, &format!("fc{i}.weight"))?,
                    idx(&params, &format!("fc{i}.bias"))?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(MlpStack {
            dims: dims.to_vec(),
            layers,
            params,
            pool: BufPool::default(),
        })
    }

    /// Forward; returns the output `[B, d_L]` and the tape.
    fn forward(&self, x: &[f32], batch: usize) -> (Vec<f32>, Tape) {
        let n = self.layers.len();
        let mut tape = Tape {
            inputs: Vec::with_capacity(n),
            pre: Vec::with_capacity(n),
        };
        let mut cur = self.pool.take(x.len());
        cur.copy_from_slice(x);
        for (i, &(w, b)) in self.layers.iter().enumerate() {
            let (din, dout) = (self.dims[i], self.dims[i + 1]);
            let mut a = self.pool.take(batch * dout);
            ops::linear_forward(
                batch,
                din,
                dout,
                &cur,
                pv(&self.params, w),
                Some(pv(&self.params, b)),
                &mut a,
            );
            tape.inputs.push(cur);
            if i + 1 < n {
                let mut h = self.pool.take(a.len());
                ops::leaky_relu_forward(LEAKY_SLOPE, &a, &mut h);
                tape.pre.push(a);
                cur = h;
            } else {
                cur = a;
            }
        }
        (cur, tape)
    }

    /// Backward from `dy` (`[B, d_L]`); returns the input gradient if asked.
    fn backward(
        &self,
        batch: usize,
        tape: Tape,
        dy: &[f32],
        want_dx: bool,
        mut grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let n = self.layers.len();
        let mut d = self.pool.take(dy.len());
        d.copy_from_slice(dy);
        let Tape { inputs, mut pre } = tape;
        let mut result = None;
        for (i, input) in inputs.into_iter().enumerate().rev() {
            let (w, b) = self.layers[i];
            let (din, dout) = (self.dims[i], self.dims[i + 1]);
            if let Some(gr) = grads.as_deref_mut() {
                let (dw, db) = grad_pair(gr, w, b)?;
                ops::linear_backward_params(batch, din, dout, &input, &d, dw, Some(db));
            }
            if i > 0 || want_dx {
                let mut dx = self.pool.take(batch * din);
                ops::linear_backward_input(
                    batch,
                    din,
                    dout,
                    &d,
                    pv(&self.params, w),
                    &mut dx,
                    false,
                );
                if i > 0 {
                    let a = pre
                        .pop()
                        .expect("tape holds one pre-activation per hidden layer");
                    let mut da = self.pool.take(dx.len());
                    ops::leaky_relu_backward(LEAKY_SLOPE, &a, &dx, &mut da, false);
                    self.pool.give(a);
                    self.pool.give(dx);
                    self.pool.give(std::mem::replace(&mut d, da));
                } else {
                    result = Some(dx);
                }
            }
            self.pool.give(input);
        }
        debug_assert!(pre.is_empty() || n == 0);
        self.pool.give(d);
        Ok(result)
    }

    fn release(&self, tape: Tape) {
        for v in tape.inputs.into_iter().chain(tape.pre) {
            self.pool.give(v);
        }
    }
}

/// The MLP energy on the CPU backend.
pub struct CpuMlpEnergy {
    arch: EnergyArch,
    sample_shape: Vec<usize>,
    stack: MlpStack,
}

impl std::fmt::Debug for CpuMlpEnergy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuMlpEnergy")
            .field("arch", &self.arch)
            .finish_non_exhaustive()
    }
}

impl CpuMlpEnergy {
    /// Builds the network with Glorot-uniform weights and zero biases from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid or non-MLP architecture.
    pub fn new(arch: &EnergyArch, seed: u64) -> Result<Self> {
        let EnergyArch::Mlp { dims } = arch else {
            return Err(Error::Config(format!(
                "{} is not an MLP energy",
                arch.describe()
            )));
        };
        Ok(CpuMlpEnergy {
            sample_shape: arch.sample_shape(),
            stack: MlpStack::new(dims, &arch.param_specs()?, seed)?,
            arch: arch.clone(),
        })
    }

    /// Calls `f` with the layers as the row-block kernels of `mlp_rows` take them
    /// (on the stack: no allocation per Langevin step).
    fn with_rows_layers<'s, R>(&'s self, f: impl FnOnce(&[Layer<'s>]) -> R) -> R {
        let st = &self.stack;
        let layer = |i: usize| {
            let (w, b) = st.layers[i];
            Layer {
                w: pv(&st.params, w),
                b: pv(&st.params, b),
                din: st.dims[i],
                dout: st.dims[i + 1],
            }
        };
        mlp_rows::with_array(st.layers.len(), layer, || Layer::EMPTY, f)
    }
}

impl Energy<CpuBackend> for CpuMlpEnergy {
    fn describe(&self) -> String {
        self.arch.describe()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// By the row-block forward of `mlp_rows`, so the energies are
    /// bit-identical to those of `energy_grad_x`.
    fn energy(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let batch = check_input("energy input", x, &self.sample_shape)?;
        let mut e = CpuTensor::zeros(&[batch]);
        self.with_rows_layers(|layers| {
            mlp_rows::energy(layers, LEAKY_SLOPE, x.as_slice(), e.as_slice_mut())
        });
        Ok(e)
    }

    fn energy_grad_x(&self, x: &CpuTensor) -> Result<(CpuTensor, CpuTensor)> {
        let (mut e, mut g) = (CpuTensor::zeros(&[0]), CpuTensor::zeros(&[0]));
        self.energy_grad_x_into(x, &mut e, &mut g)?;
        Ok((e, g))
    }

    fn energy_grad_x_into(
        &self,
        x: &CpuTensor,
        e: &mut CpuTensor,
        g: &mut CpuTensor,
    ) -> Result<()> {
        let batch = check_input("energy input", x, &self.sample_shape)?;
        ensure_shape(e, &[batch]);
        ensure_shape(g, x.shape());
        self.with_rows_layers(|layers| {
            mlp_rows::energy_grad_x(
                layers,
                LEAKY_SLOPE,
                x.as_slice(),
                e.as_slice_mut(),
                g.as_slice_mut(),
            )
        });
        Ok(())
    }

    fn energy_grad_params(
        &self,
        x: &CpuTensor,
        weights: &[f32],
        grads: &mut Grads<CpuBackend>,
    ) -> Result<CpuTensor> {
        let batch = check_input("energy input", x, &self.sample_shape)?;
        if weights.len() != batch {
            return Err(Error::shape(
                "energy sample weights",
                &[batch],
                &[weights.len()],
            ));
        }
        let (e, tape) = self.stack.forward(x.as_slice(), batch);
        self.stack
            .backward(batch, tape, weights, false, Some(grads))?;
        CpuTensor::from_vec(e, &[batch])
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.stack.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.stack.params
    }
}

/// The MLP generator on the CPU backend.
pub struct CpuMlpGenerator {
    arch: GeneratorArch,
    latent_shape: Vec<usize>,
    output_shape: Vec<usize>,
    stack: MlpStack,
}

impl std::fmt::Debug for CpuMlpGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuMlpGenerator")
            .field("arch", &self.arch)
            .finish_non_exhaustive()
    }
}

impl CpuMlpGenerator {
    /// Builds the network with Glorot-uniform weights and zero biases from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid or non-MLP architecture.
    pub fn new(arch: &GeneratorArch, seed: u64) -> Result<Self> {
        let GeneratorArch::Mlp { dims } = arch else {
            return Err(Error::Config(format!(
                "{} is not an MLP generator",
                arch.describe()
            )));
        };
        Ok(CpuMlpGenerator {
            latent_shape: arch.latent_shape(),
            output_shape: arch.output_shape(),
            stack: MlpStack::new(dims, &arch.param_specs()?, seed)?,
            arch: arch.clone(),
        })
    }

    fn check_cot(&self, cot: &CpuTensor, batch: usize) -> Result<()> {
        super::common::check_rows("generator cotangent", cot, batch, &self.output_shape)
    }
}

impl Generator<CpuBackend> for CpuMlpGenerator {
    fn describe(&self) -> String {
        self.arch.describe()
    }

    fn latent_shape(&self) -> &[usize] {
        &self.latent_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&self, z: &CpuTensor) -> Result<CpuTensor> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        let (y, tape) = self.stack.forward(z.as_slice(), batch);
        self.stack.release(tape);
        CpuTensor::from_vec(
            y,
            &crate::backend::shape::batched(batch, &self.output_shape),
        )
    }

    fn vjp_latent(&self, z: &CpuTensor, cot: &CpuTensor) -> Result<CpuTensor> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        self.check_cot(cot, batch)?;
        let (y, tape) = self.stack.forward(z.as_slice(), batch);
        self.stack.pool.give(y);
        let dz = self
            .stack
            .backward(batch, tape, cot.as_slice(), true, None)?
            .unwrap_or_default();
        CpuTensor::from_vec(dz, z.shape())
    }

    fn vjp_params(
        &self,
        z: &CpuTensor,
        cot: &CpuTensor,
        grads: &mut Grads<CpuBackend>,
    ) -> Result<()> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        self.check_cot(cot, batch)?;
        let (y, tape) = self.stack.forward(z.as_slice(), batch);
        self.stack.pool.give(y);
        self.stack
            .backward(batch, tape, cot.as_slice(), false, Some(grads))?;
        Ok(())
    }

    fn mse_grad_params(
        &self,
        _backend: &CpuBackend,
        z: &CpuTensor,
        x: &CpuTensor,
        factor: f32,
        grads: &mut Grads<CpuBackend>,
    ) -> Result<f64> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        self.check_cot(x, batch)?;
        let (y, tape) = self.stack.forward(z.as_slice(), batch);
        let (loss, cot) = super::common::mse_cotangent(&self.stack.pool, &y, x.as_slice(), factor);
        self.stack.pool.give(y);
        self.stack.backward(batch, tape, &cot, false, Some(grads))?;
        self.stack.pool.give(cot);
        Ok(loss)
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.stack.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.stack.params
    }
}
