//! Training-mode settings. Every knob has a doc comment with its meaning and
//! the paper's value; `docs/training.md` tabulates them per mode.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which algorithm a trainer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Conditional (tandem) Hat EBM, Algorithm 1: fresh chains `z ~ N(0, I)`,
    /// `y = 0`, K residual steps, EBM update, generator fitted to bank samples.
    #[default]
    Synthesis,
    /// Joint Hat EBM on a frozen pretrained generator (the autoencoder's
    /// decoder), latent and residual chains from noise, Gaussian prior on `y`.
    Retrofit,
    /// Joint Hat EBM on a frozen pretrained generator loaded from safetensors.
    Refine,
    /// Baseline: short-run EBM from noise, no generator.
    ShortRun,
    /// Baseline: persistent image bank with rejuvenation (IGEBM style).
    Persistent,
    /// Baseline: cooperative learning (generator initialises the chains and is
    /// fitted to the revised samples after latent inference).
    Cooperative,
    /// Baseline (Appendix H): the no-residual energy `U(z) = H(G(z))` on a frozen
    /// pretrained generator; only latents move.
    NoResidual,
}

impl Mode {
    /// Every mode, in documentation order.
    pub const ALL: [Mode; 7] = [
        Mode::Synthesis,
        Mode::Retrofit,
        Mode::Refine,
        Mode::ShortRun,
        Mode::Persistent,
        Mode::Cooperative,
        Mode::NoResidual,
    ];

    /// Whether the mode has a generator at all.
    pub fn has_generator(self) -> bool {
        !matches!(self, Mode::ShortRun | Mode::Persistent)
    }

    /// Whether the mode trains the generator.
    pub fn trains_generator(self) -> bool {
        matches!(self, Mode::Synthesis | Mode::Cooperative)
    }

    /// Whether the mode needs a pretrained generator.
    pub fn needs_pretrained_generator(self) -> bool {
        matches!(self, Mode::Retrofit | Mode::Refine | Mode::NoResidual)
    }

    /// The snake-case name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Synthesis => "synthesis",
            Mode::Retrofit => "retrofit",
            Mode::Refine => "refine",
            Mode::ShortRun => "short_run",
            Mode::Persistent => "persistent",
            Mode::Cooperative => "cooperative",
            Mode::NoResidual => "no_residual",
        }
    }
}

/// Which pairs the synthesis generator is fitted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GenUpdate {
    /// Historical samples from the persistent bank (Algorithm 1; the paper's method).
    #[default]
    Historical,
    /// This iteration's samples (the ablation of the paper's Appendix F).
    Current,
}

/// How noise-initialised chains start (short-run and persistent baselines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoiseInit {
    /// `U(−1, 1)` per pixel (IGEBM / short-run EBM practice).
    #[default]
    Uniform,
    /// `N(0, 1)` per pixel.
    Normal,
}

/// The largest batch (chains per iteration) accepted: 2²⁰.
pub const MAX_BATCH: usize = 1 << 20;
/// The largest bank accepted: 2²⁸ slots.
pub const MAX_BANK: usize = 1 << 28;

/// Training settings shared by every mode (mode-specific ones are ignored by
/// the other modes and documented as such).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The algorithm.
    pub mode: Mode,
    /// Number of training iterations (paper: 75 000 for CIFAR-10 synthesis).
    pub steps: u64,
    /// Batch size B (paper: 128).
    pub batch_size: usize,
    /// Data jitter ε_data: `x⁺ = x + ε_data·ξ` (paper: 1e-3).
    pub data_epsilon: f32,
    /// Scale of the fresh latents, `z₀ = s·ξ` (paper: 1).
    pub init_scale_latent: f32,
    /// Scale of the fresh residuals, `y₀ = s·ξ` (paper: 0, i.e. `y₀ = 0`).
    pub init_scale_res: f32,
    /// Generator loss factor λ in `λ·mean((G(z) − x)²)` (paper's code: 1000).
    pub gen_loss_factor: f32,
    /// Synthesis: bank capacity N (paper: 10 000).
    pub bank_size: usize,
    /// Synthesis: historical (bank) or current generator updates.
    pub gen_update: GenUpdate,
    /// Short-run / persistent: how chains are initialised from noise.
    pub noise_init: NoiseInit,
    /// Persistent: probability that a drawn bank slot is re-initialised from
    /// noise (IGEBM: 0.05).
    pub rejuvenation: f32,
    /// Persistent: image bank capacity (IGEBM: 10 000).
    pub persistent_bank_size: usize,
    /// Cooperative: Langevin steps of latent inference for the generator update
    /// (0 = fit the generator to the initial latents).
    pub coop_latent_steps: usize,
    /// Cooperative: step size ε of latent inference.
    pub coop_latent_eps: f32,
    /// Cooperative: σ of the reconstruction likelihood `‖x − G(z)‖²/(2σ²)` in
    /// latent inference.
    pub coop_sigma: f32,
    /// Cooperative: run the generator's batch norm in training mode (batch statistics).
    pub coop_bn_training: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            mode: Mode::Synthesis,
            steps: 1000,
            batch_size: 64,
            data_epsilon: 1e-3,
            init_scale_latent: 1.0,
            init_scale_res: 0.0,
            gen_loss_factor: 1000.0,
            bank_size: 10_000,
            gen_update: GenUpdate::Historical,
            noise_init: NoiseInit::Uniform,
            rejuvenation: 0.05,
            persistent_bank_size: 10_000,
            coop_latent_steps: 10,
            coop_latent_eps: 0.1,
            coop_sigma: 0.3,
            coop_bn_training: false,
        }
    }
}

impl TrainConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`Error::Config`] naming the knob and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let nonneg = |n: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "train.{n} must be finite and >= 0, got {v}"
                )))
            }
        };
        if self.batch_size == 0 {
            return Err(Error::Config("train.batch_size must be >= 1".into()));
        }
        // Absolute bounds (whether the run fits in memory is checked against a
        // budget by the run itself).
        for (key, v, max) in [
            ("train.batch_size", self.batch_size, MAX_BATCH),
            ("train.bank_size", self.bank_size, MAX_BANK),
            (
                "train.persistent_bank_size",
                self.persistent_bank_size,
                MAX_BANK,
            ),
        ] {
            if v > max {
                return Err(Error::Config(format!(
                    "{key} must be at most {max}, got {v}"
                )));
            }
        }
        crate::sampler::check_steps("train.coop_latent_steps", self.coop_latent_steps)?;
        nonneg("data_epsilon", self.data_epsilon)?;
        nonneg("init_scale_latent", self.init_scale_latent)?;
        nonneg("init_scale_res", self.init_scale_res)?;
        nonneg("gen_loss_factor", self.gen_loss_factor)?;
        if !(0.0..=1.0).contains(&self.rejuvenation) {
            return Err(Error::Config(format!(
                "train.rejuvenation must be in [0, 1], got {}",
                self.rejuvenation
            )));
        }
        if self.mode == Mode::Synthesis
            && self.gen_update == GenUpdate::Historical
            && self.bank_size < self.batch_size
        {
            return Err(Error::Config(format!(
                "train.bank_size ({}) must be >= train.batch_size ({}) for historical generator updates",
                self.bank_size, self.batch_size
            )));
        }
        if self.mode == Mode::Persistent && self.persistent_bank_size < self.batch_size {
            return Err(Error::Config(format!(
                "train.persistent_bank_size ({}) must be >= train.batch_size ({})",
                self.persistent_bank_size, self.batch_size
            )));
        }
        if self.mode == Mode::Cooperative {
            if !(self.coop_sigma.is_finite() && self.coop_sigma > 0.0) {
                return Err(Error::Config(format!(
                    "train.coop_sigma must be > 0, got {}",
                    self.coop_sigma
                )));
            }
            if self.coop_latent_steps > 0
                && !(self.coop_latent_eps.is_finite() && self.coop_latent_eps > 0.0)
            {
                return Err(Error::Config(format!(
                    "train.coop_latent_eps must be > 0, got {}",
                    self.coop_latent_eps
                )));
            }
        }
        Ok(())
    }
}
