//! 2-D toy distributions for mode-coverage experiments, sampled reproducibly.
//!
//! | kind | default geometry | labels |
//! |---|---|---|
//! | `ring8` | 8 Gaussians on a circle of radius 2.0, std 0.02 | mode index 0..8 |
//! | `grid25` | 5×5 Gaussians at {−4, −2, 0, 2, 4}², std 0.05 | mode index 0..25 |
//! | `two_moons` | scikit-learn's `make_moons`, centred and doubled (≈ [−3, 3] × [−1.5, 1.5]), noise std 0.1 | moon 0 (upper) / 1 (lower) |
//! | `swiss_roll` | `make_swiss_roll` (x, z) / 5 (≈ [−2.8, 3]²), noise std 0.2 | none |
//! | `checkerboard` | 8 filled cells of a 4×4 board on [−4, 4]² (as in FFJORD) | none |
//!
//! The ring and grid defaults are the usual ones of the mode-collapse literature
//! (Unrolled GAN, VEEGAN, PacGAN): modes well separated relative to their std, so a
//! sample within 3 std of a centre is unambiguously "on" that mode. Modes are drawn
//! uniformly; [`ToyDistribution::mode_centres`] and [`ToyDistribution::mode_std`]
//! give what a coverage metric needs.

use std::f32::consts::PI;
use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::{Error, Result};

/// The named toy distributions, as written in configuration files
/// (`ring8`, `grid25`, `two_moons`, `swiss_roll`, `checkerboard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToyKind {
    /// 8 Gaussians on a ring.
    Ring8,
    /// A 5×5 grid of Gaussians.
    Grid25,
    /// Two interleaved half circles.
    TwoMoons,
    /// A 2-D swiss roll spiral.
    SwissRoll,
    /// Uniform on the filled cells of a checkerboard.
    Checkerboard,
}

impl ToyKind {
    /// All kinds, in documentation order.
    pub const ALL: [ToyKind; 5] = [
        ToyKind::Ring8,
        ToyKind::Grid25,
        ToyKind::TwoMoons,
        ToyKind::SwissRoll,
        ToyKind::Checkerboard,
    ];

    /// The configuration name, e.g. `two_moons`.
    pub fn name(self) -> &'static str {
        match self {
            ToyKind::Ring8 => "ring8",
            ToyKind::Grid25 => "grid25",
            ToyKind::TwoMoons => "two_moons",
            ToyKind::SwissRoll => "swiss_roll",
            ToyKind::Checkerboard => "checkerboard",
        }
    }

    /// The distribution with this kind's default parameters.
    pub fn distribution(self) -> ToyDistribution {
        match self {
            ToyKind::Ring8 => ToyDistribution::ring8(),
            ToyKind::Grid25 => ToyDistribution::grid25(),
            ToyKind::TwoMoons => ToyDistribution::TwoMoons { noise: 0.1 },
            ToyKind::SwissRoll => ToyDistribution::SwissRoll { noise: 0.2 },
            ToyKind::Checkerboard => ToyDistribution::Checkerboard,
        }
    }
}

impl fmt::Display for ToyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ToyKind {
    type Err = Error;

    /// Parses a configuration name (`ring8`, `grid25`, `two_moons`, `swiss_roll`,
    /// `checkerboard`).
    fn from_str(s: &str) -> Result<Self> {
        ToyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ToyKind::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown toy distribution `{s}` (known: {})",
                    names.join(", ")
                ))
            })
    }
}

/// A 2-D toy distribution with its parameters. Samples are `[2]` vectors `(x, y)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToyDistribution {
    /// `modes` isotropic Gaussians with std `std`, centred at angles `2πk / modes`
    /// on a circle of radius `radius`.
    Ring {
        /// Number of modes, 1..=256.
        modes: usize,
        /// Circle radius.
        radius: f32,
        /// Per-coordinate standard deviation of each mode.
        std: f32,
    },
    /// `side × side` isotropic Gaussians on a square grid centred at the origin,
    /// `spacing` apart.
    Grid {
        /// Modes per side, 1..=16.
        side: usize,
        /// Distance between neighbouring centres.
        spacing: f32,
        /// Per-coordinate standard deviation of each mode.
        std: f32,
    },
    /// scikit-learn's two moons, centred at the origin and scaled by 2, plus
    /// Gaussian noise of std `noise` (in output units).
    TwoMoons {
        /// Noise standard deviation.
        noise: f32,
    },
    /// The swiss roll of FFJORD's toy data: `t = 1.5π (1 + 2u)`, `(t cos t, t sin t) / 5`,
    /// plus Gaussian noise of std `noise` (in output units).
    SwissRoll {
        /// Noise standard deviation.
        noise: f32,
    },
    /// FFJORD's checkerboard: uniform on 8 of the 16 cells of a 4×4 board covering
    /// `[-4, 4]²` (cells of side 2).
    Checkerboard,
}

impl ToyDistribution {
    /// 8 Gaussians on a circle of radius 2.0 with std 0.02.
    pub fn ring8() -> Self {
        ToyDistribution::Ring {
            modes: 8,
            radius: 2.0,
            std: 0.02,
        }
    }

    /// 25 Gaussians at `{-4, -2, 0, 2, 4}²` with std 0.05.
    pub fn grid25() -> Self {
        ToyDistribution::Grid {
            side: 5,
            spacing: 2.0,
            std: 0.05,
        }
    }

    /// A short descriptive name, e.g. `ring8` or `ring12(r=3,std=0.1)` for
    /// non-default parameters.
    pub fn name(&self) -> String {
        for k in ToyKind::ALL {
            if k.distribution() == *self {
                return k.name().to_owned();
            }
        }
        match *self {
            ToyDistribution::Ring { modes, radius, std } => {
                format!("ring{modes}(r={radius},std={std})")
            }
            ToyDistribution::Grid { side, spacing, std } => {
                format!("grid{}(spacing={spacing},std={std})", side * side)
            }
            ToyDistribution::TwoMoons { noise } => format!("two_moons(noise={noise})"),
            ToyDistribution::SwissRoll { noise } => format!("swiss_roll(noise={noise})"),
            ToyDistribution::Checkerboard => "checkerboard".to_owned(),
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a mode count out of range, or a radius,
    /// spacing, std or noise that is negative or not finite.
    pub fn validate(&self) -> Result<()> {
        let nonneg = |what: &str, v: f32| {
            crate::ensure!(
                v.is_finite() && v >= 0.0,
                "toy {what} must be finite and >= 0, got {v}"
            );
            Ok(())
        };
        match *self {
            ToyDistribution::Ring { modes, radius, std } => {
                crate::ensure!(
                    (1..=256).contains(&modes),
                    "ring modes must be 1..=256, got {modes}"
                );
                nonneg("radius", radius)?;
                nonneg("std", std)
            }
            ToyDistribution::Grid { side, spacing, std } => {
                crate::ensure!(
                    (1..=16).contains(&side),
                    "grid side must be 1..=16, got {side}"
                );
                nonneg("spacing", spacing)?;
                nonneg("std", std)
            }
            ToyDistribution::TwoMoons { noise } | ToyDistribution::SwissRoll { noise } => {
                nonneg("noise", noise)
            }
            ToyDistribution::Checkerboard => Ok(()),
        }
    }

    /// The centres of the Gaussian modes (ring: counter-clockwise from `(radius, 0)`;
    /// grid: index `ix * side + iy`, x and y increasing), or `None` for the
    /// distributions without discrete modes. The labels of [`sample`](Self::sample)
    /// index into this list.
    pub fn mode_centres(&self) -> Option<Vec<[f32; 2]>> {
        match *self {
            ToyDistribution::Ring { modes, radius, .. } => Some(
                (0..modes)
                    .map(|k| {
                        let a = 2.0 * PI * k as f32 / modes as f32;
                        [radius * a.cos(), radius * a.sin()]
                    })
                    .collect(),
            ),
            ToyDistribution::Grid { side, spacing, .. } => {
                let off = (side as f32 - 1.0) / 2.0;
                Some(
                    (0..side * side)
                        .map(|k| {
                            let (ix, iy) = (k / side, k % side);
                            [(ix as f32 - off) * spacing, (iy as f32 - off) * spacing]
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }

    /// The per-coordinate std of each mode (ring and grid), else `None`.
    pub fn mode_std(&self) -> Option<f32> {
        match *self {
            ToyDistribution::Ring { std, .. } | ToyDistribution::Grid { std, .. } => Some(std),
            _ => None,
        }
    }

    /// Draws `n` samples: `(points, labels)` with `points` `[n, 2]` row-major and
    /// labels the mode index (ring, grid) or moon (two moons, 0 = upper), `None`
    /// for the others. Deterministic given the generator's state.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn sample<R: Rng + ?Sized>(
        &self,
        n: usize,
        rng: &mut R,
    ) -> Result<(Vec<f32>, Option<Vec<u8>>)> {
        self.validate()?;
        let mut pts = Vec::with_capacity(2 * n);
        let mut labels = Vec::with_capacity(n);
        let normal = |rng: &mut R| -> f32 { rng.sample(StandardNormal) };
        match *self {
            ToyDistribution::Ring { std, .. } | ToyDistribution::Grid { std, .. } => {
                let centres = self.mode_centres().expect("ring and grid have modes");
                for _ in 0..n {
                    let k = rng.random_range(0..centres.len());
                    let [cx, cy] = centres[k];
                    pts.push(cx + std * normal(rng));
                    pts.push(cy + std * normal(rng));
                    labels.push(k as u8);
                }
            }
            ToyDistribution::TwoMoons { noise } => {
                for _ in 0..n {
                    let t = PI * rng.random::<f32>();
                    let lower = rng.random_bool(0.5);
                    let (x, y) = if lower {
                        (1.0 - t.cos(), 0.5 - t.sin())
                    } else {
                        (t.cos(), t.sin())
                    };
                    pts.push(2.0 * (x - 0.5) + noise * normal(rng));
                    pts.push(2.0 * (y - 0.25) + noise * normal(rng));
                    labels.push(u8::from(lower));
                }
            }
            ToyDistribution::SwissRoll { noise } => {
                for _ in 0..n {
                    let t = 1.5 * PI * (1.0 + 2.0 * rng.random::<f32>());
                    pts.push(t * t.cos() / 5.0 + noise * normal(rng));
                    pts.push(t * t.sin() / 5.0 + noise * normal(rng));
                }
            }
            ToyDistribution::Checkerboard => {
                for _ in 0..n {
                    let x1 = rng.random::<f32>() * 4.0 - 2.0;
                    let row = if rng.random_bool(0.5) { -2.0 } else { 0.0 };
                    let x2 = rng.random::<f32>() + row + x1.floor().rem_euclid(2.0);
                    pts.push(2.0 * x1);
                    pts.push(2.0 * x2);
                }
            }
        }
        let labels = matches!(
            self,
            ToyDistribution::Ring { .. }
                | ToyDistribution::Grid { .. }
                | ToyDistribution::TwoMoons { .. }
        )
        .then_some(labels);
        Ok((pts, labels))
    }

    /// [`sample`](Self::sample) from `ChaCha8Rng::seed_from_u64(seed)`: the same
    /// `(distribution, n, seed)` gives the same points on every platform.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn sample_seeded(&self, n: usize, seed: u64) -> Result<(Vec<f32>, Option<Vec<u8>>)> {
        self.sample(n, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// `n` seeded samples as a [`Dataset`] of `[2]` samples named [`name`](Self::name).
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn dataset(&self, n: usize, seed: u64) -> Result<Dataset> {
        let (pts, labels) = self.sample_seeded(n, seed)?;
        Dataset::from_f32(self.name(), pts, vec![2], labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(labels: &[u8], k: usize) -> Vec<usize> {
        let mut c = vec![0; k];
        labels.iter().for_each(|&l| c[usize::from(l)] += 1);
        c
    }

    #[test]
    fn mode_frequencies_are_roughly_uniform_and_points_near_centres() {
        for dist in [ToyDistribution::ring8(), ToyDistribution::grid25()] {
            let n = 25_000;
            let (pts, labels) = dist.sample_seeded(n, 1).unwrap();
            let labels = labels.unwrap();
            let centres = dist.mode_centres().unwrap();
            let k = centres.len();
            let expect = n as f64 / k as f64;
            for c in counts(&labels, k) {
                // ±5 binomial standard deviations.
                let sd = (expect * (1.0 - 1.0 / k as f64)).sqrt();
                assert!(
                    (c as f64 - expect).abs() < 5.0 * sd,
                    "{} {c} vs {expect}",
                    dist.name()
                );
            }
            let std = dist.mode_std().unwrap();
            for (p, &l) in pts.chunks(2).zip(&labels) {
                let [cx, cy] = centres[usize::from(l)];
                assert!(((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt() < 6.0 * std);
            }
        }
    }

    #[test]
    fn centres_have_the_documented_geometry() {
        let r = ToyDistribution::ring8().mode_centres().unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!(r[0], [2.0, 0.0]);
        assert!((r[2][0]).abs() < 1e-6 && (r[2][1] - 2.0).abs() < 1e-6);
        let g = ToyDistribution::grid25().mode_centres().unwrap();
        assert_eq!(
            (g[0], g[1], g[24]),
            ([-4.0, -4.0], [-4.0, -2.0], [4.0, 4.0])
        );
        assert!(ToyDistribution::Checkerboard.mode_centres().is_none());
    }

    #[test]
    fn other_shapes_stay_in_their_ranges() {
        let (p, l) = ToyKind::TwoMoons
            .distribution()
            .sample_seeded(4000, 2)
            .unwrap();
        let c = counts(&l.unwrap(), 2);
        assert!(c[0] > 1800 && c[1] > 1800, "{c:?}");
        assert!(p.chunks(2).all(|q| q[0].abs() < 3.6 && q[1].abs() < 2.1));
        let (p, l) = ToyKind::SwissRoll
            .distribution()
            .sample_seeded(4000, 3)
            .unwrap();
        assert!(l.is_none());
        assert!(p.chunks(2).all(|q| q[0].abs() < 4.0 && q[1].abs() < 4.0));
        let (p, _) = ToyDistribution::Checkerboard
            .sample_seeded(4000, 4)
            .unwrap();
        for q in p.chunks(2) {
            assert!(q[0].abs() <= 4.0 && q[1].abs() <= 4.0);
            // Filled cells are those whose (column + row) index sum is even.
            let (cx, cy) = ((q[0] / 2.0).floor() as i32, (q[1] / 2.0).floor() as i32);
            assert_eq!((cx + cy).rem_euclid(2), 0, "{q:?}");
        }
    }

    #[test]
    fn seeded_sampling_is_deterministic() {
        for k in ToyKind::ALL {
            let d = k.distribution();
            assert_eq!(
                d.sample_seeded(50, 9).unwrap(),
                d.sample_seeded(50, 9).unwrap()
            );
            assert_ne!(
                d.sample_seeded(50, 9).unwrap().0,
                d.sample_seeded(50, 10).unwrap().0
            );
            let ds = d.dataset(50, 9).unwrap();
            assert_eq!(
                (ds.len(), ds.sample_shape(), ds.name()),
                (50, &[2][..], k.name())
            );
        }
    }

    #[test]
    fn names_parse_and_params_validate() {
        for k in ToyKind::ALL {
            assert_eq!(k.name().parse::<ToyKind>().unwrap(), k);
        }
        let e = "ring".parse::<ToyKind>().unwrap_err().to_string();
        assert!(e.contains("ring8, grid25"), "{e}");
        let bad = ToyDistribution::Ring {
            modes: 0,
            radius: 1.0,
            std: 0.1,
        };
        assert!(bad.dataset(1, 0).is_err());
        assert!(
            ToyDistribution::TwoMoons { noise: f32::NAN }
                .validate()
                .is_err()
        );
        let custom = ToyDistribution::Ring {
            modes: 12,
            radius: 3.0,
            std: 0.1,
        };
        assert_eq!(custom.name(), "ring12(r=3,std=0.1)");
    }
}
