//! safetensors I/O for named tensors and parameter sets.
//!
//! Files use PyTorch `state_dict` names (see [`crate::nets::arch`]), F32
//! little-endian, so a state dict saved with `safetensors.torch.save_file`
//! loads as-is and ours loads in PyTorch. Writes are atomic
//! ([`crate::fsutil::write_atomic`]). Reads validate everything: a truncated or
//! corrupt file, a wrong dtype, or a missing / extra / mis-shaped tensor is an
//! error that names the file and the tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::backend::Backend;
use crate::backend::shape::numel;
use crate::params::ParamSet;
use crate::{Error, Result, ResultExt};

/// The data of one stored tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `F32` values.
    F32(Vec<f32>),
    /// `I64` values (e.g. bank indices in golden files).
    I64(Vec<i64>),
}

/// One named tensor read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values.
    pub data: TensorData,
}

/// The contents of a safetensors file: tensors by name, plus the metadata map.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Tensors by name (sorted).
    pub tensors: BTreeMap<String, NamedTensor>,
    /// The `__metadata__` map.
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Parses safetensors bytes; `context` names the source in errors.
    ///
    /// # Errors
    /// [`Error::Format`] for corrupt data or unsupported dtypes.
    pub fn from_bytes(bytes: &[u8], context: &str) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::format(context, format!("not a valid safetensors file: {e}")))?;
        let (_, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| Error::format(context, e.to_string()))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let raw = view.data();
            let data = match view.dtype() {
                Dtype::F32 => TensorData::F32(
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                Dtype::I64 => TensorData::I64(
                    raw.chunks_exact(8)
                        .map(|c| {
                            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect(),
                ),
                d => {
                    return Err(Error::format(
                        context,
                        format!("tensor `{name}` has dtype {d:?}; only F32 and I64 are supported"),
                    ));
                }
            };
            tensors.insert(name.clone(), NamedTensor { name, shape, data });
        }
        Ok(TensorFile { tensors, metadata })
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, [`Error::Format`] if it is corrupt.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// An `F32` tensor by name, as `(shape, data)`.
    ///
    /// # Errors
    /// [`Error::Param`] if missing or not F32.
    pub fn f32(&self, name: &str) -> Result<(&[usize], &[f32])> {
        match self.tensors.get(name) {
            Some(NamedTensor {
                shape,
                data: TensorData::F32(d),
                ..
            }) => Ok((shape, d)),
            Some(_) => Err(Error::Param(format!("tensor `{name}` is not F32"))),
            None => Err(Error::Param(format!("tensor `{name}` not found"))),
        }
    }

    /// Every F32 tensor whose name starts with `prefix`, with the prefix
    /// removed, as `(name, shape, data)` host tensors.
    pub fn with_prefix(&self, prefix: &str) -> Vec<crate::params::HostTensor> {
        self.tensors
            .values()
            .filter_map(|t| match (&t.data, t.name.strip_prefix(prefix)) {
                (TensorData::F32(d), Some(rest)) => {
                    Some((rest.to_string(), t.shape.clone(), d.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Serialises F32 host tensors `(name, shape, data)` with a metadata map.
///
/// # Errors
/// [`Error::ShapeMismatch`] if a tensor's data does not match its shape,
/// [`Error::InvalidArgument`] for duplicate names.
pub fn to_bytes(
    tensors: &[crate::params::HostTensor],
    metadata: &HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut bytes: Vec<Vec<u8>> = Vec::with_capacity(tensors.len());
    for (name, shape, data) in tensors {
        if data.len() != numel(shape) {
            return Err(Error::shape(
                format!("tensor `{name}`"),
                shape,
                &[data.len()],
            ));
        }
        bytes.push(data.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        if views
            .iter()
            .any(|(n, _): &(String, TensorView<'_>)| n == name)
        {
            return Err(Error::InvalidArgument(format!(
                "duplicate tensor name `{name}`"
            )));
        }
        let view = TensorView::new(Dtype::F32, shape.clone(), b)
            .map_err(|e| Error::InvalidArgument(format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let meta = if metadata.is_empty() {
        None
    } else {
        Some(metadata.clone())
    };
    safetensors::serialize(views, meta)
        .map_err(|e| Error::InvalidArgument(format!("safetensors serialisation failed: {e}")))
}

/// Writes F32 host tensors to `path` atomically.
///
/// # Errors
/// As [`to_bytes`], plus [`Error::Io`].
pub fn write(
    path: &Path,
    tensors: &[crate::params::HostTensor],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    crate::fsutil::write_atomic(path, &to_bytes(tensors, metadata)?)
}

/// Loads a parameter set from a safetensors file in PyTorch `state_dict`
/// naming; tensors are looked up under `prefix` (use `""` for a plain state dict,
/// `"ebm."` for a file that stores several models). Tensors outside the prefix
/// are ignored; inside it, the match must be exact (see [`ParamSet::load_host`]).
///
/// # Errors
/// [`Error::Io`] / [`Error::Format`] for the file, [`Error::Param`] for
/// missing, extra or mis-shaped tensors (named), [`Error::NonFinite`] for NaN/Inf.
pub fn load_params<B: Backend>(
    params: &mut ParamSet<B>,
    backend: &B,
    path: &Path,
    prefix: &str,
) -> Result<()> {
    let file = TensorFile::read(path)?;
    params
        .load_host(backend, &file.with_prefix(prefix))
        .with_context(|| format!("loading weights {}", path.display()))
}

/// Saves a parameter set (plain `state_dict` names) to `path` atomically.
///
/// # Errors
/// A backend error or [`Error::Io`].
pub fn save_params<B: Backend>(
    params: &ParamSet<B>,
    backend: &B,
    path: &Path,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    write(path, &params.to_host(backend)?, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let t = vec![(
            "a.weight".to_string(),
            vec![2, 3],
            (0..6).map(|i| i as f32 * 0.5).collect::<Vec<f32>>(),
        )];
        let mut meta = HashMap::new();
        meta.insert("k".to_string(), "v".to_string());
        let bytes = to_bytes(&t, &meta).unwrap();
        let f = TensorFile::from_bytes(&bytes, "mem").unwrap();
        assert_eq!(f.metadata.get("k").map(String::as_str), Some("v"));
        assert_eq!(f.with_prefix(""), t);
        for cut in [0, 7, bytes.len() / 2, bytes.len() - 1] {
            let e = TensorFile::from_bytes(&bytes[..cut], "ckpt.safetensors")
                .unwrap_err()
                .to_string();
            assert!(e.contains("ckpt.safetensors"), "{e}");
        }
        let mut bad = bytes.clone();
        bad[9] = b'!';
        assert!(TensorFile::from_bytes(&bad, "mem").is_err());
    }
}
