//! Annealed importance sampling (Neal 2001): an estimate of
//! `log Z = log ∫ exp(−H(x)/T) dx` for an energy on its own input space, with
//! its standard error and effective sample size.
//!
//! Path: the geometric bridge `f_β = f₀^{1−β} f₁^β` from the Gaussian
//! `f₀(x) = exp(−‖x‖²/(2σ₀²))` (`Z₀ = (2πσ₀²)^{d/2}`) to `f₁ = exp(−H/T)`,
//! at `β_j = (j/M)^p`, `j = 0..M`. Each chain starts at `x ~ N(0, σ₀²I)` and,
//! for `j = 1..M`, adds `(β_j − β_{j−1})·(log f₁(x) − log f₀(x))` to its log
//! weight, then makes `transitions` MALA or HMC steps that leave `f_{β_j}`
//! invariant (the samplers of [`super::mh`] on the tempered energy
//! `β·H/T + (1−β)‖x‖²/(2σ₀²)` at temperature 1). Then
//! `log Ẑ = log Z₀ + log mean_i exp(w_i)`, `ESS = (Σe^w)²/Σe^{2w}`, and the
//! delta-method standard error `se = sd(e^w)/(√N·mean(e^w))`.
//!
//! Noise: initial states `AisInit [0, 0]`, transitions at iteration `j`
//! (the MH samplers' streams), so the estimate is reproducible from the seed.

use super::langevin::{ChainKey, Chains, LangevinConfig, LangevinSampler, Method};
use crate::backend::{Backend, shape};
use crate::model::Energy;
use crate::noise::{NoiseKey, NoiseSource, Stream};
use crate::params::{Grads, ParamSet};
use crate::{Error, Result};

/// AIS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AisConfig {
    /// Intermediate distributions M (≥ 1).
    pub temperatures: usize,
    /// Independent chains N (≥ 2).
    pub chains: usize,
    /// σ₀ of the Gaussian base.
    pub base_sigma: f32,
    /// MCMC steps per intermediate distribution.
    pub transitions: usize,
    /// `mala` or `hmc`.
    pub method: Method,
    /// Step size ε of the transitions.
    pub eps: f32,
    /// HMC leapfrog steps.
    pub leapfrog_steps: usize,
    /// Schedule exponent p of `β_j = (j/M)^p` (> 0; larger = more steps near β = 0).
    pub beta_power: f32,
    /// Noise seed.
    pub seed: u64,
}

impl Default for AisConfig {
    fn default() -> Self {
        AisConfig {
            temperatures: 200,
            chains: 256,
            base_sigma: 1.0,
            transitions: 2,
            method: Method::Hmc,
            eps: 0.1,
            leapfrog_steps: 5,
            beta_power: 3.0,
            seed: 0,
        }
    }
}

/// An AIS estimate.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AisResult {
    /// `log Ẑ`.
    pub log_z: f64,
    /// Delta-method standard error of `log Ẑ`.
    pub log_z_se: f64,
    /// Effective sample size of the importance weights (1..=N).
    pub ess: f64,
    /// Mean acceptance `min(1, α)` of the transitions.
    pub mean_accept: f64,
    /// The chains' log weights.
    pub log_weights: Vec<f64>,
}

/// `β·H(x)/T + (1−β)‖x‖²/(2σ₀²)` (a [`Energy`] at temperature 1).
struct Tempered<'a, B: Backend> {
    be: &'a B,
    inner: &'a dyn Energy<B>,
    beta: f32,
    inv_t: f32,
    inv_var0: f32,
    none: ParamSet<B>,
}

impl<B: Backend> Tempered<'_, B> {
    fn base_term(&self, x: &B::Tensor) -> Result<Vec<f64>> {
        let n = self.be.to_host(&self.be.row_norms(x)?)?;
        Ok(n.iter()
            .map(|&v| 0.5 * f64::from(self.inv_var0) * f64::from(v) * f64::from(v))
            .collect())
    }

    fn mix(&self, h: &B::Tensor, x: &B::Tensor) -> Result<B::Tensor> {
        let h = self.be.to_host(h)?;
        let base = self.base_term(x)?;
        let (b, t) = (f64::from(self.beta), f64::from(self.inv_t));
        let e: Vec<f32> = h
            .iter()
            .zip(&base)
            .map(|(&h, &q)| (b * t * f64::from(h) + (1.0 - b) * q) as f32)
            .collect();
        self.be.from_host(&e, &[e.len()])
    }
}

impl<B: Backend> Energy<B> for Tempered<'_, B> {
    fn describe(&self) -> String {
        format!("Tempered(beta={}, {})", self.beta, self.inner.describe())
    }
    fn sample_shape(&self) -> &[usize] {
        self.inner.sample_shape()
    }
    fn energy(&self, x: &B::Tensor) -> Result<B::Tensor> {
        self.mix(&self.inner.energy(x)?, x)
    }
    fn energy_grad_x(&self, x: &B::Tensor) -> Result<(B::Tensor, B::Tensor)> {
        let (h, mut g) = self.inner.energy_grad_x(x)?;
        self.be.axpby(
            &mut g,
            self.beta * self.inv_t,
            (1.0 - self.beta) * self.inv_var0,
            x,
        )?;
        Ok((self.mix(&h, x)?, g))
    }
    fn energy_grad_params(&self, _: &B::Tensor, _: &[f32], _: &mut Grads<B>) -> Result<B::Tensor> {
        Err(Error::InvalidArgument(
            "a tempered AIS energy has no trainable parameters".into(),
        ))
    }
    fn params(&self) -> &ParamSet<B> {
        &self.none
    }
    fn params_mut(&mut self) -> &mut ParamSet<B> {
        &mut self.none
    }
}

/// Runs AIS for `exp(−H/T)` (see the module docs).
///
/// # Errors
/// [`Error::Config`] for out-of-range settings; model and backend errors.
pub fn ais<B: Backend>(
    be: &B,
    energy: &dyn Energy<B>,
    temperature: f32,
    cfg: &AisConfig,
    noise: &mut dyn NoiseSource<B>,
) -> Result<AisResult> {
    check(temperature, cfg)?;
    let d = shape::numel(energy.sample_shape());
    let n = cfg.chains;
    let var0 = f64::from(cfg.base_sigma) * f64::from(cfg.base_sigma);
    let mut y = be.zeros(&shape::batched(n, energy.sample_shape()))?;
    noise.normal(be, NoiseKey::new(cfg.seed, Stream::AisInit, [0, 0]), &mut y)?;
    be.scale(&mut y, cfg.base_sigma)?;
    let mut chains = Chains { z: None, y };
    let sampler = LangevinSampler::new(LangevinConfig {
        steps: cfg.transitions,
        temperature: 1.0,
        eps_res: cfg.eps,
        clip_res: None,
        method: cfg.method,
        leapfrog_steps: cfg.leapfrog_steps,
        ..LangevinConfig::default()
    })?;
    let beta = |j: usize| (j as f64 / cfg.temperatures as f64).powf(f64::from(cfg.beta_power));
    let mut logw = vec![0.0f64; n];
    let (mut acc, mut acc_n) = (0.0, 0usize);
    let inv_t = 1.0 / temperature;
    for j in 1..=cfg.temperatures {
        let db = beta(j) - beta(j - 1);
        let h = be.to_host(&energy.energy(&chains.y)?)?;
        let x2 = be.to_host(&be.row_norms(&chains.y)?)?;
        for i in 0..n {
            let log_f1 = -f64::from(h[i]) * f64::from(inv_t);
            let log_f0 = -f64::from(x2[i]) * f64::from(x2[i]) / (2.0 * var0);
            logw[i] += db * (log_f1 - log_f0);
        }
        if cfg.transitions == 0 {
            continue;
        }
        let tempered = Tempered {
            be,
            inner: energy,
            beta: beta(j) as f32,
            inv_t,
            inv_var0: (1.0 / var0) as f32,
            none: ParamSet::init(be, &[], 0)?,
        };
        let key = ChainKey {
            seed: cfg.seed,
            iteration: j as u64,
            row_offset: 0,
        };
        let st = sampler.run(be, &tempered, None, &mut chains, noise, key, None)?;
        if let Some(a) = st.mh.and_then(|m| m.alpha_res) {
            acc += a;
            acc_n += 1;
        }
    }
    if logw.iter().any(|w| w.is_nan()) {
        return Err(Error::InvalidArgument(
            "ais: a log weight is NaN (the energy is not finite on the path)".into(),
        ));
    }
    let max = logw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logw.iter().map(|l| (l - max).exp()).collect();
    let nf = n as f64;
    let mean = w.iter().sum::<f64>() / nf;
    let var = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nf - 1.0);
    let log_z0 = 0.5 * d as f64 * (2.0 * std::f64::consts::PI * var0).ln();
    Ok(AisResult {
        log_z: log_z0 + max + mean.ln(),
        log_z_se: var.sqrt() / (nf.sqrt() * mean),
        ess: w.iter().sum::<f64>().powi(2) / w.iter().map(|v| v * v).sum::<f64>(),
        mean_accept: if acc_n > 0 { acc / acc_n as f64 } else { 1.0 },
        log_weights: logw,
    })
}

fn check(temperature: f32, c: &AisConfig) -> Result<()> {
    let bad = |m: String| Err(Error::Config(format!("ais: {m}")));
    if !(temperature.is_finite() && temperature > 0.0) {
        return bad(format!(
            "temperature must be finite and > 0, got {temperature}"
        ));
    }
    if !(1..=1_000_000).contains(&c.temperatures) {
        return bad(format!(
            "temperatures must lie in 1..=1e6, got {}",
            c.temperatures
        ));
    }
    if !(2..=1 << 20).contains(&c.chains) {
        return bad(format!("chains must lie in 2..=2^20, got {}", c.chains));
    }
    for (name, v) in [
        ("base_sigma", c.base_sigma),
        ("eps", c.eps),
        ("beta_power", c.beta_power),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return bad(format!("{name} must be finite and > 0, got {v}"));
        }
    }
    if !matches!(c.method, Method::Mala | Method::Hmc) {
        return bad(format!(
            "transitions must leave each bridge invariant: method mala or hmc, not {}",
            c.method.name()
        ));
    }
    super::langevin::check_steps("ais.transitions", c.transitions)
}
