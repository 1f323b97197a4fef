//! The SN-GAN generator (32/64/128) and the retrofit decoder `GenDecoder32` on
//! the CPU backend, with analytic vector-Jacobian products.
//!
//! Block semantics (golden README): `GenBlock`:
//! `h = conv2(relu(bn2(conv1(up(relu(bn1(x)))))))`, shortcut `conv_sc(up(x))`
//! (or the identity); decoder stem: `conv2(relu(bn2(conv1(z))))` + `conv_sc(z)`;
//! output: `out_factor · tanh(conv(relu(bn(x))))`. The SN-GAN generator starts
//! with `fc(z)` viewed as `[ngf, 4, 4]`.
//!
//! Batch norm runs in inference mode (running statistics, eps 1e-3) unless
//! switched to training mode with [`Generator::set_bn_training`] (cooperative
//! learning baseline): then batch statistics are used and differentiated
//! through; the running statistics are not updated (they are only ever used in
//! inference mode, and the Hat EBM algorithms never train with batch
//! statistics).

use super::common::{
    BnIdx, BufPool, ConvIdx, add_into, bn_idx, check_input, conv_bwd, conv_fwd, conv_idx,
    grad_pair, idx, pv,
};
use crate::backend::shape::batched;
use crate::cpu::ops::{self, Conv2dGeom};
use crate::cpu::{CpuBackend, CpuTensor};
use crate::model::Generator;
use crate::nets::arch::{BN_EPS, BOTTOM_WIDTH, GenBlockSpec, GeneratorArch};
use crate::params::{Grads, ParamSet};
use crate::{Error, Result};

struct Block {
    spec: GenBlockSpec,
    bn1: Option<BnIdx>,
    conv1: ConvIdx,
    bn2: BnIdx,
    conv2: ConvIdx,
    sc: Option<ConvIdx>,
}

/// Saved activations of one block.
#[derive(Default)]
struct BlockTape {
    /// Block input `[B, cin, S, S]`.
    x: Vec<f32>,
    /// `bn1(x)` (empty for the stem).
    b1: Vec<f32>,
    /// conv1's input: `up(relu(b1))`, `relu(b1)`, or (stem) empty — conv1 reads `x`.
    u: Vec<f32>,
    /// conv1 output.
    a1: Vec<f32>,
    /// `bn2(a1)`.
    b2: Vec<f32>,
    /// `relu(b2)`, conv2's input.
    r2: Vec<f32>,
    /// `up(x)`, the shortcut conv's input when upsampling.
    ux: Vec<f32>,
    /// Batch statistics `[mean1 | var1 | mean2 | var2]` in BN training mode.
    stats: Vec<f32>,
}

impl BlockTape {
    fn buffers(self) -> [Vec<f32>; 8] {
        [
            self.x, self.b1, self.u, self.a1, self.b2, self.r2, self.ux, self.stats,
        ]
    }
}

/// Saved activations of the output layer.
#[derive(Default)]
struct OutTape {
    x: Vec<f32>,
    b: Vec<f32>,
    r: Vec<f32>,
    /// `tanh(conv(r))`.
    t: Vec<f32>,
    stats: Vec<f32>,
}

/// The SN-GAN generator or `GenDecoder32` on the CPU backend.
pub struct CpuConvGenerator {
    arch: GeneratorArch,
    latent_shape: Vec<usize>,
    output_shape: Vec<usize>,
    /// `(weight, bias)` of the SN-GAN input layer (`None` for the decoder).
    fc: Option<(usize, usize)>,
    blocks: Vec<Block>,
    bn: BnIdx,
    conv: ConvIdx,
    out_factor: f32,
    bn_training: bool,
    params: ParamSet<CpuBackend>,
    pool: BufPool,
}

impl std::fmt::Debug for CpuConvGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuConvGenerator")
            .field("arch", &self.arch)
            .field("bn_training", &self.bn_training)
            .finish_non_exhaustive()
    }
}

impl CpuConvGenerator {
    /// Builds the network (Glorot-uniform weights, zero biases, BN identity) from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid or MLP architecture.
    pub fn new(arch: &GeneratorArch, seed: u64) -> Result<Self> {
        if matches!(arch, GeneratorArch::Mlp { .. }) {
            return Err(Error::Config(format!(
                "{} is not a convolutional generator",
                arch.describe()
            )));
        }
        let params = ParamSet::init(&CpuBackend::new(), &arch.param_specs()?, seed)?;
        let fc = match arch {
            GeneratorArch::Sngan { .. } => {
                Some((idx(&params, "fc.weight")?, idx(&params, "fc.bias")?))
            }
            _ => None,
        };
        let blocks = arch
            .blocks()?
            .into_iter()
            .map(|spec| {
                let n = &spec.name;
                Ok(Block {
                    bn1: if spec.stem {
                        None
                    } else {
                        Some(bn_idx(&params, &format!("{n}.bn1"))?)
                    },
                    conv1: conv_idx(&params, &format!("{n}.conv1"))?,
                    bn2: bn_idx(&params, &format!("{n}.bn2"))?,
                    conv2: conv_idx(&params, &format!("{n}.conv2"))?,
                    sc: if spec.learnable_sc {
                        Some(conv_idx(&params, &format!("{n}.shortcut"))?)
                    } else {
                        None
                    },
                    spec,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CpuConvGenerator {
            latent_shape: arch.latent_shape(),
            output_shape: arch.output_shape(),
            fc,
            blocks,
            bn: bn_idx(&params, "bn")?,
            conv: conv_idx(&params, "conv")?,
            out_factor: arch.out_factor(),
            bn_training: false,
            arch: arch.clone(),
            params,
            pool: BufPool::default(),
        })
    }

    /// Batch norm forward in the current mode; in training mode the batch
    /// statistics are appended to `stats`.
    fn bn_forward(
        &self,
        n: BnIdx,
        b: usize,
        c: usize,
        hw: usize,
        x: &[f32],
        y: &mut [f32],
        stats: &mut Vec<f32>,
    ) {
        if self.bn_training {
            let (mut m, mut v) = (vec![0.0f32; c], vec![0.0f32; c]);
            ops::bn_train_forward(
                b,
                c,
                hw,
                BN_EPS,
                x,
                pv(&self.params, n.gamma),
                pv(&self.params, n.beta),
                y,
                &mut m,
                &mut v,
            );
            stats.extend_from_slice(&m);
            stats.extend_from_slice(&v);
        } else {
            super::common::bn_fwd(&self.params, n, b, c, hw, BN_EPS, x, y);
        }
    }

    /// Batch norm backward (input gradient overwrites `dx`); `stats` holds the
    /// `[mean | var]` of this layer in training mode.
    fn bn_backward(
        &self,
        n: BnIdx,
        b: usize,
        c: usize,
        hw: usize,
        x: &[f32],
        dy: &[f32],
        dx: Option<&mut [f32]>,
        stats: &[f32],
        grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<()> {
        if !self.bn_training {
            return super::common::bn_bwd(&self.params, n, b, c, hw, BN_EPS, x, dy, dx, grads);
        }
        let (m, v) = stats.split_at(c);
        let gamma = pv(&self.params, n.gamma);
        let mut scratch = Vec::new();
        let dx = match dx {
            Some(d) => d,
            None => {
                scratch.resize(x.len(), 0.0);
                &mut scratch[..]
            }
        };
        let pgrads = match grads {
            Some(gr) => {
                let (dg, db) = grad_pair(gr, n.gamma, n.beta)?;
                ops::BnParamGrads::both(dg, db)
            }
            None => ops::BnParamGrads::none(),
        };
        ops::bn_train_backward(b, c, hw, BN_EPS, x, dy, gamma, m, v, dx, false, pgrads);
        Ok(())
    }

    fn forward_tape(&self, z: &[f32], batch: usize) -> (Vec<f32>, Vec<BlockTape>, OutTape) {
        let mut cur = match self.fc {
            Some((w, b)) => {
                let (din, dout) = (self.latent_shape[0], self.params.value(w).shape()[0]);
                let mut h = self.pool.take(batch * dout);
                ops::linear_forward(
                    batch,
                    din,
                    dout,
                    z,
                    pv(&self.params, w),
                    Some(pv(&self.params, b)),
                    &mut h,
                );
                h
            }
            None => {
                let mut h = self.pool.take(z.len());
                h.copy_from_slice(z);
                h
            }
        };
        let mut tapes = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let (out, tape) = self.block_forward(b, cur, batch);
            tapes.push(tape);
            cur = out;
        }
        // Output layer.
        let last = &self.blocks[self.blocks.len() - 1].spec;
        let (c, s) = (last.cout, if last.up { last.size * 2 } else { last.size });
        let nch = self.output_shape[0];
        let mut t = OutTape::default();
        let mut bb = self.pool.take(cur.len());
        self.bn_forward(self.bn, batch, c, s * s, &cur, &mut bb, &mut t.stats);
        let mut r = self.pool.take(cur.len());
        ops::relu_forward(&bb, &mut r);
        let mut cv = self.pool.take(batch * nch * s * s);
        conv_fwd(
            &self.params,
            self.conv,
            &Conv2dGeom {
                batch,
                cin: c,
                cout: nch,
                h: s,
                w: s,
                k: 3,
            },
            &r,
            &mut cv,
        );
        let mut th = self.pool.take(cv.len());
        ops::tanh_forward(&cv, &mut th);
        let out: Vec<f32> = th.iter().map(|&v| v * self.out_factor).collect();
        self.pool.give(cv);
        t.x = cur;
        t.b = bb;
        t.r = r;
        t.t = th;
        (out, tapes, t)
    }

    fn block_forward(&self, b: &Block, x: Vec<f32>, batch: usize) -> (Vec<f32>, BlockTape) {
        let sp = &b.spec;
        let (s, cin, cout) = (sp.size, sp.cin, sp.cout);
        let so = if sp.up { 2 * s } else { s };
        let mut t = BlockTape::default();
        // conv1 input.
        if let Some(bn1) = b.bn1 {
            let mut b1 = self.pool.take(x.len());
            self.bn_forward(bn1, batch, cin, s * s, &x, &mut b1, &mut t.stats);
            let mut r1 = self.pool.take(x.len());
            ops::relu_forward(&b1, &mut r1);
            t.b1 = b1;
            t.u = if sp.up {
                let mut u = self.pool.take(batch * cin * so * so);
                ops::upsample_bilinear2_forward(batch, cin, s, s, &r1, &mut u);
                self.pool.give(r1);
                u
            } else {
                r1
            };
        }
        let g1 = Conv2dGeom {
            batch,
            cin,
            cout,
            h: so,
            w: so,
            k: 3,
        };
        let n_out = batch * cout * so * so;
        let mut a1 = self.pool.take(n_out);
        conv_fwd(
            &self.params,
            b.conv1,
            &g1,
            if sp.stem { &x } else { &t.u },
            &mut a1,
        );
        let mut b2 = self.pool.take(n_out);
        self.bn_forward(b.bn2, batch, cout, so * so, &a1, &mut b2, &mut t.stats);
        let mut r2 = self.pool.take(n_out);
        ops::relu_forward(&b2, &mut r2);
        let mut out = self.pool.take(n_out);
        conv_fwd(
            &self.params,
            b.conv2,
            &Conv2dGeom { cin: cout, ..g1 },
            &r2,
            &mut out,
        );
        match b.sc {
            Some(sc) => {
                let gsc = Conv2dGeom {
                    batch,
                    cin,
                    cout,
                    h: so,
                    w: so,
                    k: 1,
                };
                let mut scout = self.pool.take(n_out);
                if sp.up {
                    let mut ux = self.pool.take(batch * cin * so * so);
                    ops::upsample_bilinear2_forward(batch, cin, s, s, &x, &mut ux);
                    conv_fwd(&self.params, sc, &gsc, &ux, &mut scout);
                    t.ux = ux;
                } else {
                    conv_fwd(&self.params, sc, &gsc, &x, &mut scout);
                }
                add_into(&mut out, &scout);
                self.pool.give(scout);
            }
            None => add_into(&mut out, &x),
        }
        t.x = x;
        t.a1 = a1;
        t.b2 = b2;
        t.r2 = r2;
        (out, t)
    }

    /// Backward from the output cotangent; returns dz if `want_dz`.
    fn backward(
        &self,
        batch: usize,
        tapes: Vec<BlockTape>,
        ot: OutTape,
        cot: &[f32],
        want_dz: bool,
        mut grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let last = &self.blocks[self.blocks.len() - 1].spec;
        let (c, s) = (last.cout, if last.up { last.size * 2 } else { last.size });
        let nch = self.output_shape[0];
        // out = f·tanh(cv): d cv = f · (1 − t²) · cot.
        let mut dt = self.pool.take(cot.len());
        for (d, &g) in dt.iter_mut().zip(cot) {
            *d = g * self.out_factor;
        }
        let mut dcv = self.pool.take(cot.len());
        ops::tanh_backward(&ot.t, &dt, &mut dcv, false);
        self.pool.give(dt);
        let mut dr = self.pool.take(ot.x.len());
        conv_bwd(
            &self.params,
            self.conv,
            &Conv2dGeom {
                batch,
                cin: c,
                cout: nch,
                h: s,
                w: s,
                k: 3,
            },
            &ot.r,
            &dcv,
            Some((&mut dr, false)),
            grads.as_deref_mut(),
        )?;
        self.pool.give(dcv);
        let mut db = self.pool.take(ot.x.len());
        ops::relu_backward(&ot.b, &dr, &mut db, false);
        let mut dcur = self.pool.take(ot.x.len());
        self.bn_backward(
            self.bn,
            batch,
            c,
            s * s,
            &ot.x,
            &db,
            Some(&mut dcur),
            &ot.stats,
            grads.as_deref_mut(),
        )?;
        for v in [dr, db, ot.x, ot.b, ot.r, ot.t, ot.stats] {
            self.pool.give(v);
        }
        for (i, (b, tape)) in self.blocks.iter().zip(tapes).enumerate().rev() {
            let need_dx = i > 0 || want_dz || self.fc.is_some();
            let dx = self.block_backward(b, tape, &dcur, batch, need_dx, grads.as_deref_mut())?;
            self.pool
                .give(std::mem::replace(&mut dcur, dx.unwrap_or_default()));
        }
        // The gradient w.r.t. the first block's input: the fc output (SN-GAN,
        // always needed for the fc layer's backward) or the latent (decoder).
        if want_dz || self.fc.is_some() {
            Ok(Some(dcur))
        } else {
            self.pool.give(dcur);
            Ok(None)
        }
    }

    /// The fc layer's backward (SN-GAN only): `dh` is the gradient w.r.t. the
    /// fc output; returns dz if asked.
    fn fc_backward(
        &self,
        batch: usize,
        z: &[f32],
        dh: Vec<f32>,
        want_dz: bool,
        grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let Some((w, b)) = self.fc else {
            return Ok(if want_dz { Some(dh) } else { None });
        };
        let (din, dout) = (self.latent_shape[0], self.params.value(w).shape()[0]);
        if let Some(gr) = grads {
            let (dw, dbias) = grad_pair(gr, w, b)?;
            ops::linear_backward_params(batch, din, dout, z, &dh, dw, Some(dbias));
        }
        let dz = if want_dz {
            let mut dz = vec![0.0f32; batch * din];
            ops::linear_backward_input(batch, din, dout, &dh, pv(&self.params, w), &mut dz, false);
            Some(dz)
        } else {
            None
        };
        self.pool.give(dh);
        Ok(dz)
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
        let so = if sp.up { 2 * s } else { s };
        let g1 = Conv2dGeom {
            batch,
            cin,
            cout,
            h: so,
            w: so,
            k: 3,
        };
        let n_out = batch * cout * so * so;
        // In training mode, stats = [mean1 | var1 | mean2 | var2] (no bn1 in the stem).
        let (st1, st2) = if self.bn_training {
            if sp.stem {
                (&t.stats[..0], &t.stats[..])
            } else {
                t.stats.split_at(2 * cin)
            }
        } else {
            (&t.stats[..], &t.stats[..])
        };
        let mut dr2 = self.pool.take(n_out);
        conv_bwd(
            &self.params,
            b.conv2,
            &Conv2dGeom { cin: cout, ..g1 },
            &t.r2,
            dout,
            Some((&mut dr2, false)),
            grads.as_deref_mut(),
        )?;
        let mut db2 = self.pool.take(n_out);
        ops::relu_backward(&t.b2, &dr2, &mut db2, false);
        let mut da1 = dr2; // reuse
        self.bn_backward(
            b.bn2,
            batch,
            cout,
            so * so,
            &t.a1,
            &db2,
            Some(&mut da1),
            st2,
            grads.as_deref_mut(),
        )?;
        self.pool.give(db2);
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
                &t.x,
                &da1,
                dx.as_deref_mut().map(|d| (d, false)),
                grads.as_deref_mut(),
            )?;
        } else {
            let bn1 = b.bn1.expect("non-stem generator blocks have bn1");
            // Gradient w.r.t. conv1's input u, then through up and relu to b1.
            let mut du = self.pool.take(t.u.len());
            conv_bwd(
                &self.params,
                b.conv1,
                &g1,
                &t.u,
                &da1,
                Some((&mut du, false)),
                grads.as_deref_mut(),
            )?;
            let dr1 = if sp.up {
                let mut d = self.pool.take(t.x.len());
                ops::upsample_bilinear2_backward(batch, cin, s, s, &du, &mut d, false);
                self.pool.give(du);
                d
            } else {
                du
            };
            let mut db1 = self.pool.take(t.x.len());
            ops::relu_backward(&t.b1, &dr1, &mut db1, false);
            self.bn_backward(
                bn1,
                batch,
                cin,
                s * s,
                &t.x,
                &db1,
                dx.as_deref_mut(),
                st1,
                grads.as_deref_mut(),
            )?;
            self.pool.give(dr1);
            self.pool.give(db1);
        }
        self.pool.give(da1);
        match b.sc {
            Some(sc) => {
                let gsc = Conv2dGeom {
                    batch,
                    cin,
                    cout,
                    h: so,
                    w: so,
                    k: 1,
                };
                if sp.up {
                    let mut dux = if need_dx {
                        Some(self.pool.take(t.ux.len()))
                    } else {
                        None
                    };
                    conv_bwd(
                        &self.params,
                        sc,
                        &gsc,
                        &t.ux,
                        dout,
                        dux.as_deref_mut().map(|d| (d, false)),
                        grads.as_deref_mut(),
                    )?;
                    if let (Some(dux), Some(d)) = (dux, dx.as_deref_mut()) {
                        ops::upsample_bilinear2_backward(batch, cin, s, s, &dux, d, true);
                        self.pool.give(dux);
                    }
                } else {
                    conv_bwd(
                        &self.params,
                        sc,
                        &gsc,
                        &t.x,
                        dout,
                        dx.as_deref_mut().map(|d| (d, true)),
                        grads,
                    )?;
                }
            }
            None => {
                if let Some(d) = dx.as_deref_mut() {
                    add_into(d, dout);
                }
            }
        }
        for v in t.buffers() {
            self.pool.give(v);
        }
        Ok(dx)
    }

    fn release(&self, tapes: Vec<BlockTape>, ot: OutTape) {
        for t in tapes {
            for v in t.buffers() {
                self.pool.give(v);
            }
        }
        for v in [ot.x, ot.b, ot.r, ot.t, ot.stats] {
            self.pool.give(v);
        }
    }

    fn check_cot(&self, cot: &CpuTensor, batch: usize) -> Result<()> {
        super::common::check_rows("generator cotangent", cot, batch, &self.output_shape)
    }

    /// Full backward including the fc layer.
    fn backward_all(
        &self,
        batch: usize,
        z: &[f32],
        tapes: Vec<BlockTape>,
        ot: OutTape,
        cot: &[f32],
        want_dz: bool,
        mut grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let dh = self.backward(batch, tapes, ot, cot, want_dz, grads.as_deref_mut())?;
        match dh {
            Some(dh) => self.fc_backward(batch, z, dh, want_dz, grads),
            None => Ok(None),
        }
    }
}

impl Generator<CpuBackend> for CpuConvGenerator {
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
        let (y, tapes, ot) = self.forward_tape(z.as_slice(), batch);
        self.release(tapes, ot);
        CpuTensor::from_vec(y, &batched(batch, &self.output_shape))
    }

    fn vjp_latent(&self, z: &CpuTensor, cot: &CpuTensor) -> Result<CpuTensor> {
        let batch = check_input("generator latent", z, &self.latent_shape)?;
        self.check_cot(cot, batch)?;
        let (_, tapes, ot) = self.forward_tape(z.as_slice(), batch);
        let dz = self
            .backward_all(batch, z.as_slice(), tapes, ot, cot.as_slice(), true, None)?
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
        let (_, tapes, ot) = self.forward_tape(z.as_slice(), batch);
        self.backward_all(
            batch,
            z.as_slice(),
            tapes,
            ot,
            cot.as_slice(),
            false,
            Some(grads),
        )?;
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
        let (y, tapes, ot) = self.forward_tape(z.as_slice(), batch);
        let (loss, cot) = super::common::mse_cotangent(&self.pool, &y, x.as_slice(), factor);
        self.backward_all(batch, z.as_slice(), tapes, ot, &cot, false, Some(grads))?;
        self.pool.give(cot);
        Ok(loss)
    }

    fn bn_training(&self) -> bool {
        self.bn_training
    }

    fn set_bn_training(&mut self, on: bool) -> Result<()> {
        self.bn_training = on;
        Ok(())
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.params
    }
}

// BOTTOM_WIDTH documents the fc reshape: the fc output [B, ngf·4·4] *is* the
// NCHW tensor [B, ngf, 4, 4] (channel-major view), so no copy is needed.
const _: () = assert!(BOTTOM_WIDTH == 4);
