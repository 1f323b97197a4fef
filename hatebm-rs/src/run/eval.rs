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
//! * Images, when a fixed classifier applies (`eval.classifier`;
//!   [`crate::metrics::Classifier`]): the same Fréchet distances in its
//!   feature space, k-NN precision/recall there, and the predicted-class
//!   histogram with its entropy — each next to its *floor*, a training subset
//!   of the same size scored the same way.
//! * Samples are scored as the chains leave them, *not* clamped to the
//!   data's range (clamping is an export step, `sample.clamp`, that moves
//!   probability mass onto the range's edges and so biases the metrics); the
//!   report gives the fraction of values that saving would clamp.
//! * 2-D toys: per-mode coverage and MMD² / energy distance to held-out data.

use rand::Rng;
use serde::Serialize;

use crate::metrics::{
    self, ClassHistogram, Classifier, CoverageConfig, FeatureSpace, MemorizationConfig, Pca,
};
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
    /// Fraction of the samples' values outside the data's range: what saving
    /// them would clamp (`sample.clamp`; the metrics score them unclamped).
    pub clamped_fraction: f64,
    /// The classifier-feature metrics, when a classifier applies.
    pub classifier: Option<ClassifierReport>,
    /// Seconds spent evaluating.
    pub seconds: f64,
}

/// Metrics in a fixed classifier's feature space, each with its floor (a
/// random training subset of the same size as the samples, scored the same
/// way against the held-out split).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClassifierReport {
    /// The classifier ([`Classifier::describe`]).
    pub classifier: String,
    /// Its accuracy on this run's held-out split (when it has labels).
    pub heldout_accuracy: Option<f64>,
    /// Fréchet distances to the held-out split in its features, by sample
    /// source (the sources of [`EvalReport::frechet`]; `training_data` is the floor).
    pub frechet: Vec<(String, f64)>,
    /// k-NN precision of the samples (k = 3) in its features.
    pub precision: Option<f64>,
    /// k-NN recall of the samples.
    pub recall: Option<f64>,
    /// The floor of the precision (the training subset's).
    pub floor_precision: Option<f64>,
    /// The floor of the recall.
    pub floor_recall: Option<f64>,
    /// The samples' predicted classes.
    pub classes: Option<ClassHistogram>,
    /// The training subset's predicted classes (the floor).
    pub floor_classes: Option<ClassHistogram>,
}

impl ClassifierReport {
    /// The Fréchet distance of a source, if computed.
    pub fn fd(&self, source: &str) -> Option<f64> {
        self.frechet
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, v)| *v)
    }
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
            clamp: false,
            ..self.config.sample.clone()
        };
        let (samples, _) = self.sample(&opts)?;
        let mut report = EvalReport {
            iteration: self.trainer.iteration(),
            num_samples: n,
            num_heldout: held.len(),
            clamped_fraction: super::outside_fraction(&self.config, &samples),
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
        let gen_samples = if self.trainer.generator().is_some() {
            let g_opts = SampleOptions {
                n,
                steps: Some(0),
                seed: self.config.sample.seed ^ 0xe7a1,
                clamp: false,
                ..self.config.sample.clone()
            };
            Some(self.sample(&g_opts)?.0)
        } else {
            None
        };
        let k = d.min(32);
        let pca = self.fitted_pca(d)?;
        let classifier = self.eval_classifier(d)?;
        let train = &self.train_data;
        let kept: f64 = pca.explained_variance_ratio().iter().sum();
        report.feature_space = format!(
            "pca{k} (fitted on {} training samples, {:.1} % of the variance)",
            train.len(),
            100.0 * kept
        );
        // The sample sources, each compared with the held-out split.
        let mut sources: Vec<(&str, Vec<f32>, usize)> = vec![("samples", samples.to_vec(), n)];
        if let Some(g) = gen_samples {
            sources.push(("generator_no_mcmc", g, n));
        }
        // Noise baselines (host RNG from the Eval stream).
        let mut rng = NoiseKey::new(self.config.seed, Stream::Eval, [1, 0]).host_rng();
        let std_normal: Vec<f32> = (0..n * d)
            .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect();
        sources.push(("noise_standard_normal", std_normal, n));
        let (mean, sd) = per_pixel_moments(train.data(), train.len(), d);
        let pixel_gauss: Vec<f32> = (0..n * d)
            .map(|i| mean[i % d] + sd[i % d] * rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect();
        sources.push(("noise_per_pixel_gaussian", pixel_gauss, n));
        // A random subset of the training split (not a prefix: a split keeps the
        // data's order, and data sets such as MNIST-5k are sorted by label).
        let m = n.min(train.len());
        let rows = rand::seq::index::sample(&mut rng, train.len(), m);
        let mut subset = Vec::with_capacity(m * d);
        for i in rows.iter() {
            subset.extend_from_slice(&train.data()[i * d..(i + 1) * d]);
        }
        sources.push(("training_data", subset, m));
        let space = FeatureSpace::Pca(pca);
        for (name, x, rows) in &sources {
            let v = metrics::fd_in_space(&space, held.data(), x, held.len(), *rows, d)?;
            report.frechet.push(((*name).into(), v));
            if *name == "generator_no_mcmc"
                && let Some(v0) = self.fd_at_start
            {
                report.frechet.push(("generator_at_start".into(), v0));
            }
        }
        if let Some(c) = &classifier {
            report.classifier = Some(classifier_report(c, held, &sources)?);
        }
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
            clamp: false,
            ..self.config.sample.clone()
        };
        let (g, _) = self.sample(&opts)?;
        let space = FeatureSpace::Pca(self.fitted_pca(d)?);
        metrics::fd_in_space(&space, held.data(), &g, held.len(), n, d)
    }

    /// The classifier of `eval.classifier` for samples of `d` values, loaded
    /// once (`None` when none applies).
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown name, or a classifier whose input
    /// does not fit the data; classifier file errors.
    fn eval_classifier(&mut self, d: usize) -> Result<Option<Classifier>> {
        if self.eval_classifier.is_none() {
            self.eval_classifier = Some(resolve_classifier(&self.config, d)?);
        }
        Ok(self.eval_classifier.clone().flatten())
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

/// The classifier `config.eval.classifier` names for samples of `d` values.
///
/// # Errors
/// As [`Run::eval_classifier`].
pub fn resolve_classifier(config: &crate::config::Config, d: usize) -> Result<Option<Classifier>> {
    use crate::data::DataSpec;
    let name = config.eval.classifier.as_str();
    let c = match name {
        "none" => return Ok(None),
        "auto" => match &config.data {
            DataSpec::Digits {} => Classifier::builtin("digits_mlp")?,
            DataSpec::Mnist5k {
                pad_to_32: true, ..
            } => Classifier::builtin("mnist5k_mlp")?,
            _ => return Ok(None),
        },
        "digits_mlp" | "mnist5k_mlp" => Classifier::builtin(name)?,
        path => Classifier::load(std::path::Path::new(path))?,
    };
    if c.input_dim() != d {
        return Err(Error::Config(format!(
            "eval.classifier: {} reads {} values per sample, the data has {d}",
            c.name(),
            c.input_dim()
        )));
    }
    Ok(Some(c))
}

/// The classifier-feature metrics of `sources` (the first is the model's
/// samples, `training_data` the floor) against `held`.
fn classifier_report(
    c: &Classifier,
    held: &crate::data::Dataset,
    sources: &[(&str, Vec<f32>, usize)],
) -> Result<ClassifierReport> {
    let d = held.sample_len();
    let mut r = ClassifierReport {
        classifier: c.describe(),
        heldout_accuracy: held
            .labels()
            .map(|l| c.accuracy(held.data(), l, held.len()))
            .transpose()?,
        ..Default::default()
    };
    let space = FeatureSpace::Classifier(Box::new(c.clone()));
    let real_f = space.features(held.data(), held.len(), d)?;
    let kd = space.out_dim(d);
    let k = metrics::DEFAULT_K;
    for (name, x, rows) in sources {
        let f = space.features(x, *rows, d)?;
        r.frechet.push((
            (*name).into(),
            metrics::frechet_distance(&real_f, held.len(), &f, *rows, kd)?,
        ));
        let pr = (held.len() > k && *rows > k)
            .then(|| metrics::precision_recall(&real_f, held.len(), &f, *rows, kd, k))
            .transpose()?;
        let hist = ClassHistogram::new(&c.predict(x, *rows)?, c.classes());
        match *name {
            "samples" => {
                r.precision = pr.as_ref().map(|p| p.precision);
                r.recall = pr.as_ref().map(|p| p.recall);
                r.classes = Some(hist);
            }
            "training_data" => {
                r.floor_precision = pr.as_ref().map(|p| p.precision);
                r.floor_recall = pr.as_ref().map(|p| p.recall);
                r.floor_classes = Some(hist);
            }
            _ => {}
        }
    }
    Ok(r)
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
