//! The panic boundary: no panic ever unwinds into C.
//!
//! Every `extern "C"` body is wrapped in [`ffi_panic_boundary!`], which runs it
//! under [`std::panic::catch_unwind`]. (Since Rust 1.81 a panic escaping an
//! `extern "C"` function aborts the process; for a training harness that would
//! be a lost run, so we catch it instead.) On a panic the payload is recorded as
//! the thread's last error, prefixed with the function name, and the function
//! returns its panic value: `HATEBM_PANIC` for status-returning functions, or the
//! documented default of an infallible getter (NULL, 0, `false`, nothing, or an
//! explicit `default = ...;`).
//!
//! The body's type depends on the function's return type (see [`FfiReturn`]):
//! a function returning `hatebm_status` has a body of type [`FfiResult<()>`],
//! so `?` works on core results and on the `handle` helpers, and an
//! `Err(Failure)` is recorded and turned into its status. Any other return type
//! (pointers, integers, `bool`, `()`) has a body of that same type.
//!
//! Note: `return` inside the body returns from the wrapped closure, which is
//! exactly what a body wants (`return Err(...)` / `return ptr`).
//!
//! After a `HATEBM_PANIC` the process is intact, but the handles passed to that
//! call may hold half-updated state: free them rather than keep using them.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{FfiResult, fail};
use crate::status::{HATEBM_OK, HATEBM_PANIC, hatebm_status};

/// How an entry point's return type interacts with the boundary.
pub trait FfiReturn: Sized {
    /// The type the wrapped body evaluates to.
    type Body;
    /// Turns a completed body into the value returned to C (recording a failure).
    fn finish(body: Self::Body, function: &'static str) -> Self;
    /// The value returned when the body panicked.
    fn on_panic() -> Self;
}

impl FfiReturn for hatebm_status {
    type Body = FfiResult<()>;

    fn finish(body: FfiResult<()>, function: &'static str) -> Self {
        match body {
            Ok(()) => HATEBM_OK,
            Err(failure) => failure.record(Some(function_name(function))),
        }
    }

    fn on_panic() -> Self {
        HATEBM_PANIC
    }
}

/// `plain_return! { Type => panic_default, ... }`: lets an entry point return
/// `Type` by value (its body evaluates to a `Type`; a panic returns the default).
macro_rules! plain_return {
    ($($t:ty => $default:expr),* $(,)?) => {$(
        impl $crate::panic::FfiReturn for $t {
            type Body = $t;
            fn finish(body: $t, _: &'static str) -> $t {
                body
            }
            fn on_panic() -> $t {
                $default
            }
        }
    )*};
}

pub(crate) use plain_return;

plain_return! {
    () => (),
    bool => false,
    u32 => 0,
    u64 => 0,
    usize => 0,
    i32 => 0,
}

impl<T> FfiReturn for *const T {
    type Body = *const T;
    fn finish(body: *const T, _: &'static str) -> *const T {
        body
    }
    fn on_panic() -> *const T {
        std::ptr::null()
    }
}

impl<T> FfiReturn for *mut T {
    type Body = *mut T;
    fn finish(body: *mut T, _: &'static str) -> *mut T {
        body
    }
    fn on_panic() -> *mut T {
        std::ptr::null_mut()
    }
}

/// `"hatebm::check::hatebm_check_finite::__hatebm_fn"` → `"hatebm_check_finite"`.
pub(crate) fn function_name(marker_path: &'static str) -> &'static str {
    let path = marker_path
        .strip_suffix("::__hatebm_fn")
        .unwrap_or(marker_path);
    path.rsplit("::").next().unwrap_or(path)
}

fn payload_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

fn record_panic(function: &'static str, payload: Box<dyn Any + Send>) {
    let name = function_name(function);
    fail(
        HATEBM_PANIC,
        format!(
            "{name}: panic inside libhatebm (a bug; please report it): {}",
            payload_message(&*payload)
        ),
    );
    // A payload whose destructor panics must not escape either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

/// Runs an entry point's body under `catch_unwind`. Use [`ffi_panic_boundary!`].
#[doc(hidden)]
pub fn run<R: FfiReturn>(function: &'static str, body: impl FnOnce() -> R::Body) -> R {
    // AssertUnwindSafe: after a panic we never touch the closure's captures again;
    // the handles it borrowed are documented as "free, don't reuse" after HATEBM_PANIC.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => R::finish(value, function),
        Err(payload) => {
            record_panic(function, payload);
            R::on_panic()
        }
    }
}

/// Like [`run`], with an explicit value to return on panic.
#[doc(hidden)]
pub fn run_or<R: FfiReturn>(
    function: &'static str,
    on_panic: R,
    body: impl FnOnce() -> R::Body,
) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => R::finish(value, function),
        Err(payload) => {
            record_panic(function, payload);
            on_panic
        }
    }
}

/// Wraps the whole body of an `extern "C"` function.
///
/// ```ignore
/// #[unsafe(no_mangle)]
/// pub unsafe extern "C" fn hatebm_thing(x: *const f32, n: usize) -> hatebm_status {
///     ffi_panic_boundary! {
///         // SAFETY: forwarded from this function's `# Safety` section.
///         let x = unsafe { try_slice(x, n, "x") }?;
///         do_thing(x)?;          // hatebm_rs::Result converts with its status
///         Ok(())
///     }
/// }
///
/// #[unsafe(no_mangle)]
/// pub extern "C" fn hatebm_name() -> *const c_char {
///     ffi_panic_boundary! { default = c"".as_ptr(); c"hat".as_ptr() }
/// }
/// ```
macro_rules! ffi_panic_boundary {
    (default = $default:expr; $($body:tt)*) => {{
        fn __hatebm_fn() {}
        $crate::panic::run_or(
            ::std::any::type_name_of_val(&__hatebm_fn),
            $default,
            || { $($body)* },
        )
    }};
    ($($body:tt)*) => {{
        fn __hatebm_fn() {}
        $crate::panic::run(::std::any::type_name_of_val(&__hatebm_fn), || { $($body)* })
    }};
}

pub(crate) use ffi_panic_boundary;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Failure, last_error_string};
    use crate::status::*;

    fn status_fn(mode: u8) -> hatebm_status {
        ffi_panic_boundary! {
            match mode {
                0 => Ok(()),
                1 => Err(Failure::invalid("nope")),
                2 => {
                    let r: hatebm_rs::Result<()> = Err(hatebm_rs::Error::Cancelled);
                    r?;
                    Ok(())
                }
                3 => panic!("boom {}", 3),
                _ => std::panic::panic_any(17_u32),
            }
        }
    }

    fn getter(panics: bool) -> *const u8 {
        ffi_panic_boundary! {
            if panics { panic!("getter") }
            b"x".as_ptr()
        }
    }

    fn getter_with_default(panics: bool) -> u32 {
        ffi_panic_boundary! {
            default = 7;
            if panics { panic!("getter") }
            1
        }
    }

    #[test]
    fn statuses_and_messages() {
        assert_eq!(status_fn(0), HATEBM_OK);
        assert_eq!(status_fn(1), HATEBM_INVALID_ARGUMENT);
        assert_eq!(last_error_string(), "status_fn: nope");
        assert_eq!(status_fn(2), HATEBM_CANCELLED);
        assert_eq!(last_error_string(), "status_fn: cancelled by the caller");
    }

    #[test]
    fn panics_are_caught_and_recorded() {
        assert_eq!(status_fn(3), HATEBM_PANIC);
        let msg = last_error_string();
        assert!(
            msg.starts_with("status_fn: panic inside libhatebm"),
            "{msg}"
        );
        assert!(msg.ends_with("boom 3"), "{msg}");
        assert_eq!(status_fn(4), HATEBM_PANIC);
        assert!(last_error_string().ends_with("non-string panic payload"));
        assert!(getter(true).is_null());
        assert!(!getter(false).is_null());
        assert_eq!(getter_with_default(true), 7);
        assert_eq!(getter_with_default(false), 1);
        assert!(last_error_string().starts_with("getter_with_default: panic"));
    }

    #[test]
    fn function_names() {
        assert_eq!(
            function_name("hatebm::check::hatebm_check_finite::__hatebm_fn"),
            "hatebm_check_finite"
        );
        assert_eq!(function_name("plain"), "plain");
    }
}
