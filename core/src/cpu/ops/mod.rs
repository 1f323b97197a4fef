//! Layer kernels of the CPU reference backend: exact, deterministic forward and
//! backward passes on plain contiguous row-major slices (images NCHW).
//!
//! Every kernel is generic over [`Scalar`] (`f32` for production, `f64` for
//! finite-difference checks and float64 references).
//!
//! # Conventions
//!
//! * **Shapes** are passed explicitly; a slice whose length does not match them is a
//!   programming error and panics (see each function's `# Panics`).
//! * **Outputs**: forward functions overwrite their output. Backward-input functions take
//!   `acc`: `true` adds the gradient into `dx`, `false` overwrites `dx` (NaN or garbage
//!   in it is irrelevant). Parameter-gradient functions always **accumulate** (`+=`) into
//!   `dw` / `db` / `dgamma` / `dbeta`.
//! * **Aliasing**: inputs and outputs are distinct borrows, so in-place operation is
//!   impossible by construction; use a second buffer.
//! * **Threads**: kernels parallelise over the batch (or over channels / fixed element
//!   chunks) with rayon, in the current rayon pool (`ThreadPool::install` selects one).
//!   GEMMs run single-threaded inside the tasks. Results are **bit-identical for any
//!   number of threads**: reductions over the batch use a fixed partition that depends
//!   only on the shapes, and their partial sums are added in order. (Results may differ
//!   between CPUs, because `matrixmultiply` picks its SIMD kernel at run time, and
//!   between batch sizes: splitting a batch in two halves may round differently.)
//!   Kernels may be called from inside rayon tasks (e.g. two models in `rayon::join`).
//! * **Performance model**: `f32` convolutions (forward and backward-input) run a direct
//!   AVX-512F kernel where the CPU has it and images have a multiple of 16 pixels
//!   (`conv_direct`: no im2col, no GEMM packing; the MLP energy's row blocks use the same
//!   kernel as a feature-major matmul); otherwise 3×3 convolutions are
//!   `im2col` + one GEMM per sample (row chunks sized for L2, or several small images per
//!   GEMM). Convolutions with at most 8 output channels use a shift-add form instead, and
//!   parameter gradients always use im2col + GEMM (see the `conv2d_*` docs). Everything
//!   else is a single pass of simple, vectorised loops.
//! * **Scratch memory**: im2col matrices and partial sums live in per-thread buffers that
//!   grow to the largest size requested and are then reused, so steady-state calls do
//!   not allocate. Each thread keeps at most 8 buffers per element type; they are freed
//!   when the thread exits.
//! * **Exactness**: straightforward formulas, no approximations (no fast-math `tanh`, no
//!   Winograd / FFT); `f32` results agree with an `f64` evaluation to `f32` rounding
//!   (normwise relative error ~1e-6 or better).

mod activation;
mod batchnorm;
mod conv;
mod conv_direct;
mod gemm;
mod linear;
mod pool;
mod scalar;
mod upsample;
mod util;

#[cfg(test)]
mod testutil;

pub use activation::{
    leaky_relu_backward, leaky_relu_forward, relu_backward, relu_forward, tanh_backward,
    tanh_forward,
};
pub use batchnorm::{
    BnParamGrads, bn_inference_backward, bn_inference_forward, bn_train_backward, bn_train_forward,
    bn_unbiased_var,
};
pub use conv::{Conv2dGeom, conv2d_backward_input, conv2d_backward_params, conv2d_forward};
pub(crate) use conv_direct::{PackedWeights, available as direct_available, matmul_fm};
pub use gemm::{Mat, MatMut, MatRef, gemm, gemm_nn, gemm_nt, gemm_tn};
pub use linear::{linear_backward_input, linear_backward_params, linear_forward};
pub use pool::{
    avg_pool2_backward, avg_pool2_forward, global_avg_pool_backward, global_avg_pool_forward,
};
pub use scalar::Scalar;
pub use upsample::{upsample_bilinear2_backward, upsample_bilinear2_forward};
pub(crate) use util::Scratch;
