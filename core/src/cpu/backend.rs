//! [`CpuBackend`]: the reference backend's implementation of [`Backend`].
//!
//! Element-wise operations are plain loops (vectorised by the compiler);
//! per-row work (noise, norms, Langevin updates) runs in parallel over rows with
//! rayon. Every reduction has a fixed order, so results are bit-identical for
//! any number of threads.

use rayon::prelude::*;

use super::tensor::CpuTensor;
use crate::backend::{AdamStep, Backend, LangevinUpdate};
use crate::noise::{NoiseKey, fill_normal_rows};
use crate::{Error, Result};

/// The CPU device (there is only one; threads come from rayon's global pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuDevice;

/// The CPU reference backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend {
    device: CpuDevice,
}

impl CpuBackend {
    /// The backend (stateless; cheap to copy).
    pub fn new() -> Self {
        CpuBackend { device: CpuDevice }
    }
}

fn same_shape(what: &str, a: &CpuTensor, b: &CpuTensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(what, a.shape(), b.shape()));
    }
    Ok(())
}

/// Rows per rayon task for per-row work: enough work per task to amortise
/// scheduling, independent of the thread count.
fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

impl Backend for CpuBackend {
    type Device = CpuDevice;
    type Tensor = CpuTensor;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn describe(&self) -> String {
        let isa = super::isa::active();
        match super::isa::cpu_model() {
            Some(model) => format!("cpu ({model}; {isa} kernels)"),
            None => format!("cpu ({isa} kernels)"),
        }
    }

    fn device(&self) -> &CpuDevice {
        &self.device
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn shape(&self, t: &CpuTensor) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn zeros(&self, shape: &[usize]) -> Result<CpuTensor> {
        CpuTensor::try_zeros(shape)
    }

    fn from_host(&self, data: &[f32], shape: &[usize]) -> Result<CpuTensor> {
        CpuTensor::from_vec(data.to_vec(), shape)
    }

    fn to_host(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        Ok(t.as_slice().to_vec())
    }

    fn reshape(&self, t: &CpuTensor, shape: &[usize]) -> Result<CpuTensor> {
        t.reshaped(shape)
    }

    fn fill_normal(&self, t: &mut CpuTensor, key: NoiseKey) -> Result<()> {
        let row = t.row_len().max(1);
        let chunk = rows_per_task(row);
        t.as_slice_mut()
            .par_chunks_mut(row * chunk)
            .enumerate()
            .for_each(|(i, part)| {
                fill_normal_rows(
                    part,
                    row,
                    key.with_row_offset(key.row_offset + (i * chunk) as u64),
                );
            });
        Ok(())
    }

    fn fill(&self, t: &mut CpuTensor, value: f32) -> Result<()> {
        t.as_slice_mut().fill(value);
        Ok(())
    }

    fn copy_from(&self, dst: &mut CpuTensor, src: &CpuTensor) -> Result<()> {
        same_shape("copy_from", dst, src)?;
        dst.as_slice_mut().copy_from_slice(src.as_slice());
        Ok(())
    }

    fn axpy(&self, y: &mut CpuTensor, a: f32, x: &CpuTensor) -> Result<()> {
        same_shape("axpy", y, x)?;
        for (yv, &xv) in y.as_slice_mut().iter_mut().zip(x.as_slice()) {
            *yv += a * xv;
        }
        Ok(())
    }

    fn axpby(&self, y: &mut CpuTensor, a: f32, b: f32, x: &CpuTensor) -> Result<()> {
        same_shape("axpby", y, x)?;
        for (yv, &xv) in y.as_slice_mut().iter_mut().zip(x.as_slice()) {
            *yv = a * *yv + b * xv;
        }
        Ok(())
    }

    fn mul_assign(&self, y: &mut CpuTensor, x: &CpuTensor) -> Result<()> {
        same_shape("mul_assign", y, x)?;
        for (yv, &xv) in y.as_slice_mut().iter_mut().zip(x.as_slice()) {
            *yv *= xv;
        }
        Ok(())
    }

    fn scale(&self, y: &mut CpuTensor, a: f32) -> Result<()> {
        for v in y.as_slice_mut() {
            *v *= a;
        }
        Ok(())
    }

    fn sum(&self, t: &CpuTensor) -> Result<f64> {
        Ok(t.as_slice().iter().map(|&v| f64::from(v)).sum())
    }

    fn sq_norm(&self, t: &CpuTensor) -> Result<f64> {
        Ok(t.as_slice()
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum())
    }

    fn all_finite(&self, t: &CpuTensor) -> Result<bool> {
        Ok(t.as_slice().iter().all(|v| v.is_finite()))
    }

    fn row_norms(&self, t: &CpuTensor) -> Result<CpuTensor> {
        let b = t.shape().first().copied().unwrap_or(0);
        let row = t.row_len();
        let mut out = CpuTensor::zeros(&[b]);
        if row > 0 {
            out.as_slice_mut()
                .par_iter_mut()
                .zip(t.as_slice().par_chunks(row))
                .for_each(|(o, r)| *o = row_norm(r));
        }
        Ok(out)
    }

    fn gather_rows(&self, t: &CpuTensor, idx: &[usize]) -> Result<CpuTensor> {
        let n = t.shape().first().copied().unwrap_or(0);
        let row = t.row_len();
        let mut shape = t.shape().to_vec();
        shape[0] = idx.len();
        let mut out = Vec::with_capacity(idx.len() * row);
        for &i in idx {
            if i >= n {
                return Err(Error::InvalidArgument(format!(
                    "gather_rows: index {i} out of range for {n} rows"
                )));
            }
            out.extend_from_slice(&t.as_slice()[i * row..(i + 1) * row]);
        }
        CpuTensor::from_vec(out, &shape)
    }

    fn scatter_rows(&self, t: &mut CpuTensor, idx: &[usize], src: &CpuTensor) -> Result<()> {
        let n = t.shape().first().copied().unwrap_or(0);
        let row = t.row_len();
        let mut want = t.shape().to_vec();
        want[0] = idx.len();
        if src.shape() != want.as_slice() {
            return Err(Error::shape("scatter_rows source", &want, src.shape()));
        }
        check_unique_in_range(idx, n)?;
        let dst = t.as_slice_mut();
        for (k, &i) in idx.iter().enumerate() {
            dst[i * row..(i + 1) * row].copy_from_slice(&src.as_slice()[k * row..(k + 1) * row]);
        }
        Ok(())
    }

    fn copy_into_row(&self, dst: &mut CpuTensor, row: usize, src: &CpuTensor) -> Result<()> {
        let n = dst.shape().first().copied().unwrap_or(0);
        let len = dst.row_len();
        if row >= n {
            return Err(Error::InvalidArgument(format!(
                "copy_into_row: row {row} out of range for {n} rows"
            )));
        }
        if src.len() != len {
            return Err(Error::shape("copy_into_row source", &[len], src.shape()));
        }
        dst.as_slice_mut()[row * len..(row + 1) * len].copy_from_slice(src.as_slice());
        Ok(())
    }

    fn slice_rows(&self, t: &CpuTensor, start: usize, len: usize) -> Result<CpuTensor> {
        let n = t.shape().first().copied().unwrap_or(0);
        if start + len > n {
            return Err(Error::InvalidArgument(format!(
                "slice_rows: rows {start}..{} out of range for {n}",
                start + len
            )));
        }
        let row = t.row_len();
        let mut shape = t.shape().to_vec();
        shape[0] = len;
        CpuTensor::from_vec(
            t.as_slice()[start * row..(start + len) * row].to_vec(),
            &shape,
        )
    }

    fn concat_rows(&self, parts: &[&CpuTensor]) -> Result<CpuTensor> {
        let first = parts
            .first()
            .ok_or_else(|| Error::InvalidArgument("concat_rows: no tensors".into()))?;
        let mut rows = 0;
        for p in parts {
            if p.shape().get(1..) != first.shape().get(1..) {
                return Err(Error::shape("concat_rows part", first.shape(), p.shape()));
            }
            rows += p.shape()[0];
        }
        let mut data = Vec::with_capacity(rows * first.row_len());
        for p in parts {
            data.extend_from_slice(p.as_slice());
        }
        let mut shape = first.shape().to_vec();
        shape[0] = rows;
        CpuTensor::from_vec(data, &shape)
    }

    fn langevin_update(
        &self,
        s: &mut CpuTensor,
        g: &mut CpuTensor,
        noise: Option<&CpuTensor>,
        p: LangevinUpdate,
        norms: &mut CpuTensor,
    ) -> Result<()> {
        same_shape("langevin_update gradient", s, g)?;
        if let Some(n) = noise {
            same_shape("langevin_update noise", s, n)?;
        }
        let b = s.shape().first().copied().unwrap_or(0);
        if norms.shape() != [b] {
            return Err(Error::shape("langevin_update norms", &[b], norms.shape()));
        }
        let row = s.row_len();
        if row == 0 {
            return Ok(());
        }
        let noise_rows = noise.map(|n| n.as_slice().par_chunks(row));
        let work = s
            .as_slice_mut()
            .par_chunks_mut(row)
            .zip(g.as_slice_mut().par_chunks_mut(row))
            .zip(norms.as_slice_mut().par_iter_mut());
        let update = |((sr, gr), nr): ((&mut [f32], &mut [f32]), &mut f32), xr: Option<&[f32]>| {
            let n = row_norm(gr);
            *nr = n;
            if let Some(c) = p.clip {
                // tf.clip_by_norm: g * c / max(||g||, c)
                let denom = n.max(c);
                for v in gr.iter_mut() {
                    *v = *v * c / denom;
                }
            }
            match xr {
                Some(xr) => {
                    for ((sv, &gv), &xv) in sr.iter_mut().zip(gr.iter()).zip(xr) {
                        *sv = *sv - p.step * gv + p.noise_scale * xv;
                    }
                }
                None => {
                    for (sv, &gv) in sr.iter_mut().zip(gr.iter()) {
                        *sv -= p.step * gv;
                    }
                }
            }
        };
        match noise_rows {
            Some(nr) => work.zip(nr).for_each(|(w, xr)| update(w, Some(xr))),
            None => work.for_each(|w| update(w, None)),
        }
        Ok(())
    }

    fn adam_update(
        &self,
        p: &mut CpuTensor,
        g: &CpuTensor,
        m: &mut CpuTensor,
        v: &mut CpuTensor,
        h: AdamStep,
    ) -> Result<()> {
        same_shape("adam gradient", p, g)?;
        same_shape("adam m", p, m)?;
        same_shape("adam v", p, v)?;
        let it = p
            .as_slice_mut()
            .iter_mut()
            .zip(g.as_slice())
            .zip(m.as_slice_mut().iter_mut())
            .zip(v.as_slice_mut().iter_mut());
        for (((pv, &gv), mv), vv) in it {
            *mv += (gv - *mv) * h.one_minus_beta1;
            *vv += (gv * gv - *vv) * h.one_minus_beta2;
            *pv -= h.alpha * *mv / (vv.sqrt() + h.eps);
        }
        Ok(())
    }

    fn ema_update(&self, ema: &mut CpuTensor, p: &CpuTensor, one_minus_decay: f32) -> Result<()> {
        same_shape("ema", ema, p)?;
        for (e, &pv) in ema.as_slice_mut().iter_mut().zip(p.as_slice()) {
            *e -= one_minus_decay * (*e - pv);
        }
        Ok(())
    }
}

/// L2 norm of one row, accumulated in f64 (fixed order) and rounded to f32.
fn row_norm(r: &[f32]) -> f32 {
    r.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32
}

fn check_unique_in_range(idx: &[usize], n: usize) -> Result<()> {
    let mut seen = vec![false; n];
    for &i in idx {
        if i >= n {
            return Err(Error::InvalidArgument(format!(
                "row index {i} out of range for {n} rows"
            )));
        }
        if std::mem::replace(&mut seen[i], true) {
            return Err(Error::InvalidArgument(format!("row index {i} repeated")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::Stream;

    fn t(data: &[f32], shape: &[usize]) -> CpuTensor {
        CpuTensor::from_vec(data.to_vec(), shape).unwrap()
    }

    #[test]
    fn langevin_update_clips_like_tf() {
        let be = CpuBackend::new();
        let mut s = t(&[0.0, 0.0, 1.0, 1.0], &[2, 2]);
        let mut g = t(&[3.0, 4.0, 0.3, 0.4], &[2, 2]);
        let mut norms = CpuTensor::zeros(&[2]);
        be.langevin_update(
            &mut s,
            &mut g,
            None,
            LangevinUpdate {
                step: 0.5,
                noise_scale: 0.0,
                clip: Some(1.0),
            },
            &mut norms,
        )
        .unwrap();
        assert_eq!(norms.as_slice(), &[5.0, 0.5]);
        // Row 0 clipped to norm 1: g = (0.6, 0.8); row 1 untouched.
        assert!((g.as_slice()[0] - 0.6).abs() < 1e-7 && (g.as_slice()[1] - 0.8).abs() < 1e-7);
        assert_eq!(&g.as_slice()[2..], &[0.3, 0.4]);
        assert!((s.as_slice()[0] + 0.3).abs() < 1e-7);
        assert!((s.as_slice()[3] - 0.8).abs() < 1e-7);
    }

    #[test]
    fn mul_assign_is_elementwise_and_checks_shapes() {
        let be = CpuBackend::new();
        let mut y = t(&[1.0, -2.0, 3.0, 0.5], &[2, 2]);
        be.mul_assign(&mut y, &t(&[2.0, 0.5, -1.0, 0.0], &[2, 2]))
            .unwrap();
        assert_eq!(y.as_slice(), &[2.0, -1.0, -3.0, 0.0]);
        assert!(be.mul_assign(&mut y, &t(&[1.0; 4], &[4])).is_err());
    }

    #[test]
    fn scatter_rejects_repeats_and_gather_roundtrips() {
        let be = CpuBackend::new();
        let mut bank = CpuTensor::zeros(&[4, 2]);
        let src = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        assert!(be.scatter_rows(&mut bank, &[1, 1], &src).is_err());
        assert!(be.scatter_rows(&mut bank, &[1, 4], &src).is_err());
        be.scatter_rows(&mut bank, &[3, 0], &src).unwrap();
        assert_eq!(be.gather_rows(&bank, &[3, 0]).unwrap(), src);
    }

    #[test]
    fn fill_normal_is_split_invariant() {
        let be = CpuBackend::new();
        let key = NoiseKey::new(3, Stream::ChainNoiseRes, [1, 2]);
        let mut whole = CpuTensor::zeros(&[5000, 3]);
        be.fill_normal(&mut whole, key).unwrap();
        let mut tail = CpuTensor::zeros(&[1000, 3]);
        be.fill_normal(&mut tail, key.with_row_offset(4000))
            .unwrap();
        assert_eq!(&whole.as_slice()[12000..], tail.as_slice());
    }
}
