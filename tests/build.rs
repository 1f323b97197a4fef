//! With the `tch` feature, gives the test binaries the rpath to libtorch's
//! `lib/` (and, with `cuda`, a `--no-as-needed` link of libtorch_cuda) that
//! hatebm-tch's build script found: link arguments of a dependency's build
//! script do not reach this package's binaries, so they are re-emitted here
//! from the `DEP_HATEBM_TCH_*` metadata. Without the feature it does nothing.

fn main() {
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
