//! One training iteration of every mode.
//!
//! Noise keys of iteration `t` (all from the run seed): fresh latents
//! `ChainInitLatent[t, 0]`, fresh residuals / noise images `ChainInitRes[t, 0]`,
//! Langevin noise `ChainNoiseRes[t, k]` / `ChainNoiseLatent[t, k]`, data jitter
//! `DataJitter[t, 0]`, bank slots `BankSlots[t, shard]`, rejuvenation
//! `Rejuvenation[t, ·]`, cooperative latent inference `ChainNoiseLatent[t ⊕ 2⁶³, j]`
//! (iteration word with its top bit set, step j).

use std::time::Instant;

use rand::Rng;

use crate::backend::{Backend, shape};
use crate::model::Energy;
use crate::noise::{NoiseKey, NoiseSource, Stream};
use crate::params::{Grads, ParamSet};
use crate::sampler::{ChainKey, Chains, LangevinConfig, LangevinSampler};
use crate::{Error, Result};

use super::config::{GenUpdate, Mode, NoiseInit};
use super::trainer::{StepStats, StepTensors, Trainer};

/// Fills `t` with the noise initialisation of the short-run / persistent
/// baselines: `U(−1, 1)` (generated on the host from `key`, row-addressed like
/// every other draw) or `N(0, 1)`.
///
/// # Errors
/// Backend errors.
pub fn fill_noise_init<B: Backend>(
    be: &B,
    t: &mut B::Tensor,
    init: NoiseInit,
    key: NoiseKey,
) -> Result<()> {
    match init {
        NoiseInit::Normal => be.fill_normal(t, key),
        NoiseInit::Uniform => {
            let s = be.shape(t);
            let row = shape::row_len(&s).max(1);
            let mut host = vec![0.0f32; shape::numel(&s)];
            for (r, chunk) in host.chunks_exact_mut(row).enumerate() {
                let mut rng = key.rng_for_row(key.row_offset + r as u64);
                for v in chunk {
                    *v = rng.random_range(-1.0f32..1.0);
                }
            }
            let u = be.from_host(&host, &s)?;
            be.copy_from(t, &u)
        }
    }
}

impl<B: Backend> Trainer<B> {
    /// Runs one training iteration of the configured mode on a data batch
    /// (`[B, ...sample]`, values in the model's range, e.g. [−1, 1]).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] / [`Error::NonFinite`] for a bad data batch;
    /// [`Error::NonFinite`] if the update produced NaN/Inf (weights are left at
    /// their last finite values); model, noise and backend errors.
    pub fn step(&mut self, data: &B::Tensor, noise: &mut dyn NoiseSource<B>) -> Result<StepStats> {
        let t0 = Instant::now();
        self.check_data(data)?;
        let mut stats = match self.config.mode {
            Mode::Synthesis => self.step_synthesis(data, noise)?,
            Mode::Retrofit | Mode::Refine | Mode::NoResidual => self.step_joint(data, noise)?,
            Mode::ShortRun => self.step_short_run(data, noise)?,
            Mode::Persistent => self.step_persistent(data, noise)?,
            Mode::Cooperative => self.step_cooperative(data, noise)?,
        };
        stats.iteration = self.iteration;
        stats.seconds = t0.elapsed().as_secs_f64();
        self.iteration += 1;
        Ok(stats)
    }

    fn chain_key(&self) -> ChainKey {
        ChainKey {
            seed: self.seed,
            iteration: self.iteration,
            row_offset: 0,
        }
    }

    /// Fresh generator chains: `z = s_z·ξ`, `y = s_y·ξ'` (or 0).
    fn fresh_chains(&self, n: usize, noise: &mut dyn NoiseSource<B>) -> Result<Chains<B>> {
        let g = self
            .generator
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument("no generator".into()))?;
        let be = &self.be;
        let mut z = be.zeros(&shape::batched(n, g.latent_shape()))?;
        noise.normal(be, self.key(Stream::ChainInitLatent, 0), &mut z)?;
        be.scale(&mut z, self.config.init_scale_latent)?;
        let mut y = be.zeros(&shape::batched(n, g.output_shape()))?;
        if self.config.init_scale_res != 0.0 && self.sampler.config.update_res {
            noise.normal(be, self.key(Stream::ChainInitRes, 0), &mut y)?;
            be.scale(&mut y, self.config.init_scale_res)?;
        }
        Ok(Chains { z: Some(z), y })
    }

    /// `x⁺ = data + ε_data·ξ`.
    fn jitter(&self, data: &B::Tensor, noise: &mut dyn NoiseSource<B>) -> Result<B::Tensor> {
        let mut x = data.clone();
        if self.config.data_epsilon != 0.0 {
            let mut xi = self.be.zeros(&self.be.shape(data))?;
            noise.normal(&self.be, self.key(Stream::DataJitter, 0), &mut xi)?;
            self.be.axpy(&mut x, self.config.data_epsilon, &xi)?;
        }
        Ok(x)
    }

    fn run_chains(
        &self,
        chains: &mut Chains<B>,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<(crate::sampler::LangevinStats, B::Tensor)> {
        self.sampler.run_images(
            &self.be,
            self.energy.as_ref(),
            self.generator.as_deref(),
            chains,
            noise,
            self.chain_key(),
            None,
        )
    }

    fn keep(&mut self, chains: Chains<B>, x_pos: B::Tensor, x_neg: B::Tensor, slots: Vec<usize>) {
        if self.keep_tensors {
            self.last = Some(StepTensors {
                z: chains.z,
                y: chains.y,
                x_pos,
                x_neg,
                slots,
            });
        }
    }

    /// The negative phase and EBM update every mode shares: runs the chains,
    /// forms `x⁻` (`G(z) + y`, or `y`), jitters the data into `x⁺`, and updates
    /// the EBM. Returns `(x⁺, x⁻, stats)` with the losses and sampler diagnostics.
    fn contrast(
        &mut self,
        data: &B::Tensor,
        chains: &mut Chains<B>,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<(B::Tensor, B::Tensor, StepStats)> {
        let t0 = Instant::now();
        let (langevin, x_neg) = self.run_chains(chains, noise)?;
        self.be.sync()?;
        let t1 = Instant::now();
        let x_pos = self.jitter(data, noise)?;
        let (loss_ebm, energy_pos, energy_neg) = self.ebm_update(&x_pos, &x_neg)?;
        self.be.sync()?;
        let stats = StepStats {
            loss_ebm,
            energy_pos,
            energy_neg,
            langevin,
            seconds_langevin: (t1 - t0).as_secs_f64(),
            seconds_ebm_update: t1.elapsed().as_secs_f64(),
            ..Default::default()
        };
        Ok((x_pos, x_neg, stats))
    }

    /// Algorithm 1 (and its `current` ablation).
    fn step_synthesis(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let n = self.config.batch_size;
        let mut chains = self.fresh_chains(n, noise)?;
        let (x_pos, x_neg, mut stats) = self.contrast(data, &mut chains, noise)?;
        let z = chains
            .z
            .as_ref()
            .expect("generator chains have latents")
            .clone();
        let t_gen = Instant::now();
        let (loss_gen, slots) = match self.config.gen_update {
            GenUpdate::Historical => {
                let bank = self.bank.as_ref().ok_or_else(|| {
                    Error::InvalidArgument("historical updates need a bank".into())
                })?;
                let slots = bank.draw_slots(noise, self.seed, self.iteration, n)?;
                let (bz, bx) = bank.gather(&self.be, &slots)?;
                let loss = self.gen_update(&bz.expect("synthesis bank stores latents"), &bx)?;
                self.bank.as_mut().expect("checked").overwrite(
                    &self.be,
                    &slots,
                    Some(&z),
                    &x_neg,
                )?;
                (loss, slots)
            }
            GenUpdate::Current => (self.gen_update(&z, &x_neg)?, Vec::new()),
        };
        stats.loss_gen = Some(loss_gen);
        self.be.sync()?;
        stats.seconds_gen_update = t_gen.elapsed().as_secs_f64();
        self.keep(chains, x_pos, x_neg, slots);
        Ok(stats)
    }

    /// Retrofit / refine (joint z and y chains) and the no-residual energy
    /// (z only); the generator is frozen.
    fn step_joint(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let mut chains = self.fresh_chains(self.config.batch_size, noise)?;
        let (x_pos, x_neg, stats) = self.contrast(data, &mut chains, noise)?;
        self.keep(chains, x_pos, x_neg, Vec::new());
        Ok(stats)
    }

    /// Short-run EBM from noise (no generator).
    fn step_short_run(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let shape = shape::batched(self.config.batch_size, self.energy.sample_shape());
        let mut y = self.be.zeros(&shape)?;
        fill_noise_init(
            &self.be,
            &mut y,
            self.config.noise_init,
            self.key(Stream::ChainInitRes, 0),
        )?;
        let mut chains = Chains { z: None, y };
        let (x_pos, x_neg, stats) = self.contrast(data, &mut chains, noise)?;
        self.keep(chains, x_pos, x_neg, Vec::new());
        Ok(stats)
    }

    /// Persistent chains with rejuvenation (IGEBM style).
    fn step_persistent(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let n = self.config.batch_size;
        let bank = self
            .bank
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("persistent mode needs its bank".into()))?;
        let slots = bank.draw_slots(noise, self.seed, self.iteration, n)?;
        let (_, mut y) = bank.gather(&self.be, &slots)?;
        // Rejuvenate each drawn chain with probability p: fresh noise for those rows.
        let p = f64::from(self.config.rejuvenation);
        if p > 0.0 {
            let mut rng = self.key(Stream::Rejuvenation, 0).host_rng();
            let reset: Vec<usize> = (0..n).filter(|_| rng.random_bool(p)).collect();
            if !reset.is_empty() {
                let mut fresh = self
                    .be
                    .zeros(&shape::batched(n, self.energy.sample_shape()))?;
                fill_noise_init(
                    &self.be,
                    &mut fresh,
                    self.config.noise_init,
                    self.key(Stream::Rejuvenation, 1),
                )?;
                let rows = self.be.gather_rows(&fresh, &reset)?;
                self.be.scatter_rows(&mut y, &reset, &rows)?;
            }
        }
        let mut chains = Chains { z: None, y };
        let (x_pos, x_neg, stats) = self.contrast(data, &mut chains, noise)?;
        self.bank
            .as_mut()
            .expect("checked")
            .overwrite(&self.be, &slots, None, &x_neg)?;
        self.keep(chains, x_pos, x_neg, slots);
        Ok(stats)
    }

    /// Cooperative learning: chains start at `G(z)`, the EBM learns from the
    /// revised samples, and the generator is fitted to them after latent
    /// inference (Langevin on `‖x̃ − G(z)‖²/(2σ²) + ½‖z‖²`).
    fn step_cooperative(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let mut chains = self.fresh_chains(self.config.batch_size, noise)?;
        let (x_pos, x_neg, mut stats) = self.contrast(data, &mut chains, noise)?;
        let mut z = chains.z.clone().expect("generator chains have latents");
        let t_gen = Instant::now();
        if self.config.coop_latent_steps > 0 {
            let inference = LangevinSampler::new(LangevinConfig {
                steps: self.config.coop_latent_steps,
                temperature: 1.0,
                eps_latent: self.config.coop_latent_eps,
                update_latents: true,
                update_res: false,
                noise: true,
                clip_res: None,
                clip_latent: None,
                prior_sigma_res: None,
                latent_prior: true,
                ..LangevinConfig::default()
            })?;
            let recon = ReconEnergy::new(&self.be, x_neg.clone(), self.config.coop_sigma)?;
            let y0 = self.be.zeros(&self.be.shape(&x_neg))?;
            let mut inf_chains = Chains { z: Some(z), y: y0 };
            // Inference noise: the latent stream under a counter with the top bit
            // set, disjoint from every training iteration's chain noise.
            let key = ChainKey {
                seed: self.seed,
                iteration: self.iteration ^ (1u64 << 63),
                row_offset: 0,
            };
            inference.run(
                &self.be,
                &recon,
                self.generator.as_deref(),
                &mut inf_chains,
                noise,
                key,
                None,
            )?;
            z = inf_chains.z.expect("inference chains have latents");
        }
        stats.loss_gen = Some(self.gen_update(&z, &x_neg)?);
        self.be.sync()?;
        stats.seconds_gen_update = t_gen.elapsed().as_secs_f64();
        self.keep(chains, x_pos, x_neg, Vec::new());
        Ok(stats)
    }
}

/// The reconstruction energy `‖x − x̃‖²/(2σ²)` used for cooperative latent
/// inference (no parameters).
#[derive(Debug)]
pub struct ReconEnergy<B: Backend> {
    be: B,
    target: B::Tensor,
    inv_two_sigma2: f32,
    sample_shape: Vec<usize>,
    params: ParamSet<B>,
}

impl<B: Backend> ReconEnergy<B> {
    /// The energy of reconstructing `target` with noise σ.
    ///
    /// # Errors
    /// Backend errors.
    pub fn new(be: &B, target: B::Tensor, sigma: f32) -> Result<Self> {
        let sample_shape = be.shape(&target)[1..].to_vec();
        Ok(ReconEnergy {
            be: be.clone(),
            target,
            inv_two_sigma2: 1.0 / (2.0 * sigma * sigma),
            sample_shape,
            params: ParamSet::init(be, &[], 0)?,
        })
    }

    fn check(&self, x: &B::Tensor) -> Result<()> {
        if self.be.shape(x) != self.be.shape(&self.target) {
            return Err(Error::shape(
                "reconstruction energy input",
                &self.be.shape(&self.target),
                &self.be.shape(x),
            ));
        }
        Ok(())
    }
}

impl<B: Backend> Energy<B> for ReconEnergy<B> {
    fn describe(&self) -> String {
        "ReconEnergy".into()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    fn energy(&self, x: &B::Tensor) -> Result<B::Tensor> {
        self.check(x)?;
        let d = self.be.sub(x, &self.target)?;
        let mut n = self.be.row_norms(&d)?;
        let h = self.be.to_host(&n)?;
        let sq: Vec<f32> = h.iter().map(|v| v * v * self.inv_two_sigma2).collect();
        n = self.be.from_host(&sq, &[sq.len()])?;
        Ok(n)
    }

    fn energy_grad_x(&self, x: &B::Tensor) -> Result<(B::Tensor, B::Tensor)> {
        let e = self.energy(x)?;
        let mut g = self.be.sub(x, &self.target)?;
        self.be.scale(&mut g, 2.0 * self.inv_two_sigma2)?;
        Ok((e, g))
    }

    fn energy_grad_params(
        &self,
        _x: &B::Tensor,
        _w: &[f32],
        _g: &mut Grads<B>,
    ) -> Result<B::Tensor> {
        Err(Error::InvalidArgument(
            "the reconstruction energy has no parameters".into(),
        ))
    }

    fn params(&self) -> &ParamSet<B> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<B> {
        &mut self.params
    }
}
