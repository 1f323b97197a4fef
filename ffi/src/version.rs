//! Library and ABI versions.
//!
//! The header carries the same numbers as macros (`HATEBM_VERSION_MAJOR`, ...,
//! `HATEBM_ABI_VERSION`, written by cbindgen from `after_includes` in
//! `ffi/cbindgen.toml`); `ffi/tests/header.rs` fails when they drift from
//! `Cargo.toml`. A program can compare the header it was compiled with against
//! the library it loaded:
//!
//! ```c
//! if (hatebm_abi_version() != HATEBM_ABI_VERSION) { /* mismatched install */ }
//! ```

use std::ffi::{CStr, c_char};

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    assert!(!b.is_empty(), "empty version component");
    let mut i = 0;
    let mut v: u32 = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "non-numeric version component");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// Major version of this library (`CARGO_PKG_VERSION_MAJOR`).
///
/// cbindgen:ignore
pub const VERSION_MAJOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MAJOR"));
/// Minor version.
///
/// cbindgen:ignore
pub const VERSION_MINOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MINOR"));
/// Patch version.
///
/// cbindgen:ignore
pub const VERSION_PATCH: u32 = parse_u32(env!("CARGO_PKG_VERSION_PATCH"));

const _: () = assert!(
    VERSION_MINOR < 100 && VERSION_PATCH < 100,
    "ABI_VERSION packs minor and patch into two decimal digits each"
);

/// The ABI version: changes whenever the ABI may have changed; compare for
/// equality. No ABI is promised before 1.0, so every release is its own ABI:
/// `MAJOR * 10000 + MINOR * 100 + PATCH` (0.1.0 -> 100). It matches the SONAME
/// (`libhatebm.so.MAJOR.MINOR.PATCH`).
///
/// cbindgen:ignore
pub const ABI_VERSION: u32 = VERSION_MAJOR * 10000 + VERSION_MINOR * 100 + VERSION_PATCH;

/// The crate version as a C string, e.g. `"0.1.0"`.
///
/// cbindgen:ignore
pub const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("CARGO_PKG_VERSION contains a NUL"),
    };

/// Returns the version of the loaded library, e.g. `"0.1.0"` (static; never NULL,
/// never freed). Compare with `HATEBM_VERSION_STRING` from the header you compiled with.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_version() -> *const c_char {
    crate::ffi_panic_boundary! {
        default = c"".as_ptr();
        VERSION.as_ptr()
    }
}

/// Returns the ABI version of the loaded library; equal to `HATEBM_ABI_VERSION`
/// of the header it was built with. Before 1.0 every release has its own ABI
/// version (`MAJOR * 10000 + MINOR * 100 + PATCH`). Returns 0 only if something
/// is badly broken.
#[unsafe(no_mangle)]
pub extern "C" fn hatebm_abi_version() -> u32 {
    crate::ffi_panic_boundary! { ABI_VERSION }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_agree() {
        // SAFETY: static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(hatebm_version()) }
            .to_str()
            .unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            v,
            format!("{VERSION_MAJOR}.{VERSION_MINOR}.{VERSION_PATCH}")
        );
        assert_eq!(hatebm_abi_version(), ABI_VERSION);
        assert_eq!(parse_u32("0"), 0);
        assert_eq!(parse_u32("42"), 42);
    }
}
