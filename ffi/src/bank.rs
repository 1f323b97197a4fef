//! `hatebm_bank`: the persistent bank of `(z, x)` pairs (Algorithm 1) on host
//! memory, for harnesses that train their own networks (e.g. LibTorch) and use
//! libhatebm for the bank and the sampler.

use hatebm_rs::Backend;
use hatebm_rs::bank::Bank;
use hatebm_rs::cpu::{CpuBackend, CpuTensor};
use hatebm_rs::noise::SeededNoise;

use crate::custom::hatebm_generator;
use crate::error::{Failure, FfiResult};
use crate::handle::{
    box_castable, expect_disjoint, expect_len, free_box, into_raw_box, try_mut, try_out, try_ref,
    try_slice, try_slice_mut,
};
use crate::status::hatebm_status;

/// A fixed-capacity bank of latents `z` (`latent_len` floats each; none when
/// `latent_len` is 0) and samples `x` (`sample_len` floats each), with
/// reproducible draws of distinct slots.
///
/// Thread-safety: one thread at a time.
#[derive(Debug)]
pub struct hatebm_bank {
    _private: [u8; 0],
}

/// The Rust value behind a `hatebm_bank`: tensors are `[capacity, len]`.
#[derive(Debug)]
pub(crate) struct HostBank {
    bank: Bank<CpuBackend>,
    latent_len: usize,
    sample_len: usize,
}

box_castable!(hatebm_bank => HostBank);

fn be() -> CpuBackend {
    CpuBackend::new()
}

/// Creates a bank of `capacity` slots, all zeros. `latent_len = 0` makes an
/// images-only bank (no latents). `shard` enters the slot-draw key, so banks
/// with different shard ids draw independent slots (data-parallel use).
/// `HATEBM_INVALID_ARGUMENT` for a zero capacity or sample length.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_bank_new(
    capacity: usize,
    latent_len: usize,
    sample_len: usize,
    shard: u64,
    out: *mut *mut hatebm_bank,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        if capacity == 0 || sample_len == 0 {
            return Err(Failure::invalid(format!(
                "capacity ({capacity}) and sample_len ({sample_len}) must be positive"
            )));
        }
        let too_big = |len: usize| capacity.checked_mul(len).is_none_or(|t| t > isize::MAX as usize / 4);
        if too_big(sample_len) || too_big(latent_len) {
            return Err(Failure::invalid("bank size overflows"));
        }
        let be = be();
        let z = if latent_len > 0 {
            Some(be.zeros(&[capacity, latent_len])?)
        } else {
            None
        };
        let x = be.zeros(&[capacity, sample_len])?;
        let bank = Bank::from_tensors(&be, z, x, shard)?;
        out.write(into_raw_box(HostBank {
            bank,
            latent_len,
            sample_len,
        }));
        Ok(())
    }
}

/// Frees a bank. NULL is a no-op.
///
/// # Safety
/// `bank` is NULL or a live handle from `hatebm_bank_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_bank_free(bank: *mut hatebm_bank) {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        unsafe { free_box(bank) }
    }
}

/// Refills every slot as Algorithm 1 initialises the bank: `z ~ N(0, I)` from
/// `seed` (and the bank's shard), `x = G(z)` through the user generator in
/// batches of `batch`. The generator's latent and output sizes must equal the
/// bank's `latent_len` and `sample_len`. On failure (e.g. a generator callback
/// error) the bank is unchanged.
///
/// # Safety
/// `bank` is NULL or live; `generator` is NULL or live; neither is used by
/// another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_bank_init_from_generator(
    bank: *mut hatebm_bank,
    generator: *const hatebm_generator,
    batch: usize,
    seed: u64,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let b = unsafe { try_mut(bank, "bank") }?;
        // SAFETY: forwarded from this function's contract.
        let g = unsafe { try_ref(generator, "generator") }?;
        if b.latent_len == 0 {
            return Err(Failure::invalid("this bank stores no latents (latent_len = 0)"));
        }
        if g.latent_len() != b.latent_len || g.sample_len() != b.sample_len {
            return Err(Failure::new(
                hatebm_status::HATEBM_SHAPE_MISMATCH,
                format!(
                    "generator maps {} latent floats to {} sample floats; the bank holds {} and {}",
                    g.latent_len(),
                    g.sample_len(),
                    b.latent_len,
                    b.sample_len
                ),
            ));
        }
        let be = be();
        let cap = b.bank.capacity();
        g.reset_calls();
        let fresh = Bank::init_from_generator(&be, g, cap, batch, seed, b.bank.shard, &mut SeededNoise)?;
        let z = fresh.z.map(|z| be.reshape(&z, &[cap, b.latent_len])).transpose()?;
        let x = be.reshape(&fresh.x, &[cap, b.sample_len])?;
        b.bank = Bank::from_tensors(&be, z, x, b.bank.shard)?;
        Ok(())
    }
}

/// The bank's capacity.
///
/// # Safety
/// `bank` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_bank_capacity(
    bank: *const hatebm_bank,
    out: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let b = unsafe { try_ref(bank, "bank") }?;
        out.write(b.bank.capacity());
        Ok(())
    }
}

/// Draws `count` distinct slots for `(seed, iteration)` (and the bank's shard)
/// into `out_slots[count]`: the first `count` entries of a random permutation
/// of `0 .. capacity`, reproducible for the same arguments.
/// `HATEBM_INVALID_ARGUMENT` if `count` exceeds the capacity or is 0.
///
/// # Safety
/// `bank` is NULL or live; `out_slots` has `count` writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_bank_draw_slots(
    bank: *const hatebm_bank,
    seed: u64,
    iteration: u64,
    out_slots: *mut usize,
    count: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let b = unsafe { try_ref(bank, "bank") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_slice_mut(out_slots, count, "out_slots") }?;
        if count == 0 {
            return Err(Failure::invalid("count must be at least 1"));
        }
        let slots = b.bank.draw_slots(&mut SeededNoise, seed, iteration, count)?;
        out.copy_from_slice(&slots);
        Ok(())
    }
}

/// Checks a slot list: non-empty, in range, distinct (`HATEBM_INVALID_ARGUMENT`).
fn check_slots(slots: &[usize], capacity: usize, distinct: bool) -> FfiResult<()> {
    if slots.is_empty() {
        return Err(Failure::invalid("count must be at least 1"));
    }
    if let Some(&s) = slots.iter().find(|&&s| s >= capacity) {
        return Err(Failure::invalid(format!(
            "slot {s} is out of range (capacity {capacity})"
        )));
    }
    if distinct {
        let mut seen = vec![false; capacity];
        for &s in slots {
            if std::mem::replace(&mut seen[s], true) {
                return Err(Failure::invalid(format!("slot {s} appears twice")));
            }
        }
    }
    Ok(())
}

/// Copies the pairs in `slots[count]` into `out_z[count * latent_len]` (may be
/// NULL with `z_len == 0` to skip the latents; must be for an images-only bank)
/// and `out_x[count * sample_len]`, in slot order.
///
/// # Safety
/// `bank` is NULL or live; `slots` has `count` readable `size_t`; the outputs
/// are NULL (with length 0) or have their lengths of writable floats; no overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_bank_gather(
    bank: *const hatebm_bank,
    slots: *const usize,
    count: usize,
    out_z: *mut f32,
    z_len: usize,
    out_x: *mut f32,
    x_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let b = unsafe { try_ref(bank, "bank") }?;
        // SAFETY: forwarded from this function's contract.
        let slots = unsafe { try_slice(slots, count, "slots") }?;
        expect_disjoint((out_z.cast_const(), z_len, "out_z"), (out_x.cast_const(), x_len, "out_x"))?;
        // SAFETY: forwarded from this function's contract.
        let out_x = unsafe { try_slice_mut(out_x, x_len, "out_x") }?;
        let out_z = if out_z.is_null() && z_len == 0 {
            None
        } else {
            // SAFETY: forwarded from this function's contract.
            Some(unsafe { try_slice_mut(out_z, z_len, "out_z") }?)
        };
        check_slots(slots, b.bank.capacity(), false)?;
        expect_len("out_x", out_x.len(), count, b.sample_len, "sample_len")?;
        if let Some(z) = &out_z {
            if b.latent_len == 0 {
                return Err(Failure::invalid("this bank stores no latents; pass out_z = NULL, z_len = 0"));
            }
            expect_len("out_z", z.len(), count, b.latent_len, "latent_len")?;
        }
        let (z, x) = b.bank.gather(&be(), slots)?;
        out_x.copy_from_slice(x.as_slice());
        if let (Some(dst), Some(src)) = (out_z, z) {
            dst.copy_from_slice(src.as_slice());
        }
        Ok(())
    }
}

/// Overwrites the pairs in `slots[count]` (distinct) with `z[count * latent_len]`
/// (required iff the bank stores latents; else NULL with `z_len == 0`) and
/// `x[count * sample_len]`. Everything is checked before anything is written:
/// on failure the bank is unchanged.
///
/// # Safety
/// `bank` is NULL or live and not used elsewhere during the call; `slots` has
/// `count` readable `size_t`; `z` and `x` are NULL (with length 0) or have their
/// lengths of readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_bank_overwrite(
    bank: *mut hatebm_bank,
    slots: *const usize,
    count: usize,
    z: *const f32,
    z_len: usize,
    x: *const f32,
    x_len: usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let b = unsafe { try_mut(bank, "bank") }?;
        // SAFETY: forwarded from this function's contract.
        let slots = unsafe { try_slice(slots, count, "slots") }?;
        // SAFETY: forwarded from this function's contract.
        let z = unsafe { try_slice(z, z_len, "z") }?;
        // SAFETY: forwarded from this function's contract.
        let x = unsafe { try_slice(x, x_len, "x") }?;
        check_slots(slots, b.bank.capacity(), true)?;
        expect_len("x", x.len(), count, b.sample_len, "sample_len")?;
        let zt = if b.latent_len > 0 {
            if z.is_empty() {
                return Err(Failure::null_parameter("z"));
            }
            expect_len("z", z.len(), count, b.latent_len, "latent_len")?;
            Some(CpuTensor::from_vec(z.to_vec(), &[count, b.latent_len])?)
        } else {
            if !z.is_empty() {
                return Err(Failure::invalid("this bank stores no latents; pass z = NULL, z_len = 0"));
            }
            None
        };
        let xt = CpuTensor::from_vec(x.to_vec(), &[count, b.sample_len])?;
        b.bank.overwrite(&be(), slots, zt.as_ref(), &xt)?;
        Ok(())
    }
}
