//! [`Run`]: a complete training run driven by a [`Config`] — data, models,
//! trainer, divergence guard, checkpoints with exact resume, metrics, pictures.
//!
//! Generic over the backend; the FFI crate wraps it in a run-time backend enum.
//! Everything a harness sees goes through this type: the CLI (`hatebm train`),
//! the C ABI's `hatebm_run_*` functions and the Rust API.

mod bank_shards;
pub mod checkpoint;
mod eval;
mod guard;
mod model;
mod observer;
mod outputs;
mod pretrain;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use crate::backend::Backend;
use crate::config::{Config, GuardPolicy};
use crate::data::{Batcher, BatcherState, Dataset};
use crate::dist::{Communicator, SingleProcess};
use crate::nets::BuildNets;
use crate::noise::SeededNoise;
use crate::train::{SampleOptions, StepStats, Trainer, TrainerSettings};
use crate::{Error, Result, ResultExt};

pub use checkpoint::Checkpoint;
pub use eval::EvalReport;
pub use model::TrainedModel;
pub use observer::{Both, Event, Flow, GuardAction, Observer, Progress, Samples, Silent};
pub use outputs::{FileOutputs, MetricsLog, save_picture};
pub use pretrain::{AePretrained, pretrain_autoencoder};

use guard::Snapshot;

/// Refuses a sample call of `n` samples of `sample_shape` beyond the memory
/// budget (the result lives twice at the end: backend tensor and host copy).
fn check_sample_memory(config: &Config, sample_shape: &[usize], n: usize) -> Result<()> {
    let per = crate::backend::shape::numel(sample_shape) as f64;
    let bytes = 8.0 * per * n as f64;
    crate::config::limits::check_bytes(config, bytes, || {
        format!(
            "sampling n = {n} needs about {:.2} GiB",
            bytes / f64::from(1u32 << 30)
        )
    })
    .map_err(|e| match e {
        Error::Config(m) => Error::InvalidArgument(m),
        other => other,
    })
}

/// The networks (initialised from `config.seed`, then, when `pretrained`,
/// loaded from the configured pretrained weights) and a trainer around them;
/// `init_bank` fills the bank from the generator (a fresh run) or leaves it
/// to a checkpoint.
fn build_trainer<B: BuildNets>(
    be: B,
    config: &Config,
    init_bank: bool,
    pretrained: bool,
    comm: Box<dyn Communicator>,
) -> Result<Trainer<B>> {
    let mut energy = be.build_energy(&config.model.energy, config.seed)?;
    if pretrained && let Some(p) = &config.model.pretrained_energy {
        load_pretrained(&be, energy.params_mut(), p, "ebm")?;
    }
    let generator = match &config.model.generator {
        Some(arch) => {
            // The generator's init stream is offset so it never shares draws with the EBM's.
            let mut g = be.build_generator(arch, config.seed ^ 0x9e37_79b9)?;
            if pretrained && let Some(p) = &config.model.pretrained_generator {
                load_pretrained(&be, g.params_mut(), p, "gen")?;
            }
            Some(g)
        }
        None => None,
    };
    let mut settings = TrainerSettings::new(
        config.train.clone(),
        config.langevin.clone(),
        config.ebm_optim.clone(),
        config.gen_optim.clone(),
        config.seed,
    );
    settings.init_bank = init_bank;
    settings.dist = config.dist.clone();
    Trainer::new_distributed(be, settings, energy, generator, &mut SeededNoise, comm)
}

/// FNV-1a 64 of `text`, in hex.
fn fnv_hex(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// A training run.
pub struct Run<B: BuildNets> {
    /// The resolved configuration.
    pub config: Config,
    /// The trainer (models, optimisers, bank).
    pub trainer: Trainer<B>,
    train_data: Dataset,
    heldout: Option<Dataset>,
    batcher: Batcher,
    batch_buf: Vec<f32>,
    rollbacks: u32,
    snapshot: Option<Snapshot<B>>,
    files: Option<FileOutputs>,
    /// Guard events of the last [`Run::step`], reported by [`Run::train`].
    guard_events: Vec<(u64, String, GuardAction)>,
    eval_pca: Option<crate::metrics::Pca>,
    /// FD of the generator's samples before training (see [`EvalReport`]).
    fd_at_start: Option<f64>,
    /// The classifier of the image metrics, once loaded (`None` inside: none applies).
    eval_classifier: Option<Option<crate::metrics::Classifier>>,
    /// Fraction of the values of the last [`Run::sample`] call that were
    /// clamped to the data's range.
    last_clamped: f64,
    /// The last iteration's statistics.
    pub last_stats: Option<StepStats>,
    /// The file that holds the last good state on disk (the last checkpoint
    /// written or resumed from) and its iteration, named by the guard.
    last_good_file: std::sync::Mutex<Option<(std::path::PathBuf, u64)>>,
}

impl<B: BuildNets> std::fmt::Debug for Run<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("trainer", &self.trainer)
            .field("data", &self.train_data.name())
            .finish_non_exhaustive()
    }
}

/// Loads a generator's pretrained weights, accepting a plain state dict or a
/// libhatebm checkpoint (`gen.` prefix).
fn load_pretrained<B: Backend>(
    be: &B,
    params: &mut crate::params::ParamSet<B>,
    path: &Path,
    what: &str,
) -> Result<()> {
    let file = crate::weights::TensorFile::read(path)?;
    let prefix = if file
        .tensors
        .keys()
        .any(|k| k.starts_with(&format!("{what}.")))
    {
        format!("{what}.")
    } else {
        String::new()
    };
    params
        .load_host(be, &file.with_prefix(&prefix))
        .with_context(|| format!("loading weights {}", path.display()))
}

/// Clamps `data` to the value range of `config.data` when `opts.clamp` and
/// the data has one ([`crate::data::DataSpec::value_range`]); returns the
/// fraction of values that were outside it (NaN stays NaN and is not counted).
pub fn clamp_samples(config: &Config, opts: &SampleOptions, data: &mut [f32]) -> f64 {
    let Some((lo, hi)) = config.data.value_range().filter(|_| opts.clamp) else {
        return 0.0;
    };
    let frac = outside_fraction(config, data);
    for v in data.iter_mut() {
        *v = v.clamp(lo, hi);
    }
    frac
}

/// The fraction of `data`'s values outside the value range of `config.data`
/// (0 when it has none; NaN is not counted).
pub fn outside_fraction(config: &Config, data: &[f32]) -> f64 {
    let Some((lo, hi)) = config.data.value_range() else {
        return 0.0;
    };
    let outside = data.iter().filter(|&&v| v < lo || v > hi).count();
    outside as f64 / data.len().max(1) as f64
}

/// Loads the data of `config` and splits it as a run does: `(training split,
/// held-out split)`, the held-out split being the `eval.holdout_fraction` of
/// the samples that evaluation uses (`None` when the fraction is 0), drawn
/// from `config.seed` ([`Dataset::split`]). The same configuration always
/// gives the same split, so a checkpoint's configuration finds the held-out
/// data its run never trained on.
///
/// # Errors
/// Data loading errors; [`Error::InvalidArgument`] for a fraction that leaves
/// no training sample.
pub fn split_data(config: &Config) -> Result<(Dataset, Option<Dataset>)> {
    let data = config.data.load()?;
    if config.eval.holdout_fraction > 0.0 {
        let (t, h) = data.split(f64::from(config.eval.holdout_fraction), config.seed)?;
        Ok((t, Some(h)))
    } else {
        Ok((data, None))
    }
}

impl<B: BuildNets> Run<B> {
    /// Builds a fresh run: loads and splits the data, builds and initialises the
    /// networks (loading pretrained weights when configured), the trainer and the
    /// bank. Nothing is written to disk yet.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration or data that does not fit
    /// the networks; data, weights and backend errors.
    pub fn new(be: B, config: Config) -> Result<Self> {
        Self::new_distributed(be, config, Box::new(SingleProcess))
    }

    /// [`Run::new`] for one rank of a data-parallel run over `comm` (see
    /// `docs/distributed.md`): every rank calls it with the same
    /// configuration; each loads the data, owns its shards of the batch and
    /// the bank, and only rank 0 writes files. A failure on any rank (bad
    /// data file, too little memory) fails every rank with the same message;
    /// ranks whose configuration or library version differ refuse to start.
    ///
    /// # Errors
    /// As [`Run::new`]; [`Error::Distributed`] for another rank's failure or
    /// a mismatch between ranks.
    pub fn new_distributed(be: B, config: Config, comm: Box<dyn Communicator>) -> Result<Self> {
        Self::build(be, config, true, comm)
    }

    fn build(be: B, config: Config, init_bank: bool, comm: Box<dyn Communicator>) -> Result<Self> {
        let data = crate::dist::agree(comm.as_ref(), Self::load_checked(&config))?;
        let trainer = build_trainer(be, &config, init_bank, true, comm)?;
        let run = Self::assemble(config, trainer, data)?;
        crate::dist::check_same_run(run.trainer.comm(), &run.result_config_hash())?;
        Ok(run)
    }

    /// Validates the configuration and loads and splits its data (the part
    /// of building a run that can fail differently on different ranks).
    fn load_checked(config: &Config) -> Result<(Dataset, Option<Dataset>)> {
        config.validate()?;
        config.check_trainable()?;
        config.check_memory()?;
        let (train_data, heldout) = split_data(config)?;
        let sample_shape = config.model.energy.sample_shape();
        let per = crate::backend::shape::numel(&sample_shape);
        if train_data.sample_len() != per {
            return Err(Error::Config(format!(
                "data `{}` has samples of shape {:?} ({} values) but model.energy expects {:?} ({per} values)",
                train_data.name(),
                train_data.sample_shape(),
                train_data.sample_len(),
                sample_shape
            )));
        }
        if train_data.len() < config.train.batch_size {
            return Err(Error::Config(format!(
                "data `{}` has {} training samples, fewer than train.batch_size = {}",
                train_data.name(),
                train_data.len(),
                config.train.batch_size
            )));
        }
        Ok((train_data, heldout))
    }

    fn assemble(
        config: Config,
        trainer: Trainer<B>,
        (train_data, heldout): (Dataset, Option<Dataset>),
    ) -> Result<Self> {
        let per = crate::backend::shape::numel(&config.model.energy.sample_shape());
        let batcher = Batcher::new(train_data.len(), config.train.batch_size, config.seed)?;
        Ok(Run {
            batch_buf: vec![0.0; config.train.batch_size * per],
            config,
            trainer,
            train_data,
            heldout,
            batcher,
            rollbacks: 0,
            snapshot: None,
            files: None,
            guard_events: Vec::new(),
            eval_pca: None,
            fd_at_start: None,
            eval_classifier: None,
            last_clamped: 0.0,
            last_stats: None,
            last_good_file: std::sync::Mutex::new(None),
        })
    }

    /// Resumes from a checkpoint written by [`Run::save_checkpoint`]. The
    /// configuration stored in the checkpoint is used unless `config` is given
    /// (then it must pass [`Config::check_resumable_from`] the stored one; to
    /// change a few keys, start from [`Checkpoint::config_builder`]). Continuing is exact: `2N`
    /// iterations equal `N`, save, resume, `N` more — bit for bit on the CPU
    /// backend.
    ///
    /// # Errors
    /// [`Error::Format`] for a corrupt, truncated or foreign file; as [`Run::new`].
    pub fn resume(be: B, path: &Path, config: Option<Config>) -> Result<Self> {
        Self::resume_distributed(be, path, config, Box::new(SingleProcess))
    }

    /// [`Run::resume`] for one rank of a data-parallel run: every rank reads
    /// the same checkpoint (a shared file system, or a copy per node) and
    /// keeps its shards of the bank. Any number of ranks that divides the
    /// run's `dist.shards` continues the run exactly; another number of
    /// shards is refused.
    ///
    /// # Errors
    /// As [`Run::resume`] and [`Run::new_distributed`].
    pub fn resume_distributed(
        be: B,
        path: &Path,
        config: Option<Config>,
        comm: Box<dyn Communicator>,
    ) -> Result<Self> {
        let ck = crate::dist::agree(comm.as_ref(), Checkpoint::read(path))?;
        let run = Self::resume_checkpoint_distributed(be, &ck, config, comm)?;
        run.set_last_good_file(path);
        log::info!(
            "resumed from {} at iteration {} of {} (config {})",
            path.display(),
            run.trainer.iteration(),
            run.config.train.steps,
            run.config_hash()
        );
        Ok(run)
    }

    /// [`Run::resume`] from a checkpoint already read (e.g. from memory).
    ///
    /// # Errors
    /// As [`Run::resume`].
    pub fn resume_checkpoint(be: B, ck: &Checkpoint, config: Option<Config>) -> Result<Self> {
        Self::resume_checkpoint_distributed(be, ck, config, Box::new(SingleProcess))
    }

    fn resume_checkpoint_distributed(
        be: B,
        ck: &Checkpoint,
        config: Option<Config>,
        comm: Box<dyn Communicator>,
    ) -> Result<Self> {
        let stored = ck.config();
        let config = stored.and_then(|stored| match config {
            Some(c) => {
                c.check_resumable_from(&stored)?;
                Ok(c)
            }
            None => Ok(stored),
        });
        let config = crate::dist::agree(comm.as_ref(), config)?;
        let mut run = Self::build(be, config, false, comm)?;
        let restored = ck.restore(&mut run.trainer);
        run.trainer.agree_result(restored)?;
        let state: BatcherState = serde_json::from_str(
            ck.meta_str("data_order")
                .ok_or_else(|| Error::format(&ck.context, "metadata `data_order` missing"))?,
        )
        .map_err(|e| Error::format(&ck.context, format!("metadata `data_order`: {e}")))?;
        run.batcher = Batcher::resume(
            run.train_data.len(),
            run.config.train.batch_size,
            run.config.seed,
            state,
        )?;
        run.rollbacks = ck.meta("guard_rollbacks")?;
        run.fd_at_start = ck
            .meta_str("eval_fd_generator_at_start")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite());
        Ok(run)
    }

    /// Writes a checkpoint atomically (temporary file + rename): a crash while
    /// saving leaves the previous file intact. With `dist.shards > 1` every
    /// rank calls it (collective): each writes its bank shards to files of
    /// their own next to `path`, then rank 0 writes `path`, which names them
    /// with their checksums (see `docs/distributed.md`); an error anywhere is
    /// every rank's error, and the previous checkpoint stays complete.
    ///
    /// # Errors
    /// Backend errors or [`Error::Io`].
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let mut extra = HashMap::new();
        extra.insert("config".into(), self.config.to_toml_string()?);
        extra.insert(
            "data_order".into(),
            serde_json::to_string(&self.batcher.state())
                .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
        extra.insert("guard_rollbacks".into(), self.rollbacks.to_string());
        if let Some(v) = self.fd_at_start {
            extra.insert("eval_fd_generator_at_start".into(), v.to_string());
        }
        let t = &self.trainer;
        if t.shard_plan().shards() == 1 {
            checkpoint::save(path, t, &extra)?;
            self.saved(path);
            return Ok(());
        }
        // Sharded: every rank writes its bank shards' files, then rank 0 the
        // checkpoint naming them (the manifest), then the older files go.
        let mine = t.agree_result(bank_shards::write_local(path, t))?;
        let mine = serde_json::to_vec(&mine).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut manifest = Vec::new();
        for part in crate::dist::all_gather_bytes(t.comm(), &mine)? {
            let entries: Vec<bank_shards::ShardEntry> = serde_json::from_slice(&part)
                .map_err(|e| Error::Distributed(format!("a rank's bank shard entries: {e}")))?;
            manifest.extend(entries);
        }
        manifest.sort_by_key(|e| e.shard);
        if !manifest.is_empty() {
            extra.insert(
                bank_shards::MANIFEST_KEY.into(),
                serde_json::to_string(&manifest)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?,
            );
        }
        let written = if t.comm().rank() == 0 {
            checkpoint::save_with_bank(path, t, None, &extra)
        } else {
            Ok(())
        };
        t.agree_result(written)?;
        bank_shards::remove_superseded(path, t);
        self.saved(path);
        Ok(())
    }

    /// After a checkpoint was written: the guard's last good file, and the
    /// log line (rank 0 only; every checkpoint, periodic or asked for).
    fn saved(&self, path: &Path) {
        self.set_last_good_file(path);
        if self.trainer.comm().rank() == 0 {
            log::info!(
                "checkpoint written: {} (iteration {})",
                path.display(),
                self.trainer.iteration()
            );
        }
    }

    fn set_last_good_file(&self, path: &Path) {
        if let Ok(mut g) = self.last_good_file.lock() {
            *g = Some((path.to_path_buf(), self.trainer.iteration()));
        }
    }

    /// Where the last good state on disk is, for the guard's messages.
    fn last_good_state(&self) -> String {
        match self.last_good_file.lock().ok().and_then(|g| g.clone()) {
            Some((p, it)) => format!(
                "the last good state is in {} (after iteration {it}); nothing will be saved over it",
                p.display()
            ),
            None => "no checkpoint has been written by this run, and none will be".into(),
        }
    }

    /// The training split.
    pub fn train_data(&self) -> &Dataset {
        &self.train_data
    }

    /// The held-out split (if `eval.holdout_fraction > 0`).
    pub fn heldout_data(&self) -> Option<&Dataset> {
        self.heldout.as_ref()
    }

    /// Guard rollbacks so far.
    pub fn rollbacks(&self) -> u32 {
        self.rollbacks
    }

    /// The next data batch on the backend, shaped as the energy's input.
    fn next_batch(&mut self) -> Result<B::Tensor> {
        self.batcher
            .next_batch(&self.train_data, &mut self.batch_buf)?;
        let shape = crate::backend::shape::batched(
            self.config.train.batch_size,
            self.trainer.energy().sample_shape(),
        );
        self.trainer.be().from_host(&self.batch_buf, &shape)
    }

    /// One guarded training iteration.
    ///
    /// On divergence (NaN/Inf anywhere, or `|loss_ebm|` above
    /// `guard.max_energy_diff`) the `stop` policy returns [`Error::Diverged`]
    /// (nothing on disk is touched); the `rollback` policy restores the last
    /// in-memory snapshot, reseeds the chains, scales the learning rates by
    /// `guard.lr_factor`, logs a warning and continues.
    ///
    /// # Errors
    /// [`Error::Diverged`]; data, model and backend errors.
    pub fn step(&mut self) -> Result<StepStats> {
        let rollback = self.config.guard.policy == GuardPolicy::Rollback;
        // Snapshots hold states that passed the checks: the initial one, then
        // the state after a successful iteration once the last one is stale.
        if rollback && self.snapshot.is_none() {
            self.snapshot = Some(Snapshot::take(&self.trainer, self.batcher.state())?);
        }
        // This iteration by its 1-based number, as every counter of a run (the
        // trainer's count moves only if its step gets through the update).
        let at = self.trainer.iteration() + 1;
        let x = self.next_batch()?;
        let result = self.trainer.step(&x, &mut SeededNoise);
        // Every rank leaves the iteration the same way (a failure after the
        // last collective of the step is local until agreed here).
        let result = self.trainer.agree_result(result);
        let problem = match &result {
            // The statistics, then the state the update left: a NaN weight or
            // moment, or an exploded learning-rate scale, is a divergence too.
            Ok(s) => match guard::check_stats(s, self.config.guard.max_energy_diff) {
                Some(p) => Some(p),
                None => self
                    .trainer
                    .check_state()?
                    .map(|p| format!("after the update: {p}")),
            },
            Err(Error::NonFinite(m)) => Some(format!("non-finite values: {m}")),
            Err(_) => None,
        };
        // The state check covers this rank's bank shards: agree on it.
        let problem = match self
            .trainer
            .agree_result(problem.map_or(Ok(()), |p| Err(Error::Diverged(p))))
        {
            Ok(()) => None,
            Err(Error::Diverged(p)) => Some(p),
            Err(e) => return Err(e),
        };
        let Some(problem) = problem else {
            let stats = result?;
            if rollback
                && self.snapshot.as_ref().is_some_and(|s| {
                    s.is_stale(self.trainer.iteration(), self.config.guard.snapshot_every)
                })
            {
                self.snapshot = Some(Snapshot::take(&self.trainer, self.batcher.state())?);
            }
            self.last_stats = Some(stats.clone());
            return Ok(stats);
        };
        match self.config.guard.policy {
            GuardPolicy::Stop => {
                let why = format!("stopping: {}", self.last_good_state());
                Err(self.guard_stopped(at, problem, &why))
            }
            GuardPolicy::Rollback => {
                if self.rollbacks >= self.config.guard.max_rollbacks {
                    let why = format!(
                        "{} rollbacks already used (guard.max_rollbacks): {}",
                        self.rollbacks,
                        self.last_good_state()
                    );
                    return Err(self.guard_stopped(at, problem, &why));
                }
                let Some(snap) = self.snapshot.as_ref() else {
                    return Err(self.guard_stopped(at, problem, "no snapshot to roll back to"));
                };
                let state = snap.restore(&mut self.trainer)?;
                self.batcher = Batcher::resume(
                    self.train_data.len(),
                    self.config.train.batch_size,
                    self.config.seed,
                    state,
                )?;
                self.rollbacks += 1;
                let f = self.config.guard.lr_factor;
                self.trainer.scale_lr(f)?;
                self.trainer
                    .reseed(guard::reseed(self.config.seed, self.rollbacks));
                log::warn!(
                    "guard: iteration {at}: {problem}; rolled back to the state after iteration {}, reseeded the chains and scaled the learning rates by {f} (rollback {}/{})",
                    self.trainer.iteration(),
                    self.rollbacks,
                    self.config.guard.max_rollbacks
                );
                self.guard_events.push((
                    at,
                    problem,
                    GuardAction::RolledBack {
                        to_iteration: self.trainer.iteration(),
                        rollbacks: self.rollbacks,
                    },
                ));
                let stats = StepStats {
                    iteration: self.trainer.iteration(),
                    ..Default::default()
                };
                Ok(stats)
            }
        }
    }

    /// Records a guard stop (logged at WARN, reported as [`Event::Guard`] by
    /// the next [`Run::train`] loop turn) and returns the run's error.
    fn guard_stopped(&mut self, at: u64, problem: String, why: &str) -> Error {
        let message = format!("iteration {at}: {problem}; {why}");
        log::warn!("guard: {message}");
        self.guard_events.push((at, problem, GuardAction::Stopped));
        Error::Diverged(message)
    }

    /// Trains until `train.steps` iterations are done (or `max_steps` more, if
    /// given), writing checkpoints as configured (and always one when the call
    /// ends), and reporting every [`Event`] first to the run's [`FileOutputs`]
    /// (metrics, evaluations, pictures, curves in `output.dir`) and then to
    /// `observer`. An observer that returns [`Flow::Cancel`] after a step stops
    /// the run with [`Error::Cancelled`] after a consistent iteration; it can
    /// then be saved or resumed. Nothing is printed.
    ///
    /// # Errors
    /// As [`Run::step`], plus [`Error::Cancelled`], output I/O errors and the
    /// observer's errors.
    pub fn train(&mut self, max_steps: Option<u64>, observer: &mut dyn Observer) -> Result<()> {
        // In a data-parallel run only rank 0 writes files.
        if self.trainer.comm().rank() != 0 {
            return self.train_inner(max_steps, observer);
        }
        let mut files = match self.files.take() {
            Some(f) => f,
            None => FileOutputs::new(&self.config.output),
        };
        let result = self.train_inner(max_steps, &mut Both(&mut files, observer));
        self.files = Some(files);
        result
    }

    fn train_inner(&mut self, max_steps: Option<u64>, obs: &mut dyn Observer) -> Result<()> {
        let total = self.config.train.steps;
        let target = match max_steps {
            Some(n) => (self.trainer.iteration() + n).min(total),
            None => total,
        };
        let out = self.config.output.clone();
        let backend = self.trainer.be().name();
        let device = self.trainer.be().describe();
        obs.on_event(&Event::Started {
            iteration: self.trainer.iteration(),
            target,
            total,
            backend: &backend,
            output_dir: &out.dir,
        })?;
        log::info!(
            "training `{}` ({} mode) on {device} from iteration {} to {target} of {total} ({} threads, seed {}, config {}); outputs in {}",
            self.config.preset.as_deref().unwrap_or("custom config"),
            self.config.train.mode.name(),
            self.trainer.iteration(),
            rayon::current_num_threads(),
            self.config.seed,
            self.config_hash(),
            out.dir.display()
        );
        let start_iteration = self.trainer.iteration();
        // Throughput about ten times per call (and at least every 1000 iterations).
        let report_every = (target.saturating_sub(start_iteration) / 10).clamp(1, 1000);
        let root = self.trainer.comm().rank() == 0;
        if self.trainer.iteration() == 0 && root {
            self.write_start_pictures(obs)?;
        }
        let t0 = Instant::now();
        let mut saved_at = None;
        while self.trainer.iteration() < target {
            let step = self.step();
            for (iteration, problem, action) in std::mem::take(&mut self.guard_events) {
                obs.on_event(&Event::Guard {
                    iteration,
                    problem: &problem,
                    action,
                })?;
            }
            let stats = step?;
            let it = self.trainer.iteration();
            // (A rollback can leave `it` at the start: no rate to report then.)
            if it > start_iteration
                && (it - start_iteration).is_multiple_of(report_every)
                && it < target
            {
                let secs = t0.elapsed().as_secs_f64();
                log::info!(
                    "iteration {it}/{total}: {:.2} it/s, loss_ebm {:.4e}, chain energy {:.4e}{}",
                    (it - start_iteration) as f64 / secs.max(1e-9),
                    stats.loss_ebm,
                    stats.langevin.mean_energy,
                    stats
                        .loss_gen
                        .map_or_else(String::new, |g| format!(", loss_gen {g:.4e}"))
                );
            }
            let flow = obs.on_event(&Event::Step(Progress {
                iteration: it,
                total,
                stats: &stats,
                rollbacks: self.rollbacks,
                lr_scale: self.trainer.ebm_optimiser().lr_scale(),
            }))?;
            // A cancel on any rank cancels every rank after this iteration.
            let cancel = if flow == Flow::Cancel {
                Err(Error::Cancelled)
            } else {
                Ok(())
            };
            let flow = match self.trainer.agree_result(cancel) {
                Ok(()) => Flow::Continue,
                Err(Error::Cancelled) => Flow::Cancel,
                Err(e) => return Err(e),
            };
            if out.checkpoint_every > 0 && it.is_multiple_of(out.checkpoint_every) {
                self.checkpoint_to(&out.dir, obs)?;
                saved_at = Some(it);
            }
            let every = self.config.eval.every;
            if root
                && every > 0
                && it.is_multiple_of(every)
                && it < total
                && self.config.eval.num_samples > 0
                && self.heldout.is_some()
            {
                let report = self.evaluate()?;
                obs.on_event(&Event::Evaluated {
                    report: &report,
                    is_final: false,
                })?;
            }
            if root && out.sample_every > 0 && it.is_multiple_of(out.sample_every) && it < total {
                self.emit_samples(&format!("samples_{it:06}"), obs)?;
            }
            if flow == Flow::Cancel {
                return Err(Error::Cancelled);
            }
        }
        // Every call ends with a checkpoint, so a partial run can be resumed
        // (unless the periodic one was just written at this iteration).
        if saved_at != Some(self.trainer.iteration()) {
            self.checkpoint_to(&out.dir, obs)?;
        }
        let complete = self.trainer.iteration() >= total;
        if complete && root {
            self.emit_samples("samples_final", obs)?;
            if self.config.eval.num_samples > 0 && self.heldout.is_some() {
                let report = self.evaluate()?;
                obs.on_event(&Event::Evaluated {
                    report: &report,
                    is_final: true,
                })?;
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        log::info!(
            "trained to iteration {} in {seconds:.1} s; outputs in {}",
            self.trainer.iteration(),
            out.dir.display()
        );
        obs.on_event(&Event::Finished {
            iteration: self.trainer.iteration(),
            complete,
            seconds,
        })?;
        Ok(())
    }

    /// A short fingerprint of the configuration (FNV-1a 64 of its canonical
    /// TOML), so log lines of runs with the same settings can be matched.
    pub fn config_hash(&self) -> String {
        fnv_hex(&self.config.to_toml_string().unwrap_or_default())
    }

    /// [`Run::config_hash`] of the settings that decide the result: without
    /// `output.*` (only rank 0 writes), `threads` and `memory_limit_gib`
    /// (which may differ between the machines of a run).
    fn result_config_hash(&self) -> String {
        let mut c = self.config.clone();
        c.output = Default::default();
        c.threads = 0;
        c.memory_limit_gib = 0.0;
        fnv_hex(&c.to_toml_string().unwrap_or_default())
    }

    /// Writes `dir/checkpoint.safetensors` and reports it.
    fn checkpoint_to(&self, dir: &Path, obs: &mut dyn Observer) -> Result<()> {
        let path = dir.join("checkpoint.safetensors");
        self.save_checkpoint(&path)?;
        obs.on_event(&Event::CheckpointSaved {
            path: &path,
            iteration: self.trainer.iteration(),
        })?;
        Ok(())
    }

    /// Draws samples with the run's sampler (see [`Trainer::sample`]); returns
    /// host data and its shape `[n, ...sample]`.
    ///
    /// # Errors
    /// Model and backend errors.
    pub fn sample(&mut self, opts: &SampleOptions) -> Result<(Vec<f32>, Vec<usize>)> {
        self.sample_with_progress(opts, &mut |_, _| true)
    }

    /// [`Run::sample`], calling `progress(done, n)` after every batch of
    /// chains (for a progress display of long sampling runs); `false` cancels.
    ///
    /// # Errors
    /// As [`Run::sample`], plus [`Error::Cancelled`].
    pub fn sample_with_progress(
        &mut self,
        opts: &SampleOptions,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        check_sample_memory(&self.config, self.trainer.energy().sample_shape(), opts.n)?;
        let (t, _) = self
            .trainer
            .sample_with_progress(opts, &mut SeededNoise, progress)?;
        let shape = self.trainer.be().shape(&t);
        let mut data = self.trainer.be().to_host(&t)?;
        self.last_clamped = clamp_samples(&self.config, opts, &mut data);
        Ok((data, shape))
    }

    /// The fraction of the values of the last [`Run::sample`] call that were
    /// outside the data's value range and clamped to it (0 when `sample.clamp`
    /// is off or the data has no range; [`crate::data::DataSpec::value_range`]).
    pub fn last_clamped_fraction(&self) -> f64 {
        self.last_clamped
    }

    /// The image shape `[C, H, W]` of the data, if it is image data.
    pub fn image_dims(&self) -> Option<[usize; 3]> {
        self.train_data.image_dims()
    }

    /// `n` training samples drawn without replacement by a fixed seed (data
    /// sets may be sorted by label, e.g. MNIST-5k, so a prefix is not representative).
    fn data_subset(&self, n: usize) -> Result<Vec<f32>> {
        let key = crate::noise::NoiseKey::new(self.config.seed, crate::noise::Stream::Eval, [2, 0]);
        let idx =
            crate::noise::unique_indices(key, n.min(self.train_data.len()), self.train_data.len())?;
        let mut out = vec![0.0f32; idx.len() * self.train_data.sample_len()];
        self.train_data.gather(&idx, &mut out)?;
        Ok(out)
    }

    fn write_start_pictures(&mut self, obs: &mut dyn Observer) -> Result<()> {
        let n = self.config.output.grid_samples.min(self.train_data.len());
        let data = self.data_subset(n)?;
        obs.on_event(&Event::Samples(Samples {
            name: "data",
            data: &data,
            n,
            image_dims: self.image_dims(),
            reference: None,
        }))?;
        if self.trainer.generator().is_some() {
            let opts = SampleOptions {
                n: self.config.output.grid_samples,
                steps: Some(0),
                ..self.config.sample.clone()
            };
            let (g, _) = self.sample(&opts)?;
            obs.on_event(&Event::Samples(Samples {
                name: "generator_init",
                data: &g,
                n: opts.n,
                image_dims: self.image_dims(),
                reference: Some(&data),
            }))?;
            // The untrained generator's FD, reported next to the final numbers.
            if self.config.eval.num_samples > 0
                && self.heldout.is_some()
                && self.image_dims().is_some()
            {
                self.fd_at_start = Some(self.generator_fd(self.config.eval.num_samples)?);
            }
        }
        Ok(())
    }

    /// Draws `output.grid_samples` samples with the configured sampler and
    /// reports them as [`Event::Samples`] named `name`.
    fn emit_samples(&mut self, name: &str, obs: &mut dyn Observer) -> Result<()> {
        let opts = SampleOptions {
            n: self.config.output.grid_samples,
            ..self.config.sample.clone()
        };
        let (s, _) = self.sample(&opts)?;
        let n_ref = self.config.output.grid_samples.min(self.train_data.len());
        let reference = self.data_subset(n_ref)?;
        obs.on_event(&Event::Samples(Samples {
            name,
            data: &s,
            n: opts.n,
            image_dims: self.image_dims(),
            reference: Some(&reference),
        }))?;
        Ok(())
    }
}
