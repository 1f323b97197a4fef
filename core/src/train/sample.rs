//! Sampling from a trained model: N samples in batches, from the training
//! chain's initialisation (fresh latents and zero residuals, or noise for the
//! generator-less baselines), optionally with longer chains and the EMA weights.

use crate::backend::{Backend, shape};
use crate::noise::{NoiseKey, NoiseSource, Stream};
use crate::sampler::{ChainKey, Chains, LangevinSampler, LangevinStats};
use crate::{Error, Result};

use super::modes::fill_noise_init;
use super::trainer::Trainer;

/// How to sample.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleOptions {
    /// Number of samples.
    pub n: usize,
    /// Chains per batch.
    pub batch_size: usize,
    /// Langevin steps (`None` = the training chain's K; `Some(0)` = the
    /// generator's samples G(z) without MCMC).
    pub steps: Option<usize>,
    /// Use the EMA weights when the optimiser keeps them.
    pub use_ema: bool,
    /// Seed of the sampling noise (independent of the training streams).
    pub seed: u64,
    /// Clamp the returned samples to the data's value range (the facade
    /// applies it, as only it knows the data; this crate's sampler returns the
    /// chains as they are).
    pub clamp: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            n: 64,
            batch_size: 64,
            steps: None,
            use_ema: true,
            seed: 0,
            clamp: true,
        }
    }
}

impl<B: Backend> Trainer<B> {
    /// Draws `opts.n` samples `[n, ...sample]`. Chain `i` uses the global row
    /// index `i` in every noise key, so the result does not depend on
    /// `batch_size`. Returns the samples and the last batch's diagnostics.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `n == 0` or `batch_size == 0`; model and
    /// backend errors. The EMA swap is undone even on error.
    pub fn sample(
        &mut self,
        opts: &SampleOptions,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<(B::Tensor, LangevinStats)> {
        self.sample_with_progress(opts, noise, &mut |_, _| true)
    }

    /// [`Trainer::sample`], calling `progress(done, n)` after every batch of
    /// chains; returning `false` stops with [`Error::Cancelled`].
    ///
    /// # Errors
    /// As [`Trainer::sample`], plus [`Error::Cancelled`].
    pub fn sample_with_progress(
        &mut self,
        opts: &SampleOptions,
        noise: &mut dyn NoiseSource<B>,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(B::Tensor, LangevinStats)> {
        if opts.n == 0 || opts.batch_size == 0 {
            return Err(Error::InvalidArgument(
                "sample: n and batch_size must be positive".into(),
            ));
        }
        self.with_ema_weights(opts.use_ema, |t| t.sample_inner(opts, noise, progress))
    }

    fn sample_inner(
        &self,
        opts: &SampleOptions,
        noise: &mut dyn NoiseSource<B>,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(B::Tensor, LangevinStats)> {
        let be = &self.be;
        let mut sampler = self.sampler.clone();
        if let Some(k) = opts.steps {
            if k > crate::sampler::MAX_STEPS {
                return Err(Error::InvalidArgument(format!(
                    "sample steps must be at most {}, got {k}",
                    crate::sampler::MAX_STEPS
                )));
            }
            sampler.config.steps = k;
        }
        let mut parts = Vec::new();
        let mut stats = LangevinStats::default();
        let mut start = 0;
        while start < opts.n {
            let n = opts.batch_size.min(opts.n - start);
            let key =
                |stream| NoiseKey::new(opts.seed, stream, [0, 0]).with_row_offset(start as u64);
            let mut chains = match self.generator.net() {
                Some(g) if self.config.mode.has_generator() => {
                    let mut z = be.zeros(&shape::batched(n, g.latent_shape()))?;
                    noise.normal(be, key(Stream::ChainInitLatent), &mut z)?;
                    be.scale(&mut z, self.config.init_scale_latent)?;
                    Chains {
                        z: Some(z),
                        y: be.zeros(&shape::batched(n, g.output_shape()))?,
                    }
                }
                _ => {
                    let mut y = be.zeros(&shape::batched(n, self.energy.sample_shape()))?;
                    fill_noise_init(
                        be,
                        &mut y,
                        self.config.noise_init,
                        key(Stream::ChainInitRes),
                    )?;
                    Chains { z: None, y }
                }
            };
            let images = if sampler.config.steps > 0 {
                let ck = ChainKey {
                    seed: opts.seed,
                    iteration: u64::MAX,
                    row_offset: start as u64,
                };
                let (st, images) = sampler.run_images(
                    be,
                    self.energy.as_ref(),
                    self.generator.net(),
                    &mut chains,
                    noise,
                    ck,
                    None,
                )?;
                stats = st;
                images
            } else {
                LangevinSampler::images(be, self.generator.net(), &chains)?
            };
            parts.push(images);
            start += n;
            if !progress(start, opts.n) {
                return Err(Error::Cancelled);
            }
        }
        let refs: Vec<&B::Tensor> = parts.iter().collect();
        Ok((be.concat_rows(&refs)?, stats))
    }
}
