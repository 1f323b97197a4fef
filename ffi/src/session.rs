//! `hatebm_session`: a training run (data, networks, optimisers, bank) on the
//! backend its configuration names, driven step by step or in a loop, plus
//! direct access to its networks on host buffers.

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;

use hatebm_rs::Error;
use hatebm_rs::run::Progress;
use hatebm_rs::sampler::ChainKey;
use hatebm_rs::train::{SampleOptions, StepStats};

use crate::busy::{BusyCell, BusyGuard};
use crate::config::hatebm_config;
use crate::error::{Failure, FfiResult};
use crate::handle::{
    Versioned, box_castable, expect_disjoint, expect_len, free_box, into_raw_box, opt_out,
    try_copy_out, try_out, try_ref, try_slice, try_slice_mut, try_str, try_versioned,
};
use crate::langevin::{
    RawChains, chain_buffers, hatebm_langevin_params, hatebm_langevin_stats, write_chains,
    write_stats,
};
use crate::status::hatebm_status;
use hatebm_rs::runtime::{AnyRun, Model};

/// A training session: one run of the configured mode on the configured
/// backend, with its data, networks, optimisers, bank and counters.
///
/// Thread-safety: NOT thread-safe. Use a session from one thread at a time
/// (several sessions may run on different threads). Callbacks passed to a
/// session call run on the calling thread and must not call functions on the
/// same session.
#[derive(Debug)]
pub struct hatebm_session {
    _private: [u8; 0],
}

box_castable!(hatebm_session => BusyCell<AnyRun>);

/// Takes a session for the duration of one call.
///
/// # Safety
/// `session` is NULL or a live handle from `hatebm_session_new` /
/// `hatebm_session_resume`.
pub(crate) unsafe fn enter<'a>(session: *const hatebm_session) -> FfiResult<BusyGuard<'a, AnyRun>> {
    // SAFETY: forwarded from this function's contract; the cell is only ever
    // borrowed shared, its value only through the guard.
    let cell: &'a BusyCell<AnyRun> = unsafe { try_ref(session, "session") }?;
    cell.enter("session")
}

/// Which network a weights call addresses (pass as `int`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hatebm_model {
    /// The energy network (its current weights).
    Energy = 0,
    /// The generator.
    Generator = 1,
    /// The exponential moving average of the energy's weights (kept when
    /// `ebm_optim.ema_decay` is set; what sampling uses by default).
    EnergyEma = 2,
}

fn model_from_int(which: c_int) -> FfiResult<Model> {
    match which {
        0 => Ok(Model::Energy),
        1 => Ok(Model::Generator),
        2 => Ok(Model::EnergyEma),
        _ => Err(Failure::invalid(format!(
            "`which` = {which} is not a hatebm_model (0 energy, 1 generator, 2 energy EMA)"
        ))),
    }
}

/// What one training iteration reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_step_stats {
    /// `sizeof(hatebm_step_stats)`, written by the library.
    pub struct_size: u32,
    /// Iterations completed when this one finished, resumed ones included:
    /// the 1-based number of this iteration (a fresh session's first step
    /// reports 1, equal to `hatebm_session_iteration` right after it). Before
    /// ABI 200 this field was `iteration`, a 0-based index.
    pub iterations_done: u64,
    /// The EBM loss (mean U(x+) - mean U(x-)) / T.
    pub loss_ebm: f64,
    /// Mean energy of the (jittered) data batch.
    pub energy_pos: f64,
    /// Mean energy of the negative samples.
    pub energy_neg: f64,
    /// Generator loss, or NaN for modes that do not train the generator.
    pub loss_gen: f64,
    /// Sampler diagnostics of this iteration's chains.
    pub langevin: hatebm_langevin_stats,
    /// Wall-clock seconds of the iteration.
    pub seconds: f64,
}

impl From<&StepStats> for hatebm_step_stats {
    fn from(s: &StepStats) -> Self {
        hatebm_step_stats {
            struct_size: std::mem::size_of::<Self>() as u32,
            iterations_done: s.iteration,
            loss_ebm: s.loss_ebm,
            energy_pos: s.energy_pos,
            energy_neg: s.energy_neg,
            loss_gen: s.loss_gen.unwrap_or(f64::NAN),
            langevin: (&s.langevin).into(),
            seconds: s.seconds,
        }
    }
}

/// What a progress callback sees after every iteration of `hatebm_session_train`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_progress {
    /// `sizeof(hatebm_progress)`, written by the library.
    pub struct_size: u32,
    /// Iterations completed so far, resumed ones included (equal to
    /// `stats.iterations_done`). Before ABI 200 this field was `iteration`.
    pub iterations_done: u64,
    /// The configured total, `train.steps`.
    pub total: u64,
    /// Divergence-guard rollbacks so far.
    pub rollbacks: u32,
    /// The iteration's statistics.
    pub stats: hatebm_step_stats,
}

/// A progress callback: called after every iteration with the progress (valid
/// only during the call). Return `true` to continue, `false` to cancel: the
/// train call then returns `HATEBM_CANCELLED`, after a complete iteration, so
/// the session is consistent and can be saved, stepped or trained further.
#[allow(non_camel_case_types)]
pub type hatebm_progress_cb =
    Option<unsafe extern "C" fn(progress: *const hatebm_progress, user_data: *mut c_void) -> bool>;

/// How `hatebm_session_sample` (and `hatebm_trained_model_sample`) draws
/// samples. The results are clamped to the data's value range ([-1, 1] for
/// image data) when the run's configuration says `sample.clamp = true` (the
/// default; set it to false with `hatebm_config_set` for the raw chains).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct hatebm_sample_params {
    /// `sizeof(hatebm_sample_params)`; set by `hatebm_sample_default_params()`.
    pub struct_size: u32,
    /// Number of samples N (>= 1); the output buffer holds N * sample_len floats.
    pub n: usize,
    /// Chains per batch; 0 = the configuration's `sample.batch_size`. Results
    /// do not depend on it.
    pub batch_size: usize,
    /// Langevin steps: < 0 = the training chains' K; 0 = the generator's
    /// samples G(z) without MCMC (generator modes); > 0 = that many.
    pub steps: i64,
    /// Use the energy's EMA weights when it keeps them.
    pub use_ema: bool,
    /// Seed of the sampling noise (independent of the training streams).
    pub seed: u64,
}

impl hatebm_sample_params {
    /// The sampling options of these parameters; what the struct does not
    /// hold (`clamp`, and the batch size when 0) comes from the run's `[sample]`
    /// settings `run`.
    pub(crate) fn to_options(self, run: &SampleOptions) -> SampleOptions {
        SampleOptions {
            n: self.n,
            batch_size: if self.batch_size == 0 {
                run.batch_size
            } else {
                self.batch_size
            },
            steps: usize::try_from(self.steps).ok(),
            use_ema: self.use_ema,
            seed: self.seed,
            clamp: run.clamp,
        }
    }
}

// SAFETY: repr(C), first field u32 = size; plain numbers and a bool.
unsafe impl Versioned for hatebm_sample_params {
    const INIT: &'static str = "hatebm_sample_default_params()";
}

fn default_sample_params() -> hatebm_sample_params {
    let d = SampleOptions::default();
    hatebm_sample_params {
        struct_size: std::mem::size_of::<hatebm_sample_params>() as u32,
        n: d.n,
        batch_size: 0,
        steps: -1,
        use_ema: d.use_ema,
        seed: d.seed,
    }
}

crate::panic::plain_return! {
    hatebm_sample_params => default_sample_params(),
}

/// Default sampling settings: n = 64, batch_size = 0 (the configuration's),
/// steps = -1 (the training chains' K), use_ema = true, seed = 0,
/// `struct_size` set. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_sample_default_params() -> hatebm_sample_params {
    crate::ffi_panic_boundary! {
        default_sample_params()
    }
}

/// Builds a session from a configuration: loads the data, builds and
/// initialises the networks on the configured backend (`backend` key), the
/// optimisers and the bank. Nothing is written to disk. The resolved
/// configuration is copied; `cfg` may be changed or freed afterwards.
///
/// `HATEBM_CONFIG` for an invalid or inconsistent configuration;
/// `HATEBM_BACKEND_UNAVAILABLE` for a backend not compiled in (e.g. `tch:*`
/// without the tch feature); `HATEBM_DEVICE_UNAVAILABLE` for a missing CUDA
/// device; data, weights and I/O errors.
///
/// # Safety
/// `cfg` is NULL or live (not mutated during the call); `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_new(
    cfg: *const hatebm_config,
    out: *mut *mut hatebm_session,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { try_ref(cfg, "cfg") }?;
        let run = AnyRun::new(cfg.build()?)?;
        out.write(into_raw_box(BusyCell::new(run)));
        Ok(())
    }
}

/// Resumes a session from a checkpoint written by
/// `hatebm_session_save_checkpoint` (or by `hatebm_session_train`). With
/// `cfg = NULL` the configuration stored in the checkpoint is used (including
/// its backend); otherwise `cfg` (which must describe the same networks, e.g. to
/// change the backend, the output folder or `train.steps`). Continuing is exact:
/// on the CPU backend, N steps + save + resume + M steps equals N + M steps bit
/// for bit.
///
/// `HATEBM_IO` / `HATEBM_FORMAT` for a missing, corrupt or foreign file;
/// otherwise as `hatebm_session_new`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `cfg` is NULL or live; `out` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_resume(
    path: *const c_char,
    cfg: *const hatebm_config,
    out: *mut *mut hatebm_session,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        let config = if cfg.is_null() {
            None
        } else {
            // SAFETY: forwarded from this function's contract.
            Some(unsafe { try_ref(cfg, "cfg") }?.build()?)
        };
        let run = AnyRun::resume(Path::new(path), config)?;
        out.write(into_raw_box(BusyCell::new(run)));
        Ok(())
    }
}

/// Frees a session. NULL is a no-op.
///
/// # Safety
/// `session` is NULL or a live handle from `hatebm_session_new` /
/// `hatebm_session_resume`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_free(session: *mut hatebm_session) {
    crate::ffi_panic_boundary! {
        // A session inside a call (freed from its own callback, or from
        // another thread) must not be freed under that call.
        // SAFETY: forwarded from this function's contract.
        if let Ok(cell) = unsafe { try_ref::<hatebm_session>(session, "session") }
            && cell.is_busy()
        {
            crate::error::fail(
                hatebm_status::HATEBM_MISUSE,
                "hatebm_session_free: the session is inside a call (freed from its own callback, or from another thread); it was not freed",
            );
            return;
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { free_box(session) }
    }
}

/// Writes a checkpoint (networks, optimisers, EMA, bank, counters, data order,
/// configuration) atomically: a crash while saving leaves the previous file
/// intact. Resume it with `hatebm_session_resume`.
///
/// # Safety
/// `session` is NULL or live; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_save_checkpoint(
    session: *const hatebm_session,
    path: *const c_char,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        s.save_checkpoint(Path::new(path))?;
        Ok(())
    }
}

/// Loads one network's weights from a safetensors file with PyTorch
/// `state_dict` names (e.g. saved by `safetensors.torch.save_file(model.state_dict())`),
/// or from a file with `ebm.` / `gen.` prefixes such as a checkpoint. `which` is
/// a `hatebm_model`. Loading the energy also resets its EMA copy to the loaded
/// weights; `HATEBM_MODEL_ENERGY_EMA` loads the EMA copy only. Optimiser moments
/// are kept. Strict: a missing, unexpected or mis-shaped tensor is
/// `HATEBM_PARAM` naming it; the session is unchanged on any error.
///
/// # Safety
/// `session` is NULL or live and not used elsewhere during the call; `path` is
/// NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_load_weights(
    session: *mut hatebm_session,
    which: c_int,
    path: *const c_char,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mut s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        s.load_weights(model_from_int(which)?, Path::new(path))?;
        Ok(())
    }
}

/// Saves one network's weights (`which`, a `hatebm_model`) as safetensors with
/// PyTorch `state_dict` names and no prefix, loadable with
/// `model.load_state_dict(safetensors.torch.load_file(path))`. Atomic.
/// `HATEBM_INVALID_ARGUMENT` for a generator the mode lacks or EMA weights the
/// optimiser does not keep.
///
/// # Safety
/// `session` is NULL or live; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_save_weights(
    session: *const hatebm_session,
    which: c_int,
    path: *const c_char,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        s.save_weights(model_from_int(which)?, Path::new(path))?;
        Ok(())
    }
}

/// Copies the name of the backend the session runs on (e.g. `"cpu"`,
/// `"tch:cuda:0"`; `auto` is resolved), NUL-terminated (copy-out convention).
///
/// # Safety
/// `session` is NULL or live; `buf` is NULL (with `len == 0`) or has `len`
/// writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_backend_name(
    session: *const hatebm_session,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(buf, len, out_n, "buf") }?;
        out.write_str(&s.backend_name())
    }
}

/// Copies the session's resolved configuration as TOML, NUL-terminated
/// (copy-out convention).
///
/// # Safety
/// As `hatebm_session_backend_name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_config_toml(
    session: *const hatebm_session,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(buf, len, out_n, "buf") }?;
        out.write_str(&s.config().to_toml_string()?)
    }
}

/// The number of training iterations completed (including resumed ones):
/// the `iterations_done` of the last iteration's `hatebm_step_stats`, 0 for a
/// fresh session.
///
/// # Safety
/// `session` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_iteration(
    session: *const hatebm_session,
    out: *mut u64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        out.write(s.iteration());
        Ok(())
    }
}

/// Copies the shape of one sample (the energy's input), e.g. `{64}` for the
/// flattened 8x8 digits or `{3, 32, 32}`, into `dims` (copy-out convention, in
/// elements: `*out_n` = number of dimensions). `sample_len` below is its product.
///
/// # Safety
/// `session` is NULL or live; `dims` is NULL (with `len == 0`) or has `len`
/// writable `size_t`; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_sample_shape(
    session: *const hatebm_session,
    dims: *mut usize,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(dims, len, out_n, "dims") }?;
        out.write_slice(&s.sample_shape())
    }
}

/// Copies the shape of one latent (copy-out convention). A session without a
/// generator has no latent: `*out_n = 0` and `HATEBM_OK`.
///
/// # Safety
/// As `hatebm_session_sample_shape`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_latent_shape(
    session: *const hatebm_session,
    dims: *mut usize,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(dims, len, out_n, "dims") }?;
        out.write_slice(&s.latent_shape().unwrap_or_default())
    }
}

/// Copies the image shape `{C, H, W}` of the training data (copy-out
/// convention), e.g. `{1, 8, 8}` for the digits even though the MLP energy sees
/// flat samples of 64 values. Data that are not images (e.g. 2-D points):
/// `*out_n = 0` and `HATEBM_OK`. Use it to write sample grids with
/// `hatebm_save_image_grid`.
///
/// # Safety
/// As `hatebm_session_sample_shape`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_image_shape(
    session: *const hatebm_session,
    dims: *mut usize,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(dims, len, out_n, "dims") }?;
        match s.image_dims() {
            Some(d) => out.write_slice(&d),
            None => out.write_slice(&[]),
        }
    }
}

/// The number of floats per sample (`sample_len`, the product of the sample
/// shape) and per latent (`latent_len`; 0 without a generator). Either
/// out-param may be NULL.
///
/// # Safety
/// `session` is NULL or live; the out-params are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_sizes(
    session: *const hatebm_session,
    out_sample_len: *mut usize,
    out_latent_len: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let o_s = unsafe { opt_out(out_sample_len, "out_sample_len") }?;
        // SAFETY: forwarded from this function's contract.
        let o_l = unsafe { opt_out(out_latent_len, "out_latent_len") }?;
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        let (sl, ll) = sizes(&s);
        if let Some(o) = o_s {
            o.write(sl);
        }
        if let Some(o) = o_l {
            o.write(ll.unwrap_or(0));
        }
        Ok(())
    }
}

fn sizes(s: &AnyRun) -> (usize, Option<usize>) {
    (
        s.sample_shape().iter().product(),
        s.latent_shape().map(|l| l.iter().product()),
    )
}

fn latent_len(s: &AnyRun) -> FfiResult<usize> {
    sizes(s).1.ok_or_else(|| {
        Failure::invalid(format!(
            "mode `{}` has no generator",
            s.config().train.mode.name()
        ))
    })
}

fn expect_n(n: usize) -> FfiResult<()> {
    if n == 0 {
        return Err(Failure::invalid("n must be at least 1"));
    }
    Ok(())
}

/// Energies U(x) of `n` samples `x[n * sample_len]` with the session's energy
/// network (its current weights), written to `out_energy[n]`
/// (`out_len` must be `n`). `HATEBM_SHAPE_MISMATCH` for wrong lengths.
///
/// # Safety
/// `session` is NULL or live and not used elsewhere during the call; `x` has
/// `x_len` readable floats; `out_energy` has `out_len` writable floats; the
/// buffers do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_energy(
    session: *const hatebm_session,
    x: *const f32,
    x_len: usize,
    n: usize,
    out_energy: *mut f32,
    out_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        expect_disjoint((x, x_len, "x"), (out_energy.cast_const(), out_len, "out_energy"))?;
        // SAFETY: forwarded from this function's contract.
        let x = unsafe { try_slice(x, x_len, "x") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_slice_mut(out_energy, out_len, "out_energy") }?;
        expect_n(n)?;
        expect_len("x", x.len(), n, sizes(&s).0, "sample_len")?;
        expect_len("out_energy", out.len(), n, 1, "1")?;
        let e = s.energy(x, n)?;
        out.copy_from_slice(&e);
        Ok(())
    }
}

/// Energies and their input gradients dU(x_b)/dx_b for `n` samples:
/// `x[n * sample_len]` in, `out_energy[n]` and `out_grad[n * sample_len]` out.
///
/// # Safety
/// As `hatebm_session_energy`, plus `out_grad` has `grad_len` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_energy_grad(
    session: *const hatebm_session,
    x: *const f32,
    x_len: usize,
    n: usize,
    out_energy: *mut f32,
    energy_len: usize,
    out_grad: *mut f32,
    grad_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        expect_disjoint((x, x_len, "x"), (out_energy.cast_const(), energy_len, "out_energy"))?;
        expect_disjoint((x, x_len, "x"), (out_grad.cast_const(), grad_len, "out_grad"))?;
        expect_disjoint(
            (out_energy.cast_const(), energy_len, "out_energy"),
            (out_grad.cast_const(), grad_len, "out_grad"),
        )?;
        // SAFETY: forwarded from this function's contract.
        let x = unsafe { try_slice(x, x_len, "x") }?;
        // SAFETY: forwarded from this function's contract.
        let out_e = unsafe { try_slice_mut(out_energy, energy_len, "out_energy") }?;
        // SAFETY: forwarded from this function's contract.
        let out_g = unsafe { try_slice_mut(out_grad, grad_len, "out_grad") }?;
        expect_n(n)?;
        let sl = sizes(&s).0;
        expect_len("x", x.len(), n, sl, "sample_len")?;
        expect_len("out_energy", out_e.len(), n, 1, "1")?;
        expect_len("out_grad", out_g.len(), n, sl, "sample_len")?;
        let (e, g) = s.energy_grad(x, n)?;
        out_e.copy_from_slice(&e);
        out_g.copy_from_slice(&g);
        Ok(())
    }
}

/// Runs the session's generator: latents `z[n * latent_len]` in, samples
/// `out_x[n * sample_len]` out. `HATEBM_INVALID_ARGUMENT` without a generator.
///
/// # Safety
/// `session` is NULL or live and not used elsewhere during the call; `z` has
/// `z_len` readable floats; `out_x` has `x_len` writable floats; no overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_generate(
    session: *const hatebm_session,
    z: *const f32,
    z_len: usize,
    n: usize,
    out_x: *mut f32,
    x_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        expect_disjoint((z, z_len, "z"), (out_x.cast_const(), x_len, "out_x"))?;
        // SAFETY: forwarded from this function's contract.
        let z = unsafe { try_slice(z, z_len, "z") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_slice_mut(out_x, x_len, "out_x") }?;
        expect_n(n)?;
        expect_len("z", z.len(), n, latent_len(&s)?, "latent_len")?;
        expect_len("out_x", out.len(), n, sizes(&s).0, "sample_len")?;
        let x = s.generate(z, n)?;
        out.copy_from_slice(&x);
        Ok(())
    }
}

/// The generator's vector-Jacobian product with respect to the latent:
/// `out_grad_z[n * latent_len]` = d(sum <G(z), cot>)/dz for latents
/// `z[n * latent_len]` and a cotangent `cot[n * sample_len]`.
///
/// # Safety
/// As `hatebm_session_generate`, plus `cot` has `cot_len` readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_generator_vjp(
    session: *const hatebm_session,
    z: *const f32,
    z_len: usize,
    cot: *const f32,
    cot_len: usize,
    n: usize,
    out_grad_z: *mut f32,
    grad_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        expect_disjoint((z, z_len, "z"), (out_grad_z.cast_const(), grad_len, "out_grad_z"))?;
        expect_disjoint((cot, cot_len, "cot"), (out_grad_z.cast_const(), grad_len, "out_grad_z"))?;
        // SAFETY: forwarded from this function's contract.
        let z = unsafe { try_slice(z, z_len, "z") }?;
        // SAFETY: forwarded from this function's contract.
        let cot = unsafe { try_slice(cot, cot_len, "cot") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_slice_mut(out_grad_z, grad_len, "out_grad_z") }?;
        expect_n(n)?;
        let ll = latent_len(&s)?;
        expect_len("z", z.len(), n, ll, "latent_len")?;
        expect_len("cot", cot.len(), n, sizes(&s).0, "sample_len")?;
        expect_len("out_grad_z", out.len(), n, ll, "latent_len")?;
        let g = s.generator_vjp(z, cot, n)?;
        out.copy_from_slice(&g);
        Ok(())
    }
}

/// Fills `*out` with the sampler settings of the session's training chains
/// (the configuration's `[langevin]` section after the mode's adjustments),
/// `seed` = the run seed, `iteration` = the iterations done, `row_offset` = 0,
/// `use_ema` = false.
///
/// # Safety
/// `session` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_langevin_params(
    session: *const hatebm_session,
    out: *mut hatebm_langevin_params,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        let (c, seed) = s.langevin_config();
        let key = ChainKey { seed, iteration: s.iteration(), row_offset: 0 };
        out.write(hatebm_langevin_params::from_core(&c, key, false));
        Ok(())
    }
}

/// Runs the Langevin sampler with the session's networks on caller chains:
/// `y[n * sample_len]` (residuals, or images when `z` is NULL) and, optionally,
/// latents `z[n * latent_len]` mapped through the session's generator (images
/// are `G(z) + y`). Pass `z = NULL, z_len = 0` to sample directly in sample
/// space (always the case without a generator). The chains are updated in place
/// only on success; `out_stats` (may be NULL) receives the diagnostics.
/// `params->use_ema` selects the energy's EMA weights. The session's training
/// state is not changed.
///
/// # Safety
/// `session` is NULL or live and not used elsewhere during the call; `params`
/// is NULL or readable; `z` is NULL (with `z_len == 0`) or has `z_len` writable
/// floats; `y` has `y_len` writable floats; `out_stats` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_langevin(
    session: *mut hatebm_session,
    params: *const hatebm_langevin_params,
    z: *mut f32,
    z_len: usize,
    y: *mut f32,
    y_len: usize,
    n: usize,
    out_stats: *mut hatebm_langevin_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        let chains = RawChains { z, z_len, y, y_len, n };
        // SAFETY: forwarded from this function's contract.
        unsafe { session_langevin(session, params, None, chains, out_stats, std::ptr::null_mut()) }
    }
}

/// The body of `hatebm_session_langevin` and `hatebm_session_langevin_mcmc`
/// (`mcmc`, when given, replaces the method settings of `params`).
///
/// # Safety
/// As `hatebm_session_langevin`'s contract; `out_mh` is NULL or writable.
pub(crate) unsafe fn session_langevin(
    session: *mut hatebm_session,
    params: *const hatebm_langevin_params,
    mcmc: Option<&crate::sampler::hatebm_mcmc_params>,
    chains: RawChains,
    out_stats: *mut hatebm_langevin_stats,
    out_mh: *mut crate::sampler::hatebm_mh_stats,
) -> FfiResult<()> {
    let RawChains {
        z,
        z_len,
        y,
        y_len,
        n,
    } = chains;
    // SAFETY: forwarded from this function's contract.
    let out_stats = unsafe { opt_out(out_stats, "out_stats") }?;
    // SAFETY: forwarded from this function's contract.
    let out_mh = unsafe { opt_out(out_mh, "out_mh") }?;
    // SAFETY: forwarded from this function's contract.
    let mut s = unsafe { enter(session) }?;
    // SAFETY: forwarded from this function's contract.
    let params = unsafe { try_versioned(params, "params") }?;
    let (config, key) = params.to_core_with(mcmc)?;
    let (sl, ll) = sizes(&s);
    // SAFETY: forwarded from this function's contract.
    let bufs = unsafe { chain_buffers(z, z_len, y, y_len, n, sl, ll) }?;
    let (z_new, y_new, stats) =
        s.langevin(config, key, bufs.z.as_deref(), bufs.y, n, params.use_ema)?;
    write_chains(bufs, z_new, &y_new);
    write_stats(&stats, out_stats, out_mh);
    Ok(())
}

/// One training iteration of the configured mode (data batch, negative
/// chains, EBM update, generator update, bank update), guarded against
/// divergence as configured. Writes no files. `out_stats` (may be NULL)
/// receives the iteration's statistics.
///
/// `HATEBM_DIVERGED` when the guard stops the run (the session keeps the last
/// good state only with `guard.policy = "rollback"`).
///
/// # Safety
/// `session` is NULL or live and not used elsewhere during the call;
/// `out_stats` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_step(
    session: *mut hatebm_session,
    out_stats: *mut hatebm_step_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { opt_out(out_stats, "out_stats") }?;
        // SAFETY: forwarded from this function's contract.
        let mut s = unsafe { enter(session) }?;
        let stats = s.step()?;
        if let Some(o) = out {
            o.write(hatebm_step_stats::from(&stats));
        }
        Ok(())
    }
}

/// Trains `n_iterations` more iterations (0 = until `train.steps` iterations
/// are done; never beyond `train.steps`), writing the configured outputs to
/// `output.dir` (metrics.jsonl, sample grids, checkpoint.safetensors every
/// `output.checkpoint_every` and at the end of training). After every iteration
/// `progress` (may be NULL) is called; returning `false` cancels: the call
/// returns `HATEBM_CANCELLED` after a complete iteration, and the session stays
/// consistent (save it, or call step/train again to continue exactly).
///
/// # Safety
/// `session` is NULL or live and not used elsewhere during the call (the
/// callback must not use it either); `progress`, if not NULL, is safe to call
/// with `user_data` on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_train(
    session: *mut hatebm_session,
    n_iterations: u64,
    progress: hatebm_progress_cb,
    user_data: *mut c_void,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mut s = unsafe { enter(session) }?;
        let max = if n_iterations == 0 { None } else { Some(n_iterations) };
        let mut observer = |p: &Progress<'_>| -> bool {
            let Some(cb) = progress else { return true };
            let info = hatebm_progress {
                struct_size: std::mem::size_of::<hatebm_progress>() as u32,
                iterations_done: p.iteration,
                total: p.total,
                rollbacks: p.rollbacks,
                stats: p.stats.into(),
            };
            // SAFETY: the caller vouches for the callback/user_data pair; `info`
            // outlives the call.
            unsafe { cb(&info, user_data) }
        };
        s.train(max, &mut observer)?;
        Ok(())
    }
}

/// The statistics of the last completed iteration. `HATEBM_INVALID_ARGUMENT`
/// before the first iteration of this session.
///
/// # Safety
/// `session` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_last_stats(
    session: *const hatebm_session,
    out: *mut hatebm_step_stats,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        let stats = s
            .last_stats()
            .ok_or_else(|| Failure::invalid("no iteration has run in this session yet"))?;
        out.write(stats.into());
        Ok(())
    }
}

/// The capacity of the session's persistent bank (historical synthesis:
/// `train.bank_size` pairs (z, x); persistent baseline: images only), or 0 for
/// modes without a bank.
///
/// # Safety
/// `session` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_bank_size(
    session: *const hatebm_session,
    out: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        out.write(s.bank_layout().map_or(0, |(c, _)| c));
        Ok(())
    }
}

/// Reads bank slot `slot` into `z[latent_len]` (may be NULL with `z_len == 0`
/// to skip the latent; must be NULL for an images-only bank) and
/// `x[sample_len]`. `HATEBM_INVALID_ARGUMENT` without a bank or for a slot out
/// of range.
///
/// # Safety
/// `session` is NULL or live; `z` is NULL (with `z_len == 0`) or has `z_len`
/// writable floats; `x` has `x_len` writable floats; no overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_bank_read(
    session: *const hatebm_session,
    slot: usize,
    z: *mut f32,
    z_len: usize,
    x: *mut f32,
    x_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let s = unsafe { enter(session) }?;
        expect_disjoint((z.cast_const(), z_len, "z"), (x.cast_const(), x_len, "x"))?;
        // SAFETY: forwarded from this function's contract.
        let x = unsafe { try_slice_mut(x, x_len, "x") }?;
        let z = if z.is_null() && z_len == 0 {
            None
        } else {
            // SAFETY: forwarded from this function's contract.
            Some(unsafe { try_slice_mut(z, z_len, "z") }?)
        };
        let (cap, has_z) = s.bank_layout().ok_or_else(|| {
            Failure::invalid(format!("mode `{}` keeps no bank", s.config().train.mode.name()))
        })?;
        if slot >= cap {
            return Err(Failure::invalid(format!(
                "bank slot {slot} is out of range (capacity {cap})"
            )));
        }
        let (sl, ll) = sizes(&s);
        expect_len("x", x.len(), 1, sl, "sample_len")?;
        if let Some(z) = &z {
            if !has_z {
                return Err(Failure::invalid(
                    "this bank stores images only; pass z = NULL, z_len = 0",
                ));
            }
            expect_len("z", z.len(), 1, ll.unwrap_or(0), "latent_len")?;
        }
        let (bz, bx) = s.bank_read(slot)?;
        x.copy_from_slice(&bx);
        if let (Some(dst), Some(src)) = (z, bz) {
            dst.copy_from_slice(&src);
        }
        Ok(())
    }
}

/// Draws `params->n` samples from the trained model into `out[out_len]`
/// (`out_len` must be `n * sample_len`): fresh chains initialised as in
/// training, `params->steps` Langevin steps with the energy (EMA weights if
/// `params->use_ema`), images `G(z) + y` for generator modes. Deterministic for
/// a seed; independent of `batch_size`. The training state is unchanged.
///
/// # Safety
/// `session` is NULL or live and not used elsewhere during the call; `params`
/// is NULL or readable; `out` has `out_len` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_session_sample(
    session: *mut hatebm_session,
    params: *const hatebm_sample_params,
    out: *mut f32,
    out_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mut s = unsafe { enter(session) }?;
        // SAFETY: forwarded from this function's contract.
        let p = unsafe { try_versioned(params, "params") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_slice_mut(out, out_len, "out") }?;
        if p.n == 0 {
            return Err(Failure::invalid("params->n must be at least 1"));
        }
        expect_len("out", out.len(), p.n, sizes(&s).0, "sample_len")?;
        let opts = p.to_options(&s.config().sample);
        let (data, _) = s.sample(&opts)?;
        if data.len() != out.len() {
            return Err(Error::shape("samples", &[out.len()], &[data.len()]).into());
        }
        out.copy_from_slice(&data);
        Ok(())
    }
}
