//! The MH and kinetic samplers through the ABI (docs/samplers.md): the method
//! settings (`hatebm_mcmc_params`) for sessions, trained models and callback
//! energies, and the acceptance statistics (`hatebm_mh_stats`) of a sampling
//! call or of a training iteration's chains. Sessions' training chains take
//! theirs from the configuration (`langevin.method`, `langevin.shadow_mh`, ...).

use std::ffi::{c_char, c_int};

use hatebm_rs::sampler::{LangevinConfig, Method, MhStats};

use crate::custom::{hatebm_energy, hatebm_generator};
use crate::error::{Failure, FfiResult};
use crate::handle::{Versioned, try_out, try_str, try_versioned};
use crate::langevin::{RawChains, hatebm_langevin_params, hatebm_langevin_stats};
use crate::model::{enter, hatebm_trained_model};
use crate::session::hatebm_session;
use crate::status::hatebm_status;

/// The transition of a chain (the `method` field of `hatebm_mcmc_params`,
/// passed as `int`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hatebm_sampler_method {
    /// Unadjusted Langevin (the paper's sampler).
    Ula = 0,
    /// Metropolis-adjusted Langevin.
    Mala = 1,
    /// Hamiltonian Monte Carlo.
    Hmc = 2,
    /// Underdamped Langevin (BAOAB splitting; unadjusted).
    Baoab = 3,
}

fn method_from_int(m: c_int) -> FfiResult<Method> {
    match m {
        0 => Ok(Method::Ula),
        1 => Ok(Method::Mala),
        2 => Ok(Method::Hmc),
        3 => Ok(Method::Baoab),
        _ => Err(Failure::invalid(format!(
            "mcmc->method = {m} is not a hatebm_sampler_method (0 ula, 1 mala, 2 hmc, 3 baoab)"
        ))),
    }
}

fn method_to_int(m: Method) -> c_int {
    match m {
        Method::Ula => 0,
        Method::Mala => 1,
        Method::Hmc => 2,
        Method::Baoab => 3,
    }
}

/// The transition and its settings, beside a `hatebm_langevin_params` (which
/// keeps T, the step sizes, K, clipping, priors and the noise key): the
/// configuration's `langevin.method`, `shadow_mh`, `adapt_steps`, ... keys
/// (docs/samplers.md has the equations). Get one from
/// `hatebm_mcmc_default_params()`, `hatebm_session_mcmc_params()` or
/// `hatebm_trained_model_mcmc_params()`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_mcmc_params {
    /// `sizeof(hatebm_mcmc_params)`; set by the functions that fill it.
    pub struct_size: u32,
    /// A `hatebm_sampler_method`.
    pub method: c_int,
    /// ULA only: record the MALA acceptance every step would have had (the
    /// chain is unchanged), with a suggested step size.
    pub shadow_mh: bool,
    /// MALA only: propose both blocks together (one decision per step).
    pub joint_proposal: bool,
    /// HMC only: estimate a diagonal mass in the warm-up (needs
    /// `adapt_steps >= 8`).
    pub adapt_mass: bool,
    /// MALA / HMC: the first `adapt_steps` steps adapt the step size towards
    /// `target_accept` (0 = none; at most the steps of the call).
    pub adapt_steps: usize,
    /// Target acceptance in (0, 1) of the adaptation and of the shadow
    /// monitor's suggestion (0.574 by default).
    pub target_accept: f32,
    /// HMC: leapfrog steps per transition (1..=1000).
    pub leapfrog_steps: usize,
    /// HMC / BAOAB: mass of the residual block (> 0).
    pub mass_res: f32,
    /// HMC / BAOAB: mass of the latent block (> 0).
    pub mass_latent: f32,
    /// BAOAB: friction per unit time (>= 0).
    pub friction: f32,
}

// SAFETY: repr(C), first field u32 = size; all fields are plain numbers or bool.
unsafe impl Versioned for hatebm_mcmc_params {
    const INIT: &'static str = "hatebm_mcmc_default_params()";
}

impl hatebm_mcmc_params {
    /// The method settings of `c`.
    pub fn from_core(c: &LangevinConfig) -> Self {
        hatebm_mcmc_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            method: method_to_int(c.method),
            shadow_mh: c.shadow_mh,
            joint_proposal: c.joint_proposal,
            adapt_mass: c.adapt_mass,
            adapt_steps: c.adapt_steps,
            target_accept: c.target_accept,
            leapfrog_steps: c.leapfrog_steps,
            mass_res: c.mass_res,
            mass_latent: c.mass_latent,
            friction: c.friction,
        }
    }

    /// `c` with these method settings (range checks are the caller's
    /// `validate`).
    ///
    /// # Errors
    /// `HATEBM_INVALID_ARGUMENT` for a `method` that is not a
    /// `hatebm_sampler_method`.
    pub fn apply(&self, c: LangevinConfig) -> FfiResult<LangevinConfig> {
        Ok(LangevinConfig {
            method: method_from_int(self.method)?,
            shadow_mh: self.shadow_mh,
            joint_proposal: self.joint_proposal,
            adapt_mass: self.adapt_mass,
            adapt_steps: self.adapt_steps,
            target_accept: self.target_accept,
            leapfrog_steps: self.leapfrog_steps,
            mass_res: self.mass_res,
            mass_latent: self.mass_latent,
            friction: self.friction,
            ..c
        })
    }
}

/// The configuration keys (under `langevin.`) that `hatebm_mcmc_params` holds.
pub(crate) const MCMC_KEYS: [&str; 10] = [
    "method",
    "shadow_mh",
    "joint_proposal",
    "adapt_mass",
    "adapt_steps",
    "target_accept",
    "leapfrog_steps",
    "mass_res",
    "mass_latent",
    "friction",
];

fn default_mcmc() -> hatebm_mcmc_params {
    hatebm_mcmc_params::from_core(&LangevinConfig::default())
}

crate::panic::plain_return! {
    hatebm_mcmc_params => default_mcmc(),
}

/// The library's default method settings: unadjusted Langevin, no monitor,
/// no adaptation (target 0.574), 10 leapfrog steps, unit masses, friction 1;
/// `struct_size` set. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_mcmc_default_params() -> hatebm_mcmc_params {
    crate::ffi_panic_boundary! {
        default_mcmc()
    }
}

/// Acceptance statistics of the last batch of chains of a sampling call
/// (means over steps and chains). A value that does not apply (a block that
/// does not move, an acceptance fraction of the shadow monitor, a suggestion
/// without the monitor) is NaN.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_mh_stats {
    /// `sizeof(hatebm_mh_stats)`, written by the library.
    pub struct_size: u32,
    /// Whether the call ran an MH method or the shadow monitor (false: plain
    /// ULA or BAOAB; every other field is then NaN or 0).
    pub available: bool,
    /// Mean min(1, alpha) of residual-block (HMC: joint) moves.
    pub alpha_res: f64,
    /// Mean min(1, alpha) of latent-block moves.
    pub alpha_latent: f64,
    /// Fraction of residual-block (HMC: joint) proposals accepted.
    pub accept_res: f64,
    /// Fraction of latent-block proposals accepted.
    pub accept_latent: f64,
    /// HMC: divergent transitions (energy error > 1000 or not finite).
    pub divergences: usize,
    /// Residual-block step size at the end of the call (after adaptation).
    pub eps_res: f64,
    /// Latent-block step size at the end of the call.
    pub eps_latent: f64,
    /// Shadow monitor: suggested residual step size for `target_accept`.
    pub suggested_eps_res: f64,
    /// Shadow monitor: suggested latent step size.
    pub suggested_eps_latent: f64,
}

impl From<Option<&MhStats>> for hatebm_mh_stats {
    fn from(s: Option<&MhStats>) -> Self {
        let v = |x: Option<f64>| x.unwrap_or(f64::NAN);
        hatebm_mh_stats {
            struct_size: std::mem::size_of::<Self>() as u32,
            available: s.is_some(),
            alpha_res: v(s.and_then(|s| s.alpha_res)),
            alpha_latent: v(s.and_then(|s| s.alpha_latent)),
            accept_res: v(s.and_then(|s| s.accept_res)),
            accept_latent: v(s.and_then(|s| s.accept_latent)),
            divergences: s.map_or(0, |s| s.divergences),
            eps_res: v(s.map(|s| s.eps_res)),
            eps_latent: v(s.map(|s| s.eps_latent)),
            suggested_eps_res: v(s.and_then(|s| s.suggested_eps_res)),
            suggested_eps_latent: v(s.and_then(|s| s.suggested_eps_latent)),
        }
    }
}

/// Chooses the transition of later `hatebm_trained_model_sample` calls:
/// `"ula"` (the run's unadjusted Langevin), `"mala"`, `"hmc"` or `"baoab"`.
/// Temperature, step sizes, steps and clipping stay the run's.
/// `HATEBM_CONFIG` for an unknown name (the message lists the valid ones) or
/// settings that do not suit the method.
///
/// # Safety
/// `model` is NULL or live; `method` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_set_sampler(
    model: *mut hatebm_trained_model,
    method: *const c_char,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mut m = unsafe { enter(model) }?;
        // SAFETY: forwarded from this function's contract.
        let name = unsafe { try_str(method, "method") }?;
        m.set_sampler_method(Method::parse(name)?)?;
        Ok(())
    }
}

/// Fills `*out` with the method settings of later
/// `hatebm_trained_model_sample` calls (the run's, unless changed).
///
/// # Safety
/// `model` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_mcmc_params(
    model: *mut hatebm_trained_model,
    out: *mut hatebm_mcmc_params,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let m = unsafe { enter(model) }?;
        out.write(hatebm_mcmc_params::from_core(m.sampler_config()));
        Ok(())
    }
}

/// Sets the method settings of later `hatebm_trained_model_sample` calls
/// (temperature, step sizes, steps and clipping stay the run's).
/// `HATEBM_INVALID_ARGUMENT` for a wrong `struct_size` or method number;
/// `HATEBM_CONFIG` for settings that do not suit each other or the run (the
/// message names the key); the model is unchanged on failure.
///
/// # Safety
/// `model` is NULL or live; `mcmc` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_set_mcmc(
    model: *mut hatebm_trained_model,
    mcmc: *const hatebm_mcmc_params,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mcmc = unsafe { try_versioned(mcmc, "mcmc") }?;
        // SAFETY: forwarded from this function's contract.
        let mut m = unsafe { enter(model) }?;
        let c = mcmc.apply(m.sampler_config().clone())?;
        m.set_sampler_config(c)?;
        Ok(())
    }
}

/// Writes the acceptance statistics of the last batch of chains of the last
/// `hatebm_trained_model_sample` call to `out` (`available = false` before
/// any call, or after a plain ULA / BAOAB call).
///
/// # Safety
/// `model` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_mh_stats(
    model: *mut hatebm_trained_model,
    out: *mut hatebm_mh_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let m = unsafe { enter(model) }?;
        let stats = m.last_sample_stats().and_then(|s| s.mh.as_ref());
        out.write(hatebm_mh_stats::from(stats));
        Ok(())
    }
}

/// Fills `*out` with the method settings of the session's training chains
/// (the configuration's `[langevin]` method keys).
///
/// # Safety
/// `session` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_mcmc_params(
    session: *const hatebm_session,
    out: *mut hatebm_mcmc_params,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { crate::session::enter(session) }?;
        out.write(hatebm_mcmc_params::from_core(&s.langevin_config().0));
        Ok(())
    }
}

/// The acceptance statistics of the negative chains of the session's last
/// completed iteration (the first shard's in a sharded run): an MH method's
/// acceptance, or the shadow monitor's (`langevin.shadow_mh = true`) with its
/// suggested step sizes; `available = false` for plain ULA or BAOAB.
/// `HATEBM_INVALID_ARGUMENT` before the first iteration of this session.
///
/// # Safety
/// `session` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_mh_stats(
    session: *const hatebm_session,
    out: *mut hatebm_mh_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { crate::session::enter(session) }?;
        let stats = s
            .last_stats()
            .ok_or_else(|| Failure::invalid("no iteration has run in this session yet"))?;
        out.write(hatebm_mh_stats::from(stats.langevin.mh.as_ref()));
        Ok(())
    }
}

/// `hatebm_session_langevin` with the transition of `mcmc` (MALA, HMC,
/// BAOAB, the shadow monitor) instead of ULA; `out_mh` (may be NULL)
/// receives the acceptance statistics. The conventions, errors and the
/// all-or-nothing update of the chains are `hatebm_session_langevin`'s.
///
/// # Safety
/// As `hatebm_session_langevin`; `mcmc` is NULL or readable; `out_mh` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_langevin_mcmc(
    session: *mut hatebm_session,
    params: *const hatebm_langevin_params,
    mcmc: *const hatebm_mcmc_params,
    z: *mut f32,
    z_len: usize,
    y: *mut f32,
    y_len: usize,
    n: usize,
    out_stats: *mut hatebm_langevin_stats,
    out_mh: *mut hatebm_mh_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mcmc = unsafe { try_versioned(mcmc, "mcmc") }?;
        let chains = RawChains { z, z_len, y, y_len, n };
        // SAFETY: forwarded from this function's contract.
        unsafe { crate::session::session_langevin(session, params, Some(&mcmc), chains, out_stats, out_mh) }
    }
}

/// `hatebm_langevin_run_custom` with the transition of `mcmc` (MALA, HMC,
/// BAOAB, the shadow monitor) on user callback models; `out_mh` (may be
/// NULL) receives the acceptance statistics. MH methods call the energy's
/// `energy_grad` once per block move (HMC: per leapfrog step) and need each
/// chain's energy to depend on that chain alone. The conventions, errors and
/// the all-or-nothing update of the chains are `hatebm_langevin_run_custom`'s.
///
/// # Safety
/// As `hatebm_langevin_run_custom`; `mcmc` is NULL or readable; `out_mh` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_langevin_run_custom_mcmc(
    energy: *const hatebm_energy,
    generator: *const hatebm_generator,
    params: *const hatebm_langevin_params,
    mcmc: *const hatebm_mcmc_params,
    z: *mut f32,
    z_len: usize,
    y: *mut f32,
    y_len: usize,
    n: usize,
    out_stats: *mut hatebm_langevin_stats,
    out_mh: *mut hatebm_mh_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mcmc = unsafe { try_versioned(mcmc, "mcmc") }?;
        let chains = RawChains { z, z_len, y, y_len, n };
        // SAFETY: forwarded from this function's contract.
        unsafe { crate::langevin::run_custom(energy, generator, params, Some(&mcmc), chains, out_stats, out_mh) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::hatebm_status::*;

    #[test]
    fn mcmc_params_round_trip_and_check_the_method() {
        let p = hatebm_mcmc_default_params();
        assert_eq!(
            p.struct_size as usize,
            std::mem::size_of::<hatebm_mcmc_params>()
        );
        assert_eq!(
            p.apply(LangevinConfig::default()).unwrap(),
            LangevinConfig::default()
        );
        for m in [Method::Ula, Method::Mala, Method::Hmc, Method::Baoab] {
            assert_eq!(method_from_int(method_to_int(m)).unwrap(), m);
        }
        let q = hatebm_mcmc_params { method: 7, ..p };
        let e = q.apply(LangevinConfig::default()).unwrap_err();
        assert_eq!(e.status(), HATEBM_INVALID_ARGUMENT);
        assert!(e.message().contains("mcmc->method = 7"), "{}", e.message());
        let c = LangevinConfig {
            method: Method::Hmc,
            adapt_steps: 20,
            adapt_mass: true,
            leapfrog_steps: 4,
            mass_latent: 2.0,
            ..LangevinConfig::default()
        };
        // A range error names the struct that holds the key.
        let (params, bad) = (
            crate::langevin::hatebm_langevin_neutral_params(),
            hatebm_mcmc_params {
                method: 2,
                leapfrog_steps: 0,
                ..p
            },
        );
        let e = params.to_core_with(Some(&bad)).unwrap_err();
        assert!(
            e.message().starts_with("mcmc->leapfrog_steps"),
            "{}",
            e.message()
        );
        let e = hatebm_langevin_params {
            temperature: -1.0,
            ..params
        }
        .to_core_with(Some(&p))
        .unwrap_err();
        assert!(
            e.message().contains("params->temperature"),
            "{}",
            e.message()
        );
        let r = hatebm_mcmc_params::from_core(&c)
            .apply(LangevinConfig::default())
            .unwrap();
        assert_eq!(r, c);
    }
}
