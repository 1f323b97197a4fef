//! The retrofit autoencoder's encoder (`InfEncoder32`) on the CPU backend: EBM
//! blocks, ReLU, a 3×3 conv to one channel, and a projection of each code onto
//! the sphere of radius `R = sqrt(code size)`: `y = R·c/(‖c‖ + eps)`.
//!
//! It implements [`Generator`] (input = image, "latent" = the image, output =
//! the code), so training it uses the same VJP machinery as any generator.

use super::common::{BufPool, ConvIdx, check_input, conv_bwd, conv_fwd, conv_idx};
use super::ebm_blocks::{BlockTape, EbmTrunk};
use crate::Result;
use crate::backend::shape::batched;
use crate::cpu::ops::{self, Conv2dGeom};
use crate::cpu::{CpuBackend, CpuTensor};
use crate::model::Generator;
use crate::nets::arch::{ENCODER_NORM_EPS, EncoderArch};
use crate::params::{Grads, ParamSet};

/// `InfEncoder32` on the CPU backend.
pub struct CpuEncoder {
    arch: EncoderArch,
    input_shape: Vec<usize>,
    code_shape: Vec<usize>,
    trunk: EbmTrunk,
    conv: ConvIdx,
    params: ParamSet<CpuBackend>,
    pool: BufPool,
}

impl std::fmt::Debug for CpuEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuEncoder")
            .field("arch", &self.arch)
            .finish_non_exhaustive()
    }
}

/// Saved activations of one pass.
struct Tape {
    blocks: Vec<BlockTape>,
    /// Trunk output (pre-ReLU).
    h: Vec<f32>,
    /// `relu(h)`, the conv's input.
    r: Vec<f32>,
    /// Conv output `c` (pre-projection).
    c: Vec<f32>,
}

impl CpuEncoder {
    /// Builds the encoder (Glorot-uniform weights, zero biases) from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for invalid sizes.
    pub fn new(arch: &EncoderArch, seed: u64) -> Result<Self> {
        let params = ParamSet::init(&CpuBackend::new(), &arch.param_specs()?, seed)?;
        let trunk = EbmTrunk::new(&params, arch.blocks()?)?;
        Ok(CpuEncoder {
            input_shape: arch.input_shape(),
            code_shape: arch.code_shape(),
            conv: conv_idx(&params, "conv2latent")?,
            arch: arch.clone(),
            trunk,
            params,
            pool: BufPool::default(),
        })
    }

    fn geom(&self, batch: usize) -> Conv2dGeom {
        let (c, s) = self.trunk.out_dims();
        Conv2dGeom {
            batch,
            cin: c,
            cout: 1,
            h: s,
            w: s,
            k: 3,
        }
    }

    fn forward_tape(&self, x: &[f32], batch: usize) -> (Vec<f32>, Tape) {
        let mut input = self.pool.take(x.len());
        input.copy_from_slice(x);
        let (h, blocks) = self.trunk.forward(&self.params, &self.pool, input, batch);
        let mut r = self.pool.take(h.len());
        ops::relu_forward(&h, &mut r);
        let g = self.geom(batch);
        let mut c = self.pool.take(batch * g.h * g.w);
        conv_fwd(&self.params, self.conv, &g, &r, &mut c);
        let per = g.h * g.w;
        let radius = (per as f32).sqrt();
        let mut y = vec![0.0f32; c.len()];
        for (yr, cr) in y.chunks_exact_mut(per).zip(c.chunks_exact(per)) {
            let n = norm(cr);
            let s = radius / (n + ENCODER_NORM_EPS);
            for (o, &v) in yr.iter_mut().zip(cr) {
                *o = v * s;
            }
        }
        (y, Tape { blocks, h, r, c })
    }

    fn backward(
        &self,
        batch: usize,
        t: Tape,
        dy: &[f32],
        want_dx: bool,
        mut grads: Option<&mut Grads<CpuBackend>>,
    ) -> Result<Option<Vec<f32>>> {
        let g = self.geom(batch);
        let per = g.h * g.w;
        let radius = (per as f32).sqrt();
        // y = R c / (n + e), n = |c|:  dc = R/(n+e) dy - R (c . dy) c / ((n+e)^2 n).
        let mut dc = self.pool.take(t.c.len());
        for ((dr, cr), gr) in dc
            .chunks_exact_mut(per)
            .zip(t.c.chunks_exact(per))
            .zip(dy.chunks_exact(per))
        {
            let n = norm(cr);
            let ne = n + ENCODER_NORM_EPS;
            let dot: f32 = cr.iter().zip(gr).map(|(a, b)| a * b).sum();
            let k = if n > 0.0 {
                radius * dot / (ne * ne * n)
            } else {
                0.0
            };
            for ((o, &cv), &gv) in dr.iter_mut().zip(cr).zip(gr) {
                *o = radius / ne * gv - k * cv;
            }
        }
        let mut drr = self.pool.take(t.r.len());
        conv_bwd(
            &self.params,
            self.conv,
            &g,
            &t.r,
            &dc,
            Some((&mut drr, false)),
            grads.as_deref_mut(),
        )?;
        let mut dh = self.pool.take(t.h.len());
        ops::relu_backward(&t.h, &drr, &mut dh, false);
        for v in [dc, drr, t.h, t.r, t.c] {
            self.pool.give(v);
        }
        self.trunk.backward(
            &self.params,
            &self.pool,
            t.blocks,
            dh,
            batch,
            want_dx,
            grads,
        )
    }

    fn release(&self, t: Tape) {
        EbmTrunk::release(&self.pool, t.blocks);
        for v in [t.h, t.r, t.c] {
            self.pool.give(v);
        }
    }

    fn check_cot(&self, cot: &CpuTensor, batch: usize) -> Result<()> {
        super::common::check_rows("encoder cotangent", cot, batch, &self.code_shape)
    }
}

/// L2 norm, accumulated in f64.
fn norm(v: &[f32]) -> f32 {
    v.iter()
        .map(|&a| f64::from(a) * f64::from(a))
        .sum::<f64>()
        .sqrt() as f32
}

impl Generator<CpuBackend> for CpuEncoder {
    fn describe(&self) -> String {
        self.arch.describe()
    }

    fn latent_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.code_shape
    }

    fn forward(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let batch = check_input("encoder input", x, &self.input_shape)?;
        let (y, t) = self.forward_tape(x.as_slice(), batch);
        self.release(t);
        CpuTensor::from_vec(y, &batched(batch, &self.code_shape))
    }

    fn vjp_latent(&self, x: &CpuTensor, cot: &CpuTensor) -> Result<CpuTensor> {
        let batch = check_input("encoder input", x, &self.input_shape)?;
        self.check_cot(cot, batch)?;
        let (_, t) = self.forward_tape(x.as_slice(), batch);
        let dx = self
            .backward(batch, t, cot.as_slice(), true, None)?
            .unwrap_or_default();
        CpuTensor::from_vec(dx, x.shape())
    }

    fn vjp_params(
        &self,
        x: &CpuTensor,
        cot: &CpuTensor,
        grads: &mut Grads<CpuBackend>,
    ) -> Result<()> {
        let batch = check_input("encoder input", x, &self.input_shape)?;
        self.check_cot(cot, batch)?;
        let (_, t) = self.forward_tape(x.as_slice(), batch);
        self.backward(batch, t, cot.as_slice(), false, Some(grads))?;
        Ok(())
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    /// Finite differences (f32, central, relative tolerance suited to f32) of
    /// a random linear functional of the code w.r.t. the input and two parameters.
    #[test]
    fn encoder_vjps_match_finite_differences() {
        let be = CpuBackend::new();
        let enc = CpuEncoder::new(&EncoderArch::Encoder32 { nch: 1, ngf: 4 }, 3).unwrap();
        let mut x = be.zeros(&[2, 1, 32, 32]).unwrap();
        be.fill_normal(
            &mut x,
            crate::noise::NoiseKey::new(1, crate::noise::Stream::User, [0, 0]),
        )
        .unwrap();
        let mut r = be.zeros(&[2, 1, 16, 16]).unwrap();
        be.fill_normal(
            &mut r,
            crate::noise::NoiseKey::new(2, crate::noise::Stream::User, [0, 0]),
        )
        .unwrap();
        let f = |e: &CpuEncoder, x: &CpuTensor| -> f64 {
            let y = e.forward(x).unwrap();
            y.as_slice()
                .iter()
                .zip(r.as_slice())
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        // Codes lie on the sphere of radius 16.
        let y = enc.forward(&x).unwrap();
        for row in y.as_slice().chunks(256) {
            assert!((norm(row) - 16.0).abs() < 1e-3);
        }
        let dx = enc.vjp_latent(&x, &r).unwrap();
        for &i in &[0usize, 17, 500, 1500, 2047] {
            let h = 1e-2f32;
            let mut xp = x.clone();
            xp.as_slice_mut()[i] += h;
            let mut xm = x.clone();
            xm.as_slice_mut()[i] -= h;
            let fd = (f(&enc, &xp) - f(&enc, &xm)) / (2.0 * f64::from(h));
            let an = f64::from(dx.as_slice()[i]);
            assert!(
                (fd - an).abs() <= 2e-2 * an.abs().max(1.0),
                "dx[{i}]: fd {fd} vs {an}"
            );
        }
        let mut grads = Grads::zeros_like(&be, enc.params()).unwrap();
        enc.vjp_params(&x, &r, &mut grads).unwrap();
        for name in ["conv2latent.weight", "block1.conv1.bias"] {
            let pi = enc.params().index_of(name).unwrap();
            for j in 0..3 {
                // Small step: a bias moves a whole channel's pre-activations, and
                // a larger step crosses ReLU kinks (at 1e-3 the FD is off by ~4 %,
                // at 1e-4 and 3e-5 it agrees).
                let h = 1e-4f32;
                let mut ep =
                    CpuEncoder::new(&EncoderArch::Encoder32 { nch: 1, ngf: 4 }, 3).unwrap();
                ep.params_mut().get_mut(pi).value.as_slice_mut()[j] += h;
                let mut em =
                    CpuEncoder::new(&EncoderArch::Encoder32 { nch: 1, ngf: 4 }, 3).unwrap();
                em.params_mut().get_mut(pi).value.as_slice_mut()[j] -= h;
                let fd = (f(&ep, &x) - f(&em, &x)) / (2.0 * f64::from(h));
                let an = f64::from(grads.get(pi).unwrap().as_slice()[j]);
                assert!(
                    (fd - an).abs() <= 2e-2 * an.abs().max(1.0),
                    "{name}[{j}]: fd {fd} vs {an}"
                );
            }
        }
    }
}
