//! One libFuzzer binary for every libhatebm fuzz target; the target is
//! named by `HATEBM_FUZZ_TARGET` (`scripts/fuzz.sh run TARGET` sets it):
//! the parsers of `hatebm_rs::fuzz::TARGETS` (`config_toml`, `config_set`,
//! `checkpoint`, `npy`, `idx`, `cifar`, `png`) and the C ABI call
//! sequences `abi_sequence` (`hatebm::fuzz`). A target returns for every
//! input and panics only on a bug, which libFuzzer reports as a crash and
//! saves as an artifact.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn abi_sequence(data: &[u8]) {
    hatebm::fuzz::abi_sequence(data);
}

fn chosen() -> fn(&[u8]) {
    static T: OnceLock<fn(&[u8])> = OnceLock::new();
    *T.get_or_init(|| {
        let name = std::env::var("HATEBM_FUZZ_TARGET").unwrap_or_default();
        if name == "abi_sequence" {
            return abi_sequence;
        }
        hatebm_rs::fuzz::target(&name).unwrap_or_else(|| {
            let names: Vec<_> = hatebm_rs::fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "HATEBM_FUZZ_TARGET={name:?}: not a target; one of {names:?} or abi_sequence"
            );
            std::process::exit(2)
        })
    })
}

fuzz_target!(|data: &[u8]| chosen()(data));
