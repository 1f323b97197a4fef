//! [`TchTensor`]: the tch backend's tensor, a newtype over [`tch::Tensor`].

use std::fmt;

use hatebm_core::{Error, Result};
use tch::{Kind, TchError};

/// Maps a libtorch error to [`Error::Backend`].
pub(crate) fn terr(e: TchError) -> Error {
    Error::Backend(format!("libtorch: {e}"))
}

/// `?`-friendly conversion of tch results.
pub(crate) trait TchResultExt<T> {
    /// Maps the error to [`Error::Backend`].
    fn tch(self) -> Result<T>;
    /// Discards the value (e.g. the alias an in-place op returns) and maps the error.
    fn done(self) -> Result<()>;
}

impl<T> TchResultExt<T> for std::result::Result<T, TchError> {
    fn tch(self) -> Result<T> {
        self.map_err(terr)
    }

    fn done(self) -> Result<()> {
        self.map(drop).map_err(terr)
    }
}

/// A shape as libtorch sizes.
pub(crate) fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// A libtorch tensor with the invariants of the core's tensors: `f32`,
/// contiguous (row-major), batch-major, not requiring gradients, and owning its
/// data — no other `TchTensor` aliases its storage.
///
/// **Value semantics.** [`Clone`] makes an independent deep copy on the same
/// device (not a `shallow_clone`): the algorithms clone a tensor and then
/// mutate one of the copies in place (e.g. Adam's EMA starts as a clone of the
/// weights), which must not change the other.
pub struct TchTensor {
    pub(crate) inner: tch::Tensor,
}

// SAFETY: `tch::Tensor` is `Send` but not `Sync` because several tch methods
// mutate the C++ tensor through `&self` (`set_requires_grad`, and in-place ops
// on a `shallow_clone`). This crate never calls them on a tensor reachable from
// a `&TchTensor`: parameters that need gradients are handled through fresh
// `detach()`ed aliases that are private to one call, and every mutation of a
// `TchTensor` goes through `&mut`. Concurrent read-only use of one ATen tensor
// from several threads is supported by libtorch (shared weights in
// multi-threaded inference). The only public way to the inner tensor by
// reference, [`TchTensor::as_tch`], is an `unsafe fn` whose contract is this
// promise; safe code gets a deep copy ([`TchTensor::to_tch`]) or the tensor by
// value ([`TchTensor::into_tch`]).
unsafe impl Sync for TchTensor {}

impl TchTensor {
    /// Wraps a tensor that already satisfies the invariants (internal use).
    pub(crate) fn wrap(inner: tch::Tensor) -> Self {
        TchTensor { inner }
    }

    /// Adopts a libtorch tensor: converts it to `f32`, detaches it from any
    /// autograd graph and makes it contiguous and independent (copying when it
    /// is not already so).
    ///
    /// # Errors
    /// [`Error::Backend`] if libtorch fails (e.g. out of memory).
    pub fn from_tch(t: &tch::Tensor) -> Result<Self> {
        let t = t.f_detach().tch()?.f_to_kind(Kind::Float).tch()?;
        Ok(TchTensor {
            inner: deep_copy(&t)?,
        })
    }

    /// An independent deep copy as a plain libtorch tensor, on the same device:
    /// the safe way to hand the data to other tch code (the copy is the
    /// caller's to mutate).
    ///
    /// # Errors
    /// [`Error::Backend`] if libtorch fails (e.g. out of device memory).
    pub fn to_tch(&self) -> Result<tch::Tensor> {
        deep_copy(&self.inner)
    }

    /// The wrapped tensor itself, without a copy.
    ///
    /// # Safety
    /// [`TchTensor`] is `Sync` on the promise that nothing mutates the C++
    /// tensor through a shared reference. tch has methods that do so through
    /// `&self` (`set_requires_grad`, in-place ops on a `shallow_clone`, ...), so
    /// the caller must use the returned reference for read-only operations only
    /// — or make sure no other thread uses this tensor meanwhile. Use
    /// [`TchTensor::to_tch`] for a copy that may be mutated.
    pub unsafe fn as_tch(&self) -> &tch::Tensor {
        &self.inner
    }

    /// Unwraps the tensor.
    pub fn into_tch(self) -> tch::Tensor {
        self.inner
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.inner.size().iter().map(|&d| d as usize).collect()
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> crate::TchDevice {
        self.inner.device().into()
    }

    /// An independent deep copy (what [`Clone`] does, but fallible).
    ///
    /// # Errors
    /// [`Error::Backend`] if libtorch fails (e.g. out of device memory).
    pub fn try_clone(&self) -> Result<Self> {
        Ok(TchTensor {
            inner: deep_copy(&self.inner)?,
        })
    }
}

/// A new contiguous tensor with the same shape, dtype, device and values.
pub(crate) fn deep_copy(t: &tch::Tensor) -> Result<tch::Tensor> {
    let mut out = tch::Tensor::f_empty(t.size(), (t.f_kind().tch()?, t.device())).tch()?;
    out.f_copy_(t).tch()?;
    Ok(out)
}

impl Clone for TchTensor {
    /// A deep copy on the same device.
    ///
    /// # Panics
    /// If libtorch cannot allocate the copy (out of memory): `Clone` cannot
    /// return an error. Use [`TchTensor::try_clone`] to handle it.
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(t) => t,
            Err(e) => panic!("TchTensor::clone failed: {e}"),
        }
    }
}

impl fmt::Debug for TchTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TchTensor")
            .field("shape", &self.inner.size())
            .field("device", &self.inner.device())
            .finish_non_exhaustive()
    }
}
