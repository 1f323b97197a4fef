//! # hatebm-tch
//!
//! The libtorch backend of libhatebm. Without the `tch` feature this crate is
//! empty, so that the default workspace build never needs libtorch.
