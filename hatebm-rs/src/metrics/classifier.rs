//! A fixed, learned feature space for image metrics: a small MLP classifier
//! (ReLU hidden layers) trained once on a data set's training split with a
//! fixed seed (`bench/pytorch/train_classifier.py`, `scripts/train-classifiers.sh`)
//! and shipped as safetensors — this project's analogue of the Inception
//! network of FID.
//!
//! Its *features* are the last hidden layer's activations; they define the
//! classifier-feature Fréchet distance and k-NN precision/recall
//! ([`FeatureSpace::Classifier`](super::FeatureSpace::Classifier)); its
//! *predictions* give the class histogram of a sample set and its entropy
//! ([`ClassHistogram`]). Two are built in: `digits_mlp` (8×8 digits,
//! 64-128-64-10) and `mnist5k_mlp` (MNIST-5k padded to 32×32,
//! 1024-256-128-10); their held-out accuracies are stored in the files'
//! metadata and reproduced by the tests.
//!
//! The forward pass runs on the host in `f32` (one GEMM per layer through
//! ndarray), so every backend's samples are scored identically.

use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis};

use crate::weights::TensorFile;
use crate::{Error, Result};

static DIGITS_MLP: &[u8] = include_bytes!("../../../data/classifiers/digits_mlp.safetensors");
static MNIST5K_MLP: &[u8] = include_bytes!("../../../data/classifiers/mnist5k_mlp.safetensors");

/// One dense layer: `y = W x + b`, `W` of shape `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
struct Dense {
    /// `Wᵀ`, `[in, out]` (so a batch is `X·Wᵀ`).
    wt: Array2<f32>,
    b: Vec<f32>,
}

/// A loaded classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    name: String,
    input_shape: Vec<usize>,
    layers: Vec<Dense>,
    heldout_accuracy: f64,
}

impl Classifier {
    /// Parses a classifier file (`fc{i}.weight` `[out, in]`, `fc{i}.bias`, and
    /// the metadata `input_shape` and `heldout_accuracy`).
    ///
    /// # Errors
    /// [`Error::Format`] for a file that is not such a classifier (missing or
    /// mis-shaped layers, layers that do not chain, no hidden layer).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let file = TensorFile::from_bytes(bytes, name)?;
        let bad = |m: String| Error::format(format!("classifier {name}"), m);
        let meta = |k: &str| {
            file.metadata
                .get(k)
                .ok_or_else(|| bad(format!("metadata `{k}` missing")))
        };
        let input_shape: Vec<usize> = serde_json::from_str(meta("input_shape")?)
            .map_err(|e| bad(format!("input_shape: {e}")))?;
        let heldout_accuracy: f64 = meta("heldout_accuracy")?
            .parse()
            .map_err(|e| bad(format!("heldout_accuracy: {e}")))?;
        let mut layers = Vec::new();
        let mut width = input_shape.iter().product::<usize>();
        while file
            .tensors
            .contains_key(&format!("fc{}.weight", layers.len()))
        {
            let i = layers.len();
            let (ws, w) = file.f32(&format!("fc{i}.weight"))?;
            let (bs, b) = file.f32(&format!("fc{i}.bias"))?;
            if ws.len() != 2 || ws[1] != width || bs != [ws[0]] {
                return Err(bad(format!(
                    "layer {i}: weight {ws:?}, bias {bs:?} after width {width}"
                )));
            }
            if !w.iter().chain(b).all(|v| v.is_finite()) {
                return Err(bad(format!("layer {i} holds a non-finite value")));
            }
            let wt = ArrayView2::from_shape((ws[0], ws[1]), w)
                .map_err(|e| bad(e.to_string()))?
                .t()
                .to_owned();
            layers.push(Dense { wt, b: b.to_vec() });
            width = ws[0];
        }
        if layers.len() < 2 {
            return Err(bad("needs at least one hidden layer".into()));
        }
        Ok(Classifier {
            name: name.to_string(),
            input_shape,
            layers,
            heldout_accuracy,
        })
    }

    /// Loads a classifier file.
    ///
    /// # Errors
    /// [`Error::Io`]; as [`Classifier::from_bytes`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let name = path
            .file_stem()
            .map_or_else(|| "classifier".into(), |s| s.to_string_lossy().into_owned());
        Self::from_bytes(&name, &bytes)
    }

    /// A built-in classifier by name: `digits_mlp` or `mnist5k_mlp`.
    ///
    /// # Errors
    /// [`Error::Config`] for another name.
    pub fn builtin(name: &str) -> Result<Self> {
        match name {
            "digits_mlp" => Self::from_bytes(name, DIGITS_MLP),
            "mnist5k_mlp" => Self::from_bytes(name, MNIST5K_MLP),
            _ => Err(Error::Config(format!(
                "unknown built-in classifier `{name}`: digits_mlp, mnist5k_mlp"
            ))),
        }
    }

    /// Its name (the file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sample shape it reads.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Values per input sample.
    pub fn input_dim(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// The feature dimension (the last hidden layer's width).
    pub fn feature_dim(&self) -> usize {
        self.layers[self.layers.len() - 2].b.len()
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.layers[self.layers.len() - 1].b.len()
    }

    /// The held-out accuracy its training script measured (file metadata).
    pub fn stated_accuracy(&self) -> f64 {
        self.heldout_accuracy
    }

    /// A one-line description: name, widths and stated accuracy.
    pub fn describe(&self) -> String {
        let mut dims = vec![self.input_dim()];
        dims.extend(self.layers.iter().map(|l| l.b.len()));
        let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
        format!(
            "{} ({}, held-out accuracy {:.3})",
            self.name,
            dims.join("-"),
            self.heldout_accuracy
        )
    }

    /// Features and logits of `n` samples (`[n, input_dim]` row-major):
    /// `([n, feature_dim], [n, classes])`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a buffer of the wrong length;
    /// [`Error::NonFinite`] for a NaN / ±∞ input.
    pub fn forward(&self, data: &[f32], n: usize) -> Result<(Array2<f32>, Array2<f32>)> {
        let d = self.input_dim();
        if data.len() != n.saturating_mul(d) {
            return Err(Error::shape("classifier input", &[n, d], &[data.len()]));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("classifier input (value {i})")));
        }
        let mut h = ArrayView2::from_shape((n, d), data)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?
            .to_owned();
        let last = self.layers.len() - 1;
        let mut features = None;
        for (i, l) in self.layers.iter().enumerate() {
            let mut z = h.dot(&l.wt);
            for mut row in z.axis_iter_mut(Axis(0)) {
                for (v, b) in row.iter_mut().zip(&l.b) {
                    *v += b;
                }
            }
            if i < last {
                z.mapv_inplace(|v| v.max(0.0));
            }
            if i + 1 == last {
                features = Some(z.clone());
            }
            h = z;
        }
        Ok((features.expect("at least one hidden layer"), h))
    }

    /// The features of `n` samples as `[n, feature_dim]` row-major `f64`.
    ///
    /// # Errors
    /// As [`Classifier::forward`].
    pub fn features(&self, data: &[f32], n: usize) -> Result<Vec<f64>> {
        let (f, _) = self.forward(data, n)?;
        Ok(f.iter().map(|&v| f64::from(v)).collect())
    }

    /// The predicted class (arg-max logit, lowest index on ties) of each sample.
    ///
    /// # Errors
    /// As [`Classifier::forward`].
    pub fn predict(&self, data: &[f32], n: usize) -> Result<Vec<usize>> {
        let (_, logits) = self.forward(data, n)?;
        Ok(logits
            .axis_iter(Axis(0))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv { (i, v) } else { (bi, bv) }
                    })
                    .0
            })
            .collect())
    }

    /// The fraction of `n` samples predicted as their `labels`.
    ///
    /// # Errors
    /// As [`Classifier::forward`]; [`Error::ShapeMismatch`] for `labels.len() != n`.
    pub fn accuracy(&self, data: &[f32], labels: &[u8], n: usize) -> Result<f64> {
        if labels.len() != n {
            return Err(Error::shape("labels", &[n], &[labels.len()]));
        }
        let pred = self.predict(data, n)?;
        let correct = pred
            .iter()
            .zip(labels)
            .filter(|&(&p, &l)| p == usize::from(l))
            .count();
        Ok(correct as f64 / n.max(1) as f64)
    }
}

/// The predicted-class histogram of a sample set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassHistogram {
    /// Fraction of samples per class (sums to 1).
    pub fractions: Vec<f64>,
    /// Entropy of the fractions divided by `ln(classes)`: 1 for a uniform
    /// histogram, 0 when every sample is one class.
    pub entropy: f64,
    /// The smallest class fraction.
    pub min_fraction: f64,
}

impl ClassHistogram {
    /// The histogram of `predictions` over `classes` classes.
    pub fn new(predictions: &[usize], classes: usize) -> Self {
        let mut counts = vec![0usize; classes];
        for &p in predictions {
            if p < classes {
                counts[p] += 1;
            }
        }
        let n = predictions.len().max(1) as f64;
        let fractions: Vec<f64> = counts.iter().map(|&c| c as f64 / n).collect();
        let h: f64 = fractions
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| -p * p.ln())
            .sum();
        ClassHistogram {
            entropy: if classes > 1 {
                h / (classes as f64).ln()
            } else {
                0.0
            },
            min_fraction: fractions.iter().copied().fold(f64::INFINITY, f64::min),
            fractions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_entropy_is_normalised() {
        let u = ClassHistogram::new(&[0, 1, 2, 3], 4);
        assert!((u.entropy - 1.0).abs() < 1e-12);
        assert_eq!(u.min_fraction, 0.25);
        let one = ClassHistogram::new(&[2, 2, 2], 4);
        assert_eq!((one.entropy, one.min_fraction), (0.0, 0.0));
        assert_eq!(one.fractions, vec![0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn builtins_load_and_describe_themselves() {
        let d = Classifier::builtin("digits_mlp").unwrap();
        assert_eq!((d.input_dim(), d.feature_dim(), d.classes()), (64, 64, 10));
        assert!(d.describe().starts_with("digits_mlp (64-128-64-10"));
        let m = Classifier::builtin("mnist5k_mlp").unwrap();
        assert_eq!(
            (m.input_dim(), m.feature_dim(), m.classes()),
            (1024, 128, 10)
        );
        assert!(Classifier::builtin("inception").is_err());
        let e = m.forward(&[0.0; 10], 1).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        let mut x = vec![0.0f32; 1024];
        x[5] = f32::NAN;
        assert!(m.predict(&x, 1).is_err());
    }

    #[test]
    fn corrupt_files_are_format_errors() {
        assert!(matches!(
            Classifier::from_bytes("x", b"not a safetensors file"),
            Err(Error::Format { .. })
        ));
    }
}
