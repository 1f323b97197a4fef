//! The CPU reference backend: `ndarray` tensors, `matrixmultiply` GEMMs, rayon
//! threads over the batch, analytic backward passes.
//!
//! * [`CpuBackend`] implements [`crate::backend::Backend`];
//! * [`ops`] holds the layer kernels (forward and backward) on plain slices;
//! * [`nets`] builds the networks of [`crate::nets::arch`] from those kernels.
//!
//! Results are bit-identical for any number of threads: work is split over
//! samples, and every reduction over the batch runs in a fixed order.

mod backend;
pub mod isa;
pub mod nets;
pub mod ops;
mod tensor;

pub use backend::{CpuBackend, CpuDevice};
pub use tensor::CpuTensor;
