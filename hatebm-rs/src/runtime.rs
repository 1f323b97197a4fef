//! Run-time backend dispatch: the one closed enum that turns `backend = "..."`
//! into a concrete backend (burn-dispatch / candle `Storage` style).
//!
//! Hot loops stay monomorphised inside [`crate::run::Run`]; this layer
//! matches once per high-level call. There is deliberately no catch-all arm:
//! a new backend does not compile until it is wired in everywhere.
//!
//! * `cpu` — always available.
//! * `tch:cpu`, `tch:cuda[:N]` — with the `tch` cargo feature; otherwise
//!   [`Error::BackendUnavailable`]. A CUDA device that is not there is
//!   [`Error::DeviceUnavailable`].
//! * `auto` — CUDA through libtorch when compiled in and present, else `cpu`;
//!   the choice is logged and reported by [`AnyRun::backend_name`].

use std::collections::HashMap;
use std::path::Path;

use crate::Backend;
use crate::config::Config;
use crate::cpu::CpuBackend;
use crate::dist::Communicator;
use crate::nets::BuildNets;
use crate::run::{Observer, Run};
use crate::sampler::{ChainKey, LangevinConfig, LangevinStats};
use crate::spec::BackendSpec;
use crate::train::{Net, SampleOptions, StepStats};
use crate::{Error, Result, ResultExt};

/// A run on whichever backend the configuration named.
#[derive(Debug)]
pub enum AnyRun {
    /// The CPU reference backend.
    Cpu(Box<Run<CpuBackend>>),
    /// libtorch (CPU or CUDA).
    #[cfg(feature = "tch")]
    Tch(Box<Run<hatebm_tch::TchBackend>>),
}

/// Expands `$body` once per backend with `$r` bound to the concrete run.
macro_rules! dispatch {
    ($self:expr, $r:ident => $body:expr) => {
        match $self {
            AnyRun::Cpu($r) => $body,
            #[cfg(feature = "tch")]
            AnyRun::Tch($r) => $body,
        }
    };
}

/// A [`TrainedModel`](crate::run::TrainedModel) on whichever backend its
/// checkpoint's configuration names: sampling and energies from a checkpoint
/// alone, without the training data.
#[derive(Debug)]
pub enum AnyModel {
    /// The CPU reference backend.
    Cpu(Box<crate::run::TrainedModel<CpuBackend>>),
    /// libtorch (CPU or CUDA).
    #[cfg(feature = "tch")]
    Tch(Box<crate::run::TrainedModel<hatebm_tch::TchBackend>>),
}

macro_rules! dispatch_model {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            AnyModel::Cpu($m) => $body,
            #[cfg(feature = "tch")]
            AnyModel::Tch($m) => $body,
        }
    };
}

impl AnyModel {
    /// Loads a checkpoint's networks on the backend its configuration names
    /// (or `backend`, if given).
    ///
    /// # Errors
    /// As [`crate::run::TrainedModel::load`] and [`resolve`].
    pub fn load(path: &Path, backend: Option<BackendSpec>) -> Result<Self> {
        use crate::run::{Checkpoint, TrainedModel};
        let ck = Checkpoint::read(path)?;
        let cfg = ck.config()?;
        apply_threads(cfg.threads);
        Ok(match resolve(backend.unwrap_or(cfg.backend))? {
            Resolved::Cpu => AnyModel::Cpu(Box::new(TrainedModel::from_checkpoint(
                CpuBackend::new(),
                &ck,
            )?)),
            #[cfg(feature = "tch")]
            Resolved::TchCpu => AnyModel::Tch(Box::new(TrainedModel::from_checkpoint(
                hatebm_tch::TchBackend::cpu(),
                &ck,
            )?)),
            #[cfg(feature = "tch")]
            Resolved::TchCuda(n) => AnyModel::Tch(Box::new(TrainedModel::from_checkpoint(
                hatebm_tch::TchBackend::cuda(n)?,
                &ck,
            )?)),
            #[cfg(not(feature = "tch"))]
            Resolved::TchCpu | Resolved::TchCuda(_) => {
                unreachable!("resolve() refuses tch specs without the feature")
            }
        })
    }

    /// The configuration the model was trained with.
    pub fn config(&self) -> &Config {
        dispatch_model!(self, m => m.config())
    }

    /// The image shape of the samples, if images.
    pub fn image_dims(&self) -> Option<[usize; 3]> {
        dispatch_model!(self, m => m.image_dims())
    }

    /// The shape of one sample.
    pub fn sample_shape(&self) -> Vec<usize> {
        dispatch_model!(self, m => m.sample_shape().to_vec())
    }

    /// The iteration the checkpoint was written at.
    pub fn iteration(&self) -> u64 {
        dispatch_model!(self, m => m.iteration())
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        dispatch_model!(self, m => m.backend_name())
    }

    /// Samples ([`crate::run::TrainedModel::sample`]).
    ///
    /// # Errors
    /// As [`crate::run::TrainedModel::sample`].
    pub fn sample(
        &mut self,
        opts: &SampleOptions,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        dispatch_model!(self, m => m.sample(opts, progress))
    }

    /// Chooses the transition ([`crate::run::TrainedModel::set_sampler_method`]).
    ///
    /// # Errors
    /// As [`crate::run::TrainedModel::set_sampler_method`].
    pub fn set_sampler_method(&mut self, method: crate::sampler::Method) -> Result<()> {
        dispatch_model!(self, m => m.set_sampler_method(method))
    }

    /// The sampler settings ([`crate::run::TrainedModel::sampler_config`]).
    pub fn sampler_config(&self) -> &LangevinConfig {
        dispatch_model!(self, m => m.sampler_config())
    }

    /// Replaces the sampler settings
    /// ([`crate::run::TrainedModel::set_sampler_config`]).
    ///
    /// # Errors
    /// As [`crate::run::TrainedModel::set_sampler_config`].
    pub fn set_sampler_config(&mut self, c: LangevinConfig) -> Result<()> {
        dispatch_model!(self, m => m.set_sampler_config(c))
    }

    /// AIS log Z of the energy ([`crate::run::TrainedModel::log_z`]).
    ///
    /// # Errors
    /// As [`crate::run::TrainedModel::log_z`].
    pub fn log_z(
        &mut self,
        cfg: &crate::sampler::AisConfig,
        use_ema: bool,
    ) -> Result<crate::sampler::AisResult> {
        dispatch_model!(self, m => m.log_z(cfg, use_ema))
    }

    /// The fraction of the last sampling call's values clamped to the data's
    /// range ([`crate::run::TrainedModel::last_clamped_fraction`]).
    pub fn last_clamped_fraction(&self) -> f64 {
        dispatch_model!(self, m => m.last_clamped_fraction())
    }

    /// Diagnostics of the last sampling call
    /// ([`crate::run::TrainedModel::last_sample_stats`]).
    pub fn last_sample_stats(&self) -> Option<&LangevinStats> {
        dispatch_model!(self, m => m.last_sample_stats())
    }

    /// Energies ([`crate::run::TrainedModel::energy`]).
    ///
    /// # Errors
    /// As [`crate::run::TrainedModel::energy`].
    pub fn energy(&mut self, x: &[f32], n: usize, use_ema: bool) -> Result<Vec<f32>> {
        dispatch_model!(self, m => m.energy(x, n, use_ema))
    }

    /// Out-of-distribution scores, energy and input-gradient norm
    /// ([`crate::run::TrainedModel::scores`]).
    ///
    /// # Errors
    /// As [`crate::run::TrainedModel::scores`].
    pub fn scores(
        &mut self,
        x: &[f32],
        n: usize,
        use_ema: bool,
    ) -> Result<crate::metrics::OodScores> {
        dispatch_model!(self, m => m.scores(x, n, use_ema))
    }
}

/// The concrete backend a spec resolves to on this build and machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The CPU reference backend.
    Cpu,
    /// libtorch on the CPU.
    TchCpu,
    /// libtorch on CUDA device `N`.
    TchCuda(usize),
}

/// Whether this build has the libtorch backend.
pub const fn tch_compiled() -> bool {
    cfg!(feature = "tch")
}

/// Resolves a spec: fails for a backend that was not compiled in or a missing
/// device; `auto` falls back to the CPU backend.
///
/// # Errors
/// [`Error::BackendUnavailable`], [`Error::DeviceUnavailable`].
pub fn resolve(spec: BackendSpec) -> Result<Resolved> {
    let unavailable = |name: String| {
        Error::BackendUnavailable {
        name,
        hint: "rebuild with `--features tch` (and `cuda` for GPUs) of hatebm-rs, hatebm-ffi or hatebm-cli; see docs/tch-backend.md".into(),
    }
    };
    match spec {
        BackendSpec::Cpu => {
            let isa = crate::cpu::isa::check_env()?;
            log::info!("cpu backend: {isa} kernels");
            Ok(Resolved::Cpu)
        }
        BackendSpec::TchCpu => {
            if tch_compiled() {
                Ok(Resolved::TchCpu)
            } else {
                Err(unavailable(spec.to_string()))
            }
        }
        BackendSpec::TchCuda(n) => {
            if !tch_compiled() {
                return Err(unavailable(spec.to_string()));
            }
            #[cfg(feature = "tch")]
            {
                let count = hatebm_tch::cuda_device_count();
                if n >= count {
                    return Err(Error::DeviceUnavailable(format!(
                        "{spec}: this machine has {count} CUDA device(s) visible to libtorch"
                    )));
                }
            }
            Ok(Resolved::TchCuda(n))
        }
        BackendSpec::Auto => {
            #[cfg(feature = "tch")]
            {
                if hatebm_tch::cuda_device_count() > 0 {
                    log::info!("backend = \"auto\": using tch:cuda:0");
                    return Ok(Resolved::TchCuda(0));
                }
            }
            log::info!(
                "backend = \"auto\": no CUDA device through libtorch in this build/machine; using cpu"
            );
            resolve(BackendSpec::Cpu)
        }
    }
}

impl AnyRun {
    /// Builds a fresh run on the configured backend.
    ///
    /// # Errors
    /// Backend resolution errors; as [`Run::new`].
    pub fn new(config: Config) -> Result<Self> {
        Self::new_distributed(config, Box::new(crate::dist::SingleProcess))
    }

    /// [`AnyRun::new`] for one rank of a data-parallel run over `comm` (see
    /// [`Run::new_distributed`]).
    ///
    /// # Errors
    /// As [`Run::new_distributed`].
    pub fn new_distributed(config: Config, comm: Box<dyn Communicator>) -> Result<Self> {
        apply_threads(config.threads);
        Ok(match resolve(config.backend)? {
            Resolved::Cpu => AnyRun::Cpu(Box::new(Run::new_distributed(
                CpuBackend::new(),
                config,
                comm,
            )?)),
            #[cfg(feature = "tch")]
            Resolved::TchCpu => AnyRun::Tch(Box::new(Run::new_distributed(
                hatebm_tch::TchBackend::cpu(),
                config,
                comm,
            )?)),
            #[cfg(feature = "tch")]
            Resolved::TchCuda(n) => AnyRun::Tch(Box::new(Run::new_distributed(
                hatebm_tch::TchBackend::cuda(n)?,
                config,
                comm,
            )?)),
            #[cfg(not(feature = "tch"))]
            Resolved::TchCpu | Resolved::TchCuda(_) => {
                unreachable!("resolve() refuses tch specs without the feature")
            }
        })
    }

    /// Resumes from a checkpoint; the backend is the one of `config` if given,
    /// else the one stored in the checkpoint's configuration.
    ///
    /// # Errors
    /// As [`Run::resume`].
    pub fn resume(path: &Path, config: Option<Config>) -> Result<Self> {
        Self::resume_distributed(path, config, Box::new(crate::dist::SingleProcess))
    }

    /// [`AnyRun::resume`] for one rank of a data-parallel run (see
    /// [`Run::resume_distributed`]).
    ///
    /// # Errors
    /// As [`Run::resume_distributed`].
    pub fn resume_distributed(
        path: &Path,
        config: Option<Config>,
        comm: Box<dyn Communicator>,
    ) -> Result<Self> {
        let spec = match &config {
            Some(c) => Ok(c.backend),
            None => crate::run::Checkpoint::read(path).and_then(|ck| {
                let text = ck
                    .meta_str("config")
                    .ok_or_else(|| Error::format(&ck.context, "metadata `config` missing"))?;
                Ok(Config::from_toml_str(text)?.backend)
            }),
        };
        let spec = crate::dist::agree(comm.as_ref(), spec)?;
        if let Some(c) = &config {
            apply_threads(c.threads);
        }
        Ok(match resolve(spec)? {
            Resolved::Cpu => AnyRun::Cpu(Box::new(Run::resume_distributed(
                CpuBackend::new(),
                path,
                config,
                comm,
            )?)),
            #[cfg(feature = "tch")]
            Resolved::TchCpu => AnyRun::Tch(Box::new(Run::resume_distributed(
                hatebm_tch::TchBackend::cpu(),
                path,
                config,
                comm,
            )?)),
            #[cfg(feature = "tch")]
            Resolved::TchCuda(n) => AnyRun::Tch(Box::new(Run::resume_distributed(
                hatebm_tch::TchBackend::cuda(n)?,
                path,
                config,
                comm,
            )?)),
            #[cfg(not(feature = "tch"))]
            Resolved::TchCpu | Resolved::TchCuda(_) => {
                unreachable!("resolve() refuses tch specs without the feature")
            }
        })
    }

    /// This process's rank in its data-parallel run (0 in a single process).
    pub fn rank(&self) -> usize {
        dispatch!(self, r => r.trainer.comm().rank())
    }

    /// The number of ranks of the run (1 in a single process).
    pub fn ranks(&self) -> usize {
        dispatch!(self, r => r.trainer.comm().size())
    }

    /// The backend's name, e.g. `cpu` or `tch:cuda:0`.
    pub fn backend_name(&self) -> String {
        use crate::Backend;
        dispatch!(self, r => r.trainer.be().name())
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        dispatch!(self, r => &r.config)
    }

    /// Iterations completed.
    pub fn iteration(&self) -> u64 {
        dispatch!(self, r => r.trainer.iteration())
    }

    /// One guarded iteration ([`Run::step`]).
    ///
    /// # Errors
    /// As [`Run::step`].
    pub fn step(&mut self) -> Result<StepStats> {
        dispatch!(self, r => r.step())
    }

    /// Trains ([`Run::train`]).
    ///
    /// # Errors
    /// As [`Run::train`].
    pub fn train(&mut self, max_steps: Option<u64>, observer: &mut dyn Observer) -> Result<()> {
        dispatch!(self, r => r.train(max_steps, observer))
    }

    /// Draws samples ([`Run::sample`]): host data and shape `[n, ...sample]`.
    ///
    /// # Errors
    /// As [`Run::sample`].
    pub fn sample(&mut self, opts: &SampleOptions) -> Result<(Vec<f32>, Vec<usize>)> {
        dispatch!(self, r => r.sample(opts))
    }

    /// Samples with a progress callback ([`Run::sample_with_progress`]).
    ///
    /// # Errors
    /// As [`Run::sample_with_progress`].
    pub fn sample_with_progress(
        &mut self,
        opts: &SampleOptions,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        dispatch!(self, r => r.sample_with_progress(opts, progress))
    }

    /// Saves a checkpoint ([`Run::save_checkpoint`]).
    ///
    /// # Errors
    /// As [`Run::save_checkpoint`].
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        dispatch!(self, r => r.save_checkpoint(path))
    }

    /// The image shape `[C, H, W]` of the data, if image data.
    pub fn image_dims(&self) -> Option<[usize; 3]> {
        dispatch!(self, r => r.image_dims())
    }

    /// Held-out data (host values, per-sample shape), if any.
    pub fn heldout(&self) -> Option<(&[f32], &[usize])> {
        dispatch!(self, r => r.heldout_data().map(|d| (d.data(), d.sample_shape())))
    }

    /// Training data (host values, per-sample shape).
    pub fn train_data(&self) -> (&[f32], &[usize]) {
        dispatch!(self, r => (r.train_data().data(), r.train_data().sample_shape()))
    }

    /// The last iteration's statistics.
    pub fn last_stats(&self) -> Option<&StepStats> {
        dispatch!(self, r => r.last_stats.as_ref())
    }

    /// The shape of one sample (the energy's input), e.g. `[64]` or `[3, 32, 32]`.
    pub fn sample_shape(&self) -> Vec<usize> {
        dispatch!(self, r => r.trainer.energy().sample_shape().to_vec())
    }

    /// The shape of one latent, if the run has a generator.
    pub fn latent_shape(&self) -> Option<Vec<usize>> {
        dispatch!(self, r => r.trainer.generator().map(|g| g.latent_shape().to_vec()))
    }

    /// U(x) for `n` samples given as host data (current, not EMA, weights).
    ///
    /// # Errors
    /// Shape, model and backend errors.
    pub fn energy(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        dispatch!(self, r => host::energy(r.trainer.be(), r.trainer.energy(), x, n))
    }

    /// U(x) and dU/dx for `n` samples given as host data.
    ///
    /// # Errors
    /// Shape, model and backend errors.
    pub fn energy_grad(&self, x: &[f32], n: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        dispatch!(self, r => host::energy_grad(r.trainer.be(), r.trainer.energy(), x, n))
    }

    /// G(z) for `n` latents given as host data.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a generator; shape, model and backend errors.
    pub fn generate(&self, z: &[f32], n: usize) -> Result<Vec<f32>> {
        dispatch!(self, r => host::generate(r.trainer.be(), generator_of(&r.trainer)?, z, n))
    }

    /// The generator's VJP with respect to the latent.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a generator; shape, model and backend errors.
    pub fn generator_vjp(&self, z: &[f32], cot: &[f32], n: usize) -> Result<Vec<f32>> {
        dispatch!(self, r => host::generator_vjp(r.trainer.be(), generator_of(&r.trainer)?, z, cot, n))
    }

    /// The training chains' sampler settings (after the mode's adjustments) and
    /// the run seed.
    pub fn langevin_config(&self) -> (LangevinConfig, u64) {
        dispatch!(self, r => (r.trainer.sampler().config.clone(), r.trainer.seed()))
    }

    /// Runs the Langevin sampler with the run's networks on host chains: `y`
    /// (`n` samples) and, when given, latents `z` through the generator. With
    /// `use_ema`, the energy's EMA weights are used (if the optimiser keeps them).
    ///
    /// # Errors
    /// As [`crate::sampler::LangevinSampler::run`].
    pub fn langevin(
        &mut self,
        config: LangevinConfig,
        key: ChainKey,
        z: Option<&[f32]>,
        y: &[f32],
        n: usize,
        use_ema: bool,
    ) -> Result<ChainsOut> {
        dispatch!(self, r => {
            let t = &mut r.trainer;
            if z.is_some() && t.generator().is_none() {
                return Err(Error::InvalidArgument(
                    "latents given, but this run has no generator".into(),
                ));
            }
            t.with_ema_weights(use_ema, |t| {
                host::langevin(
                    t.be(),
                    t.energy(),
                    z.and(t.generator()),
                    config,
                    key,
                    z,
                    y,
                    n,
                )
            })
        })
    }

    /// The bank's capacity and whether it stores latents (`None`: no bank).
    pub fn bank_layout(&self) -> Option<(usize, bool)> {
        dispatch!(self, r => r.trainer.bank().map(|b| (b.capacity(), b.z.is_some())))
    }

    /// Slot `slot` of the bank: `(z, x)` as host data.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a bank or for a slot out of range.
    pub fn bank_read(&self, slot: usize) -> Result<(Option<Vec<f32>>, Vec<f32>)> {
        dispatch!(self, r => {
            let t = &r.trainer;
            let bank = t.bank().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "mode `{}` keeps no bank",
                    t.config().mode.name()
                ))
            })?;
            if slot >= bank.capacity() {
                return Err(Error::InvalidArgument(format!(
                    "bank slot {slot} is out of range (capacity {})",
                    bank.capacity()
                )));
            }
            let (z, x) = bank.gather(t.be(), &[slot])?;
            Ok((z.map(|z| t.be().to_host(&z)).transpose()?, t.be().to_host(&x)?))
        })
    }

    /// Loads weights (safetensors, PyTorch state-dict names; a plain state dict
    /// or a file with `ebm.` / `gen.` prefixes such as a checkpoint) into one
    /// model. Loading the energy resets its EMA copy to the loaded weights;
    /// [`Model::EnergyEma`] loads into the EMA copy only. Optimiser moments are kept.
    ///
    /// # Errors
    /// I/O, format and [`Error::Param`] errors; nothing changes on error.
    pub fn load_weights(&mut self, which: Model, path: &Path) -> Result<()> {
        dispatch!(self, r => load_weights(r, which, path))
    }

    /// Saves one model's weights (safetensors, PyTorch state-dict names, no prefix).
    ///
    /// # Errors
    /// Backend and I/O errors; [`Error::InvalidArgument`] for a model the run lacks.
    pub fn save_weights(&self, which: Model, path: &Path) -> Result<()> {
        dispatch!(self, r => save_weights(r, which, path))
    }
}

/// Which network's weights a weights call addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// The energy network (current weights).
    Energy,
    /// The generator.
    Generator,
    /// The exponential moving average of the energy's weights (`ebm_optim.ema_decay`).
    EnergyEma,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::Energy => "energy",
            Model::Generator => "generator",
            Model::EnergyEma => "energy_ema",
        }
    }
}

/// Chains after a sampler call: latents (if any), residuals / images, diagnostics.
pub type ChainsOut = (Option<Vec<f32>>, Vec<f32>, LangevinStats);

fn generator_of<B: Backend>(t: &crate::train::Trainer<B>) -> Result<&dyn crate::Generator<B>> {
    t.generator().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "mode `{}` has no generator",
            t.config().mode.name()
        ))
    })
}

fn load_weights<B: BuildNets>(r: &mut Run<B>, which: Model, path: &Path) -> Result<()> {
    let file = crate::weights::TensorFile::read(path)?;
    let t = &mut r.trainer;
    let stem = if which == Model::Generator {
        "gen."
    } else {
        "ebm."
    };
    let prefix = if file.tensors.keys().any(|k| k.starts_with(stem)) {
        stem
    } else {
        ""
    };
    let tensors = file.with_prefix(prefix);
    let net = match which {
        Model::Energy => Net::Energy,
        Model::EnergyEma => Net::EnergyEma,
        Model::Generator => Net::Generator,
    };
    t.load_weights(net, &tensors)
        .with_context(|| format!("loading weights {}", path.display()))
}

fn save_weights<B: BuildNets>(r: &Run<B>, which: Model, path: &Path) -> Result<()> {
    let t = &r.trainer;
    let be = t.be();
    let (mut tensors, describe) = match which {
        Model::Energy | Model::EnergyEma => {
            (t.energy().params().to_host(be)?, t.energy().describe())
        }
        Model::Generator => {
            let g = generator_of(t)?;
            (g.params().to_host(be)?, g.describe())
        }
    };
    if which == Model::EnergyEma {
        let ema = t.ebm_optimiser().ema().ok_or_else(|| {
            Error::InvalidArgument(
                "the energy keeps no EMA weights (set ebm_optim.ema_decay)".into(),
            )
        })?;
        for ((_, _, data), e) in tensors.iter_mut().zip(ema) {
            if let Some(e) = e {
                *data = be.to_host(e)?;
            }
        }
    }
    let mut meta = HashMap::new();
    meta.insert("hatebm.model".to_string(), which.name().to_string());
    meta.insert("hatebm.network".to_string(), describe);
    meta.insert("hatebm.iteration".to_string(), t.iteration().to_string());
    crate::weights::write(path, &tensors, &meta)
}

/// Model evaluation and sampling on host buffers, for any backend: upload,
/// compute, download. Used by sessions (their networks) and by the callback
/// models (on the CPU backend).
pub mod host {
    use crate::backend::shape::batched;
    use crate::noise::SeededNoise;
    use crate::sampler::{ChainKey, Chains, LangevinConfig, LangevinSampler};
    use crate::{Backend, Energy, Generator, Result};

    use super::ChainsOut;

    /// U(x) per sample.
    ///
    /// # Errors
    /// Shape, model and backend errors.
    pub fn energy<B: Backend>(be: &B, e: &dyn Energy<B>, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let x = be.from_host(x, &batched(n, e.sample_shape()))?;
        be.to_host(&e.energy(&x)?)
    }

    /// U(x) per sample and dU/dx.
    ///
    /// # Errors
    /// Shape, model and backend errors.
    pub fn energy_grad<B: Backend>(
        be: &B,
        e: &dyn Energy<B>,
        x: &[f32],
        n: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let x = be.from_host(x, &batched(n, e.sample_shape()))?;
        let (en, g) = e.energy_grad_x(&x)?;
        Ok((be.to_host(&en)?, be.to_host(&g)?))
    }

    /// G(z).
    ///
    /// # Errors
    /// Shape, model and backend errors.
    pub fn generate<B: Backend>(
        be: &B,
        g: &dyn Generator<B>,
        z: &[f32],
        n: usize,
    ) -> Result<Vec<f32>> {
        let z = be.from_host(z, &batched(n, g.latent_shape()))?;
        be.to_host(&g.forward(&z)?)
    }

    /// d(sum <G(z), cot>)/dz.
    ///
    /// # Errors
    /// Shape, model and backend errors.
    pub fn generator_vjp<B: Backend>(
        be: &B,
        g: &dyn Generator<B>,
        z: &[f32],
        cot: &[f32],
        n: usize,
    ) -> Result<Vec<f32>> {
        let z = be.from_host(z, &batched(n, g.latent_shape()))?;
        let cot = be.from_host(cot, &batched(n, g.output_shape()))?;
        be.to_host(&g.vjp_latent(&z, &cot)?)
    }

    /// Runs the Langevin sampler on host chains (`z` only with a generator).
    ///
    /// # Errors
    /// As [`LangevinSampler::run`]; [`crate::Error::Config`] for bad knobs.
    pub fn langevin<B: Backend>(
        be: &B,
        energy: &dyn Energy<B>,
        generator: Option<&dyn Generator<B>>,
        config: LangevinConfig,
        key: ChainKey,
        z: Option<&[f32]>,
        y: &[f32],
        n: usize,
    ) -> Result<ChainsOut> {
        let sampler = LangevinSampler::new(config)?;
        let z = match (generator, z) {
            (Some(g), Some(z)) => Some(be.from_host(z, &batched(n, g.latent_shape()))?),
            _ => None,
        };
        let y = be.from_host(y, &batched(n, energy.sample_shape()))?;
        let mut chains = Chains { z, y };
        let stats = sampler.run(
            be,
            energy,
            generator,
            &mut chains,
            &mut SeededNoise,
            key,
            None,
        )?;
        let z = chains.z.as_ref().map(|z| be.to_host(z)).transpose()?;
        Ok((z, be.to_host(&chains.y)?, stats))
    }
}

/// Applies `threads` (0 = all cores) to the process-wide rayon pool that the
/// CPU backend uses. The pool can be sized only once per process: a later,
/// different request is logged and ignored (results never depend on the
/// thread count, only speed does). Callbacks into C always run on the thread
/// that called the library.
pub fn apply_threads(threads: usize) {
    use std::sync::OnceLock;
    static APPLIED: OnceLock<usize> = OnceLock::new();
    if threads == 0 {
        return;
    }
    let first = *APPLIED.get_or_init(|| {
        match rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
        {
            Ok(()) => threads,
            Err(_) => rayon::current_num_threads(),
        }
    });
    if first != threads {
        log::warn!(
            "threads = {threads} ignored: the CPU thread pool already has {first} threads in this process"
        );
    }
}

/// Pretrains the retrofit autoencoder ([`crate::run::pretrain_autoencoder`])
/// on the backend that `config.backend` names.
///
/// # Errors
/// As [`resolve`] and [`crate::run::pretrain_autoencoder`].
pub fn pretrain_autoencoder(
    config: &Config,
    progress: &mut dyn FnMut(u64, u64, f64),
) -> Result<crate::run::AePretrained> {
    apply_threads(config.threads);
    match resolve(config.backend)? {
        Resolved::Cpu => crate::run::pretrain_autoencoder(CpuBackend::new(), config, progress),
        #[cfg(feature = "tch")]
        Resolved::TchCpu => {
            crate::run::pretrain_autoencoder(hatebm_tch::TchBackend::cpu(), config, progress)
        }
        #[cfg(feature = "tch")]
        Resolved::TchCuda(n) => {
            crate::run::pretrain_autoencoder(hatebm_tch::TchBackend::cuda(n)?, config, progress)
        }
        #[cfg(not(feature = "tch"))]
        Resolved::TchCpu | Resolved::TchCuda(_) => {
            unreachable!("resolve() refuses tch specs without the feature")
        }
    }
}
