//! Writing samples for people and for numpy: a PNG grid and `.npy` files.

use std::ffi::c_char;
use std::path::Path;

use hatebm_rs::report::GridOptions;

use crate::error::Failure;
use crate::handle::{expect_len, try_slice, try_str};
use crate::status::hatebm_status;

/// Writes `n` images `data[n * c * h * w]` (NCHW, values nominally in [-1, 1],
/// clamped) as one PNG grid, 8 images per row, small images upscaled to at
/// least 32 pixels (the same pictures `hatebm_session_train` writes). `c` is 1
/// (gray) or 3 (RGB). Thread-safe.
///
/// `HATEBM_SHAPE_MISMATCH` if `data_len != n * c * h * w`;
/// `HATEBM_INVALID_ARGUMENT` for other shapes; `HATEBM_IO` if the file cannot
/// be written.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `data` has `data_len` readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_save_image_grid(
    path: *const c_char,
    data: *const f32,
    data_len: usize,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        // SAFETY: forwarded from this function's contract.
        let data = unsafe { try_slice(data, data_len, "data") }?;
        let per = c
            .checked_mul(h)
            .and_then(|v| v.checked_mul(w))
            .ok_or_else(|| Failure::invalid("c * h * w overflows"))?;
        expect_len("data", data.len(), n, per, "c * h * w")?;
        hatebm_rs::report::save_image_grid(
            Path::new(path),
            data,
            &[n, c, h, w],
            &GridOptions::default(),
        )?;
        Ok(())
    }
}

/// Writes `data[data_len]` as a little-endian float32 `.npy` file of shape
/// `shape[0..ndim]` (whose product must be `data_len`), readable with
/// `numpy.load`. Thread-safe.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `data` has `data_len` readable
/// floats; `shape` has `ndim` readable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_save_npy(
    path: *const c_char,
    data: *const f32,
    data_len: usize,
    shape: *const usize,
    ndim: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        // SAFETY: forwarded from this function's contract.
        let data = unsafe { try_slice(data, data_len, "data") }?;
        // SAFETY: forwarded from this function's contract.
        let shape = unsafe { try_slice(shape, ndim, "shape") }?;
        let total = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Failure::invalid(format!("shape {shape:?} overflows")))?;
        if total != data.len() {
            return Err(Failure::new(
                hatebm_status::HATEBM_SHAPE_MISMATCH,
                format!("shape {shape:?} has {total} elements but `data` has {}", data.len()),
            ));
        }
        hatebm_rs::data::npy::write_npy_f32(Path::new(path), shape, data)?;
        Ok(())
    }
}
