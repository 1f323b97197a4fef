//! The MH and kinetic samplers through the ABI (docs/samplers.md): choosing a
//! trained model's transition by name, and reading the acceptance statistics
//! of its last sampling call. Sessions choose theirs through the
//! configuration (`langevin.method`, `langevin.shadow_mh`, ...).

use std::ffi::c_char;

use hatebm_rs::sampler::{Method, MhStats};

use crate::handle::{try_out, try_str};
use crate::model::{enter, hatebm_trained_model};
use crate::status::hatebm_status;

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
