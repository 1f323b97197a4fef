//! The Langevin sampler over a residual block `y` and, optionally, a latent
//! block `z` through a generator.
//!
//! The chain's energy is `U(y, z) = Σ_b H(G(z_b) + y_b) / T + τ‖y‖² [+ ½‖z‖²]`
//! (without a generator, `G(z)` is absent and `y` is the image itself). One
//! step, for a block `s` with step size `ε_s` (golden README, "Langevin"):
//!
//! 1. if latents move: `g_z = ∂U/∂z` (through the generator's VJP);
//!    `z ← z − (ε_z²/2)·clip(g_z) + ε_z·ξ_z`;
//! 2. if the residual moves: `g_y = ∂U/∂y` at the *updated* `z`;
//!    `y ← y − (ε_y²/2)·clip(g_y) + ε_y·ξ_y`;
//!
//! where `clip` scales each sample's gradient so its *drift* `(ε²/2)·‖g_b‖` is
//! at most the configured maximum (`tf.clip_by_norm(g_b, max/(ε²/2))`), and ξ is
//! standard normal noise (optional). τ = 1/(2σ²) for a residual prior σ. The
//! latent prior `½‖z‖²` (an N(0, I) prior on z, *not temperature-scaled*) is
//! off by default, as in the paper's code; turn it on with
//! [`LangevinConfig::latent_prior`].
//!
//! Noise is drawn through a [`NoiseSource`] with keys
//! `(seed, ChainNoiseRes | ChainNoiseLatent, [iteration, k], row_offset)`, so
//! chain *i*'s noise at step *k* depends only on the seed, the iteration, *i*
//! and *k*.
//!
//! The hot loop allocates no sampler buffers (networks reuse pooled buffers);
//! diagnostics are recorded on the device into `[K, B]` tensors and copied to
//! the host once per call.

use crate::backend::{Backend, LangevinUpdate, shape};
use crate::model::{Energy, Generator};
use crate::noise::{NoiseKey, NoiseSource, Stream};
use crate::{Error, Result};

/// Sampler settings (all knobs; defaults are the paper's CIFAR-10 synthesis values).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LangevinConfig {
    /// Number of steps K.
    pub steps: usize,
    /// Temperature T (the energy is divided by it).
    pub temperature: f32,
    /// Step size ε of the residual / image block (drift ε²/2, noise ε).
    pub eps_res: f32,
    /// Step size ε of the latent block.
    pub eps_latent: f32,
    /// Whether the residual / image block moves.
    pub update_res: bool,
    /// Whether the latent block moves (joint Hat EBM, no-residual energy).
    pub update_latents: bool,
    /// Whether to add the noise term (off = gradient descent).
    pub noise: bool,
    /// Maximum per-sample drift norm of the residual block (`None` = no clipping).
    /// Its default is on (2.5), so TOML — which has no null — writes "no
    /// clipping" as `clip_res = false`; an absent key keeps the default.
    #[serde(with = "number_or_false")]
    pub clip_res: Option<f32>,
    /// Maximum per-sample drift norm of the latent block (`None` = no clipping).
    pub clip_latent: Option<f32>,
    /// σ of a Gaussian prior N(0, σ²) on the residual (`None` = no prior);
    /// enters as τ‖y‖² with τ = 1/(2σ²).
    pub prior_sigma_res: Option<f32>,
    /// Adds an N(0, I) prior `½‖z‖²` on the latent (off by default; the paper's
    /// code has none).
    pub latent_prior: bool,
    /// The transition ([`Method`]; `ula` = unadjusted Langevin, the paper's).
    pub method: Method,
    /// ULA only: record, for every step, the MALA acceptance probability the
    /// step would have had (the chain still always moves; see
    /// [`crate::sampler::mh`]).
    pub shadow_mh: bool,
    /// MALA / HMC: the first `adapt_steps` steps of every call adapt ε by dual
    /// averaging towards `target_accept`; ε is then frozen (0 = no adaptation).
    pub adapt_steps: usize,
    /// Target acceptance of the adaptation and of the shadow monitor's
    /// suggested ε (0.574 is MALA's optimal-scaling value).
    pub target_accept: f32,
    /// HMC: leapfrog steps L per transition (each costs one energy gradient).
    pub leapfrog_steps: usize,
    /// HMC / BAOAB: mass m of the residual block (M = m·I).
    pub mass_res: f32,
    /// HMC / BAOAB: mass of the latent block.
    pub mass_latent: f32,
    /// BAOAB: friction γ per unit time (a step lasts ε time units).
    pub friction: f32,
    /// MALA: propose the latent and residual blocks together from the same
    /// point, one accept/reject per chain and step (`false`: latent then
    /// residual, each accepted on its own). With adaptation, one factor of
    /// both step sizes is adapted, as for HMC.
    pub joint_proposal: bool,
    /// HMC: replace the scalar masses by per-coordinate (diagonal) ones
    /// estimated in the warm-up: over steps `[W/4, W/2)` of the
    /// `adapt_steps = W` warm-up steps, the variance of every coordinate
    /// across chains and steps becomes its inverse mass (shrunk towards the
    /// block's mean, scaled so that the mean inverse mass stays `1/mass_s`);
    /// the step size is then adapted again for `[W/2, W)`. Needs
    /// `adapt_steps >= 8`.
    pub adapt_mass: bool,
}

/// Serde form of an optional number whose default is `Some`: `None` is written
/// `false` (TOML cannot omit it: an absent key means the default), a number
/// is `Some`; `null` (JSON) also reads as `None`.
mod number_or_false {
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};
    use serde::ser::Serializer;

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<f32>`
    pub fn serialize<S: Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => s.serialize_f32(*x),
            None => s.serialize_bool(false),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
        d.deserialize_any(NumberOrFalse)
    }

    struct NumberOrFalse;

    impl<'de> Visitor<'de> for NumberOrFalse {
        type Value = Option<f32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number, or false for none")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<f32>, E> {
            if v {
                Err(E::custom(
                    "expected a number, or false for none (true is not a value)",
                ))
            } else {
                Ok(None)
            }
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f32>, E> {
            Ok(Some(v as f32))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f32>, E> {
            Ok(Some(v as f32))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f32>, E> {
            Ok(Some(v as f32))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<f32>, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<f32>, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Option<f32>, D2::Error> {
            d.deserialize_any(NumberOrFalse)
        }
    }
}

impl Default for LangevinConfig {
    fn default() -> Self {
        LangevinConfig {
            steps: 50,
            temperature: 1e-3,
            eps_res: 5e-4,
            eps_latent: 1e-3,
            update_res: true,
            update_latents: false,
            noise: true,
            clip_res: Some(2.5),
            clip_latent: None,
            prior_sigma_res: None,
            latent_prior: false,
            method: Method::Ula,
            shadow_mh: false,
            adapt_steps: 0,
            target_accept: 0.574,
            leapfrog_steps: 10,
            mass_res: 1.0,
            mass_latent: 1.0,
            friction: 1.0,
            joint_proposal: false,
            adapt_mass: false,
        }
    }
}

impl LangevinConfig {
    /// τ of the residual prior (0 without one).
    pub fn tau_res(&self) -> f32 {
        self.prior_sigma_res.map_or(0.0, |s| 1.0 / (2.0 * s * s))
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad knob and its allowed range.
    pub fn validate(&self) -> Result<()> {
        check_steps("langevin.steps", self.steps)?;
        let pos = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "langevin.{name} must be finite and > 0, got {v}"
                )))
            }
        };
        pos("temperature", self.temperature)?;
        if self.update_res {
            pos("eps_res", self.eps_res)?;
        }
        if self.update_latents {
            pos("eps_latent", self.eps_latent)?;
        }
        if let Some(c) = self.clip_res {
            pos("clip_res", c)?;
        }
        if let Some(c) = self.clip_latent {
            pos("clip_latent", c)?;
        }
        if let Some(s) = self.prior_sigma_res {
            pos("prior_sigma_res", s)?;
        }
        self.validate_method()
    }

    fn validate_method(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("langevin.{m}")));
        if !(self.target_accept > 0.0 && self.target_accept < 1.0) {
            return bad(format!(
                "target_accept must lie in (0, 1), got {}",
                self.target_accept
            ));
        }
        for (name, m) in [
            ("mass_res", self.mass_res),
            ("mass_latent", self.mass_latent),
        ] {
            if !(m.is_finite() && m > 0.0) {
                return bad(format!("{name} must be finite and > 0, got {m}"));
            }
        }
        if !(self.friction.is_finite() && self.friction >= 0.0) {
            return bad(format!(
                "friction must be finite and >= 0, got {}",
                self.friction
            ));
        }
        if !(1..=MAX_LEAPFROG).contains(&self.leapfrog_steps) {
            return bad(format!(
                "leapfrog_steps must lie in 1..={MAX_LEAPFROG}, got {}",
                self.leapfrog_steps
            ));
        }
        if self.adapt_steps > self.steps {
            return bad(format!(
                "adapt_steps ({}) must be at most steps ({})",
                self.adapt_steps, self.steps
            ));
        }
        let stochastic = self.method != Method::Ula || self.shadow_mh;
        if stochastic && !self.noise {
            return bad(format!(
                "noise = false is gradient descent; method = \"{}\"{} needs noise = true",
                self.method.name(),
                if self.shadow_mh {
                    " with shadow_mh"
                } else {
                    ""
                }
            ));
        }
        if self.shadow_mh && self.method != Method::Ula {
            return bad(format!(
                "shadow_mh monitors the unadjusted chain (method = \"ula\"); method \"{}\" is already exact or reports its own acceptance",
                self.method.name()
            ));
        }
        if self.joint_proposal && self.method != Method::Mala {
            return bad(format!(
                "joint_proposal is a MALA option (HMC moves all blocks jointly already); method is \"{}\"",
                self.method.name()
            ));
        }
        if self.adapt_mass && (self.method != Method::Hmc || self.adapt_steps < MIN_MASS_WARMUP) {
            return bad(format!(
                "adapt_mass estimates HMC's diagonal mass in the warm-up: it needs method = \"hmc\" and adapt_steps >= {MIN_MASS_WARMUP} (got \"{}\", {})",
                self.method.name(),
                self.adapt_steps
            ));
        }
        if self.adapt_steps > 0 && !matches!(self.method, Method::Mala | Method::Hmc) {
            return bad(format!(
                "adapt_steps adapts an MH step size; it needs method = \"mala\" or \"hmc\", not \"{}\"",
                self.method.name()
            ));
        }
        Ok(())
    }
}

/// The state of a batch of chains: images are `G(z) + y` (or `y` alone).
#[derive(Clone, Debug)]
pub struct Chains<B: Backend> {
    /// Latents `[B, ...latent]` (`None` without a generator).
    pub z: Option<B::Tensor>,
    /// Residuals `[B, ...sample]` (the images themselves without a generator).
    pub y: B::Tensor,
}

/// Where a call's noise comes from: seed, iteration, and the global index of
/// the batch's first chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainKey {
    /// Run seed.
    pub seed: u64,
    /// Iteration (first counter word of the noise keys).
    pub iteration: u64,
    /// Global index of row 0 of the batch.
    pub row_offset: u64,
}

impl ChainKey {
    /// The noise key of step `k` of `stream`.
    pub fn key(&self, stream: Stream, k: usize) -> NoiseKey {
        NoiseKey {
            seed: self.seed,
            stream,
            counter: [self.iteration, k as u64],
            row_offset: self.row_offset,
        }
    }
}

/// Diagnostics of one Langevin call (means over steps and samples).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LangevinStats {
    /// Steps taken.
    pub steps: usize,
    /// Mean energy H(x) (not divided by T) over steps and samples, at the
    /// residual update (or the latent update when only latents move).
    pub mean_energy: f64,
    /// Mean energy after the last step's update is *not* evaluated (it would cost
    /// a pass); this is the energy seen by the last step.
    pub last_energy: f64,
    /// `(1/K) Σ_k (ε_y²/2) · mean_b ‖clip(g_b)‖` — the paper's `grad_norm_res`.
    pub drift_norm_res: f64,
    /// The same for the latent block.
    pub drift_norm_latent: f64,
    /// Fraction of (step, sample) pairs whose residual drift was clipped.
    pub clip_frac_res: f64,
    /// Fraction of (step, sample) pairs whose latent drift was clipped.
    pub clip_frac_latent: f64,
    /// Mean per-sample ‖z‖ after the last step (0 without latents).
    pub mean_latent_norm: f64,
    /// Per-step mean energy (length K).
    pub energy_per_step: Vec<f64>,
    /// Acceptance of the Metropolis–Hastings methods and the shadow monitor
    /// (`None` for plain ULA and BAOAB).
    pub mh: Option<super::mh::MhStats>,
}

/// A per-step observer: `(step, clipped residual gradient if the residual
/// moved, chains after the step)`.
pub type StepRecorder<'a, B> =
    &'a mut dyn FnMut(usize, Option<&<B as Backend>::Tensor>, &Chains<B>);

/// The Langevin sampler (stateless apart from its configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct LangevinSampler {
    /// Its configuration.
    pub config: LangevinConfig,
}

impl LangevinSampler {
    /// A sampler with the given configuration.
    ///
    /// # Errors
    /// [`Error::Config`] for out-of-range knobs.
    pub fn new(config: LangevinConfig) -> Result<Self> {
        config.validate()?;
        Ok(LangevinSampler { config })
    }

    /// The current images `G(z) + y` (or a copy of `y`).
    ///
    /// # Errors
    /// Model or backend errors.
    pub fn images<B: Backend>(
        be: &B,
        generator: Option<&dyn Generator<B>>,
        chains: &Chains<B>,
    ) -> Result<B::Tensor> {
        match (generator, &chains.z) {
            (Some(g), Some(z)) => {
                let mut x = g.forward(z)?;
                be.axpy(&mut x, 1.0, &chains.y)?;
                Ok(x)
            }
            _ => Ok(chains.y.clone()),
        }
    }

    /// Runs K steps on `chains` in place and returns the diagnostics.
    /// `record` (optional) is called after every step with the step index, the
    /// clipped residual gradient used (`None` when the residual does not move)
    /// and the chains after the step (used by the golden tests).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the chains do not fit the models;
    /// [`Error::InvalidArgument`] if latents must move but there is no
    /// generator; model, noise and backend errors.
    pub fn run<B: Backend>(
        &self,
        be: &B,
        energy: &dyn Energy<B>,
        generator: Option<&dyn Generator<B>>,
        chains: &mut Chains<B>,
        noise: &mut dyn NoiseSource<B>,
        key: ChainKey,
        record: Option<StepRecorder<'_, B>>,
    ) -> Result<LangevinStats> {
        self.run_images(be, energy, generator, chains, noise, key, record)
            .map(|(s, _)| s)
    }

    /// [`LangevinSampler::run`], also returning the final images `G(z) + y` (or
    /// `y`) from the generator output the sampler already holds, so callers need
    /// no extra generator pass.
    ///
    /// # Errors
    /// As [`LangevinSampler::run`].
    #[allow(clippy::too_many_lines)]
    pub fn run_images<B: Backend>(
        &self,
        be: &B,
        energy: &dyn Energy<B>,
        generator: Option<&dyn Generator<B>>,
        chains: &mut Chains<B>,
        noise: &mut dyn NoiseSource<B>,
        key: ChainKey,
        mut record: Option<StepRecorder<'_, B>>,
    ) -> Result<(LangevinStats, B::Tensor)> {
        let c = &self.config;
        let batch = self.check_shapes(be, energy, generator, chains)?;
        if c.method != Method::Ula || c.shadow_mh {
            let target = super::mh::Target::new(be, energy, generator, c)?;
            return super::mh::run(&target, c, chains, noise, key, record);
        }
        let k_steps = c.steps;
        let inv_t = 1.0 / c.temperature;
        let tau = c.tau_res();
        let s_res = c.eps_res * c.eps_res / 2.0;
        let s_lat = c.eps_latent * c.eps_latent / 2.0;
        let upd_res = LangevinUpdate {
            step: s_res,
            noise_scale: if c.noise { c.eps_res } else { 0.0 },
            clip: c.clip_res.map(|m| m / s_res),
        };
        let upd_lat = LangevinUpdate {
            step: s_lat,
            noise_scale: if c.noise { c.eps_latent } else { 0.0 },
            clip: c.clip_latent.map(|m| m / s_lat),
        };
        let latents_move = c.update_latents;
        if latents_move && (generator.is_none() || chains.z.is_none()) {
            return Err(Error::InvalidArgument(
                "update_latents needs a generator and latents".into(),
            ));
        }

        // Device-side buffers, allocated once per call.
        let y_shape = be.shape(&chains.y);
        let mut x = be.zeros(&y_shape)?;
        let mut noise_y = if c.noise && c.update_res {
            Some(be.zeros(&y_shape)?)
        } else {
            None
        };
        let mut noise_z = match (&chains.z, c.noise && latents_move) {
            (Some(z), true) => Some(be.zeros(&be.shape(z))?),
            _ => None,
        };
        let mut norms_y = be.zeros(&[batch])?;
        let mut norms_z = be.zeros(&[batch])?;
        // Energies and input gradients, written in place every step.
        let mut e = be.zeros(&[batch])?;
        let mut g = be.zeros(&y_shape)?;
        // Per-(step, chain) diagnostics on the device, HISTORY_ROWS steps at a
        // time: memory stays O(min(K, HISTORY_ROWS)·B) however long the chain,
        // with one host copy per HISTORY_ROWS steps (one per call for K ≤ 256).
        let rows = k_steps.clamp(1, HISTORY_ROWS);
        let mut hist_e = be.zeros(&[rows, batch])?;
        let mut hist_ny = be.zeros(&[rows, batch])?;
        let mut hist_nz = be.zeros(&[rows, batch])?;
        let mut energy_per_step = Vec::new();
        energy_per_step.try_reserve_exact(k_steps).map_err(|_| {
            Error::InvalidArgument(format!(
                "langevin: {k_steps} steps: out of memory for the per-step energies"
            ))
        })?;
        let mut drift_res = DriftSum::default();
        let mut drift_lat = DriftSum::default();
        // G(z), recomputed only when z moves.
        let mut gz = match (generator, &chains.z) {
            (Some(g), Some(z)) => Some(g.forward(z)?),
            _ => None,
        };
        let form_x = |x: &mut B::Tensor, gz: &Option<B::Tensor>, y: &B::Tensor| -> Result<()> {
            match gz {
                Some(gz) => {
                    be.copy_from(x, gz)?;
                    be.axpy(x, 1.0, y)
                }
                None => be.copy_from(x, y),
            }
        };

        for k in 0..k_steps {
            if latents_move {
                let (gnet, z) = (
                    generator.expect("checked"),
                    chains.z.as_mut().expect("checked"),
                );
                form_x(&mut x, &gz, &chains.y)?;
                energy.energy_grad_x_into(&x, &mut e, &mut g)?;
                let mut gzrad = gnet.vjp_latent(z, &g)?;
                be.scale(&mut gzrad, inv_t)?;
                if c.latent_prior {
                    be.axpy(&mut gzrad, 1.0, z)?;
                }
                if let Some(nz) = noise_z.as_mut() {
                    noise.normal(be, key.key(Stream::ChainNoiseLatent, k), nz)?;
                }
                be.langevin_update(z, &mut gzrad, noise_z.as_ref(), upd_lat, &mut norms_z)?;
                be.copy_into_row(&mut hist_nz, k % rows, &norms_z)?;
                if !c.update_res {
                    be.copy_into_row(&mut hist_e, k % rows, &e)?;
                }
                gz = Some(gnet.forward(z)?);
            }
            if c.update_res {
                form_x(&mut x, &gz, &chains.y)?;
                energy.energy_grad_x_into(&x, &mut e, &mut g)?;
                be.scale(&mut g, inv_t)?;
                if tau != 0.0 {
                    be.axpy(&mut g, 2.0 * tau, &chains.y)?;
                }
                if let Some(ny) = noise_y.as_mut() {
                    noise.normal(be, key.key(Stream::ChainNoiseRes, k), ny)?;
                }
                be.langevin_update(
                    &mut chains.y,
                    &mut g,
                    noise_y.as_ref(),
                    upd_res,
                    &mut norms_y,
                )?;
                be.copy_into_row(&mut hist_e, k % rows, &e)?;
                be.copy_into_row(&mut hist_ny, k % rows, &norms_y)?;
                if let Some(r) = record.as_deref_mut() {
                    r(k, Some(&g), chains);
                }
            } else if let Some(r) = record.as_deref_mut() {
                r(k, None, chains);
            }
            // Flush a full (or the last) block of rows, in step order.
            if k % rows == rows - 1 || k + 1 == k_steps {
                let used = k % rows + 1;
                let n = used * batch;
                let e_host = be.to_host(&hist_e)?;
                energy_per_step.extend(e_host[..n].chunks(batch).map(mean));
                if c.update_res {
                    drift_res.add(&be.to_host(&hist_ny)?[..n], s_res, upd_res.clip);
                }
                if latents_move {
                    drift_lat.add(&be.to_host(&hist_nz)?[..n], s_lat, upd_lat.clip);
                }
            }
        }

        // Diagnostics: one host copy per call.
        let mut stats = LangevinStats {
            steps: k_steps,
            ..Default::default()
        };
        if k_steps > 0 {
            stats.energy_per_step = energy_per_step;
            stats.mean_energy = mean_f64(&stats.energy_per_step);
            stats.last_energy = *stats.energy_per_step.last().unwrap_or(&0.0);
            if c.update_res {
                (stats.drift_norm_res, stats.clip_frac_res) = drift_res.finish();
            }
            if latents_move {
                (stats.drift_norm_latent, stats.clip_frac_latent) = drift_lat.finish();
            }
        }
        if let Some(z) = &chains.z {
            stats.mean_latent_norm = mean(&be.to_host(&be.row_norms(z)?)?);
        }
        form_x(&mut x, &gz, &chains.y)?;
        Ok((stats, x))
    }

    fn check_shapes<B: Backend>(
        &self,
        be: &B,
        energy: &dyn Energy<B>,
        generator: Option<&dyn Generator<B>>,
        chains: &Chains<B>,
    ) -> Result<usize> {
        let ys = be.shape(&chains.y);
        let batch = ys.first().copied().unwrap_or(0);
        let want = shape::batched(batch, energy.sample_shape());
        if batch == 0 || ys != want {
            return Err(Error::shape("chain residual y", &want, &ys));
        }
        if let (Some(g), Some(z)) = (generator, &chains.z) {
            let want_z = shape::batched(batch, g.latent_shape());
            if be.shape(z) != want_z {
                return Err(Error::shape("chain latent z", &want_z, &be.shape(z)));
            }
            if g.output_shape() != energy.sample_shape() {
                return Err(Error::shape(
                    "generator output vs energy input",
                    energy.sample_shape(),
                    g.output_shape(),
                ));
            }
        }
        Ok(batch)
    }
}

pub(super) fn mean(v: &[f32]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
    }
}

pub(super) fn mean_f64(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The most Langevin steps one chain may run (10⁷): far beyond any use in the
/// paper (K ≤ 500) and still hours of compute, so a mistyped `1e9` is an error
/// rather than a run that never ends.
pub const MAX_STEPS: usize = 10_000_000;

/// Refuses a step count above [`MAX_STEPS`], naming `key`.
///
/// # Errors
/// [`Error::Config`].
pub fn check_steps(key: &str, steps: usize) -> Result<()> {
    if steps > MAX_STEPS {
        return Err(Error::Config(format!(
            "{key} must be at most {MAX_STEPS}, got {steps}"
        )));
    }
    Ok(())
}

/// The shortest warm-up that may estimate a diagonal mass (`adapt_mass`).
pub const MIN_MASS_WARMUP: usize = 8;

/// The most leapfrog steps per HMC transition.
pub const MAX_LEAPFROG: usize = 1000;

/// The transition a chain uses (config `langevin.method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Unadjusted Langevin (the paper's sampler; biased by O(ε²)).
    #[default]
    Ula,
    /// Metropolis-adjusted Langevin: the ULA proposal, accepted per chain and
    /// per block (latent then residual).
    Mala,
    /// Hamiltonian Monte Carlo: L leapfrog steps over all moving blocks,
    /// accepted per chain.
    Hmc,
    /// Underdamped Langevin, BAOAB splitting, friction γ (unadjusted).
    Baoab,
}

impl Method {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ula => "ula",
            Method::Mala => "mala",
            Method::Hmc => "hmc",
            Method::Baoab => "baoab",
        }
    }

    /// Parses the config spelling.
    ///
    /// # Errors
    /// [`Error::Config`] naming the valid spellings.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ula" | "langevin" => Ok(Method::Ula),
            "mala" => Ok(Method::Mala),
            "hmc" => Ok(Method::Hmc),
            "baoab" => Ok(Method::Baoab),
            _ => Err(Error::Config(format!(
                "unknown sampler `{s}`: expected one of ula, mala, hmc, baoab"
            ))),
        }
    }
}

/// Steps of per-chain diagnostics kept on the device between host copies.
pub const HISTORY_ROWS: usize = 256;

/// From per-(step, sample) gradient norms before clipping, fed in step order
/// a block at a time: the mean clipped drift norm `s · min(n, c)` and the
/// fraction of clipped entries (the same sums, in the same order, as over the
/// whole history at once).
#[derive(Clone, Debug, Default)]
pub(super) struct DriftSum {
    drift: f64,
    clipped: usize,
    n: usize,
}

impl DriftSum {
    pub(super) fn add(&mut self, norms: &[f32], step: f32, clip: Option<f32>) {
        for &g in norms {
            let eff = match clip {
                Some(c) if g > c => {
                    self.clipped += 1;
                    c
                }
                _ => g,
            };
            self.drift += f64::from(step) * f64::from(eff);
        }
        self.n += norms.len();
    }

    pub(super) fn finish(&self) -> (f64, f64) {
        if self.n == 0 {
            return (0.0, 0.0);
        }
        let n = self.n as f64;
        (self.drift / n, self.clipped as f64 / n)
    }
}
