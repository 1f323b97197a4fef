//! Forwarding the library's `log` records to a C callback.
//!
//! One process-wide hook ([`hatebm_log_set`]). It is safe to change from any
//! thread at any time: records are delivered under a read lock, and
//! `hatebm_log_set` takes the write lock, so once it returns the previous
//! callback is not running and will not be called again (its `user_data` may be
//! freed). A callback runs on whatever thread logged, possibly several at once.
//! Records logged from inside the callback (e.g. by a failing `hatebm_*` call it
//! makes) are dropped rather than delivered recursively.

use std::cell::Cell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};

use ::log::{Level, LevelFilter, Log, Metadata, Record};

use crate::error::{Failure, FfiResult};
use crate::status::*;

/// Log levels, as passed to `hatebm_log_cb` and `hatebm_log_set_level`.
/// Larger values are more verbose.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hatebm_log_level {
    /// No records (only for `hatebm_log_set_level`).
    Off = 0,
    /// Errors: a call is failing because of a libhatebm bug or environment failure.
    Error = 1,
    /// Warnings: caller mistakes (NULL or non-UTF-8 arguments), suspicious settings.
    Warn = 2,
    /// Progress and one-off facts (backend chosen, checkpoint written).
    Info = 3,
    /// Every failed call, with its message; details useful when debugging.
    Debug = 4,
    /// Very verbose tracing.
    Trace = 5,
}

/// A log callback: `level` is a `hatebm_log_level` value, `target` the emitting
/// module (e.g. `"hatebm::ffi"`), `message` the text. Both strings are valid only
/// during the call. It may be called from several threads at once; it must not
/// throw (C++) or `longjmp` out.
#[allow(non_camel_case_types)]
pub type hatebm_log_cb = Option<
    unsafe extern "C" fn(
        level: c_int,
        target: *const c_char,
        message: *const c_char,
        user_data: *mut c_void,
    ),
>;

#[derive(Clone, Copy)]
struct Sink {
    cb: unsafe extern "C" fn(c_int, *const c_char, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: `hatebm_log_set` documents that the callback and user_data must be
// usable from any thread; the library only passes `user_data` back to `cb`.
unsafe impl Send for Sink {}
// SAFETY: as above; Sink is only copied and called, never mutated.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALLED: OnceLock<bool> = OnceLock::new();
static LEVEL_CHOSEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

struct CLogger;
static LOGGER: CLogger = CLogger;

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "?")).unwrap_or_default()
}

impl Log for CLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= ::log::max_level() && !IN_CALLBACK.get()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let guard = SINK.read().unwrap_or_else(|e| e.into_inner());
        let Some(sink) = *guard else { return };
        let target = c_string(record.target());
        let message = c_string(&record.args().to_string());
        IN_CALLBACK.set(true);
        // SAFETY: the callback and user_data were registered together through
        // hatebm_log_set, whose contract makes them callable from any thread;
        // both strings outlive the call.
        unsafe {
            (sink.cb)(
                record.level() as c_int,
                target.as_ptr(),
                message.as_ptr(),
                sink.user_data,
            );
        }
        IN_CALLBACK.set(false);
    }

    fn flush(&self) {}
}

fn install() -> FfiResult<()> {
    let ok = *INSTALLED.get_or_init(|| ::log::set_logger(&LOGGER).is_ok());
    if !ok {
        return Err(Failure::invalid(
            "another `log` logger is already installed in this process \
             (libhatebm is linked into a Rust program that manages logging itself)",
        ));
    }
    if !LEVEL_CHOSEN.load(Ordering::Relaxed) {
        ::log::set_max_level(LevelFilter::Warn);
    }
    Ok(())
}

/// Sets (or, with `callback = NULL`, removes) the process-wide log callback.
/// `user_data` is passed back to every call.
///
/// Until `hatebm_log_set_level` is called, records up to `HATEBM_LOG_LEVEL_WARN`
/// are delivered. Safe to call from any thread at any time, except from inside
/// the log callback itself (`HATEBM_INVALID_ARGUMENT`). When it returns, the
/// previous callback is no longer running and will not be called again.
///
/// Fails with `HATEBM_INVALID_ARGUMENT` if the library is linked into a Rust
/// program that already installed its own `log` logger.
///
/// # Safety
/// `callback` must be safe to call from any thread with this `user_data` until
/// it is replaced or removed by another `hatebm_log_set`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_log_set(
    callback: hatebm_log_cb,
    user_data: *mut c_void,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        if IN_CALLBACK.get() {
            return Err(Failure::invalid(
                "the log callback cannot be changed from inside the log callback",
            ));
        }
        let sink = callback.map(|cb| Sink { cb, user_data });
        if sink.is_some() {
            install()?;
        }
        *SINK.write().unwrap_or_else(|e| e.into_inner()) = sink;
        Ok(())
    }
}

/// Sets the most verbose level delivered to the log callback (a
/// `hatebm_log_level` value, 0 = off ... 5 = trace). Process-wide; safe from any
/// thread. `HATEBM_INVALID_ARGUMENT` for a value outside 0..=5.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_log_set_level(level: c_int) -> hatebm_status {
    crate::ffi_panic_boundary! {
        let filter = match level {
            0 => LevelFilter::Off,
            1 => LevelFilter::Error,
            2 => LevelFilter::Warn,
            3 => LevelFilter::Info,
            4 => LevelFilter::Debug,
            5 => LevelFilter::Trace,
            _ => return Err(Failure::invalid(format!("log level {level} is not in 0..=5"))),
        };
        LEVEL_CHOSEN.store(true, Ordering::Relaxed);
        ::log::set_max_level(filter);
        Ok(())
    }
}

const _: () = {
    assert!(Level::Error as usize == hatebm_log_level::Error as usize);
    assert!(Level::Warn as usize == hatebm_log_level::Warn as usize);
    assert!(Level::Info as usize == hatebm_log_level::Info as usize);
    assert!(Level::Debug as usize == hatebm_log_level::Debug as usize);
    assert!(Level::Trace as usize == hatebm_log_level::Trace as usize);
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::sync::Mutex;

    type Seen = Vec<(std::thread::ThreadId, c_int, String, String)>;
    static SEEN: Mutex<Seen> = Mutex::new(Vec::new());

    unsafe extern "C" fn collect(
        level: c_int,
        target: *const c_char,
        message: *const c_char,
        user_data: *mut c_void,
    ) {
        assert_eq!(user_data as usize, 0x1234);
        // SAFETY: the logger passes valid NUL-terminated strings.
        let (t, m) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
        SEEN.lock().unwrap().push((
            std::thread::current().id(),
            level,
            t.to_string_lossy().into_owned(),
            m.to_string_lossy().into_owned(),
        ));
        // A failing call from inside the callback must not recurse or deadlock.
        assert_eq!(hatebm_log_set_level(99), HATEBM_INVALID_ARGUMENT);
        // SAFETY: changing the callback from inside it is rejected before use.
        let st = unsafe { hatebm_log_set(None, std::ptr::null_mut()) };
        assert_eq!(st, HATEBM_INVALID_ARGUMENT);
    }

    #[test]
    fn forwards_records_to_the_callback() {
        // SAFETY: `collect` is thread-safe (it locks SEEN).
        let st = unsafe { hatebm_log_set(Some(collect), 0x1234 as *mut c_void) };
        assert_eq!(st, HATEBM_OK);
        assert_eq!(hatebm_log_set_level(4), HATEBM_OK);
        ::log::info!(target: "hatebm::test", "hello {}", 42);
        ::log::trace!(target: "hatebm::test", "filtered out");
        crate::error::fail(HATEBM_CONFIG, "bad key");
        // SAFETY: removing the callback.
        let st = unsafe { hatebm_log_set(None, std::ptr::null_mut()) };
        assert_eq!(st, HATEBM_OK);
        ::log::error!(target: "hatebm::test", "after removal");
        // Other tests run concurrently and log too: keep this thread's records.
        let me = std::thread::current().id();
        let seen: Vec<_> = SEEN
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.0 == me)
            .map(|r| (r.1, r.2.clone(), r.3.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (3, "hatebm::test".into(), "hello 42".into()),
                (4, "hatebm::ffi".into(), "bad key (HATEBM_CONFIG)".into()),
            ]
        );
        assert_eq!(hatebm_log_set_level(-1), HATEBM_INVALID_ARGUMENT);
    }
}
