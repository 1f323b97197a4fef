//! The in-memory [`Dataset`]: `N` samples of one shape, as `f32`, with optional labels.

use crate::{Error, Result};

use super::batcher::permutation;

/// The stream of the ChaCha generator used by [`Dataset::split`] (the batcher uses
/// the epoch number as its stream, so the two never share random numbers).
const SPLIT_STREAM: u64 = u64::MAX;

/// `N` samples of one shape held in memory as `f32`, in C order, with optional
/// `u8` class labels.
///
/// A sample's shape is `[C, H, W]` for images (channel-first; values in `[-1, 1]`
/// when built with [`Dataset::from_u8`]) or `[D]` for vector data such as the 2-D
/// toys. The sample `i` occupies `data[i * sample_len .. (i + 1) * sample_len]`.
///
/// The fields are private so that the invariants checked at construction — the
/// data length is a multiple of the sample length, every value is finite, there is
/// one label per sample — always hold; use the accessors to read them.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    data: Vec<f32>,
    sample_shape: Vec<usize>,
    labels: Option<Vec<u8>>,
    name: String,
}

impl Dataset {
    /// Builds a data set from `f32` samples laid end to end.
    ///
    /// * `sample_shape`: `[D]` or `[C, H, W]`, every dimension ≥ 1.
    /// * `data`: `N * product(sample_shape)` values, all finite (`N` may be 0).
    /// * `labels`: `None`, or exactly `N` labels.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad `sample_shape`; [`Error::ShapeMismatch`]
    /// when `data.len()` is not a multiple of the sample length or the label count
    /// differs from `N`; [`Error::NonFinite`] naming the first NaN/Inf (sample and
    /// element index).
    pub fn from_f32(
        name: impl Into<String>,
        data: Vec<f32>,
        sample_shape: Vec<usize>,
        labels: Option<Vec<u8>>,
    ) -> Result<Self> {
        let name = name.into();
        let sample_len = check_sample_shape(&name, &sample_shape)?;
        if !data.len().is_multiple_of(sample_len) {
            return Err(Error::ShapeMismatch {
                what: format!("data of `{name}`"),
                expected: format!(
                    "a multiple of {sample_len} values (sample shape {sample_shape:?})"
                ),
                got: format!("{} values", data.len()),
            });
        }
        if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite(format!(
                "data set `{name}`: sample {}, element {} is {}",
                pos / sample_len,
                pos % sample_len,
                data[pos]
            )));
        }
        let n = data.len() / sample_len;
        check_labels(&name, labels.as_deref(), n)?;
        Ok(Dataset {
            data,
            sample_shape,
            labels,
            name,
        })
    }

    /// Builds a data set from `u8` pixels (or other small integers), scaled to
    /// `[-1, 1]` by `x / max * 2 - 1` — `max` = 16 for the 8×8 digits, 255 for
    /// MNIST, CIFAR-10 and 8-bit PNGs.
    ///
    /// Shapes and labels as for [`Dataset::from_f32`].
    ///
    /// # Errors
    /// As [`Dataset::from_f32`], plus [`Error::InvalidArgument`] when `max` is not a
    /// positive finite number or a pixel exceeds `max` (it would land above 1).
    pub fn from_u8(
        name: impl Into<String>,
        pixels: &[u8],
        sample_shape: Vec<usize>,
        labels: Option<Vec<u8>>,
        max: f32,
    ) -> Result<Self> {
        let name = name.into();
        if !(max.is_finite() && max > 0.0) {
            crate::bail!("data set `{name}`: scale maximum must be positive and finite, got {max}");
        }
        if let Some(&big) = pixels.iter().find(|&&p| f32::from(p) > max) {
            crate::bail!(
                "data set `{name}`: pixel value {big} exceeds the scale maximum {max} \
                 (values are mapped by x / max * 2 - 1 into [-1, 1])"
            );
        }
        let data = pixels
            .iter()
            .map(|&p| f32::from(p) / max * 2.0 - 1.0)
            .collect();
        Self::from_f32(name, data, sample_shape, labels)
    }

    /// The data set's name (e.g. `digits`, `mnist5k/train`), used in logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the data set renamed.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// All values, `[N, ...sample_shape]` in C order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The shape of one sample: `[D]` or `[C, H, W]`.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The labels, one per sample, if the source had them.
    pub fn labels(&self) -> Option<&[u8]> {
        self.labels.as_deref()
    }

    /// Takes the data set apart: `(name, data, sample_shape, labels)`.
    pub fn into_parts(self) -> (String, Vec<f32>, Vec<usize>, Option<Vec<u8>>) {
        (self.name, self.data, self.sample_shape, self.labels)
    }

    /// The number of samples `N`.
    pub fn len(&self) -> usize {
        self.data.len() / self.sample_len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The number of values in one sample (the product of the sample shape).
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The shape of a batch of `batch` samples: `[batch, ...sample_shape]`.
    pub fn batch_shape(&self, batch: usize) -> Vec<usize> {
        let mut s = Vec::with_capacity(self.sample_shape.len() + 1);
        s.push(batch);
        s.extend_from_slice(&self.sample_shape);
        s
    }

    /// `[C, H, W]` when the samples are images, `None` for vector data.
    pub fn image_dims(&self) -> Option<[usize; 3]> {
        match self.sample_shape[..] {
            [c, h, w] => Some([c, h, w]),
            _ => None,
        }
    }

    /// The values of sample `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let s = self.sample_len();
        &self.data[i * s..(i + 1) * s]
    }

    /// The label of sample `i`, if there are labels.
    ///
    /// # Panics
    /// When there are labels and `i >= len()`.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels.as_ref().map(|l| l[i])
    }

    /// The smallest and largest value, or `None` when empty.
    pub fn value_range(&self) -> Option<(f32, f32)> {
        let first = *self.data.first()?;
        Some(
            self.data
                .iter()
                .fold((first, first), |(lo, hi), &x| (lo.min(x), hi.max(x))),
        )
    }

    /// Copies the samples `indices` (in that order, repeats allowed) into `out`,
    /// which must hold exactly `indices.len() * sample_len()` values — a batch of
    /// shape [`batch_shape(indices.len())`](Self::batch_shape).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a wrongly sized `out`; [`Error::InvalidArgument`]
    /// for an index `>= len()`.
    pub fn gather(&self, indices: &[usize], out: &mut [f32]) -> Result<()> {
        let s = self.sample_len();
        if out.len() != indices.len() * s {
            return Err(Error::shape(
                format!("gather output for `{}`", self.name),
                &self.batch_shape(indices.len()),
                &[out.len()],
            ));
        }
        self.check_indices(indices)?;
        for (dst, &i) in out.chunks_exact_mut(s).zip(indices) {
            dst.copy_from_slice(&self.data[i * s..(i + 1) * s]);
        }
        Ok(())
    }

    /// The labels of the samples `indices`, or `None` when the data set has none.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an index `>= len()`.
    pub fn gather_labels(&self, indices: &[usize]) -> Result<Option<Vec<u8>>> {
        self.check_indices(indices)?;
        Ok(self
            .labels
            .as_ref()
            .map(|l| indices.iter().map(|&i| l[i]).collect()))
    }

    /// A new data set with the samples `indices` (in that order), named like this one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an index `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let mut data = vec![0.0; indices.len() * self.sample_len()];
        self.gather(indices, &mut data)?;
        Ok(Dataset {
            data,
            sample_shape: self.sample_shape.clone(),
            labels: self.gather_labels(indices)?,
            name: self.name.clone(),
        })
    }

    /// Pads every image by `p` pixels of `value` on each side: `[C, H, W]` becomes
    /// `[C, H + 2p, W + 2p]` — e.g. `pad(2, -1.0)` turns 28×28 MNIST into the 32×32
    /// input of the SNGAN networks with background-coloured borders.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the samples are not images (`[D]`) or `value`
    /// is not finite.
    pub fn pad(self, p: usize, value: f32) -> Result<Self> {
        let Some([c, h, w]) = self.image_dims() else {
            crate::bail!(
                "cannot pad data set `{}`: samples of shape {:?} are not images [C, H, W]",
                self.name,
                self.sample_shape
            );
        };
        if !value.is_finite() {
            crate::bail!("pad value must be finite, got {value}");
        }
        if p == 0 {
            return Ok(self);
        }
        let (ph, pw) = (h + 2 * p, w + 2 * p);
        let n = self.len();
        let mut data = vec![value; n * c * ph * pw];
        for (src, dst) in self
            .data
            .chunks_exact(h * w)
            .zip(data.chunks_exact_mut(ph * pw))
        {
            for (y, row) in src.chunks_exact(w).enumerate() {
                let start = (y + p) * pw + p;
                dst[start..start + w].copy_from_slice(row);
            }
        }
        Ok(Dataset {
            data,
            sample_shape: vec![c, ph, pw],
            labels: self.labels,
            name: self.name,
        })
    }

    /// Splits into `(train, held_out)` deterministically: a permutation drawn from
    /// `seed` picks `round(holdout_fraction * N)` held-out samples; both parts keep
    /// the original sample order. The parts are named `<name>/train` and
    /// `<name>/heldout`. The same `(N, holdout_fraction, seed)` always gives the same
    /// split, on every platform.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `holdout_fraction` is not in `[0, 1)` or the
    /// split would leave no training sample.
    pub fn split(&self, holdout_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(0.0..1.0).contains(&holdout_fraction) {
            crate::bail!("holdout_fraction must be in [0, 1), got {holdout_fraction}");
        }
        let n = self.len();
        let n_hold = (holdout_fraction * n as f64).round() as usize;
        if n > 0 && n_hold >= n {
            crate::bail!(
                "holding out {holdout_fraction} of the {n} samples of `{}` leaves none for training",
                self.name
            );
        }
        let perm = permutation(n, seed, SPLIT_STREAM);
        let mut held: Vec<usize> = perm[..n_hold].to_vec();
        let mut train: Vec<usize> = perm[n_hold..].to_vec();
        held.sort_unstable();
        train.sort_unstable();
        let base = self.name.clone();
        Ok((
            self.subset(&train)?.with_name(format!("{base}/train")),
            self.subset(&held)?.with_name(format!("{base}/heldout")),
        ))
    }

    fn check_indices(&self, indices: &[usize]) -> Result<()> {
        let n = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            crate::bail!(
                "sample index {bad} out of range for `{}` with {n} samples",
                self.name
            );
        }
        Ok(())
    }
}

fn check_sample_shape(name: &str, shape: &[usize]) -> Result<usize> {
    if !matches!(shape.len(), 1 | 3) || shape.contains(&0) {
        crate::bail!(
            "data set `{name}`: sample shape must be [D] or [C, H, W] with every dimension >= 1, got {shape:?}"
        );
    }
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::InvalidArgument(format!("sample shape {shape:?} overflows")))
}

fn check_labels(name: &str, labels: Option<&[u8]>, n: usize) -> Result<()> {
    match labels {
        Some(l) if l.len() != n => Err(Error::ShapeMismatch {
            what: format!("labels of `{name}`"),
            expected: format!("{n} (one per sample)"),
            got: l.len().to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        let data = (0..n * 2).map(|i| i as f32).collect();
        let labels = (0..n).map(|i| (i % 256) as u8).collect();
        Dataset::from_f32("toy", data, vec![2], Some(labels)).unwrap()
    }

    #[test]
    fn construction_validates() {
        assert!(matches!(
            Dataset::from_f32("a", vec![0.0; 5], vec![2], None),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            Dataset::from_f32("a", vec![0.0; 4], vec![2, 2], None),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Dataset::from_f32("a", vec![0.0; 4], vec![0], None),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Dataset::from_f32("a", vec![0.0; 4], vec![2], Some(vec![1])),
            Err(Error::ShapeMismatch { .. })
        ));
        let e = Dataset::from_f32("a", vec![0.0, 1.0, f32::NAN, 0.0], vec![2], None).unwrap_err();
        assert!(
            matches!(&e, Error::NonFinite(m) if m.contains("sample 1, element 0")),
            "{e}"
        );
        assert!(matches!(
            Dataset::from_f32("a", vec![f32::INFINITY], vec![1], None),
            Err(Error::NonFinite(_))
        ));
        assert!(matches!(
            Dataset::from_u8("a", &[0, 17], vec![1, 1, 1], None, 16.0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Dataset::from_u8("a", &[0], vec![1, 1, 1], None, 0.0),
            Err(Error::InvalidArgument(_))
        ));
        let empty = Dataset::from_f32("e", vec![], vec![3], None).unwrap();
        assert!(empty.is_empty() && empty.value_range().is_none());
    }

    #[test]
    fn u8_scaling_hits_both_ends_exactly() {
        let d = Dataset::from_u8("d", &[0, 8, 16, 4], vec![1, 2, 2], None, 16.0).unwrap();
        assert_eq!(d.data(), &[-1.0, 0.0, 1.0, -0.5]);
        let m = Dataset::from_u8("m", &[0, 255], vec![2], None, 255.0).unwrap();
        assert_eq!(m.value_range(), Some((-1.0, 1.0)));
    }

    #[test]
    fn pad_places_the_image_in_the_middle() {
        let d = Dataset::from_f32("p", vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![1, 2, 3], None)
            .unwrap()
            .pad(1, -1.0)
            .unwrap();
        assert_eq!(d.sample_shape(), &[1, 4, 5]);
        #[rustfmt::skip]
        let want = [
            -1.0, -1.0, -1.0, -1.0, -1.0,
            -1.0,  1.0,  2.0,  3.0, -1.0,
            -1.0,  4.0,  5.0,  6.0, -1.0,
            -1.0, -1.0, -1.0, -1.0, -1.0,
        ];
        assert_eq!(d.data(), &want);
        assert!(toy(3).pad(1, 0.0).is_err());
    }

    #[test]
    fn pad_handles_channels_and_samples() {
        let data: Vec<f32> = (0..2 * 3).map(|i| i as f32).collect(); // N=2, C=3, 1x1
        let d = Dataset::from_f32("c", data, vec![3, 1, 1], Some(vec![7, 9]))
            .unwrap()
            .pad(2, -1.0)
            .unwrap();
        assert_eq!(d.sample_shape(), &[3, 5, 5]);
        assert_eq!(d.len(), 2);
        for (k, plane) in d.data().chunks(25).enumerate() {
            assert_eq!(plane[12], k as f32);
            assert_eq!(plane.iter().filter(|&&x| x == -1.0).count(), 24);
        }
        assert_eq!(d.labels(), Some(&[7u8, 9][..]));
    }

    #[test]
    fn gather_copies_in_order() {
        let d = toy(5);
        let mut out = vec![0.0; 6];
        d.gather(&[4, 0, 4], &mut out).unwrap();
        assert_eq!(out, vec![8.0, 9.0, 0.0, 1.0, 8.0, 9.0]);
        assert_eq!(d.gather_labels(&[4, 0]).unwrap(), Some(vec![4, 0]));
        assert!(matches!(
            d.gather(&[5], &mut out[..2]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            d.gather(&[1], &mut out),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn split_is_deterministic_disjoint_and_complete() {
        let d = toy(100);
        let (tr, ho) = d.split(0.2, 7).unwrap();
        assert_eq!((tr.len(), ho.len()), (80, 20));
        assert_eq!((tr.name(), ho.name()), ("toy/train", "toy/heldout"));
        let (tr2, ho2) = d.split(0.2, 7).unwrap();
        assert_eq!((&tr, &ho), (&tr2, &ho2));
        let mut all: Vec<u8> = tr
            .labels()
            .unwrap()
            .iter()
            .chain(ho.labels().unwrap())
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).map(|i| i as u8).collect::<Vec<_>>());
        let (_, ho3) = d.split(0.2, 8).unwrap();
        assert_ne!(ho.labels(), ho3.labels());
        assert_eq!(d.split(0.0, 1).unwrap().1.len(), 0);
        assert!(d.split(1.0, 1).is_err());
        assert!(d.split(-0.1, 1).is_err());
        assert!(toy(1).split(0.6, 1).is_err());
    }
}
