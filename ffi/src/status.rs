//! Status codes: the one return type of every fallible `hatebm_*` function.
//!
//! The numeric values are part of the ABI: they are never renumbered and never
//! reused; new codes are only appended (and `tests/header.rs` freezes the table).

use std::ffi::{c_char, c_int};

use hatebm_rs::Error;

/// Result of every fallible `hatebm_*` call. `HATEBM_OK` (0) is success; any other
/// value is a failure whose details are in `hatebm_last_error_message()`.
///
/// The values are stable: they are never renumbered, only appended to. Treat
/// values you do not know as failures (a newer library may return new codes).
/// cbindgen:prefix-with-name=false
/// cbindgen:rename-all=None
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum hatebm_status {
    /// Success.
    HATEBM_OK = 0,
    /// A required pointer argument was NULL.
    HATEBM_NULL_PARAMETER = 1,
    /// An argument is out of range or inconsistent with the others.
    HATEBM_INVALID_ARGUMENT = 2,
    /// The requested backend is not compiled into this build (e.g. `tch:*` without libtorch).
    HATEBM_BACKEND_UNAVAILABLE = 3,
    /// The backend is present but the requested device is not (e.g. no CUDA device N).
    HATEBM_DEVICE_UNAVAILABLE = 4,
    /// A buffer or tensor has the wrong shape or length.
    HATEBM_SHAPE_MISMATCH = 5,
    /// A NaN or infinity was found where finite numbers are required.
    HATEBM_NUMERIC = 6,
    /// An operating-system I/O error (file not found, permission, disk full, ...).
    HATEBM_IO = 7,
    /// A file or byte buffer is malformed (corrupt checkpoint, bad header, ...).
    HATEBM_FORMAT = 8,
    /// A caller-supplied output buffer is too small; the needed size was reported.
    HATEBM_INSUFFICIENT_SIZE = 9,
    /// A bug inside libhatebm panicked; the panic was caught at the ABI boundary.
    /// The process is intact, but the handles passed to that call should be freed.
    HATEBM_PANIC = 10,
    /// A configuration key is unknown or its value is invalid.
    HATEBM_CONFIG = 11,
    /// A named parameter tensor is missing, unexpected or mis-shaped in a weights file.
    HATEBM_PARAM = 12,
    /// A user callback reported a failure.
    HATEBM_CALLBACK = 13,
    /// A long-running call was cancelled by its callback's return value.
    HATEBM_CANCELLED = 14,
    /// Training diverged (NaN/Inf loss, or energies beyond the configured bound).
    HATEBM_DIVERGED = 15,
    /// An error reported by a backend library (e.g. libtorch).
    HATEBM_BACKEND_ERROR = 16,
    /// A `const char *` argument is not valid UTF-8.
    HATEBM_INVALID_UTF8 = 17,
    /// An internal invariant failed (a libhatebm bug that did not panic). Please report it.
    HATEBM_INTERNAL = 18,
    /// The handle is already inside a call: a call on it from one of its own
    /// callbacks, or from a second thread at the same time (like sqlite's
    /// `SQLITE_MISUSE`). The handle is unchanged.
    HATEBM_MISUSE = 19,
    /// A data-parallel run cannot go on: a collective or the harness's
    /// communicator callback failed, another rank failed (its message is
    /// given), or the ranks disagree (configuration, library version,
    /// replicated state). Every rank of the run gets the same status.
    HATEBM_DISTRIBUTED = 20,
}

pub use hatebm_status::*;

impl hatebm_status {
    /// Every status, in numeric order (index == value).
    pub const ALL: [hatebm_status; 21] = [
        HATEBM_OK,
        HATEBM_NULL_PARAMETER,
        HATEBM_INVALID_ARGUMENT,
        HATEBM_BACKEND_UNAVAILABLE,
        HATEBM_DEVICE_UNAVAILABLE,
        HATEBM_SHAPE_MISMATCH,
        HATEBM_NUMERIC,
        HATEBM_IO,
        HATEBM_FORMAT,
        HATEBM_INSUFFICIENT_SIZE,
        HATEBM_PANIC,
        HATEBM_CONFIG,
        HATEBM_PARAM,
        HATEBM_CALLBACK,
        HATEBM_CANCELLED,
        HATEBM_DIVERGED,
        HATEBM_BACKEND_ERROR,
        HATEBM_INVALID_UTF8,
        HATEBM_INTERNAL,
        HATEBM_MISUSE,
        HATEBM_DISTRIBUTED,
    ];

    /// The status with this numeric value, if there is one. C passes statuses as
    /// `int`; converting an unknown integer straight to the enum would be UB, so
    /// every entry point that *receives* a status goes through this.
    pub fn from_raw(raw: c_int) -> Option<Self> {
        usize::try_from(raw)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }

    /// The enumerator's name as a static NUL-terminated string.
    pub const fn name_cstr(self) -> &'static std::ffi::CStr {
        match self {
            HATEBM_OK => c"HATEBM_OK",
            HATEBM_NULL_PARAMETER => c"HATEBM_NULL_PARAMETER",
            HATEBM_INVALID_ARGUMENT => c"HATEBM_INVALID_ARGUMENT",
            HATEBM_BACKEND_UNAVAILABLE => c"HATEBM_BACKEND_UNAVAILABLE",
            HATEBM_DEVICE_UNAVAILABLE => c"HATEBM_DEVICE_UNAVAILABLE",
            HATEBM_SHAPE_MISMATCH => c"HATEBM_SHAPE_MISMATCH",
            HATEBM_NUMERIC => c"HATEBM_NUMERIC",
            HATEBM_IO => c"HATEBM_IO",
            HATEBM_FORMAT => c"HATEBM_FORMAT",
            HATEBM_INSUFFICIENT_SIZE => c"HATEBM_INSUFFICIENT_SIZE",
            HATEBM_PANIC => c"HATEBM_PANIC",
            HATEBM_CONFIG => c"HATEBM_CONFIG",
            HATEBM_PARAM => c"HATEBM_PARAM",
            HATEBM_CALLBACK => c"HATEBM_CALLBACK",
            HATEBM_CANCELLED => c"HATEBM_CANCELLED",
            HATEBM_DIVERGED => c"HATEBM_DIVERGED",
            HATEBM_BACKEND_ERROR => c"HATEBM_BACKEND_ERROR",
            HATEBM_INVALID_UTF8 => c"HATEBM_INVALID_UTF8",
            HATEBM_INTERNAL => c"HATEBM_INTERNAL",
            HATEBM_MISUSE => c"HATEBM_MISUSE",
            HATEBM_DISTRIBUTED => c"HATEBM_DISTRIBUTED",
        }
    }

    /// The enumerator's name, e.g. `"HATEBM_SHAPE_MISMATCH"`.
    pub fn name(self) -> &'static str {
        // The names are ASCII literals above.
        self.name_cstr().to_str().unwrap_or("unknown status")
    }
}

impl std::fmt::Display for hatebm_status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<&Error> for hatebm_status {
    /// The status of the error's kind: its [`Error::root`], below any
    /// context the layers it travelled through added.
    fn from(e: &Error) -> Self {
        match e.root() {
            Error::InvalidArgument(_) => HATEBM_INVALID_ARGUMENT,
            Error::ShapeMismatch { .. } => HATEBM_SHAPE_MISMATCH,
            Error::NonFinite(_) => HATEBM_NUMERIC,
            Error::BackendUnavailable { .. } => HATEBM_BACKEND_UNAVAILABLE,
            Error::DeviceUnavailable(_) => HATEBM_DEVICE_UNAVAILABLE,
            Error::Io { .. } => HATEBM_IO,
            Error::Format { .. } => HATEBM_FORMAT,
            Error::Config(_) => HATEBM_CONFIG,
            Error::Param(_) => HATEBM_PARAM,
            Error::Callback(_) => HATEBM_CALLBACK,
            Error::Cancelled => HATEBM_CANCELLED,
            Error::Diverged(_) => HATEBM_DIVERGED,
            Error::Backend(_) => HATEBM_BACKEND_ERROR,
            Error::Distributed(_) => HATEBM_DISTRIBUTED,
            // `Error` is `#[non_exhaustive]`, so this arm is required. A variant
            // that reaches it was added to the core without a status here: that
            // is a libhatebm bug, and it says so rather than guessing a category.
            _ => HATEBM_INTERNAL,
        }
    }
}

impl From<Error> for hatebm_status {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

/// Returns the name of a status code as a static, NUL-terminated string, e.g.
/// `"HATEBM_SHAPE_MISMATCH"`, or `"unknown status"` for a value this library
/// does not know. Never returns NULL; the string must not be freed.
///
/// Takes an `int` (not the enum) so that any integer can be passed safely.
/// Thread-safe; does not touch the last error.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_status_str(status: c_int) -> *const c_char {
    crate::ffi_panic_boundary! {
        default = c"unknown status".as_ptr();
        match hatebm_status::from_raw(status) {
            Some(s) => s.name_cstr().as_ptr(),
            None => c"unknown status".as_ptr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn all_is_indexed_by_value() {
        for (i, s) in hatebm_status::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(hatebm_status::from_raw(i as c_int), Some(*s));
        }
        assert_eq!(hatebm_status::from_raw(-1), None);
        assert_eq!(
            hatebm_status::from_raw(hatebm_status::ALL.len() as c_int),
            None
        );
    }

    #[test]
    fn names_are_distinct_and_match_the_enumerators() {
        let mut names: Vec<&str> = hatebm_status::ALL.iter().map(|s| s.name()).collect();
        for n in &names {
            assert!(n.starts_with("HATEBM_"), "{n}");
        }
        assert_eq!(format!("{HATEBM_NUMERIC}"), "HATEBM_NUMERIC");
        assert_eq!(format!("{HATEBM_NUMERIC:?}"), "HATEBM_NUMERIC");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), hatebm_status::ALL.len());
    }

    #[test]
    fn status_str_handles_unknown_values() {
        let s = |v| {
            // SAFETY: hatebm_status_str always returns a static NUL-terminated string.
            let c = unsafe { CStr::from_ptr(hatebm_status_str(v)) };
            c.to_str().unwrap()
        };
        assert_eq!(s(0), "HATEBM_OK");
        assert_eq!(s(10), "HATEBM_PANIC");
        assert_eq!(s(-7), "unknown status");
        assert_eq!(s(c_int::MAX), "unknown status");
    }

    #[test]
    fn every_core_error_variant_maps_to_its_status() {
        let io = || std::io::Error::other("x");
        let cases: Vec<(Error, hatebm_status)> = vec![
            (Error::InvalidArgument("x".into()), HATEBM_INVALID_ARGUMENT),
            (Error::shape("x", &[1], &[2]), HATEBM_SHAPE_MISMATCH),
            (Error::NonFinite("x".into()), HATEBM_NUMERIC),
            (
                Error::BackendUnavailable {
                    name: "tch:cpu".into(),
                    hint: "feature tch".into(),
                },
                HATEBM_BACKEND_UNAVAILABLE,
            ),
            (
                Error::DeviceUnavailable("cuda:3".into()),
                HATEBM_DEVICE_UNAVAILABLE,
            ),
            (Error::io("/nope", io()), HATEBM_IO),
            (Error::format("ckpt", "truncated"), HATEBM_FORMAT),
            (Error::Config("x".into()), HATEBM_CONFIG),
            (Error::Param("x".into()), HATEBM_PARAM),
            (Error::Callback("x".into()), HATEBM_CALLBACK),
            (Error::Cancelled, HATEBM_CANCELLED),
            (Error::Diverged("x".into()), HATEBM_DIVERGED),
            (Error::Backend("x".into()), HATEBM_BACKEND_ERROR),
            (Error::Distributed("x".into()), HATEBM_DISTRIBUTED),
        ];
        for (e, s) in cases {
            assert_eq!(hatebm_status::from(&e), s, "{e:?}");
            // Context never changes the status.
            let wrapped = e.context("loading x").context("resuming");
            assert_eq!(hatebm_status::from(&wrapped), s, "{wrapped:?}");
        }
    }
}
