//! # hatebm-core
//!
//! The backend-agnostic core of libhatebm: the traits ([`Backend`], [`Energy`],
//! [`Generator`]), addressed noise, parameter sets, Adam/EMA, the bank, the
//! Langevin sampler, the trainer with every training mode, the network
//! descriptions, errors — and the `ndarray` + `matrixmultiply` CPU reference
//! backend ([`cpu`]).
//!
//! This crate reads and writes no files and parses no data formats: no TOML, no
//! PNG, no `.npy`, no safetensors. Runs driven by a configuration, checkpoints,
//! data loaders, metrics and pictures live in the facade crate `hatebm-rs`,
//! which is what a Rust application depends on (`docs/architecture.md`).
//!
//! The CPU backend lives here rather than in a crate of its own: it is the
//! reference that every algorithm's unit tests run on, it needs nothing heavier
//! than `ndarray`, `matrixmultiply` and `rayon`, and a separate crate would
//! make those tests a dev-dependency cycle.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod bank;
pub mod cpu;
pub mod dist;
pub mod error;
pub mod model;
pub mod nets;
pub mod noise;
pub mod optim;
pub mod params;
pub mod sampler;
pub mod spec;
pub mod train;

pub use backend::Backend;
pub use error::{Error, Result, ResultExt};
pub use model::{Energy, Generator};
pub use spec::BackendSpec;
