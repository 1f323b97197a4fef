//! libtorch-global settings and build information.
//!
//! libtorch keeps a few process-global switches in `at::Context` that tch does
//! not wrap but that matter for exactness and determinism on CUDA:
//!
//! * **TF32** — PyTorch lets cuDNN convolutions use TF32 tensor cores by
//!   default (`torch.backends.cudnn.allow_tf32 = True`), which rounds the
//!   operands to a 10-bit mantissa: errors of order 1e-3, far outside the golden
//!   tolerances. [`set_allow_tf32`] switches it for cuDNN and cuBLAS (the
//!   backend turns it off unless [`crate::TchOptions::allow_tf32`] is set).
//! * **cuDNN determinism** — [`set_cudnn_deterministic`] selects deterministic
//!   convolution algorithms (`torch.backends.cudnn.deterministic`).
//!
//! These are the same setters PyTorch's Python properties call
//! (`torch._C._set_cudnn_allow_tf32` etc.). They are reached through their C++
//! symbols: non-virtual `at::Context` member functions taking a `bool`, which
//! under the Itanium C++ ABI used on Linux are plain functions whose first
//! argument is `this`.

use std::ffi::c_void;

// SAFETY: each declaration matches the exported C++ function's Itanium ABI
// signature (see the module docs): `at::Context& at::globalContext()` returns a
// pointer-sized reference, and `void at::Context::setX(bool)` takes `this` and a
// `bool` (one byte, zero or one) in the first two integer registers. None of
// these functions throws.
unsafe extern "C" {
    #[link_name = "_ZN2at13globalContextEv"]
    fn at_global_context() -> *mut c_void;
    #[link_name = "_ZN2at7Context17setAllowTF32CuDNNEb"]
    fn at_context_set_allow_tf32_cudnn(ctx: *mut c_void, b: bool);
    #[link_name = "_ZN2at7Context18setAllowTF32CuBLASEb"]
    fn at_context_set_allow_tf32_cublas(ctx: *mut c_void, b: bool);
    #[link_name = "_ZN2at7Context21setDeterministicCuDNNEb"]
    fn at_context_set_deterministic_cudnn(ctx: *mut c_void, b: bool);
}

/// Allows or forbids TF32 tensor-core math in cuDNN convolutions and cuBLAS
/// matrix products (process-global; no effect on the CPU).
pub fn set_allow_tf32(allowed: bool) {
    // SAFETY: `globalContext()` returns the process-wide singleton (never null,
    // valid for the life of the process); the setters only store a flag in it.
    unsafe {
        let ctx = at_global_context();
        at_context_set_allow_tf32_cudnn(ctx, allowed);
        at_context_set_allow_tf32_cublas(ctx, allowed);
    }
}

/// Selects deterministic cuDNN algorithms and turns cuDNN's autotuner
/// (`benchmark`) off (process-global), or back to libtorch's defaults.
pub fn set_cudnn_deterministic(on: bool) {
    // SAFETY: as in `set_allow_tf32`.
    unsafe {
        at_context_set_deterministic_cudnn(at_global_context(), on);
    }
    if on {
        tch::Cuda::cudnn_set_benchmark(false);
    }
}

/// The libtorch version this crate was built against (e.g. `2.13.0+cu130`),
/// read by the build script from the libtorch installation; `unknown` if it
/// could not be determined.
pub fn libtorch_version() -> &'static str {
    env!("HATEBM_TCH_LIBTORCH_VERSION")
}

/// The libtorch `lib/` directory the binaries carry an rpath to (empty if the
/// build script could not locate it).
pub fn libtorch_lib_dir() -> &'static str {
    env!("HATEBM_TCH_LIBTORCH_LIB")
}

/// Whether libtorch sees at least one CUDA device (false when the binary was
/// built without the `cuda` feature, see `docs/tch-backend.md`).
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// The number of CUDA devices libtorch sees (0 without CUDA).
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
    } else {
        0
    }
}
