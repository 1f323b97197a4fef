//! Shared helpers of the libhatebm integration tests: golden-file loading,
//! architecture decoding from golden configs, normwise comparisons, and the
//! `backend_tests!` macro that instantiates one generic test for every backend
//! compiled in (burn / candle style: one suite, every backend).

pub mod algo;
pub mod energies;

use std::path::PathBuf;

use hatebm_rs::nets::{EnergyArch, GeneratorArch};
use hatebm_rs::weights::{TensorData, TensorFile};
use serde_json::Value;

/// The directory holding the golden files (copied from the PyTorch reference,
/// see `tests/golden/README.md`): `$HATEBM_GOLDEN_DIR` if set (test binaries
/// run on another machine, e.g. by `scripts/gpu-check.sh`), else
/// `tests/golden` of the source tree they were built from.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("HATEBM_GOLDEN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden"),
    }
}

/// A golden case: its tensors and its `config` JSON.
#[derive(Debug)]
pub struct Golden {
    /// File name (for messages).
    pub name: String,
    /// All tensors.
    pub file: TensorFile,
    /// The parsed `config` metadata.
    pub config: Value,
}

impl Golden {
    /// Loads `tests/golden/<name>.safetensors`.
    ///
    /// # Panics
    /// If the file is missing or corrupt (a broken checkout).
    pub fn load(name: &str) -> Self {
        let path = golden_dir().join(format!("{name}.safetensors"));
        let file = TensorFile::read(&path).unwrap_or_else(|e| panic!("golden {name}: {e}"));
        // Python's json writes non-standard `Infinity` / `NaN` in diagnostic keys.
        let raw = file.metadata.get("config").map_or("{}", String::as_str);
        let cleaned = raw
            .replace("-Infinity", "null")
            .replace("Infinity", "null")
            .replace("NaN", "null");
        let config = serde_json::from_str(&cleaned).expect("golden config is JSON");
        Golden {
            name: name.into(),
            file,
            config,
        }
    }

    /// An F32 tensor as `(shape, data)`.
    ///
    /// # Panics
    /// If missing.
    pub fn t(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let (s, d) = self
            .file
            .f32(name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        (s.to_vec(), d.to_vec())
    }

    /// An I64 tensor (e.g. bank indices).
    ///
    /// # Panics
    /// If missing or not I64.
    pub fn i64(&self, name: &str) -> Vec<i64> {
        match self.file.tensors.get(name).map(|t| &t.data) {
            Some(TensorData::I64(v)) => v.clone(),
            _ => panic!("{}: no I64 tensor {name}", self.name),
        }
    }

    /// A scalar stored with shape `[1]`.
    pub fn scalar(&self, name: &str) -> f32 {
        self.t(name).1[0]
    }

    /// Host tensors under `prefix` with the prefix stripped.
    pub fn prefixed(&self, prefix: &str) -> Vec<hatebm_rs::params::HostTensor> {
        self.file.with_prefix(prefix)
    }

    /// A config number.
    ///
    /// # Panics
    /// If missing.
    pub fn cf(&self, key: &str) -> f64 {
        self.config[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{}: config key {key} missing", self.name))
    }

    /// A config integer.
    pub fn cu(&self, key: &str) -> usize {
        self.cf(key) as usize
    }

    /// A config boolean.
    pub fn cb(&self, key: &str) -> bool {
        self.config[key]
            .as_bool()
            .unwrap_or_else(|| panic!("{}: config key {key} missing", self.name))
    }
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("dims array")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

/// The energy architecture of a golden config. `prefix` is `""` for
/// single-model files (`model`, `nch`, `ngf`) and `"ebm_"` for two-model files
/// (`ebm_model`, `ebm_ngf`, `nch`, `ebm_dims`).
pub fn energy_arch(cfg: &Value, prefix: &str) -> EnergyArch {
    let model = cfg[format!("{prefix}model")].as_str().expect("model name");
    if model == "MLPEnergy" {
        return EnergyArch::Mlp {
            dims: dims(&cfg[format!("{prefix}dims")]),
        };
    }
    let res = model
        .trim_start_matches("EBMSNGAN")
        .parse()
        .expect("EBMSNGAN<res>");
    EnergyArch::Sngan {
        res,
        nch: cfg["nch"].as_u64().expect("nch") as usize,
        ngf: cfg[format!("{prefix}ngf")].as_u64().expect("ngf") as usize,
    }
}

/// The generator architecture of a golden config (`prefix` as in [`energy_arch`]:
/// `""` → `model`, `nz`, `ngf`, `out_factor`; `"gen_"` → `gen_model`, `gen_nz`,
/// `gen_ngf`, `gen_factor`).
pub fn generator_arch(cfg: &Value, prefix: &str) -> GeneratorArch {
    let model = cfg[format!("{prefix}model")].as_str().expect("model name");
    let factor_key = if prefix.is_empty() {
        "out_factor".to_string()
    } else {
        format!("{prefix}factor")
    };
    let num = |k: &str| cfg[k].as_u64().unwrap_or_else(|| panic!("config key {k}")) as usize;
    match model {
        "MLPGenerator" => GeneratorArch::Mlp {
            dims: dims(&cfg[format!("{prefix}dims")]),
        },
        "GenDecoder32" => GeneratorArch::Decoder32 {
            ngf: num(&format!("{prefix}ngf")),
            nch: num("nch"),
            out_factor: cfg[&factor_key].as_f64().expect("factor") as f32,
        },
        m => GeneratorArch::Sngan {
            res: m
                .trim_start_matches("GenSNGAN")
                .parse()
                .expect("GenSNGAN<res>"),
            nz: num(&format!("{prefix}nz")),
            ngf: num(&format!("{prefix}ngf")),
            nch: num("nch"),
            out_factor: cfg[&factor_key].as_f64().expect("factor") as f32,
        },
    }
}

/// The normwise error `max|got − exp| / max|exp|`.
pub fn normwise_err(got: &[f32], exp: &[f32]) -> f64 {
    assert_eq!(got.len(), exp.len(), "length mismatch");
    let scale = exp.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let err = got.iter().zip(exp).fold(0.0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    if scale == 0.0 { err } else { err / scale }
}

/// Asserts `max|got − exp| ≤ tol · max|exp| + atol` (the golden README's
/// normwise rule) and returns the normwise error for reporting (also printed
/// to stderr as `normwise-error<TAB>what<TAB>err` when `HATEBM_REPORT_ERRORS`
/// is set, e.g. to tabulate a backend's worst errors).
///
/// # Panics
/// When the check fails (with both errors in the message).
pub fn assert_close(what: &str, got: &[f32], exp: &[f32], tol: f64, atol: f64) -> f64 {
    assert_eq!(
        got.len(),
        exp.len(),
        "{what}: length {} vs {}",
        got.len(),
        exp.len()
    );
    let scale = exp.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let (mut err, mut at) = (0.0f64, 0usize);
    for (i, (&a, &b)) in got.iter().zip(exp).enumerate() {
        // NaN counts as an infinite error, so a NaN output always fails.
        let d = (f64::from(a) - f64::from(b)).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        if d > err {
            err = d;
            at = i;
        }
    }
    assert!(
        err <= tol * scale + atol,
        "{what}: max abs err {err:e} at {at} (got {} expected {}), scale {scale:e}, normwise {:e} > tol {tol:e} (+ atol {atol:e})",
        got[at],
        exp[at],
        err / scale.max(f64::MIN_POSITIVE)
    );
    let normwise = if scale == 0.0 { err } else { err / scale };
    if std::env::var_os("HATEBM_REPORT_ERRORS").is_some() {
        eprintln!("normwise-error\t{what}\t{normwise:e}");
    }
    normwise
}

/// Golden-README tolerances (normwise).
pub mod tol {
    /// Energies, generator outputs, Langevin trajectories, losses, banks.
    pub const VALUE: f64 = 1e-5;
    /// Input gradients, parameter gradients, VJPs, clipped Langevin gradients, Adam m/v in a train step.
    pub const GRAD: f64 = 1e-4;
    /// Weights after an Adam step: relative part (plus `0.05 · lr` absolute).
    pub const WEIGHTS_AFTER_STEP: f64 = 1e-6;
}

/// Instantiates generic test functions for every compiled-in backend:
///
/// ```ignore
/// backend_tests!(golden_energy_mlp_small);
/// fn golden_energy_mlp_small<B: BuildNets>(be: &B) { ... }
/// ```
/// produces `cpu::golden_energy_mlp_small` always and
/// `tch::golden_energy_mlp_small` (on `tch:cpu`, or the device of
/// `HATEBM_TEST_TCH_DEVICE`, see `tch_test_backend`) with the `tch` feature.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod cpu {
            $(
                #[test]
                fn $name() {
                    super::$name(&hatebm_rs::cpu::CpuBackend::new());
                }
            )*
        }
        #[cfg(feature = "tch")]
        mod tch {
            $(
                #[test]
                fn $name() {
                    super::$name(&$crate::tch_test_backend());
                }
            )*
        }
    };
}

/// The tch backend the `tch` instantiations of [`backend_tests!`] run on:
/// `tch:cpu`, or the device named by `HATEBM_TEST_TCH_DEVICE` (`cpu`, `cuda`,
/// `cuda:N`; used by `scripts/gpu-check.sh` to run the golden and
/// cross-backend suites on a GPU).
///
/// # Panics
/// If the variable names an unknown or unavailable device: a run that asked
/// for CUDA must not silently pass on the CPU.
#[cfg(feature = "tch")]
pub fn tch_test_backend() -> hatebm_tch::TchBackend {
    match std::env::var("HATEBM_TEST_TCH_DEVICE") {
        Ok(d) if !d.trim().is_empty() => {
            let dev: hatebm_tch::TchDevice = d
                .parse()
                .unwrap_or_else(|e| panic!("HATEBM_TEST_TCH_DEVICE={d}: {e}"));
            hatebm_tch::TchBackend::new(dev)
                .unwrap_or_else(|e| panic!("HATEBM_TEST_TCH_DEVICE={d}: {e}"))
        }
        _ => hatebm_tch::TchBackend::cpu(),
    }
}
