//! # hatebm-core
//!
//! The backend-agnostic core of libhatebm: traits, algorithms, configuration,
//! checkpoints, data, metrics — and the `ndarray` + `matrixmultiply` CPU reference
//! backend. See `docs/architecture.md` for how the pieces fit.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod bank;
pub mod config;
pub mod cpu;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod metrics;
pub mod model;
pub mod nets;
pub mod noise;
pub mod optim;
pub mod params;
pub mod report;
pub mod run;
pub mod sampler;
pub mod spec;
pub mod train;
pub mod weights;

pub use backend::Backend;
pub use error::{Error, Result};
pub use model::{Energy, Generator};
pub use spec::BackendSpec;
