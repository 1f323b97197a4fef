//! `hatebm train` under `mpirun` (feature `mpi`; `scripts/test.sh` installs
//! OpenMPI and runs these): a run with `dist.shards = 4` gives the same
//! checkpoint tensors (weights, Adam moments, EMA, bank) and the same metrics,
//! bit for bit, in one process and as 2 or 4 MPI processes; a run saved at
//! one process count resumes exactly at another; the opt-in all-reduce
//! agrees to rounding; a failing or killed rank stops the job in bounded
//! time with the last checkpoint (and its bank shard files) intact.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{bin, bits, run_ok, scratch};

/// `mpirun -np N hatebm` (as root in CI, oversubscribed on 2 cores).
fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args([
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
            &np.to_string(),
        ])
        .arg(env!("CARGO_BIN_EXE_hatebm"));
    c
}

/// The digits preset, small: S = 4 shards, 16 chains (4 per shard), a bank
/// of 64, one thread per process.
fn args(dir: &Path, steps: u64, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--preset",
        "digits",
        "--set",
        "dist.shards=4",
        "--set",
        "dist.check_every=2",
        "--set",
        "threads=1",
        "--set",
        "train.batch_size=16",
        "--set",
        "train.bank_size=64",
        "--set",
        "train.persistent_bank_size=64",
        "--set",
        "langevin.steps=4",
        "--set",
        "eval.num_samples=50",
        "--set",
        "output.grid_samples=16",
        "--set",
        "output.progress=\"never\"",
        "--set",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("train.steps={steps}"));
    v.push("--set".into());
    v.push(format!("output.dir=\"{}\"", dir.display()));
    for e in extra {
        v.push("--set".into());
        v.push((*e).into());
    }
    v
}

/// The metrics lines without their timings.
fn metrics(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| !k.starts_with("sec"));
            }
            v.to_string()
        })
        .collect()
}

fn ck(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// The checkpoint's tensors, then those of its bank shard files (by name).
fn all_bits(dir: &Path) -> Vec<(String, Vec<u32>)> {
    let mut v = bits(&ck(dir));
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".bank-"))
        .collect();
    shards.sort();
    for p in shards {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        v.extend(
            bits(&p)
                .into_iter()
                .map(|(n, d)| (format!("{name}:{n}"), d)),
        );
    }
    v
}

fn assert_same_tensors(a: &Path, b: &Path, what: &str) {
    let (x, y) = (all_bits(a), all_bits(b));
    assert!(
        x.iter().any(|(n, _)| n.contains("bank.x")),
        "{what}: no bank compared"
    );
    assert_eq!(x.len(), y.len(), "{what}: tensor sets differ");
    for ((n, p), (_, q)) in x.iter().zip(&y) {
        assert!(p == q, "{what}: tensor `{n}` differs");
    }
}

fn assert_same_run(a: &Path, b: &Path, what: &str) {
    assert_same_tensors(a, b, what);
    assert_eq!(metrics(a), metrics(b), "{what}: metrics differ");
}

fn check_np_independent(name: &str, extra: &[&str]) {
    let d = scratch(name);
    let one = d.join("np1");
    run_ok(bin().args(args(&one, 6, extra)));
    for np in [2, 4] {
        let dir = d.join(format!("np{np}"));
        run_ok(mpirun(np).args(args(&dir, 6, extra)));
        assert_same_run(&one, &dir, &format!("{name} at np = {np}"));
    }
}

#[test]
fn synthesis_is_bitwise_independent_of_the_process_count() {
    check_np_independent("synthesis", &[]);
}

#[test]
fn persistent_baseline_is_bitwise_independent_of_the_process_count() {
    check_np_independent("persistent", &["train.mode=\"persistent\""]);
}

/// A small SN-GAN (32×32×3, width 8) on random images.
#[test]
fn sngan_synthesis_is_bitwise_independent_of_the_process_count() {
    let d = scratch("sngan");
    let n = 32;
    let data: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|i| (i as f32 * 0.37).sin() * 0.8)
        .collect();
    let path = d.join("images.npy");
    hatebm_rs::data::npy::write_npy_f32(&path, &[n, 3, 32, 32], &data).unwrap();
    let data = format!("data={{kind=\"npy\", path=\"{}\"}}", path.display());
    let extra = [
        "model.energy={kind=\"sngan\", res=32, nch=3, ngf=8}",
        "model.generator={kind=\"sngan\", res=32, nz=16, ngf=8, nch=3, out_factor=2.0}",
        data.as_str(),
        "train.batch_size=8",
        "train.bank_size=32",
        "langevin.steps=2",
        "eval.num_samples=0",
        "output.grid_samples=4",
        "sample.steps=2",
    ];
    let one = d.join("np1");
    run_ok(bin().args(args(&one, 3, &extra)));
    let two = d.join("np2");
    run_ok(mpirun(2).args(args(&two, 3, &extra)));
    assert_same_run(&one, &two, "sngan at np = 2");
}

/// Saved at one process count, resumed at another: equal to the
/// uninterrupted run, bit for bit (both directions).
#[test]
fn resume_across_process_counts_is_exact() {
    let d = scratch("resume");
    let whole = d.join("whole");
    run_ok(bin().args(args(&whole, 6, &[])));
    for (first, second) in [(2, 1), (1, 4)] {
        let dir = d.join(format!("from{first}to{second}"));
        let start = |np: usize| if np == 1 { bin() } else { mpirun(np) };
        run_ok(
            start(first)
                .args(args(&dir, 3, &["train.steps=6"]))
                .args(["--steps", "3"]),
        );
        run_ok(start(second).arg("train").arg("--resume").arg(ck(&dir)));
        let what = format!("saved at np = {first}, resumed at np = {second}");
        assert_same_tensors(&whole, &dir, &what);
        // The interrupted run also logged the iteration it stopped at.
        assert_eq!(metrics(&whole).last(), metrics(&dir).last(), "{what}");
    }
}

/// The opt-in all-reduce adds the ranks' partial sums in MPI's order: equal
/// to the ordered reduction only to rounding. Bound: as in
/// `tests/tests/distributed.rs`, gradient elements differ by a few ulps,
/// which Adam's normalised steps (lr 1e-4 in this preset, 6 steps) turn into
/// weight differences far below one step: < 6e-4 absolute (the sum of the
/// six steps' sizes, the worst case of a flipped sign in every step), and
/// in practice far less.
#[test]
fn all_reduce_mode_agrees_to_rounding() {
    let d = scratch("allreduce");
    let ordered = d.join("ordered");
    run_ok(bin().args(args(&ordered, 6, &[])));
    let fast = d.join("fast");
    run_ok(mpirun(2).args(args(&fast, 6, &["dist.reduce=\"all_reduce\""])));
    let (a, b) = (all_bits(&ordered), all_bits(&fast));
    let mut max = 0.0f32;
    for ((n, p), (_, q)) in a.iter().zip(&b) {
        if n.contains("bank.") {
            continue;
        }
        for (x, y) in p.iter().zip(q) {
            max = max.max((f32::from_bits(*x) - f32::from_bits(*y)).abs());
        }
    }
    assert!(max < 6e-4, "all-reduce weights differ by {max}");
}

#[test]
fn shards_the_process_count_does_not_divide_are_refused() {
    let d = scratch("nodivide");
    let out = mpirun(3).args(args(&d, 2, &[])).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("must divide"), "{err}");
}

fn run_within(cmd: &mut Command, limit: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), t0.elapsed());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} still running after {limit:?}: a rank hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rank 1's copy of the data file is corrupt (each rank runs in its own
/// folder and reads `data.npy` there): both ranks stop before training,
/// every report the same message naming rank 1.
#[test]
fn a_corrupt_data_file_on_one_rank_stops_every_rank() {
    let d = scratch("corrupt");
    let (a, b) = (d.join("a"), d.join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).unwrap();
        let data: Vec<f32> = (0..64 * 64).map(|i| ((i as f32) * 0.1).sin()).collect();
        hatebm_rs::data::npy::write_npy_f32(dir.join("data.npy"), &[64, 64], &data).unwrap();
    }
    let mut bytes = std::fs::read(b.join("data.npy")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(b.join("data.npy"), bytes).unwrap();
    let out_dir = d.join("out");
    let a_args = args(&out_dir, 4, &["data={kind=\"npy\", path=\"data.npy\"}"]);
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "--bind-to", "none"]);
    for dir in [&a, &b] {
        if dir == &b {
            cmd.arg(":");
        }
        cmd.args(["-np", "1", "--wdir"])
            .arg(dir)
            .arg(env!("CARGO_BIN_EXE_hatebm"))
            .args(&a_args);
    }
    let (out, took) = run_within(&mut cmd, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let msgs: Vec<&str> = err.lines().filter(|l| l.contains("error:")).collect();
    // Rank 0 always reports; rank 1 usually does too, unless mpirun, seeing
    // the first process exit non-zero, stops it before it prints.
    assert!(!msgs.is_empty() && msgs.len() <= 2, "{err}");
    for m in &msgs {
        assert!(
            m.contains("rank 1 of 2 failed") && m.contains("data.npy"),
            "{m}"
        );
    }
    assert!(!ck(&out_dir).exists(), "nothing was trained");
    eprintln!("both ranks stopped {took:?} after the start");
}

/// Rank 1 is killed (SIGKILL) mid-run: `mpirun` stops rank 0 too, within a
/// bounded time, and the last complete checkpoint loads.
#[test]
fn a_killed_rank_stops_the_job_and_the_last_checkpoint_loads() {
    let d = scratch("killed");
    let out_dir = d.join("out");
    let a = args(&out_dir, 100_000, &["output.checkpoint_every=20"]);
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "--bind-to", "none", "-np", "1"])
        .arg(env!("CARGO_BIN_EXE_hatebm"))
        .args(&a)
        .args([":", "-np", "1", "timeout", "-s", "KILL", "4"])
        .arg(env!("CARGO_BIN_EXE_hatebm"))
        .args(&a);
    let (out, took) = run_within(&mut cmd, Duration::from_secs(120));
    assert!(!out.status.success());
    assert!(
        took < Duration::from_secs(60),
        "the job took {took:?} to stop"
    );
    let ck = ck(&out_dir);
    assert!(ck.exists(), "a checkpoint was written before the kill");
    let c = hatebm_rs::run::Checkpoint::read(&ck).expect("the last checkpoint loads");
    let it: u64 = c.meta("iteration").unwrap();
    assert!(it > 0 && it.is_multiple_of(20), "iteration {it}");
    // Complete, bank shards included: it resumes (here in one process).
    run_ok(
        bin()
            .arg("train")
            .arg("--resume")
            .arg(&ck)
            .args(["--steps", "1"]),
    );
}
