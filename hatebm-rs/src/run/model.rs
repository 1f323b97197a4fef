//! [`TrainedModel`]: a trained Hat EBM loaded from a checkpoint alone — the
//! energy, the generator, the EMA weights and the sampler settings the run
//! used — for sampling and scoring, with no training data, bank or
//! optimiser moments (a shipped model samples after its data is deleted).

use std::path::Path;

use super::checkpoint::Checkpoint;
use crate::config::Config;
use crate::nets::BuildNets;
use crate::noise::SeededNoise;
use crate::sampler::{LangevinSampler, LangevinStats, Method};
use crate::train::{SampleOptions, Trainer};
use crate::{Error, Result};

/// A model for sampling and energies, from a checkpoint's weights and
/// configuration.
pub struct TrainedModel<B: BuildNets> {
    config: Config,
    trainer: Trainer<B>,
    /// Diagnostics of the last batch of the last [`TrainedModel::sample`].
    last_stats: Option<LangevinStats>,
}

impl<B: BuildNets> std::fmt::Debug for TrainedModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainedModel")
            .field("energy", &self.config.model.energy.describe())
            .finish_non_exhaustive()
    }
}

impl<B: BuildNets> TrainedModel<B> {
    /// Loads the networks (and the energy's EMA, when the run kept one) of a
    /// checkpoint written by [`Run::save_checkpoint`](super::Run::save_checkpoint).
    /// Nothing of the training data is read.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Format`] for a corrupt checkpoint or one whose
    /// weights are missing, mis-shaped or not finite.
    pub fn load(be: B, path: &Path) -> Result<Self> {
        Self::from_checkpoint(be, &Checkpoint::read(path)?)
    }

    /// [`TrainedModel::load`] from a checkpoint already read.
    ///
    /// # Errors
    /// As [`TrainedModel::load`].
    pub fn from_checkpoint(be: B, ck: &Checkpoint) -> Result<Self> {
        let config = ck.config()?;
        // The checkpoint's weights replace the initial ones: no pretrained file is read.
        let mut trainer = super::build_trainer(
            be,
            &config,
            false,
            false,
            Box::new(crate::dist::SingleProcess),
        )?;
        ck.restore_networks(&mut trainer)?;
        trainer.iteration = ck.meta("iteration")?;
        Ok(TrainedModel {
            config,
            trainer,
            last_stats: None,
        })
    }

    /// The configuration the model was trained with (its `sample` and
    /// `langevin` sections are the defaults of [`TrainedModel::sample`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The training iteration the checkpoint was written at.
    pub fn iteration(&self) -> u64 {
        self.trainer.iteration
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        self.trainer.be.name()
    }

    /// The shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        self.trainer.energy.sample_shape()
    }

    /// The image shape `[C, H, W]` of the samples, if they are images: the
    /// energy's input shape when it is 3-D, else what the data set is known
    /// to hold (the digits' 8 × 8 for the MLP presets).
    pub fn image_dims(&self) -> Option<[usize; 3]> {
        match *self.sample_shape() {
            [c, h, w] => Some([c, h, w]),
            [n] => self
                .config
                .data
                .known_image_dims()
                .filter(|d| d.iter().product::<usize>() == n),
            _ => None,
        }
    }

    /// Draws samples as [`Run::sample`](super::Run::sample) does (same noise,
    /// same results as the run that saved the checkpoint), calling
    /// `progress(done, n)` after every batch (`false` cancels).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for sizes beyond the memory budget or
    /// limits; [`Error::Cancelled`]; model and backend errors.
    pub fn sample(
        &mut self,
        opts: &SampleOptions,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        super::check_sample_memory(&self.config, self.sample_shape(), opts.n)?;
        let (t, stats) = self
            .trainer
            .sample_with_progress(opts, &mut SeededNoise, progress)?;
        self.last_stats = Some(stats);
        let shape = self.trainer.be.shape(&t);
        Ok((self.trainer.be.to_host(&t)?, shape))
    }

    /// Chooses the sampler's transition for later [`TrainedModel::sample`]
    /// calls (the run's `langevin` settings otherwise: T, ε, K, clipping).
    ///
    /// # Errors
    /// [`Error::Config`] if the run's settings do not suit `method` (e.g.
    /// `noise = false`).
    pub fn set_sampler_method(&mut self, method: Method) -> Result<()> {
        let mut c = self.trainer.sampler.config.clone();
        c.method = method;
        c.shadow_mh = c.shadow_mh && method == Method::Ula;
        c.adapt_steps = if matches!(method, Method::Mala | Method::Hmc) {
            c.adapt_steps
        } else {
            0
        };
        self.trainer.sampler = LangevinSampler::new(c)?;
        Ok(())
    }

    /// Diagnostics (acceptance included) of the last batch of chains of the
    /// last [`TrainedModel::sample`] call.
    pub fn last_sample_stats(&self) -> Option<&LangevinStats> {
        self.last_stats.as_ref()
    }

    /// The energies `U(x)` of `n` samples (host data `[n, ...sample]`), with the
    /// EMA weights when `use_ema` and the model keeps them.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for data of the wrong length; backend errors.
    pub fn energy(&mut self, x: &[f32], n: usize, use_ema: bool) -> Result<Vec<f32>> {
        let shape = crate::backend::shape::batched(n, self.trainer.energy.sample_shape());
        if x.len() != crate::backend::shape::numel(&shape) {
            return Err(Error::shape("samples", &shape, &[x.len()]));
        }
        let be = self.trainer.be.clone();
        let xt = be.from_host(x, &shape)?;
        let swap = use_ema && self.trainer.ebm_opt.ema.is_some();
        if swap {
            self.trainer
                .ebm_opt
                .swap_ema(self.trainer.energy.params_mut());
        }
        let e = self.trainer.energy.energy(&xt);
        if swap {
            self.trainer
                .ebm_opt
                .swap_ema(self.trainer.energy.params_mut());
        }
        be.to_host(&e?)
    }
}
