//! Handles, borrowed arguments and out-params: the one place that turns C
//! pointers into Rust references.
//!
//! Entry points never dereference a raw pointer themselves. They call the
//! helpers here, each of which checks what can be checked (NULL, alignment,
//! size overflow, UTF-8) and returns a [`Failure`] with the right status
//! otherwise; the remaining obligations (the pointer really points to what it
//! claims, for as long as the call lasts) are the C caller's, stated in each
//! function's `# Safety` section and forwarded by the entry point's own
//! `# Safety` doc, which cbindgen copies into the header.
//!
//! ## Handles (`Castable`, after rustls-ffi's `ffi.rs`)
//!
//! A handle is an opaque struct that C only ever sees by pointer:
//!
//! ```ignore
//! /// A training session. Not thread-safe: one thread at a time.
//! pub struct hatebm_session {
//!     _private: [u8; 0],
//! }
//! box_castable!(hatebm_session => Session);
//! ```
//!
//! It is deliberately *not* `#[repr(C)]`: cbindgen then emits only
//! `typedef struct hatebm_session hatebm_session;` (an incomplete type), while a
//! `#[repr(C)]` struct with a zero-length array would be emitted as a field list
//! that is not valid ISO C. Its layout is irrelevant: the pointer handed to C is
//! really a `Box<Session>` (exclusive ownership, `box_castable!`) or an
//! `Arc<Session>` (shared read-only, `arc_castable!`), cast with the helpers
//! below, which keep the const-ness and the pointee type straight. The Rust type
//! must be at least `pub(crate)` (it appears in the `Castable` impl).

// The helpers are the toolkit for the API functions still to come; some have no
// caller yet in every feature combination.
#![allow(dead_code)]

use std::ffi::{CStr, c_char};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::{Failure, FfiResult};
use crate::status::*;

/// Marker: the C handle is a `Box<RustType>` (exclusively owned by C).
#[derive(Debug)]
pub(crate) enum OwnershipBox {}
/// Marker: the C handle is an `Arc<RustType>` (shared; freed when the last C
/// reference is freed).
#[derive(Debug)]
pub(crate) enum OwnershipArc {}

/// Links an opaque C handle type to the Rust type behind it.
pub(crate) trait Castable {
    /// [`OwnershipBox`] or [`OwnershipArc`].
    type Ownership;
    /// The Rust value the handle points to.
    type RustType;
}

/// `box_castable!(hatebm_foo => Foo);` — the handle is a `Box<Foo>`.
#[allow(unused_macros)]
macro_rules! box_castable {
    ($handle:ty => $rust:ty) => {
        impl $crate::handle::Castable for $handle {
            type Ownership = $crate::handle::OwnershipBox;
            type RustType = $rust;
        }
    };
}
/// `arc_castable!(hatebm_foo => Foo);` — the handle is an `Arc<Foo>`.
#[allow(unused_macros)]
macro_rules! arc_castable {
    ($handle:ty => $rust:ty) => {
        impl $crate::handle::Castable for $handle {
            type Ownership = $crate::handle::OwnershipArc;
            type RustType = $rust;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use {arc_castable, box_castable};

/// Moves `value` into a new `Box` and returns it as a C handle. Free it with [`free_box`].
pub(crate) fn into_raw_box<C>(value: C::RustType) -> *mut C
where
    C: Castable<Ownership = OwnershipBox>,
{
    Box::into_raw(Box::new(value)).cast::<C>()
}

/// Moves `value` into a new `Arc` and returns it as a C handle (one reference).
/// Release that reference with [`free_arc`].
pub(crate) fn into_raw_arc<C>(value: C::RustType) -> *const C
where
    C: Castable<Ownership = OwnershipArc>,
{
    Arc::into_raw(Arc::new(value)).cast::<C>()
}

/// Drops the value behind a `Box` handle. NULL is a no-op.
///
/// # Safety
/// `handle` is NULL or was returned by [`into_raw_box`] for this `C` and has not
/// been freed; no other reference to it is used afterwards.
pub(crate) unsafe fn free_box<C>(handle: *mut C)
where
    C: Castable<Ownership = OwnershipBox>,
{
    if !handle.is_null() {
        // SAFETY: per this function's contract the pointer came from Box::into_raw
        // of a C::RustType and is freed exactly once.
        drop(unsafe { Box::from_raw(handle.cast::<C::RustType>()) });
    }
}

/// Releases one reference of an `Arc` handle. NULL is a no-op.
///
/// # Safety
/// `handle` is NULL or was returned by [`into_raw_arc`] (or counted by
/// [`try_clone_arc`]'s caller) for this `C`, and this reference is released once.
pub(crate) unsafe fn free_arc<C>(handle: *const C)
where
    C: Castable<Ownership = OwnershipArc>,
{
    if !handle.is_null() {
        // SAFETY: per this function's contract the pointer came from Arc::into_raw
        // of a C::RustType and this reference is released once.
        drop(unsafe { Arc::from_raw(handle.cast::<C::RustType>()) });
    }
}

fn check_handle<C: Castable>(handle: *const C, name: &'static str) -> FfiResult<()> {
    if handle.is_null() {
        return Err(Failure::null_parameter(name));
    }
    if !handle.cast::<C::RustType>().is_aligned() {
        return Err(Failure::invalid(format!(
            "argument `{name}` is not a valid handle (misaligned pointer)"
        )));
    }
    Ok(())
}

/// Borrows the value behind a handle (Box or Arc) for the duration of the call.
///
/// # Safety
/// `handle` is NULL or a live handle of type `C` (from [`into_raw_box`] /
/// [`into_raw_arc`]) that nothing mutates during `'a`.
pub(crate) unsafe fn try_ref<'a, C: Castable>(
    handle: *const C,
    name: &'static str,
) -> FfiResult<&'a C::RustType> {
    check_handle(handle, name)?;
    // SAFETY: non-null and aligned (checked); live and not mutated during 'a
    // per this function's contract.
    Ok(unsafe { &*handle.cast::<C::RustType>() })
}

/// Mutably borrows the value behind a `Box` handle for the duration of the call.
///
/// # Safety
/// `handle` is NULL or a live handle from [`into_raw_box`] for this `C`, not
/// accessed by anything else during `'a` (the "one thread at a time" rule).
pub(crate) unsafe fn try_mut<'a, C>(
    handle: *mut C,
    name: &'static str,
) -> FfiResult<&'a mut C::RustType>
where
    C: Castable<Ownership = OwnershipBox>,
{
    check_handle(handle, name)?;
    // SAFETY: non-null and aligned (checked); exclusive during 'a per contract.
    Ok(unsafe { &mut *handle.cast::<C::RustType>() })
}

/// Takes a new strong reference to an `Arc` handle (C keeps its own).
///
/// # Safety
/// `handle` is NULL or a live handle from [`into_raw_arc`] for this `C`.
pub(crate) unsafe fn try_clone_arc<C>(
    handle: *const C,
    name: &'static str,
) -> FfiResult<Arc<C::RustType>>
where
    C: Castable<Ownership = OwnershipArc>,
{
    check_handle(handle, name)?;
    let ptr = handle.cast::<C::RustType>();
    // SAFETY: ptr came from Arc::into_raw and C still holds its reference, so the
    // count is >= 1; we add one and then adopt that new reference.
    unsafe {
        Arc::increment_strong_count(ptr);
        Ok(Arc::from_raw(ptr))
    }
}

/// Borrows a NUL-terminated C string as `&str`.
///
/// `HATEBM_NULL_PARAMETER` when NULL, `HATEBM_INVALID_UTF8` when not UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays unchanged for `'a`.
pub(crate) unsafe fn try_str<'a>(ptr: *const c_char, name: &'static str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(Failure::null_parameter(name));
    }
    // SAFETY: non-null and NUL-terminated per this function's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        Failure::new(
            HATEBM_INVALID_UTF8,
            format!(
                "argument `{name}` is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

fn check_buffer<T>(ptr: *const T, len: usize, name: &'static str) -> FfiResult<bool> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(false)
        } else {
            Err(Failure::new(
                HATEBM_NULL_PARAMETER,
                format!("argument `{name}` is NULL but its length is {len}"),
            ))
        };
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!(
            "argument `{name}` is misaligned for its element type ({} bytes)",
            std::mem::align_of::<T>()
        )));
    }
    let fits = len
        .checked_mul(std::mem::size_of::<T>())
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !fits {
        return Err(Failure::invalid(format!(
            "length {len} of `{name}` is larger than any buffer can be"
        )));
    }
    Ok(len != 0)
}

/// Borrows a caller buffer of `len` elements. NULL is accepted when `len == 0`.
///
/// # Safety
/// When `len > 0`, `ptr` points to `len` initialised `T`s that nothing mutates during `'a`.
pub(crate) unsafe fn try_slice<'a, T>(
    ptr: *const T,
    len: usize,
    name: &'static str,
) -> FfiResult<&'a [T]> {
    if !check_buffer(ptr, len, name)? {
        return Ok(&[]);
    }
    // SAFETY: non-null, aligned, size <= isize::MAX (checked); valid and
    // unmutated for 'a per this function's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Mutably borrows a caller buffer of `len` elements. NULL is accepted when `len == 0`.
///
/// # Safety
/// When `len > 0`, `ptr` points to `len` writable, initialised `T`s that nothing
/// else accesses during `'a` (in particular, no other buffer of the same call
/// overlaps it).
pub(crate) unsafe fn try_slice_mut<'a, T>(
    ptr: *mut T,
    len: usize,
    name: &'static str,
) -> FfiResult<&'a mut [T]> {
    if !check_buffer(ptr, len, name)? {
        return Ok(&mut []);
    }
    // SAFETY: non-null, aligned, size <= isize::MAX (checked); exclusive for 'a
    // per this function's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A `#[repr(C)]` struct passed by pointer (parameters, vtables) whose first
/// field is `uint32_t struct_size`, so it can grow. Callers fill it with the
/// library's `*_default_params()` function (or set `struct_size = sizeof`).
///
/// # Safety
/// Implement only for `#[repr(C)]` structs whose first field is a `u32` holding
/// the struct's size, and whose every bit pattern a C caller can produce through
/// their declared field types is valid.
pub(crate) unsafe trait Versioned: Copy {
    /// What to call to initialise it (for the error message).
    const INIT: &'static str;
}

/// Reads a [`Versioned`] struct: `HATEBM_NULL_PARAMETER` when NULL,
/// `HATEBM_INVALID_ARGUMENT` when misaligned or when `struct_size` is not the
/// size this library was built with (an uninitialised struct, or a header and
/// library that do not match). Only the `struct_size` field is read before the
/// size is checked.
///
/// # Safety
/// `ptr` is NULL or points to at least 4 readable bytes, and to a whole `T` when
/// those bytes hold `size_of::<T>()`.
pub(crate) unsafe fn try_versioned<T: Versioned>(
    ptr: *const T,
    name: &'static str,
) -> FfiResult<T> {
    if ptr.is_null() {
        return Err(Failure::null_parameter(name));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!("argument `{name}` is misaligned")));
    }
    // SAFETY: non-null and aligned (checked; T's alignment is at least u32's as
    // its first field is a u32); 4 readable bytes per this function's contract.
    let size = unsafe { ptr.cast::<u32>().read() };
    let want = std::mem::size_of::<T>();
    if usize::try_from(size).ok() != Some(want) {
        return Err(Failure::invalid(format!(
            "`{name}->struct_size` is {size} but this library expects {want}: initialise it \
             with {} (or a header matching the library)",
            T::INIT
        )));
    }
    // SAFETY: the caller's struct is a whole T (its struct_size says so, and the
    // contract makes that promise); T is Copy and valid for C-produced patterns.
    Ok(unsafe { ptr.read() })
}

/// Checks that a caller buffer holds `n` rows of `per` elements:
/// `HATEBM_SHAPE_MISMATCH` otherwise, with a message such as
/// ``buffer `y` has 10 elements; expected n * sample_len = 4 * 3 = 12``.
pub(crate) fn expect_len(
    name: &str,
    got: usize,
    n: usize,
    per: usize,
    per_name: &str,
) -> FfiResult<()> {
    match n.checked_mul(per) {
        Some(want) if want == got => Ok(()),
        Some(want) => Err(Failure::new(
            HATEBM_SHAPE_MISMATCH,
            format!(
                "buffer `{name}` has {got} elements; expected n * {per_name} = {n} * {per} = {want}"
            ),
        )),
        None => Err(Failure::invalid(format!(
            "n * {per_name} = {n} * {per} overflows"
        ))),
    }
}

/// `HATEBM_INVALID_ARGUMENT` if two caller buffers (`len` elements each)
/// overlap in memory. Call it on the raw pointers *before* borrowing them as
/// slices: Rust requires a written buffer to be disjoint from every other one.
pub(crate) fn expect_disjoint<T, U>(
    a: (*const T, usize, &str),
    b: (*const U, usize, &str),
) -> FfiResult<()> {
    let span =
        |p: usize, bytes: Option<usize>| bytes.and_then(|n| p.checked_add(n)).map(|e| (p, e));
    let ra = span(a.0 as usize, a.1.checked_mul(std::mem::size_of::<T>()));
    let rb = span(b.0 as usize, b.1.checked_mul(std::mem::size_of::<U>()));
    if let (Some((a0, a1)), Some((b0, b1))) = (ra, rb)
        && a0 < a1
        && b0 < b1
        && a0 < b1
        && b0 < a1
    {
        return Err(Failure::invalid(format!(
            "buffers `{}` and `{}` overlap",
            a.2, b.2
        )));
    }
    Ok(())
}

/// Unwraps a nullable C function pointer, or `HATEBM_NULL_PARAMETER`.
pub(crate) fn try_callback<F>(cb: Option<F>, name: &'static str) -> FfiResult<F> {
    cb.ok_or_else(|| Failure::null_parameter(name))
}

/// A checked out-param. Check every out-param *before* doing the work, and
/// [`Out::write`] only once the call has succeeded: that is how "outputs are
/// written only on success" holds.
#[derive(Debug)]
pub(crate) struct Out<'a, T> {
    ptr: NonNull<T>,
    _borrow: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// Writes the value (without reading or dropping what was there).
    pub fn write(self, value: T) {
        // SAFETY: try_out/opt_out checked non-null and alignment, and their
        // caller guaranteed the pointee is writable for this lifetime.
        unsafe { self.ptr.as_ptr().write(value) }
    }
}

/// Checks a required out-param (`HATEBM_NULL_PARAMETER` when NULL).
///
/// # Safety
/// `ptr` is NULL or points to memory writable as a `T` during `'a`.
pub(crate) unsafe fn try_out<'a, T>(ptr: *mut T, name: &'static str) -> FfiResult<Out<'a, T>> {
    // SAFETY: forwarded.
    unsafe { opt_out(ptr, name) }?.ok_or_else(|| Failure::null_parameter(name))
}

/// Checks an optional out-param: NULL means "not wanted".
///
/// # Safety
/// `ptr` is NULL or points to memory writable as a `T` during `'a`.
pub(crate) unsafe fn opt_out<'a, T>(
    ptr: *mut T,
    name: &'static str,
) -> FfiResult<Option<Out<'a, T>>> {
    let Some(nn) = NonNull::new(ptr) else {
        return Ok(None);
    };
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!(
            "out-param `{name}` is misaligned"
        )));
    }
    Ok(Some(Out {
        ptr: nn,
        _borrow: PhantomData,
    }))
}

/// A checked copy-out buffer `(buf, len, out_n)`: the caller's buffer of `len`
/// elements plus `size_t *out_n`, which always receives the size the full result
/// needs (also on `HATEBM_INSUFFICIENT_SIZE`; the one documented exception to
/// "outputs only on success"). A too-small buffer is left untouched.
#[derive(Debug)]
pub(crate) struct CopyOut<'a, T> {
    buf: *mut T,
    len: usize,
    out_n: Out<'a, usize>,
    name: &'static str,
}

/// Checks a copy-out triple. `buf` may be NULL only when `len == 0` (size query).
///
/// # Safety
/// `buf` is NULL or points to `len` writable `T`s during `'a`; `out_n` is NULL or
/// writable; the two do not overlap.
pub(crate) unsafe fn try_copy_out<'a, T>(
    buf: *mut T,
    len: usize,
    out_n: *mut usize,
    name: &'static str,
) -> FfiResult<CopyOut<'a, T>> {
    // SAFETY: forwarded.
    let out_n = unsafe { try_out(out_n, "out_n") }?;
    check_buffer(buf.cast_const(), len, name)?;
    Ok(CopyOut {
        buf,
        len,
        out_n,
        name,
    })
}

impl<T: Copy> CopyOut<'_, T> {
    fn copy(self, src: &[T], terminator: Option<T>) -> FfiResult<()> {
        let needed = src.len() + usize::from(terminator.is_some());
        if self.len < needed {
            let (name, len) = (self.name, self.len);
            self.out_n.write(needed);
            // A size query (NULL, 0) is not an error: it returns the status
            // but leaves the last error and the log alone (issue 17).
            if self.buf.is_null() && len == 0 {
                return Err(Failure::quiet(HATEBM_INSUFFICIENT_SIZE));
            }
            return Err(Failure::new(
                HATEBM_INSUFFICIENT_SIZE,
                format!("buffer `{name}` holds {len} elements but {needed} are needed"),
            ));
        }
        // SAFETY: needed <= len and needed >= 1 here unless src is empty with no
        // terminator; buf is then valid for len writes (try_copy_out contract and
        // checks), and src cannot overlap it (src is Rust-owned).
        unsafe {
            if !src.is_empty() {
                std::ptr::copy_nonoverlapping(src.as_ptr(), self.buf, src.len());
            }
            if let Some(t) = terminator {
                self.buf.add(src.len()).write(t);
            }
        }
        self.out_n.write(needed);
        Ok(())
    }

    /// Copies `src`; `*out_n = src.len()`.
    pub fn write_slice(self, src: &[T]) -> FfiResult<()> {
        self.copy(src, None)
    }
}

impl CopyOut<'_, c_char> {
    /// Copies `s` and a terminating NUL; `*out_n = s.len() + 1`.
    pub fn write_str(self, s: &str) -> FfiResult<()> {
        // SAFETY: u8 and c_char have the same size and alignment.
        let bytes = unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<c_char>(), s.len()) };
        self.copy(bytes, Some(0))
    }

    /// Copies a C string including its NUL; `*out_n = strlen + 1`.
    pub fn write_cstr(self, s: &CStr) -> FfiResult<()> {
        let bytes = s.to_bytes();
        // SAFETY: u8 and c_char have the same size and alignment.
        let chars =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<c_char>(), bytes.len()) };
        self.copy(chars, Some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::{null, null_mut};

    #[derive(Debug)]
    struct Thing(u32);
    struct hatebm_thing {
        _private: [u8; 0],
    }
    box_castable!(hatebm_thing => Thing);
    struct hatebm_shared {
        _private: [u8; 0],
    }
    arc_castable!(hatebm_shared => Thing);

    #[test]
    fn box_handles_round_trip() {
        let h: *mut hatebm_thing = into_raw_box(Thing(3));
        // SAFETY: h is live and exclusively ours.
        unsafe {
            try_mut::<hatebm_thing>(h, "h").unwrap().0 += 1;
            assert_eq!(try_ref::<hatebm_thing>(h, "h").unwrap().0, 4);
            free_box(h);
            free_box::<hatebm_thing>(null_mut());
        }
        // SAFETY: NULL is the case under test.
        let e = unsafe { try_ref::<hatebm_thing>(null(), "cfg") }.unwrap_err();
        assert_eq!(e.status(), HATEBM_NULL_PARAMETER);
        assert_eq!(e.message(), "argument `cfg` is NULL");
    }

    #[test]
    fn arc_handles_count_references() {
        let h: *const hatebm_shared = into_raw_arc(Thing(9));
        // SAFETY: h is live; each reference is released once.
        unsafe {
            let a = try_clone_arc(h, "h").unwrap();
            assert_eq!(Arc::strong_count(&a), 2);
            free_arc(h);
            assert_eq!(Arc::strong_count(&a), 1);
            assert_eq!(a.0, 9);
        }
    }

    #[test]
    fn strings() {
        // SAFETY: literals are NUL-terminated; NULL is checked.
        unsafe {
            assert_eq!(try_str(c"abc".as_ptr(), "s").unwrap(), "abc");
            let bad = [0xC3u8 as c_char, 0x28, 0];
            let e = try_str(bad.as_ptr(), "name").unwrap_err();
            assert_eq!(e.status(), HATEBM_INVALID_UTF8);
            assert!(e.message().contains("offset 0"), "{}", e.message());
            assert_eq!(
                try_str(null(), "s").unwrap_err().status(),
                HATEBM_NULL_PARAMETER
            );
        }
    }

    #[test]
    fn slices() {
        let v = [1.0f32, 2.0];
        // SAFETY: v is live; NULL/misaligned cases are checked before any deref.
        unsafe {
            assert_eq!(try_slice(v.as_ptr(), 2, "v").unwrap(), &v);
            assert!(try_slice::<f32>(null(), 0, "v").unwrap().is_empty());
            assert_eq!(
                try_slice::<f32>(null(), 3, "v").unwrap_err().status(),
                HATEBM_NULL_PARAMETER
            );
            let mis = v.as_ptr().cast::<u8>().add(1).cast::<f32>();
            assert_eq!(
                try_slice(mis, 1, "v").unwrap_err().status(),
                HATEBM_INVALID_ARGUMENT
            );
            assert_eq!(
                try_slice(v.as_ptr(), usize::MAX / 2, "v")
                    .unwrap_err()
                    .status(),
                HATEBM_INVALID_ARGUMENT
            );
            let mut w = [0u8; 3];
            try_slice_mut(w.as_mut_ptr(), 3, "w").unwrap()[1] = 7;
            assert_eq!(w, [0, 7, 0]);
            assert!(try_slice_mut::<u8>(null_mut(), 0, "w").unwrap().is_empty());
        }
    }

    #[test]
    fn out_params() {
        let mut x = 0u64;
        // SAFETY: x is writable; NULL is checked.
        unsafe {
            try_out(&mut x, "x").unwrap().write(5);
            assert!(opt_out::<u64>(null_mut(), "x").unwrap().is_none());
            assert_eq!(
                try_out::<u64>(null_mut(), "x").unwrap_err().status(),
                HATEBM_NULL_PARAMETER
            );
        }
        assert_eq!(x, 5);
    }

    #[test]
    fn copy_out_sizes() {
        let mut n = 0usize;
        let mut buf = [7i32; 4];
        // SAFETY: buf/n are writable for their stated sizes.
        unsafe {
            let e = try_copy_out(buf.as_mut_ptr(), 2, &mut n, "buf")
                .unwrap()
                .write_slice(&[1, 2, 3])
                .unwrap_err();
            assert_eq!((e.status(), n, buf), (HATEBM_INSUFFICIENT_SIZE, 3, [7; 4]));
            try_copy_out(buf.as_mut_ptr(), 4, &mut n, "buf")
                .unwrap()
                .write_slice(&[1, 2, 3])
                .unwrap();
            assert_eq!((n, buf), (3, [1, 2, 3, 7]));
            try_copy_out::<i32>(null_mut(), 0, &mut n, "buf")
                .unwrap()
                .write_slice(&[])
                .unwrap();
            assert_eq!(n, 0);
            let mut s = [1 as c_char; 3];
            try_copy_out(s.as_mut_ptr(), 3, &mut n, "s")
                .unwrap()
                .write_str("ab")
                .unwrap();
            assert_eq!((n, s), (3, [b'a' as c_char, b'b' as c_char, 0]));
            assert_eq!(
                try_copy_out::<i32>(null_mut(), 1, &mut n, "buf")
                    .unwrap_err()
                    .status(),
                HATEBM_NULL_PARAMETER
            );
            assert_eq!(
                try_copy_out(buf.as_mut_ptr(), 1, null_mut(), "buf")
                    .unwrap_err()
                    .status(),
                HATEBM_NULL_PARAMETER
            );
        }
    }

    #[test]
    fn lengths_and_overlaps() {
        assert!(expect_len("y", 12, 4, 3, "sample_len").is_ok());
        let e = expect_len("y", 10, 4, 3, "sample_len").unwrap_err();
        assert_eq!(e.status(), HATEBM_SHAPE_MISMATCH);
        assert_eq!(
            e.message(),
            "buffer `y` has 10 elements; expected n * sample_len = 4 * 3 = 12"
        );
        assert_eq!(
            expect_len("y", 0, usize::MAX, 2, "x").unwrap_err().status(),
            HATEBM_INVALID_ARGUMENT
        );
        let v = [0f32; 8];
        let p = v.as_ptr();
        // Disjoint halves, empty and NULL buffers are fine; overlaps are not.
        assert!(expect_disjoint((p, 4, "a"), (p.wrapping_add(4), 4, "b")).is_ok());
        assert!(expect_disjoint((p, 0, "a"), (p, 4, "b")).is_ok());
        assert!(expect_disjoint((null::<f32>(), 0, "a"), (p, 4, "b")).is_ok());
        let e = expect_disjoint((p, 5, "a"), (p.wrapping_add(4), 4, "b")).unwrap_err();
        assert_eq!(e.status(), HATEBM_INVALID_ARGUMENT);
        assert_eq!(e.message(), "buffers `a` and `b` overlap");
        let bytes = p.cast::<u8>();
        assert!(expect_disjoint((bytes.wrapping_add(3), 1, "a"), (p, 1, "b")).is_err());
    }

    #[test]
    fn callbacks() {
        let cb: Option<extern "C" fn()> = None;
        assert_eq!(
            try_callback(cb, "cb").unwrap_err().status(),
            HATEBM_NULL_PARAMETER
        );
    }
}
