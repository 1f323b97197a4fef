//! Helpers for the algorithm goldens: settings decoded from golden configs, a
//! constant generator (the `langevin_res` cases' fixed base image), and replay
//! noise built from the stored noise tensors.

use hatebm_rs::backend::Backend;
use hatebm_rs::model::Generator;
use hatebm_rs::noise::{ReplayNoise, Stream};
use hatebm_rs::optim::AdamConfig;
use hatebm_rs::params::{Grads, ParamSet};
use hatebm_rs::sampler::LangevinConfig;
use hatebm_rs::train::{TrainConfig, TrainerSettings};
use hatebm_rs::{Error, Result};

use crate::Golden;

/// The sampler settings of a golden config (`epsilon`, `epsilon_latent`,
/// `mcmc_steps`, `mcmc_temp`, clipping, `tau_res`, `update_latents`, `use_noise`).
pub fn langevin_config(g: &Golden) -> LangevinConfig {
    let tau = g.cf("tau_res");
    LangevinConfig {
        steps: g.cu("mcmc_steps"),
        temperature: g.cf("mcmc_temp") as f32,
        eps_res: g.cf("epsilon") as f32,
        eps_latent: g
            .config
            .get("epsilon_latent")
            .and_then(|v| v.as_f64())
            .unwrap_or(1e-3) as f32,
        update_res: true,
        update_latents: g.cb("update_latents"),
        noise: g.cb("use_noise"),
        clip_res: if g.cb("clip_langevin_grad_res") {
            Some(g.cf("max_langevin_norm_res") as f32)
        } else {
            None
        },
        clip_latent: None,
        // tau = 1/(2 sigma^2)  <=>  sigma = sqrt(1/(2 tau)).
        prior_sigma_res: if tau > 0.0 {
            Some((1.0 / (2.0 * tau)).sqrt() as f32)
        } else {
            None
        },
        latent_prior: false,
        ..LangevinConfig::default()
    }
}

/// The trainer settings of a `train_step*` golden.
pub fn trainer_settings(g: &Golden) -> TrainerSettings {
    let clip = if g.cb("clip_ebm_grad") {
        Some(g.cf("max_grad_norm") as f32)
    } else {
        None
    };
    let adam = |lr: &str, decay: &str, clip: Option<f32>| AdamConfig {
        lr: g.cf(lr) as f32,
        beta1: 0.9,
        beta2: 0.999,
        eps: g.cf("adam_eps") as f32,
        clip_grad_norm: clip,
        ema_decay: Some(g.cf(decay) as f32),
        ema_warmup: false,
        lr_schedule: Vec::new(),
    };
    TrainerSettings {
        train: TrainConfig {
            batch_size: g.cu("batch"),
            data_epsilon: g.cf("data_epsilon") as f32,
            init_scale_latent: g.cf("init_scale_latent") as f32,
            init_scale_res: g.cf("init_scale_res") as f32,
            gen_loss_factor: g.cf("gen_loss_factor_coop") as f32,
            bank_size: g.cu("bank"),
            ..TrainConfig::default()
        },
        langevin: langevin_config(g),
        ebm_optim: adam("ebm_lr", "ebm_opt_decay", clip),
        gen_optim: adam("gen_lr", "gen_opt_decay", None),
        seed: 0,
        init_bank: true,
        dist: Default::default(),
    }
}

/// Replay noise holding `[K, B, ...]` tensor `name` as `stream` steps `[0, k]`.
pub fn add_steps(noise: &mut ReplayNoise, g: &Golden, name: &str, stream: Stream) {
    let (shape, data) = g.t(name);
    let per = data.len() / shape[0];
    for k in 0..shape[0] {
        noise.insert(
            stream,
            [0, k as u64],
            shape[1..].to_vec(),
            data[k * per..(k + 1) * per].to_vec(),
        );
    }
}

/// A generator that ignores its latent and returns a fixed image batch: the
/// `langevin_res` goldens' `base` ("plays the role of G(z)").
#[derive(Debug)]
pub struct ConstGenerator<B: Backend> {
    be: B,
    base: B::Tensor,
    latent: Vec<usize>,
    output: Vec<usize>,
    params: ParamSet<B>,
}

impl<B: Backend> ConstGenerator<B> {
    /// Wraps `base` (`[B, ...]`); latents are `[B, 1]`.
    pub fn new(be: &B, base: B::Tensor) -> Self {
        let output = be.shape(&base)[1..].to_vec();
        ConstGenerator {
            be: be.clone(),
            base,
            latent: vec![1],
            output,
            params: ParamSet::init(be, &[], 0).expect("empty set"),
        }
    }
}

impl<B: Backend> Generator<B> for ConstGenerator<B> {
    fn describe(&self) -> String {
        "ConstGenerator".into()
    }
    fn latent_shape(&self) -> &[usize] {
        &self.latent
    }
    fn output_shape(&self) -> &[usize] {
        &self.output
    }
    fn forward(&self, _z: &B::Tensor) -> Result<B::Tensor> {
        Ok(self.base.clone())
    }
    fn vjp_latent(&self, z: &B::Tensor, _cot: &B::Tensor) -> Result<B::Tensor> {
        self.be.zeros(&self.be.shape(z))
    }
    fn vjp_params(&self, _z: &B::Tensor, _cot: &B::Tensor, _grads: &mut Grads<B>) -> Result<()> {
        Err(Error::InvalidArgument("constant generator".into()))
    }
    fn params(&self) -> &ParamSet<B> {
        &self.params
    }
    fn params_mut(&mut self) -> &mut ParamSet<B> {
        &mut self.params
    }
}

/// The linear generator `G(z) = c·z` (latent and output of the same shape),
/// so that a quadratic energy gives a Gaussian joint law of `(z, y)` in closed
/// form (the joint-block sampler tests).
#[derive(Debug)]
pub struct GainGenerator<B: Backend> {
    be: B,
    gain: f32,
    shape: Vec<usize>,
    params: ParamSet<B>,
}

impl<B: Backend> GainGenerator<B> {
    /// `G(z) = gain·z` on samples of `shape`.
    pub fn new(be: &B, shape: &[usize], gain: f32) -> Self {
        GainGenerator {
            be: be.clone(),
            gain,
            shape: shape.to_vec(),
            params: ParamSet::init(be, &[], 0).expect("empty set"),
        }
    }
}

impl<B: Backend> Generator<B> for GainGenerator<B> {
    fn describe(&self) -> String {
        format!("GainGenerator({})", self.gain)
    }
    fn latent_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, z: &B::Tensor) -> Result<B::Tensor> {
        let mut x = z.clone();
        self.be.scale(&mut x, self.gain)?;
        Ok(x)
    }
    fn vjp_latent(&self, _z: &B::Tensor, cot: &B::Tensor) -> Result<B::Tensor> {
        let mut g = cot.clone();
        self.be.scale(&mut g, self.gain)?;
        Ok(g)
    }
    fn vjp_params(&self, _z: &B::Tensor, _cot: &B::Tensor, _grads: &mut Grads<B>) -> Result<()> {
        Err(Error::InvalidArgument(
            "the gain generator has no parameters".into(),
        ))
    }
    fn params(&self) -> &ParamSet<B> {
        &self.params
    }
    fn params_mut(&mut self) -> &mut ParamSet<B> {
        &mut self.params
    }
}
