//! Test-only entry points (cargo feature `test-hooks`; declared in the header
//! under `#if defined(HATEBM_TEST_HOOKS)`). They let the C tests prove the panic
//! boundary and exercise every helper pattern — handle lifecycle, string and
//! float arguments, copy-out buffers, out-params, callbacks with cancellation —
//! under ASan and Valgrind, before the real API exists. They double as the
//! reference implementation of those patterns.

use std::ffi::{c_char, c_int, c_void};

use hatebm_rs::Error;

use crate::check::check_finite;
use crate::error::Failure;
use crate::handle::{
    box_castable, free_box, into_raw_box, try_copy_out, try_mut, try_out, try_ref, try_slice,
    try_str,
};
use crate::status::hatebm_status;

/// Panics inside the boundary: `kind` 0 panics with a string literal, 1 with a
/// formatted `String`, 2 with a non-string payload; any other value returns
/// `HATEBM_OK` without panicking. Returns `HATEBM_PANIC` after a panic.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_test_panic(kind: c_int) -> hatebm_status {
    crate::ffi_panic_boundary! {
        match kind {
            0 => panic!("test panic (literal)"),
            1 => panic!("test panic (formatted {})", kind),
            2 => std::panic::panic_any(kind),
            _ => Ok(()),
        }
    }
}

/// An infallible getter that panics when `do_panic` is true: returns NULL then
/// (its documented panic default), or the static string `"ok"` otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_test_panic_getter(do_panic: bool) -> *const c_char {
    crate::ffi_panic_boundary! {
        if do_panic {
            panic!("test panic in a getter");
        }
        c"ok".as_ptr()
    }
}

/// A test handle holding a label and a list of floats.
/// Not thread-safe: use one handle from one thread at a time.
#[derive(Debug)]
pub struct hatebm_test_handle {
    _private: [u8; 0],
}

#[derive(Debug)]
pub(crate) struct TestHandle {
    label: String,
    values: Vec<f32>,
}

box_castable!(hatebm_test_handle => TestHandle);

/// Creates a test handle labelled `label` (UTF-8, copied) and stores it in
/// `*out`. Free it with `hatebm_test_handle_free`.
///
/// # Safety
/// `label` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_test_handle_new(
    label: *const c_char,
    out: *mut *mut hatebm_test_handle,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let label = unsafe { try_str(label, "label") }?;
        if label.is_empty() {
            return Err(Failure::invalid("`label` must not be empty"));
        }
        out.write(into_raw_box(TestHandle {
            label: label.to_owned(),
            values: Vec::new(),
        }));
        Ok(())
    }
}

/// Frees a test handle. NULL is a no-op.
///
/// # Safety
/// `handle` is NULL or a live handle from `hatebm_test_handle_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_test_handle_free(handle: *mut hatebm_test_handle) {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        unsafe { free_box(handle) }
    }
}

/// Copies the handle's label, NUL-terminated, into `buf` (copy-out convention:
/// `*out_n` = bytes needed including the NUL, also on `HATEBM_INSUFFICIENT_SIZE`).
///
/// # Safety
/// `handle` is NULL or live; `buf` is NULL (with `len == 0`) or has `len`
/// writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_test_handle_label(
    handle: *const hatebm_test_handle,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { try_ref(handle, "handle") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(buf, len, out_n, "buf") }?;
        out.write_str(&h.label)
    }
}

/// Appends `n` floats to the handle. All must be finite: on a NaN/Inf nothing
/// is appended and `HATEBM_NUMERIC` is returned.
///
/// # Safety
/// `handle` is NULL or live and not used by another thread during the call;
/// `data` has `n` readable floats (or is NULL with `n == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_test_handle_push(
    handle: *mut hatebm_test_handle,
    data: *const f32,
    n: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { try_mut(handle, "handle") }?;
        // SAFETY: forwarded from this function's contract.
        let data = unsafe { try_slice(data, n, "data") }?;
        check_finite(data)?;
        h.values.extend_from_slice(data);
        Ok(())
    }
}

/// Copies the handle's floats into `buf` (copy-out convention: `*out_n` = number
/// of floats, also on `HATEBM_INSUFFICIENT_SIZE`, when `buf` is left untouched).
///
/// # Safety
/// `handle` is NULL or live; `buf` is NULL (with `len == 0`) or has `len`
/// writable floats; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_test_handle_values(
    handle: *const hatebm_test_handle,
    buf: *mut f32,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { try_ref(handle, "handle") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(buf, len, out_n, "buf") }?;
        out.write_slice(&h.values)
    }
}

/// Stores the sum of the handle's floats (as a double) in `*out_sum`.
///
/// # Safety
/// `handle` is NULL or live; `out_sum` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_test_handle_sum(
    handle: *const hatebm_test_handle,
    out_sum: *mut f64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out_sum, "out_sum") }?;
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { try_ref(handle, "handle") }?;
        out.write(h.values.iter().map(|&v| f64::from(v)).sum());
        Ok(())
    }
}

/// A step callback: called after each step with the 0-based step index.
/// Return `true` to continue, `false` to cancel (the library's callback rule).
#[allow(non_camel_case_types)]
pub type hatebm_test_step_cb =
    Option<unsafe extern "C" fn(step: usize, user_data: *mut c_void) -> bool>;

/// Runs `n_steps` steps; step `i` appends `(float)i` to the handle, then calls
/// `callback(i, user_data)` (if `callback` is not NULL). If the callback returns
/// `false` the run stops with `HATEBM_CANCELLED` (the handle keeps the steps
/// done so far; `*out_steps` is not written). On success `*out_steps = n_steps`.
///
/// # Safety
/// `handle` is NULL or live and not used elsewhere during the call; `callback`,
/// if not NULL, is safe to call with `user_data` on this thread; `out_steps` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_test_handle_run(
    handle: *mut hatebm_test_handle,
    n_steps: usize,
    callback: hatebm_test_step_cb,
    user_data: *mut c_void,
    out_steps: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out_steps, "out_steps") }?;
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { try_mut(handle, "handle") }?;
        for step in 0..n_steps {
            h.values.push(step as f32);
            if let Some(cb) = callback {
                // SAFETY: the caller vouches for the callback/user_data pair.
                if !unsafe { cb(step, user_data) } {
                    return Err(Error::Cancelled.into());
                }
            }
        }
        out.write(n_steps);
        Ok(())
    }
}
