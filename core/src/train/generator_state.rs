//! [`GeneratorState`]: the generator state a training mode owns, as one
//! value whose variant is the mode's (issue 10 item 3).
//!
//! A trained generator always comes with its optimiser and gradient buffers;
//! a frozen one never has either; a baseline without a generator has none of
//! the three. Before this type the trainer kept three independent `Option`s
//! (`generator`, `gen_opt`, `gen_grads`) and code that matched them relied
//! on `expect("checked above")`. The bank stays beside it in the trainer
//! (`Option<Bank>`): it is absent until a checkpoint restores it when the
//! trainer is built without one, and [`super::Trainer::bank_layout`] states
//! which bank the mode needs, checked on every restore.

use crate::backend::Backend;
use crate::error::Result;
use crate::model::Generator;
use crate::optim::{Adam, AdamConfig};
use crate::params::Grads;

use super::config::Mode;

/// A generator the trainer updates: the network, its Adam state and the
/// buffers its parameter gradients are accumulated in (aligned with
/// `net.params()`).
pub(crate) struct TrainedGenerator<B: Backend> {
    pub(crate) net: Box<dyn Generator<B>>,
    pub(crate) opt: Adam<B>,
    pub(crate) grads: Grads<B>,
}

/// The generator part of a trainer, by mode.
pub(crate) enum GeneratorState<B: Backend> {
    /// Short-run and persistent baselines: no generator.
    Absent,
    /// Retrofit, refine, no-residual: a frozen pretrained generator.
    Frozen(Box<dyn Generator<B>>),
    /// Synthesis and cooperative learning: a generator fitted every iteration.
    Trained(TrainedGenerator<B>),
}

impl<B: Backend> GeneratorState<B> {
    /// The state `mode` needs around `generator` (whose presence the caller
    /// has checked against [`Mode::has_generator`]): a fresh optimiser
    /// (`optim`) and zero gradients when the mode trains it.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for invalid optimiser settings; backend errors.
    pub(crate) fn new(
        be: &B,
        mode: Mode,
        generator: Option<Box<dyn Generator<B>>>,
        optim: AdamConfig,
    ) -> Result<Self> {
        Ok(match generator {
            None => GeneratorState::Absent,
            Some(net) if mode.trains_generator() => {
                optim.validate("gen_optim")?;
                let opt = Adam::new(be, optim, net.params())?;
                let grads = Grads::zeros_like(be, net.params())?;
                GeneratorState::Trained(TrainedGenerator { net, opt, grads })
            }
            Some(net) => GeneratorState::Frozen(net),
        })
    }

    /// The network, trained or frozen.
    pub(crate) fn net(&self) -> Option<&dyn Generator<B>> {
        match self {
            GeneratorState::Absent => None,
            GeneratorState::Frozen(g) => Some(g.as_ref()),
            GeneratorState::Trained(t) => Some(t.net.as_ref()),
        }
    }

    /// The optimiser, for a trained generator.
    pub(crate) fn opt(&self) -> Option<&Adam<B>> {
        self.trained().map(|t| &t.opt)
    }

    /// The optimiser, mutably.
    pub(crate) fn opt_mut(&mut self) -> Option<&mut Adam<B>> {
        self.trained_mut().map(|t| &mut t.opt)
    }

    /// The last update's gradients, for a trained generator.
    pub(crate) fn grads(&self) -> Option<&Grads<B>> {
        self.trained().map(|t| &t.grads)
    }

    /// The trained generator, if the mode trains one.
    pub(crate) fn trained(&self) -> Option<&TrainedGenerator<B>> {
        match self {
            GeneratorState::Trained(t) => Some(t),
            _ => None,
        }
    }

    /// The trained generator, mutably.
    pub(crate) fn trained_mut(&mut self) -> Option<&mut TrainedGenerator<B>> {
        match self {
            GeneratorState::Trained(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuBackend;
    use crate::cpu::nets::CpuMlpGenerator;
    use crate::nets::GeneratorArch;

    fn g() -> Box<dyn Generator<CpuBackend>> {
        Box::new(
            CpuMlpGenerator::new(
                &GeneratorArch::Mlp {
                    dims: vec![2, 4, 2],
                },
                1,
            )
            .unwrap(),
        )
    }

    #[test]
    fn the_variant_follows_the_mode() {
        let be = CpuBackend::new();
        let cfg = AdamConfig::default();
        for mode in Mode::ALL {
            let s =
                GeneratorState::new(&be, mode, mode.has_generator().then(g), cfg.clone()).unwrap();
            assert_eq!(s.net().is_some(), mode.has_generator(), "{mode:?}");
            assert_eq!(s.opt().is_some(), mode.trains_generator(), "{mode:?}");
            assert_eq!(s.grads().is_some(), mode.trains_generator(), "{mode:?}");
        }
    }

    #[test]
    fn invalid_optimiser_settings_are_refused_only_where_used() {
        let be = CpuBackend::new();
        let bad = AdamConfig {
            lr: f32::NAN,
            ..AdamConfig::default()
        };
        assert!(GeneratorState::new(&be, Mode::Synthesis, Some(g()), bad.clone()).is_err());
        // A frozen generator has no optimiser: its settings are not read.
        assert!(GeneratorState::new(&be, Mode::Refine, Some(g()), bad).is_ok());
    }
}
