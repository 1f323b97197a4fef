//! AIS estimates of `log Z` through the ABI (`hatebm_trained_model_log_z`):
//! the settings and result structs over `hatebm_rs::sampler::ais`
//! (docs/samplers.md, "AIS").

use std::ffi::c_int;

use hatebm_rs::sampler::{AisConfig, AisResult, Method};

use crate::error::{Failure, FfiResult};
use crate::handle::{Versioned, try_out, try_slice_mut, try_versioned};
use crate::model::{enter, hatebm_trained_model};
use crate::status::hatebm_status;

/// AIS settings: the geometric bridge from `N(0, base_sigma^2 I)` to
/// `exp(-H(x)/T)` at `beta_j = (j/temperatures)^beta_power`, `transitions`
/// MALA or HMC steps of size `eps` on every bridge, `chains` independent
/// chains. Get one from `hatebm_ais_default_params()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_ais_params {
    /// `sizeof(hatebm_ais_params)`; set by `hatebm_ais_default_params()`.
    pub struct_size: u32,
    /// Intermediate distributions (1..=1e6).
    pub temperatures: usize,
    /// Independent chains (2..=2^20); the log weights have this length.
    pub chains: usize,
    /// sigma of the Gaussian base (> 0).
    pub base_sigma: f32,
    /// MCMC steps per intermediate distribution.
    pub transitions: usize,
    /// `HATEBM_SAMPLER_METHOD_MALA` or `HATEBM_SAMPLER_METHOD_HMC` (a `hatebm_sampler_method`).
    pub method: c_int,
    /// Step size of the transitions (> 0).
    pub eps: f32,
    /// HMC: leapfrog steps per transition.
    pub leapfrog_steps: usize,
    /// Schedule exponent (> 0; larger = more bridges near the base).
    pub beta_power: f32,
    /// Noise seed (the estimate is reproducible from it).
    pub seed: u64,
}

// SAFETY: repr(C), first field u32 = size; all fields are plain numbers.
unsafe impl Versioned for hatebm_ais_params {
    const INIT: &'static str = "hatebm_ais_default_params()";
}

impl hatebm_ais_params {
    fn from_core(c: &AisConfig) -> Self {
        hatebm_ais_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            temperatures: c.temperatures,
            chains: c.chains,
            base_sigma: c.base_sigma,
            transitions: c.transitions,
            method: if c.method == Method::Mala { 1 } else { 2 },
            eps: c.eps,
            leapfrog_steps: c.leapfrog_steps,
            beta_power: c.beta_power,
            seed: c.seed,
        }
    }

    fn to_core(self) -> FfiResult<AisConfig> {
        let method = match self.method {
            1 => Method::Mala,
            2 => Method::Hmc,
            m => {
                return Err(Failure::invalid(format!(
                    "ais->method = {m}: AIS transitions are HATEBM_SAMPLER_METHOD_MALA (1) or HATEBM_SAMPLER_METHOD_HMC (2)"
                )));
            }
        };
        Ok(AisConfig {
            temperatures: self.temperatures,
            chains: self.chains,
            base_sigma: self.base_sigma,
            transitions: self.transitions,
            method,
            eps: self.eps,
            leapfrog_steps: self.leapfrog_steps,
            beta_power: self.beta_power,
            seed: self.seed,
        })
    }
}

/// An AIS estimate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_ais_result {
    /// `sizeof(hatebm_ais_result)`, written by the library.
    pub struct_size: u32,
    /// The estimate of log Z.
    pub log_z: f64,
    /// Its delta-method standard error.
    pub log_z_se: f64,
    /// Effective sample size of the importance weights (1..=chains).
    pub ess: f64,
    /// Mean acceptance min(1, alpha) of the transitions.
    pub mean_accept: f64,
}

impl From<&AisResult> for hatebm_ais_result {
    fn from(r: &AisResult) -> Self {
        hatebm_ais_result {
            struct_size: std::mem::size_of::<Self>() as u32,
            log_z: r.log_z,
            log_z_se: r.log_z_se,
            ess: r.ess,
            mean_accept: r.mean_accept,
        }
    }
}

fn default_ais() -> hatebm_ais_params {
    hatebm_ais_params::from_core(&AisConfig::default())
}

crate::panic::plain_return! {
    hatebm_ais_params => default_ais(),
}

/// The library's AIS defaults: 200 bridges, 256 chains, base sigma 1, 2 HMC
/// transitions of 5 leapfrog steps at eps 0.1, schedule exponent 3, seed 0;
/// `struct_size` set. Never fails. Tune `eps` to the energy's scale (the
/// result's `mean_accept` should stay well above 0.5).
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_ais_default_params() -> hatebm_ais_params {
    crate::ffi_panic_boundary! {
        default_ais()
    }
}

/// Estimates `log Z = log integral exp(-H(x)/T) dx` of the model's energy on
/// its input space at the run's sampler temperature T (the generator is not
/// involved), with the EMA weights when `use_ema` and the model keeps them.
/// `out` receives the estimate; `out_log_weights` (NULL with
/// `log_weights_len = 0`, or `params->chains` doubles) the chains' log
/// weights. Outputs are written only on success.
///
/// `HATEBM_INVALID_ARGUMENT` for a wrong `struct_size` or method, or a
/// weights buffer of the wrong length; `HATEBM_CONFIG` for out-of-range
/// settings (the message names the field); model and backend errors.
///
/// # Safety
/// `model` is NULL or live; `params` is NULL or readable; `out` is NULL or
/// writable; `out_log_weights` is NULL or has `log_weights_len` writable
/// doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_log_z(
    model: *mut hatebm_trained_model,
    params: *const hatebm_ais_params,
    use_ema: bool,
    out: *mut hatebm_ais_result,
    out_log_weights: *mut f64,
    log_weights_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let params = unsafe { try_versioned(params, "params") }?;
        let cfg = params.to_core()?;
        // SAFETY: forwarded from this function's contract.
        let weights = unsafe { try_slice_mut(out_log_weights, log_weights_len, "out_log_weights") }?;
        if !(weights.is_empty() || weights.len() == cfg.chains) {
            return Err(Failure::invalid(format!(
                "out_log_weights holds {} doubles; pass NULL, 0 or params->chains = {}",
                weights.len(),
                cfg.chains
            )));
        }
        // SAFETY: forwarded from this function's contract.
        let mut m = unsafe { enter(model) }?;
        let r = m.log_z(&cfg, use_ema)?;
        if !weights.is_empty() {
            weights.copy_from_slice(&r.log_weights);
        }
        out.write(hatebm_ais_result::from(&r));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::hatebm_status::*;

    #[test]
    fn ais_params_round_trip_and_check_the_method() {
        let p = hatebm_ais_default_params();
        assert_eq!(
            p.struct_size as usize,
            std::mem::size_of::<hatebm_ais_params>()
        );
        assert_eq!(p.to_core().unwrap(), AisConfig::default());
        let mala = hatebm_ais_params { method: 1, ..p };
        assert_eq!(mala.to_core().unwrap().method, Method::Mala);
        for bad in [0, 3, -1] {
            let e = hatebm_ais_params { method: bad, ..p }
                .to_core()
                .unwrap_err();
            assert_eq!(e.status(), HATEBM_INVALID_ARGUMENT);
        }
    }
}
