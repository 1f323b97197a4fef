//! The deterministic autoencoder that provides the retrofit generator: an
//! encoder ([`crate::nets::EncoderArch`], `InfEncoder32`) and the decoder
//! `GenDecoder32`, trained with the reconstruction loss
//! `λ·mean((D(E(x + ε·ξ)) − x)²)` (the official `cifar10_ae` config: λ = 1000,
//! ε = 0.02, Adam 1e-4). The decoder then serves as the frozen generator of a
//! `retrofit` run, whose chains start from `z ~ N(0, I)`; the encoder's codes
//! lie on the sphere of radius `sqrt(256)`, where N(0, I) in 256 dimensions
//! concentrates, so decoding noise latents is meaningful.
//!
//! Input noise: the encoder sees `x + ε·ξ` and the target is the clean `x` (a
//! mildly denoising autoencoder; `ε = 0` gives the plain one).

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::model::Generator;
use crate::nets::{BuildNets, EncoderArch, GeneratorArch};
use crate::noise::{NoiseKey, NoiseSource, Stream};
use crate::optim::{Adam, AdamConfig};
use crate::params::Grads;
use crate::{Error, Result};

/// Autoencoder pretraining settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoencoderConfig {
    /// Training iterations.
    pub steps: u64,
    /// Batch size.
    pub batch_size: usize,
    /// Adam learning rate of both networks (official: 1e-4).
    pub lr: f32,
    /// Input noise ε (official: 0.02).
    pub data_epsilon: f32,
    /// Loss factor λ (official: 1000).
    pub loss_factor: f32,
    /// Encoder width (`None` = the decoder's `ngf`).
    pub encoder_ngf: Option<usize>,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        AutoencoderConfig {
            steps: 2000,
            batch_size: 64,
            lr: 1e-4,
            data_epsilon: 0.02,
            loss_factor: 1000.0,
            encoder_ngf: None,
        }
    }
}

impl AutoencoderConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`Error::Config`] naming the knob.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Config("autoencoder.batch_size must be >= 1".into()));
        }
        for (n, v) in [
            ("lr", self.lr),
            ("data_epsilon", self.data_epsilon),
            ("loss_factor", self.loss_factor),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Config(format!(
                    "autoencoder.{n} must be finite and >= 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// Encoder, decoder and their optimisers.
pub struct Autoencoder<B: Backend> {
    be: B,
    /// Settings.
    pub config: AutoencoderConfig,
    /// The encoder (images → codes).
    pub encoder: Box<dyn Generator<B>>,
    /// The decoder (codes → images), the future retrofit generator.
    pub decoder: Box<dyn Generator<B>>,
    enc_opt: Adam<B>,
    dec_opt: Adam<B>,
    enc_grads: Grads<B>,
    dec_grads: Grads<B>,
    seed: u64,
    /// Iterations completed.
    pub iteration: u64,
}

impl<B: Backend> std::fmt::Debug for Autoencoder<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoencoder")
            .field("encoder", &self.encoder.describe())
            .field("decoder", &self.decoder.describe())
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

impl<B: BuildNets> Autoencoder<B> {
    /// Builds the encoder matching `decoder` (a `decoder32` architecture).
    ///
    /// # Errors
    /// [`Error::Config`] if `decoder` is not a `decoder32` or settings are invalid;
    /// [`Error::BackendUnavailable`] if the backend has no encoder.
    pub fn new(
        be: B,
        config: AutoencoderConfig,
        decoder: &GeneratorArch,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let GeneratorArch::Decoder32 { ngf, nch, .. } = decoder else {
            return Err(Error::Config(format!(
                "autoencoder pretraining needs a decoder32 generator, not {}",
                decoder.describe()
            )));
        };
        let enc_arch = EncoderArch::Encoder32 {
            nch: *nch,
            ngf: config.encoder_ngf.unwrap_or(*ngf),
        };
        let encoder = be.build_encoder(&enc_arch, seed ^ 0x5eed_e4c0)?;
        let decoder = be.build_generator(decoder, seed ^ 0x9e37_79b9)?;
        let opt = AdamConfig {
            lr: config.lr,
            ..AdamConfig::default()
        };
        Ok(Autoencoder {
            enc_opt: Adam::new(&be, opt.clone(), encoder.params())?,
            dec_opt: Adam::new(&be, opt, decoder.params())?,
            enc_grads: Grads::zeros_like(&be, encoder.params())?,
            dec_grads: Grads::zeros_like(&be, decoder.params())?,
            be,
            config,
            encoder,
            decoder,
            seed,
            iteration: 0,
        })
    }

    /// One training iteration on a clean batch `x` (`[B, nch, 32, 32]`);
    /// returns the loss.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a non-finite loss (weights untouched); model and
    /// backend errors.
    pub fn step(&mut self, x: &B::Tensor, noise: &mut dyn NoiseSource<B>) -> Result<f64> {
        let be = &self.be;
        let mut xn = x.clone();
        if self.config.data_epsilon != 0.0 {
            let mut xi = be.zeros(&be.shape(x))?;
            noise.normal(
                be,
                NoiseKey::new(self.seed, Stream::DataJitter, [self.iteration, 1]),
                &mut xi,
            )?;
            be.axpy(&mut xn, self.config.data_epsilon, &xi)?;
        }
        let code = self.encoder.forward(&xn)?;
        self.dec_grads.zero(be)?;
        let loss = self.decoder.mse_grad_params(
            be,
            &code,
            x,
            self.config.loss_factor,
            &mut self.dec_grads,
        )?;
        // d loss / d code through the decoder, then into the encoder's weights.
        let recon = self.decoder.forward(&code)?;
        let mut cot = be.sub(&recon, x)?;
        let n = crate::backend::shape::numel(&be.shape(x)) as f64;
        be.scale(
            &mut cot,
            (2.0 * f64::from(self.config.loss_factor) / n) as f32,
        )?;
        let dcode = self.decoder.vjp_latent(&code, &cot)?;
        self.enc_grads.zero(be)?;
        self.encoder.vjp_params(&xn, &dcode, &mut self.enc_grads)?;
        if !loss.is_finite() || !self.enc_grads.all_finite(be)? || !self.dec_grads.all_finite(be)? {
            return Err(Error::NonFinite(format!(
                "autoencoder iteration {} (loss {loss})",
                self.iteration + 1
            )));
        }
        self.dec_opt
            .step(be, self.decoder.params_mut(), &mut self.dec_grads)?;
        self.enc_opt
            .step(be, self.encoder.params_mut(), &mut self.enc_grads)?;
        self.iteration += 1;
        Ok(loss)
    }

    /// `D(E(x))`.
    ///
    /// # Errors
    /// Model and backend errors.
    pub fn reconstruct(&self, x: &B::Tensor) -> Result<B::Tensor> {
        self.decoder.forward(&self.encoder.forward(x)?)
    }

    /// The mean reconstruction loss `λ·mean((D(E(x)) − x)²)` without noise.
    ///
    /// # Errors
    /// Model and backend errors.
    pub fn eval_loss(&self, x: &B::Tensor) -> Result<f64> {
        let d = self.be.sub(&self.reconstruct(x)?, x)?;
        let n = crate::backend::shape::numel(&self.be.shape(x)) as f64;
        Ok(f64::from(self.config.loss_factor) * self.be.sq_norm(&d)? / n)
    }
}
