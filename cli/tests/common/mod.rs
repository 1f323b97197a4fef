//! Helpers shared by the CLI tests: the binary, scratch folders, checked
//! runs, and checkpoint tensors as bit patterns.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hatebm_rs::weights::{TensorData, TensorFile};

/// The `hatebm` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hatebm"))
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hatebm-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "command failed: {cmd:?}\n{err}");
    err
}

pub fn bits(path: &Path) -> Vec<(String, Vec<u32>)> {
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

/// Trains a tiny digits run of `steps` iterations (batch 16, bank 64, K
/// langevin steps, no evaluation, no progress bar) into `dir`; returns its
/// checkpoint.
pub fn tiny_digits_run(dir: &Path, steps: u32, langevin_steps: u32) -> PathBuf {
    run_ok(
        bin()
            .args(["train", "--preset", "digits", "--steps", &steps.to_string()])
            .args([
                "--set",
                "train.batch_size=16",
                "--set",
                "train.bank_size=64",
            ])
            .arg("--set")
            .arg(format!("langevin.steps={langevin_steps}"))
            .args(["--set", "eval.num_samples=0"])
            .args(["--set", "output.progress=\"never\"", "--set"])
            .arg(format!("output.dir=\"{}\"", dir.display())),
    );
    dir.join("checkpoint.safetensors")
}
