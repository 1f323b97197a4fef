//! [`Trainer`]: the models, optimisers, bank and counters of one training run,
//! and the updates shared by every mode (EBM update, generator update).
//!
//! The per-mode iteration lives in [`super::modes`]; sampling from a trained
//! model in [`super::sample`]. Data batches come from the caller (a harness, the
//! facade's `Run` loop or the C ABI), already on the backend.

use crate::backend::{Backend, shape};
use crate::bank::Bank;
use crate::dist::{Communicator, DistConfig, ShardPlan, SingleProcess};
use crate::model::{Energy, Generator};
use crate::noise::{NoiseKey, NoiseSource, Stream};
use crate::optim::{Adam, AdamConfig};
use crate::params::Grads;
use crate::sampler::{LangevinConfig, LangevinSampler, LangevinStats};
use crate::{Error, Result};

use super::config::{Mode, TrainConfig};
use super::generator_state::{GeneratorState, TrainedGenerator};

/// What one training iteration reports.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StepStats {
    /// The iteration just completed, by its 1-based number: the trainer's
    /// completed-iteration count after it (resumed iterations included), so
    /// a fresh run's first step reports 1 and [`Trainer::iteration`] equals it
    /// right after the step.
    pub iteration: u64,
    /// The EBM loss `(mean U(x⁺) − mean U(x⁻))/T` (the paper's energy difference).
    pub loss_ebm: f64,
    /// Mean energy of the (jittered) data batch.
    pub energy_pos: f64,
    /// Mean energy of the negative samples.
    pub energy_neg: f64,
    /// Generator loss `λ·mean((G(z) − x)²)`, for modes that train the generator.
    pub loss_gen: Option<f64>,
    /// Sampler diagnostics of this iteration's chains.
    pub langevin: LangevinStats,
    /// Wall-clock seconds of the iteration.
    pub seconds: f64,
    /// Seconds in the negative chains (Langevin sampling).
    pub seconds_langevin: f64,
    /// Seconds in the EBM update.
    pub seconds_ebm_update: f64,
    /// Seconds in the generator update (and bank traffic), if any.
    pub seconds_gen_update: f64,
}

/// Tensors of the last iteration, kept after [`Trainer::set_keep_tensors`]
/// (tests, debugging, harnesses that log samples).
#[derive(Clone, Debug)]
pub struct StepTensors<B: Backend> {
    /// Latents of the negative chains after sampling.
    pub z: Option<B::Tensor>,
    /// Residuals after sampling.
    pub y: B::Tensor,
    /// Jittered data `x⁺`.
    pub x_pos: B::Tensor,
    /// Negative samples `x⁻ = G(z) + y` (pre-update generator).
    pub x_neg: B::Tensor,
    /// Bank slots used for the generator update (historical mode).
    pub slots: Vec<usize>,
}

/// One training run's state.
///
/// The fields are private: they change only through the methods below,
/// which keep the invariants a run depends on (the sampler's blocks are the
/// mode's, loaded weights reset their EMA copy, the learning-rate scale only
/// falls, the bank has the layout the mode needs, the counters stay in
/// range). Read access is through accessors of the same names.
pub struct Trainer<B: Backend> {
    pub(crate) be: B,
    pub(crate) config: TrainConfig,
    pub(crate) sampler: LangevinSampler,
    pub(crate) energy: Box<dyn Energy<B>>,
    /// The generator, with its optimiser and gradients where the mode trains it.
    pub(crate) generator: GeneratorState<B>,
    pub(crate) ebm_opt: Adam<B>,
    pub(crate) bank: Option<Bank<B>>,
    pub(crate) seed: u64,
    pub(crate) iteration: u64,
    pub(crate) keep_tensors: bool,
    pub(crate) last: Option<StepTensors<B>>,
    pub(crate) ebm_grads: Grads<B>,
    /// The communicator, the shard plan and the `[dist]` settings.
    pub(crate) dist: super::shards::Dist,
}

impl<B: Backend> std::fmt::Debug for Trainer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("backend", &self.be.name())
            .field("mode", &self.config.mode)
            .field("energy", &self.energy.describe())
            .field("generator", &self.generator.net().map(|g| g.describe()))
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

/// Everything [`Trainer::new`] needs besides the models.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerSettings {
    /// Training settings.
    pub train: TrainConfig,
    /// Sampler settings of the training chains.
    pub langevin: LangevinConfig,
    /// EBM optimiser.
    pub ebm_optim: AdamConfig,
    /// Generator optimiser (used by modes that train the generator).
    pub gen_optim: AdamConfig,
    /// Run seed.
    pub seed: u64,
    /// Initialise the bank (false when the state comes from a checkpoint).
    pub init_bank: bool,
    /// Data-parallel settings (shards; see [`crate::dist`]).
    pub dist: DistConfig,
}

impl TrainerSettings {
    /// Settings with the given parts and a bank that is initialised.
    pub fn new(
        train: TrainConfig,
        langevin: LangevinConfig,
        ebm_optim: AdamConfig,
        gen_optim: AdamConfig,
        seed: u64,
    ) -> Self {
        TrainerSettings {
            train,
            langevin,
            ebm_optim,
            gen_optim,
            seed,
            init_bank: true,
            dist: DistConfig::default(),
        }
    }
}

impl<B: Backend> Trainer<B> {
    /// Assembles a trainer. Checks that the models fit the mode and that the
    /// sampler moves the blocks the mode moves ([`super::state::mode_blocks`]:
    /// set `update_latents` / `update_res` from it), and initialises the
    /// bank (historical synthesis: `z ~ N(0, I)`, `x = G(z)`; persistent: noise).
    ///
    /// # Errors
    /// [`Error::Config`] for settings that do not fit the mode or the models
    /// (including sampler blocks other than the mode's).
    pub fn new(
        be: B,
        settings: TrainerSettings,
        energy: Box<dyn Energy<B>>,
        generator: Option<Box<dyn Generator<B>>>,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<Self> {
        Self::new_distributed(
            be,
            settings,
            energy,
            generator,
            noise,
            Box::new(SingleProcess),
        )
    }

    /// [`Trainer::new`] for one rank of a data-parallel run over `comm`: the
    /// rank owns the shards [`ShardPlan`] gives it (`settings.dist.shards`
    /// shards, which the number of ranks must divide), and initialises only
    /// their part of the bank. Every rank must be built with the same
    /// settings and models; see [`crate::dist`] for the determinism contract.
    ///
    /// # Errors
    /// As [`Trainer::new`]; [`Error::Config`] for shards that do not divide
    /// the batch or bank sizes or the number of ranks.
    pub fn new_distributed(
        be: B,
        settings: TrainerSettings,
        energy: Box<dyn Energy<B>>,
        generator: Option<Box<dyn Generator<B>>>,
        noise: &mut dyn NoiseSource<B>,
        comm: Box<dyn Communicator>,
    ) -> Result<Self> {
        let TrainerSettings {
            train,
            langevin,
            ebm_optim,
            gen_optim,
            seed,
            init_bank,
            dist,
        } = settings;
        train.validate()?;
        dist.validate()?;
        let plan = ShardPlan::new(dist.shards, comm.rank(), comm.size())?;
        super::shards::check_plan(&plan, &train)?;
        let mode = train.mode;
        match (&generator, mode.has_generator()) {
            (None, true) => {
                return Err(Error::Config(format!(
                    "mode `{}` needs a generator",
                    mode.name()
                )));
            }
            (Some(_), false) => {
                return Err(Error::Config(format!(
                    "mode `{}` takes no generator",
                    mode.name()
                )));
            }
            _ => {}
        }
        if let Some(g) = &generator
            && g.output_shape() != energy.sample_shape()
        {
            return Err(Error::Config(format!(
                "generator output {:?} does not match the energy's input {:?}",
                g.output_shape(),
                energy.sample_shape()
            )));
        }
        // The mode decides which blocks move; a setting that disagrees is an error.
        super::state::check_blocks(mode, &langevin)?;
        let sampler = LangevinSampler::new(langevin)?;
        ebm_optim.validate("ebm_optim")?;
        let ebm_opt = Adam::new(&be, ebm_optim, energy.params())?;
        let ebm_grads = Grads::zeros_like(&be, energy.params())?;
        let mut gen_state = GeneratorState::new(&be, mode, generator, gen_optim)?;
        if let Some(t) = gen_state.trained_mut()
            && mode == Mode::Cooperative
            && train.coop_bn_training
        {
            // A generator without batch norm cannot honour the setting: a
            // configuration error, like every other mismatch of settings and models.
            t.net.set_bn_training(true).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::Config(format!("train.coop_bn_training needs batch norm: {m}"))
                }
                other => other,
            })?;
        }
        // Each shard's part of the bank: `capacity / S` slots; the rank keeps
        // its shards' parts one after the other (shard order).
        let first = plan.local_shards().start as u64;
        let bank = match (mode, gen_state.net()) {
            _ if !init_bank => None,
            (Mode::Synthesis, Some(g))
                if train.gen_update == super::config::GenUpdate::Historical =>
            {
                let cap = train.bank_size / plan.shards();
                let parts = plan
                    .local_shards()
                    .map(|s| {
                        Bank::init_from_generator(
                            &be,
                            g,
                            cap,
                            train.batch_size,
                            seed,
                            s as u64,
                            noise,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(super::shards::concat_banks(&be, parts, first)?)
            }
            (Mode::Persistent, _) => {
                // Rows addressed globally: a sharded bank starts as the
                // single-process one does.
                let rows = plan.local_rows(train.persistent_bank_size);
                let shape = shape::batched(rows.len(), energy.sample_shape());
                let mut x = be.zeros(&shape)?;
                super::modes::fill_noise_init(
                    &be,
                    &mut x,
                    train.noise_init,
                    NoiseKey::new(seed, Stream::BankInit, [0, 0])
                        .with_row_offset(rows.start as u64),
                )?;
                Some(Bank::from_tensors(&be, None, x, first)?)
            }
            _ => None,
        };
        Ok(Trainer {
            be,
            config: train,
            sampler,
            energy,
            generator: gen_state,
            ebm_opt,
            bank,
            seed,
            iteration: 0,
            keep_tensors: false,
            last: None,
            ebm_grads,
            dist: super::shards::Dist::new(comm, plan, dist),
        })
    }

    /// The backend.
    pub fn be(&self) -> &B {
        &self.be
    }

    /// Training settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The sampler of the negative chains.
    pub fn sampler(&self) -> &LangevinSampler {
        &self.sampler
    }

    /// The energy (hat) network.
    pub fn energy(&self) -> &dyn Energy<B> {
        self.energy.as_ref()
    }

    /// The generator (absent in the short-run and persistent baselines).
    pub fn generator(&self) -> Option<&dyn Generator<B>> {
        self.generator.net()
    }

    /// The energy's optimiser.
    pub fn ebm_optimiser(&self) -> &Adam<B> {
        &self.ebm_opt
    }

    /// The generator's optimiser (modes that train it).
    pub fn gen_optimiser(&self) -> Option<&Adam<B>> {
        self.generator.opt()
    }

    /// The bank (this rank's part; see [`Trainer::bank_layout`]).
    pub fn bank(&self) -> Option<&Bank<B>> {
        self.bank.as_ref()
    }

    /// The seed every noise key derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Iterations completed so far.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// Keep (or stop keeping) each iteration's tensors for
    /// [`Trainer::last_tensors`] (tests, debugging, harnesses that log samples).
    pub fn set_keep_tensors(&mut self, keep: bool) {
        self.keep_tensors = keep;
        if !keep {
            self.last = None;
        }
    }

    /// The last iteration's tensors, if kept.
    pub fn last_tensors(&self) -> Option<&StepTensors<B>> {
        self.last.as_ref()
    }

    /// What is wrong with the trainer's state, if anything: a NaN or infinity
    /// in a network's weights, an optimiser's moments or EMA, or the bank, or
    /// an optimiser counter or learning-rate scale out of range (see
    /// [`Adam::check_state`]). The divergence guard runs it after every
    /// update, and checkpoints run it before saving and after loading, so a
    /// state that fails it is never kept.
    ///
    /// # Errors
    /// A backend error.
    pub fn check_state(&self) -> Result<Option<String>> {
        let be = &self.be;
        // Counters are stored as TOML/JSON-compatible signed 64-bit integers.
        if self.iteration > i64::MAX as u64 {
            return Ok(Some(format!(
                "iteration counter {} exceeds {}",
                self.iteration,
                i64::MAX
            )));
        }
        let names = |p: &crate::params::ParamSet<B>| -> Vec<String> {
            p.iter().map(|q| q.spec.name.clone()).collect()
        };
        let ebm = self.energy.params();
        if let Some(n) = ebm.first_non_finite(be)? {
            return Ok(Some(format!("non-finite value in ebm.{n}")));
        }
        if let Some(m) = self.ebm_opt.check_state(be, &names(ebm), "ebm")? {
            return Ok(Some(m));
        }
        if let Some(g) = self.generator.net() {
            let gp = g.params();
            if let Some(n) = gp.first_non_finite(be)? {
                return Ok(Some(format!("non-finite value in gen.{n}")));
            }
            if let Some(o) = self.generator.opt()
                && let Some(m) = o.check_state(be, &names(gp), "gen")?
            {
                return Ok(Some(m));
            }
        }
        if let Some(bank) = &self.bank {
            if !be.all_finite(&bank.x)? {
                return Ok(Some("non-finite value in bank.x".into()));
            }
            if let Some(z) = &bank.z
                && !be.all_finite(z)?
            {
                return Ok(Some("non-finite value in bank.z".into()));
            }
        }
        Ok(None)
    }

    /// Whether the mode keeps a bank, and whether that bank stores latents
    /// (`Some(true)`: historical synthesis; `Some(false)`: persistent images).
    pub fn bank_layout(&self) -> Option<bool> {
        match self.config.mode {
            Mode::Synthesis if self.config.gen_update == super::config::GenUpdate::Historical => {
                Some(true)
            }
            Mode::Persistent => Some(false),
            _ => None,
        }
    }

    /// The gradient of the last EBM update (after clipping), aligned with the
    /// energy's parameters.
    pub fn ebm_grads(&self) -> &Grads<B> {
        &self.ebm_grads
    }

    /// The gradient of the last generator update (after clipping).
    pub fn gen_grads(&self) -> Option<&Grads<B>> {
        self.generator.grads()
    }

    /// The noise key of `stream` at this iteration (`step` = second counter word).
    pub(crate) fn key(&self, stream: Stream, step: u64) -> NoiseKey {
        NoiseKey::new(self.seed, stream, [self.iteration, step])
    }

    /// The EBM update: accumulates the gradient of
    /// `(mean U(x⁺) − mean U(x⁻))/T` in one pass over `[x⁺; x⁻]`, steps Adam
    /// (with clipping and EMA as configured), and returns
    /// `(loss, mean U(x⁺), mean U(x⁻))`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] if the loss or gradients are not finite (the
    /// weights are then left untouched); model and backend errors.
    pub fn ebm_update(&mut self, x_pos: &B::Tensor, x_neg: &B::Tensor) -> Result<(f64, f64, f64)> {
        let be = &self.be;
        let (np, nn) = (be.shape(x_pos)[0], be.shape(x_neg)[0]);
        let t = self.sampler.config.temperature;
        let both = be.concat_rows(&[x_pos, x_neg])?;
        let mut w = vec![1.0 / (np as f32 * t); np];
        w.extend(std::iter::repeat_n(-1.0 / (nn as f32 * t), nn));
        self.ebm_grads.zero(be)?;
        let e = be.to_host(
            &self
                .energy
                .energy_grad_params(&both, &w, &mut self.ebm_grads)?,
        )?;
        let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64;
        let (ep, en) = (mean(&e[..np]), mean(&e[np..]));
        let loss = (ep - en) / f64::from(t);
        self.step_ebm_optimiser(loss)?;
        Ok((loss, ep, en))
    }

    /// Checks the loss and the EBM gradient in `ebm_grads`, then steps Adam.
    ///
    /// # Errors
    /// [`Error::NonFinite`] (weights untouched); backend errors.
    pub(crate) fn step_ebm_optimiser(&mut self, loss: f64) -> Result<()> {
        if !loss.is_finite() || !self.ebm_grads.all_finite(&self.be)? {
            return Err(Error::NonFinite(format!(
                "EBM update at iteration {} (loss {loss})",
                self.iteration + 1
            )));
        }
        self.ebm_opt
            .step(&self.be, self.energy.params_mut(), &mut self.ebm_grads)
    }

    /// Checks the loss and the trained generator's gradient, then steps
    /// the generator's optimiser.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a trained generator;
    /// [`Error::NonFinite`] (weights untouched); backend errors.
    pub(crate) fn step_gen_optimiser(&mut self, loss: f64) -> Result<()> {
        let Some(TrainedGenerator { net, opt, grads }) = self.generator.trained_mut() else {
            return Err(Error::InvalidArgument(format!(
                "mode `{}` does not train a generator",
                self.config.mode.name()
            )));
        };
        if !loss.is_finite() || !grads.all_finite(&self.be)? {
            return Err(Error::NonFinite(format!(
                "generator update at iteration {} (loss {loss})",
                self.iteration + 1
            )));
        }
        opt.step(&self.be, net.params_mut(), grads)
    }

    /// The generator update: fits `G(z)` to `x` with loss `λ·mean((G(z) − x)²)`
    /// and steps the generator's optimiser. Returns the loss.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the mode does not train the generator;
    /// [`Error::NonFinite`] for a non-finite loss or gradient (weights untouched).
    pub fn gen_update(&mut self, z: &B::Tensor, x: &B::Tensor) -> Result<f64> {
        let Some(TrainedGenerator { net, grads, .. }) = self.generator.trained_mut() else {
            return Err(Error::InvalidArgument(format!(
                "mode `{}` does not train a generator",
                self.config.mode.name()
            )));
        };
        grads.zero(&self.be)?;
        let loss = net.mse_grad_params(&self.be, z, x, self.config.gen_loss_factor, grads)?;
        self.step_gen_optimiser(loss)?;
        Ok(loss)
    }

    /// Checks a data batch's shape and finiteness.
    pub(crate) fn check_data(&self, data: &B::Tensor) -> Result<usize> {
        let s = self.be.shape(data);
        let want = shape::batched(s.first().copied().unwrap_or(0), self.energy.sample_shape());
        if s.is_empty() || s[0] == 0 || s != want {
            return Err(Error::shape(
                "data batch",
                &shape::batched(self.config.batch_size, self.energy.sample_shape()),
                &s,
            ));
        }
        if !self.be.all_finite(data)? {
            return Err(Error::NonFinite("data batch".into()));
        }
        Ok(s[0])
    }
}
