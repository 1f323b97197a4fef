//! One training iteration of every mode.
//!
//! Noise keys of iteration `t` (all from the run seed): fresh latents
//! `ChainInitLatent[t, 0]`, fresh residuals / noise images `ChainInitRes[t, 0]`,
//! Langevin noise `ChainNoiseRes[t, k]` / `ChainNoiseLatent[t, k]`, data jitter
//! `DataJitter[t, 0]`, bank slots `BankSlots[t, shard]`, rejuvenation
//! `Rejuvenation[t, ·]`, cooperative latent inference `ChainNoiseLatent[t ⊕ 2⁶³, j]`
//! (iteration word with its top bit set, step j).

use std::ops::Range;
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

/// A local shard: its global id and its rows of the global batch.
type ShardRows = (usize, Range<usize>);

/// What the negative phase of the local shards produced.
struct Contrast<B: Backend> {
    x_pos: Vec<B::Tensor>,
    x_neg: Vec<B::Tensor>,
    stats: StepStats,
}

/// Concatenates per-shard tensors (no copy for one shard).
fn concat<B: Backend>(be: &B, parts: &[B::Tensor]) -> Result<B::Tensor> {
    if parts.len() == 1 {
        return Ok(parts[0].clone());
    }
    let refs: Vec<&B::Tensor> = parts.iter().collect();
    be.concat_rows(&refs)
}

impl<B: Backend> Trainer<B> {
    /// Runs one training iteration of the configured mode on a data batch
    /// (`[B, ...sample]`, values in the model's range, e.g. [−1, 1]).
    ///
    /// In a data-parallel run every rank passes the same global batch and
    /// works on its own shards' rows (see [`crate::dist`]); the call then
    /// includes the collectives that combine the shards' gradients.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] / [`Error::NonFinite`] for a bad data batch;
    /// [`Error::NonFinite`] if the update produced NaN/Inf (weights are left at
    /// their last finite values); [`Error::Distributed`] if another rank
    /// failed or a collective did; model, noise and backend errors.
    pub fn step(&mut self, data: &B::Tensor, noise: &mut dyn NoiseSource<B>) -> Result<StepStats> {
        let t0 = Instant::now();
        // A bad batch on one rank (say, its copy of the data file is corrupt)
        // stops every rank here, before any collective.
        let rows = self.agree_result(self.check_data(data))?;
        if !self.dist.is_trivial() && rows != self.config.batch_size {
            return Err(Error::shape(
                "data batch of a sharded run (rows)",
                &[self.config.batch_size],
                &[rows],
            ));
        }
        let mut stats = match self.config.mode {
            Mode::Synthesis => self.step_synthesis(data, noise)?,
            Mode::Retrofit | Mode::Refine | Mode::NoResidual => self.step_joint(data, noise)?,
            Mode::ShortRun => self.step_short_run(data, noise)?,
            Mode::Persistent => self.step_persistent(data, noise)?,
            Mode::Cooperative => self.step_cooperative(data, noise)?,
        };
        stats.seconds = t0.elapsed().as_secs_f64();
        self.iteration += 1;
        stats.iteration = self.iteration;
        let every = self.dist.config.check_every;
        if self.dist.comm.size() > 1 && every > 0 && self.iteration.is_multiple_of(every) {
            self.check_replicas()?;
        }
        Ok(stats)
    }

    fn chain_key(&self, row_offset: usize) -> ChainKey {
        ChainKey {
            seed: self.seed,
            iteration: self.iteration,
            row_offset: row_offset as u64,
        }
    }

    /// Fresh generator chains for global rows `rows`: `z = s_z·ξ`, `y = s_y·ξ'` (or 0).
    fn fresh_chains(
        &self,
        rows: &Range<usize>,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<Chains<B>> {
        let g = self
            .generator
            .net()
            .ok_or_else(|| Error::InvalidArgument("no generator".into()))?;
        let be = &self.be;
        let (n, off) = (rows.len(), rows.start as u64);
        let mut z = be.zeros(&shape::batched(n, g.latent_shape()))?;
        noise.normal(
            be,
            self.key(Stream::ChainInitLatent, 0).with_row_offset(off),
            &mut z,
        )?;
        be.scale(&mut z, self.config.init_scale_latent)?;
        let mut y = be.zeros(&shape::batched(n, g.output_shape()))?;
        if self.config.init_scale_res != 0.0 && self.sampler.config.update_res {
            noise.normal(
                be,
                self.key(Stream::ChainInitRes, 0).with_row_offset(off),
                &mut y,
            )?;
            be.scale(&mut y, self.config.init_scale_res)?;
        }
        Ok(Chains { z: Some(z), y })
    }

    /// Fresh generator chains of every local shard.
    fn fresh_shard_chains(
        &self,
        shards: &[ShardRows],
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<Vec<Chains<B>>> {
        shards
            .iter()
            .map(|(_, r)| self.fresh_chains(r, noise))
            .collect()
    }

    /// `x⁺ = data + ε_data·ξ` for the global rows `rows` of the batch.
    fn jitter(
        &self,
        data: &B::Tensor,
        rows: &Range<usize>,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<B::Tensor> {
        let mut x = if self.dist.is_trivial() {
            data.clone()
        } else {
            self.be.slice_rows(data, rows.start, rows.len())?
        };
        if self.config.data_epsilon != 0.0 {
            let mut xi = self.be.zeros(&self.be.shape(&x))?;
            let key = self
                .key(Stream::DataJitter, 0)
                .with_row_offset(rows.start as u64);
            noise.normal(&self.be, key, &mut xi)?;
            self.be.axpy(&mut x, self.config.data_epsilon, &xi)?;
        }
        Ok(x)
    }

    fn keep(&mut self, chains: Vec<Chains<B>>, c: &Contrast<B>, slots: Vec<usize>) -> Result<()> {
        if self.keep_tensors {
            let be = &self.be;
            let z: Vec<B::Tensor> = chains.iter().filter_map(|c| c.z.clone()).collect();
            let y: Vec<B::Tensor> = chains.into_iter().map(|c| c.y).collect();
            self.last = Some(StepTensors {
                z: if z.is_empty() {
                    None
                } else {
                    Some(concat(be, &z)?)
                },
                y: concat(be, &y)?,
                x_pos: concat(be, &c.x_pos)?,
                x_neg: concat(be, &c.x_neg)?,
                slots,
            });
        }
        Ok(())
    }

    /// The negative phase and EBM update every mode shares: runs each local
    /// shard's chains, forms `x⁻` (`G(z) + y`, or `y`), jitters the shard's
    /// data into `x⁺`, and updates the EBM with the shards' gradients summed
    /// in shard order over all ranks. `chains` is the local shards' chains, or
    /// the error that prevented making them (agreed with the other ranks
    /// before any collective).
    fn contrast(
        &mut self,
        data: &B::Tensor,
        shards: &[ShardRows],
        chains: Result<&mut Vec<Chains<B>>>,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<Contrast<B>> {
        let t0 = Instant::now();
        let local = chains.and_then(|chains| {
            let (mut stats, mut x_neg, mut x_pos) = (Vec::new(), Vec::new(), Vec::new());
            for (c, (_, rows)) in chains.iter_mut().zip(shards) {
                let (s, x) = self.sampler.run_images(
                    &self.be,
                    self.energy.as_ref(),
                    self.generator.net(),
                    c,
                    noise,
                    self.chain_key(rows.start),
                    None,
                )?;
                stats.push(s);
                x_neg.push(x);
            }
            self.be.sync()?;
            for (_, rows) in shards {
                x_pos.push(self.jitter(data, rows, noise)?);
            }
            Ok((stats, x_neg, x_pos))
        });
        let t1 = Instant::now();
        let (stats, x_neg, x_pos, (loss_ebm, energy_pos, energy_neg)) = if self.dist.is_trivial() {
            let (stats, x_neg, x_pos) = local?;
            let r = self.ebm_update(&x_pos[0], &x_neg[0])?;
            (stats, x_neg, x_pos, r)
        } else {
            let (parts, local) = match local {
                Ok(l) => (self.ebm_partials(&l.2, &l.1), Some(l)),
                Err(e) => (Err(e), None),
            };
            let reduced = self.reduce_parts(parts)?;
            let (stats, x_neg, x_pos) = local.expect("every rank succeeded (agreed)");
            let r = self.ebm_apply(&reduced)?;
            (stats, x_neg, x_pos, r)
        };
        let langevin = self.combine_langevin(stats)?;
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
        Ok(Contrast {
            x_pos,
            x_neg,
            stats,
        })
    }

    /// The generator update over the local shards' `(z, x)` pairs (or the
    /// error that prevented forming them).
    fn gen_update_shards(&mut self, pairs: Result<Vec<(B::Tensor, B::Tensor)>>) -> Result<f64> {
        if self.dist.is_trivial() {
            let pairs = pairs?;
            let (z, x) = &pairs[0];
            return self.gen_update(z, x);
        }
        let parts = pairs.and_then(|p| self.gen_partials(&p));
        let reduced = self.reduce_parts(parts)?;
        self.gen_apply(&reduced)
    }

    /// Bank slots of the local shards for this iteration: shard `s` draws
    /// `rows` distinct slots of its `cap` slots from `BankSlots[t, s]`;
    /// returned as indices into the rank's bank (shard `j` of the rank's
    /// shards at offset `j·cap`).
    fn shard_slots(
        &self,
        shards: &[ShardRows],
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<Vec<Vec<usize>>> {
        let bank = self
            .bank
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("this mode needs its bank".into()))?;
        let cap = bank.capacity() / shards.len();
        shards
            .iter()
            .enumerate()
            .map(|(j, (s, rows))| {
                let key = NoiseKey::new(self.seed, Stream::BankSlots, [self.iteration, *s as u64]);
                let slots = noise.unique_indices(key, rows.len(), cap)?;
                Ok(slots.into_iter().map(|i| i + j * cap).collect())
            })
            .collect()
    }

    /// Algorithm 1 (and its `current` ablation).
    fn step_synthesis(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let shards = self.local_shard_rows(self.config.batch_size);
        let mut chains = self.fresh_shard_chains(&shards, noise);
        let c = self.contrast(data, &shards, chains.as_mut().map_err(take), noise)?;
        let chains = chains.expect("contrast succeeded");
        let mut stats = c.stats.clone();
        let zs: Vec<B::Tensor> = chains
            .iter()
            .map(|c| c.z.clone().expect("generator chains have latents"))
            .collect();
        let t_gen = Instant::now();
        let slots = match self.config.gen_update {
            GenUpdate::Historical => {
                let mut slots = self.shard_slots(&shards, noise);
                let pairs = slots.as_mut().map_err(take).and_then(|slots| {
                    let bank = self.bank.as_ref().expect("checked by shard_slots");
                    slots
                        .iter()
                        .map(|s| {
                            let (bz, bx) = bank.gather(&self.be, s)?;
                            Ok((bz.expect("synthesis bank stores latents"), bx))
                        })
                        .collect()
                });
                stats.loss_gen = Some(self.gen_update_shards(pairs)?);
                let slots: Vec<usize> = slots.expect("agreed").concat();
                let (z, x) = (concat(&self.be, &zs)?, concat(&self.be, &c.x_neg)?);
                self.bank
                    .as_mut()
                    .expect("checked")
                    .overwrite(&self.be, &slots, Some(&z), &x)?;
                slots
            }
            GenUpdate::Current => {
                let pairs = zs.iter().cloned().zip(c.x_neg.iter().cloned()).collect();
                stats.loss_gen = Some(self.gen_update_shards(Ok(pairs))?);
                Vec::new()
            }
        };
        self.be.sync()?;
        stats.seconds_gen_update = t_gen.elapsed().as_secs_f64();
        self.keep(chains, &c, slots)?;
        Ok(stats)
    }

    /// Retrofit / refine (joint z and y chains) and the no-residual energy
    /// (z only); the generator is frozen.
    fn step_joint(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let shards = self.local_shard_rows(self.config.batch_size);
        let mut chains = self.fresh_shard_chains(&shards, noise);
        let c = self.contrast(data, &shards, chains.as_mut().map_err(take), noise)?;
        let stats = c.stats.clone();
        self.keep(chains.expect("contrast succeeded"), &c, Vec::new())?;
        Ok(stats)
    }

    /// Short-run EBM from noise (no generator).
    fn step_short_run(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let shards = self.local_shard_rows(self.config.batch_size);
        let mut chains: Result<Vec<Chains<B>>> = shards
            .iter()
            .map(|(_, rows)| {
                let mut y = self
                    .be
                    .zeros(&shape::batched(rows.len(), self.energy.sample_shape()))?;
                fill_noise_init(
                    &self.be,
                    &mut y,
                    self.config.noise_init,
                    self.key(Stream::ChainInitRes, 0)
                        .with_row_offset(rows.start as u64),
                )?;
                Ok(Chains { z: None, y })
            })
            .collect();
        let c = self.contrast(data, &shards, chains.as_mut().map_err(take), noise)?;
        let stats = c.stats.clone();
        self.keep(chains.expect("contrast succeeded"), &c, Vec::new())?;
        Ok(stats)
    }

    /// The persistent baseline's chains of the local shards: the drawn bank
    /// slots' images, each rejuvenated with probability p (fresh noise).
    fn persistent_chains(
        &self,
        shards: &[ShardRows],
        slots: &[Vec<usize>],
    ) -> Result<Vec<Chains<B>>> {
        let n = self.config.batch_size;
        let bank = self
            .bank
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("persistent mode needs its bank".into()))?;
        // Rejuvenation decisions for the whole batch, in global row order.
        let p = f64::from(self.config.rejuvenation);
        let reset: Vec<usize> = if p > 0.0 {
            let mut rng = self.key(Stream::Rejuvenation, 0).host_rng();
            (0..n).filter(|_| rng.random_bool(p)).collect()
        } else {
            Vec::new()
        };
        shards
            .iter()
            .zip(slots)
            .map(|((_, rows), slots)| {
                let (_, mut y) = bank.gather(&self.be, slots)?;
                let local: Vec<usize> = reset
                    .iter()
                    .filter(|r| rows.contains(r))
                    .map(|r| r - rows.start)
                    .collect();
                if !local.is_empty() {
                    let mut fresh = self
                        .be
                        .zeros(&shape::batched(rows.len(), self.energy.sample_shape()))?;
                    fill_noise_init(
                        &self.be,
                        &mut fresh,
                        self.config.noise_init,
                        self.key(Stream::Rejuvenation, 1)
                            .with_row_offset(rows.start as u64),
                    )?;
                    let picked = self.be.gather_rows(&fresh, &local)?;
                    self.be.scatter_rows(&mut y, &local, &picked)?;
                }
                Ok(Chains { z: None, y })
            })
            .collect()
    }

    /// Persistent chains with rejuvenation (IGEBM style).
    fn step_persistent(
        &mut self,
        data: &B::Tensor,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<StepStats> {
        let shards = self.local_shard_rows(self.config.batch_size);
        let mut slots = self.shard_slots(&shards, noise);
        let mut chains = slots
            .as_mut()
            .map_err(take)
            .and_then(|s| self.persistent_chains(&shards, s));
        let c = self.contrast(data, &shards, chains.as_mut().map_err(take), noise)?;
        let slots: Vec<usize> = slots.expect("agreed").concat();
        let x = concat(&self.be, &c.x_neg)?;
        self.bank
            .as_mut()
            .expect("checked")
            .overwrite(&self.be, &slots, None, &x)?;
        let stats = c.stats.clone();
        self.keep(chains.expect("contrast succeeded"), &c, slots)?;
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
        let shards = self.local_shard_rows(self.config.batch_size);
        let mut chains = self.fresh_shard_chains(&shards, noise);
        let c = self.contrast(data, &shards, chains.as_mut().map_err(take), noise)?;
        let chains = chains.expect("contrast succeeded");
        let mut stats = c.stats.clone();
        let t_gen = Instant::now();
        let pairs: Result<Vec<(B::Tensor, B::Tensor)>> = chains
            .iter()
            .zip(&c.x_neg)
            .zip(&shards)
            .map(|((ch, x_neg), (_, rows))| {
                let z = ch.z.clone().expect("generator chains have latents");
                Ok((
                    self.infer_latents(z, x_neg, rows.start, noise)?,
                    x_neg.clone(),
                ))
            })
            .collect();
        stats.loss_gen = Some(self.gen_update_shards(pairs)?);
        self.be.sync()?;
        stats.seconds_gen_update = t_gen.elapsed().as_secs_f64();
        self.keep(chains, &c, Vec::new())?;
        Ok(stats)
    }

    /// Cooperative latent inference for chains at global rows from `row_offset`.
    fn infer_latents(
        &self,
        z: B::Tensor,
        x_neg: &B::Tensor,
        row_offset: usize,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<B::Tensor> {
        if self.config.coop_latent_steps == 0 {
            return Ok(z);
        }
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
        let y0 = self.be.zeros(&self.be.shape(x_neg))?;
        let mut inf_chains = Chains { z: Some(z), y: y0 };
        // Inference noise: the latent stream under a counter with the top bit
        // set, disjoint from every training iteration's chain noise.
        let key = ChainKey {
            seed: self.seed,
            iteration: self.iteration ^ (1u64 << 63),
            row_offset: row_offset as u64,
        };
        inference.run(
            &self.be,
            &recon,
            self.generator.net(),
            &mut inf_chains,
            noise,
            key,
            None,
        )?;
        Ok(inf_chains.z.expect("inference chains have latents"))
    }
}

/// Moves an error out of a borrowed result (the value stays with its owner,
/// who only uses it once every rank has agreed that all succeeded).
fn take(e: &mut Error) -> Error {
    std::mem::replace(e, Error::Cancelled)
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
