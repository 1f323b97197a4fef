//! [`TrainedModel`]: a trained Hat EBM loaded from a checkpoint alone — the
//! energy, the generator, the EMA weights and the sampler settings the run
//! used — for sampling and scoring, with no training data, bank or
//! optimiser moments (a shipped model samples after its data is deleted).

use std::path::Path;

use super::checkpoint::Checkpoint;
use crate::config::Config;
use crate::metrics::OodScores;
use crate::nets::BuildNets;
use crate::noise::SeededNoise;
use crate::sampler::{AisConfig, AisResult, LangevinConfig, LangevinStats, Method};
use crate::train::{SampleOptions, Trainer};
use crate::{Error, Result};

/// A model for sampling and energies, from a checkpoint's weights and
/// configuration.
pub struct TrainedModel<B: BuildNets> {
    config: Config,
    trainer: Trainer<B>,
    /// Diagnostics of the last batch of the last [`TrainedModel::sample`].
    last_stats: Option<LangevinStats>,
    /// Fraction of the last [`TrainedModel::sample`] call's values clamped.
    last_clamped: f64,
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
        Ok(TrainedModel {
            config,
            trainer,
            last_stats: None,
            last_clamped: 0.0,
        })
    }

    /// The configuration the model was trained with (its `sample` and
    /// `langevin` sections are the defaults of [`TrainedModel::sample`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The training iteration the checkpoint was written at.
    pub fn iteration(&self) -> u64 {
        self.trainer.iteration()
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        self.trainer.be().name()
    }

    /// The shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        self.trainer.energy().sample_shape()
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
        let shape = self.trainer.be().shape(&t);
        let mut data = self.trainer.be().to_host(&t)?;
        self.last_clamped = super::clamp_samples(&self.config, opts, &mut data);
        Ok((data, shape))
    }

    /// The fraction of the values of the last [`TrainedModel::sample`] call
    /// that were clamped to the data's range (as
    /// [`Run::last_clamped_fraction`](super::Run::last_clamped_fraction)).
    pub fn last_clamped_fraction(&self) -> f64 {
        self.last_clamped
    }

    /// Chooses the sampler's transition for later [`TrainedModel::sample`]
    /// calls (the run's `langevin` settings otherwise: T, ε, K, clipping);
    /// options the new method does not take (`shadow_mh`, adaptation, the
    /// joint proposal, the mass warm-up) are switched off.
    ///
    /// # Errors
    /// [`Error::Config`] if the run's settings do not suit `method` (e.g.
    /// `noise = false`).
    pub fn set_sampler_method(&mut self, method: Method) -> Result<()> {
        let mut c = self.trainer.sampler().config.clone();
        c.method = method;
        c.shadow_mh = c.shadow_mh && method == Method::Ula;
        if !matches!(method, Method::Mala | Method::Hmc) {
            c.adapt_steps = 0;
        }
        c.joint_proposal = c.joint_proposal && method == Method::Mala;
        c.adapt_mass = c.adapt_mass && method == Method::Hmc;
        self.set_sampler_config(c)
    }

    /// The sampler settings of later [`TrainedModel::sample`] calls.
    pub fn sampler_config(&self) -> &LangevinConfig {
        &self.trainer.sampler().config
    }

    /// Replaces the sampler settings of later [`TrainedModel::sample`] calls.
    /// Which blocks move (`update_res`, `update_latents`) belongs to the run's
    /// mode and cannot change.
    ///
    /// # Errors
    /// [`Error::Config`] for out-of-range settings or a change of the moving
    /// blocks.
    pub fn set_sampler_config(&mut self, c: LangevinConfig) -> Result<()> {
        self.trainer.set_sampler_config(c)
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
        let shape = crate::backend::shape::batched(n, self.trainer.energy().sample_shape());
        if x.len() != crate::backend::shape::numel(&shape) {
            return Err(Error::shape("samples", &shape, &[x.len()]));
        }
        self.with_weights(use_ema, |t| {
            let xt = t.be().from_host(x, &shape)?;
            t.be().to_host(&t.energy().energy(&xt)?)
        })
    }

    /// Out-of-distribution scores of `n` samples (host data `[n, ...sample]`):
    /// the energy `U(x)` and the input-gradient norm `‖∇ₓU(x)‖` (L2 over all
    /// of a sample's values) of each, with the EMA weights when `use_ema` and
    /// the model keeps them (see [`crate::metrics::ood`] for the convention:
    /// higher = more OOD for both). Computed in batches of the configuration's
    /// `sample.batch_size` samples, so memory stays bounded for any `n`; the
    /// scores of a sample do not depend on `n` or the batching.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `n = 0`; [`Error::ShapeMismatch`] for
    /// data of the wrong length; [`Error::NonFinite`] for a NaN or ±∞ in `x`;
    /// model and backend errors.
    pub fn scores(&mut self, x: &[f32], n: usize, use_ema: bool) -> Result<OodScores> {
        let per = crate::backend::shape::numel(self.trainer.energy().sample_shape());
        check_samples(x, n, per, self.trainer.energy().sample_shape())?;
        let batch = self.config.sample.batch_size.max(1);
        let mut out = OodScores {
            energy: Vec::with_capacity(n),
            grad_norm: Vec::with_capacity(n),
        };
        self.with_weights(use_ema, |t| {
            for chunk in x.chunks(batch * per) {
                let rows = chunk.len() / per;
                let shape = crate::backend::shape::batched(rows, t.energy().sample_shape());
                let xt = t.be().from_host(chunk, &shape)?;
                let (e, g) = t.energy().energy_grad_x(&xt)?;
                out.energy.extend(t.be().to_host(&e)?);
                out.grad_norm
                    .extend(t.be().to_host(&t.be().row_norms(&g)?)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// An AIS estimate of `log Z = log ∫ exp(−H(x)/T) dx` of the energy on its
    /// input space at the run's sampler temperature (the generator is not
    /// involved), with the EMA weights when `use_ema` and the model keeps them
    /// ([`crate::sampler::ais()`]).
    ///
    /// # Errors
    /// [`Error::Config`] for out-of-range settings; model and backend errors.
    pub fn log_z(&mut self, cfg: &AisConfig, use_ema: bool) -> Result<AisResult> {
        self.with_weights(use_ema, |t| {
            let temperature = t.sampler().config.temperature;
            crate::sampler::ais(t.be(), t.energy(), temperature, cfg, &mut SeededNoise)
        })
    }

    /// Runs `f` on the trainer with the energy's EMA weights swapped in when
    /// `use_ema` and the model keeps them ([`Trainer::with_ema_weights`]).
    fn with_weights<R>(
        &mut self,
        use_ema: bool,
        f: impl FnOnce(&Trainer<B>) -> Result<R>,
    ) -> Result<R> {
        self.trainer.with_ema_weights(use_ema, |t| f(t))
    }
}

/// Checks a host batch of `n ≥ 1` samples of `per` values each, all finite.
fn check_samples(x: &[f32], n: usize, per: usize, sample_shape: &[usize]) -> Result<()> {
    crate::ensure!(n > 0, "scores: at least one sample is needed, got n = 0");
    crate::ensure!(per > 0, "scores: the model's samples have no values");
    if n.checked_mul(per) != Some(x.len()) {
        let shape = crate::backend::shape::batched(n, sample_shape);
        return Err(Error::shape("samples", &shape, &[x.len()]));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "samples: sample {}, value {} is {}",
            i / per,
            i % per,
            x[i]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use crate::config::ConfigBuilder;
    use crate::cpu::CpuBackend;

    /// A small digits model after two iterations (so that the EMA weights
    /// differ from the raw ones), scored in batches of 3.
    fn model(dir: &Path) -> TrainedModel<CpuBackend> {
        let mut b = ConfigBuilder::new();
        for (k, v) in [
            ("preset", "\"digits\""),
            ("model.energy.dims", "[64, 32, 1]"),
            ("model.generator.dims", "[16, 32, 64]"),
            ("train.batch_size", "16"),
            ("train.bank_size", "32"),
            ("langevin.steps", "2"),
            ("ebm_optim.ema_decay", "0.5"),
            ("eval.num_samples", "0"),
            ("sample.batch_size", "3"),
            ("output.progress", "\"never\""),
        ] {
            b.set(k, v).unwrap();
        }
        b.set("output.dir", &format!("\"{}\"", dir.display()))
            .unwrap();
        let mut run = super::super::Run::new(CpuBackend::new(), b.build().unwrap()).unwrap();
        run.train(Some(2), &mut super::super::Silent).unwrap();
        let ck = dir.join("checkpoint.safetensors");
        run.save_checkpoint(&ck).unwrap();
        TrainedModel::load(CpuBackend::new(), &ck).unwrap()
    }

    #[test]
    fn scores_are_the_energy_and_its_gradient_norm_in_any_batching() {
        let dir = std::env::temp_dir().join(format!("hatebm-scores-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut m = model(&dir);
        let n = 7;
        let data = crate::data::Dataset::digits().unwrap();
        let x = &data.data()[..n * 64];
        for use_ema in [false, true] {
            let s = m.scores(x, n, use_ema).unwrap();
            assert_eq!(s.energy, m.energy(x, n, use_ema).unwrap());
            // One batch of all 7, by hand.
            let (e, g) = m
                .with_weights(use_ema, |t| {
                    let xt = t.be().from_host(x, &[n, 64])?;
                    let (e, g) = t.energy().energy_grad_x(&xt)?;
                    Ok((t.be().to_host(&e)?, t.be().to_host(&g)?))
                })
                .unwrap();
            assert_eq!(s.energy, e, "batches of 3 give the one-batch energies");
            for (i, gn) in s.grad_norm.iter().enumerate() {
                let want = g[i * 64..(i + 1) * 64]
                    .iter()
                    .map(|v| f64::from(*v).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    (f64::from(*gn) - want).abs() <= 1e-5 * want,
                    "{gn} vs {want}"
                );
            }
        }
        assert_ne!(
            m.scores(x, n, false).unwrap(),
            m.scores(x, n, true).unwrap(),
            "the EMA weights are used"
        );
        let e = m.scores(&x[..10], 2, true).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        let e = m.scores(&[], 0, true).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let mut bad = x.to_vec();
        bad[70] = f32::INFINITY;
        let e = m.scores(&bad, n, true).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e}");
        assert!(e.to_string().contains("sample 1, value 6"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
