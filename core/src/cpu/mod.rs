//! The CPU reference backend: plain-slice layer kernels on `matrixmultiply` and
//! `rayon`.
//!
//! [`ops`] holds the exact, deterministic forward and backward passes of every
//! layer the Hat EBM networks use (convolution, pooling, linear, activations,
//! batch norm, bilinear upsampling) for `f32` (production) and `f64`
//! (finite-difference checks and float64 references).

pub mod ops;
