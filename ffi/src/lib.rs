//! # hatebm-ffi
//!
//! The C ABI of libhatebm. The conventions are written in one place: `docs/c-abi.md`.
