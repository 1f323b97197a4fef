//! Build script of `hatebm-tch`.
//!
//! With the `tch` feature it
//! * finds libtorch's `lib/` directory (torch-sys's `DEP_TCH_LIBTORCH_LIB`,
//!   else `$LIBTORCH/lib`, else `$HATEBM_TORCH_LIB`, else the `torch` package
//!   of `$PYTHON` or the interpreter torch-sys uses (`python` in a virtualenv,
//!   else `python3`) — the `LIBTORCH_USE_PYTORCH=1` setup);
//! * adds `-Wl,-rpath,<lib>` to this package's binaries and tests, so they run
//!   without `LD_LIBRARY_PATH`;
//! * with the `cuda` feature, adds `-Wl,--no-as-needed -ltorch_cuda
//!   -Wl,--as-needed`, so as-needed linking cannot drop libtorch_cuda (which
//!   no Rust symbol references) and CUDA stays visible at run time;
//! * exports `libtorch_lib`, `cuda` and `libtorch_version` as `links`
//!   metadata (`DEP_HATEBM_TCH_*` for direct dependents' build scripts), and
//!   `HATEBM_TCH_LIBTORCH_LIB` / `HATEBM_TCH_LIBTORCH_VERSION` for `env!`.
//!
//! Without the feature (the default), or with `doc-only`, it does nothing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for v in [
        "LIBTORCH",
        "LIBTORCH_USE_PYTORCH",
        "HATEBM_TORCH_LIB",
        "DEP_TCH_LIBTORCH_LIB",
        "PYTHON",
        "VIRTUAL_ENV",
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let feature = |f: &str| env::var_os(format!("CARGO_FEATURE_{f}")).is_some();
    if !feature("TCH") || feature("DOC_ONLY") {
        println!("cargo:rustc-env=HATEBM_TCH_LIBTORCH_LIB=");
        println!("cargo:rustc-env=HATEBM_TCH_LIBTORCH_VERSION=unknown");
        return;
    }
    let Some(lib) = libtorch_lib() else {
        println!(
            "cargo:warning=hatebm-tch: could not locate libtorch's lib/ directory; binaries \
             will need LD_LIBRARY_PATH (set LIBTORCH or run scripts/setup-torch.sh)"
        );
        println!("cargo:rustc-env=HATEBM_TCH_LIBTORCH_LIB=");
        println!("cargo:rustc-env=HATEBM_TCH_LIBTORCH_VERSION=unknown");
        return;
    };
    let lib_s = lib.display().to_string();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_s}");
    println!("cargo:libtorch_lib={lib_s}");
    println!("cargo:rustc-env=HATEBM_TCH_LIBTORCH_LIB={lib_s}");

    let mut cuda = false;
    if feature("CUDA") {
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
            cuda = true;
        } else {
            println!(
                "cargo:warning=hatebm-tch: feature `cuda` but no libtorch_cuda.so in {lib_s} \
                 (a CPU-only libtorch); the binary will report no CUDA"
            );
        }
    }
    println!("cargo:cuda={}", u8::from(cuda));

    let version = libtorch_version(&lib).unwrap_or_else(|| "unknown".into());
    println!("cargo:libtorch_version={version}");
    println!("cargo:rustc-env=HATEBM_TCH_LIBTORCH_VERSION={version}");
}

/// libtorch's `lib/` directory, if it can be found.
fn libtorch_lib() -> Option<PathBuf> {
    let is_lib = |p: &Path| p.join("libtorch_cpu.so").exists() || p.join("libtorch.so").exists();
    if let Some(d) = env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from)
        && is_lib(&d)
    {
        return Some(d);
    }
    if let Some(d) = env::var_os("LIBTORCH").map(|p| PathBuf::from(p).join("lib"))
        && is_lib(&d)
    {
        return Some(d);
    }
    if let Some(d) = env::var_os("HATEBM_TORCH_LIB").map(PathBuf::from)
        && is_lib(&d)
    {
        return Some(d);
    }
    // The interpreter torch-sys uses: `python` in a virtualenv, else `python3`.
    let python = env::var_os("PYTHON").unwrap_or_else(|| {
        if env::var_os("VIRTUAL_ENV").is_some() {
            "python".into()
        } else {
            "python3".into()
        }
    });
    let out = Command::new(python)
        .args([
            "-c",
            "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let d = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    is_lib(&d).then_some(d)
}

/// The libtorch version: `build-version` of a standalone libtorch, or
/// `__version__` of the PyTorch package that holds `lib/`.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return Some(v.trim().to_string());
    }
    let py = std::fs::read_to_string(root.join("version.py")).ok()?;
    py.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
}
