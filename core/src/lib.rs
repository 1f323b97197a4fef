//! # hatebm-core
//!
//! The backend-agnostic core of libhatebm: traits, algorithms, configuration,
//! checkpoints, data, metrics — and the `ndarray` + `matrixmultiply` CPU reference
//! backend. See `docs/architecture.md` for how the pieces fit.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cpu;
pub mod error;

pub use error::{Error, Result};
