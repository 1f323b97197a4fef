//! # hatebm-rs
//!
//! The crate a Rust application depends on alone: everything of
//! [`hatebm_core`] (re-exported under the same module names), plus
//!
//! * [`runtime`] — the run-time backend choice (`backend = "cpu"`, `"tch:cpu"`,
//!   `"tch:cuda:N"`, `"auto"`): [`runtime::AnyRun`], [`runtime::resolve`];
//! * [`run`] — [`run::Run`], a complete training run driven by a [`config::Config`]:
//!   data, checkpoints with exact resume, the divergence guard, evaluation,
//!   and the [`run::Observer`] it reports to;
//! * [`config`] — TOML configuration, presets, key = value overrides;
//! * [`data`] — data sets and their loaders (`.npy`, IDX, CIFAR, PNG folders, toys);
//! * [`metrics`], [`report`] — evaluation metrics, PNG grids, SVG curves;
//! * [`weights`] — safetensors weight files.
//!
//! Features: `tch` (the libtorch backend), `cuda` (link libtorch_cuda).
//!
//! The library writes only where it is asked to (the run's output folder) and
//! prints nothing: what a training run reports goes to the [`run::Observer`]
//! the caller passes, and diagnostics go to the `log` facade.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use hatebm_core::{
    Backend, BackendSpec, Energy, Error, Generator, Result, ResultExt, backend, bank, cpu, error,
    model, nets, noise, optim, params, sampler, spec, train,
};
pub use hatebm_core::{bail, ensure};

pub mod config;
pub mod data;
pub mod dist;
pub mod fsutil;
pub mod fuzz;
pub mod metrics;
pub mod report;
pub mod run;
pub mod runtime;
pub mod weights;
