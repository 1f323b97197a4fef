//! The OOD report (`ood.json` of `hatebm ood`): for each OOD set built from an
//! in-distribution batch, the AUROC of the energy score and of the
//! gradient-norm score against that batch, and the mean of each score.

use serde::Serialize;

use super::ood::{OodScores, auroc, mean};
use super::ood_sets::{ImageBatch, OodKind, build_ood_set};
use crate::{Error, Result};

/// One OOD set against the in-distribution batch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OodSetReport {
    /// The set ([`OodKind::name`]).
    pub name: String,
    /// AUROC of the energy score (in `[0, 1]`; 0.5 is chance; higher energy
    /// = more OOD, see [`super::ood`]).
    pub auroc_energy: f64,
    /// AUROC of the gradient-norm score (higher `‖∇ₓU‖` = more OOD).
    pub auroc_grad_norm: f64,
    /// Mean energy of the set (model units).
    pub mean_energy: f64,
    /// Mean gradient norm of the set.
    pub mean_grad_norm: f64,
}

/// Every OOD set against one in-distribution batch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OodReport {
    /// Number of in-distribution images (and of images per OOD set).
    pub num_samples: usize,
    /// Seed of the noise sets.
    pub seed: u64,
    /// Mean energy of the in-distribution batch.
    pub mean_energy_in: f64,
    /// Mean gradient norm of the in-distribution batch.
    pub mean_grad_norm_in: f64,
    /// One entry per OOD set, in the order asked for.
    pub sets: Vec<OodSetReport>,
}

/// Scores `batch` and each OOD set of `kinds` built from it with `score`
/// (`score(x, n)` returns the scores of the `n` images in `x`, e.g.
/// [`crate::runtime::AnyModel::scores`]), and compares them.
///
/// # Errors
/// As [`build_ood_set`] and [`auroc`] (a non-finite score is
/// [`Error::NonFinite`]); [`Error::ShapeMismatch`] when `score` returns the
/// wrong number of scores; whatever `score` returns.
pub fn ood_report(
    batch: &ImageBatch<'_>,
    kinds: &[OodKind],
    seed: u64,
    score: &mut dyn FnMut(&[f32], usize) -> Result<OodScores>,
) -> Result<OodReport> {
    batch.validate()?;
    let mut scored = |what: &str, x: &[f32]| -> Result<OodScores> {
        let s = score(x, batch.n)?;
        if s.energy.len() != batch.n || s.grad_norm.len() != batch.n {
            return Err(Error::shape(
                format!("OOD scores of {what}"),
                &[batch.n, batch.n],
                &[s.energy.len(), s.grad_norm.len()],
            ));
        }
        Ok(s)
    };
    let in_s = scored("the in-distribution batch", batch.data)?;
    let mut sets = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let x = build_ood_set(kind, batch, seed)?;
        let s = scored(kind.name(), &x)?;
        sets.push(OodSetReport {
            name: kind.name().to_owned(),
            auroc_energy: auroc(&in_s.energy, &s.energy)?,
            auroc_grad_norm: auroc(&in_s.grad_norm, &s.grad_norm)?,
            mean_energy: mean(&s.energy).unwrap_or(f64::NAN),
            mean_grad_norm: mean(&s.grad_norm).unwrap_or(f64::NAN),
        });
    }
    Ok(OodReport {
        num_samples: batch.n,
        seed,
        mean_energy_in: mean(&in_s.energy).unwrap_or(f64::NAN),
        mean_grad_norm_in: mean(&in_s.grad_norm).unwrap_or(f64::NAN),
        sets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in model: energy = mean |x − 0.5|, gradient norm = the image's
    /// left-right asymmetry.
    fn toy_scores(x: &[f32], n: usize) -> Result<OodScores> {
        let d = x.len() / n;
        let energy = x
            .chunks_exact(d)
            .map(|img| img.iter().map(|v| (v - 0.5).abs()).sum::<f32>() / d as f32)
            .collect();
        let grad_norm = x
            .chunks_exact(d)
            .map(|img| (img[0] - img[d - 1]).abs())
            .collect();
        Ok(OodScores { energy, grad_norm })
    }

    #[test]
    fn report_covers_every_set_with_aurocs_in_range() {
        // 20 images of 1 x 4 x 4, values near 0.5, brighter on the right
        // (dyadic values, so every sum is exact in any order).
        let x: Vec<f32> = (0..20 * 16)
            .map(|i| 0.25 + 0.125 * (i % 4) as f32 + (i / 16) as f32 / 1024.0)
            .collect();
        let b = ImageBatch {
            data: &x,
            n: 20,
            dims: [1, 4, 4],
            range: (0.0, 1.0),
        };
        let r = ood_report(&b, &OodKind::ALL, 1, &mut toy_scores).unwrap();
        assert_eq!(r.num_samples, 20);
        assert_eq!(r.sets.len(), OodKind::ALL.len());
        for s in &r.sets {
            assert!((0.0..=1.0).contains(&s.auroc_energy), "{s:?}");
            assert!((0.0..=1.0).contains(&s.auroc_grad_norm), "{s:?}");
        }
        // Uniform noise is far from 0.5 on average: the energy sees it.
        assert_eq!(r.sets[0].name, "uniform");
        assert!(r.sets[0].auroc_energy > 0.95, "{:?}", r.sets[0]);
        // A flip keeps |x − 0.5| and the asymmetry's magnitude: chance.
        assert_eq!(r.sets[2].auroc_energy, 0.5);
        assert_eq!(r.sets[2].auroc_grad_norm, 0.5);
    }

    #[test]
    fn a_scorer_returning_the_wrong_count_is_an_error() {
        let x = vec![0.0f32; 8];
        let b = ImageBatch {
            data: &x,
            n: 2,
            dims: [1, 2, 2],
            range: (-1.0, 1.0),
        };
        let e = ood_report(&b, &[OodKind::Invert], 0, &mut |_, _| {
            Ok(OodScores {
                energy: vec![0.0],
                grad_norm: vec![0.0, 0.0],
            })
        })
        .unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    }
}
