//! Adam exactly as Keras/TF (`ApplyAdam`), optional per-tensor gradient
//! clipping by norm, and an optional exponential moving average (EMA) of the
//! weights (tfa `MovingAverage` form).
//!
//! Keras semantics (golden README, "Adam"): with `t = step + 1`,
//! `alpha = lr·sqrt(1 − β₂ᵗ)/(1 − β₁ᵗ)` (float32), `m += (g − m)(1 − β₁)`,
//! `v += (g² − v)(1 − β₂)`, `p −= alpha·m/(sqrt(v) + ε)`. ε is *not*
//! bias-corrected (unlike `torch.optim.Adam`) and `1 − β` is computed in float32.
//! The EMA starts at the weights before the first update and follows
//! `ema ← ema − (1 − d)(ema − p)` after every step. Unlike the paper's code,
//! the EMA is *used*: samplers and evaluation read it when enabled (see
//! `docs/training.md`); the training chains use the raw weights.

use serde::{Deserialize, Serialize};

use crate::backend::{AdamStep, Backend};
use crate::params::{Grads, ParamSet};
use crate::{Error, Result};

/// Optimiser settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε added to `sqrt(v)`.
    pub eps: f32,
    /// Clip every gradient tensor to this L2 norm before the step (`None` = off).
    pub clip_grad_norm: Option<f32>,
    /// EMA decay d (`None` = no EMA). The paper's code used 0.9999.
    pub ema_decay: Option<f32>,
    /// Warm the EMA up: use the decay `min(d, (1 + t)/(10 + t))` at step `t`
    /// (TensorFlow `ExponentialMovingAverage(num_updates=t)`), so a short run's
    /// average is not dominated by the random initial weights. Off by default:
    /// the reference (tfa `MovingAverage`) uses the fixed decay, and so do the
    /// goldens. Recommended for runs shorter than a few times `1/(1 − d)` steps.
    #[serde(default)]
    pub ema_warmup: bool,
    /// Piecewise-constant schedule `[[step, lr], ...]`: from `step` on (0-based
    /// optimiser steps) the learning rate is `lr`; before the first entry it is
    /// `lr` above. Steps must increase. (The official ImageNet config:
    /// `[[230000, 1e-5], [260000, 1e-6]]`.)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lr_schedule: Vec<(u64, f32)>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            clip_grad_norm: None,
            ema_decay: None,
            ema_warmup: false,
            lr_schedule: Vec::new(),
        }
    }
}

impl AdamConfig {
    /// Checks ranges; `what` prefixes the error (e.g. `ebm_optim`).
    ///
    /// # Errors
    /// [`Error::Config`] naming the knob and its range.
    pub fn validate(&self, what: &str) -> Result<()> {
        let in01 = |n: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{what}.{n} must be in [0, 1), got {v}"
                )))
            }
        };
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(Error::Config(format!(
                "{what}.lr must be finite and >= 0, got {}",
                self.lr
            )));
        }
        in01("beta1", self.beta1)?;
        in01("beta2", self.beta2)?;
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::Config(format!(
                "{what}.eps must be finite and > 0, got {}",
                self.eps
            )));
        }
        if let Some(c) = self.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "{what}.clip_grad_norm must be finite and > 0, got {c}"
            )));
        }
        if let Some(d) = self.ema_decay {
            in01("ema_decay", d)?;
        }
        for (i, &(step, lr)) in self.lr_schedule.iter().enumerate() {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(Error::Config(format!(
                    "{what}.lr_schedule[{i}] learning rate must be finite and >= 0, got {lr}"
                )));
            }
            if i > 0 && step <= self.lr_schedule[i - 1].0 {
                return Err(Error::Config(format!(
                    "{what}.lr_schedule steps must increase (entry {i}: {step})"
                )));
            }
        }
        Ok(())
    }

    /// The scheduled learning rate at optimiser step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f32 {
        self.lr_schedule
            .iter()
            .rev()
            .find(|(s, _)| step >= *s)
            .map_or(self.lr, |&(_, lr)| lr)
    }
}

/// Adam state for one parameter set: step counter, moments, EMA.
///
/// The fields are private so that the state keeps its invariants: moments
/// and EMA aligned with the parameter set they were made for, the step
/// counter at most [`Adam::MAX_STEP`], the learning-rate scale in (0, 1]
/// (it only ever falls, through [`Adam::scale_lr`]). A saved state comes back
/// through [`Adam::restore`], which checks all of this.
#[derive(Clone, Debug)]
pub struct Adam<B: Backend> {
    config: AdamConfig,
    step: u64,
    m: Vec<Option<B::Tensor>>,
    v: Vec<Option<B::Tensor>>,
    ema: Option<Vec<Option<B::Tensor>>>,
    lr_scale: f32,
}

/// Per-parameter optimiser tensors (moments, EMA weights), aligned with a
/// parameter set: `None` for buffers, which the optimiser does not update.
pub type Slots<B> = [Option<<B as Backend>::Tensor>];

/// EMA weights of a parameter set (see [`Slots`]).
pub type EmaWeights<B> = Vec<Option<<B as Backend>::Tensor>>;

/// A saved [`Adam`] state, as a checkpoint stores it: what
/// [`Adam::restore`] takes back. Entries are aligned with the parameter
/// set (`None` for buffers).
#[derive(Clone, Debug)]
pub struct AdamState<B: Backend> {
    /// Steps taken.
    pub step: u64,
    /// First moments.
    pub m: Vec<Option<B::Tensor>>,
    /// Second moments.
    pub v: Vec<Option<B::Tensor>>,
    /// EMA weights; must be `Some` exactly when the optimiser keeps an EMA.
    pub ema: Option<Vec<Option<B::Tensor>>>,
    /// Learning-rate multiplier, in (0, 1].
    pub lr_scale: f32,
}

impl<B: Backend> Adam<B> {
    /// Fresh state for `params` (moments zero; EMA = current weights).
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings; backend errors.
    pub fn new(be: &B, config: AdamConfig, params: &ParamSet<B>) -> Result<Self> {
        config.validate("optimizer")?;
        let zeros = |_: ()| -> Result<Vec<Option<B::Tensor>>> {
            params
                .iter()
                .map(|p| {
                    if p.spec.trainable {
                        be.zeros(&p.spec.shape).map(Some)
                    } else {
                        Ok(None)
                    }
                })
                .collect()
        };
        let ema = if config.ema_decay.is_some() {
            Some(
                params
                    .iter()
                    .map(|p| {
                        if p.spec.trainable {
                            Some(p.value.clone())
                        } else {
                            None
                        }
                    })
                    .collect(),
            )
        } else {
            None
        };
        Ok(Adam {
            m: zeros(())?,
            v: zeros(())?,
            ema,
            step: 0,
            config,
            lr_scale: 1.0,
        })
    }

    /// Clips (if configured) and applies one step to `params` with `grads`,
    /// then updates the EMA. `grads` is modified by clipping.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `grads` does not match; backend errors.
    pub fn step(&mut self, be: &B, params: &mut ParamSet<B>, grads: &mut Grads<B>) -> Result<()> {
        if grads.tensors.len() != params.len() || self.m.len() != params.len() {
            return Err(Error::InvalidArgument(
                "optimizer: gradients do not match the parameter set".into(),
            ));
        }
        let c = &self.config;
        let t = (self.step + 1) as f32;
        let b1p = c.beta1.powf(t);
        let b2p = c.beta2.powf(t);
        let h = AdamStep {
            alpha: c.lr_at(self.step) * self.lr_scale * (1.0 - b2p).sqrt() / (1.0 - b1p),
            one_minus_beta1: 1.0 - c.beta1,
            one_minus_beta2: 1.0 - c.beta2,
            eps: c.eps,
        };
        for (i, p) in params.iter_mut().enumerate() {
            let (Some(g), Some(m), Some(v)) = (
                grads.tensors[i].as_mut(),
                self.m[i].as_mut(),
                self.v[i].as_mut(),
            ) else {
                continue;
            };
            if let Some(max) = c.clip_grad_norm {
                be.clip_by_norm(g, max)?;
            }
            be.adam_update(&mut p.value, g, m, v, h)?;
        }
        if let (Some(ema), Some(d)) = (self.ema.as_mut(), c.ema_decay) {
            let d = if c.ema_warmup {
                let t = self.step as f32;
                d.min((1.0 + t) / (10.0 + t))
            } else {
                d
            };
            let omd = 1.0 - d;
            for (e, p) in ema.iter_mut().zip(params.iter()) {
                if let Some(e) = e {
                    be.ema_update(e, &p.value, omd)?;
                }
            }
        }
        self.step += 1;
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// First and second moments, aligned with the parameter set (`None` for buffers).
    pub fn moments(&self) -> (&Slots<B>, &Slots<B>) {
        (&self.m, &self.v)
    }

    /// The EMA weights (aligned with the parameter set), if kept.
    pub fn ema(&self) -> Option<&[Option<B::Tensor>]> {
        self.ema.as_deref()
    }

    /// Whether the optimiser keeps an EMA of the weights (`ema_decay` set).
    pub fn has_ema(&self) -> bool {
        self.ema.is_some()
    }

    /// The multiplier on the scheduled learning rate, in (0, 1].
    pub fn lr_scale(&self) -> f32 {
        self.lr_scale
    }

    /// Multiplies the learning-rate scale by `factor` (the divergence guard's
    /// back-off).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `factor` is finite and in (0, 1]
    /// (the scale only falls) or the product underflows to 0; the scale is
    /// then unchanged.
    pub fn scale_lr(&mut self, factor: f32) -> Result<()> {
        let new = self.lr_scale * factor;
        if !(factor.is_finite() && factor > 0.0 && factor <= 1.0 && new > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "learning-rate factor {factor} must be in (0, 1] (scale {} would become {new})",
                self.lr_scale
            )));
        }
        self.lr_scale = new;
        Ok(())
    }

    /// Sets the EMA weights to the current weights `params` (after loading
    /// new weights). No-op without EMA.
    pub fn reset_ema(&mut self, params: &ParamSet<B>) {
        if let Some(ema) = self.ema.as_mut() {
            for (e, p) in ema.iter_mut().zip(params.iter()) {
                if let Some(e) = e {
                    *e = p.value.clone();
                }
            }
        }
    }

    /// A copy of the state, as [`Adam::restore`] takes it back.
    pub fn state(&self) -> AdamState<B> {
        AdamState {
            step: self.step,
            m: self.m.clone(),
            v: self.v.clone(),
            ema: self.ema.clone(),
            lr_scale: self.lr_scale,
        }
    }

    /// Replaces the state by a saved one, after checking that it fits:
    /// entries aligned with this optimiser's (same count, same slots, same
    /// shapes), an EMA exactly when this optimiser keeps one, the step
    /// counter at most [`Adam::MAX_STEP`], the scale in (0, 1]. Finiteness is
    /// [`Adam::check_state`]'s job (it needs the backend).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming what does not fit; the state is then unchanged.
    pub fn restore(&mut self, be: &B, s: AdamState<B>) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if s.step > Self::MAX_STEP {
            return bad(format!(
                "step counter {} exceeds {}",
                s.step,
                Self::MAX_STEP
            ));
        }
        if !(s.lr_scale.is_finite() && s.lr_scale > 0.0 && s.lr_scale <= 1.0) {
            return bad(format!(
                "learning-rate scale {} is outside (0, 1] (the guard only lowers it from 1)",
                s.lr_scale
            ));
        }
        if s.ema.is_some() != self.ema.is_some() {
            return bad(format!(
                "EMA weights {} but the optimiser {} one",
                if s.ema.is_some() { "given" } else { "missing" },
                if self.ema.is_some() {
                    "keeps"
                } else {
                    "keeps no"
                }
            ));
        }
        let fits = |a: &[Option<B::Tensor>], b: &[Option<B::Tensor>]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => be.shape(x) == be.shape(y),
                    (None, None) => true,
                    _ => false,
                })
        };
        let ema_fits = match (&s.ema, &self.ema) {
            (Some(a), Some(b)) => fits(a, b),
            _ => true,
        };
        if !(fits(&s.m, &self.m) && fits(&s.v, &self.v) && ema_fits) {
            return bad("moments or EMA do not match the parameter set".into());
        }
        self.step = s.step;
        self.m = s.m;
        self.v = s.v;
        self.ema = s.ema;
        self.lr_scale = s.lr_scale;
        Ok(())
    }

    /// Replaces only the EMA weights (a model-only restore), checked as in
    /// [`Adam::restore`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if they do not fit; the state is then unchanged.
    pub fn restore_ema(&mut self, be: &B, ema: Vec<Option<B::Tensor>>) -> Result<()> {
        let mut s = self.state();
        s.ema = Some(ema);
        self.restore(be, s)
    }

    /// The largest step counter a state may hold: beyond 2⁵³ the counter is no
    /// longer exact as the `f64` of a JSON/TOML reader, and `step + 1` must not
    /// overflow.
    pub const MAX_STEP: u64 = 1 << 53;

    /// What is wrong with this state, if anything: a learning-rate scale
    /// outside (0, 1] (the guard only ever lowers it from 1), a step counter
    /// above [`Adam::MAX_STEP`], a second moment that is negative, or a NaN or
    /// infinity in a moment or the EMA. `what` names the optimiser in the
    /// message (`"ebm"`, `"gen"`). Run after every update and before a state
    /// is saved or restored, so that a corrupt state is never kept.
    ///
    /// # Errors
    /// A backend error.
    pub fn check_state(&self, be: &B, names: &[String], what: &str) -> Result<Option<String>> {
        if !(self.lr_scale.is_finite() && self.lr_scale > 0.0 && self.lr_scale <= 1.0) {
            return Ok(Some(format!(
                "{what} learning-rate scale is {} (must be in (0, 1])",
                self.lr_scale
            )));
        }
        if self.step > Self::MAX_STEP {
            return Ok(Some(format!(
                "{what} optimiser step {} exceeds {}",
                self.step,
                Self::MAX_STEP
            )));
        }
        let name = |i: usize| names.get(i).map_or("?", String::as_str);
        for (kind, set) in [("adam_m", &self.m), ("adam_v", &self.v)] {
            for (i, t) in set.iter().enumerate() {
                if let Some(t) = t
                    && !be.all_finite(t)?
                {
                    return Ok(Some(format!(
                        "non-finite value in {what}_{kind}.{}",
                        name(i)
                    )));
                }
            }
        }
        for (i, t) in self.v.iter().enumerate() {
            // A negative second moment cannot arise from an update (it is an
            // average of squares); it can only come from a corrupt file.
            if let Some(t) = t
                && be.sum(t)? < 0.0
            {
                return Ok(Some(format!(
                    "negative values in {what}_adam_v.{}",
                    name(i)
                )));
            }
        }
        if let Some(ema) = &self.ema {
            for (i, t) in ema.iter().enumerate() {
                if let Some(t) = t
                    && !be.all_finite(t)?
                {
                    return Ok(Some(format!("non-finite value in {what}_ema.{}", name(i))));
                }
            }
        }
        Ok(None)
    }

    /// Swaps the EMA weights into `params` (and the raw weights into the EMA
    /// slot); calling it twice restores the original state. No-op without EMA.
    /// Crate-private: outside, `Trainer::with_ema_weights` pairs the swaps.
    pub(crate) fn swap_ema(&mut self, params: &mut ParamSet<B>) {
        if let Some(ema) = self.ema.as_mut() {
            for (e, p) in ema.iter_mut().zip(params.iter_mut()) {
                if let Some(e) = e {
                    std::mem::swap(e, &mut p.value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuBackend;
    use crate::params::{Init, ParamSpec};

    /// With warm-up the EMA of a parameter that jumps from 0 to 1 forgets the
    /// start quickly; without it, it follows `1 − d^t` (tfa `MovingAverage`).
    #[test]
    fn ema_warmup_forgets_the_initial_weights() {
        let be = CpuBackend::new();
        let specs = [ParamSpec::trainable("w", vec![1], Init::Zeros)];
        for (warmup, after_20) in [(false, 1.0 - 0.99f64.powi(20)), (true, 0.9)] {
            let mut p = ParamSet::init(&be, &specs, 0).unwrap();
            let cfg = AdamConfig {
                lr: 0.0,
                ema_decay: Some(0.99),
                ema_warmup: warmup,
                ..AdamConfig::default()
            };
            let mut opt = Adam::new(&be, cfg, &p).unwrap();
            p.get_mut(0).value = be.from_host(&[1.0], &[1]).unwrap();
            for _ in 0..20 {
                let mut g = Grads::zeros_like(&be, &p).unwrap();
                opt.step(&be, &mut p, &mut g).unwrap();
            }
            let e = f64::from(
                be.to_host(opt.ema.as_ref().unwrap()[0].as_ref().unwrap())
                    .unwrap()[0],
            );
            if warmup {
                assert!(e > after_20, "warm-up EMA {e}");
            } else {
                assert!((e - after_20).abs() < 1e-5, "tfa EMA {e} vs {after_20}");
            }
        }
    }
}
