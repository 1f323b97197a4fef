// Shared by the build scripts of the crates that link the tch backend into
// binaries (tests, ffi, benches) via `include!`: link arguments of a
// dependency's build script do not reach a dependent package's binaries, so
// the rpath to libtorch's `lib/` (and, with `cuda`, a `--no-as-needed` link of
// libtorch_cuda) found by hatebm-tch's build script is re-emitted from its
// `DEP_HATEBM_TCH_*` metadata. Without the tch feature the variables are unset
// and nothing is emitted.

/// Re-emits hatebm-tch's libtorch link arguments for this package's targets.
fn emit_tch_link_args() {
    println!("cargo:rerun-if-env-changed=DEP_HATEBM_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=DEP_HATEBM_TCH_CUDA");
    if let Ok(lib) = std::env::var("DEP_HATEBM_TCH_LIBTORCH_LIB")
        && !lib.is_empty()
    {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var("DEP_HATEBM_TCH_CUDA").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
