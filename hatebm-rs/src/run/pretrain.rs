//! Pretraining the retrofit autoencoder (the paper's Appendix K setup): the
//! decoder that the `retrofit` mode then freezes as its generator.
//!
//! [`pretrain_autoencoder`] is generic over the backend; the C ABI and the CLI
//! reach it through [`crate::runtime::pretrain_autoencoder`], which picks the
//! backend from `config.backend`. (The encoder network exists on the CPU
//! backend only so far: another backend returns its "not built" error.)

use std::path::PathBuf;
use std::time::Instant;

use crate::config::Config;
use crate::data::Batcher;
use crate::nets::BuildNets;
use crate::noise::SeededNoise;
use crate::train::Autoencoder;
use crate::{Error, Result};

/// What [`pretrain_autoencoder`] did and wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct AePretrained {
    /// The training loss of every iteration.
    pub losses: Vec<f64>,
    /// The loss on (up to 32 of) the held-out images after training.
    pub heldout_loss: f64,
    /// `output.dir/ae_decoder.safetensors` (use as `model.pretrained_generator`).
    pub decoder: PathBuf,
    /// `output.dir/ae_encoder.safetensors`.
    pub encoder: PathBuf,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Trains the autoencoder of `config` (`[autoencoder]` keys; the decoder is
/// `model.generator`, which must be `kind = "decoder32"`) on the configured data
/// (the training split of `eval.holdout_fraction`), calling `progress(it, total,
/// loss)` after every iteration, and writes to `output.dir`:
/// `ae_decoder.safetensors`, `ae_encoder.safetensors`, `ae_metrics.jsonl` (the
/// loss every 50 iterations) and `ae_reconstructions.png` (top half held-out
/// data, bottom half their reconstructions).
///
/// # Errors
/// [`Error::Config`] without a generator; data, model, backend and I/O errors.
pub fn pretrain_autoencoder<B: BuildNets>(
    be: B,
    config: &Config,
    progress: &mut dyn FnMut(u64, u64, f64),
) -> Result<AePretrained> {
    let dec_arch = config.model.generator.clone().ok_or_else(|| {
        Error::Config(
            "autoencoder pretraining needs [model.generator] (kind = \"decoder32\")".into(),
        )
    })?;
    let data = config.data.load()?;
    let (train, held) = data.split(f64::from(config.eval.holdout_fraction), config.seed)?;
    let ae_cfg = config.autoencoder.clone();
    let mut ae = Autoencoder::new(be.clone(), ae_cfg.clone(), &dec_arch, config.seed)?;
    let mut batcher = Batcher::new(train.len(), ae_cfg.batch_size, config.seed)?;
    let shape = crate::backend::shape::batched(ae_cfg.batch_size, train.sample_shape());
    let mut buf = vec![0.0f32; ae_cfg.batch_size * train.sample_len()];
    let dir = config.output.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let t0 = Instant::now();
    let mut log = String::new();
    let mut losses = Vec::with_capacity(usize::try_from(ae_cfg.steps).unwrap_or(0).min(1 << 20));
    for it in 1..=ae_cfg.steps {
        batcher.next_batch(&train, &mut buf)?;
        let x = be.from_host(&buf, &shape)?;
        let loss = ae.step(&x, &mut SeededNoise)?;
        losses.push(loss);
        if it % 50 == 0 || it == ae_cfg.steps {
            log.push_str(&format!("{{\"step\":{it},\"loss\":{loss}}}\n"));
        }
        progress(it, ae_cfg.steps, loss);
    }
    crate::fsutil::write_atomic(&dir.join("ae_metrics.jsonl"), log.as_bytes())?;
    let meta = std::collections::HashMap::new();
    let decoder = dir.join("ae_decoder.safetensors");
    let encoder = dir.join("ae_encoder.safetensors");
    crate::weights::save_params(ae.decoder.params(), &be, &decoder, &meta)?;
    crate::weights::save_params(ae.encoder.params(), &be, &encoder, &meta)?;
    let n = 32.min(held.len());
    let xs = crate::backend::shape::batched(n, held.sample_shape());
    let x = be.from_host(&held.data()[..n * held.sample_len()], &xs)?;
    let recon = be.to_host(&ae.reconstruct(&x)?)?;
    let mut both = held.data()[..n * held.sample_len()].to_vec();
    both.extend_from_slice(&recon);
    let mut s2 = xs.clone();
    s2[0] = 2 * n;
    crate::report::save_image_grid(
        dir.join("ae_reconstructions.png"),
        &both,
        &s2,
        &Default::default(),
    )?;
    Ok(AePretrained {
        losses,
        heldout_loss: ae.eval_loss(&x)?,
        decoder,
        encoder,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
