//! Building a [`Dataset`] from `.npy` arrays.

use std::path::Path;

use super::Dataset;
use super::npy::{NpyArray, NpyData, read_npy};
use crate::{Error, Result};

impl Dataset {
    /// Builds a data set from an array read with [`super::npy::read_npy`]
    /// (and optionally a label array); `context` names the source in errors.
    ///
    /// The first axis is the sample axis; the rest give the sample shape:
    /// `[N, D]` → `[D]`, `[N, H, W]` → `[1, H, W]` (gray images), `[N, C, H, W]` →
    /// `[C, H, W]` (channel-first; channel-last NHWC arrays must be transposed first).
    ///
    /// Values: `|u1` arrays are scaled by `x / m * 2 - 1` with `m = scale_max`
    /// (default 255); float arrays are scaled the same way when `scale_max` is given
    /// and used as they are otherwise.
    ///
    /// Labels: a 1-d array of `N` entries, `|u1` or floats holding integers 0..=255.
    ///
    /// # Errors
    /// [`Error::Format`] (context) for an unusable rank or label array;
    /// [`Error::ShapeMismatch`] for a label count that is not `N`; [`Error::NonFinite`]
    /// for NaN/Inf values; [`Error::InvalidArgument`] for a bad `scale_max` or a `u8`
    /// value above it.
    pub fn from_npy(
        name: impl Into<String>,
        array: NpyArray,
        labels: Option<NpyArray>,
        scale_max: Option<f32>,
        context: &str,
    ) -> Result<Self> {
        let name = name.into();
        let sample_shape = match array.shape[..] {
            [_, d] => vec![d],
            [_, h, w] => vec![1, h, w],
            [_, c, h, w] => vec![c, h, w],
            _ => {
                return Err(Error::format(
                    context,
                    format!(
                        "expected an array of shape [N, D], [N, H, W] or [N, C, H, W], got {:?}",
                        array.shape
                    ),
                ));
            }
        };
        let labels = labels.map(|l| labels_from_npy(l, context)).transpose()?;
        match array.data {
            NpyData::U8(px) => {
                Dataset::from_u8(name, &px, sample_shape, labels, scale_max.unwrap_or(255.0))
            }
            data => {
                let mut v = data.to_f32();
                if let Some(m) = scale_max {
                    if !(m.is_finite() && m > 0.0) {
                        crate::bail!("scale maximum must be positive and finite, got {m}");
                    }
                    v.iter_mut().for_each(|x| *x = *x / m * 2.0 - 1.0);
                }
                Dataset::from_f32(name, v, sample_shape, labels)
            }
        }
    }

    /// Reads a data set from a `.npy` file (and optionally a labels `.npy`), named
    /// after the file stem; see [`Dataset::from_npy`] for shapes and scaling.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Format`] from reading, then as [`Dataset::from_npy`].
    pub fn load_npy(path: &Path, labels: Option<&Path>, scale_max: Option<f32>) -> Result<Self> {
        let array = read_npy(path)?;
        let labels = labels.map(read_npy).transpose()?;
        let name = path
            .file_stem()
            .map_or_else(|| "npy".to_owned(), |s| s.to_string_lossy().into_owned());
        Dataset::from_npy(name, array, labels, scale_max, &path.display().to_string())
    }
}

/// Converts a 1-d label array to `u8`.
pub(crate) fn labels_from_npy(l: NpyArray, context: &str) -> Result<Vec<u8>> {
    if l.shape.len() != 1 {
        return Err(Error::format(
            context,
            format!("labels must be a 1-d array, got shape {:?}", l.shape),
        ));
    }
    let as_u8 = |x: f64| (x.fract() == 0.0 && (0.0..=255.0).contains(&x)).then_some(x as u8);
    let bad = |x: f64| Error::format(context, format!("label {x} is not an integer in 0..=255"));
    match l.data {
        NpyData::U8(v) => Ok(v),
        NpyData::F32(v) => v
            .iter()
            .map(|&x| as_u8(f64::from(x)).ok_or_else(|| bad(f64::from(x))))
            .collect(),
        NpyData::F64(v) => v.iter().map(|&x| as_u8(x).ok_or_else(|| bad(x))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::write_npy;
    use crate::data::testutil::TempDir;

    #[test]
    fn ranks_map_to_sample_shapes() {
        let mk = |shape: Vec<usize>| NpyArray {
            data: NpyData::U8(vec![255; shape.iter().product()]),
            shape,
        };
        let d = Dataset::from_npy("a", mk(vec![3, 4]), None, None, "m").unwrap();
        assert_eq!((d.len(), d.sample_shape()), (3, &[4][..]));
        let d = Dataset::from_npy("a", mk(vec![3, 4, 5]), None, None, "m").unwrap();
        assert_eq!(d.sample_shape(), &[1, 4, 5]);
        let d = Dataset::from_npy("a", mk(vec![3, 2, 4, 5]), None, None, "m").unwrap();
        assert_eq!(d.sample_shape(), &[2, 4, 5]);
        assert_eq!(d.value_range(), Some((1.0, 1.0)));
        let e = Dataset::from_npy("a", mk(vec![3]), None, None, "m.npy").unwrap_err();
        assert!(
            matches!(&e, Error::Format { context, .. } if context == "m.npy"),
            "{e}"
        );
    }

    #[test]
    fn floats_scale_only_when_asked() {
        let a = NpyArray {
            shape: vec![2, 1],
            data: NpyData::F64(vec![0.0, 4.0]),
        };
        let d = Dataset::from_npy("f", a.clone(), None, None, "m").unwrap();
        assert_eq!(d.data(), &[0.0, 4.0]);
        let d = Dataset::from_npy("f", a, None, Some(4.0), "m").unwrap();
        assert_eq!(d.data(), &[-1.0, 1.0]);
    }

    #[test]
    fn labels_are_checked() {
        let x = NpyArray {
            shape: vec![2, 1],
            data: NpyData::F32(vec![0.0, 1.0]),
        };
        let l = |data| NpyArray {
            shape: vec![2],
            data,
        };
        let d = Dataset::from_npy(
            "l",
            x.clone(),
            Some(l(NpyData::F64(vec![3.0, 9.0]))),
            None,
            "m",
        )
        .unwrap();
        assert_eq!(d.labels(), Some(&[3u8, 9][..]));
        assert!(
            Dataset::from_npy(
                "l",
                x.clone(),
                Some(l(NpyData::F32(vec![0.5, 1.0]))),
                None,
                "m"
            )
            .is_err()
        );
        let three = NpyArray {
            shape: vec![3],
            data: NpyData::U8(vec![0; 3]),
        };
        assert!(matches!(
            Dataset::from_npy("l", x, Some(three), None, "m"),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn load_npy_from_files() {
        let dir = TempDir::new("npy-ds");
        let xp = dir.path().join("pts.npy");
        let lp = dir.path().join("lab.npy");
        write_npy(
            &xp,
            &NpyArray {
                shape: vec![2, 2],
                data: NpyData::F32(vec![1.0, 2.0, 3.0, 4.0]),
            },
        )
        .unwrap();
        write_npy(
            &lp,
            &NpyArray {
                shape: vec![2],
                data: NpyData::U8(vec![1, 0]),
            },
        )
        .unwrap();
        let d = Dataset::load_npy(&xp, Some(&lp), None).unwrap();
        assert_eq!(d.name(), "pts");
        assert_eq!(d.sample(1), &[3.0, 4.0]);
        assert_eq!(d.label(0), Some(1));
    }
}
