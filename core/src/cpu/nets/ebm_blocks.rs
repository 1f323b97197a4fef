//! The residual blocks of the SN-GAN EBM on the CPU backend (shared by the
//! energy network and the retrofit encoder, which reuses the EBM's blocks).
//!
//! * stem (block 1): `h = conv2(relu(conv1(x)))`, pooled if downsampling;
//!   shortcut `conv_sc(pool(x))` (pool *before* the 1×1 conv);
//! * blocks 2..N: `h = conv2(relu(conv1(relu(x))))`, pooled if downsampling;
//!   shortcut `pool(conv_sc(x))`, or the identity.

use super::common::{BufPool, ConvIdx, add_into, conv_bwd, conv_fwd, conv_idx};
use crate::Result;
use crate::cpu::CpuBackend;
use crate::cpu::ops::{self, Conv2dGeom};
use crate::nets::arch::EbmBlockSpec;
use crate::params::{Grads, ParamSet};

pub(super) struct Block {
    spec: EbmBlockSpec,
    conv1: ConvIdx,
    conv2: ConvIdx,
    sc: Option<ConvIdx>,
}

/// Saved activations of one block (all `[B, C, S, S]` row-major).
pub(super) struct BlockTape {
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

/// A stack of EBM blocks bound to parameter indices.
pub(super) struct EbmTrunk {
    blocks: Vec<Block>,
}

impl EbmTrunk {
    /// Binds `specs` to the parameters `<block>.conv1`, `<block>.conv2`,
    /// `<block>.shortcut` of `params`.
    pub(super) fn new(params: &ParamSet<CpuBackend>, specs: Vec<EbmBlockSpec>) -> Result<Self> {
        let blocks = specs
            .into_iter()
            .map(|spec| {
                Ok(Block {
                    conv1: conv_idx(params, &format!("{}.conv1", spec.name))?,
                    conv2: conv_idx(params, &format!("{}.conv2", spec.name))?,
                    sc: if spec.learnable_sc {
                        Some(conv_idx(params, &format!("{}.shortcut", spec.name))?)
                    } else {
                        None
                    },
                    spec,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EbmTrunk { blocks })
    }

    /// Channels and spatial size of the trunk's output.
    pub(super) fn out_dims(&self) -> (usize, usize) {
        let last = &self.blocks[self.blocks.len() - 1].spec;
        (last.cout, if last.down { last.size / 2 } else { last.size })
    }

    /// Forward pass from `x` (a pooled buffer the trunk takes over).
    pub(super) fn forward(
        &self,
        params: &ParamSet<CpuBackend>,
        pool: &BufPool,
        x: Vec<f32>,
        batch: usize,
    ) -> (Vec<f32>, Vec<BlockTape>) {
        let mut tapes = Vec::with_capacity(self.blocks.len());
        let mut cur = x;
        for b in &self.blocks {
            let (out, tape) = block_forward(params, pool, b, cur, batch);
            tapes.push(tape);
            cur = out;
        }
        (cur, tapes)
    }

    /// Backward pass from the gradient `dout` of the trunk's output (a pooled
    /// buffer the trunk takes over). Returns the input gradient if `want_dx`.
    pub(super) fn backward(
        &self,
        params: &ParamSet<CpuBackend>,
        pool: &BufPool,
        tapes: Vec<BlockTape>,
        dout: Vec<f32>,
        batch: usize,
        want_dx: bool,
        mut grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let mut dcur = dout;
        for (i, (b, tape)) in self.blocks.iter().zip(tapes).enumerate().rev() {
            let need_dx = i > 0 || want_dx;
            let dx = block_backward(
                params,
                pool,
                b,
                tape,
                &dcur,
                batch,
                need_dx,
                grads.as_deref_mut(),
            )?;
            pool.give(std::mem::replace(&mut dcur, dx.unwrap_or_default()));
        }
        if want_dx {
            Ok(Some(dcur))
        } else {
            pool.give(dcur);
            Ok(None)
        }
    }

    /// Returns the tapes' buffers to the pool (forward-only passes).
    pub(super) fn release(pool: &BufPool, tapes: Vec<BlockTape>) {
        for t in tapes {
            for v in [t.x, t.r0, t.a1, t.r1, t.p] {
                pool.give(v);
            }
        }
    }
}

/// One block's forward pass; returns its output and its tape.
fn block_forward(
    params: &ParamSet<CpuBackend>,
    pool: &BufPool,
    b: &Block,
    x: Vec<f32>,
    batch: usize,
) -> (Vec<f32>, BlockTape) {
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
        r0 = pool.take(x.len());
        ops::relu_forward(&x, &mut r0);
        &r0
    };
    let mut a1 = pool.take(n_out_full);
    conv_fwd(params, b.conv1, &g1, conv1_in, &mut a1);
    let mut r1 = pool.take(n_out_full);
    ops::relu_forward(&a1, &mut r1);
    let mut a2 = pool.take(n_out_full);
    conv_fwd(params, b.conv2, &g2, &r1, &mut a2);
    let so = if sp.down { s / 2 } else { s };
    let mut out = if sp.down {
        let mut h = pool.take(batch * cout * so * so);
        ops::avg_pool2_forward(batch, cout, s, s, &a2, &mut h);
        h
    } else {
        std::mem::take(&mut a2)
    };
    let mut p = Vec::new();
    match (sp.stem, b.sc) {
        (true, Some(sc)) => {
            let mut scout = pool.take(out.len());
            if sp.down {
                p = pool.take(batch * cin * so * so);
                ops::avg_pool2_forward(batch, cin, s, s, &x, &mut p);
                conv_fwd(
                    params,
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
                    params,
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
            pool.give(scout);
        }
        (false, Some(sc)) => {
            let mut c = pool.take(n_out_full);
            conv_fwd(
                params,
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
                let mut pc = pool.take(out.len());
                ops::avg_pool2_forward(batch, cout, s, s, &c, &mut pc);
                add_into(&mut out, &pc);
                pool.give(pc);
            } else {
                add_into(&mut out, &c);
            }
            pool.give(c);
        }
        (_, None) => add_into(&mut out, &x),
    }
    pool.give(a2);
    (out, BlockTape { x, r0, a1, r1, p })
}

/// One block's backward pass from the gradient of its output; returns the
/// input gradient if `need_dx`; accumulates parameter gradients into `grads`.
fn block_backward(
    params: &ParamSet<CpuBackend>,
    pool: &BufPool,
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
    let mut da2 = pool.take(n_full);
    if sp.down {
        ops::avg_pool2_backward(batch, cout, s, s, dout, &mut da2, false);
    } else {
        da2.copy_from_slice(dout);
    }
    let mut dr1 = pool.take(n_full);
    conv_bwd(
        params,
        b.conv2,
        &g2,
        &t.r1,
        &da2,
        Some((&mut dr1, false)),
        grads.as_deref_mut(),
    )?;
    let mut da1 = pool.take(n_full);
    ops::relu_backward(&t.a1, &dr1, &mut da1, false);
    pool.give(dr1);
    let conv1_in: &[f32] = if sp.stem { &t.x } else { &t.r0 };
    let mut dx = if need_dx {
        Some(pool.take(t.x.len()))
    } else {
        None
    };
    if sp.stem {
        conv_bwd(
            params,
            b.conv1,
            &g1,
            conv1_in,
            &da1,
            dx.as_deref_mut().map(|d| (d, false)),
            grads.as_deref_mut(),
        )?;
    } else {
        let mut dr0 = pool.take(t.x.len());
        conv_bwd(
            params,
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
        pool.give(dr0);
    }
    pool.give(da1);
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
                    Some(pool.take(t.p.len()))
                } else {
                    None
                };
                conv_bwd(
                    params,
                    sc,
                    &gsc,
                    &t.p,
                    dout,
                    dp.as_deref_mut().map(|d| (d, false)),
                    grads.as_deref_mut(),
                )?;
                if let (Some(dp), Some(d)) = (dp, dx.as_deref_mut()) {
                    ops::avg_pool2_backward(batch, cin, s, s, &dp, d, true);
                    pool.give(dp);
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
                    params,
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
                params,
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
    pool.give(da2);
    for v in [t.x, t.r0, t.a1, t.r1, t.p] {
        pool.give(v);
    }
    Ok(dx)
}
