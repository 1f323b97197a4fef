//! Data-parallel sessions: a harness's own collectives as C callbacks
//! (`hatebm_comm`), or, in a build with the `mpi` feature, its MPI
//! communicator (`hatebm_session_new_mpi`). See `docs/distributed.md`.
//!
//! Callback rules (as for every callback of the ABI): callbacks run on the
//! thread that called the library, one at a time, only during a call on the
//! session they belong to; a non-zero return fails that call with
//! `HATEBM_DISTRIBUTED` (its text, if set with `hatebm_callback_set_error`,
//! is in the message). Every rank must make the same calls on its session
//! in the same order, because the library's collectives happen inside them.

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;

use hatebm_rs::dist::Communicator;
use hatebm_rs::runtime::AnyRun;
use hatebm_rs::{Error, Result};

use crate::busy::BusyCell;
use crate::config::hatebm_config;
use crate::custom::{clear_callback_message, hatebm_free_fn, take_callback_message};
use crate::handle::{Versioned, into_raw_box, try_out, try_ref, try_str, try_versioned};
use crate::session::hatebm_session;
use crate::status::hatebm_status;

/// Concatenates every rank's `count` bytes at `send` into `recv` (which
/// holds `size * count` bytes), in rank order, on every rank (MPI_Allgather
/// of bytes). Returns 0 on success.
pub type hatebm_all_gather_fn = Option<
    unsafe extern "C" fn(
        send: *const c_void,
        count: usize,
        recv: *mut c_void,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// Sums `count` floats at `buf` element-wise over all ranks, in place, on
/// every rank (MPI_Allreduce with MPI_SUM). Returns 0 on success.
pub type hatebm_all_reduce_sum_fn =
    Option<unsafe extern "C" fn(buf: *mut f32, count: usize, user_data: *mut c_void) -> c_int>;

/// A harness's collectives over the ranks of one run, as callbacks.
///
/// Initialise with `hatebm_comm_default()` (sets `struct_size`, rank 0 of 1,
/// NULL callbacks), then fill in the members. The library copies the struct.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct hatebm_comm {
    /// `sizeof(hatebm_comm)`; set by `hatebm_comm_default()`.
    pub struct_size: u32,
    /// This process's (or thread's) rank, `0 .. size`.
    pub rank: usize,
    /// The number of ranks (at least 1).
    pub size: usize,
    /// Required when `size > 1`: the all-gather every other collective is built on.
    pub all_gather: hatebm_all_gather_fn,
    /// Optional (may be NULL): a native all-reduce, used only with
    /// `dist.reduce = "all_reduce"`; NULL = all-gather and add in rank order.
    pub all_reduce_sum_f32: hatebm_all_reduce_sum_fn,
    /// Passed to every callback.
    pub user_data: *mut c_void,
    /// Optional (may be NULL): called once with `user_data` when the session
    /// is freed (not if creating the session fails).
    pub free: hatebm_free_fn,
}

// SAFETY: repr(C), first field u32 = struct size; callbacks are Option (NULL
// is None), user_data a raw pointer and rank/size plain integers, so any C
// value is a valid Rust value.
unsafe impl Versioned for hatebm_comm {
    const INIT: &'static str = "hatebm_comm_default()";
}

const DEFAULT_COMM: hatebm_comm = hatebm_comm {
    struct_size: std::mem::size_of::<hatebm_comm>() as u32,
    rank: 0,
    size: 1,
    all_gather: None,
    all_reduce_sum_f32: None,
    user_data: std::ptr::null_mut(),
    free: None,
};

crate::panic::plain_return! {
    hatebm_comm => DEFAULT_COMM,
}

/// A communicator with `struct_size` set, rank 0 of 1 and NULL callbacks.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_comm_default() -> hatebm_comm {
    crate::ffi_panic_boundary! {
        DEFAULT_COMM
    }
}

/// The callbacks of a `hatebm_comm` as a [`Communicator`].
#[derive(Debug)]
struct CallbackComm {
    vt: hatebm_comm,
    /// Set once the session exists: only then does the library own
    /// `user_data` (a failed `hatebm_session_new_distributed` leaves it to
    /// the harness).
    owns_user_data: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

// SAFETY: the callbacks and `user_data` are used only by the session that
// owns this communicator, which is used by one thread at a time (its busy
// flag refuses concurrent calls); the harness promises (documented) that its
// callbacks may be called from whichever thread calls the session.
unsafe impl Send for CallbackComm {}

impl CallbackComm {
    fn new(vt: hatebm_comm) -> Result<Self> {
        if vt.size == 0 || vt.rank >= vt.size {
            return Err(Error::InvalidArgument(format!(
                "comm: rank {} of size {} is not a rank",
                vt.rank, vt.size
            )));
        }
        if vt.size > 1 && vt.all_gather.is_none() {
            return Err(Error::InvalidArgument(
                "comm->all_gather is NULL: a communicator of several ranks needs it".into(),
            ));
        }
        Ok(CallbackComm {
            vt,
            owns_user_data: Default::default(),
        })
    }

    /// The flag to set once the session that owns this communicator exists.
    fn ownership(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        std::sync::Arc::clone(&self.owns_user_data)
    }

    fn check(&self, what: &str, code: c_int) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        let detail = take_callback_message()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        Err(Error::Distributed(format!(
            "the harness's {what} callback returned {code} on rank {} of {}{detail}",
            self.vt.rank, self.vt.size
        )))
    }
}

impl Communicator for CallbackComm {
    fn rank(&self) -> usize {
        self.vt.rank
    }

    fn size(&self) -> usize {
        self.vt.size
    }

    fn describe(&self) -> String {
        format!("C callbacks (rank {} of {})", self.vt.rank, self.vt.size)
    }

    fn all_gather(&self, local: &[u8], out: &mut [u8]) -> Result<()> {
        hatebm_rs::dist::check_gather_len(self.vt.size, local.len(), out.len())?;
        let Some(f) = self.vt.all_gather.filter(|_| self.vt.size > 1) else {
            out.copy_from_slice(local);
            return Ok(());
        };
        clear_callback_message();
        // SAFETY: `local` is readable for `local.len()` bytes and `out`
        // writable for `size * local.len()` bytes (checked above), as the
        // callback's contract says; `user_data` is the harness's.
        let code = unsafe {
            f(
                local.as_ptr().cast(),
                local.len(),
                out.as_mut_ptr().cast(),
                self.vt.user_data,
            )
        };
        self.check("all_gather", code)
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        match self.vt.all_reduce_sum_f32 {
            Some(f) => {
                clear_callback_message();
                // SAFETY: `buf` is writable for `buf.len()` floats.
                let code = unsafe { f(buf.as_mut_ptr(), buf.len(), self.vt.user_data) };
                self.check("all_reduce_sum_f32", code)
            }
            None => {
                let all = hatebm_rs::dist::all_gather_f32(self, buf)?;
                buf.fill(0.0);
                for part in all.chunks_exact(buf.len().max(1)) {
                    for (v, p) in buf.iter_mut().zip(part) {
                        *v += p;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Drop for CallbackComm {
    fn drop(&mut self) {
        if let Some(free) = self.vt.free
            && self
                .owns_user_data
                .load(std::sync::atomic::Ordering::Acquire)
        {
            // SAFETY: called once, when the session that owns `user_data` goes.
            unsafe { free(self.vt.user_data) };
        }
    }
}

/// Builds a run over the harness's callbacks `vt`; the library owns
/// `vt.user_data` (and calls `vt.free`) only if `build` succeeds.
fn with_callback_comm(
    vt: hatebm_comm,
    build: impl FnOnce(Box<dyn Communicator>) -> Result<AnyRun>,
) -> Result<AnyRun> {
    let comm = CallbackComm::new(vt)?;
    let owned = comm.ownership();
    let run = build(Box::new(comm))?;
    owned.store(true, std::sync::atomic::Ordering::Release);
    Ok(run)
}

/// Builds one rank's session of a data-parallel run whose collectives are
/// the harness's callbacks `comm` (copied). Every rank calls it with the
/// same configuration; the run's `dist.shards` must be a multiple of
/// `comm->size`. Afterwards each rank makes the same calls on its session
/// (`hatebm_session_step`, `_train`, `_save_checkpoint`, ...) in the same
/// order; results (weights, optimiser state, bank, statistics) are bitwise
/// those of one process with the same `dist.shards`. Only rank 0 writes files.
///
/// `HATEBM_INVALID_ARGUMENT` for a rank/size that do not fit or a NULL
/// `all_gather` with `size > 1`; `HATEBM_DISTRIBUTED` if a callback fails or
/// the ranks disagree (configuration, library version) or another rank
/// failed (its message is given); otherwise as `hatebm_session_new`. On
/// failure `comm->free` is not called.
///
/// # Safety
/// `cfg` is NULL or live; `comm` is NULL or points to a `hatebm_comm`
/// initialised by `hatebm_comm_default()`, whose callbacks follow their
/// contracts; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_new_distributed(
    cfg: *const hatebm_config,
    comm: *const hatebm_comm,
    out: *mut *mut hatebm_session,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { try_ref(cfg, "cfg") }?;
        // SAFETY: forwarded from this function's contract.
        let vt = unsafe { try_versioned(comm, "comm") }?;
        let config = cfg.build()?;
        let run = with_callback_comm(vt, |comm| AnyRun::new_distributed(config, comm))?;
        out.write(into_raw_box(BusyCell::new(run)));
        Ok(())
    }
}

/// [`hatebm_session_resume`](crate::session::hatebm_session_resume) for one
/// rank of a data-parallel run over the harness's callbacks (see
/// `hatebm_session_new_distributed`). Any number of ranks that divides the
/// checkpoint's `dist.shards` continues the run exactly.
///
/// # Safety
/// As `hatebm_session_resume` and `hatebm_session_new_distributed`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_resume_distributed(
    path: *const c_char,
    cfg: *const hatebm_config,
    comm: *const hatebm_comm,
    out: *mut *mut hatebm_session,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        // SAFETY: forwarded from this function's contract.
        let vt = unsafe { try_versioned(comm, "comm") }?;
        let config = if cfg.is_null() {
            None
        } else {
            // SAFETY: forwarded from this function's contract.
            Some(unsafe { try_ref(cfg, "cfg") }?.build()?)
        };
        let run = with_callback_comm(vt, |comm| {
            AnyRun::resume_distributed(Path::new(path), config, comm)
        })?;
        out.write(into_raw_box(BusyCell::new(run)));
        Ok(())
    }
}

/// Builds one rank's session of a data-parallel run over the harness's MPI
/// communicator, given as its Fortran handle (`MPI_Comm_c2f(comm)`), which
/// the library duplicates (the harness's own traffic never mixes with the
/// library's). MPI must be initialised (at `MPI_THREAD_SERIALIZED` or above
/// if the session is used from more than one thread); the library never
/// finalises it. Otherwise as `hatebm_session_new_distributed`.
///
/// `HATEBM_DISTRIBUTED` in a build without the `mpi` feature, if MPI is not
/// initialised, or for `MPI_COMM_NULL`.
///
/// # Safety
/// `cfg` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_new_mpi(
    cfg: *const hatebm_config,
    mpi_comm_f: c_int,
    out: *mut *mut hatebm_session,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { try_ref(cfg, "cfg") }?;
        let config = cfg.build()?;
        let comm = mpi_comm(mpi_comm_f)?;
        let run = AnyRun::new_distributed(config, comm)?;
        out.write(into_raw_box(BusyCell::new(run)));
        Ok(())
    }
}

#[cfg(feature = "mpi")]
fn mpi_comm(handle: c_int) -> Result<Box<dyn Communicator>> {
    Ok(Box::new(hatebm_rs::dist::MpiComm::from_fortran_handle(
        handle,
    )?))
}

#[cfg(not(feature = "mpi"))]
fn mpi_comm(_handle: c_int) -> Result<Box<dyn Communicator>> {
    Err(Error::Distributed(
        "this libhatebm was built without MPI (rebuild hatebm-ffi with `--features mpi`); use hatebm_session_new_distributed with your own collectives".into(),
    ))
}
