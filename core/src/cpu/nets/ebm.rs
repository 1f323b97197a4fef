//! The SN-GAN EBM (no spectral norm) on the CPU backend, with analytic
//! backward passes to the input and to every parameter: the blocks of
//! [`super::ebm_blocks`] followed by the head `fc(global_avg_pool(relu(x)))`
//! (no bias).

use super::common::{BufPool, check_input, ensure_shape, grad_one, idx, pv};
use super::ebm_blocks::{BlockTape, EbmTrunk};
use crate::cpu::ops;
use crate::cpu::{CpuBackend, CpuTensor};
use crate::model::Energy;
use crate::nets::arch::EnergyArch;
use crate::params::{Grads, ParamSet};
use crate::{Error, Result};

/// The SN-GAN energy network on the CPU backend.
pub struct CpuSnganEnergy {
    arch: EnergyArch,
    sample_shape: Vec<usize>,
    trunk: EbmTrunk,
    fc: usize,
    params: ParamSet<CpuBackend>,
    pool: BufPool,
}

impl std::fmt::Debug for CpuSnganEnergy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuSnganEnergy")
            .field("arch", &self.arch)
            .finish_non_exhaustive()
    }
}

impl CpuSnganEnergy {
    /// Builds the network with Glorot-uniform weights and zero biases from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid or non-SN-GAN architecture.
    pub fn new(arch: &EnergyArch, seed: u64) -> Result<Self> {
        if !matches!(arch, EnergyArch::Sngan { .. }) {
            return Err(Error::Config(format!(
                "{} is not an SN-GAN energy",
                arch.describe()
            )));
        }
        let params = ParamSet::init(&CpuBackend::new(), &arch.param_specs()?, seed)?;
        let trunk = EbmTrunk::new(&params, arch.blocks()?)?;
        let fc = idx(&params, "fc.weight")?;
        Ok(CpuSnganEnergy {
            sample_shape: arch.sample_shape(),
            arch: arch.clone(),
            trunk,
            fc,
            params,
            pool: BufPool::default(),
        })
    }

    /// Forward pass; returns the per-sample energies, the block tapes and the
    /// trunk's output (the head's input).
    fn forward(&self, x: &[f32], batch: usize) -> (Vec<f32>, Vec<BlockTape>, Vec<f32>) {
        let mut input = self.pool.take(x.len());
        input.copy_from_slice(x);
        let (cur, tapes) = self.trunk.forward(&self.params, &self.pool, input, batch);
        let (c, s) = self.trunk.out_dims();
        let mut r = self.pool.take(cur.len());
        ops::relu_forward(&cur, &mut r);
        let mut g = self.pool.take(batch * c);
        ops::global_avg_pool_forward(batch, c, s * s, &r, &mut g);
        let mut e = vec![0.0f32; batch];
        ops::linear_forward(batch, c, 1, &g, pv(&self.params, self.fc), None, &mut e);
        self.pool.give(r);
        self.pool.give(g);
        (e, tapes, cur)
    }

    /// Backward pass from per-sample cotangents `cot` (`[B]`). Returns the input
    /// gradient if `want_dx`; accumulates parameter gradients if `grads` is given.
    fn backward(
        &self,
        batch: usize,
        tapes: Vec<BlockTape>,
        head_in: Vec<f32>,
        cot: &[f32],
        want_dx: bool,
        mut grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let (c, s) = self.trunk.out_dims();
        let mut dg = self.pool.take(batch * c);
        ops::linear_backward_input(batch, c, 1, cot, pv(&self.params, self.fc), &mut dg, false);
        if let Some(gr) = grads.as_deref_mut() {
            let mut r = self.pool.take(head_in.len());
            ops::relu_forward(&head_in, &mut r);
            let mut g = self.pool.take(batch * c);
            ops::global_avg_pool_forward(batch, c, s * s, &r, &mut g);
            ops::linear_backward_params(batch, c, 1, &g, cot, grad_one(gr, self.fc)?, None);
            self.pool.give(r);
            self.pool.give(g);
        }
        let mut dr = self.pool.take(head_in.len());
        ops::global_avg_pool_backward(batch, c, s * s, &dg, &mut dr, false);
        let mut dcur = self.pool.take(head_in.len());
        ops::relu_backward(&head_in, &dr, &mut dcur, false);
        self.pool.give(dg);
        self.pool.give(dr);
        self.pool.give(head_in);
        self.trunk
            .backward(&self.params, &self.pool, tapes, dcur, batch, want_dx, grads)
    }

    fn release(&self, tapes: Vec<BlockTape>, head_in: Vec<f32>) {
        EbmTrunk::release(&self.pool, tapes);
        self.pool.give(head_in);
    }
}

impl Energy<CpuBackend> for CpuSnganEnergy {
    fn describe(&self) -> String {
        self.arch.describe()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    fn energy(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let batch = check_input("energy input", x, &self.sample_shape)?;
        let (e, tapes, head_in) = self.forward(x.as_slice(), batch);
        self.release(tapes, head_in);
        CpuTensor::from_vec(e, &[batch])
    }

    fn energy_grad_x(&self, x: &CpuTensor) -> Result<(CpuTensor, CpuTensor)> {
        let batch = check_input("energy input", x, &self.sample_shape)?;
        let (e, tapes, head_in) = self.forward(x.as_slice(), batch);
        let ones = vec![1.0f32; batch];
        let dx = self
            .backward(batch, tapes, head_in, &ones, true, None)?
            .unwrap_or_default();
        Ok((
            CpuTensor::from_vec(e, &[batch])?,
            CpuTensor::from_vec(dx, x.shape())?,
        ))
    }

    fn energy_grad_x_into(
        &self,
        x: &CpuTensor,
        e: &mut CpuTensor,
        g: &mut CpuTensor,
    ) -> Result<()> {
        let batch = check_input("energy input", x, &self.sample_shape)?;
        let (ev, tapes, head_in) = self.forward(x.as_slice(), batch);
        let ones = vec![1.0f32; batch];
        let dx = self
            .backward(batch, tapes, head_in, &ones, true, None)?
            .unwrap_or_default();
        ensure_shape(e, &[batch]);
        ensure_shape(g, x.shape());
        e.as_slice_mut().copy_from_slice(&ev);
        g.as_slice_mut().copy_from_slice(&dx);
        self.pool.give(dx);
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
        let (e, tapes, head_in) = self.forward(x.as_slice(), batch);
        self.backward(batch, tapes, head_in, weights, false, Some(grads))?;
        CpuTensor::from_vec(e, &[batch])
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.params
    }
}
