//! `hatebm_trained_model`: a trained model loaded from a checkpoint alone — energy,
//! generator, EMA weights and the sampler settings of the run — for sampling
//! and energies, with no training data, bank or optimiser (llama.h's
//! load-model call). A shipped checkpoint samples after its data is deleted.

use std::ffi::c_char;
use std::path::Path;

use hatebm_rs::runtime::AnyModel;
use hatebm_rs::spec::BackendSpec;

use crate::busy::{BusyCell, BusyGuard};
use crate::error::{Failure, FfiResult};
use crate::handle::{
    box_castable, expect_disjoint, expect_len, free_box, into_raw_box, opt_out, try_copy_out,
    try_out, try_ref, try_slice, try_slice_mut, try_str, try_versioned,
};
use crate::session::hatebm_sample_params;
use crate::status::hatebm_status;

/// A trained model for sampling and energies, loaded from a checkpoint.
///
/// Thread-safety: NOT thread-safe; use a model from one thread at a time (a
/// call while another is inside returns `HATEBM_MISUSE`). Several models may
/// be used on different threads.
#[derive(Debug)]
pub struct hatebm_trained_model {
    _private: [u8; 0],
}

box_castable!(hatebm_trained_model => BusyCell<AnyModel>);

/// Takes a model for the duration of one call.
///
/// # Safety
/// `model` is NULL or a live handle from `hatebm_trained_model_load`.
pub(crate) unsafe fn enter<'a>(
    model: *const hatebm_trained_model,
) -> FfiResult<BusyGuard<'a, AnyModel>> {
    // SAFETY: forwarded from this function's contract; the cell is only ever
    // borrowed shared, its value only through the guard.
    let cell: &'a BusyCell<AnyModel> = unsafe { try_ref(model, "model") }?;
    cell.enter("model")
}

/// Loads the networks of a checkpoint (written by
/// `hatebm_session_save_checkpoint` or `hatebm train`) and the sampler
/// settings of its run, without reading its training data. `backend` is NULL
/// (the backend stored in the checkpoint) or a backend spec (`"cpu"`,
/// `"tch:cuda:0"`, ...). Free with `hatebm_trained_model_free`.
///
/// # Safety
/// `path` is a NUL-terminated string; `backend` is NULL or one; `out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_load(
    path: *const c_char,
    backend: *const c_char,
    out: *mut *mut hatebm_trained_model,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        let spec = if backend.is_null() {
            None
        } else {
            // SAFETY: forwarded from this function's contract.
            let b = unsafe { try_str(backend, "backend") }?;
            Some(b.parse::<BackendSpec>()?)
        };
        let model = AnyModel::load(Path::new(path), spec)?;
        out.write(into_raw_box(BusyCell::new(model)));
        Ok(())
    }
}

/// Frees a model. NULL is a no-op; a model inside a call is not freed (the
/// last error says so).
///
/// # Safety
/// `model` is NULL or a live handle from `hatebm_trained_model_load`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_free(model: *mut hatebm_trained_model) {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        if let Ok(cell) = unsafe { try_ref::<hatebm_trained_model>(model, "model") }
            && cell.is_busy()
        {
            crate::error::fail(
                hatebm_status::HATEBM_MISUSE,
                "hatebm_trained_model_free: the model is inside a call; it was not freed",
            );
            return;
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { free_box(model) }
    }
}

/// Copies the shape of one sample into `dims` (copy-out convention;
/// `*out_n` = number of dimensions).
///
/// # Safety
/// `model` is NULL or live; `dims` is NULL (with `len == 0`) or has `len`
/// writable `size_t`; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_sample_shape(
    model: *const hatebm_trained_model,
    dims: *mut usize,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let m = unsafe { enter(model) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(dims, len, out_n, "dims") }?;
        out.write_slice(&m.sample_shape())
    }
}

/// Copies the image shape `{C, H, W}` of the samples (copy-out convention);
/// `*out_n = 0` when the samples are not images.
///
/// # Safety
/// As `hatebm_trained_model_sample_shape`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_image_shape(
    model: *const hatebm_trained_model,
    dims: *mut usize,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let m = unsafe { enter(model) }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(dims, len, out_n, "dims") }?;
        match m.image_dims() {
            Some(d) => out.write_slice(&d),
            None => out.write_slice(&[]),
        }
    }
}

/// The number of floats per sample and the iterations completed when the
/// checkpoint was written (the header's iteration-counter convention). Either
/// out-param may be NULL.
///
/// # Safety
/// `model` is NULL or live; each out-param is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_info(
    model: *const hatebm_trained_model,
    out_sample_len: *mut usize,
    out_iteration: *mut u64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let o_s = unsafe { opt_out(out_sample_len, "out_sample_len") }?;
        // SAFETY: forwarded from this function's contract.
        let o_i = unsafe { opt_out(out_iteration, "out_iteration") }?;
        // SAFETY: forwarded from this function's contract.
        let m = unsafe { enter(model) }?;
        if let Some(o) = o_s {
            o.write(m.sample_shape().iter().product());
        }
        if let Some(o) = o_i {
            o.write(m.iteration());
        }
        Ok(())
    }
}

fn sample_len(m: &AnyModel) -> usize {
    m.sample_shape().iter().product()
}

/// `n >= 1` samples in `x_len` floats, and one float per sample in each output
/// buffer of `out_len` floats (`HATEBM_INVALID_ARGUMENT`, `HATEBM_SHAPE_MISMATCH`).
fn expect_batch(m: &AnyModel, x_len: usize, n: usize, out_len: usize) -> FfiResult<()> {
    if n == 0 {
        return Err(Failure::invalid("n must be at least 1"));
    }
    expect_len("x", x_len, n, sample_len(m), "sample_len")?;
    expect_len("out_energy", out_len, n, 1, "1")
}

/// Draws `params->n` samples into `out[n * sample_len]`, exactly as
/// `hatebm_session_sample` on the resumed run would (same parameters, same
/// numbers).
///
/// # Safety
/// `model` is NULL or live; `params` is NULL or a readable
/// `hatebm_sample_params`; `out` has `out_len` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_sample(
    model: *mut hatebm_trained_model,
    params: *const hatebm_sample_params,
    out: *mut f32,
    out_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mut m = unsafe { enter(model) }?;
        // SAFETY: forwarded from this function's contract.
        let p = unsafe { try_versioned(params, "params") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_slice_mut(out, out_len, "out") }?;
        if p.n == 0 {
            return Err(Failure::invalid("params->n must be at least 1"));
        }
        expect_len("out", out.len(), p.n, sample_len(&m), "sample_len")?;
        let opts = p.to_options(&m.config().sample);
        let (data, _) = m.sample(&opts, &mut |_, _| true)?;
        if data.len() != out.len() {
            return Err(hatebm_rs::Error::shape("samples", &[out.len()], &[data.len()]).into());
        }
        out.copy_from_slice(&data);
        Ok(())
    }
}

/// Energies U(x) of `n` samples `x[n * sample_len]` into `out_energy[n]`,
/// with the EMA weights when `use_ema` and the model keeps them.
///
/// # Safety
/// `model` is NULL or live; `x` has `x_len` readable floats; `out_energy` has
/// `out_len` writable floats; the buffers do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_energy(
    model: *mut hatebm_trained_model,
    x: *const f32,
    x_len: usize,
    n: usize,
    use_ema: bool,
    out_energy: *mut f32,
    out_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mut m = unsafe { enter(model) }?;
        expect_disjoint((x, x_len, "x"), (out_energy.cast_const(), out_len, "out_energy"))?;
        // SAFETY: forwarded from this function's contract.
        let x = unsafe { try_slice(x, x_len, "x") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_slice_mut(out_energy, out_len, "out_energy") }?;
        expect_batch(&m, x.len(), n, out.len())?;
        let e = m.energy(x, n, use_ema)?;
        out.copy_from_slice(&e);
        Ok(())
    }
}

/// Out-of-distribution scores of `n` samples `x[n * sample_len]`: the energy
/// U(x) into `out_energy[n]` and the L2 norm of its input gradient
/// |dU/dx| into `out_grad_norm[n]` (higher = more out-of-distribution for
/// both), with the EMA weights when `use_ema` and the model keeps them.
/// Computed in batches of the run's `sample.batch_size`; `out_energy` equals
/// what `hatebm_trained_model_energy` gives. Both outputs are written only on
/// success. `HATEBM_NUMERIC` for a NaN or infinity in `x`.
///
/// # Safety
/// `model` is NULL or live; `x` has `x_len` readable floats; `out_energy`
/// and `out_grad_norm` have `out_len` writable floats each; no two of the
/// three buffers overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_trained_model_scores(
    model: *mut hatebm_trained_model,
    x: *const f32,
    x_len: usize,
    n: usize,
    use_ema: bool,
    out_energy: *mut f32,
    out_grad_norm: *mut f32,
    out_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let mut m = unsafe { enter(model) }?;
        let (oe, og) = (out_energy.cast_const(), out_grad_norm.cast_const());
        expect_disjoint((x, x_len, "x"), (oe, out_len, "out_energy"))?;
        expect_disjoint((x, x_len, "x"), (og, out_len, "out_grad_norm"))?;
        expect_disjoint((oe, out_len, "out_energy"), (og, out_len, "out_grad_norm"))?;
        // SAFETY: forwarded from this function's contract.
        let x = unsafe { try_slice(x, x_len, "x") }?;
        // SAFETY: forwarded from this function's contract.
        let out_e = unsafe { try_slice_mut(out_energy, out_len, "out_energy") }?;
        // SAFETY: forwarded from this function's contract.
        let out_g = unsafe { try_slice_mut(out_grad_norm, out_len, "out_grad_norm") }?;
        expect_batch(&m, x.len(), n, out_len)?;
        let s = m.scores(x, n, use_ema)?;
        if s.energy.len() != n || s.grad_norm.len() != n {
            return Err(hatebm_rs::Error::shape("scores", &[n, n], &[s.energy.len(), s.grad_norm.len()]).into());
        }
        out_e.copy_from_slice(&s.energy);
        out_g.copy_from_slice(&s.grad_norm);
        Ok(())
    }
}
