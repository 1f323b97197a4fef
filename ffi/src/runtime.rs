//! Run-time backend dispatch: the one closed enum that turns `backend = "..."`
//! into a concrete backend (burn-dispatch / candle `Storage` style).
//!
//! Hot loops stay monomorphised inside [`hatebm_core::run::Run`]; this layer
//! matches once per high-level call. There is deliberately no catch-all arm:
//! a new backend does not compile until it is wired in everywhere.
//!
//! * `cpu` — always available.
//! * `tch:cpu`, `tch:cuda[:N]` — with the `tch` cargo feature; otherwise
//!   [`Error::BackendUnavailable`]. A CUDA device that is not there is
//!   [`Error::DeviceUnavailable`].
//! * `auto` — CUDA through libtorch when compiled in and present, else `cpu`;
//!   the choice is logged and reported by [`AnyRun::backend_name`].

use std::path::Path;

use hatebm_core::config::Config;
use hatebm_core::cpu::CpuBackend;
use hatebm_core::run::{Progress, Run};
use hatebm_core::spec::BackendSpec;
use hatebm_core::train::{SampleOptions, StepStats};
use hatebm_core::{Error, Result};

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
        hint: "rebuild hatebm-ffi with `--features tch` (and `cuda` for GPUs); see docs/tch-backend.md".into(),
    }
    };
    match spec {
        BackendSpec::Cpu => Ok(Resolved::Cpu),
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
            Ok(Resolved::Cpu)
        }
    }
}

impl AnyRun {
    /// Builds a fresh run on the configured backend.
    ///
    /// # Errors
    /// Backend resolution errors; as [`Run::new`].
    pub fn new(config: Config) -> Result<Self> {
        apply_threads(config.threads);
        Ok(match resolve(config.backend)? {
            Resolved::Cpu => AnyRun::Cpu(Box::new(Run::new(CpuBackend::new(), config)?)),
            #[cfg(feature = "tch")]
            Resolved::TchCpu => {
                AnyRun::Tch(Box::new(Run::new(hatebm_tch::TchBackend::cpu(), config)?))
            }
            #[cfg(feature = "tch")]
            Resolved::TchCuda(n) => AnyRun::Tch(Box::new(Run::new(
                hatebm_tch::TchBackend::cuda(n)?,
                config,
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
        let spec = match &config {
            Some(c) => c.backend,
            None => {
                let ck = hatebm_core::run::Checkpoint::read(path)?;
                let text = ck
                    .meta_str("config")
                    .ok_or_else(|| Error::format(&ck.context, "metadata `config` missing"))?;
                Config::from_toml_str(text)?.backend
            }
        };
        if let Some(c) = &config {
            apply_threads(c.threads);
        }
        Ok(match resolve(spec)? {
            Resolved::Cpu => AnyRun::Cpu(Box::new(Run::resume(CpuBackend::new(), path, config)?)),
            #[cfg(feature = "tch")]
            Resolved::TchCpu => AnyRun::Tch(Box::new(Run::resume(
                hatebm_tch::TchBackend::cpu(),
                path,
                config,
            )?)),
            #[cfg(feature = "tch")]
            Resolved::TchCuda(n) => AnyRun::Tch(Box::new(Run::resume(
                hatebm_tch::TchBackend::cuda(n)?,
                path,
                config,
            )?)),
            #[cfg(not(feature = "tch"))]
            Resolved::TchCpu | Resolved::TchCuda(_) => {
                unreachable!("resolve() refuses tch specs without the feature")
            }
        })
    }

    /// The backend's name, e.g. `cpu` or `tch:cuda:0`.
    pub fn backend_name(&self) -> String {
        use hatebm_core::Backend;
        dispatch!(self, r => r.trainer.be.name())
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        dispatch!(self, r => &r.config)
    }

    /// Iterations completed.
    pub fn iteration(&self) -> u64 {
        dispatch!(self, r => r.trainer.iteration)
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
    pub fn train(
        &mut self,
        max_steps: Option<u64>,
        observer: &mut dyn FnMut(&Progress<'_>) -> bool,
    ) -> Result<()> {
        dispatch!(self, r => r.train(max_steps, observer))
    }

    /// Draws samples ([`Run::sample`]): host data and shape `[n, ...sample]`.
    ///
    /// # Errors
    /// As [`Run::sample`].
    pub fn sample(&mut self, opts: &SampleOptions) -> Result<(Vec<f32>, Vec<usize>)> {
        dispatch!(self, r => r.sample(opts))
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
