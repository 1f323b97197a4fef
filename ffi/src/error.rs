//! The error model across the ABI: a status code plus a thread-local message.
//!
//! * Every fallible entry point returns a [`hatebm_status`]. On failure it has
//!   recorded a human-readable message for the calling thread, readable with
//!   [`hatebm_last_error_message`] or copied with [`hatebm_last_error_copy`].
//! * Success does **not** clear the message (errno-like): read it right after the
//!   call that failed. The pointer returned by [`hatebm_last_error_message`] is
//!   valid until the next `hatebm_*` call on the same thread, except the three
//!   `hatebm_last_error_*` functions and `hatebm_status_str`, which never touch it.
//!
//! Inside the crate, entry points do not call the recorders directly: their body
//! returns an [`FfiResult`], and the panic boundary (`panic.rs`) records an
//! `Err(Failure)` as `"<function name>: <message>"` and returns its status.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use hatebm_rs::Error;

use crate::handle::{CopyOut, try_copy_out};
use crate::status::*;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A failed call: the status to return and the message to record.
///
/// Build one with [`Failure::new`], the shorthand constructors, or `?` on a
/// `hatebm_rs::Result` (every core error converts with its mapped status).
#[derive(Debug)]
pub struct Failure {
    status: hatebm_status,
    message: String,
    quiet: bool,
}

/// What the body of a status-returning entry point evaluates to.
pub type FfiResult<T = ()> = Result<T, Failure>;

impl Failure {
    /// A failure with an explicit status and message.
    pub fn new(status: hatebm_status, message: impl Into<String>) -> Self {
        debug_assert_ne!(status, HATEBM_OK, "a Failure must not carry HATEBM_OK");
        Self {
            status,
            message: message.into(),
            quiet: false,
        }
    }

    /// `HATEBM_NULL_PARAMETER`: argument `name` was NULL.
    pub fn null_parameter(name: &str) -> Self {
        Self::new(HATEBM_NULL_PARAMETER, format!("argument `{name}` is NULL"))
    }

    /// `HATEBM_INVALID_ARGUMENT` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(HATEBM_INVALID_ARGUMENT, message)
    }

    /// A failure that is returned without recording a message or logging. Only
    /// for the `hatebm_last_error_*` functions, which must not overwrite the
    /// message they are reporting.
    pub(crate) fn quiet(status: hatebm_status) -> Self {
        Self {
            status,
            message: String::new(),
            quiet: true,
        }
    }

    /// The status this failure returns.
    pub fn status(&self) -> hatebm_status {
        self.status
    }

    /// The message (without the function-name prefix).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Records the failure for this thread (prefixed with `function` when given),
    /// logs it, and returns its status. Called by the panic boundary.
    pub(crate) fn record(self, function: Option<&str>) -> hatebm_status {
        if self.quiet {
            return self.status;
        }
        let message = match function {
            Some(f) => format!("{f}: {}", self.message),
            None => self.message,
        };
        fail(self.status, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::new(hatebm_status::from(&e), e.to_string())
    }
}

/// Records `message` as this thread's last error without logging it.
fn store_message(message: &str) {
    // A C string cannot hold interior NULs; make them visible instead of truncating.
    let bytes: Vec<u8> = message
        .bytes()
        .map(|b| if b == 0 { b'?' } else { b })
        .collect();
    let c = CString::new(bytes).unwrap_or_default();
    // `try_with`: during thread teardown the slot may already be gone; then the
    // message is dropped rather than panicking inside the error path.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// Records `message` as this thread's last error, forwards it to the log
/// callback (warn level for caller mistakes, error for panics and internal
/// errors, debug otherwise), and returns `status`.
///
/// The low-level recorder: entry points normally return `Err(Failure)` and let
/// the panic boundary call this with the function name prefixed.
pub fn fail(status: hatebm_status, message: impl Into<String>) -> hatebm_status {
    let message = message.into();
    store_message(&message);
    let level = match status {
        HATEBM_NULL_PARAMETER | HATEBM_INVALID_UTF8 => ::log::Level::Warn,
        HATEBM_PANIC | HATEBM_INTERNAL => ::log::Level::Error,
        _ => ::log::Level::Debug,
    };
    ::log::log!(target: "hatebm::ffi", level, "{message} ({status})");
    status
}

/// Records a core error as this thread's last error and returns its mapped status.
pub fn set_last_error(e: &Error) -> hatebm_status {
    fail(hatebm_status::from(e), e.to_string())
}

/// This thread's last error message, as a Rust string (tests and the C++-free
/// Rust callers of the `lib` crate type).
pub fn last_error_string() -> String {
    LAST_ERROR
        .try_with(|slot| slot.borrow().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Returns the message of the last failed `hatebm_*` call on this thread, or ""
/// if none failed yet (or after `hatebm_last_error_clear`). Never NULL.
///
/// The string is owned by the library and stays valid until the next `hatebm_*`
/// call on this thread (other than the `hatebm_last_error_*` functions and
/// `hatebm_status_str`); copy it (or use `hatebm_last_error_copy`) to keep it.
/// Success does not clear it, so read it right after the call that failed.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_last_error_message() -> *const c_char {
    crate::ffi_panic_boundary! {
        default = c"".as_ptr();
        // The pointer outlives the borrow: the CString's heap buffer only moves or
        // dies when a later failure replaces it (or the thread exits), which is the
        // documented validity window.
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ptr())
            .unwrap_or(c"".as_ptr())
    }
}

/// Copies this thread's last error message, NUL-terminated, into `buf`.
///
/// `*out_n` receives the size the message needs **including** the NUL, both on
/// `HATEBM_OK` and on `HATEBM_INSUFFICIENT_SIZE`. If `len` is smaller than that,
/// nothing is written to `buf` (it is not truncated) and
/// `HATEBM_INSUFFICIENT_SIZE` is returned; call with `buf = NULL, len = 0` to
/// query the size. `buf` may be NULL only when `len` is 0.
///
/// This function never changes the last error, even when it fails itself
/// (`HATEBM_NULL_PARAMETER` when `out_n` is NULL, or `buf` is NULL with `len > 0`).
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes; `out_n` must be NULL or
/// point to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_last_error_copy(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out: CopyOut<'_, c_char> = unsafe { try_copy_out(buf, len, out_n, "buf") }
            .map_err(|f| Failure::quiet(f.status()))?;
        LAST_ERROR
            .try_with(|slot| out.write_cstr(&slot.borrow()))
            .unwrap_or_else(|_| Err(Failure::quiet(HATEBM_INTERNAL)))
            .map_err(|f| Failure::quiet(f.status()))
    }
}

/// Clears this thread's last error message (it becomes ""). Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_last_error_clear() {
    crate::ffi_panic_boundary! {
        let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = CString::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn fail_records_and_returns_status() {
        hatebm_last_error_clear();
        assert_eq!(last_error_string(), "");
        assert_eq!(fail(HATEBM_CONFIG, "bad\0key"), HATEBM_CONFIG);
        assert_eq!(last_error_string(), "bad?key");
        // SAFETY: never NULL, NUL-terminated.
        let msg = unsafe { CStr::from_ptr(hatebm_last_error_message()) };
        assert_eq!(msg.to_str().unwrap(), "bad?key");
    }

    #[test]
    fn core_errors_convert_with_message() {
        let f = Failure::from(Error::NonFinite("x[3]".into()));
        assert_eq!(f.status(), HATEBM_NUMERIC);
        assert_eq!(f.message(), "non-finite value in x[3]");
        assert_eq!(f.record(Some("hatebm_x")), HATEBM_NUMERIC);
        assert_eq!(last_error_string(), "hatebm_x: non-finite value in x[3]");
        assert_eq!(
            set_last_error(&Error::Cancelled),
            hatebm_status::HATEBM_CANCELLED
        );
    }

    #[test]
    fn copy_reports_size_and_never_truncates() {
        fail(HATEBM_IO, "hello");
        let mut n = 0usize;
        // SAFETY: NULL buffer with len 0 is the size query; n is a valid out-param.
        let st = unsafe { hatebm_last_error_copy(std::ptr::null_mut(), 0, &mut n) };
        assert_eq!((st, n), (HATEBM_INSUFFICIENT_SIZE, 6));

        let mut small = [b'x' as c_char; 5];
        // SAFETY: small has 5 writable bytes.
        let st = unsafe { hatebm_last_error_copy(small.as_mut_ptr(), small.len(), &mut n) };
        assert_eq!((st, n), (HATEBM_INSUFFICIENT_SIZE, 6));
        assert!(small.iter().all(|&c| c == b'x' as c_char), "untouched");

        let mut buf = [0 as c_char; 6];
        n = 0;
        // SAFETY: buf has 6 writable bytes.
        let st = unsafe { hatebm_last_error_copy(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!((st, n), (HATEBM_OK, 6));
        // SAFETY: written NUL-terminated above.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "hello");

        // Its own failures do not overwrite the message.
        // SAFETY: NULL out_n is the case under test; it is checked before use.
        let st = unsafe { hatebm_last_error_copy(buf.as_mut_ptr(), 6, std::ptr::null_mut()) };
        assert_eq!(st, HATEBM_NULL_PARAMETER);
        // SAFETY: NULL buf with len > 0 is checked before use.
        let st = unsafe { hatebm_last_error_copy(std::ptr::null_mut(), 6, &mut n) };
        assert_eq!(st, HATEBM_NULL_PARAMETER);
        assert_eq!(last_error_string(), "hello");
    }

    #[test]
    fn last_error_is_per_thread() {
        fail(HATEBM_IO, "main thread");
        std::thread::spawn(|| {
            assert_eq!(last_error_string(), "");
            fail(HATEBM_FORMAT, "other thread");
        })
        .join()
        .unwrap();
        assert_eq!(last_error_string(), "main thread");
    }
}
