//! Shared helpers of the integration tests: proptest strategies
//! ([`strategies`]), small host-side statistics, scratch folders and preset
//! configurations.
//!
//! Each test file includes this module with `mod common;`; not every file uses
//! every helper.
#![allow(dead_code)]

pub mod strategies;

use hatebm_rs::backend::Backend;

/// A tensor's host copy.
pub fn host<B: Backend>(be: &B, t: &B::Tensor) -> Vec<f32> {
    be.to_host(t).expect("to_host")
}

/// Mean of `v` in f64.
pub fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

/// `(1/N) Σ x²`: the variance estimate for data whose mean is known to be 0.
pub fn mean_square(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

/// Per-row L2 norms of host data with rows of `row` elements, in f64.
pub fn row_norms(v: &[f32], row: usize) -> Vec<f64> {
    v.chunks(row)
        .map(|r| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt())
        .collect()
}

/// Whether two host tensors are identical bit for bit.
pub fn bit_identical(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Runs `f` on a fresh rayon pool of `threads` threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
        .install(f)
}

/// Proptest settings: `PROPTEST_CASES` if set, else `default` (cheap enough
/// for CI). Failing cases are persisted in
/// `tests/proptest-regressions/properties.txt` (committed) and replayed first
/// on every run.
pub fn cases(default: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, FileFailurePersistence};
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/properties.txt"
        )))),
        ..Config::with_cases(n)
    }
}

/// The noise address of a batch at iteration 0 starting at row 0.
pub fn key(seed: u64) -> hatebm_rs::sampler::ChainKey {
    hatebm_rs::sampler::ChainKey {
        seed,
        iteration: 0,
        row_offset: 0,
    }
}

/// A fresh, empty scratch folder for test `tag`, case `name` (per process).
pub fn scratch(tag: &str, name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hatebm-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A configuration from a preset plus `key = value` overrides, writing to
/// `dir`: no progress bar, no intermediate checkpoints or sample grids,
/// 16-image grids.
pub fn preset_config(
    preset: &str,
    dir: &std::path::Path,
    sets: &[(&str, &str)],
) -> hatebm_rs::config::Config {
    let mut b = hatebm_rs::config::ConfigBuilder::new();
    b.set("preset", &format!("\"{preset}\"")).unwrap();
    for (k, v) in sets {
        b.set(k, v).unwrap_or_else(|e| panic!("{k} = {v}: {e}"));
    }
    b.set("output.dir", &format!("\"{}\"", dir.display()))
        .unwrap();
    b.set("output.progress", "\"never\"").unwrap();
    b.set("output.sample_every", "0").unwrap();
    b.set("output.checkpoint_every", "0").unwrap();
    b.set("output.grid_samples", "16").unwrap();
    b.build().unwrap()
}
