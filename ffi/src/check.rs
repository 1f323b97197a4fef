//! Small, genuinely useful checks for harnesses (and the first end-to-end user
//! of the ABI conventions).

use hatebm_rs::Error;

use crate::error::{Failure, FfiResult};
use crate::handle::{opt_out, try_slice};
use crate::status::hatebm_status;

/// Index of the first NaN or infinity in `data`, if any.
pub fn first_non_finite(data: &[f32]) -> Option<usize> {
    // Chunked so the common all-finite case vectorises (one branch per chunk).
    const CHUNK: usize = 64;
    let mut base = 0;
    for chunk in data.chunks(CHUNK) {
        if !chunk.iter().all(|v| v.is_finite()) {
            return chunk.iter().position(|v| !v.is_finite()).map(|i| base + i);
        }
        base += chunk.len();
    }
    None
}

/// Checks that the `n` floats at `data` are all finite (no NaN, no +/-Inf).
///
/// Returns `HATEBM_OK` when they are, and `HATEBM_NUMERIC` (with a message naming
/// the index and value) at the first one that is not. `out_first_bad` is optional
/// (may be NULL); when given it receives the index of the first non-finite value
/// on `HATEBM_NUMERIC`, or `n` on `HATEBM_OK`: a diagnostic out-param, written on
/// that documented failure too. `data` may be NULL only when `n` is 0.
///
/// Thread-safe (touches no shared state).
///
/// # Safety
/// `data` points to `n` readable floats (or is NULL with `n == 0`);
/// `out_first_bad` is NULL or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_check_finite(
    data: *const f32,
    n: usize,
    out_first_bad: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { opt_out(out_first_bad, "out_first_bad") }?;
        // SAFETY: forwarded from this function's contract.
        let data = unsafe { try_slice(data, n, "data") }?;
        match first_non_finite(data) {
            None => {
                if let Some(out) = out {
                    out.write(n);
                }
                Ok(())
            }
            Some(i) => {
                if let Some(out) = out {
                    out.write(i);
                }
                Err(Failure::from(Error::NonFinite(format!("data[{i}] = {}", data[i]))))
            }
        }
    }
}

/// Rust-side helper with the same semantics (for tests and Rust callers).
pub fn check_finite(data: &[f32]) -> FfiResult<()> {
    match first_non_finite(data) {
        None => Ok(()),
        Some(i) => Err(Error::NonFinite(format!("data[{i}] = {}", data[i])).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_string;
    use crate::status::*;

    #[test]
    fn finds_the_first_bad_value() {
        let mut v = vec![0.5f32; 1000];
        assert_eq!(first_non_finite(&v), None);
        v[700] = f32::INFINITY;
        v[900] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(700));
        assert_eq!(first_non_finite(&[]), None);
        assert!(check_finite(&v).is_err());
    }

    #[test]
    fn c_entry_point() {
        let v = [1.0f32, f32::NAN, 3.0];
        let mut bad = 99usize;
        // SAFETY: v and bad are valid for the stated sizes.
        unsafe {
            assert_eq!(hatebm_check_finite(v.as_ptr(), 1, &mut bad), HATEBM_OK);
            assert_eq!(bad, 1);
            assert_eq!(hatebm_check_finite(v.as_ptr(), 3, &mut bad), HATEBM_NUMERIC);
            assert_eq!(bad, 1);
            assert_eq!(
                last_error_string(),
                "hatebm_check_finite: non-finite value in data[1] = NaN"
            );
            assert_eq!(
                hatebm_check_finite(std::ptr::null(), 0, std::ptr::null_mut()),
                HATEBM_OK
            );
            assert_eq!(
                hatebm_check_finite(std::ptr::null(), 2, &mut bad),
                HATEBM_NULL_PARAMETER
            );
        }
    }
}
