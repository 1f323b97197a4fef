//! # hatebm-tch
//!
//! The libtorch backend of libhatebm: `TchBackend` implements the core's
//! [`Backend`](hatebm_core::Backend) and [`BuildNets`](hatebm_core::nets::BuildNets)
//! traits on libtorch (through the `tch` crate), on the CPU or on a CUDA
//! device, so that every network, the Langevin sampler, the bank and every
//! training mode run on libtorch by swapping one config line
//! (`backend = "tch:cuda:0"`).
//!
//! Without the `tch` cargo feature this crate is empty, so that the default
//! workspace build never needs libtorch. Features:
//!
//! * `tch` — compile the backend (libtorch from `LIBTORCH`, or PyPI's torch with
//!   `LIBTORCH_USE_PYTORCH=1`; see `docs/tch-backend.md`). The build script adds
//!   an rpath to libtorch's `lib/` directory.
//! * `cuda` — additionally link `libtorch_cuda` with `--no-as-needed`, so CUDA is
//!   not silently dropped by as-needed linking.
//! * `doc-only` — build the documentation without libtorch (docs.rs).
//!
//! Numerics: the same float32 operations as the CPU reference backend, in the
//! order its documentation states for the fused updates (Langevin, Adam, EMA);
//! networks run libtorch kernels with autograd, so their results agree with the
//! CPU backend and the PyTorch goldens to float32 rounding (normwise errors of
//! order 1e-7 to 1e-6, see `docs/tch-backend.md`). Initial weights are
//! generated on the host from the same addressed streams as the CPU backend
//! ([`ParamSpec::initial_values`](hatebm_core::params::ParamSpec::initial_values)),
//! so they are bit-identical; noise is too in the default
//! `NoiseMode::Portable`. See `docs/tch-backend.md` for setup, devices,
//! determinism and tolerances.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tch")]
mod backend;
#[cfg(feature = "tch")]
mod context;
#[cfg(feature = "tch")]
mod device;
#[cfg(feature = "tch")]
pub mod nets;
#[cfg(feature = "tch")]
mod tensor;

#[cfg(feature = "tch")]
pub use backend::{NoiseMode, TchBackend, TchOptions};
#[cfg(feature = "tch")]
pub use context::{cuda_available, cuda_device_count, libtorch_lib_dir, libtorch_version};
#[cfg(feature = "tch")]
pub use device::TchDevice;
#[cfg(feature = "tch")]
pub use tch;
#[cfg(feature = "tch")]
pub use tensor::TchTensor;
