//! User models written in C (or C++, or anything with a C ABI): an energy and a
//! generator given as vtables of callbacks on host buffers, wrapped as the
//! core's [`Energy<CpuBackend>`] and [`Generator<CpuBackend>`], so the Langevin
//! sampler and the bank run on them exactly as on the built-in networks.
//!
//! Callback contract (also in the header): buffers are row-major `float`, the
//! library owns them and they are valid only during the call; return 0 on
//! success and non-zero on failure (the library call then fails with
//! `HATEBM_CALLBACK`, naming the callback and the code, plus the text given to
//! `hatebm_callback_set_error` if the callback called it, and which call of the
//! model within that library call it was). Outputs are
//! pre-filled with NaN and checked: a callback that returns 0 but leaves an
//! output unwritten or non-finite fails the call with `HATEBM_NUMERIC`.
//! Callbacks run on the thread that called the library, one at a time.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int, c_void};

use hatebm_rs::cpu::{CpuBackend, CpuTensor};
use hatebm_rs::params::{Grads, ParamSet};
use hatebm_rs::{Energy, Error, Generator, Result};

use crate::check::first_non_finite;
use crate::handle::{
    Versioned, box_castable, free_box, into_raw_box, try_out, try_slice, try_versioned,
};
use crate::status::hatebm_status;

thread_local! {
    static CALLBACK_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Lets a failing callback explain itself: stores `message` (copied; NULL
/// clears it) for the calling thread. When the callback then returns non-zero,
/// the library's error message includes this text. Intended to be called from
/// inside a callback, right before it returns its failure code; the text is
/// discarded when the next callback starts. Never fails; invalid UTF-8 is
/// replaced.
///
/// # Safety
/// `message` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_callback_set_error(message: *const c_char) {
    crate::ffi_panic_boundary! {
        let text = if message.is_null() {
            None
        } else {
            // SAFETY: non-null and NUL-terminated per this function's contract.
            Some(unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned())
        };
        let _ = CALLBACK_MESSAGE.try_with(|m| *m.borrow_mut() = text);
    }
}

pub(crate) fn clear_callback_message() {
    let _ = CALLBACK_MESSAGE.try_with(|m| m.borrow_mut().take());
}

pub(crate) fn take_callback_message() -> Option<String> {
    CALLBACK_MESSAGE
        .try_with(|m| m.borrow_mut().take())
        .ok()
        .flatten()
}

/// Computes the energy of `n` samples: reads `x[n * sample_len]`, writes
/// `out_energy[n]`. Returns 0 on success, non-zero on failure.
#[allow(non_camel_case_types)]
pub type hatebm_energy_fn = Option<
    unsafe extern "C" fn(
        x: *const f32,
        n: usize,
        sample_len: usize,
        out_energy: *mut f32,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// Computes the energy of `n` samples and its gradient with respect to each
/// sample: reads `x[n * sample_len]`, writes `out_energy[n]` and
/// `out_grad[n * sample_len]` (row b = dU(x_b)/dx_b). Returns 0 on success.
#[allow(non_camel_case_types)]
pub type hatebm_energy_grad_fn = Option<
    unsafe extern "C" fn(
        x: *const f32,
        n: usize,
        sample_len: usize,
        out_energy: *mut f32,
        out_grad: *mut f32,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// Releases `user_data` when the library drops the object that owns it.
#[allow(non_camel_case_types)]
pub type hatebm_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A user-supplied energy function U(x) (lower = more likely), as callbacks.
///
/// Initialise with `hatebm_energy_default_vtable()` (sets `struct_size` and
/// NULLs), then fill in the members.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct hatebm_energy_vtable {
    /// `sizeof(hatebm_energy_vtable)`; set by `hatebm_energy_default_vtable()`.
    pub struct_size: u32,
    /// Required: U(x) per sample.
    pub energy: hatebm_energy_fn,
    /// Required: U(x) per sample and dU/dx.
    pub grad_x: hatebm_energy_grad_fn,
    /// Optional (may be NULL): a short name used in messages; copied.
    pub name: *const c_char,
    /// Optional (may be NULL): called once with `user_data` when the
    /// `hatebm_energy` is freed (not if `hatebm_energy_new` fails).
    pub free: hatebm_free_fn,
}

// SAFETY: repr(C), first field u32 = struct size; function pointers are
// Option (NULL is None) and the name is a raw pointer, so any C value is valid.
unsafe impl Versioned for hatebm_energy_vtable {
    const INIT: &'static str = "hatebm_energy_default_vtable()";
}

/// Runs the generator: reads latents `z[n * latent_len]`, writes samples
/// `out_x[n * sample_len]`. Returns 0 on success.
#[allow(non_camel_case_types)]
pub type hatebm_generator_forward_fn = Option<
    unsafe extern "C" fn(
        z: *const f32,
        n: usize,
        latent_len: usize,
        out_x: *mut f32,
        sample_len: usize,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// The vector-Jacobian product with respect to the latent: given latents
/// `z[n * latent_len]` and a cotangent `cot[n * sample_len]` (same shape as
/// G(z)), writes `out_grad_z[n * latent_len]` = d(sum <G(z), cot>)/dz.
/// Returns 0 on success.
#[allow(non_camel_case_types)]
pub type hatebm_generator_vjp_fn = Option<
    unsafe extern "C" fn(
        z: *const f32,
        cot: *const f32,
        n: usize,
        latent_len: usize,
        sample_len: usize,
        out_grad_z: *mut f32,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// A user-supplied generator x = G(z), as callbacks.
///
/// Initialise with `hatebm_generator_default_vtable()`, then fill in the members.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct hatebm_generator_vtable {
    /// `sizeof(hatebm_generator_vtable)`; set by `hatebm_generator_default_vtable()`.
    pub struct_size: u32,
    /// Required: G(z).
    pub forward: hatebm_generator_forward_fn,
    /// Required when latents move in Langevin sampling (`update_latents`);
    /// may be NULL otherwise (a call that needs it then fails with
    /// `HATEBM_INVALID_ARGUMENT`).
    pub vjp_latent: hatebm_generator_vjp_fn,
    /// Optional (may be NULL): a short name used in messages; copied.
    pub name: *const c_char,
    /// Optional (may be NULL): called once with `user_data` when the
    /// `hatebm_generator` is freed (not if `hatebm_generator_new` fails).
    pub free: hatebm_free_fn,
}

// SAFETY: as for hatebm_energy_vtable.
unsafe impl Versioned for hatebm_generator_vtable {
    const INIT: &'static str = "hatebm_generator_default_vtable()";
}

/// An energy whose computations are C callbacks (see `hatebm_energy_new`).
///
/// Thread-safety: one thread at a time; its callbacks run on the thread that
/// called the library, never concurrently.
#[derive(Debug)]
pub struct hatebm_energy {
    _private: [u8; 0],
}

/// A generator whose computations are C callbacks (see `hatebm_generator_new`).
///
/// Thread-safety: one thread at a time; its callbacks run on the thread that
/// called the library, never concurrently.
#[derive(Debug)]
pub struct hatebm_generator {
    _private: [u8; 0],
}

/// The parts every callback model shares.
struct CallbackCommon {
    name: String,
    user_data: *mut c_void,
    free: hatebm_free_fn,
    calls: Cell<u64>,
    params: ParamSet<CpuBackend>,
}

impl std::fmt::Debug for CallbackCommon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCommon")
            .field("name", &self.name)
            .field("calls", &self.calls.get())
            .finish_non_exhaustive()
    }
}

impl CallbackCommon {
    fn new(
        name: *const c_char,
        default: &str,
        user_data: *mut c_void,
        free: hatebm_free_fn,
    ) -> Result<Self> {
        let name = if name.is_null() {
            default.to_string()
        } else {
            // SAFETY: the vtable's `name` is NULL or NUL-terminated (documented).
            unsafe { CStr::from_ptr(name) }
                .to_str()
                .map_err(|e| {
                    Error::InvalidArgument(format!(
                        "vtable->name is not UTF-8 (byte {} is invalid); every string crossing the ABI is UTF-8",
                        e.valid_up_to()
                    ))
                })?
                .to_owned()
        };
        Ok(CallbackCommon {
            name,
            user_data,
            free,
            calls: Cell::new(0),
            params: ParamSet::init(&CpuBackend::new(), &[], 0)?,
        })
    }

    /// Runs one callback: numbers the call, clears any stale message, maps a
    /// non-zero return to [`Error::Callback`].
    fn call(&self, what: &str, f: impl FnOnce() -> c_int) -> Result<()> {
        let k = self.calls.get() + 1;
        self.calls.set(k);
        clear_callback_message();
        let code = f();
        if code == 0 {
            return Ok(());
        }
        let detail = take_callback_message()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        Err(Error::Callback(format!(
            "{what} callback of `{}` returned {code} (call {k} of this hatebm call){detail}",
            self.name
        )))
    }

    /// Checks an output the callback promised to fill (pre-filled with NaN).
    fn check_output(&self, what: &str, out: &str, data: &[f32]) -> Result<()> {
        match first_non_finite(data) {
            None => Ok(()),
            Some(i) => Err(Error::NonFinite(format!(
                "{out}[{i}] = {} after the {what} callback of `{}` returned 0 (unwritten or not finite)",
                data[i], self.name
            ))),
        }
    }
}

impl Drop for CallbackCommon {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the vtable's free was registered with this user_data and is
            // called exactly once, here, when the owning handle is dropped.
            unsafe { free(self.user_data) }
        }
    }
}

/// The Rust value behind a `hatebm_energy`.
#[derive(Debug)]
pub(crate) struct CallbackEnergy {
    common: CallbackCommon,
    energy: unsafe extern "C" fn(*const f32, usize, usize, *mut f32, *mut c_void) -> c_int,
    grad_x:
        unsafe extern "C" fn(*const f32, usize, usize, *mut f32, *mut f32, *mut c_void) -> c_int,
    shape: Vec<usize>,
    sample_len: usize,
}

// SAFETY: the library calls a callback model only from the thread that made the
// hatebm call, never from two threads at once (its handle is documented "one
// thread at a time", and the sampler and bank evaluate models sequentially; the
// CPU backend's worker threads run tensor kernels, never models). user_data is
// only passed back to the user's callbacks.
unsafe impl Send for CallbackEnergy {}
// SAFETY: as above; the `calls` counter is only touched by that one thread.
unsafe impl Sync for CallbackEnergy {}

box_castable!(hatebm_energy => CallbackEnergy);

fn rows(x: &CpuTensor, sample_len: usize, what: &str, shape: &[usize]) -> Result<usize> {
    let s = x.shape();
    let n = s.first().copied().unwrap_or(0);
    if x.len() != n * sample_len || n == 0 {
        let mut want = vec![n.max(1)];
        want.extend_from_slice(shape);
        return Err(Error::shape(what, &want, s));
    }
    Ok(n)
}

impl Energy<CpuBackend> for CallbackEnergy {
    fn describe(&self) -> String {
        format!("{} (C callbacks)", self.common.name)
    }

    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }

    fn energy(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let n = rows(x, self.sample_len, "energy input", &self.shape)?;
        let mut e = vec![f32::NAN; n];
        self.common.call("energy", || {
            // SAFETY: x has n * sample_len floats and e has n; both live for the call.
            unsafe {
                (self.energy)(
                    x.as_slice().as_ptr(),
                    n,
                    self.sample_len,
                    e.as_mut_ptr(),
                    self.common.user_data,
                )
            }
        })?;
        self.common.check_output("energy", "out_energy", &e)?;
        CpuTensor::from_vec(e, &[n])
    }

    fn energy_grad_x(&self, x: &CpuTensor) -> Result<(CpuTensor, CpuTensor)> {
        let n = rows(x, self.sample_len, "energy input", &self.shape)?;
        let mut e = vec![f32::NAN; n];
        let mut g = vec![f32::NAN; x.len()];
        self.common.call("grad_x", || {
            // SAFETY: x and g have n * sample_len floats, e has n; all live for the call.
            unsafe {
                (self.grad_x)(
                    x.as_slice().as_ptr(),
                    n,
                    self.sample_len,
                    e.as_mut_ptr(),
                    g.as_mut_ptr(),
                    self.common.user_data,
                )
            }
        })?;
        self.common.check_output("grad_x", "out_energy", &e)?;
        self.common.check_output("grad_x", "out_grad", &g)?;
        Ok((
            CpuTensor::from_vec(e, &[n])?,
            CpuTensor::from_vec(g, x.shape())?,
        ))
    }

    fn energy_grad_params(
        &self,
        _x: &CpuTensor,
        _weights: &[f32],
        _grads: &mut Grads<CpuBackend>,
    ) -> Result<CpuTensor> {
        Err(Error::InvalidArgument(format!(
            "`{}` is a callback energy without trainable parameters",
            self.common.name
        )))
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.common.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.common.params
    }
}

/// The Rust value behind a `hatebm_generator`.
#[derive(Debug)]
pub(crate) struct CallbackGenerator {
    common: CallbackCommon,
    forward: unsafe extern "C" fn(*const f32, usize, usize, *mut f32, usize, *mut c_void) -> c_int,
    vjp: hatebm_generator_vjp_fn,
    latent_shape: Vec<usize>,
    output_shape: Vec<usize>,
    latent_len: usize,
    sample_len: usize,
}

// SAFETY: as for CallbackEnergy.
unsafe impl Send for CallbackGenerator {}
// SAFETY: as for CallbackEnergy.
unsafe impl Sync for CallbackGenerator {}

box_castable!(hatebm_generator => CallbackGenerator);

impl CallbackGenerator {
    pub(crate) fn latent_len(&self) -> usize {
        self.latent_len
    }

    pub(crate) fn sample_len(&self) -> usize {
        self.sample_len
    }

    /// Restarts the call numbering (at the start of every library call).
    pub(crate) fn reset_calls(&self) {
        self.common.calls.set(0);
    }
}

impl CallbackEnergy {
    pub(crate) fn sample_len(&self) -> usize {
        self.sample_len
    }

    /// Restarts the call numbering (at the start of every library call).
    pub(crate) fn reset_calls(&self) {
        self.common.calls.set(0);
    }
}

impl Generator<CpuBackend> for CallbackGenerator {
    fn describe(&self) -> String {
        format!("{} (C callbacks)", self.common.name)
    }

    fn latent_shape(&self) -> &[usize] {
        &self.latent_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&self, z: &CpuTensor) -> Result<CpuTensor> {
        let n = rows(z, self.latent_len, "generator latent", &self.latent_shape)?;
        let mut x = vec![f32::NAN; n * self.sample_len];
        self.common.call("forward", || {
            // SAFETY: z has n * latent_len floats, x has n * sample_len; both live.
            unsafe {
                (self.forward)(
                    z.as_slice().as_ptr(),
                    n,
                    self.latent_len,
                    x.as_mut_ptr(),
                    self.sample_len,
                    self.common.user_data,
                )
            }
        })?;
        self.common.check_output("forward", "out_x", &x)?;
        let mut shape = vec![n];
        shape.extend_from_slice(&self.output_shape);
        CpuTensor::from_vec(x, &shape)
    }

    fn vjp_latent(&self, z: &CpuTensor, cot: &CpuTensor) -> Result<CpuTensor> {
        let Some(vjp) = self.vjp else {
            return Err(Error::InvalidArgument(format!(
                "generator `{}` has no vjp_latent callback (needed when latents move)",
                self.common.name
            )));
        };
        let n = rows(z, self.latent_len, "generator latent", &self.latent_shape)?;
        if cot.len() != n * self.sample_len {
            let mut want = vec![n];
            want.extend_from_slice(&self.output_shape);
            return Err(Error::shape("generator cotangent", &want, cot.shape()));
        }
        let mut gz = vec![f32::NAN; z.len()];
        self.common.call("vjp_latent", || {
            // SAFETY: z and gz have n * latent_len floats, cot n * sample_len; all live.
            unsafe {
                vjp(
                    z.as_slice().as_ptr(),
                    cot.as_slice().as_ptr(),
                    n,
                    self.latent_len,
                    self.sample_len,
                    gz.as_mut_ptr(),
                    self.common.user_data,
                )
            }
        })?;
        self.common.check_output("vjp_latent", "out_grad_z", &gz)?;
        CpuTensor::from_vec(gz, z.shape())
    }

    fn vjp_params(
        &self,
        _z: &CpuTensor,
        _cot: &CpuTensor,
        _grads: &mut Grads<CpuBackend>,
    ) -> Result<()> {
        Err(Error::InvalidArgument(format!(
            "`{}` is a callback generator without trainable parameters",
            self.common.name
        )))
    }

    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.common.params
    }

    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.common.params
    }
}

/// Checks a shape given as `(dims, ndim)` and returns it with its element count.
///
/// # Safety
/// `dims` is NULL or points to `ndim` readable `size_t`.
unsafe fn read_shape(
    dims: *const usize,
    ndim: usize,
    name: &'static str,
) -> crate::FfiResult<(Vec<usize>, usize)> {
    // SAFETY: forwarded.
    let dims = unsafe { try_slice(dims, ndim, name) }?;
    if dims.is_empty() || dims.contains(&0) {
        return Err(crate::Failure::invalid(format!(
            "`{name}` must have at least one dimension, all positive; got {dims:?}"
        )));
    }
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&l| l <= isize::MAX as usize / 4)
        .ok_or_else(|| crate::Failure::invalid(format!("`{name}` {dims:?} is too large")))?;
    Ok((dims.to_vec(), len))
}

/// A vtable with `struct_size` set and every member NULL; fill in the callbacks.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_energy_default_vtable() -> hatebm_energy_vtable {
    crate::ffi_panic_boundary! {
        default = EMPTY_ENERGY_VTABLE;
        EMPTY_ENERGY_VTABLE
    }
}

const EMPTY_ENERGY_VTABLE: hatebm_energy_vtable = hatebm_energy_vtable {
    struct_size: std::mem::size_of::<hatebm_energy_vtable>() as u32,
    energy: None,
    grad_x: None,
    name: std::ptr::null(),
    free: None,
};

const EMPTY_GENERATOR_VTABLE: hatebm_generator_vtable = hatebm_generator_vtable {
    struct_size: std::mem::size_of::<hatebm_generator_vtable>() as u32,
    forward: None,
    vjp_latent: None,
    name: std::ptr::null(),
    free: None,
};

/// A vtable with `struct_size` set and every member NULL; fill in the callbacks.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_generator_default_vtable() -> hatebm_generator_vtable {
    crate::ffi_panic_boundary! {
        default = EMPTY_GENERATOR_VTABLE;
        EMPTY_GENERATOR_VTABLE
    }
}

/// Wraps user callbacks as an energy function on samples of shape
/// `sample_shape[0..ndim]` (e.g. `{2}` for 2-D points, `{1, 28, 28}` for images;
/// callbacks see `sample_len` = the product). The vtable is copied (and its
/// `name`); `user_data` is passed to every callback. On success the energy owns
/// `user_data` in the sense that `vtable->free` (if set) is called once by
/// `hatebm_energy_free`; on failure nothing is called and `user_data` stays yours.
///
/// `HATEBM_NULL_PARAMETER` if `energy` or `grad_x` is NULL;
/// `HATEBM_INVALID_ARGUMENT` for a wrong `struct_size` or an empty/zero shape.
///
/// # Safety
/// `vtable` is NULL or a readable `hatebm_energy_vtable` whose callbacks are
/// safe to call with `user_data` on any thread that uses the energy, until it
/// is freed; `sample_shape` has `ndim` readable `size_t`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_energy_new(
    vtable: *const hatebm_energy_vtable,
    user_data: *mut c_void,
    sample_shape: *const usize,
    ndim: usize,
    out: *mut *mut hatebm_energy,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let vt = unsafe { try_versioned(vtable, "vtable") }?;
        let energy = crate::handle::try_callback(vt.energy, "vtable->energy")?;
        let grad_x = crate::handle::try_callback(vt.grad_x, "vtable->grad_x")?;
        // SAFETY: forwarded from this function's contract.
        let (shape, sample_len) = unsafe { read_shape(sample_shape, ndim, "sample_shape") }?;
        // Built last: from here on, dropping it calls vt.free.
        let common = CallbackCommon::new(vt.name, "energy", user_data, vt.free)?;
        out.write(into_raw_box(CallbackEnergy {
            common,
            energy,
            grad_x,
            shape,
            sample_len,
        }));
        Ok(())
    }
}

/// Frees a callback energy (calling its vtable's `free(user_data)` if set).
/// NULL is a no-op.
///
/// # Safety
/// `energy` is NULL or a live handle from `hatebm_energy_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_energy_free(energy: *mut hatebm_energy) {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        unsafe { free_box(energy) }
    }
}

/// Wraps user callbacks as a generator from latents of shape
/// `latent_shape[0..latent_ndim]` to samples of shape
/// `output_shape[0..output_ndim]`. Ownership of `user_data` and failures as
/// for `hatebm_energy_new`. `HATEBM_NULL_PARAMETER` if `forward` is NULL.
///
/// # Safety
/// `vtable` is NULL or a readable `hatebm_generator_vtable` whose callbacks are
/// safe to call with `user_data` until the generator is freed; the shapes have
/// their `ndim` readable `size_t`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_generator_new(
    vtable: *const hatebm_generator_vtable,
    user_data: *mut c_void,
    latent_shape: *const usize,
    latent_ndim: usize,
    output_shape: *const usize,
    output_ndim: usize,
    out: *mut *mut hatebm_generator,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let vt = unsafe { try_versioned(vtable, "vtable") }?;
        let forward = crate::handle::try_callback(vt.forward, "vtable->forward")?;
        // SAFETY: forwarded from this function's contract.
        let (latent_shape, latent_len) =
            unsafe { read_shape(latent_shape, latent_ndim, "latent_shape") }?;
        // SAFETY: forwarded from this function's contract.
        let (output_shape, sample_len) =
            unsafe { read_shape(output_shape, output_ndim, "output_shape") }?;
        let common = CallbackCommon::new(vt.name, "generator", user_data, vt.free)?;
        out.write(into_raw_box(CallbackGenerator {
            common,
            forward,
            vjp: vt.vjp_latent,
            latent_shape,
            output_shape,
            latent_len,
            sample_len,
        }));
        Ok(())
    }
}

/// Frees a callback generator (calling its vtable's `free(user_data)` if set).
/// NULL is a no-op.
///
/// # Safety
/// `generator` is NULL or a live handle from `hatebm_generator_new`, not used
/// afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_generator_free(generator: *mut hatebm_generator) {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        unsafe { free_box(generator) }
    }
}

crate::panic::plain_return! {
    hatebm_energy_vtable => EMPTY_ENERGY_VTABLE,
    hatebm_generator_vtable => EMPTY_GENERATOR_VTABLE,
}
