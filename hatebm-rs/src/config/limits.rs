//! Resource bounds: every size a user controls has an absolute upper bound
//! (checked by [`Config::validate`]) and a run's memory is estimated up front
//! and checked against a budget ([`Config::check_memory`]), so an impossible
//! size is a typed error naming its key — never an abort on a failed
//! allocation, a thread storm or a run that fills the machine before it starts.
//!
//! The budget is `memory_limit_gib` (GiB; 0, the default, means the machine's
//! physical memory as `/proc/meminfo` reports it, and no budget where that
//! cannot be read). The estimate counts what the library allocates for the
//! run: each network's weights, gradient, two Adam moments and EMA (5 floats
//! per parameter), the bank, the chains and activations of one batch (16
//! floats per value of the widest layer per chain, a rough upper figure for
//! the backward pass of the SN-GAN nets), the toy data, and the evaluation and
//! grid samples. It is an estimate, good to a small factor: its job is to
//! catch sizes that are wrong by orders of magnitude before anything is
//! allocated, and the allocations themselves are fallible on the CPU backend.

use super::Config;
use crate::backend::shape::numel;
use crate::data::DataSpec;
use crate::nets::{EnergyArch, GeneratorArch};
use crate::train::Mode;
use crate::{Error, Result};

/// The most CPU threads a run may ask for.
pub const MAX_THREADS: usize = 1024;
/// The most images in one sample grid (a 100 × 100 grid).
pub const MAX_GRID_SAMPLES: usize = 10_000;
/// The most samples one evaluation may draw.
pub const MAX_EVAL_SAMPLES: usize = 1 << 20;
/// The most points a toy data set may have.
pub const MAX_TOY_SAMPLES: usize = 1 << 28;

const GIB: f64 = (1u64 << 30) as f64;

/// The machine's physical memory in bytes (`MemTotal` of `/proc/meminfo`),
/// if it can be read.
pub fn physical_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// One run's estimated memory, by the key that controls each part.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryEstimate {
    /// `(key, bytes)`, largest first.
    pub parts: Vec<(&'static str, f64)>,
}

impl MemoryEstimate {
    /// The sum of the parts, in bytes.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|(_, b)| b).sum()
    }
}

fn param_count_energy(a: &EnergyArch) -> Result<f64> {
    Ok(a.param_specs()?
        .iter()
        .map(|p| numel(&p.shape) as f64)
        .sum())
}

fn param_count_generator(a: &GeneratorArch) -> Result<f64> {
    Ok(a.param_specs()?
        .iter()
        .map(|p| numel(&p.shape) as f64)
        .sum())
}

/// The widest layer's values per sample (the activation size that dominates).
fn widest_energy(a: &EnergyArch) -> f64 {
    match a {
        EnergyArch::Mlp { dims } => dims.iter().copied().max().unwrap_or(0) as f64,
        EnergyArch::Sngan { res, nch, ngf } => (res * res * (*ngf).max(*nch)) as f64,
    }
}

fn widest_generator(a: &GeneratorArch) -> f64 {
    match a {
        GeneratorArch::Mlp { dims } => dims.iter().copied().max().unwrap_or(0) as f64,
        GeneratorArch::Sngan { res, ngf, nch, .. } => (res * res * (*ngf).max(*nch)) as f64,
        GeneratorArch::Decoder32 { ngf, nch, .. } => (32 * 32 * (*ngf).max(*nch)) as f64,
    }
}

impl Config {
    /// The largest bytes this configuration may use: `memory_limit_gib`, or
    /// the machine's physical memory (`None`: no budget known).
    pub fn memory_budget_bytes(&self) -> Option<f64> {
        if self.memory_limit_gib > 0.0 {
            Some(self.memory_limit_gib * GIB)
        } else {
            physical_memory_bytes().map(|b| b as f64)
        }
    }

    /// The run's estimated memory (see the module docs for what it counts).
    ///
    /// # Errors
    /// [`Error::Config`] for invalid network sizes.
    pub fn memory_estimate(&self) -> Result<MemoryEstimate> {
        let f = 4.0; // bytes per f32
        let e = &self.model.energy;
        let sample = numel(&e.sample_shape()) as f64;
        let mut parts = vec![("model.energy", 5.0 * f * param_count_energy(e)?)];
        let mut widest = widest_energy(e).max(sample);
        let mut latent = 0.0;
        if let Some(g) = &self.model.generator {
            parts.push(("model.generator", 5.0 * f * param_count_generator(g)?));
            widest = widest.max(widest_generator(g));
            latent = numel(&g.latent_shape()) as f64;
        }
        let t = &self.train;
        let bank = match t.mode {
            Mode::Synthesis => t.bank_size as f64 * (sample + latent),
            Mode::Persistent => t.persistent_bank_size as f64 * sample,
            _ => 0.0,
        };
        parts.push(("train.bank_size", f * bank));
        parts.push(("train.batch_size", f * 16.0 * t.batch_size as f64 * widest));
        if let DataSpec::Toy { n, .. } = &self.data {
            parts.push(("data.n", f * 2.0 * *n as f64 * sample));
        }
        parts.push((
            "eval.num_samples",
            f * 3.0 * self.eval.num_samples as f64 * sample,
        ));
        parts.push((
            "output.grid_samples",
            f * 3.0 * self.output.grid_samples as f64 * sample,
        ));
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(MemoryEstimate { parts })
    }

    /// Refuses a run whose [`Config::memory_estimate`] exceeds the budget,
    /// naming the key of the largest part.
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn check_memory(&self) -> Result<()> {
        let est = self.memory_estimate()?;
        check_bytes(self, est.total(), || {
            let (key, bytes) = est.parts[0];
            format!(
                "this run needs about {:.2} GiB, most of it for `{key}` ({:.2} GiB)",
                est.total() / GIB,
                bytes / GIB
            )
        })
    }
}

/// Refuses `bytes` above the configuration's budget, with `what()` saying
/// what needs them.
///
/// # Errors
/// [`Error::Config`].
pub fn check_bytes(cfg: &Config, bytes: f64, what: impl FnOnce() -> String) -> Result<()> {
    match cfg.memory_budget_bytes() {
        Some(budget) if bytes > budget => Err(Error::Config(format!(
            "{}, more than the memory budget of {:.2} GiB (memory_limit_gib; 0 = this machine's physical memory)",
            what(),
            budget / GIB
        ))),
        _ => Ok(()),
    }
}

/// The absolute bounds of the facade's own keys.
pub(super) fn check_bounds(cfg: &Config) -> Result<()> {
    let over = |key: &str, v: usize, max: usize| {
        if v > max {
            Err(Error::Config(format!(
                "{key} must be at most {max}, got {v}"
            )))
        } else {
            Ok(())
        }
    };
    over("threads", cfg.threads, MAX_THREADS)?;
    over(
        "output.grid_samples",
        cfg.output.grid_samples,
        MAX_GRID_SAMPLES,
    )?;
    over("eval.num_samples", cfg.eval.num_samples, MAX_EVAL_SAMPLES)?;
    over(
        "sample.batch_size",
        cfg.sample.batch_size,
        crate::train::MAX_BATCH,
    )?;
    if let Some(k) = cfg.sample.steps {
        crate::sampler::check_steps("sample.steps", k)?;
    }
    if let DataSpec::Toy { n, .. } = &cfg.data {
        over("data.n", *n, MAX_TOY_SAMPLES)?;
    }
    if !(cfg.memory_limit_gib.is_finite() && cfg.memory_limit_gib >= 0.0) {
        return Err(Error::Config(format!(
            "memory_limit_gib must be finite and >= 0 (0 = physical memory), got {}",
            cfg.memory_limit_gib
        )));
    }
    Ok(())
}
