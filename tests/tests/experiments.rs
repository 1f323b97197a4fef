//! Small, fast versions of the experiments of `docs/experiments.md`
//! (`scripts/experiments.sh`): fixed seeds, a few seconds each. Where the small
//! version shows an effect reliably the test asserts its *direction* (with a
//! margin measured over several seeds, noted at each assertion); otherwise it
//! only checks that the run trains and writes its outputs.
//!
//! * Appendix F: fitting the generator to this iteration's samples (`current`)
//!   instead of the bank's historical ones, or cooperative learning, degrades it
//!   badly.
//! * Appendix H and refinement: without the residual, `U(z) = H(G(z))`, the
//!   energy difference between data and samples keeps growing; with it
//!   (`refine`) it stays small, and the refined samples beat the generator's.
//! * Retrofit: autoencoder pretraining through the Rust API, then the joint Hat
//!   EBM on its decoder — runs and writes outputs only (the full experiment did
//!   not show a reliable improvement either, see `docs/experiments.md`).

use std::path::{Path, PathBuf};

mod common;

use hatebm_rs::config::Config;
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::run::{EvalReport, Run, Silent};

fn scratch(name: &str) -> PathBuf {
    common::scratch("exp", name)
}

/// A configuration from a preset plus `key = value` overrides, writing to `dir`.
fn config(preset: &str, dir: &Path, sets: &[(&str, &str)]) -> Config {
    common::preset_config(preset, dir, sets)
}

/// The digits setting of these tests: the `digits` preset (batch 64, K = 20,
/// bank 2048) with the EBM learning rate the effects were calibrated at (1e-4;
/// pinned so later preset tuning does not move them), evaluated with 200 samples.
const DIGITS: &[(&str, &str)] = &[
    ("eval.num_samples", "200"),
    ("output.log_every", "5"),
    ("ebm_optim.lr", "1e-4"),
];

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

/// Trains to `train.steps` (writing the run's outputs) and returns the run with
/// its final evaluation (also in `eval.json`).
fn train(cfg: Config) -> (Run<CpuBackend>, EvalReport) {
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    run.train(None, &mut Silent).unwrap();
    let report = run.evaluate().unwrap();
    (run, report)
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Mean |loss_ebm| over the metrics lines with `step > from`.
fn mean_abs_loss_after(dir: &Path, from: u64) -> f64 {
    let v: Vec<f64> = metrics(dir)
        .iter()
        .filter(|r| r["step"].as_u64().unwrap() > from)
        .map(|r| r["loss_ebm"].as_f64().unwrap().abs())
        .collect();
    assert!(!v.is_empty());
    v.iter().sum::<f64>() / v.len() as f64
}

fn assert_outputs(dir: &Path, files: &[&str]) {
    for f in files {
        let p = dir.join(f);
        assert!(
            p.metadata().is_ok_and(|m| m.len() > 0),
            "{} is missing or empty",
            p.display()
        );
    }
}

fn fd(r: &EvalReport, source: &str) -> f64 {
    let v = r.fd(source).unwrap_or_else(|| panic!("no FD for {source}"));
    assert!(v.is_finite() && v >= 0.0, "FD[{source}] = {v}");
    v
}

#[test]
fn appendix_f_current_generator_updates_degrade() {
    let dir = scratch("appf");
    let steps = [("train.steps", "200")];
    let (_, hist) = train(config(
        "digits",
        &dir.join("historical"),
        &with(DIGITS, &steps),
    ));
    let (_, cur) = train(config(
        "digits",
        &dir.join("current"),
        &with(DIGITS, &[steps[0], ("train.gen_update", "\"current\"")]),
    ));
    let (_, coop) = train(config(
        "digits",
        &dir.join("cooperative"),
        &with(DIGITS, &[steps[0], ("train.mode", "\"cooperative\"")]),
    ));
    let (h, c, k) = (
        fd(&hist, "samples"),
        fd(&cur, "samples"),
        fd(&coop, "samples"),
    );
    eprintln!(
        "appendix F (digits, 200 updates): FD historical {h:.2}, current {c:.2}, cooperative {k:.2}"
    );
    // Measured at these settings over seeds 0-4: historical 12.2-12.7, current
    // 1066-18517 (its generator blows up first, then collapses; at 2000 updates
    // it is still at FD ~20 vs ~3, docs/experiments.md). The margins asked for
    // are far inside the gaps.
    assert!(
        c > 5.0 * h,
        "current updates should be clearly worse: FD {c} vs historical {h}"
    );
    // Cooperative learning at the same Langevin settings (full experiment, seeds
    // 0-2: FD 246-416 after 200 updates vs 12.3-12.6).
    assert!(
        k > 2.0 * h,
        "cooperative learning should be worse here: FD {k} vs historical {h}"
    );
    for run in ["historical", "current", "cooperative"] {
        assert_outputs(
            &dir.join(run),
            &[
                "metrics.jsonl",
                "data.png",
                "generator_init.png",
                "samples_final.png",
                "curves.svg",
                "checkpoint.safetensors",
                "eval.json",
            ],
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn appendix_h_no_residual_energy_difference_grows_and_refine_runs() {
    let dir = scratch("apph");
    // A pretrained generator: a short digits synthesis run.
    let _ = train(config(
        "digits",
        &dir.join("generator"),
        &with(DIGITS, &[("train.steps", "200")]),
    ));
    let ckpt = dir.join("generator").join("checkpoint.safetensors");
    let pretrained = format!("\"{}\"", ckpt.display());
    let joint = |mode: &'static str| -> Config {
        let sets = with(
            DIGITS,
            &[
                ("train.steps", "300"),
                ("langevin.steps", "10"),
                ("langevin.eps_latent", "0.05"),
                ("eval.every", "150"),
                ("model.pretrained_generator", pretrained.as_str()),
                ("train.mode", mode),
            ],
        );
        config("digits", &dir.join(mode.trim_matches('"')), &sets)
    };
    let (_, res) = train(joint("\"refine\""));
    let (_, nores) = train(joint("\"no_residual\""));
    let (a, b) = (
        mean_abs_loss_after(&dir.join("refine"), 200),
        mean_abs_loss_after(&dir.join("no_residual"), 200),
    );
    eprintln!(
        "appendix H (digits, 300 updates): mean |loss_ebm| over the last 100: residual {a:.1}, \
         no residual {b:.1}; FD of G(z) alone {:.2}, refined {:.2}, no-residual {:.2}",
        fd(&res, "generator_no_mcmc"),
        fd(&res, "samples"),
        fd(&nores, "samples")
    );
    // Measured at these settings over seeds 0-4: the no-residual mean |loss_ebm|
    // over updates 201-300 is 2.1-3.0x the residual one (and still growing);
    // 1.5x is the margin asked for.
    assert!(
        b > 1.5 * a,
        "no-residual energy differences should be larger: {b} vs {a}"
    );
    // The frozen generator is the same in both: identical no-MCMC FD.
    let g = fd(&res, "generator_no_mcmc");
    assert_eq!(g, fd(&nores, "generator_no_mcmc"));
    // Refinement with the residual improves on the generator's own samples
    // (seeds 0-4: FD 12.3-12.7 vs 12.9-13.4, i.e. 4-5 % lower after only 300
    // updates; the full experiment reaches 1.6 vs 3.1).
    let r = fd(&res, "samples");
    assert!(
        r < g,
        "refined samples should beat the generator: FD {r} vs {g}"
    );
    for run in ["refine", "no_residual"] {
        assert_outputs(
            &dir.join(run),
            &[
                "metrics.jsonl",
                "samples_final.png",
                "eval.json",
                "eval.jsonl",
                "checkpoint.safetensors",
            ],
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retrofit_on_a_pretrained_decoder_runs() {
    let dir = scratch("retrofit");
    // Autoencoder pretraining (the library function behind `hatebm pretrain-ae`), tiny widths.
    let dec = "{ kind = \"decoder32\", ngf = 8, nch = 1, out_factor = 2.0 }";
    let ae_cfg = config(
        "mnist",
        &dir.join("ae"),
        &[
            ("model.generator", dec),
            ("eval.num_samples", "0"),
            ("eval.holdout_fraction", "0.1"),
            ("autoencoder.steps", "60"),
            ("autoencoder.batch_size", "16"),
            ("autoencoder.lr", "1e-3"),
        ],
    );
    let done = hatebm_rs::runtime::pretrain_autoencoder(&ae_cfg, &mut |_, _, _| {}).unwrap();
    let losses = &done.losses;
    assert_eq!(losses.len(), 60);
    assert!(
        losses[losses.len() - 5..].iter().sum::<f64>() < losses[..5].iter().sum::<f64>(),
        "the autoencoder learns: {losses:?}"
    );
    let decoder = done.decoder;
    assert!(done.encoder.exists() && dir.join("ae/ae_reconstructions.png").exists());
    // The joint Hat EBM on the frozen decoder.
    let pretrained = format!("\"{}\"", decoder.display());
    let cfg = config(
        "mnist",
        &dir.join("hat_ebm"),
        &[
            ("model.generator", dec),
            ("model.pretrained_generator", pretrained.as_str()),
            (
                "model.energy",
                "{ kind = \"sngan\", res = 32, nch = 1, ngf = 8 }",
            ),
            ("train.mode", "\"retrofit\""),
            ("train.steps", "12"),
            ("train.batch_size", "8"),
            ("langevin.steps", "5"),
            ("langevin.eps_res", "0.02"),
            ("langevin.eps_latent", "0.05"),
            ("langevin.prior_sigma_res", "0.1"),
            ("eval.num_samples", "40"),
            ("output.log_every", "2"),
        ],
    );
    let (_, report) = train(cfg);
    fd(&report, "samples");
    fd(&report, "generator_no_mcmc");
    fd(&report, "training_data");
    assert_outputs(
        &dir.join("hat_ebm"),
        &[
            "metrics.jsonl",
            "generator_init.png",
            "samples_final.png",
            "eval.json",
            "checkpoint.safetensors",
        ],
    );
    let m = metrics(&dir.join("hat_ebm"));
    assert!(
        m.iter()
            .all(|r| r["drift_norm_latent"].as_f64().unwrap() > 0.0),
        "latents move in retrofit mode"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
