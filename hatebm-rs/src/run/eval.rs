//! End-of-run evaluation (`eval.json`): how close samples are to held-out
//! data, next to reference points that put the number in context.
//!
//! * Images: the Fréchet distance in a fixed feature space — PCA with
//!   `min(32, d)` components fitted on the *training* split with a fixed seed
//!   (see `docs/metrics.md` for why PCA) — for the model's samples, the
//!   generator's initial samples `G(z)` (no MCMC), two noise baselines
//!   (standard normal; independent per-pixel Gaussians with the data's mean and
//!   variance, which matches every first and second *per-pixel* moment but no
//!   correlation), and a random subset of the training split (the floor a perfect model
//!   reaches with this many samples). Plus k-NN precision/recall and a
//!   memorisation check in the same space.
//! * 2-D toys: per-mode coverage and MMD² / energy distance to held-out data.

use rand::Rng;
use serde::Serialize;

use crate::metrics::{self, CoverageConfig, FeatureSpace, MemorizationConfig, Pca};
use crate::nets::BuildNets;
use crate::noise::{NoiseKey, Stream};
use crate::train::SampleOptions;
use crate::{Error, Result};

use super::Run;

/// The evaluation report (written to `eval.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Iteration evaluated.
    pub iteration: u64,
    /// Number of model samples.
    pub num_samples: usize,
    /// Number of held-out samples.
    pub num_heldout: usize,
    /// The feature space, e.g. `pca32 (fitted on 1528 training images, 87.1 % of variance)`.
    pub feature_space: String,
    /// Fréchet distances to the held-out split, by sample source.
    pub frechet: Vec<(String, f64)>,
    /// k-NN precision of the model's samples (k = 3, feature space).
    pub precision: Option<f64>,
    /// k-NN recall of the model's samples.
    pub recall: Option<f64>,
    /// Memorisation: nearest-training-neighbour distance ratio (5th percentiles,
    /// samples / held-out data) and the verdict.
    pub memorization_ratio_p5: Option<f64>,
    /// Whether memorisation is suspected (`ratio_p5 < 0.5`).
    pub memorization_suspected: Option<bool>,
    /// 2-D toys: per-mode sample fractions.
    pub mode_fractions: Option<Vec<f64>>,
    /// 2-D toys: fraction of samples within 3σ of a mode.
    pub within_3sigma: Option<f64>,
    /// 2-D toys: modes holding at least the coverage threshold.
    pub modes_covered: Option<usize>,
    /// 2-D toys: MMD² (RBF, median-heuristic multi-bandwidth) to held-out data.
    pub mmd2: Option<f64>,
    /// 2-D toys: energy distance to held-out data.
    pub energy_distance: Option<f64>,
    /// Seconds spent evaluating.
    pub seconds: f64,
}

impl EvalReport {
    /// The Fréchet distance of a source, if computed.
    pub fn fd(&self, source: &str) -> Option<f64> {
        self.frechet
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, v)| *v)
    }
}

impl<B: BuildNets> Run<B> {
    /// Evaluates the current model against the held-out split (see the module
    /// docs) with `config.eval.num_samples` samples.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a held-out split or with zero samples;
    /// model, backend and metric errors.
    pub fn evaluate(&mut self) -> Result<EvalReport> {
        let t0 = std::time::Instant::now();
        let n = self.config.eval.num_samples;
        let held = self
            .heldout
            .as_ref()
            .ok_or_else(|| {
                Error::InvalidArgument("evaluation needs eval.holdout_fraction > 0".into())
            })?
            .clone();
        if n == 0 || held.is_empty() {
            return Err(Error::InvalidArgument(
                "evaluation needs eval.num_samples > 0 and held-out data".into(),
            ));
        }
        let d = held.sample_len();
        let opts = SampleOptions {
            n,
            seed: self.config.sample.seed ^ 0xe7a1,
            ..self.config.sample.clone()
        };
        let (samples, _) = self.sample(&opts)?;
        let mut report = EvalReport {
            iteration: self.trainer.iteration,
            num_samples: n,
            num_heldout: held.len(),
            ..Default::default()
        };
        if d == 2 {
            self.eval_toy(&samples, n, &held, &mut report)?;
        } else {
            self.eval_images(&samples, n, &held, &mut report)?;
        }
        report.seconds = t0.elapsed().as_secs_f64();
        log::info!(
            "evaluation at iteration {} ({}, {n} samples vs {} held out, {:.1} s): {}",
            report.iteration,
            report.feature_space,
            report.num_heldout,
            report.seconds,
            report
                .frechet
                .iter()
                .map(|(k, v)| format!("FD[{k}] = {v:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(report)
    }

    fn eval_images(
        &mut self,
        samples: &[f32],
        n: usize,
        held: &crate::data::Dataset,
        report: &mut EvalReport,
    ) -> Result<()> {
        let d = held.sample_len();
        let gen_samples = if self.trainer.generator.is_some() {
            let g_opts = SampleOptions {
                n,
                steps: Some(0),
                seed: self.config.sample.seed ^ 0xe7a1,
                ..self.config.sample.clone()
            };
            Some(self.sample(&g_opts)?.0)
        } else {
            None
        };
        let k = d.min(32);
        let pca = self.fitted_pca(d)?;
        let train = &self.train_data;
        let kept: f64 = pca.explained_variance_ratio().iter().sum();
        report.feature_space = format!(
            "pca{k} (fitted on {} training samples, {:.1} % of the variance)",
            train.len(),
            100.0 * kept
        );
        let space = FeatureSpace::Pca(pca);
        let fd =
            |x: &[f32], m: usize| metrics::fd_in_space(&space, held.data(), x, held.len(), m, d);
        report.frechet.push(("samples".into(), fd(samples, n)?));
        if let Some(g) = &gen_samples {
            report.frechet.push(("generator_no_mcmc".into(), fd(g, n)?));
        }
        if let Some(v) = self.fd_at_start {
            report.frechet.push(("generator_at_start".into(), v));
        }
        // Noise baselines (host RNG from the Eval stream).
        let mut rng = NoiseKey::new(self.config.seed, Stream::Eval, [1, 0]).host_rng();
        let std_normal: Vec<f32> = (0..n * d)
            .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect();
        report
            .frechet
            .push(("noise_standard_normal".into(), fd(&std_normal, n)?));
        let (mean, sd) = per_pixel_moments(train.data(), train.len(), d);
        let pixel_gauss: Vec<f32> = (0..n * d)
            .map(|i| mean[i % d] + sd[i % d] * rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect();
        report
            .frechet
            .push(("noise_per_pixel_gaussian".into(), fd(&pixel_gauss, n)?));
        // A random subset of the training split (not a prefix: a split keeps the
        // data's order, and data sets such as MNIST-5k are sorted by label).
        let m = n.min(train.len());
        let rows = rand::seq::index::sample(&mut rng, train.len(), m);
        let mut subset = Vec::with_capacity(m * d);
        for i in rows.iter() {
            subset.extend_from_slice(&train.data()[i * d..(i + 1) * d]);
        }
        report
            .frechet
            .push(("training_data".into(), fd(&subset, m)?));
        // Precision / recall and memorisation in the PCA space.
        let real_f = space.features(held.data(), held.len(), d)?;
        let fake_f = space.features(samples, n, d)?;
        let kd = space.out_dim(d);
        if held.len() > metrics::DEFAULT_K && n > metrics::DEFAULT_K {
            let pr =
                metrics::precision_recall(&real_f, held.len(), &fake_f, n, kd, metrics::DEFAULT_K)?;
            report.precision = Some(pr.precision);
            report.recall = Some(pr.recall);
        }
        let train_f = space.features(train.data(), train.len(), d)?;
        let mem = metrics::memorization_check(
            &train_f,
            train.len(),
            &fake_f,
            n,
            &real_f,
            held.len(),
            kd,
            &MemorizationConfig::default(),
        )?;
        report.memorization_ratio_p5 = Some(mem.ratio_p5);
        report.memorization_suspected = Some(mem.suspected);
        Ok(())
    }

    /// FD of `n` samples `G(z)` of the current generator (no MCMC) to the
    /// held-out split, in the run's PCA space.
    pub(super) fn generator_fd(&mut self, n: usize) -> Result<f64> {
        let held = self
            .heldout
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("no held-out data".into()))?
            .clone();
        let d = held.sample_len();
        if d == 2 {
            return Err(Error::InvalidArgument("FD is for image data".into()));
        }
        let opts = SampleOptions {
            n,
            steps: Some(0),
            seed: self.config.sample.seed ^ 0xe7a1,
            ..self.config.sample.clone()
        };
        let (g, _) = self.sample(&opts)?;
        let space = FeatureSpace::Pca(self.fitted_pca(d)?);
        metrics::fd_in_space(&space, held.data(), &g, held.len(), n, d)
    }

    /// The run's PCA feature space (fitted once on the training split).
    fn fitted_pca(&mut self, d: usize) -> Result<Pca> {
        if self.eval_pca.as_ref().is_none_or(|p| p.dim() != d) {
            let train = &self.train_data;
            self.eval_pca = Some(Pca::fit(
                train.data(),
                train.len(),
                d,
                d.min(32),
                self.config.seed,
            )?);
        }
        Ok(self.eval_pca.clone().expect("fitted above"))
    }

    fn eval_toy(
        &mut self,
        samples: &[f32],
        n: usize,
        held: &crate::data::Dataset,
        report: &mut EvalReport,
    ) -> Result<()> {
        report.feature_space = "raw 2-D".into();
        if let crate::data::DataSpec::Toy { name, .. } = &self.config.data {
            let dist = name.distribution();
            if let Ok(cov) =
                metrics::mode_coverage_for(&dist, samples, n, &CoverageConfig::default())
            {
                report.mode_fractions = Some(cov.fractions.clone());
                report.within_3sigma = Some(cov.within);
                report.modes_covered = Some(cov.modes_covered);
            }
        }
        let two = metrics::two_sample_distances(
            held.data(),
            held.len(),
            samples,
            n,
            2,
            &metrics::Bandwidth::default(),
        )?;
        report.mmd2 = Some(two.mmd2);
        report.energy_distance = Some(two.energy);
        Ok(())
    }
}

/// Per-pixel mean and standard deviation.
fn per_pixel_moments(data: &[f32], n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0.0f64; d];
    for row in data.chunks_exact(d).take(n) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    let mut var = vec![0.0f64; d];
    for row in data.chunks_exact(d).take(n) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    let sd = var
        .iter()
        .map(|s| (s / n.max(2).saturating_sub(1) as f64).sqrt() as f32)
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), sd)
}
