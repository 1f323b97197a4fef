//! The SN-GAN EBM (no spectral norm) on the CPU backend, with analytic
//! backward passes to the input and to every parameter.
//!
//! Block semantics (golden README, "Architectures"):
//! * stem (block 1): `h = conv2(relu(conv1(x)))`, pooled if downsampling;
//!   shortcut `conv_sc(pool(x))` (pool *before* the 1×1 conv);
//! * blocks 2..N: `h = conv2(relu(conv1(relu(x))))`, pooled if downsampling;
//!   shortcut `pool(conv_sc(x))`, or the identity;
//! * head: `fc(global_avg_pool(relu(x)))`, no bias.

use super::common::{
    BufPool, ConvIdx, add_into, check_input, conv_bwd, conv_fwd, conv_idx, grad_one, idx, pv,
};
use crate::backend::Backend;
use crate::cpu::ops::{self, Conv2dGeom};
use crate::cpu::{CpuBackend, CpuTensor};
use crate::model::Energy;
use crate::nets::arch::{EbmBlockSpec, EnergyArch};
use crate::params::{Grads, ParamSet};
use crate::{Error, Result};

struct Block {
    spec: EbmBlockSpec,
    conv1: ConvIdx,
    conv2: ConvIdx,
    sc: Option<ConvIdx>,
}

/// Saved activations of one block (all `[B, C, S, S]` row-major).
struct BlockTape {
    /// Block input.
    x: Vec<f32>,
    /// `relu(x)` (non-stem blocks; empty for the stem, whose conv1 reads `x`).
    r0: Vec<f32>,
    /// conv1 output (pre-activation).
    a1: Vec<f32>,
    /// `relu(a1)`.
    r1: Vec<f32>,
    /// Stem with downsampling: `pool(x)`, the shortcut conv's input.
    p: Vec<f32>,
}

/// The SN-GAN energy network on the CPU backend.
pub struct CpuSnganEnergy {
    arch: EnergyArch,
    sample_shape: Vec<usize>,
    blocks: Vec<Block>,
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
        let blocks = arch
            .blocks()?
            .into_iter()
            .map(|spec| {
                Ok(Block {
                    conv1: conv_idx(&params, &format!("{}.conv1", spec.name))?,
                    conv2: conv_idx(&params, &format!("{}.conv2", spec.name))?,
                    sc: if spec.learnable_sc {
                        Some(conv_idx(&params, &format!("{}.shortcut", spec.name))?)
                    } else {
                        None
                    },
                    spec,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fc = idx(&params, "fc.weight")?;
        Ok(CpuSnganEnergy {
            sample_shape: arch.sample_shape(),
            arch: arch.clone(),
            blocks,
            fc,
            params,
            pool: BufPool::default(),
        })
    }

    /// Forward pass; returns the per-sample energies, the block tapes and the
    /// last block's output (the head's input).
    fn forward(&self, x: &[f32], batch: usize) -> (Vec<f32>, Vec<BlockTape>, Vec<f32>) {
        let mut tapes = Vec::with_capacity(self.blocks.len());
        let mut cur = self.pool.take(x.len());
        cur.copy_from_slice(x);
        for b in &self.blocks {
            let (out, tape) = self.block_forward(b, cur, batch);
            tapes.push(tape);
            cur = out;
        }
        // Head: relu -> global average pool -> fc (no bias).
        let last = &self.blocks[self.blocks.len() - 1].spec;
        let c = last.cout;
        let s = if last.down { last.size / 2 } else { last.size };
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

    fn block_forward(&self, b: &Block, x: Vec<f32>, batch: usize) -> (Vec<f32>, BlockTape) {
        let sp = &b.spec;
        let (s, cin, cout) = (sp.size, sp.cin, sp.cout);
        let g1 = Conv2dGeom {
            batch,
            cin,
            cout,
            h: s,
            w: s,
            k: 3,
        };
        let g2 = Conv2dGeom { cin: cout, ..g1 };
        let n_out_full = batch * cout * s * s;
        let mut r0 = Vec::new();
        let conv1_in: &[f32] = if sp.stem {
            &x
        } else {
            r0 = self.pool.take(x.len());
            ops::relu_forward(&x, &mut r0);
            &r0
        };
        let mut a1 = self.pool.take(n_out_full);
        conv_fwd(&self.params, b.conv1, &g1, conv1_in, &mut a1);
        let mut r1 = self.pool.take(n_out_full);
        ops::relu_forward(&a1, &mut r1);
        let mut a2 = self.pool.take(n_out_full);
        conv_fwd(&self.params, b.conv2, &g2, &r1, &mut a2);
        let so = if sp.down { s / 2 } else { s };
        let mut out = if sp.down {
            let mut h = self.pool.take(batch * cout * so * so);
            ops::avg_pool2_forward(batch, cout, s, s, &a2, &mut h);
            h
        } else {
            std::mem::take(&mut a2)
        };
        let mut p = Vec::new();
        match (sp.stem, b.sc) {
            (true, Some(sc)) => {
                let mut scout = self.pool.take(out.len());
                if sp.down {
                    p = self.pool.take(batch * cin * so * so);
                    ops::avg_pool2_forward(batch, cin, s, s, &x, &mut p);
                    conv_fwd(
                        &self.params,
                        sc,
                        &Conv2dGeom {
                            batch,
                            cin,
                            cout,
                            h: so,
                            w: so,
                            k: 1,
                        },
                        &p,
                        &mut scout,
                    );
                } else {
                    conv_fwd(
                        &self.params,
                        sc,
                        &Conv2dGeom {
                            batch,
                            cin,
                            cout,
                            h: s,
                            w: s,
                            k: 1,
                        },
                        &x,
                        &mut scout,
                    );
                }
                add_into(&mut out, &scout);
                self.pool.give(scout);
            }
            (false, Some(sc)) => {
                let mut c = self.pool.take(n_out_full);
                conv_fwd(
                    &self.params,
                    sc,
                    &Conv2dGeom {
                        batch,
                        cin,
                        cout,
                        h: s,
                        w: s,
                        k: 1,
                    },
                    &x,
                    &mut c,
                );
                if sp.down {
                    // Reuse a2's buffer role: pool the shortcut into a scratch then add.
                    let mut pc = self.pool.take(out.len());
                    ops::avg_pool2_forward(batch, cout, s, s, &c, &mut pc);
                    add_into(&mut out, &pc);
                    self.pool.give(pc);
                } else {
                    add_into(&mut out, &c);
                }
                self.pool.give(c);
            }
            (_, None) => add_into(&mut out, &x),
        }
        self.pool.give(a2);
        (out, BlockTape { x, r0, a1, r1, p })
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
        let last = &self.blocks[self.blocks.len() - 1].spec;
        let c = last.cout;
        let s = if last.down { last.size / 2 } else { last.size };
        // Head backward.
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
        for (i, (b, tape)) in self.blocks.iter().zip(tapes).enumerate().rev() {
            let need_dx = i > 0 || want_dx;
            let dx = self.block_backward(b, tape, &dcur, batch, need_dx, grads.as_deref_mut())?;
            self.pool
                .give(std::mem::replace(&mut dcur, dx.unwrap_or_default()));
        }
        Ok(if want_dx { Some(dcur) } else { None })
    }

    fn block_backward(
        &self,
        b: &Block,
        t: BlockTape,
        dout: &[f32],
        batch: usize,
        need_dx: bool,
        mut grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let sp = &b.spec;
        let (s, cin, cout) = (sp.size, sp.cin, sp.cout);
        let so = if sp.down { s / 2 } else { s };
        let g1 = Conv2dGeom {
            batch,
            cin,
            cout,
            h: s,
            w: s,
            k: 3,
        };
        let g2 = Conv2dGeom { cin: cout, ..g1 };
        let n_full = batch * cout * s * s;
        // d(a2): un-pool the output gradient.
        let mut da2 = self.pool.take(n_full);
        if sp.down {
            ops::avg_pool2_backward(batch, cout, s, s, dout, &mut da2, false);
        } else {
            da2.copy_from_slice(dout);
        }
        let mut dr1 = self.pool.take(n_full);
        conv_bwd(
            &self.params,
            b.conv2,
            &g2,
            &t.r1,
            &da2,
            Some((&mut dr1, false)),
            grads.as_deref_mut(),
        )?;
        let mut da1 = self.pool.take(n_full);
        ops::relu_backward(&t.a1, &dr1, &mut da1, false);
        self.pool.give(dr1);
        let conv1_in: &[f32] = if sp.stem { &t.x } else { &t.r0 };
        let mut dx = if need_dx {
            Some(self.pool.take(t.x.len()))
        } else {
            None
        };
        if sp.stem {
            conv_bwd(
                &self.params,
                b.conv1,
                &g1,
                conv1_in,
                &da1,
                dx.as_deref_mut().map(|d| (d, false)),
                grads.as_deref_mut(),
            )?;
        } else {
            let mut dr0 = self.pool.take(t.x.len());
            conv_bwd(
                &self.params,
                b.conv1,
                &g1,
                conv1_in,
                &da1,
                Some((&mut dr0, false)),
                grads.as_deref_mut(),
            )?;
            if let Some(d) = dx.as_deref_mut() {
                ops::relu_backward(&t.x, &dr0, d, false);
            }
            self.pool.give(dr0);
        }
        self.pool.give(da1);
        // Shortcut.
        match (sp.stem, b.sc) {
            (true, Some(sc)) => {
                if sp.down {
                    let gsc = Conv2dGeom {
                        batch,
                        cin,
                        cout,
                        h: so,
                        w: so,
                        k: 1,
                    };
                    let mut dp = if need_dx {
                        Some(self.pool.take(t.p.len()))
                    } else {
                        None
                    };
                    conv_bwd(
                        &self.params,
                        sc,
                        &gsc,
                        &t.p,
                        dout,
                        dp.as_deref_mut().map(|d| (d, false)),
                        grads.as_deref_mut(),
                    )?;
                    if let (Some(dp), Some(d)) = (dp, dx.as_deref_mut()) {
                        ops::avg_pool2_backward(batch, cin, s, s, &dp, d, true);
                        self.pool.give(dp);
                    }
                } else {
                    let gsc = Conv2dGeom {
                        batch,
                        cin,
                        cout,
                        h: s,
                        w: s,
                        k: 1,
                    };
                    conv_bwd(
                        &self.params,
                        sc,
                        &gsc,
                        &t.x,
                        dout,
                        dx.as_deref_mut().map(|d| (d, true)),
                        grads.as_deref_mut(),
                    )?;
                }
            }
            (false, Some(sc)) => {
                // Shortcut = pool(conv_sc(x)): its conv sees the un-pooled gradient,
                // which is exactly da2 when downsampling (same pool backward).
                let gsc = Conv2dGeom {
                    batch,
                    cin,
                    cout,
                    h: s,
                    w: s,
                    k: 1,
                };
                let dc: &[f32] = if sp.down { &da2 } else { dout };
                conv_bwd(
                    &self.params,
                    sc,
                    &gsc,
                    &t.x,
                    dc,
                    dx.as_deref_mut().map(|d| (d, true)),
                    grads,
                )?;
            }
            (_, None) => {
                if let Some(d) = dx.as_deref_mut() {
                    add_into(d, dout);
                }
            }
        }
        self.pool.give(da2);
        for v in [t.x, t.r0, t.a1, t.r1, t.p] {
            self.pool.give(v);
        }
        Ok(dx)
    }

    fn release(&self, tapes: Vec<BlockTape>, head_in: Vec<f32>) {
        for t in tapes {
            for v in [t.x, t.r0, t.a1, t.r1, t.p] {
                self.pool.give(v);
            }
        }
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
        CpuBackend::new().from_host(&e, &[batch])
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.params
    }
}
