//! The run lifecycle: exact resume (bit for bit), atomic and validated
//! checkpoints, and the divergence guard on injected NaN.

use std::path::{Path, PathBuf};

use hatebm_rs::config::{Config, ConfigBuilder};
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::run::{Progress, Run, Silent};
use hatebm_rs::weights::TensorFile;
use hatebm_rs::{Backend, Error};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hatebm-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small SN-GAN synthesis config (conv nets, bank, EMA) and an MLP one.
fn config(kind: &str, dir: &Path) -> Config {
    let mut b = ConfigBuilder::new();
    match kind {
        "conv" => {
            b.set("preset", "\"mnist\"").unwrap();
            b.set(
                "model.energy",
                "{ kind = \"sngan\", res = 32, nch = 1, ngf = 8 }",
            )
            .unwrap();
            b.set(
                "model.generator",
                "{ kind = \"sngan\", res = 32, nz = 8, ngf = 8, nch = 1, out_factor = 2.0 }",
            )
            .unwrap();
            b.set("train.batch_size", "4").unwrap();
            b.set("train.bank_size", "16").unwrap();
            b.set("langevin.steps", "3").unwrap();
        }
        _ => {
            b.set("preset", "\"digits\"").unwrap();
            b.set("train.batch_size", "16").unwrap();
            b.set("train.bank_size", "64").unwrap();
            b.set("langevin.steps", "5").unwrap();
        }
    }
    b.set("train.steps", "6").unwrap();
    b.set("ebm_optim.ema_decay", "0.99").unwrap();
    b.set("gen_optim.ema_decay", "0.99").unwrap();
    b.set("output.dir", &format!("\"{}\"", dir.display()))
        .unwrap();
    b.set("output.progress", "\"never\"").unwrap();
    b.set("output.plot", "false").unwrap();
    b.set("eval.num_samples", "0").unwrap();
    b.set("output.grid_samples", "4").unwrap();
    b.build().unwrap()
}

fn tensors(path: &Path) -> Vec<(String, Vec<u32>)> {
    let f = TensorFile::read(path).unwrap();
    f.tensors
        .values()
        .map(|t| match &t.data {
            hatebm_rs::weights::TensorData::F32(d) => {
                (t.name.clone(), d.iter().map(|v| v.to_bits()).collect())
            }
            hatebm_rs::weights::TensorData::I64(_) => (t.name.clone(), Vec::new()),
        })
        .collect()
}

fn exact_resume(kind: &str) {
    let dir = scratch(&format!("resume-{kind}"));
    // Uninterrupted: 6 iterations.
    let cfg = config(kind, &dir.join("a"));
    let mut a = Run::new(CpuBackend::new(), cfg.clone()).unwrap();
    a.train(Some(6), &mut Silent).unwrap();
    a.save_checkpoint(&dir.join("a.safetensors")).unwrap();
    // Interrupted: 3, save, resume in a fresh Run, 3 more.
    let cfg_b = config(kind, &dir.join("b"));
    let mut b = Run::new(CpuBackend::new(), cfg_b).unwrap();
    b.train(Some(3), &mut Silent).unwrap();
    b.save_checkpoint(&dir.join("half.safetensors")).unwrap();
    drop(b);
    let mut c = Run::resume(CpuBackend::new(), &dir.join("half.safetensors"), None).unwrap();
    assert_eq!(c.trainer.iteration(), 3);
    c.train(Some(3), &mut Silent).unwrap();
    c.save_checkpoint(&dir.join("c.safetensors")).unwrap();
    let (ta, tc) = (
        tensors(&dir.join("a.safetensors")),
        tensors(&dir.join("c.safetensors")),
    );
    assert_eq!(ta.len(), tc.len());
    assert!(
        ta.iter().any(|(n, _)| n.starts_with("ebm_ema.")),
        "EMA is saved"
    );
    assert!(ta.iter().any(|(n, _)| n == "bank.z"), "the bank is saved");
    for ((na, da), (nc, dc)) in ta.iter().zip(&tc) {
        assert_eq!(na, nc);
        assert!(da == dc, "{kind}: tensor {na} differs after resume");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_is_exact_mlp() {
    exact_resume("mlp");
}

#[test]
fn resume_is_exact_conv() {
    exact_resume("conv");
}

#[test]
fn corrupt_and_foreign_checkpoints_are_rejected() {
    let dir = scratch("corrupt");
    let cfg = config("mlp", &dir);
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    run.train(Some(1), &mut Silent).unwrap();
    let good = dir.join("good.safetensors");
    run.save_checkpoint(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    // Truncated at several points.
    for cut in [0usize, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.join(format!("cut{cut}.safetensors"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = Run::resume(CpuBackend::new(), &p, None).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "cut {cut}: {e}");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    }
    // A plain weights file is not a checkpoint.
    let w = dir.join("weights.safetensors");
    hatebm_rs::weights::save_params(
        run.trainer.energy().params(),
        &CpuBackend::new(),
        &w,
        &Default::default(),
    )
    .unwrap();
    let e = Run::resume(CpuBackend::new(), &w, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a libhatebm checkpoint"), "{e}");
    // A checkpoint with a tensor removed names the tensor.
    let f = TensorFile::read(&good).unwrap();
    let mut kept: Vec<_> = f
        .with_prefix("")
        .into_iter()
        .filter(|(n, _, _)| n != "ebm_adam_v.fc1.bias")
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let p = dir.join("missing.safetensors");
    hatebm_rs::weights::write(&p, &kept, &f.metadata).unwrap();
    let e = Run::resume(CpuBackend::new(), &p, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ebm_adam_v.fc1.bias"), "{e}");
    // Missing file.
    assert!(matches!(
        Run::resume(CpuBackend::new(), &dir.join("nope"), None).unwrap_err(),
        Error::Io { .. }
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sets one EBM weight to NaN (as a numerical blow-up would), through a
/// restored state (`Trainer::restore` checks layouts, not values: finiteness
/// is the guard's and the checkpoints' check).
fn poison<B: hatebm_rs::nets::BuildNets>(run: &mut Run<B>) {
    let be = run.trainer.be().clone();
    let mut s = run.trainer.state();
    let p = s.energy.get_mut(0);
    let mut host = be.to_host(&p.value).unwrap();
    host[0] = f32::NAN;
    p.value = be.from_host(&host, &p.spec.shape).unwrap();
    run.trainer.restore(s).unwrap();
}

#[test]
fn divergence_stops_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("guard-stop");
    let cfg = config("mlp", &dir);
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    run.train(Some(2), &mut Silent).unwrap();
    let ck = dir.join("checkpoint.safetensors");
    run.save_checkpoint(&ck).unwrap();
    let before = std::fs::read(&ck).unwrap();
    poison(&mut run);
    let e = run.train(Some(2), &mut Silent).unwrap_err();
    assert!(matches!(e, Error::Diverged(_)), "{e}");
    // The third iteration failed; the good state is the one after the second.
    assert!(e.to_string().contains("iteration 3: "), "{e}");
    assert!(e.to_string().contains("(after iteration 2)"), "{e}");
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        before,
        "the last good checkpoint is untouched"
    );
    // The saved state resumes and trains.
    let mut again = Run::resume(CpuBackend::new(), &ck, None).unwrap();
    again.train(Some(1), &mut Silent).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rollback_policy_restores_reseeds_and_lowers_the_learning_rate() {
    let dir = scratch("guard-rollback");
    let mut cfg = config("mlp", &dir);
    cfg.guard.policy = hatebm_rs::config::GuardPolicy::Rollback;
    cfg.guard.snapshot_every = 1;
    cfg.guard.lr_factor = 0.5;
    cfg.guard.max_rollbacks = 2;
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    run.train(Some(2), &mut Silent).unwrap();
    // Take a snapshot at iteration 2 with good weights, then poison.
    run.step().unwrap();
    poison(&mut run);
    let seed_before = run.trainer.seed();
    run.step().unwrap();
    assert_eq!(run.rollbacks(), 1);
    assert_eq!(run.trainer.ebm_optimiser().lr_scale(), 0.5);
    assert_ne!(run.trainer.seed(), seed_before, "chains reseeded");
    assert!(
        run.trainer.energy().params().iter().all(|p| run
            .trainer
            .be()
            .to_host(&p.value)
            .unwrap()
            .iter()
            .all(|v| v.is_finite())),
        "weights restored"
    );
    // Training continues normally after the rollback.
    let s = run.step().unwrap();
    assert!(s.loss_ebm.is_finite());
    // Repeated divergence exhausts the rollbacks.
    for _ in 0..2 {
        poison(&mut run);
        let _ = run.step();
    }
    poison(&mut run);
    let e = run.step().unwrap_err();
    assert!(e.to_string().contains("rollbacks already used"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn energy_difference_bound_is_a_divergence() {
    let dir = scratch("guard-bound");
    let mut cfg = config("mlp", &dir);
    cfg.guard.max_energy_diff = Some(1e-30);
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    let e = run.step().unwrap_err();
    assert!(e.to_string().contains("guard.max_energy_diff"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancellation_leaves_a_resumable_run() {
    let dir = scratch("cancel");
    let cfg = config("mlp", &dir);
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    let mut calls = 0;
    let e = run
        .train(None, &mut |p: &Progress<'_>| {
            calls += 1;
            p.iteration < 2
        })
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled));
    assert_eq!(run.trainer.iteration(), 2);
    assert_eq!(calls, 2);
    run.save_checkpoint(&dir.join("c.safetensors")).unwrap();
    let r = Run::resume(CpuBackend::new(), &dir.join("c.safetensors"), None).unwrap();
    assert_eq!(r.trainer.iteration(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Same seed and config on the CPU backend: bit-identical checkpoints for any
/// number of threads (conv nets with a bank, EMA and a generator).
#[test]
fn runs_are_identical_across_thread_counts() {
    let dir = scratch("threads");
    let mut files = Vec::new();
    for threads in [1usize, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let path = dir.join(format!("t{threads}.safetensors"));
        let cfg = config("conv", &dir.join(format!("out{threads}")));
        pool.install(|| {
            let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
            run.train(Some(3), &mut Silent).unwrap();
            run.save_checkpoint(&path).unwrap();
        });
        files.push(tensors(&path));
    }
    assert_eq!(files[0].len(), files[1].len());
    for ((na, da), (nb, db)) in files[0].iter().zip(&files[1]) {
        assert_eq!(na, nb);
        assert!(da == db, "tensor {na} depends on the thread count");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
