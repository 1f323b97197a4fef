//! Out-of-distribution (OOD) detection scores and the area under the ROC
//! curve between an in-distribution and an OOD score set.
//!
//! **Convention.** A score is *higher for inputs that look more OOD*. Both
//! scores a trained model gives ([`OodScores`]) follow it: the energy `U(x)`
//! (the model assigns low energy to data) and the input-gradient norm
//! `‖∇ₓU(x)‖` (data sits near minima of `U`, so the gradient is small there).
//! [`auroc`] is then the probability that a random OOD sample scores higher
//! than a random in-distribution one, ties counted as ½:
//!
//! ```text
//! AUROC = P(s_ood > s_in) + ½ · P(s_ood = s_in)
//! ```
//!
//! 1 means the score separates the sets perfectly, 0.5 is chance, and a value
//! below 0.5 means the score ranks the OOD set as *more* in-distribution than
//! the data itself (the score is informative, with the opposite sign).

use serde::Serialize;

use super::Real;
use crate::{Error, Result};

/// Per-sample OOD scores of one batch from a trained model (see the module
/// docs for the sign convention). Both vectors have one entry per sample, in
/// the order of the batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OodScores {
    /// The energy `U(x)` of each sample (the model's units: lower is more
    /// in-distribution).
    pub energy: Vec<f32>,
    /// The L2 norm `‖∇ₓU(x)‖` of each sample's input gradient (energy units
    /// per input unit; lower is more in-distribution).
    pub grad_norm: Vec<f32>,
}

/// The AUROC of telling `ood` apart from `in_dist` when a higher score means
/// more OOD (module docs), computed exactly as the Mann–Whitney U statistic
/// with average ranks for ties: `U / (n_in · n_ood)`, where `U` is the rank sum
/// of the OOD scores in the pooled set minus `n_ood (n_ood + 1) / 2`.
/// O((n + m) log(n + m)) time, O(n + m) memory; the result lies in `[0, 1]` and
/// does not depend on the order of either set.
///
/// # Errors
/// [`Error::InvalidArgument`] when either set is empty; [`Error::NonFinite`]
/// naming the set and the index of the first NaN or ±∞.
pub fn auroc<T: Real>(in_dist: &[T], ood: &[T]) -> Result<f64> {
    let a = checked("in-distribution scores", in_dist)?;
    let b = checked("OOD scores", ood)?;
    let (n, m) = (a.len(), b.len());
    // Pooled values with a flag for "from the OOD set", sorted by value.
    let mut pooled: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, false))
        .chain(b.iter().map(|&v| (v, true)))
        .collect();
    pooled.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    // Sum of the (1-based, tie-averaged) ranks of the OOD scores.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean (i + 1 + j) / 2.
        let avg = (i + 1 + j) as f64 / 2.0;
        let ood_here = pooled[i..j].iter().filter(|p| p.1).count();
        rank_sum += avg * ood_here as f64;
        i = j;
    }
    let u = rank_sum - (m as f64) * (m as f64 + 1.0) / 2.0;
    Ok((u / (n as f64 * m as f64)).clamp(0.0, 1.0))
}

/// Widens a non-empty, finite score set to `f64`.
fn checked<T: Real>(what: &str, s: &[T]) -> Result<Vec<f64>> {
    crate::ensure!(!s.is_empty(), "auroc: the {what} are empty");
    let v: Vec<f64> = s.iter().map(|x| x.to_f64()).collect();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite(format!("{what}: score {i} is {}", v[i])));
    }
    Ok(v)
}

/// The arithmetic mean of a set (in `f64`); `None` when empty.
pub fn mean<T: Real>(s: &[T]) -> Option<f64> {
    (!s.is_empty()).then(|| s.iter().map(|x| x.to_f64()).sum::<f64>() / s.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The definition, pair by pair: O(n·m).
    fn naive(a: &[f64], b: &[f64]) -> f64 {
        let mut s = 0.0;
        for &x in a {
            for &y in b {
                s += if y > x {
                    1.0
                } else if y == x {
                    0.5
                } else {
                    0.0
                };
            }
        }
        s / (a.len() * b.len()) as f64
    }

    #[test]
    fn matches_the_pair_count_on_random_sets_with_ties() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..50 {
            let n = rng.random_range(1..40);
            let m = rng.random_range(1..40);
            // Few distinct levels in some cases, so ties are frequent.
            let levels = if case % 2 == 0 { 5 } else { 1000 };
            let a: Vec<f64> = (0..n)
                .map(|_| f64::from(rng.random_range(0..levels)))
                .collect();
            let b: Vec<f64> = (0..m)
                .map(|_| f64::from(rng.random_range(0..levels)) + 0.5 * f64::from(case % 3))
                .collect();
            let got = auroc(&a, &b).unwrap();
            let want = naive(&a, &b);
            assert!((got - want).abs() < 1e-12, "case {case}: {got} vs {want}");
        }
    }

    #[test]
    fn separated_identical_and_reversed_sets() {
        let a = [0.0f32, 1.0, 2.0];
        let b = [3.0f32, 4.0];
        assert_eq!(auroc(&a, &b).unwrap(), 1.0);
        assert_eq!(auroc(&b, &a).unwrap(), 0.0);
        assert_eq!(auroc(&a, &a).unwrap(), 0.5);
        assert_eq!(auroc(&[2.0f64; 4], &[2.0f64; 7]).unwrap(), 0.5);
        // One tie among otherwise separated sets: (2·3 − ½) / 6.
        let got = auroc(&[0.0, 1.0, 2.0], &[2.0, 5.0]).unwrap();
        assert!((got - 5.5 / 6.0).abs() < 1e-15, "{got}");
    }

    #[test]
    fn order_does_not_matter() {
        let a = [0.3, -1.0, 2.0, 0.3, 7.0];
        let b = [0.3, 4.0, -2.0];
        let mut ra = a;
        ra.reverse();
        let mut rb = b;
        rb.reverse();
        assert_eq!(auroc(&a, &b).unwrap(), auroc(&ra, &rb).unwrap());
    }

    #[test]
    fn empty_and_non_finite_sets_are_typed_errors() {
        let e = auroc::<f32>(&[], &[1.0]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let e = auroc(&[1.0f32], &[]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let e = auroc(&[1.0f32, f32::NAN], &[1.0]).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e}");
        assert!(
            e.to_string().contains("in-distribution scores: score 1"),
            "{e}"
        );
        let e = auroc(&[1.0], &[f64::INFINITY]).unwrap_err();
        assert!(e.to_string().contains("OOD scores: score 0"), "{e}");
    }

    #[test]
    fn mean_of_sets() {
        assert_eq!(mean::<f32>(&[]), None);
        assert_eq!(mean(&[1.0f32, 2.0, 6.0]), Some(3.0));
    }
}
