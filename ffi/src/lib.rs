//! # hatebm-ffi
//!
//! The C ABI of libhatebm (`libhatebm.so` / `libhatebm.a`, header
//! `include/hatebm.h`). The conventions are written in one place,
//! `docs/c-abi.md`; in short:
//!
//! * every fallible function returns a [`status::hatebm_status`] (0 = OK) and
//!   writes its out-params only on success; the message of the last failure on
//!   the calling thread is `hatebm_last_error_message()`;
//! * no panic crosses the boundary (`panic.rs`); every pointer is checked
//!   (`handle.rs`); opaque handles come in `_new`/`_free` pairs, `_free(NULL)` is a
//!   no-op;
//! * caller buffers carry their lengths; copy-out functions report the needed
//!   size through `size_t *out_n`.
//!
//! ## Adding an entry point
//!
//! ```ignore
//! /// One-line summary (becomes the header comment). Thread-safety. Errors.
//! ///
//! /// # Safety
//! /// `cfg` is NULL or live; `x` has `n` readable floats; `out` is NULL or writable.
//! #[unsafe(no_mangle)]
//! pub unsafe extern "C" fn hatebm_thing_do(
//!     cfg: *const hatebm_config,  // inputs first, const when not mutated
//!     x: *const f32,
//!     n: usize,                   // every buffer carries its length
//!     out: *mut f32,              // out-params last
//! ) -> hatebm_status {
//!     ffi_panic_boundary! {
//!         // 1. check every pointer (SAFETY: forwarded from the contract above)
//!         let out = unsafe { try_out(out, "out") }?;
//!         let cfg = unsafe { try_ref(cfg, "cfg") }?;
//!         let x = unsafe { try_slice(x, n, "x") }?;
//!         // 2. do the work; core errors convert with `?`
//!         let v = cfg.thing(x)?;
//!         // 3. write outputs only now that nothing can fail
//!         out.write(v);
//!         Ok(())
//!     }
//! }
//! ```
#![allow(non_camel_case_types)]
#![warn(missing_docs)]

pub mod ais;
pub mod bank;
pub mod busy;
pub mod check;
pub mod comm;
pub mod config;
pub mod custom;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod handle;
pub mod io;
pub mod langevin;
pub mod log;
pub mod metrics;
pub mod model;
pub(crate) mod panic;

pub mod sampler;
pub mod session;
pub mod status;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod version;

pub(crate) use panic::ffi_panic_boundary;

pub use error::{Failure, FfiResult};
pub use status::hatebm_status;
