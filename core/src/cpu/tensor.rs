//! [`CpuTensor`]: the CPU backend's tensor, an `ndarray::ArrayD<f32>` that is
//! always in standard (row-major, contiguous) layout.

use ndarray::{ArrayD, IxDyn};

use crate::backend::shape::numel;
use crate::{Error, Result};

/// A contiguous row-major `f32` tensor.
///
/// Invariant: the wrapped array is in standard layout, so [`CpuTensor::as_slice`]
/// never fails. Construct it with [`CpuTensor::from_vec`], [`CpuTensor::zeros`]
/// or from any `ArrayD<f32>` (non-standard layouts are copied).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor {
    array: ArrayD<f32>,
}

impl CpuTensor {
    /// Zeros of the given shape.
    pub fn zeros(shape: &[usize]) -> Self {
        CpuTensor {
            array: ArrayD::zeros(IxDyn(shape)),
        }
    }

    /// Zeros of the given shape, or an error instead of an abort when the
    /// size overflows or the memory cannot be had (what the backend's
    /// `zeros` uses, so that an impossible size a user asked for is a typed
    /// error).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the shape and its size in bytes.
    pub fn try_zeros(shape: &[usize]) -> Result<Self> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|n| n.checked_mul(4).is_some())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("tensor of shape {shape:?}: size overflows"))
            })?;
        let mut data: Vec<f32> = Vec::new();
        data.try_reserve_exact(n).map_err(|_| {
            Error::InvalidArgument(format!(
                "tensor of shape {shape:?} ({:.3e} bytes): out of memory",
                n as f64 * 4.0
            ))
        })?;
        data.resize(n, 0.0);
        Self::from_vec(data, shape)
    }

    /// Wraps row-major data.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `data.len()` is not the product of `shape`.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Self> {
        if data.len() != numel(shape) {
            return Err(Error::ShapeMismatch {
                what: "tensor data".into(),
                expected: format!("{} elements for shape {shape:?}", numel(shape)),
                got: format!("{} elements", data.len()),
            });
        }
        let array = ArrayD::from_shape_vec(IxDyn(shape), data)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(CpuTensor { array })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    /// The data, row-major.
    pub fn as_slice(&self) -> &[f32] {
        self.array
            .as_slice()
            .expect("CpuTensor invariant: standard layout")
    }

    /// The data, row-major, mutably.
    pub fn as_slice_mut(&mut self) -> &mut [f32] {
        self.array
            .as_slice_mut()
            .expect("CpuTensor invariant: standard layout")
    }

    /// The underlying array.
    pub fn array(&self) -> &ArrayD<f32> {
        &self.array
    }

    /// Consumes the tensor, returning its row-major data.
    pub fn into_vec(self) -> Vec<f32> {
        let (v, offset) = self.array.into_raw_vec_and_offset();
        debug_assert!(offset.unwrap_or(0) == 0);
        v
    }

    /// The same data with another shape.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the element counts differ.
    pub fn reshaped(&self, shape: &[usize]) -> Result<Self> {
        CpuTensor::from_vec(self.as_slice().to_vec(), shape)
    }

    /// Per-sample element count (product of all axes but the first).
    pub fn row_len(&self) -> usize {
        crate::backend::shape::row_len(self.shape())
    }
}

impl From<ArrayD<f32>> for CpuTensor {
    fn from(a: ArrayD<f32>) -> Self {
        if a.is_standard_layout() {
            CpuTensor { array: a }
        } else {
            CpuTensor {
                array: a.as_standard_layout().into_owned(),
            }
        }
    }
}

impl From<CpuTensor> for ArrayD<f32> {
    fn from(t: CpuTensor) -> Self {
        t.array
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        // Overflows usize.
        let e = CpuTensor::try_zeros(&[usize::MAX, 2]).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        // 2^60 floats fit in a usize count but in no machine's memory.
        let e = CpuTensor::try_zeros(&[1 << 30, 1 << 30]).unwrap_err();
        assert!(e.to_string().contains("out of memory"), "{e}");
        // An ordinary size is zeros, as with `zeros`.
        assert_eq!(
            CpuTensor::try_zeros(&[3, 2]).unwrap(),
            CpuTensor::zeros(&[3, 2])
        );
    }
}
