//! Saving and loading a [`Pca`] as safetensors.

use std::collections::HashMap;
use std::path::Path;

use super::{FORMAT, FORMAT_VERSION, Pca};
use crate::weights::TensorFile;
use crate::{Error, Result};

impl Pca {
    /// Serialises to safetensors bytes: tensors `mean` `[d]` and `components`
    /// `[k, d]` (F32), metadata `format` = `hatebm-pca`, `format_version` = `1`,
    /// `explained_variance` (comma-separated `f64`, shortest round-trip form),
    /// `total_variance`, `n_fit`, `seed`, `iterations`, `residual`.
    ///
    /// # Errors
    /// None in practice (the shapes are consistent by construction).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        crate::weights::to_bytes(&self.tensors(), &self.metadata())
    }

    /// Writes [`to_bytes`](Self::to_bytes) to `path` atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::weights::write(path.as_ref(), &self.tensors(), &self.metadata())
    }

    /// Reads a PCA written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; otherwise as
    /// [`from_bytes`](Self::from_bytes).
    pub fn load(path: impl AsRef<Path>) -> Result<Pca> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses [`to_bytes`](Self::to_bytes) output; `context` names the source in
    /// errors.
    ///
    /// # Errors
    /// [`Error::Format`] for a corrupt file, a wrong `format` / `format_version`,
    /// missing or malformed metadata or tensors, inconsistent shapes, a
    /// non-finite value, or components that are not orthonormal (to 1e-4).
    pub fn from_bytes(bytes: &[u8], context: &str) -> Result<Pca> {
        let file = TensorFile::from_bytes(bytes, context)?;
        let fmt = |m: String| Error::format(context, m);
        let meta = |key: &str| {
            file.metadata
                .get(key)
                .ok_or_else(|| fmt(format!("metadata key `{key}` is missing")))
        };
        if meta("format")? != FORMAT {
            return Err(fmt(format!(
                "`format` is `{}`, expected `{FORMAT}`",
                meta("format")?
            )));
        }
        if meta("format_version")? != FORMAT_VERSION {
            return Err(fmt(format!(
                "unsupported format_version `{}` (this build reads `{FORMAT_VERSION}`)",
                meta("format_version")?
            )));
        }
        let tensor = |name: &str| file.f32(name).map_err(|e| fmt(e.to_string()));
        let (ms, mean) = tensor("mean")?;
        let (cs, comps) = tensor("components")?;
        let (d, k) = match (ms, cs) {
            ([d], [k, d2]) if *d >= 1 && d2 == d && (1..=*d).contains(k) => (*d, *k),
            _ => {
                return Err(fmt(format!(
                    "tensor shapes mean {ms:?} and components {cs:?} are not [d] and [k, d] \
                     with 1 <= k <= d"
                )));
            }
        };
        if mean.iter().chain(comps).any(|v| !v.is_finite()) {
            return Err(fmt("a tensor holds a NaN or infinity".into()));
        }
        let parse_f64 = |key: &str, s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    fmt(format!(
                        "metadata `{key}`: `{s}` is not a finite number >= 0"
                    ))
                })
        };
        let parse_u64 = |key: &str| {
            meta(key)?
                .parse::<u64>()
                .map_err(|_| fmt(format!("metadata `{key}` is not an integer")))
        };
        let ev_text = meta("explained_variance")?;
        let explained_variance = ev_text
            .split(',')
            .map(|s| parse_f64("explained_variance", s))
            .collect::<Result<Vec<f64>>>()?;
        if explained_variance.len() != k {
            return Err(fmt(format!(
                "`explained_variance` has {} values for {k} components",
                explained_variance.len()
            )));
        }
        let total_variance = parse_f64("total_variance", meta("total_variance")?)?;
        let residual = parse_f64("residual", meta("residual")?)?;
        let n_fit = usize::try_from(parse_u64("n_fit")?)
            .map_err(|_| fmt("metadata `n_fit` is out of range".into()))?;
        let iterations = usize::try_from(parse_u64("iterations")?)
            .map_err(|_| fmt("metadata `iterations` is out of range".into()))?;
        let seed = parse_u64("seed")?;
        // The rows must be orthonormal (f32 rounding leaves ~1e-7).
        for i in 0..k {
            for j in 0..=i {
                let dot: f64 = comps[i * d..(i + 1) * d]
                    .iter()
                    .zip(&comps[j * d..(j + 1) * d])
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                if (dot - want).abs() > 1e-4 {
                    return Err(fmt(format!(
                        "components are not orthonormal: row {i} · row {j} = {dot}"
                    )));
                }
            }
        }
        Ok(Pca {
            d,
            k,
            mean: mean.to_vec(),
            components: comps.to_vec(),
            explained_variance,
            total_variance,
            n_fit,
            seed,
            iterations,
            residual,
        })
    }

    pub(super) fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![
            ("mean".into(), vec![self.d], self.mean.clone()),
            (
                "components".into(),
                vec![self.k, self.d],
                self.components.clone(),
            ),
        ]
    }

    pub(super) fn metadata(&self) -> HashMap<String, String> {
        let ev: Vec<String> = self
            .explained_variance
            .iter()
            .map(|v| v.to_string())
            .collect();
        [
            ("format", FORMAT.to_owned()),
            ("format_version", FORMAT_VERSION.to_owned()),
            ("explained_variance", ev.join(",")),
            ("total_variance", self.total_variance.to_string()),
            ("n_fit", self.n_fit.to_string()),
            ("seed", self.seed.to_string()),
            ("iterations", self.iterations.to_string()),
            ("residual", self.residual.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
