//! The [`Trainer`]'s state as a value, and the methods through which it
//! changes from outside an iteration: take and restore it whole
//! ([`TrainerState`]: a checkpoint, the divergence guard's snapshot), restore
//! the networks only ([`NetworksState`]: a trained model), load one network's
//! weights ([`Net`]), run with the EMA weights swapped in, lower the
//! learning rate, reseed the chains, change the sampler's settings.
//!
//! Every method checks that the new state fits the trainer — same parameter
//! layouts, optimiser states aligned with them, a bank of the layout the
//! mode needs, counters in range — before it changes anything, so a failed
//! call leaves the trainer as it was.

use crate::backend::{Backend, shape};
use crate::bank::Bank;
use crate::optim::{Adam, AdamState, EmaWeights};
use crate::params::{HostTensor, ParamSet};
use crate::sampler::{LangevinConfig, LangevinSampler};
use crate::{Error, Result, ResultExt};

use super::config::Mode;
use super::generator_state::GeneratorState;
use super::trainer::Trainer;

/// Everything training changes, for one rank: weights, optimiser states,
/// the bank (this rank's shards), the iteration counter and the chain seed.
/// [`Trainer::state`] copies it out; [`Trainer::restore`] puts it back.
#[derive(Clone, Debug)]
pub struct TrainerState<B: Backend> {
    /// The energy's parameters.
    pub energy: ParamSet<B>,
    /// The energy's optimiser.
    pub ebm_opt: AdamState<B>,
    /// The generator's parameters and, for modes that train it, its optimiser.
    pub generator: Option<(ParamSet<B>, Option<AdamState<B>>)>,
    /// The bank (this rank's part), for modes that keep one.
    pub bank: Option<Bank<B>>,
    /// Iterations completed.
    pub iteration: u64,
    /// The seed every noise key derives from (the guard reseeds it).
    pub seed: u64,
}

/// The networks of a trained model: weights and EMA weights, and the
/// iteration they were saved at. What [`Trainer::restore_networks`] takes.
#[derive(Clone, Debug)]
pub struct NetworksState<B: Backend> {
    /// The energy's parameters.
    pub energy: ParamSet<B>,
    /// The energy's EMA weights, if its optimiser keeps them.
    pub energy_ema: Option<EmaWeights<B>>,
    /// The generator's parameters and EMA weights, if the run has one.
    pub generator: Option<(ParamSet<B>, Option<EmaWeights<B>>)>,
    /// Iterations completed when the model was saved.
    pub iteration: u64,
}

/// Which network a weights call addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// The energy (its EMA copy is reset to the loaded weights).
    Energy,
    /// The energy's EMA copy only.
    EnergyEma,
    /// The generator (its EMA copy, if any, is reset to the loaded weights).
    Generator,
}

/// Counters are stored as TOML/JSON-compatible signed 64-bit integers.
fn check_counter(iteration: u64) -> Result<()> {
    if iteration > i64::MAX as u64 {
        return Err(Error::InvalidArgument(format!(
            "iteration counter {iteration} exceeds {}",
            i64::MAX
        )));
    }
    Ok(())
}

fn layout_error(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} does not match this run's network"))
}

fn check_layout<B: Backend>(
    be: &B,
    have: &ParamSet<B>,
    new: &ParamSet<B>,
    what: &str,
) -> Result<()> {
    let shapes_ok = new
        .iter()
        .all(|p| be.shape(&p.value) == p.spec.shape.as_slice());
    if have.specs() != new.specs() || !shapes_ok {
        return Err(layout_error(what));
    }
    Ok(())
}

/// Checks an optimiser state against a copy of `opt` and returns the
/// restored copy (so nothing changes until the caller commits).
fn restored<B: Backend>(be: &B, opt: &Adam<B>, s: AdamState<B>, what: &str) -> Result<Adam<B>> {
    let mut o = opt.clone();
    o.restore(be, s)
        .with_context(|| format!("{what} optimiser state"))?;
    Ok(o)
}

impl<B: Backend> Trainer<B> {
    /// A copy of everything training changes.
    pub fn state(&self) -> TrainerState<B> {
        TrainerState {
            energy: self.energy.params().clone(),
            ebm_opt: self.ebm_opt.state(),
            generator: self
                .generator
                .net()
                .map(|g| (g.params().clone(), self.generator.opt().map(Adam::state))),
            bank: self.bank.clone(),
            iteration: self.iteration,
            seed: self.seed,
        }
    }

    /// Puts a state back (a checkpoint's or a snapshot's), after checking
    /// that it fits: parameter layouts of this run's networks, optimiser
    /// states aligned with them ([`Adam::restore`]), a generator and its
    /// optimiser exactly where the mode has them, a bank of the mode's
    /// layout ([`Trainer::bank_layout`]) with this run's sample and latent
    /// shapes, an iteration counter that fits a signed 64-bit integer.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming what does not fit; the trainer is
    /// then unchanged.
    pub fn restore(&mut self, s: TrainerState<B>) -> Result<()> {
        let be = self.be.clone();
        check_layout(
            &be,
            self.energy.params(),
            &s.energy,
            "the energy's parameters",
        )?;
        let ebm_opt = restored(&be, &self.ebm_opt, s.ebm_opt, "the energy's")?;
        let generator = match (self.generator.net(), s.generator) {
            (None, None) => None,
            (Some(g), Some((p, o))) => {
                check_layout(&be, g.params(), &p, "the generator's parameters")?;
                let opt = match (self.generator.opt(), o) {
                    (None, None) => None,
                    (Some(have), Some(o)) => Some(restored(&be, have, o, "the generator's")?),
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "a generator optimiser state exactly when mode `{}` trains the generator",
                            self.config.mode.name()
                        )));
                    }
                };
                Some((p, opt))
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "a generator state exactly when mode `{}` has a generator",
                    self.config.mode.name()
                )));
            }
        };
        self.check_bank(s.bank.as_ref())?;
        check_counter(s.iteration)?;
        // Commit: nothing below can fail.
        self.commit_networks(s.energy, ebm_opt, generator, s.iteration);
        self.bank = s.bank;
        self.seed = s.seed;
        Ok(())
    }

    /// Checks that `bank` has the layout the mode needs: present exactly
    /// when [`Trainer::bank_layout`] says so, with latents exactly when it
    /// stores them, rows of this run's sample (and latent) shape.
    fn check_bank(&self, bank: Option<&Bank<B>>) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        match (self.bank_layout(), bank) {
            (None, None) => Ok(()),
            (None, Some(_)) => bad(format!(
                "mode `{}` keeps no bank, but one was given",
                self.config.mode.name()
            )),
            (Some(_), None) => bad(format!(
                "mode `{}` needs its bank, but none was given",
                self.config.mode.name()
            )),
            (Some(has_z), Some(b)) => {
                let n = b.capacity();
                let x_ok = self.be.shape(&b.x) == shape::batched(n, self.energy.sample_shape());
                let z_ok = match (&b.z, self.generator.net()) {
                    (Some(z), Some(g)) => {
                        has_z && self.be.shape(z) == shape::batched(n, g.latent_shape())
                    }
                    (None, _) => !has_z,
                    (Some(_), None) => false,
                };
                if x_ok && z_ok {
                    Ok(())
                } else {
                    bad(
                        "the bank's tensors do not match this run's sample and latent shapes"
                            .into(),
                    )
                }
            }
        }
    }

    /// Restores the networks only (a trained model for sampling and
    /// scoring): weights, their EMA copies where the optimisers keep them,
    /// and the iteration counter; optimiser moments and the bank are not
    /// touched.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a part does not fit (as in
    /// [`Trainer::restore`]); the trainer is then unchanged.
    pub fn restore_networks(&mut self, s: NetworksState<B>) -> Result<()> {
        let be = self.be.clone();
        check_layout(
            &be,
            self.energy.params(),
            &s.energy,
            "the energy's parameters",
        )?;
        let mut ebm_opt = self.ebm_opt.clone();
        if let Some(e) = s.energy_ema {
            ebm_opt.restore_ema(&be, e).context("the energy's EMA")?;
        }
        let generator = match (self.generator.net(), s.generator) {
            (None, None) => None,
            (Some(g), Some((p, ema))) => {
                check_layout(&be, g.params(), &p, "the generator's parameters")?;
                let mut opt = self.generator.opt().cloned();
                if let (Some(o), Some(e)) = (opt.as_mut(), ema) {
                    o.restore_ema(&be, e).context("the generator's EMA")?;
                }
                Some((p, opt))
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "a generator exactly when mode `{}` has one",
                    self.config.mode.name()
                )));
            }
        };
        check_counter(s.iteration)?;
        self.commit_networks(s.energy, ebm_opt, generator, s.iteration);
        Ok(())
    }

    /// Installs checked networks, optimisers and the iteration counter
    /// (`generator`: weights, and the optimiser of a trained generator).
    fn commit_networks(
        &mut self,
        energy: ParamSet<B>,
        ebm_opt: Adam<B>,
        generator: Option<(ParamSet<B>, Option<Adam<B>>)>,
        iteration: u64,
    ) {
        *self.energy.params_mut() = energy;
        self.ebm_opt = ebm_opt;
        match (&mut self.generator, generator) {
            (GeneratorState::Frozen(g), Some((p, _))) => *g.params_mut() = p,
            (GeneratorState::Trained(t), Some((p, opt))) => {
                *t.net.params_mut() = p;
                if let Some(opt) = opt {
                    t.opt = opt;
                }
            }
            _ => {}
        }
        self.iteration = iteration;
    }

    /// Loads one network's weights from named host tensors (PyTorch
    /// state-dict names; strict, as [`ParamSet::load_host`]). Loading the
    /// energy or the generator resets its EMA copy to the loaded weights;
    /// [`Net::EnergyEma`] loads into the EMA copy only. Optimiser moments
    /// are kept.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a network the run lacks (no generator,
    /// no EMA); [`Error::Param`] / [`Error::NonFinite`] from the loader.
    /// Nothing changes on error.
    pub fn load_weights(&mut self, which: Net, tensors: &[HostTensor]) -> Result<()> {
        let be = self.be.clone();
        match which {
            Net::Energy => {
                self.energy.params_mut().load_host(&be, tensors)?;
                self.ebm_opt.reset_ema(self.energy.params());
            }
            Net::EnergyEma => {
                if !self.ebm_opt.has_ema() {
                    return Err(Error::InvalidArgument(
                        "the energy keeps no EMA weights (set ebm_optim.ema_decay)".into(),
                    ));
                }
                self.with_ema_weights(true, |t| t.energy.params_mut().load_host(&be, tensors))?;
            }
            Net::Generator => {
                let mode = self.config.mode.name();
                match &mut self.generator {
                    GeneratorState::Absent => {
                        return Err(Error::InvalidArgument(format!(
                            "mode `{mode}` has no generator"
                        )));
                    }
                    GeneratorState::Frozen(g) => g.params_mut().load_host(&be, tensors)?,
                    GeneratorState::Trained(t) => {
                        t.net.params_mut().load_host(&be, tensors)?;
                        t.opt.reset_ema(t.net.params());
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `f` with the energy's EMA weights swapped in when `use_ema` and
    /// the optimiser keeps them, and swapped back out afterwards — also when
    /// `f` fails. The one place the swap is paired: sampling, evaluation and
    /// the C ABI's samplers all go through it.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn with_ema_weights<R>(
        &mut self,
        use_ema: bool,
        f: impl FnOnce(&mut Self) -> Result<R>,
    ) -> Result<R> {
        let swap = use_ema && self.ebm_opt.has_ema();
        if swap {
            self.ebm_opt.swap_ema(self.energy.params_mut());
        }
        let r = f(self);
        if swap {
            self.ebm_opt.swap_ema(self.energy.params_mut());
        }
        r
    }

    /// Multiplies both optimisers' learning-rate scales by `factor` (the
    /// divergence guard's back-off).
    ///
    /// # Errors
    /// As [`Adam::scale_lr`]; nothing changes on error.
    pub fn scale_lr(&mut self, factor: f32) -> Result<()> {
        let mut e = self.ebm_opt.clone();
        e.scale_lr(factor)?;
        if let Some(g) = self.generator.opt_mut() {
            g.scale_lr(factor)?;
        }
        self.ebm_opt = e;
        Ok(())
    }

    /// Replaces the seed every later noise key derives from (the guard's
    /// reseed after a rollback, so the retried iterations draw new noise).
    pub fn reseed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Replaces the training chains' sampler settings. The mode decides
    /// which blocks move (`update_res`, `update_latents`): a value that
    /// differs from the mode's is an error, not silently overwritten.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings or blocks the mode does not move.
    pub fn set_sampler_config(&mut self, c: LangevinConfig) -> Result<()> {
        check_blocks(self.config.mode, &c)?;
        self.sampler = LangevinSampler::new(c)?;
        Ok(())
    }
}

/// The blocks mode `mode` moves in its chains: `(update_latents, update_res)`.
pub fn mode_blocks(mode: Mode) -> (bool, bool) {
    match mode {
        Mode::Synthesis | Mode::Cooperative | Mode::ShortRun | Mode::Persistent => (false, true),
        Mode::Retrofit | Mode::Refine => (true, true),
        Mode::NoResidual => (true, false),
    }
}

/// Checks that `c` moves the blocks `mode` moves.
///
/// # Errors
/// [`Error::Config`] naming the key that conflicts with the mode.
pub fn check_blocks(mode: Mode, c: &LangevinConfig) -> Result<()> {
    let (lat, res) = mode_blocks(mode);
    for (key, have, want) in [
        ("update_latents", c.update_latents, lat),
        ("update_res", c.update_res, res),
    ] {
        if have != want {
            return Err(Error::Config(format!(
                "langevin.{key} = {have} conflicts with mode `{}`, which sets it to {want} \
                 (the mode decides which blocks move: leave the key out)",
                mode.name()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::cpu::CpuBackend;
    use crate::noise::SeededNoise;
    use crate::optim::AdamConfig;
    use crate::sampler::LangevinConfig;
    use crate::train::{TrainConfig, TrainerSettings};

    use crate::cpu::nets::{CpuMlpEnergy, CpuMlpGenerator};
    use crate::nets::{EnergyArch, GeneratorArch};

    fn trainer(mode: Mode) -> Trainer<CpuBackend> {
        let be = CpuBackend::new();
        let (lat, res) = mode_blocks(mode);
        let settings = TrainerSettings::new(
            TrainConfig {
                mode,
                batch_size: 4,
                bank_size: 8,
                persistent_bank_size: 8,
                ..TrainConfig::default()
            },
            LangevinConfig {
                steps: 2,
                update_latents: lat,
                update_res: res,
                ..LangevinConfig::default()
            },
            AdamConfig {
                ema_decay: Some(0.9),
                ..AdamConfig::default()
            },
            AdamConfig::default(),
            7,
        );
        let g: Option<Box<dyn crate::Generator<CpuBackend>>> = mode.has_generator().then(|| {
            let arch = GeneratorArch::Mlp {
                dims: vec![2, 8, 2],
            };
            Box::new(CpuMlpGenerator::new(&arch, 2).unwrap()) as _
        });
        let energy = CpuMlpEnergy::new(
            &EnergyArch::Mlp {
                dims: vec![2, 8, 1],
            },
            1,
        )
        .unwrap();
        Trainer::new(be, settings, Box::new(energy), g, &mut SeededNoise).unwrap()
    }

    fn host(t: &Trainer<CpuBackend>) -> Vec<Vec<f32>> {
        let mut v: Vec<_> = t
            .energy()
            .params()
            .iter()
            .map(|p| t.be().to_host(&p.value).unwrap())
            .collect();
        if let Some(b) = t.bank() {
            v.push(t.be().to_host(&b.x).unwrap());
        }
        v.push(vec![t.iteration() as f32, t.ebm_optimiser().lr_scale()]);
        v
    }

    /// A state that does not fit is refused and nothing changes.
    #[test]
    fn restore_refuses_states_that_do_not_fit_and_changes_nothing() {
        let mut t = trainer(Mode::Synthesis);
        let before = host(&t);
        let other = trainer(Mode::ShortRun);
        // No generator and no bank for a mode that has both.
        assert!(t.restore(other.state()).is_err());
        let mut s = t.state();
        s.bank = None;
        assert!(
            t.restore(s)
                .unwrap_err()
                .to_string()
                .contains("needs its bank")
        );
        let mut s = t.state();
        s.iteration = u64::MAX;
        assert!(t.restore(s).is_err());
        let mut s = t.state();
        s.ebm_opt.lr_scale = f32::NAN;
        assert!(t.restore(s).is_err());
        let mut s = t.state();
        s.ebm_opt.ema = None;
        assert!(t.restore(s).is_err());
        assert_eq!(host(&t), before);
        // The trainer's own state goes back exactly.
        let s = t.state();
        t.restore(s).unwrap();
        assert_eq!(host(&t), before);
    }

    #[test]
    fn learning_rate_scale_only_falls() {
        let mut t = trainer(Mode::Synthesis);
        t.scale_lr(0.5).unwrap();
        assert_eq!(t.ebm_optimiser().lr_scale(), 0.5);
        assert_eq!(t.gen_optimiser().unwrap().lr_scale(), 0.5);
        for bad in [2.0, 0.0, -1.0, f32::NAN, f32::INFINITY, 1e-45] {
            assert!(t.scale_lr(bad).is_err(), "{bad}");
        }
        assert_eq!(t.ebm_optimiser().lr_scale(), 0.5);
    }

    #[test]
    fn blocks_other_than_the_mode_s_are_refused() {
        let mut t = trainer(Mode::Synthesis);
        let mut c = t.sampler().config.clone();
        c.update_latents = true;
        let e = t.set_sampler_config(c).unwrap_err().to_string();
        assert!(
            e.contains("update_latents") && e.contains("synthesis"),
            "{e}"
        );
        assert!(!t.sampler().config.update_latents);
    }

    /// The EMA swap is paired: after `with_ema_weights` (also a failing one)
    /// the raw weights are back; inside it the EMA copy is in place.
    #[test]
    fn ema_weights_are_swapped_back_also_on_error() {
        let mut t = trainer(Mode::ShortRun);
        t.step(&t.be().zeros(&[4, 2]).unwrap(), &mut SeededNoise)
            .unwrap();
        let raw = host(&t);
        let ema: Vec<Vec<f32>> = t
            .ebm_optimiser()
            .ema()
            .unwrap()
            .iter()
            .flatten()
            .map(|e| t.be().to_host(e).unwrap())
            .collect();
        assert_ne!(
            raw[0], ema[0],
            "one step moves the weights away from their EMA"
        );
        let inside = t.with_ema_weights(true, |t| Ok(host(t))).unwrap();
        assert_eq!(inside[0], ema[0]);
        let e: Result<()> = t.with_ema_weights(true, |_| Err(Error::Cancelled));
        assert!(e.is_err());
        assert_eq!(host(&t), raw);
    }
}
