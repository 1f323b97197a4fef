//! Forward passes of the SN-GAN EBM (32/64/128), the SN-GAN generator
//! (32/64/128) and the retrofit decoder `GenDecoder32` in libtorch ops.
//! Gradients come from autograd (see [`super`]).
//!
//! Block semantics (golden README, "Architectures"):
//! * EBM stem (block 1): `h = conv2(relu(conv1(x)))`, pooled if downsampling;
//!   shortcut `conv_sc(pool(x))` (pool *before* the 1×1 conv);
//! * EBM blocks 2..N: `h = conv2(relu(conv1(relu(x))))`, pooled if
//!   downsampling; shortcut `pool(conv_sc(x))`, or the identity;
//! * EBM head: `fc(global_avg_pool(relu(x)))`, no bias;
//! * generator block: `h = conv2(relu(bn2(conv1(up(relu(bn1(x)))))))`,
//!   shortcut `conv_sc(up(x))` or the identity; decoder stem
//!   `conv2(relu(bn2(conv1(z))))` + `conv_sc(z)`; output
//!   `out_factor · tanh(conv(relu(bn(x))))`; the SN-GAN generator starts with
//!   `fc(z)` viewed as `[ngf, 4, 4]`.

use hatebm_core::Result;
use hatebm_core::nets::arch::{
    BOTTOM_WIDTH, EbmBlockSpec, EnergyArch, GenBlockSpec, GeneratorArch,
};
use hatebm_core::params::ParamSet;
use tch::Tensor;

use super::layers::{BnIdx, Bound, ConvIdx, bn, bn_idx, conv, conv_idx, idx, linear, pool2, up2};
use crate::TchBackend;
use crate::tensor::TchResultExt;

struct EbmBlock {
    spec: EbmBlockSpec,
    conv1: ConvIdx,
    conv2: ConvIdx,
    sc: Option<ConvIdx>,
}

/// The SN-GAN EBM body.
pub(crate) struct SnganEbm {
    blocks: Vec<EbmBlock>,
    fc: usize,
}

impl SnganEbm {
    pub fn new(arch: &EnergyArch, params: &ParamSet<TchBackend>) -> Result<Self> {
        let blocks = arch
            .blocks()?
            .into_iter()
            .map(|spec| {
                Ok(EbmBlock {
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
        Ok(SnganEbm {
            blocks,
            fc: idx(params, "fc.weight")?,
        })
    }

    /// U(x): `[B, C, S, S] → [B]`.
    pub fn forward(&self, p: &Bound, x: &Tensor) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for b in &self.blocks {
            h = self.block(p, b, &h)?;
        }
        let g = h
            .f_relu()
            .tch()?
            .f_mean_dim(&[2i64, 3][..], false, tch::Kind::Float)
            .tch()?;
        linear(p, self.fc, None, &g)?.f_squeeze_dim(1).tch()
    }

    fn block(&self, p: &Bound, b: &EbmBlock, x: &Tensor) -> Result<Tensor> {
        let sp = &b.spec;
        let r0 = if sp.stem {
            x.shallow_clone()
        } else {
            x.f_relu().tch()?
        };
        let a1 = conv(p, b.conv1, &r0, 3)?;
        let a2 = conv(p, b.conv2, &a1.f_relu().tch()?, 3)?;
        let h = if sp.down { pool2(&a2)? } else { a2 };
        let sc = match (sp.stem, b.sc) {
            (true, Some(sc)) => {
                let xin = if sp.down {
                    pool2(x)?
                } else {
                    x.shallow_clone()
                };
                conv(p, sc, &xin, 1)?
            }
            (false, Some(sc)) => {
                let c = conv(p, sc, x, 1)?;
                if sp.down { pool2(&c)? } else { c }
            }
            (_, None) => x.shallow_clone(),
        };
        h.f_add(&sc).tch()
    }
}

struct GenBlock {
    spec: GenBlockSpec,
    bn1: Option<BnIdx>,
    conv1: ConvIdx,
    bn2: BnIdx,
    conv2: ConvIdx,
    sc: Option<ConvIdx>,
}

/// The SN-GAN generator / `GenDecoder32` body.
pub(crate) struct ConvGen {
    /// `(weight, bias)` of the SN-GAN input layer (`None` for the decoder).
    fc: Option<(usize, usize)>,
    /// Channels of the first feature map (SN-GAN: ngf).
    ngf: i64,
    blocks: Vec<GenBlock>,
    bn: BnIdx,
    conv: ConvIdx,
    out_factor: f32,
}

impl ConvGen {
    pub fn new(arch: &GeneratorArch, params: &ParamSet<TchBackend>) -> Result<Self> {
        let (fc, ngf) = match arch {
            GeneratorArch::Sngan { ngf, .. } => (
                Some((idx(params, "fc.weight")?, idx(params, "fc.bias")?)),
                *ngf as i64,
            ),
            GeneratorArch::Decoder32 { ngf, .. } => (None, *ngf as i64),
            GeneratorArch::Mlp { .. } => {
                return Err(hatebm_core::Error::Config(format!(
                    "{} is not a convolutional generator",
                    arch.describe()
                )));
            }
        };
        let blocks = arch
            .blocks()?
            .into_iter()
            .map(|spec| {
                let n = &spec.name;
                Ok(GenBlock {
                    bn1: if spec.stem {
                        None
                    } else {
                        Some(bn_idx(params, &format!("{n}.bn1"))?)
                    },
                    conv1: conv_idx(params, &format!("{n}.conv1"))?,
                    bn2: bn_idx(params, &format!("{n}.bn2"))?,
                    conv2: conv_idx(params, &format!("{n}.conv2"))?,
                    sc: if spec.learnable_sc {
                        Some(conv_idx(params, &format!("{n}.shortcut"))?)
                    } else {
                        None
                    },
                    spec,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ConvGen {
            fc,
            ngf,
            blocks,
            bn: bn_idx(params, "bn")?,
            conv: conv_idx(params, "conv")?,
            out_factor: arch.out_factor(),
        })
    }

    /// G(z): `[B, nz]` or `[B, 1, 16, 16]` → `[B, nch, R, R]`.
    pub fn forward(&self, p: &Bound, z: &Tensor, bn_training: bool) -> Result<Tensor> {
        let mut h = match self.fc {
            Some((w, b)) => {
                let bw = BOTTOM_WIDTH as i64;
                linear(p, w, Some(b), z)?
                    .f_view_([-1, self.ngf, bw, bw])
                    .tch()?
            }
            None => z.shallow_clone(),
        };
        for b in &self.blocks {
            h = self.block(p, b, &h, bn_training)?;
        }
        let r = bn(p, self.bn, &h, bn_training)?.f_relu().tch()?;
        conv(p, self.conv, &r, 3)?
            .f_tanh()
            .tch()?
            .f_mul_scalar(f64::from(self.out_factor))
            .tch()
    }

    fn block(&self, p: &Bound, b: &GenBlock, x: &Tensor, train: bool) -> Result<Tensor> {
        let sp = &b.spec;
        let u = match b.bn1 {
            Some(bn1) => {
                let r1 = bn(p, bn1, x, train)?.f_relu().tch()?;
                if sp.up { up2(&r1)? } else { r1 }
            }
            None => x.shallow_clone(),
        };
        let a1 = conv(p, b.conv1, &u, 3)?;
        let r2 = bn(p, b.bn2, &a1, train)?.f_relu().tch()?;
        let h = conv(p, b.conv2, &r2, 3)?;
        let sc = match b.sc {
            Some(sc) => {
                let xin = if sp.up { up2(x)? } else { x.shallow_clone() };
                conv(p, sc, &xin, 1)?
            }
            None => x.shallow_clone(),
        };
        h.f_add(&sc).tch()
    }
}
