//! The `hatebm` command line: exact resume across processes, sampling from a
//! checkpoint, and clear errors.

use std::path::Path;
use std::process::Command;

mod common;

use common::{bin, bits, run_ok, scratch};
use hatebm_rs::weights::TensorFile;

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
    // The range policy: saved samples lie in the data's range, the clamped
    // fraction is reported, and --no-clamp keeps values outside it.
    let sample = |extra: &[&str], dir: &str| {
        let res = bin()
            .args(["sample", "--n", "40", "--steps", "200", "--checkpoint"])
            .arg(a.join("checkpoint.safetensors"))
            .args(extra)
            .arg("--out")
            .arg(d.join(dir))
            .output()
            .unwrap();
        assert!(res.status.success());
        let npy = hatebm_rs::data::npy::read_npy(d.join(dir).join("samples.npy")).unwrap();
        (
            npy.data.to_f32(),
            String::from_utf8_lossy(&res.stderr).into_owned(),
        )
    };
    let (clamped, log) = sample(&[], "clamped");
    assert!(clamped.iter().all(|v| (-1.0..=1.0).contains(v)), "{log}");
    assert!(
        log.contains("outside the data's range [-1, 1] and clamped"),
        "{log}"
    );
    let (raw, _) = sample(&["--no-clamp"], "raw");
    assert!(
        raw.iter().any(|v| v.abs() > 1.0),
        "test design: raw chains leave [-1, 1]"
    );
    let want: Vec<f32> = raw.iter().map(|v| v.clamp(-1.0, 1.0)).collect();
    assert_eq!(clamped, want);
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

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "command succeeded: {cmd:?}\n{err}");
    err
}

/// Issue 16, item 3: `--resume CK --set K=V` continues the checkpoint's own
/// run with only K changed; keys that cannot change are refused.
#[test]
fn resume_with_set_changes_only_the_named_key() {
    let d = scratch("resume-set");
    let a = d.join("a");
    run_ok(bin().arg("train").args(common(&a)).args([
        "--set",
        "train.batch_size=8",
        "--steps",
        "2",
    ]));
    let ck = a.join("checkpoint.safetensors");
    run_ok(bin().args(["train", "--resume"]).arg(&ck).args([
        "--set",
        "train.steps=4",
        "--set",
        "ebm_optim.lr=1e-5",
    ]));
    let f = TensorFile::read(&ck).unwrap();
    let cfg = hatebm_rs::config::Config::from_toml_str(&f.metadata["config"]).unwrap();
    assert_eq!(cfg.train.batch_size, 8, "the run's batch size is kept");
    assert_eq!(cfg.langevin.steps, 4, "the run's K is kept");
    assert_eq!(cfg.output.dir, a, "the run's output folder is kept");
    assert_eq!(cfg.train.steps, 4);
    assert_eq!(cfg.ebm_optim.lr, 1e-5);
    assert_eq!(f.metadata["iteration"], "4");
    let err = run_err(
        bin()
            .args(["train", "--resume"])
            .arg(&ck)
            .args(["--set", "train.batch_size=16"]),
    );
    assert!(
        err.contains("cannot change across a resume") && err.contains("train.batch_size"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 16, item 5: a baseline mode on top of a preset drops the preset's generator.
#[test]
fn baseline_modes_work_on_presets() {
    for mode in ["short_run", "persistent"] {
        let out = run_ok(
            bin()
                .args(["config", "--preset", "digits", "--set"])
                .arg(format!("train.mode=\"{mode}\"")),
        );
        let _ = out;
        let out = bin()
            .args(["config", "--set"])
            .arg(format!("train.mode={mode}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("[model.generator]"), "{mode}: {text}");
    }
    // Asking for a generator explicitly in a generator-less mode is still an error.
    let err = run_err(bin().args([
        "config",
        "--set",
        "train.mode=short_run",
        "--set",
        "model.generator={ kind = \"mlp\", dims = [8, 16, 64] }",
    ]));
    assert!(err.contains("has no generator"), "{err}");
}

/// Issue 16, item 6: resuming an older checkpoint into the same folder keeps
/// the later metrics in a superseded file and says so.
#[test]
fn resuming_an_older_checkpoint_keeps_the_later_metrics() {
    let d = scratch("older");
    let a = d.join("a");
    let log1 = ["--set", "output.log_every=1"];
    run_ok(
        bin()
            .arg("train")
            .args(common(&a))
            .args(log1)
            .args(["--steps", "3"]),
    );
    let old = d.join("at3.safetensors");
    std::fs::copy(a.join("checkpoint.safetensors"), &old).unwrap();
    run_ok(
        bin()
            .args(["train", "--resume"])
            .arg(a.join("checkpoint.safetensors")),
    );
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&a.join("metrics.jsonl")), 6);
    let err = run_ok(
        bin()
            .args(["train", "--resume"])
            .arg(&old)
            .args(["--steps", "1"]),
    );
    assert!(
        err.contains("superseded-1.jsonl"),
        "the log says where: {err}"
    );
    assert_eq!(
        lines(&a.join("metrics.jsonl")),
        4,
        "steps 1-3, then 4 again"
    );
    assert_eq!(
        lines(&a.join("metrics.superseded-1.jsonl")),
        6,
        "the later lines are kept"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 16, item 8: the small ones.
#[test]
fn small_input_defects_are_errors() {
    let d = scratch("small");
    // A value that smuggles more keys in.
    let err = run_err(bin().args(["config", "--set", "seed=1\n[train]\nsteps=5"]));
    assert!(err.contains("more than one TOML value"), "{err}");
    // A TOML error does not echo a huge line.
    let big = d.join("big.toml");
    std::fs::write(&big, format!("seed = \"{}\n", "x".repeat(3_000_000))).unwrap();
    let err = run_err(bin().args(["config", "--config"]).arg(&big));
    assert!(err.len() < 2_000, "{} bytes on stderr", err.len());
    // An array of tables is named as such.
    let aot = d.join("aot.toml");
    std::fs::write(&aot, "[[langevin]]\nsteps = 3\n").unwrap();
    let err = run_err(bin().args(["config", "--config"]).arg(&aot));
    assert!(
        err.contains("array of tables") && err.contains("[langevin]"),
        "{err}"
    );
    // Retrofit needs its pretrained decoder to train (printing the config is fine).
    let retro = d.join("retro.toml");
    std::fs::write(
        &retro,
        "preset = \"digits\"\n[train]\nmode = \"retrofit\"\n",
    )
    .unwrap();
    run_ok(bin().args(["config", "--config"]).arg(&retro));
    let err = run_err(
        bin()
            .args(["train", "--config"])
            .arg(&retro)
            .args(["--set", "train.steps=1"]),
    );
    assert!(err.contains("needs model.pretrained_generator"), "{err}");
    // compare with a key no run has.
    let a = d.join("a");
    run_ok(bin().arg("train").args(common(&a)).args(["--steps", "1"]));
    let err = run_err(
        bin()
            .args(["compare", "--out"])
            .arg(d.join("fig.svg"))
            .args(["--keys", "nonexistent"])
            .arg(format!("a={}", a.display())),
    );
    assert!(
        err.contains("nonexistent") && err.contains("loss_ebm"),
        "{err}"
    );
    assert!(!d.join("fig.svg").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 16, item 7 and the kill-during-save check: 50 SIGKILLs at seeded
/// random times into runs that checkpoint every iteration (each run resuming
/// the previous one's checkpoint). After every kill the checkpoint on disk
/// loads; the run always resumes; and once a save completes, no temporary
/// file of a killed process is left.
#[test]
fn sigkill_during_checkpointing_never_damages_the_checkpoint() {
    let d = scratch("kill");
    let a = d.join("a");
    let ck = a.join("checkpoint.safetensors");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let temps = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (mut kills, mut left_temps, mut resumed) = (0, 0, 0);
    // Kill times scale with how long this build takes to start and write its
    // first checkpoint (a libtorch-linked binary starts far slower): the first
    // run is killed once that checkpoint exists, the others at seeded random
    // times between half and twice that.
    let mut first_save_ms: Option<u64> = None;
    for _ in 0..50 {
        let mut cmd = bin();
        if ck.exists() {
            cmd.args(["train", "--resume"]).arg(&ck);
            resumed += 1;
        } else {
            cmd.arg("train").args(common(&a)).args([
                "--set",
                "train.steps=1000000",
                "--set",
                "output.checkpoint_every=1",
                "--set",
                "train.bank_size=2048",
            ]);
        }
        cmd.stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        match first_save_ms {
            None => {
                let t0 = std::time::Instant::now();
                while !ck.exists() {
                    assert!(t0.elapsed().as_secs() < 300, "no checkpoint after 300 s");
                    assert!(child.try_wait().unwrap().is_none(), "the run ended early");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                first_save_ms = Some(t0.elapsed().as_millis() as u64);
            }
            Some(t) => {
                let ms = t / 2 + next() % (3 * t / 2 + 1);
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        kills += 1;
        left_temps += usize::from(!temps(&a).is_empty());
        if ck.exists() {
            hatebm_rs::run::Run::resume(hatebm_rs::cpu::CpuBackend::new(), &ck, None)
                .unwrap_or_else(|e| {
                    panic!("after kill {kills}: the checkpoint does not load: {e}")
                });
        }
    }
    assert!(
        ck.exists() && resumed > 0,
        "the runs got far enough to checkpoint"
    );
    // One uninterrupted resume: its saves remove the dead processes' temporaries.
    run_ok(
        bin()
            .args(["train", "--resume"])
            .arg(&ck)
            .args(["--steps", "2"]),
    );
    assert_eq!(
        temps(&a),
        Vec::<String>::new(),
        "temporary files left behind"
    );
    eprintln!(
        "{kills} SIGKILLs, {resumed} resumed runs, {left_temps} kills left a temporary file (first checkpoint after {first_save_ms:?} ms)"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 12, item 4: `HATEBM_CPU_ISA` forces a kernel path, lower than the
/// CPU's best only; a name it does not know, or a path the CPU cannot run, is
/// a clear error.
#[test]
fn cpu_isa_switch_forces_a_path_or_refuses() {
    use hatebm_rs::cpu::isa::{Isa, detected};
    let d = scratch("isa");
    let train = |isa: &str| {
        bin()
            .env("HATEBM_CPU_ISA", isa)
            .arg("train")
            .args(common(&d.join(isa)))
            .args(["--steps", "1"])
            .output()
            .unwrap()
    };
    let out = train("generic");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cpu backend: generic kernels"), "{err}");
    let out = train("sse9");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("HATEBM_CPU_ISA") && err.contains("sse9"),
        "{err}"
    );
    let out = train("avx512");
    let err = String::from_utf8_lossy(&out.stderr);
    if detected() >= Isa::Avx512 {
        assert!(
            out.status.success() && err.contains("avx512 kernels"),
            "{err}"
        );
    } else {
        assert!(!out.status.success() && err.contains("cannot run"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 17, item 1: `hatebm sample` needs the checkpoint only, not the
/// training data it was trained on.
#[test]
fn sample_works_after_the_training_data_is_deleted() {
    let d = scratch("no-data");
    let data = d.join("x.npy");
    let digits = hatebm_rs::data::Dataset::digits().unwrap();
    let mut shape = vec![digits.len()];
    shape.extend_from_slice(digits.sample_shape());
    hatebm_rs::data::npy::write_npy_f32(&data, &shape, digits.data()).unwrap();
    let a = d.join("a");
    run_ok(
        bin()
            .arg("train")
            .args(common(&a))
            .args(["--steps", "2", "--set"])
            .arg(format!(
                "data={{ kind = \"npy\", path = \"{}\" }}",
                data.display()
            )),
    );
    std::fs::remove_file(&data).unwrap();
    let ck = a.join("checkpoint.safetensors");
    let err = run_err(bin().args(["train", "--resume"]).arg(&ck));
    assert!(
        err.contains("x.npy"),
        "resuming training needs the data: {err}"
    );
    run_ok(
        bin()
            .args(["sample", "--checkpoint"])
            .arg(&ck)
            .args(["--n", "5", "--steps", "2"]),
    );
    let npy = hatebm_rs::data::npy::read_npy(a.join("samples.npy")).unwrap();
    assert_eq!(npy.shape, vec![5, 64]);
    let _ = std::fs::remove_dir_all(&d);
}

/// A sharded run (`dist.shards = 4`, one process) keeps each bank shard in a
/// file of its own next to the checkpoint, named in the checkpoint's
/// manifest with its checksum: resuming continues exactly; a later save
/// removes the superseded shard files; a tampered or missing shard file is a
/// clear error, not a wrong bank.
#[test]
fn sharded_checkpoints_keep_bank_shards_in_checked_files() {
    let d = scratch("sharded");
    let (whole, split) = (d.join("whole"), d.join("split"));
    let args = |dir: &Path| {
        let mut a = common(dir);
        a.extend(["--set".into(), "dist.shards=4".into()]);
        a
    };
    run_ok(bin().arg("train").args(args(&whole)));
    run_ok(bin().arg("train").args(args(&split)).args(["--steps", "3"]));
    let shard_files = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".bank-"))
            .collect();
        v.sort();
        v
    };
    let at3 = shard_files(&split);
    assert_eq!(at3.len(), 4, "{at3:?}");
    assert!(
        at3[0].ends_with("bank-000000000003-00000-of-00004.safetensors"),
        "{at3:?}"
    );
    let ck = split.join("checkpoint.safetensors");
    run_ok(bin().arg("train").arg("--resume").arg(&ck));
    assert_eq!(bits(&whole.join("checkpoint.safetensors")), bits(&ck));
    let at6 = shard_files(&split);
    assert_eq!(at6.len(), 4, "the iteration-3 files were removed: {at6:?}");
    assert!(at6.iter().all(|n| n.contains("-000000000006-")), "{at6:?}");
    // A shard file from another save, or none: refused with a clear message.
    let shard = split.join(&at6[2]);
    let good = std::fs::read(&shard).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    std::fs::write(&shard, &bad).unwrap();
    let out = bin()
        .arg("train")
        .arg("--resume")
        .arg(&ck)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("does not match the manifest"), "{err}");
    std::fs::remove_file(&shard).unwrap();
    let out = bin()
        .arg("train")
        .arg("--resume")
        .arg(&ck)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&at6[2]), "{err}");
    // Sampling needs no bank: it still works.
    std::fs::write(&shard, &good).unwrap();
    run_ok(
        bin()
            .args(["sample", "--checkpoint"])
            .arg(&ck)
            .args(["--n", "4"]),
    );
}
