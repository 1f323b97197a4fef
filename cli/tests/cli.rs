//! The `hatebm` command line: exact resume across processes, sampling from a
//! checkpoint, and clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use hatebm_rs::weights::{TensorData, TensorFile};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hatebm"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hatebm-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "command failed: {cmd:?}\n{err}");
    err
}

fn common(dir: &Path) -> Vec<String> {
    [
        "--preset",
        "digits",
        "--set",
        "train.steps=6",
        "--set",
        "train.batch_size=16",
        "--set",
        "train.bank_size=64",
        "--set",
        "langevin.steps=4",
        "--set",
        "eval.num_samples=50",
        "--set",
        "output.grid_samples=16",
        "--set",
        "output.progress=\"never\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--set".to_string(),
        format!("output.dir=\"{}\"", dir.display()),
    ])
    .collect()
}

fn bits(path: &Path) -> Vec<(String, Vec<u32>)> {
    TensorFile::read(path)
        .unwrap()
        .tensors
        .values()
        .map(|t| match &t.data {
            TensorData::F32(d) => (t.name.clone(), d.iter().map(|v| v.to_bits()).collect()),
            TensorData::I64(_) => (t.name.clone(), Vec::new()),
        })
        .collect()
}

#[test]
fn resume_in_a_new_process_is_bit_exact_and_sampling_works() {
    let d = scratch("resume");
    let (a, b) = (d.join("a"), d.join("b"));
    run_ok(bin().arg("train").args(common(&a)));
    for f in [
        "data.png",
        "generator_init.png",
        "samples_final.png",
        "curves.svg",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "eval.json",
    ] {
        assert!(a.join(f).exists(), "{f} written");
    }
    run_ok(bin().arg("train").args(common(&b)).args(["--steps", "3"]));
    run_ok(
        bin()
            .args(["train", "--resume"])
            .arg(b.join("checkpoint.safetensors")),
    );
    let (ta, tb) = (
        bits(&a.join("checkpoint.safetensors")),
        bits(&b.join("checkpoint.safetensors")),
    );
    assert_eq!(ta.len(), tb.len());
    for ((na, da), (nb, db)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(
            da == db,
            "tensor {na} differs between the uninterrupted and the resumed run"
        );
    }
    // The metrics log of the resumed run has each step once.
    let steps: Vec<u64> = std::fs::read_to_string(b.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let mut dedup = steps.clone();
    dedup.dedup();
    assert_eq!(steps, dedup, "no duplicated metric lines");
    // Sampling from the checkpoint writes a PNG and an npy of the right shape.
    let out = d.join("samples");
    run_ok(
        bin()
            .args(["sample", "--checkpoint"])
            .arg(a.join("checkpoint.safetensors"))
            .args(["--n", "10", "--out"])
            .arg(&out),
    );
    let npy = hatebm_rs::data::npy::read_npy(out.join("samples.npy")).unwrap();
    assert_eq!(npy.shape, vec![10, 64]);
    assert!(out.join("samples.png").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn errors_are_clear_and_nonzero() {
    let out = bin()
        .args(["train", "--preset", "digits", "--set", "langevin.stpes=3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `steps`"), "{err}");
    let out = bin()
        .args([
            "train",
            "--set",
            "backend=tch:cuda:0",
            "--set",
            "train.steps=1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "tch") {
        // With libtorch compiled in, a missing GPU is a device error.
        assert!(
            out.status.success() || err.contains("device unavailable"),
            "{err}"
        );
    } else {
        assert!(!out.status.success());
        assert!(err.contains("not compiled into this build"), "{err}");
    }
    let out = bin()
        .args(["sample", "--checkpoint", "/nonexistent/ck.safetensors"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ck.safetensors"));
    let out = bin().arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
}

/// `hatebm --help`, `hatebm --version` and `hatebm SUBCOMMAND --help` print
/// usage and exit 0; a misspelled option names the closest valid one.
#[test]
fn help_on_every_subcommand_and_suggestions() {
    for args in [
        vec!["--help"],
        vec!["--version"],
        vec!["train", "--help"],
        vec!["sample", "--help"],
        vec!["config", "--help"],
        vec!["pretrain-ae", "--help"],
        vec!["compare", "--help"],
        vec!["presets", "--help"],
        vec!["train", "-h"],
    ] {
        let out = bin().args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: exit {:?}", out.status);
        assert!(
            text.contains("Usage") || text.starts_with("hatebm "),
            "{args:?}: {text}"
        );
    }
    let out = bin().args(["train", "--stpes", "3"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--steps"), "suggests --steps: {err}");
}
