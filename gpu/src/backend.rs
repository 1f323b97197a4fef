//! [`TchBackend`]: the core's [`Backend`] on libtorch (CPU or CUDA).
//!
//! Every operation uses tch's fallible `f_*` functions (libtorch errors become
//! [`Error::Backend`]) and stays on the device; only [`Backend::to_host`] and
//! the scalar reductions ([`Backend::sum`], [`Backend::sq_norm`],
//! [`Backend::all_finite`]) copy to the host.
//!
//! The fused updates perform exactly the float32 operations the trait
//! documents, one rounding per operation and in the documented order, so that
//! they agree bit for bit with the CPU backend on the same inputs: products
//! with a scalar are formed explicitly (never through `add(other, alpha)`,
//! which libtorch evaluates with a fused multiply-add), and per-sample norms
//! are accumulated in float64 and rounded to float32, like the CPU backend.
//! Temporaries of the fused updates come from a small per-backend pool, so a
//! Langevin or Adam step does not allocate once warm.

use std::sync::{Arc, Mutex, PoisonError};

use hatebm_core::backend::{AdamStep, Backend, LangevinUpdate, shape as shp};
use hatebm_core::noise::{NoiseKey, fill_normal_rows};
use hatebm_core::spec::BackendSpec;
use hatebm_core::{Error, Result};
use rayon::prelude::*;
use tch::{Kind, Tensor};

use crate::device::TchDevice;
use crate::tensor::{TchResultExt, TchTensor, deep_copy, dims};

/// Where [`Backend::fill_normal`] draws its standard normal noise from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum NoiseMode {
    /// Generated on the host with [`hatebm_core::noise::fill_normal_rows`]
    /// (ChaCha8, row-addressed) and uploaded: exactly the CPU backend's noise,
    /// independent of device, batch split and thread count. CPU and tch runs
    /// with the same seed can be compared step by step. The default.
    #[default]
    Portable,
    /// Drawn on the device by libtorch's generator (`normal_`), seeded per
    /// call from a hash of the whole [`NoiseKey`] (`manual_seed`). Faster on a
    /// GPU (no host generation, no upload), but **not portable**: the values
    /// differ from the CPU backend's, depend on the libtorch version and the
    /// device type, and are not split-invariant (a row's noise depends on the
    /// batch it is drawn with). Reproducible only for the same device, libtorch
    /// version and batch layout. Reseeds libtorch's global generator (callers
    /// that also use it directly will see their stream reset).
    Device,
}

/// Options of a [`TchBackend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TchOptions {
    /// Noise source of [`Backend::fill_normal`] (default [`NoiseMode::Portable`]).
    pub noise: NoiseMode,
    /// Allow TF32 tensor-core math in cuDNN convolutions and cuBLAS products
    /// (CUDA only; default `false`). PyTorch's own default allows it for
    /// convolutions; it is several times faster on recent GPUs but rounds the
    /// operands to 10 mantissa bits (errors ~1e-3 instead of ~1e-7). This is a
    /// process-global libtorch setting, applied when a CUDA backend is built.
    pub allow_tf32: bool,
    /// Select deterministic cuDNN algorithms and disable cuDNN's autotuner
    /// (CUDA only; default `true`). Process-global, applied when a CUDA backend
    /// is built. Some libtorch CUDA kernels use atomics regardless (e.g. the
    /// backward of bilinear upsampling in the generators), see
    /// `docs/tch-backend.md`.
    pub deterministic: bool,
}

impl Default for TchOptions {
    fn default() -> Self {
        TchOptions {
            noise: NoiseMode::Portable,
            allow_tf32: false,
            deterministic: true,
        }
    }
}

/// Temporaries of the fused updates, reused across calls (at most
/// [`POOL_CAP`] kept; all on the backend's device).
#[derive(Default)]
struct Pool {
    free: Mutex<Vec<Tensor>>,
}

const POOL_CAP: usize = 8;

/// The libtorch backend.
///
/// Cheap to clone (clones share the temporary pool). Construct it with
/// [`TchBackend::cpu`], [`TchBackend::cuda`], [`TchBackend::new`] or
/// [`TchBackend::from_spec`].
#[derive(Clone)]
pub struct TchBackend {
    device: TchDevice,
    options: TchOptions,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for TchBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TchBackend")
            .field("device", &self.device)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Serialises the reseed-and-draw of [`NoiseMode::Device`] (libtorch's default
/// generators are process-global).
static DEVICE_RNG: Mutex<()> = Mutex::new(());

impl TchBackend {
    /// The backend on the CPU (always available), with default options.
    pub fn cpu() -> Self {
        TchBackend {
            device: TchDevice::Cpu,
            options: TchOptions::default(),
            pool: Arc::default(),
        }
    }

    /// The backend on CUDA device `n`, with default options.
    ///
    /// # Errors
    /// [`Error::DeviceUnavailable`] if libtorch sees no CUDA device (including a
    /// binary built without the `cuda` feature) or `n` is not below the device
    /// count.
    pub fn cuda(n: usize) -> Result<Self> {
        Self::with_options(TchDevice::Cuda(n), TchOptions::default())
    }

    /// The backend on `device`, with default options.
    ///
    /// # Errors
    /// As [`TchBackend::with_options`].
    pub fn new(device: TchDevice) -> Result<Self> {
        Self::with_options(device, TchOptions::default())
    }

    /// The backend on `device` with `options`. For a CUDA device this applies
    /// the process-global TF32 and determinism settings of `options`.
    ///
    /// # Errors
    /// [`Error::DeviceUnavailable`] for a missing CUDA device and for the MPS and
    /// Vulkan devices (not supported by libhatebm).
    pub fn with_options(device: TchDevice, options: TchOptions) -> Result<Self> {
        match device {
            TchDevice::Cpu => {}
            TchDevice::Cuda(n) => {
                if !tch::Cuda::is_available() {
                    return Err(Error::DeviceUnavailable(format!(
                        "tch:cuda:{n}: libtorch sees no CUDA device (no GPU or driver, a CPU-only \
                         libtorch, or a binary built without the `cuda` feature of hatebm-tch)"
                    )));
                }
                let count = crate::context::cuda_device_count();
                if n >= count {
                    return Err(Error::DeviceUnavailable(format!(
                        "tch:cuda:{n}: only {count} CUDA device(s) visible"
                    )));
                }
                crate::context::set_allow_tf32(options.allow_tf32);
                crate::context::set_cudnn_deterministic(options.deterministic);
            }
            TchDevice::Mps | TchDevice::Vulkan => {
                return Err(Error::DeviceUnavailable(format!(
                    "tch:{device}: libhatebm supports the tch devices cpu and cuda:N only"
                )));
            }
        }
        Ok(TchBackend {
            device,
            options,
            pool: Arc::default(),
        })
    }

    /// The backend a [`BackendSpec`] names (`tch:cpu` or `tch:cuda:N`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-tch spec (`cpu`, `auto`: the
    /// run-time dispatch decides those); as [`TchBackend::with_options`].
    pub fn from_spec(spec: BackendSpec) -> Result<Self> {
        match spec {
            BackendSpec::TchCpu => Ok(Self::cpu()),
            BackendSpec::TchCuda(n) => Self::cuda(n),
            other => Err(Error::InvalidArgument(format!(
                "backend spec `{other}` does not name a tch device"
            ))),
        }
    }

    /// The same backend with another noise mode (see [`NoiseMode`]).
    #[must_use]
    pub fn with_noise(mut self, mode: NoiseMode) -> Self {
        self.options.noise = mode;
        self
    }

    /// The options.
    pub fn options(&self) -> &TchOptions {
        &self.options
    }

    /// The noise mode.
    pub fn noise_mode(&self) -> NoiseMode {
        self.options.noise
    }

    /// The device as a [`tch::Device`].
    pub fn tch_device(&self) -> tch::Device {
        self.device.into()
    }

    /// Wraps a libtorch tensor as this backend's tensor: moved to this device,
    /// converted to `f32`, detached and copied (see [`TchTensor::from_tch`]).
    ///
    /// # Errors
    /// [`Error::Backend`] if libtorch fails.
    pub fn adopt(&self, t: &Tensor) -> Result<TchTensor> {
        TchTensor::from_tch(&t.f_to(self.tch_device()).tch()?)
    }

    /// A pooled temporary of `shape` (contents unspecified).
    fn take(&self, shape: &[i64]) -> Result<Tensor> {
        let n: i64 = shape.iter().product();
        let found = {
            let mut free = self
                .pool
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            free.iter()
                .position(|t| t.numel() as i64 == n)
                .map(|i| free.swap_remove(i))
        };
        let base = match found {
            Some(t) => t,
            None => Tensor::f_empty([n], (Kind::Float, self.tch_device())).tch()?,
        };
        base.f_view_(shape).tch()
    }

    /// Returns a temporary to the pool.
    fn give(&self, t: Tensor) {
        let mut free = self
            .pool
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if free.len() < POOL_CAP {
            free.push(t);
        }
    }

    /// Per-row L2 norms, accumulated in float64 and rounded to float32: `[b]`.
    fn norms_f32(&self, t: &Tensor, b: i64) -> Result<Tensor> {
        t.f_view_([b, -1])
            .tch()?
            .f_to_kind(Kind::Double)
            .tch()?
            .f_square_()
            .tch()?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)
            .tch()?
            .f_sqrt_()
            .tch()?
            .f_to_kind(Kind::Float)
            .tch()
    }
}

fn same_shape(what: &str, a: &TchTensor, b: &TchTensor) -> Result<()> {
    let (sa, sb) = (a.inner.size(), b.inner.size());
    if sa != sb {
        return Err(Error::shape(what, &to_usize(&sa), &to_usize(&sb)));
    }
    Ok(())
}

fn to_usize(s: &[i64]) -> Vec<usize> {
    s.iter().map(|&d| d as usize).collect()
}

/// `[b, 1, 1, ...]` for broadcasting a per-row factor over `t`.
fn row_bcast(t: &Tensor) -> Vec<i64> {
    let mut s = vec![1i64; t.dim()];
    if let Some(first) = s.first_mut() {
        *first = t.size()[0];
    }
    s
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

/// SplitMix64 finaliser.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The libtorch seed of a [`NoiseKey`] in [`NoiseMode::Device`].
fn device_seed(key: NoiseKey) -> u64 {
    let mut h = mix64(key.seed ^ 0x7463_685f_6e6f_6973); // "tch_nois"
    h = mix64(h ^ key.stream as u64);
    h = mix64(h ^ key.counter[0]);
    h = mix64(h ^ key.counter[1].rotate_left(17));
    mix64(h ^ key.row_offset.rotate_left(31))
}

/// Rows per rayon task when generating portable noise on the host.
fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

impl Backend for TchBackend {
    type Device = TchDevice;
    type Tensor = TchTensor;

    fn name(&self) -> String {
        format!("tch:{}", self.device)
    }

    fn describe(&self) -> String {
        let version = crate::libtorch_version();
        match self.device {
            TchDevice::Cuda(_) => format!(
                "tch:{} (libtorch {version}; {} CUDA device(s) visible)",
                self.device,
                crate::cuda_device_count()
            ),
            _ => format!("tch:{} (libtorch {version})", self.device),
        }
    }

    fn device(&self) -> &TchDevice {
        &self.device
    }

    fn sync(&self) -> Result<()> {
        if let TchDevice::Cuda(n) = self.device {
            // tch's synchronize panics on a CUDA error; turn that into an error.
            std::panic::catch_unwind(|| tch::Cuda::synchronize(n as i64)).map_err(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(ToString::to_string))
                    .unwrap_or_else(|| "unknown error".into());
                Error::Backend(format!("libtorch: cuda synchronize failed: {msg}"))
            })?;
        }
        Ok(())
    }

    fn shape(&self, t: &TchTensor) -> Vec<usize> {
        t.shape()
    }

    fn zeros(&self, shape: &[usize]) -> Result<TchTensor> {
        Ok(TchTensor::wrap(
            Tensor::f_zeros(dims(shape), (Kind::Float, self.tch_device())).tch()?,
        ))
    }

    fn from_host(&self, data: &[f32], shape: &[usize]) -> Result<TchTensor> {
        if data.len() != shp::numel(shape) {
            return Err(Error::ShapeMismatch {
                what: "tensor data".into(),
                expected: format!("{} elements for shape {shape:?}", shp::numel(shape)),
                got: format!("{} elements", data.len()),
            });
        }
        let host = Tensor::f_from_slice(data)
            .tch()?
            .f_view_(dims(shape))
            .tch()?;
        let t = match self.device {
            TchDevice::Cpu => host,
            _ => host.f_to(self.tch_device()).tch()?,
        };
        Ok(TchTensor::wrap(t))
    }

    fn to_host(&self, t: &TchTensor) -> Result<Vec<f32>> {
        let n = t.inner.numel();
        let mut v = vec![0.0f32; n];
        t.inner.f_copy_data(&mut v, n).tch()?;
        Ok(v)
    }

    fn reshape(&self, t: &TchTensor, shape: &[usize]) -> Result<TchTensor> {
        if t.inner.numel() != shp::numel(shape) {
            return Err(Error::shape("reshape", shape, &t.shape()));
        }
        Ok(TchTensor::wrap(
            deep_copy(&t.inner)?.f_view_(dims(shape)).tch()?,
        ))
    }

    fn fill_normal(&self, t: &mut TchTensor, key: NoiseKey) -> Result<()> {
        let _ng = tch::no_grad_guard();
        match self.options.noise {
            NoiseMode::Portable => {
                let size = t.inner.size();
                let n = t.inner.numel();
                if n == 0 {
                    return Ok(());
                }
                let row = shp::row_len(&to_usize(&size)).max(1);
                let chunk = rows_per_task(row);
                let mut host = vec![0.0f32; n];
                host.par_chunks_mut(row * chunk)
                    .enumerate()
                    .for_each(|(i, part)| {
                        fill_normal_rows(
                            part,
                            row,
                            key.with_row_offset(key.row_offset + (i * chunk) as u64),
                        );
                    });
                let src = Tensor::f_from_slice(&host).tch()?.f_view_(size).tch()?;
                t.inner.f_copy_(&src).tch()
            }
            NoiseMode::Device => {
                let _lock = DEVICE_RNG.lock().unwrap_or_else(PoisonError::into_inner);
                tch::manual_seed(device_seed(key) as i64);
                t.inner.f_normal_(0.0, 1.0).done()?;
                Ok(())
            }
        }
    }

    fn fill(&self, t: &mut TchTensor, value: f32) -> Result<()> {
        let _ng = tch::no_grad_guard();
        t.inner.f_fill_(f64::from(value)).done()?;
        Ok(())
    }

    fn copy_from(&self, dst: &mut TchTensor, src: &TchTensor) -> Result<()> {
        same_shape("copy_from", dst, src)?;
        let _ng = tch::no_grad_guard();
        dst.inner.f_copy_(&src.inner).tch()
    }

    fn axpy(&self, y: &mut TchTensor, a: f32, x: &TchTensor) -> Result<()> {
        same_shape("axpy", y, x)?;
        let _ng = tch::no_grad_guard();
        // y + (a·x), the product rounded first (no fused multiply-add).
        let tmp = self.take(&y.inner.size())?;
        x.inner.f_mul_scalar_out(&tmp, f64::from(a)).done()?;
        y.inner.f_add_(&tmp).done()?;
        self.give(tmp);
        Ok(())
    }

    fn axpby(&self, y: &mut TchTensor, a: f32, b: f32, x: &TchTensor) -> Result<()> {
        same_shape("axpby", y, x)?;
        let _ng = tch::no_grad_guard();
        let tmp = self.take(&y.inner.size())?;
        x.inner.f_mul_scalar_out(&tmp, f64::from(b)).done()?;
        y.inner.f_mul_scalar_(f64::from(a)).done()?;
        y.inner.f_add_(&tmp).done()?;
        self.give(tmp);
        Ok(())
    }

    fn mul_assign(&self, y: &mut TchTensor, x: &TchTensor) -> Result<()> {
        same_shape("mul_assign", y, x)?;
        let _ng = tch::no_grad_guard();
        y.inner.f_mul_(&x.inner).done()?;
        Ok(())
    }

    fn scale(&self, y: &mut TchTensor, a: f32) -> Result<()> {
        let _ng = tch::no_grad_guard();
        y.inner.f_mul_scalar_(f64::from(a)).done()?;
        Ok(())
    }

    fn add(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        same_shape("add", a, b)?;
        let _ng = tch::no_grad_guard();
        Ok(TchTensor::wrap(a.inner.f_add(&b.inner).tch()?))
    }

    fn sub(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        same_shape("sub", a, b)?;
        let _ng = tch::no_grad_guard();
        Ok(TchTensor::wrap(a.inner.f_sub(&b.inner).tch()?))
    }

    fn sum(&self, t: &TchTensor) -> Result<f64> {
        let _ng = tch::no_grad_guard();
        t.inner.f_sum(Kind::Double).tch()?.f_double_value(&[]).tch()
    }

    fn sq_norm(&self, t: &TchTensor) -> Result<f64> {
        let _ng = tch::no_grad_guard();
        t.inner
            .f_to_kind(Kind::Double)
            .tch()?
            .f_square_()
            .tch()?
            .f_sum(Kind::Double)
            .tch()?
            .f_double_value(&[])
            .tch()
    }

    fn all_finite(&self, t: &TchTensor) -> Result<bool> {
        let _ng = tch::no_grad_guard();
        Ok(t.inner
            .f_isfinite()
            .tch()?
            .f_all()
            .tch()?
            .f_int64_value(&[])
            .tch()?
            != 0)
    }

    fn row_norms(&self, t: &TchTensor) -> Result<TchTensor> {
        let _ng = tch::no_grad_guard();
        let size = t.inner.size();
        let b = size.first().copied().unwrap_or(0);
        if b == 0 || t.inner.numel() == 0 {
            return self.zeros(&[b as usize]);
        }
        Ok(TchTensor::wrap(self.norms_f32(&t.inner, b)?))
    }

    fn gather_rows(&self, t: &TchTensor, idx: &[usize]) -> Result<TchTensor> {
        let n = t.inner.size().first().copied().unwrap_or(0) as usize;
        if let Some(&i) = idx.iter().find(|&&i| i >= n) {
            return Err(Error::InvalidArgument(format!(
                "gather_rows: index {i} out of range for {n} rows"
            )));
        }
        let _ng = tch::no_grad_guard();
        let ix = self.index_tensor(idx)?;
        Ok(TchTensor::wrap(t.inner.f_index_select(0, &ix).tch()?))
    }

    fn scatter_rows(&self, t: &mut TchTensor, idx: &[usize], src: &TchTensor) -> Result<()> {
        let size = t.inner.size();
        let n = size.first().copied().unwrap_or(0) as usize;
        let mut want = to_usize(&size);
        if let Some(first) = want.first_mut() {
            *first = idx.len();
        }
        if src.shape() != want {
            return Err(Error::shape("scatter_rows source", &want, &src.shape()));
        }
        check_unique_in_range(idx, n)?;
        if idx.is_empty() {
            return Ok(());
        }
        let _ng = tch::no_grad_guard();
        let ix = self.index_tensor(idx)?;
        t.inner.f_index_copy_(0, &ix, &src.inner).done()?;
        Ok(())
    }

    fn copy_into_row(&self, dst: &mut TchTensor, row: usize, src: &TchTensor) -> Result<()> {
        let size = dst.inner.size();
        let n = size.first().copied().unwrap_or(0) as usize;
        let len = shp::row_len(&to_usize(&size));
        if row >= n {
            return Err(Error::InvalidArgument(format!(
                "copy_into_row: row {row} out of range for {n} rows"
            )));
        }
        if src.inner.numel() != len {
            return Err(Error::shape("copy_into_row source", &[len], &src.shape()));
        }
        let _ng = tch::no_grad_guard();
        let mut r = dst.inner.f_select(0, row as i64).tch()?;
        let s = src.inner.f_reshape(r.size()).tch()?;
        r.f_copy_(&s).tch()
    }

    fn slice_rows(&self, t: &TchTensor, start: usize, len: usize) -> Result<TchTensor> {
        let n = t.inner.size().first().copied().unwrap_or(0) as usize;
        if start + len > n {
            return Err(Error::InvalidArgument(format!(
                "slice_rows: rows {start}..{} out of range for {n}",
                start + len
            )));
        }
        let _ng = tch::no_grad_guard();
        let v = t.inner.f_narrow(0, start as i64, len as i64).tch()?;
        Ok(TchTensor::wrap(deep_copy(&v)?))
    }

    fn concat_rows(&self, parts: &[&TchTensor]) -> Result<TchTensor> {
        let first = parts
            .first()
            .ok_or_else(|| Error::InvalidArgument("concat_rows: no tensors".into()))?;
        let fs = first.shape();
        for p in parts {
            let ps = p.shape();
            if ps.get(1..) != fs.get(1..) || ps.is_empty() {
                return Err(Error::shape("concat_rows part", &fs, &ps));
            }
        }
        let _ng = tch::no_grad_guard();
        let ts: Vec<&Tensor> = parts.iter().map(|p| &p.inner).collect();
        Ok(TchTensor::wrap(Tensor::f_cat(&ts, 0).tch()?))
    }

    fn langevin_update(
        &self,
        s: &mut TchTensor,
        g: &mut TchTensor,
        noise: Option<&TchTensor>,
        p: LangevinUpdate,
        norms: &mut TchTensor,
    ) -> Result<()> {
        same_shape("langevin_update gradient", s, g)?;
        if let Some(n) = noise {
            same_shape("langevin_update noise", s, n)?;
        }
        let size = s.inner.size();
        let b = size.first().copied().unwrap_or(0);
        if norms.inner.size() != [b] {
            return Err(Error::shape(
                "langevin_update norms",
                &[b as usize],
                &norms.shape(),
            ));
        }
        if b == 0 || s.inner.numel() == 0 {
            return Ok(());
        }
        let _ng = tch::no_grad_guard();
        // 1. n_b = ||g_b|| (float64 accumulation, rounded to float32).
        let n = self.norms_f32(&g.inner, b)?;
        norms.inner.f_copy_(&n).tch()?;
        // 2. g_b <- (g_b · c) / max(n_b, c).
        if let Some(c) = p.clip {
            let denom = n
                .f_clamp_min(f64::from(c))
                .tch()?
                .f_view_(row_bcast(&g.inner))
                .tch()?;
            g.inner.f_mul_scalar_(f64::from(c)).done()?;
            g.inner.f_div_(&denom).done()?;
        }
        // 3. s <- (s − step·g) + noise_scale·ξ.
        let tmp = self.take(&size)?;
        g.inner.f_mul_scalar_out(&tmp, f64::from(p.step)).done()?;
        s.inner.f_sub_(&tmp).done()?;
        if let Some(xi) = noise {
            xi.inner
                .f_mul_scalar_out(&tmp, f64::from(p.noise_scale))
                .done()?;
            s.inner.f_add_(&tmp).done()?;
        }
        self.give(tmp);
        Ok(())
    }

    fn adam_update(
        &self,
        p: &mut TchTensor,
        g: &TchTensor,
        m: &mut TchTensor,
        v: &mut TchTensor,
        h: AdamStep,
    ) -> Result<()> {
        same_shape("adam gradient", p, g)?;
        same_shape("adam m", p, m)?;
        same_shape("adam v", p, v)?;
        let _ng = tch::no_grad_guard();
        let size = p.inner.size();
        let mut t1 = self.take(&size)?;
        let mut t2 = self.take(&size)?;
        // m += (g − m)·(1 − β₁)
        g.inner.f_sub_out(&t1, &m.inner).done()?;
        t1.f_mul_scalar_(f64::from(h.one_minus_beta1)).done()?;
        m.inner.f_add_(&t1).done()?;
        // v += (g² − v)·(1 − β₂)
        g.inner.f_mul_out(&t1, &g.inner).done()?;
        t1.f_sub_(&v.inner).done()?;
        t1.f_mul_scalar_(f64::from(h.one_minus_beta2)).done()?;
        v.inner.f_add_(&t1).done()?;
        // p −= (alpha·m) / (sqrt(v) + eps)
        m.inner.f_mul_scalar_out(&t1, f64::from(h.alpha)).done()?;
        self.sqrt_into(&v.inner, &mut t2)?;
        t2.f_add_scalar_(f64::from(h.eps)).done()?;
        t1.f_div_(&t2).done()?;
        p.inner.f_sub_(&t1).done()?;
        self.give(t1);
        self.give(t2);
        Ok(())
    }

    fn ema_update(&self, ema: &mut TchTensor, p: &TchTensor, one_minus_decay: f32) -> Result<()> {
        same_shape("ema", ema, p)?;
        let _ng = tch::no_grad_guard();
        // ema −= (1 − d)·(ema − p)
        let mut t = self.take(&ema.inner.size())?;
        ema.inner.f_sub_out(&t, &p.inner).done()?;
        t.f_mul_scalar_(f64::from(one_minus_decay)).done()?;
        ema.inner.f_sub_(&t).done()?;
        self.give(t);
        Ok(())
    }
}

impl TchBackend {
    /// `out ← sqrt(x)`, correctly rounded. libtorch's CPU `sqrt` for float32
    /// is vectorised with up to 1 ulp of error (it differs from IEEE `sqrtf`
    /// in ~20% of elements), so on the CPU the root is taken in float64 (where
    /// double rounding is harmless for a square root) and rounded; CUDA's
    /// `sqrtf` is IEEE-exact.
    fn sqrt_into(&self, x: &Tensor, out: &mut Tensor) -> Result<()> {
        match self.device {
            TchDevice::Cpu => {
                let d = x.f_to_kind(Kind::Double).tch()?.f_sqrt_().tch()?;
                out.f_copy_(&d).tch()
            }
            _ => x.f_sqrt_out(out).done(),
        }
    }

    /// Row indices as an `i64` tensor on this device.
    fn index_tensor(&self, idx: &[usize]) -> Result<Tensor> {
        let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let t = Tensor::f_from_slice(&v).tch()?;
        match self.device {
            TchDevice::Cpu => Ok(t),
            _ => t.f_to(self.tch_device()).tch(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hatebm_core::cpu::CpuBackend;
    use hatebm_core::noise::Stream;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut v = vec![0.0f32; n];
        fill_normal_rows(&mut v, n, NoiseKey::new(seed, Stream::User, [0, 0]));
        v
    }

    /// `to_tch` hands out an independent copy: mutating it (also through
    /// `&self` methods such as `set_requires_grad`) leaves the tensor alone.
    #[test]
    fn to_tch_is_an_independent_copy() {
        let tb = TchBackend::cpu();
        let t = tb.from_host(&[1.0, 2.0, 3.0], &[3]).unwrap();
        let c = t.to_tch().unwrap();
        let _ = c.set_requires_grad(true);
        assert!(c.requires_grad());
        let mut c2 = t.to_tch().unwrap();
        let _ = c2.f_fill_(5.0).unwrap();
        assert_eq!(tb.to_host(&t).unwrap(), vec![1.0, 2.0, 3.0]);
        assert!(!t.inner.requires_grad());
    }

    /// The fused updates agree bit for bit with the CPU backend.
    #[test]
    fn fused_updates_match_cpu_bitwise() {
        let (tb, cb) = (TchBackend::cpu(), CpuBackend::new());
        let shape = [5usize, 3, 4];
        let n = 60;
        let (s0, g0, x0) = (data(n, 1), data(n, 2), data(n, 3));
        for clip in [None, Some(2.0f32)] {
            let p = LangevinUpdate {
                step: 0.3,
                noise_scale: 0.7,
                clip,
            };
            let mut ts = tb.from_host(&s0, &shape).unwrap();
            let mut tg = tb.from_host(&g0, &shape).unwrap();
            let tx = tb.from_host(&x0, &shape).unwrap();
            let mut tn = tb.zeros(&[5]).unwrap();
            tb.langevin_update(&mut ts, &mut tg, Some(&tx), p, &mut tn)
                .unwrap();
            let mut cs = cb.from_host(&s0, &shape).unwrap();
            let mut cg = cb.from_host(&g0, &shape).unwrap();
            let cx = cb.from_host(&x0, &shape).unwrap();
            let mut cn = cb.zeros(&[5]).unwrap();
            cb.langevin_update(&mut cs, &mut cg, Some(&cx), p, &mut cn)
                .unwrap();
            assert_eq!(tb.to_host(&ts).unwrap(), cb.to_host(&cs).unwrap());
            assert_eq!(tb.to_host(&tg).unwrap(), cb.to_host(&cg).unwrap());
            assert_eq!(tb.to_host(&tn).unwrap(), cb.to_host(&cn).unwrap());
        }
        let h = AdamStep {
            alpha: 1e-3,
            one_minus_beta1: 0.1,
            one_minus_beta2: 1.0 - 0.999f32,
            eps: 1e-7,
        };
        let (mut tp, mut tm, mut tv) = (
            tb.from_host(&s0, &shape).unwrap(),
            tb.from_host(&x0, &shape).unwrap(),
            tb.zeros(&shape).unwrap(),
        );
        let (mut cp, mut cm, mut cv) = (
            cb.from_host(&s0, &shape).unwrap(),
            cb.from_host(&x0, &shape).unwrap(),
            cb.zeros(&shape).unwrap(),
        );
        let tg = tb.from_host(&g0, &shape).unwrap();
        let cg = cb.from_host(&g0, &shape).unwrap();
        for _ in 0..3 {
            tb.adam_update(&mut tp, &tg, &mut tm, &mut tv, h).unwrap();
            cb.adam_update(&mut cp, &cg, &mut cm, &mut cv, h).unwrap();
        }
        assert_eq!(tb.to_host(&tp).unwrap(), cb.to_host(&cp).unwrap());
        assert_eq!(tb.to_host(&tm).unwrap(), cb.to_host(&cm).unwrap());
        assert_eq!(tb.to_host(&tv).unwrap(), cb.to_host(&cv).unwrap());
        let mut te = tb.from_host(&x0, &shape).unwrap();
        let mut ce = cb.from_host(&x0, &shape).unwrap();
        tb.ema_update(&mut te, &tp, 0.01).unwrap();
        cb.ema_update(&mut ce, &cp, 0.01).unwrap();
        assert_eq!(tb.to_host(&te).unwrap(), cb.to_host(&ce).unwrap());
        let mut ta = tb.from_host(&s0, &shape).unwrap();
        let mut ca = cb.from_host(&s0, &shape).unwrap();
        tb.axpby(&mut ta, 0.3, -1.7, &tg).unwrap();
        cb.axpby(&mut ca, 0.3, -1.7, &cg).unwrap();
        tb.axpy(&mut ta, 0.9, &tg).unwrap();
        cb.axpy(&mut ca, 0.9, &cg).unwrap();
        tb.mul_assign(&mut ta, &tg).unwrap();
        cb.mul_assign(&mut ca, &cg).unwrap();
        assert_eq!(tb.to_host(&ta).unwrap(), cb.to_host(&ca).unwrap());
        assert_eq!(
            tb.to_host(&tb.row_norms(&ta).unwrap()).unwrap(),
            cb.to_host(&cb.row_norms(&ca).unwrap()).unwrap()
        );
        assert_eq!(tb.sq_norm(&ta).unwrap(), cb.sq_norm(&ca).unwrap());
    }

    #[test]
    fn portable_noise_is_the_cpu_noise_and_device_noise_is_seeded() {
        let (tb, cb) = (TchBackend::cpu(), CpuBackend::new());
        let key = NoiseKey::new(9, Stream::ChainNoiseRes, [2, 3]).with_row_offset(5);
        let mut t = tb.zeros(&[300, 7]).unwrap();
        let mut c = cb.zeros(&[300, 7]).unwrap();
        tb.fill_normal(&mut t, key).unwrap();
        cb.fill_normal(&mut c, key).unwrap();
        assert_eq!(tb.to_host(&t).unwrap(), cb.to_host(&c).unwrap());

        let db = TchBackend::cpu().with_noise(NoiseMode::Device);
        let mut a = db.zeros(&[4, 5]).unwrap();
        let mut b = db.zeros(&[4, 5]).unwrap();
        db.fill_normal(&mut a, key).unwrap();
        db.fill_normal(&mut b, key).unwrap();
        assert_eq!(db.to_host(&a).unwrap(), db.to_host(&b).unwrap());
        db.fill_normal(
            &mut b,
            NoiseKey {
                counter: [2, 4],
                ..key
            },
        )
        .unwrap();
        assert_ne!(db.to_host(&a).unwrap(), db.to_host(&b).unwrap());
    }

    #[test]
    fn clone_is_deep_and_rows_ops_work() {
        let be = TchBackend::cpu();
        let a = be
            .from_host(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])
            .unwrap();
        let mut b = a.clone();
        be.fill(&mut b, 0.0).unwrap();
        assert_eq!(be.to_host(&a).unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let mut r = be.reshape(&a, &[6]).unwrap();
        be.scale(&mut r, 2.0).unwrap();
        assert_eq!(be.to_host(&a).unwrap()[0], 1.0);
        let mut s = be.slice_rows(&a, 1, 2).unwrap();
        be.fill(&mut s, 9.0).unwrap();
        assert_eq!(be.to_host(&a).unwrap()[2], 3.0);
        let g = be.gather_rows(&a, &[2, 0]).unwrap();
        assert_eq!(be.to_host(&g).unwrap(), [5.0, 6.0, 1.0, 2.0]);
        let mut bank = be.zeros(&[4, 2]).unwrap();
        assert!(be.scatter_rows(&mut bank, &[1, 1], &g).is_err());
        assert!(be.scatter_rows(&mut bank, &[1, 4], &g).is_err());
        be.scatter_rows(&mut bank, &[3, 0], &g).unwrap();
        assert_eq!(
            be.to_host(&bank).unwrap(),
            [1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 5.0, 6.0]
        );
        let row = be.from_host(&[7.0, 8.0], &[2]).unwrap();
        be.copy_into_row(&mut bank, 1, &row).unwrap();
        assert_eq!(be.to_host(&bank).unwrap()[2..4], [7.0, 8.0]);
        let c = be.concat_rows(&[&a, &g]).unwrap();
        assert_eq!(be.shape(&c), vec![5, 2]);
        assert!(be.all_finite(&c).unwrap());
        assert_eq!(be.sum(&a).unwrap(), 21.0);
        assert!(be.from_host(&[1.0], &[2]).is_err());
        assert!(matches!(
            TchBackend::new(TchDevice::Mps),
            Err(Error::DeviceUnavailable(_))
        ));
        if !tch::Cuda::is_available() {
            assert!(matches!(
                TchBackend::cuda(0),
                Err(Error::DeviceUnavailable(_))
            ));
        }
        assert_eq!(TchBackend::cpu().name(), "tch:cpu");
    }
}
