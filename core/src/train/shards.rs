//! The data-parallel side of [`Trainer`]: the shard plan it runs under, the
//! reduction of per-shard gradient partials in shard order, the combination
//! of per-shard sampler diagnostics, the bank's shards, and the replicated
//! state checksum. See [`crate::dist`] for the contract.

use std::ops::Range;

use crate::backend::Backend;
use crate::bank::Bank;
use crate::dist::{self, Communicator, DistConfig, Reduce, ShardPlan};
use crate::params::Grads;
use crate::sampler::LangevinStats;
use crate::{Error, Result};

use super::config::{GenUpdate, Mode, TrainConfig};
use super::generator_state::TrainedGenerator;
use super::trainer::Trainer;

/// A trainer's communicator, plan and settings.
#[derive(Debug)]
pub(crate) struct Dist {
    pub(crate) comm: Box<dyn Communicator>,
    pub(crate) plan: ShardPlan,
    pub(crate) config: DistConfig,
}

impl Dist {
    pub(crate) fn new(comm: Box<dyn Communicator>, plan: ShardPlan, config: DistConfig) -> Self {
        Dist { comm, plan, config }
    }

    /// One shard in one process: the single-process path, no reduction.
    pub(crate) fn is_trivial(&self) -> bool {
        self.plan.shards() == 1
    }
}

/// Checks that `train`'s batch and its mode's bank split into `shards` shards,
/// and that nothing couples rows across shards (what a run with
/// `dist.shards = shards` needs, whatever its number of ranks).
///
/// # Errors
/// [`Error::Config`] naming the key.
pub fn check_shards(train: &TrainConfig, shards: usize) -> Result<()> {
    check_plan(&ShardPlan::new(shards, 0, 1)?, train)
}

/// Checks that the batch and the mode's bank split into the plan's shards,
/// and that nothing couples rows across shards.
pub(crate) fn check_plan(plan: &ShardPlan, train: &TrainConfig) -> Result<()> {
    if plan.shards() == 1 {
        return Ok(());
    }
    plan.check_divides("train.batch_size", train.batch_size)?;
    match train.mode {
        Mode::Synthesis if train.gen_update == GenUpdate::Historical => {
            plan.check_divides("train.bank_size", train.bank_size)?;
            if train.bank_size / plan.shards() < train.batch_size / plan.shards() {
                return Err(Error::Config(
                    "train.bank_size must be >= train.batch_size".into(),
                ));
            }
        }
        Mode::Persistent => {
            plan.check_divides("train.persistent_bank_size", train.persistent_bank_size)?
        }
        Mode::Cooperative if train.coop_bn_training => {
            return Err(Error::Config(
                "train.coop_bn_training couples the rows of a batch through batch statistics; it needs dist.shards = 1".into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// One bank from the parts of consecutive shards (first shard id `first`).
pub(crate) fn concat_banks<B: Backend>(be: &B, parts: Vec<Bank<B>>, first: u64) -> Result<Bank<B>> {
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().expect("one part"));
    }
    let xs: Vec<&B::Tensor> = parts.iter().map(|b| &b.x).collect();
    let x = be.concat_rows(&xs)?;
    let z = if parts.iter().all(|b| b.z.is_some()) {
        let zs: Vec<&B::Tensor> = parts.iter().filter_map(|b| b.z.as_ref()).collect();
        Some(be.concat_rows(&zs)?)
    } else {
        None
    };
    Bank::from_tensors(be, z, x, first)
}

/// The gradients' values on the host, one buffer (parameter order).
pub(crate) fn flatten<B: Backend>(be: &B, g: &Grads<B>, out: &mut Vec<f32>) -> Result<()> {
    for t in g.tensors.iter().flatten() {
        out.extend(be.to_host(t)?);
    }
    Ok(())
}

/// The number of values [`flatten`] writes.
pub(crate) fn flat_len<B: Backend>(be: &B, g: &Grads<B>) -> usize {
    g.tensors
        .iter()
        .flatten()
        .map(|t| crate::backend::shape::numel(&be.shape(t)))
        .sum()
}

/// Writes a flat buffer back into the gradients.
fn unflatten<B: Backend>(be: &B, flat: &[f32], g: &mut Grads<B>) -> Result<()> {
    let mut at = 0;
    for t in g.tensors.iter_mut().flatten() {
        let s = be.shape(t);
        let n = crate::backend::shape::numel(&s);
        *t = be.from_host(&flat[at..at + n], &s)?;
        at += n;
    }
    Ok(())
}

/// The values of one shard's contribution to a reduction: its gradient
/// partial (`p` values) followed by `extra` per-shard values (energies, losses).
pub(crate) struct ShardParts {
    /// `[shard][p + extra]`, the rank's local shards in shard order.
    pub(crate) values: Vec<f32>,
    pub(crate) p: usize,
    pub(crate) extra: usize,
}

/// The reduced result: the summed gradient and every shard's extra values
/// (all shards, shard order).
pub(crate) struct Reduced {
    pub(crate) grad: Vec<f32>,
    pub(crate) extras: Vec<Vec<f32>>,
}

impl<B: Backend> Trainer<B> {
    /// The communicator of this trainer (a single process unless built with
    /// [`Trainer::new_distributed`]).
    pub fn comm(&self) -> &dyn Communicator {
        self.dist.comm.as_ref()
    }

    /// The shard plan this trainer runs under.
    pub fn shard_plan(&self) -> &ShardPlan {
        &self.dist.plan
    }

    /// The data-parallel settings.
    pub fn dist_config(&self) -> &DistConfig {
        &self.dist.config
    }

    /// The local shards and their rows of a global batch of `n` rows.
    pub(crate) fn local_shard_rows(&self, n: usize) -> Vec<(usize, Range<usize>)> {
        let p = &self.dist.plan;
        p.local_shards().map(|s| (s, p.shard_rows(s, n))).collect()
    }

    /// Agrees on `local` across this trainer's ranks (see [`dist::agree`]):
    /// if any rank failed, every rank returns the same failure. A no-op in a
    /// single process. Collective: every rank must call it.
    ///
    /// # Errors
    /// The failure of the lowest failing rank; [`Error::Distributed`] if the
    /// collective fails.
    pub fn agree_result<T>(&self, local: Result<T>) -> Result<T> {
        dist::agree(self.dist.comm.as_ref(), local)
    }

    /// Sums the shards' partials in shard order over all ranks (or, with
    /// [`Reduce::AllReduce`], sums locally then all-reduces), after agreeing
    /// on every rank's local outcome.
    pub(crate) fn reduce_parts(&self, local: Result<ShardParts>) -> Result<Reduced> {
        let parts = self.agree_result(local)?;
        let (p, extra) = (parts.p, parts.extra);
        let stride = p + extra;
        let comm = self.dist.comm.as_ref();
        let sum_in_order = |all: &[f32]| -> Vec<f32> {
            let mut acc = all[..p].to_vec();
            for part in all.chunks_exact(stride).skip(1) {
                for (a, v) in acc.iter_mut().zip(&part[..p]) {
                    *a += v;
                }
            }
            acc
        };
        match self.dist.config.reduce {
            Reduce::Ordered => {
                let all = dist::all_gather_f32(comm, &parts.values)?;
                let grad = sum_in_order(&all);
                let extras = all.chunks_exact(stride).map(|c| c[p..].to_vec()).collect();
                Ok(Reduced { grad, extras })
            }
            Reduce::AllReduce => {
                let mut grad = sum_in_order(&parts.values);
                comm.all_reduce_sum_f32(&mut grad)?;
                let local_extras: Vec<f32> = parts
                    .values
                    .chunks_exact(stride)
                    .flat_map(|c| c[p..].iter().copied())
                    .collect();
                let all = dist::all_gather_f32(comm, &local_extras)?;
                let extras = if extra == 0 {
                    vec![Vec::new(); self.dist.plan.shards()]
                } else {
                    all.chunks_exact(extra).map(<[f32]>::to_vec).collect()
                };
                Ok(Reduced { grad, extras })
            }
        }
    }

    /// Writes a reduced gradient into the EBM's (`ebm`) or the generator's gradients.
    pub(crate) fn set_reduced_grads(&mut self, ebm: bool, flat: &[f32]) -> Result<()> {
        let be = &self.be;
        let g = if ebm {
            &mut self.ebm_grads
        } else {
            self.generator
                .trained_mut()
                .map(|t| &mut t.grads)
                .ok_or_else(|| Error::InvalidArgument("no generator gradients".into()))?
        };
        unflatten(be, flat, g)
    }

    /// Combines the sampler diagnostics of the local shards with every other
    /// rank's: each field is the mean over all shards, summed in shard order
    /// (equal-sized shards, so this is the mean over all chains).
    pub(crate) fn combine_langevin(&self, local: Vec<LangevinStats>) -> Result<LangevinStats> {
        if self.dist.is_trivial() {
            return Ok(local.into_iter().next().unwrap_or_default());
        }
        let encode = |s: &LangevinStats| -> Vec<u8> {
            let mut v = vec![
                s.mean_energy,
                s.last_energy,
                s.drift_norm_res,
                s.drift_norm_latent,
                s.clip_frac_res,
                s.clip_frac_latent,
                s.mean_latent_norm,
            ];
            v.extend(&s.energy_per_step);
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
        let steps = local.first().map_or(0, |s| s.steps);
        let bytes: Vec<u8> = local.iter().flat_map(encode).collect();
        let mut all = vec![0u8; bytes.len() * self.dist.comm.size()];
        self.dist.comm.all_gather(&bytes, &mut all)?;
        let vals: Vec<f64> = all
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let per = 7 + local.first().map_or(0, |s| s.energy_per_step.len());
        let shards = vals.len() / per.max(1);
        let mut acc = vec![0.0f64; per];
        for shard in vals.chunks_exact(per) {
            for (a, v) in acc.iter_mut().zip(shard) {
                *a += v;
            }
        }
        let n = shards.max(1) as f64;
        let m: Vec<f64> = acc.iter().map(|a| a / n).collect();
        Ok(LangevinStats {
            steps,
            mean_energy: m[0],
            last_energy: m[1],
            drift_norm_res: m[2],
            drift_norm_latent: m[3],
            clip_frac_res: m[4],
            clip_frac_latent: m[5],
            mean_latent_norm: m[6],
            energy_per_step: m[7..].to_vec(),
            // Acceptance diagnostics are not reduced: those of this rank's first shard.
            mh: local.first().and_then(|s| s.mh.clone()),
        })
    }

    /// The whole bank (every shard, in shard order) on every rank, gathered
    /// from the ranks that own its shards; `None` without a bank. A single
    /// process returns a copy of its bank. Collective: every rank must call it.
    ///
    /// # Errors
    /// Communicator and backend errors.
    pub fn global_bank(&self) -> Result<Option<Bank<B>>> {
        let Some(bank) = &self.bank else {
            return Ok(None);
        };
        if self.dist.comm.size() == 1 {
            return Ok(Some(bank.clone()));
        }
        let be = &self.be;
        let comm = self.dist.comm.as_ref();
        let gather = |t: &B::Tensor| -> Result<B::Tensor> {
            let mut s = be.shape(t);
            let all = dist::all_gather_f32(comm, &be.to_host(t)?)?;
            s[0] *= comm.size();
            be.from_host(&all, &s)
        };
        let x = gather(&bank.x)?;
        let z = bank.z.as_ref().map(gather).transpose()?;
        Ok(Some(Bank::from_tensors(be, z, x, 0)?))
    }

    /// This rank's shards of a whole bank (every shard, shard order), e.g.
    /// one read from a checkpoint, for [`Trainer::restore`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the bank's rows do not split into the shards;
    /// backend errors.
    pub fn local_part_of_bank(&self, bank: Bank<B>) -> Result<Bank<B>> {
        let plan = self.dist.plan;
        let cap = bank.capacity();
        if !cap.is_multiple_of(plan.shards()) {
            return Err(Error::shape(
                "bank rows (a multiple of dist.shards)",
                &[plan.shards()],
                &[cap],
            ));
        }
        if plan.ranks() == 1 {
            return Ok(bank);
        }
        let rows = plan.local_rows(cap);
        let be = &self.be;
        let x = be.slice_rows(&bank.x, rows.start, rows.len())?;
        let z = bank
            .z
            .as_ref()
            .map(|z| be.slice_rows(z, rows.start, rows.len()))
            .transpose()?;
        Bank::from_tensors(be, z, x, plan.local_shards().start as u64)
    }

    /// A checksum (FNV-1a 64) of the state every rank holds a copy of: both
    /// networks' weights, the optimisers' moments, EMA, step counters and
    /// learning-rate scales, and the iteration.
    ///
    /// # Errors
    /// Backend errors.
    pub fn replicated_checksum(&self) -> Result<u64> {
        let be = &self.be;
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        let eat_t = |t: &B::Tensor, eat: &mut dyn FnMut(&[u8])| -> Result<()> {
            for v in be.to_host(t)? {
                eat(&v.to_bits().to_le_bytes());
            }
            Ok(())
        };
        eat(&self.iteration.to_le_bytes());
        for p in self.energy.params().iter() {
            eat_t(&p.value, &mut eat)?;
        }
        let mut opts = vec![&self.ebm_opt];
        if let Some(g) = self.generator.net() {
            for p in g.params().iter() {
                eat_t(&p.value, &mut eat)?;
            }
        }
        if let Some(o) = self.generator.opt() {
            opts.push(o);
        }
        for o in opts {
            eat(&o.steps_taken().to_le_bytes());
            eat(&o.lr_scale().to_bits().to_le_bytes());
            let (m, v) = o.moments();
            for t in m.iter().chain(v).flatten() {
                eat_t(t, &mut eat)?;
            }
            // (Written as `if let`, not `o.ema().into_iter().flatten().flatten()`:
            // at opt-level 3 that chain compiled to a branch Valgrind reads as
            // depending on the uninitialised words of a `None` EMA, a false
            // report that failed the C-ABI Valgrind stage.)
            if let Some(ema) = o.ema() {
                for t in ema.iter().flatten() {
                    eat_t(t, &mut eat)?;
                }
            }
        }
        Ok(h)
    }

    /// Compares [`Trainer::replicated_checksum`] across ranks.
    ///
    /// # Errors
    /// [`Error::Distributed`] naming the ranks whose state differs from rank 0's.
    pub fn check_replicas(&self) -> Result<()> {
        let comm = self.dist.comm.as_ref();
        if comm.size() == 1 {
            return Ok(());
        }
        let local = self.replicated_checksum();
        let h = self.agree_result(local)?;
        let mut all = vec![0u8; 8 * comm.size()];
        comm.all_gather(&h.to_le_bytes(), &mut all)?;
        let hs: Vec<u64> = all
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let bad: Vec<usize> = (1..hs.len()).filter(|&r| hs[r] != hs[0]).collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::Distributed(format!(
                "the replicated state of rank(s) {bad:?} differs from rank 0's at iteration {} (checksums {:016x?}): the ranks have drifted apart",
                self.iteration, hs
            )))
        }
    }
}

/// An `f64` carried through an `f32` buffer as two bit patterns (copied,
/// never computed on, so every bit survives).
fn f64_to_f32_pair(v: f64) -> [f32; 2] {
    let b = v.to_bits();
    [f32::from_bits(b as u32), f32::from_bits((b >> 32) as u32)]
}

fn f64_from_f32_pair(p: &[f32]) -> f64 {
    f64::from_bits(u64::from(p[0].to_bits()) | (u64::from(p[1].to_bits()) << 32))
}

impl<B: Backend> Trainer<B> {
    /// Each local shard's partial of the EBM gradient of
    /// `(mean U(x⁺) − mean U(x⁻))/T` (means over the *global* batch, so the
    /// partials add up to the full gradient), followed by its energies
    /// `[U(x⁺_s); U(x⁻_s)]`.
    pub(crate) fn ebm_partials(
        &mut self,
        x_pos: &[B::Tensor],
        x_neg: &[B::Tensor],
    ) -> Result<ShardParts> {
        let be = &self.be;
        let n = self.config.batch_size as f32;
        let t = self.sampler.config.temperature;
        let p = flat_len(be, &self.ebm_grads);
        let mut values = Vec::new();
        let mut extra = 0;
        for (xp, xn) in x_pos.iter().zip(x_neg) {
            let (np, nn) = (be.shape(xp)[0], be.shape(xn)[0]);
            let both = be.concat_rows(&[xp, xn])?;
            let mut w = vec![1.0 / (n * t); np];
            w.extend(std::iter::repeat_n(-1.0 / (n * t), nn));
            self.ebm_grads.zero(be)?;
            let e = self
                .energy
                .energy_grad_params(&both, &w, &mut self.ebm_grads)?;
            flatten(be, &self.ebm_grads, &mut values)?;
            values.extend(be.to_host(&e)?);
            extra = np + nn;
        }
        Ok(ShardParts { values, p, extra })
    }

    /// Applies a reduced EBM gradient: loss and mean energies from every
    /// shard's energies (global row order), finiteness checks, Adam step.
    /// Returns `(loss, mean U(x⁺), mean U(x⁻))`.
    pub(crate) fn ebm_apply(&mut self, r: &Reduced) -> Result<(f64, f64, f64)> {
        let half = r.extras.first().map_or(0, |e| e.len() / 2);
        let n = (half * r.extras.len()).max(1) as f64;
        let pos = r.extras.iter().flat_map(|e| e[..half].iter());
        let neg = r.extras.iter().flat_map(|e| e[half..].iter());
        let ep = pos.map(|&x| f64::from(x)).sum::<f64>() / n;
        let en = neg.map(|&x| f64::from(x)).sum::<f64>() / n;
        let loss = (ep - en) / f64::from(self.sampler.config.temperature);
        self.set_reduced_grads(true, &r.grad)?;
        self.step_ebm_optimiser(loss)?;
        Ok((loss, ep, en))
    }

    /// Each local shard's partial of the generator gradient of
    /// `λ·mean((G(z) − x)²)` (factor λ/S, so the partials add up to the mean
    /// over the global batch), followed by its loss.
    pub(crate) fn gen_partials(&mut self, pairs: &[(B::Tensor, B::Tensor)]) -> Result<ShardParts> {
        let factor = self.config.gen_loss_factor / self.dist.plan.shards() as f32;
        let Some(TrainedGenerator { net: g, grads, .. }) = self.generator.trained_mut() else {
            return Err(Error::InvalidArgument(format!(
                "mode `{}` does not train a generator",
                self.config.mode.name()
            )));
        };
        let be = &self.be;
        let p = flat_len(be, grads);
        let mut values = Vec::new();
        for (z, x) in pairs {
            grads.zero(be)?;
            let loss = g.mse_grad_params(be, z, x, factor, grads)?;
            flatten(be, grads, &mut values)?;
            values.extend(f64_to_f32_pair(loss));
        }
        Ok(ShardParts {
            values,
            p,
            extra: 2,
        })
    }

    /// Applies a reduced generator gradient; returns the loss (the shards'
    /// losses summed in shard order).
    pub(crate) fn gen_apply(&mut self, r: &Reduced) -> Result<f64> {
        let loss: f64 = r.extras.iter().map(|e| f64_from_f32_pair(e)).sum();
        self.set_reduced_grads(false, &r.grad)?;
        self.step_gen_optimiser(loss)?;
        Ok(loss)
    }
}
