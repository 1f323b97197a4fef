//! Langevin sampling through the ABI: the parameter and diagnostics structs,
//! and the sampler on user callback models (`hatebm_langevin_run_custom`).
//! Sessions run the same sampler on their own networks
//! (`hatebm_session_langevin`, in `session.rs`).

use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::sampler::{ChainKey, LangevinConfig, LangevinStats};
use hatebm_rs::{Energy, Error, Generator};

use crate::custom::{hatebm_energy, hatebm_generator};
use crate::error::{Failure, FfiResult};
use crate::handle::{
    Versioned, expect_disjoint, expect_len, opt_out, try_ref, try_slice_mut, try_versioned,
};
use crate::status::hatebm_status;
use hatebm_rs::runtime::host;

/// Every knob of the Langevin sampler, plus where its noise comes from.
///
/// Get one from `hatebm_langevin_default_params()` (library defaults) or
/// `hatebm_session_langevin_params()` (a session's training chains), then change
/// fields. One step moves the latent block z (if `update_latents`) then the
/// residual / image block y (if `update_res`):
/// `s <- s - (eps^2/2) * clip(dU/ds) + eps * noise`, with
/// `U(y, z) = sum_b H(G(z_b) + y_b) / temperature [+ |y|^2 / (2 prior_sigma_res^2)]
/// [+ |z|^2 / 2]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_langevin_params {
    /// `sizeof(hatebm_langevin_params)`; set by the functions that fill it.
    pub struct_size: u32,
    /// Number of steps K (0 leaves the chains unchanged).
    pub steps: usize,
    /// Temperature T > 0 (the energy is divided by it).
    pub temperature: f32,
    /// Step size of the residual / image block (> 0 when `update_res`).
    pub eps_res: f32,
    /// Step size of the latent block (> 0 when `update_latents`).
    pub eps_latent: f32,
    /// Maximum per-sample drift norm of the residual block; <= 0 = no clipping.
    pub clip_res: f32,
    /// Maximum per-sample drift norm of the latent block; <= 0 = no clipping.
    pub clip_latent: f32,
    /// sigma of a Gaussian prior N(0, sigma^2) on the residual; <= 0 = no prior.
    pub prior_sigma_res: f32,
    /// Whether the residual / image block y moves.
    pub update_res: bool,
    /// Whether the latent block z moves (needs a generator with a VJP, and z).
    pub update_latents: bool,
    /// Whether to add the noise term (false = gradient descent).
    pub noise: bool,
    /// Adds an N(0, I) prior |z|^2/2 on the latent (not temperature-scaled).
    pub latent_prior: bool,
    /// Sessions only: use the energy's EMA weights (if it keeps them).
    /// Ignored by `hatebm_langevin_run_custom`.
    pub use_ema: bool,
    /// Noise seed.
    pub seed: u64,
    /// Noise counter: chain i's noise at step k depends only on
    /// (seed, iteration, row_offset + i, k).
    pub iteration: u64,
    /// Global index of the first chain of this batch (so a batch split into
    /// parts gets the same noise as the whole).
    pub row_offset: u64,
}

// SAFETY: repr(C), first field u32 = size; all fields are plain numbers or bool.
unsafe impl Versioned for hatebm_langevin_params {
    const INIT: &'static str = "hatebm_langevin_default_params()";
}

impl hatebm_langevin_params {
    /// From the core's settings and noise key.
    pub fn from_core(c: &LangevinConfig, key: ChainKey, use_ema: bool) -> Self {
        hatebm_langevin_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            steps: c.steps,
            temperature: c.temperature,
            eps_res: c.eps_res,
            eps_latent: c.eps_latent,
            clip_res: c.clip_res.unwrap_or(0.0),
            clip_latent: c.clip_latent.unwrap_or(0.0),
            prior_sigma_res: c.prior_sigma_res.unwrap_or(0.0),
            update_res: c.update_res,
            update_latents: c.update_latents,
            noise: c.noise,
            latent_prior: c.latent_prior,
            use_ema,
            seed: key.seed,
            iteration: key.iteration,
            row_offset: key.row_offset,
        }
    }

    /// To the core's settings and noise key; range errors are
    /// `HATEBM_INVALID_ARGUMENT` naming the field.
    pub fn to_core(&self) -> FfiResult<(LangevinConfig, ChainKey)> {
        self.to_core_with(None)
    }

    /// [`Self::to_core`], with the method settings of `mcmc` when given (the
    /// library's ULA defaults otherwise).
    pub fn to_core_with(
        &self,
        mcmc: Option<&crate::sampler::hatebm_mcmc_params>,
    ) -> FfiResult<(LangevinConfig, ChainKey)> {
        let opt = |name: &str, v: f32| -> FfiResult<Option<f32>> {
            if v.is_nan() {
                Err(Failure::invalid(format!("params->{name} is NaN")))
            } else if v <= 0.0 {
                Ok(None)
            } else {
                Ok(Some(v))
            }
        };
        let c = LangevinConfig {
            steps: self.steps,
            temperature: self.temperature,
            eps_res: self.eps_res,
            eps_latent: self.eps_latent,
            update_res: self.update_res,
            update_latents: self.update_latents,
            noise: self.noise,
            clip_res: opt("clip_res", self.clip_res)?,
            clip_latent: opt("clip_latent", self.clip_latent)?,
            prior_sigma_res: opt("prior_sigma_res", self.prior_sigma_res)?,
            latent_prior: self.latent_prior,
            // The MH and kinetic methods are not in this struct (its layout is
            // fixed); they come from a `hatebm_mcmc_params`.
            ..LangevinConfig::default()
        };
        let c = match mcmc {
            Some(m) => m.apply(c)?,
            None => c,
        };
        c.validate().map_err(|e| match e {
            Error::Config(m) => {
                // Name the struct that holds the key: the method settings are
                // `mcmc`'s, the rest `params`'.
                let in_mcmc = crate::sampler::MCMC_KEYS
                    .iter()
                    .any(|k| m.starts_with(&format!("langevin.{k} ")));
                let to = if in_mcmc { "mcmc->" } else { "params->" };
                Failure::invalid(m.replacen("langevin.", to, 1))
            }
            other => other.into(),
        })?;
        let key = ChainKey {
            seed: self.seed,
            iteration: self.iteration,
            row_offset: self.row_offset,
        };
        Ok((c, key))
    }
}

/// Diagnostics of one Langevin call (means over steps and samples).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_langevin_stats {
    /// `sizeof(hatebm_langevin_stats)`, written by the library.
    pub struct_size: u32,
    /// Steps taken.
    pub steps: usize,
    /// Mean energy H(x) (not divided by T) over steps and samples.
    pub mean_energy: f64,
    /// Mean energy seen by the last step.
    pub last_energy: f64,
    /// Mean (eps_res^2/2) * |clipped gradient| per step and sample (residual block).
    pub drift_norm_res: f64,
    /// The same for the latent block.
    pub drift_norm_latent: f64,
    /// Fraction of (step, sample) pairs whose residual drift was clipped.
    pub clip_frac_res: f64,
    /// Fraction of (step, sample) pairs whose latent drift was clipped.
    pub clip_frac_latent: f64,
    /// Mean per-sample |z| after the last step (0 without latents).
    pub mean_latent_norm: f64,
}

impl From<&LangevinStats> for hatebm_langevin_stats {
    fn from(s: &LangevinStats) -> Self {
        hatebm_langevin_stats {
            struct_size: std::mem::size_of::<Self>() as u32,
            steps: s.steps,
            mean_energy: s.mean_energy,
            last_energy: s.last_energy,
            drift_norm_res: s.drift_norm_res,
            drift_norm_latent: s.drift_norm_latent,
            clip_frac_res: s.clip_frac_res,
            clip_frac_latent: s.clip_frac_latent,
            mean_latent_norm: s.mean_latent_norm,
        }
    }
}

fn default_params() -> hatebm_langevin_params {
    hatebm_langevin_params::from_core(
        &LangevinConfig::default(),
        ChainKey {
            seed: 0,
            iteration: 0,
            row_offset: 0,
        },
        false,
    )
}

crate::panic::plain_return! {
    hatebm_langevin_params => default_params(),
}

fn neutral_params() -> hatebm_langevin_params {
    hatebm_langevin_params::from_core(
        &LangevinConfig {
            steps: 500,
            temperature: 1.0,
            eps_res: 0.2,
            clip_res: None,
            ..LangevinConfig::default()
        },
        ChainKey {
            seed: 0,
            iteration: 0,
            row_offset: 0,
        },
        false,
    )
}

/// Neutral sampler settings for a user energy U(x) (callback energies, the
/// custom sampler): samples exp(-U) at T = 1, no drift clipping, no prior,
/// residual moves with noise, 500 steps of eps_res = 0.2;
/// seed/iteration/row_offset 0, `struct_size` set. Never fails.
///
/// Choose eps_res against the energy's scale: for a direction of curvature a
/// (standard deviation 1/sqrt(a)), unadjusted Langevin's stationary variance
/// is (1/a) * 2 / (2 - a * eps^2 / 2), a relative bias of about a * eps^2 / 4
/// (1 % for a = 1, eps = 0.2), and its mixing time is about 2 / (a * eps^2)
/// steps (50 here): use eps of 0.1-0.3 times the energy's smallest standard
/// deviation, and several mixing times of steps.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_langevin_neutral_params() -> hatebm_langevin_params {
    crate::ffi_panic_boundary! {
        neutral_params()
    }
}

/// The library's default sampler settings (the paper's CIFAR-10 values: 50
/// steps, T = 1e-3, eps_res = 5e-4, clip_res = 2.5, residual moves, noise on),
/// seed/iteration/row_offset 0, `struct_size` set. Never fails. These are
/// tuned for Hat EBM image energies; for your own energy start from
/// `hatebm_langevin_neutral_params()` instead (with these, an N(0, 1) energy
/// gives a sample variance of about 1e-5).
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_langevin_default_params() -> hatebm_langevin_params {
    crate::ffi_panic_boundary! {
        default_params()
    }
}

/// Checked chain buffers of one sampler call (already length- and overlap-checked).
pub(crate) struct ChainBuffers<'a> {
    pub z: Option<&'a mut [f32]>,
    pub y: &'a mut [f32],
}

/// Checks and borrows `(z, z_len)` and `(y, y_len)` for `n` chains:
/// `y_len == n * sample_len`; `z` (when not NULL) `z_len == n * latent_len`.
///
/// # Safety
/// As the entry points' contracts: each buffer is NULL (with length 0) or has
/// its length of writable floats.
pub(crate) unsafe fn chain_buffers<'a>(
    z: *mut f32,
    z_len: usize,
    y: *mut f32,
    y_len: usize,
    n: usize,
    sample_len: usize,
    latent_len: Option<usize>,
) -> FfiResult<ChainBuffers<'a>> {
    if n == 0 {
        return Err(Failure::invalid("n must be at least 1"));
    }
    expect_disjoint((z.cast_const(), z_len, "z"), (y.cast_const(), y_len, "y"))?;
    // SAFETY: forwarded.
    let y = unsafe { try_slice_mut(y, y_len, "y") }?;
    expect_len("y", y.len(), n, sample_len, "sample_len")?;
    let z = if z.is_null() && z_len == 0 {
        None
    } else {
        // SAFETY: forwarded.
        let z = unsafe { try_slice_mut(z, z_len, "z") }?;
        match latent_len {
            Some(l) => expect_len("z", z.len(), n, l, "latent_len")?,
            None => {
                return Err(Failure::invalid(
                    "`z` was given, but there is no generator to map latents (pass NULL, 0)",
                ));
            }
        }
        Some(z)
    };
    Ok(ChainBuffers { z, y })
}

/// Runs the Langevin sampler on user callback models: `n` chains with residuals
/// / images `y[n * sample_len]` and, with a generator, latents
/// `z[n * latent_len]` (images are `G(z) + y`; without a generator, pass
/// `generator = NULL, z = NULL, z_len = 0` and `y` are the images). The chains
/// are updated in place **only on success**; on any failure (including a
/// callback failing in the middle of the run) `z` and `y` are unchanged.
/// `out_stats` (may be NULL) receives the diagnostics. `params->use_ema` is
/// ignored. The callbacks run on this thread.
///
/// `HATEBM_SHAPE_MISMATCH` for wrong lengths; `HATEBM_INVALID_ARGUMENT` for bad
/// params (wrong `struct_size`, non-positive temperature, ...), `n == 0`,
/// `update_latents` without generator/z/VJP, or overlapping buffers;
/// `HATEBM_CALLBACK` when a callback returns non-zero; `HATEBM_NUMERIC` when a
/// callback leaves an output unwritten or non-finite.
///
/// # Safety
/// `energy` is NULL or live; `generator` is NULL or live; `params` is NULL or
/// readable; `z` is NULL (with `z_len == 0`) or has `z_len` writable floats;
/// `y` likewise; `out_stats` is NULL or writable. No other thread uses the
/// handles during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_langevin_run_custom(
    energy: *const hatebm_energy,
    generator: *const hatebm_generator,
    params: *const hatebm_langevin_params,
    z: *mut f32,
    z_len: usize,
    y: *mut f32,
    y_len: usize,
    n: usize,
    out_stats: *mut hatebm_langevin_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        let chains = RawChains { z, z_len, y, y_len, n };
        // SAFETY: forwarded from this function's contract.
        unsafe { run_custom(energy, generator, params, None, chains, out_stats, std::ptr::null_mut()) }
    }
}

/// The caller's chain buffers of a sampler entry point, unchecked.
#[derive(Clone, Copy)]
pub(crate) struct RawChains {
    pub z: *mut f32,
    pub z_len: usize,
    pub y: *mut f32,
    pub y_len: usize,
    pub n: usize,
}

/// The body of `hatebm_langevin_run_custom` and `hatebm_langevin_run_custom_mcmc`:
/// `mcmc` (when given) replaces the method settings of `params`; `out_mh` is
/// NULL or receives the acceptance statistics.
///
/// # Safety
/// As `hatebm_langevin_run_custom`'s contract; `out_mh` is NULL or writable.
pub(crate) unsafe fn run_custom(
    energy: *const hatebm_energy,
    generator: *const hatebm_generator,
    params: *const hatebm_langevin_params,
    mcmc: Option<&crate::sampler::hatebm_mcmc_params>,
    chains: RawChains,
    out_stats: *mut hatebm_langevin_stats,
    out_mh: *mut crate::sampler::hatebm_mh_stats,
) -> FfiResult<()> {
    let RawChains {
        z,
        z_len,
        y,
        y_len,
        n,
    } = chains;
    // SAFETY: forwarded from this function's contract.
    let out_stats = unsafe { opt_out(out_stats, "out_stats") }?;
    // SAFETY: forwarded from this function's contract.
    let out_mh = unsafe { opt_out(out_mh, "out_mh") }?;
    // SAFETY: forwarded from this function's contract.
    let energy = unsafe { try_ref(energy, "energy") }?;
    let generator = if generator.is_null() {
        None
    } else {
        // SAFETY: forwarded from this function's contract.
        Some(unsafe { try_ref(generator, "generator") }?)
    };
    // SAFETY: forwarded from this function's contract.
    let params = unsafe { try_versioned(params, "params") }?;
    let (config, key) = params.to_core_with(mcmc)?;
    // SAFETY: forwarded from this function's contract.
    let bufs = unsafe {
        chain_buffers(
            z,
            z_len,
            y,
            y_len,
            n,
            energy.sample_len(),
            generator.map(|g| g.latent_len()),
        )
    }?;
    if let (Some(g), None) = (generator, &bufs.z) {
        return Err(Failure::new(
            hatebm_status::HATEBM_NULL_PARAMETER,
            format!(
                "a generator was given but `z` is NULL (pass n * latent_len = {} latents)",
                n.saturating_mul(g.latent_len())
            ),
        ));
    }
    if let Some(g) = generator
        && g.sample_len() != energy.sample_len()
    {
        return Err(Error::shape(
            "generator output vs energy input",
            Energy::<CpuBackend>::sample_shape(energy),
            Generator::<CpuBackend>::output_shape(g),
        )
        .into());
    }
    energy.reset_calls();
    if let Some(g) = generator {
        g.reset_calls();
    }
    let (z_new, y_new, stats) = host::langevin(
        &CpuBackend::new(),
        energy,
        generator.map(|g| g as &dyn Generator<CpuBackend>),
        config,
        key,
        bufs.z.as_deref(),
        bufs.y,
        n,
    )?;
    // Nothing can fail any more: write the chains and the diagnostics.
    write_chains(bufs, z_new, &y_new);
    write_stats(&stats, out_stats, out_mh);
    Ok(())
}

/// Copies a sampler call's results into the caller's chain buffers.
pub(crate) fn write_chains(bufs: ChainBuffers<'_>, z_new: Option<Vec<f32>>, y_new: &[f32]) {
    if let (Some(dst), Some(src)) = (bufs.z, z_new) {
        dst.copy_from_slice(&src);
    }
    bufs.y.copy_from_slice(y_new);
}

/// Writes a sampler call's diagnostics to the out-params that were given.
pub(crate) fn write_stats(
    stats: &LangevinStats,
    out_stats: Option<crate::handle::Out<'_, hatebm_langevin_stats>>,
    out_mh: Option<crate::handle::Out<'_, crate::sampler::hatebm_mh_stats>>,
) {
    if let Some(o) = out_stats {
        o.write(hatebm_langevin_stats::from(stats));
    }
    if let Some(o) = out_mh {
        o.write(crate::sampler::hatebm_mh_stats::from(stats.mh.as_ref()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::*;

    #[test]
    fn params_round_trip_and_checks() {
        let p = hatebm_langevin_default_params();
        assert_eq!(
            p.struct_size as usize,
            std::mem::size_of::<hatebm_langevin_params>()
        );
        let (c, key) = p.to_core().unwrap();
        assert_eq!(c, LangevinConfig::default());
        assert_eq!(hatebm_langevin_params::from_core(&c, key, false), p);

        let mut q = p;
        q.clip_res = -1.0;
        q.prior_sigma_res = 0.0;
        q.clip_latent = 3.0;
        let (c, _) = q.to_core().unwrap();
        assert_eq!(
            (c.clip_res, c.prior_sigma_res, c.clip_latent),
            (None, None, Some(3.0))
        );

        q.clip_latent = f32::NAN;
        let e = q.to_core().unwrap_err();
        assert_eq!(e.status(), HATEBM_INVALID_ARGUMENT);
        assert!(
            e.message().contains("params->clip_latent"),
            "{}",
            e.message()
        );
        q = p;
        q.temperature = 0.0;
        let e = q.to_core().unwrap_err();
        assert_eq!(e.status(), HATEBM_INVALID_ARGUMENT);
        assert!(
            e.message().contains("params->temperature"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn versioned_structs_check_their_size() {
        let p = hatebm_langevin_default_params();
        // SAFETY: a valid, aligned struct.
        assert_eq!(unsafe { try_versioned(&p, "params") }.unwrap(), p);
        let mut bad = p;
        bad.struct_size = 7;
        // SAFETY: a valid, aligned struct (only its size field is wrong).
        let e = unsafe { try_versioned(&bad, "params") }.unwrap_err();
        assert_eq!(e.status(), HATEBM_INVALID_ARGUMENT);
        assert!(e.message().contains("hatebm_langevin_default_params()"));
        // SAFETY: NULL is the case under test.
        let e = unsafe { try_versioned::<hatebm_langevin_params>(std::ptr::null(), "params") };
        assert_eq!(e.unwrap_err().status(), HATEBM_NULL_PARAMETER);
    }
}
