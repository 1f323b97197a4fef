//! The classifier-feature image metrics and the sample range policy (issue 14):
//! the shipped classifiers reproduce their stated held-out accuracy on the
//! split a run with their preset uses; saved samples lie in the data's range
//! with the clamped fraction reported; and a short MNIST run improves the
//! classifier metrics in the expected direction.

use std::path::{Path, PathBuf};

mod common;

use hatebm_rs::config::Config;
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::metrics::Classifier;
use hatebm_rs::run::{Run, Silent, split_data};
use hatebm_rs::train::SampleOptions;

fn scratch(name: &str) -> PathBuf {
    common::scratch("im", name)
}

/// A quiet preset configuration (no curves either) writing to `dir`.
fn config(preset: &str, dir: &Path, sets: &[(&str, &str)]) -> Config {
    let mut all = sets.to_vec();
    all.push(("output.plot", "false"));
    common::preset_config(preset, dir, &all)
}

/// Each shipped classifier, scored by the library's forward pass on the
/// held-out split of its preset (seed 0), reproduces the accuracy its
/// training script stored. The two forward passes (PyTorch's and ours) differ
/// only in rounding, which can flip an arg-max only for a sample whose top two
/// logits tie to ~1e-6: allowed is one sample of the split.
#[test]
fn classifiers_reproduce_their_stated_accuracy() {
    for (preset, name) in [("digits", "digits_mlp"), ("mnist", "mnist5k_mlp")] {
        let cfg = config(preset, &scratch(name), &[]);
        let (_, held) = split_data(&cfg).unwrap();
        let held = held.unwrap();
        let c = Classifier::builtin(name).unwrap();
        let acc = c
            .accuracy(held.data(), held.labels().unwrap(), held.len())
            .unwrap();
        let one = 1.0 / held.len() as f64;
        assert!(
            (acc - c.stated_accuracy()).abs() <= one + 1e-9,
            "{name}: accuracy {acc} on {} held-out images vs stated {}",
            held.len(),
            c.stated_accuracy()
        );
        assert!(acc > 0.9, "{name}: {acc}");
    }
}

/// `sample.clamp` (the default): samples lie in the data's range [-1, 1],
/// equal the unclamped chains clamped, and the reported fraction is the
/// fraction of unclamped values outside the range.
#[test]
fn saved_samples_lie_in_the_data_range() {
    let dir = scratch("range");
    // A short digits run whose chains leave [-1, 1] (K = 20, T = 0.01).
    let cfg = config("digits", &dir, &[("train.steps", "30")]);
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    run.train(None, &mut Silent).unwrap();
    let opts = SampleOptions {
        n: 200,
        ..run.config.sample.clone()
    };
    assert!(opts.clamp, "clamping is the default");
    let (raw, _) = run
        .sample(&SampleOptions {
            clamp: false,
            ..opts.clone()
        })
        .unwrap();
    assert_eq!(run.last_clamped_fraction(), 0.0);
    let (clamped, _) = run.sample(&opts).unwrap();
    let outside = raw.iter().filter(|v| v.abs() > 1.0).count();
    assert!(
        outside > 0,
        "test design: some raw values must leave [-1, 1]"
    );
    let frac = run.last_clamped_fraction();
    assert!(
        (frac - outside as f64 / raw.len() as f64).abs() < 1e-12,
        "{frac}"
    );
    for (r, c) in raw.iter().zip(&clamped) {
        assert_eq!(*c, r.clamp(-1.0, 1.0));
    }
    let report = run.evaluate().unwrap();
    assert!(report.clamped_fraction > 0.0 && report.clamped_fraction < 1.0);
    // Toy data has no range: nothing is clamped.
    let toy = config("toy2d", &dir.join("toy"), &[("train.steps", "2")]);
    let mut run = Run::new(CpuBackend::new(), toy).unwrap();
    run.train(None, &mut Silent).unwrap();
    let (x, _) = run
        .sample(&SampleOptions {
            n: 50,
            ..run.config.sample.clone()
        })
        .unwrap();
    assert_eq!(run.last_clamped_fraction(), 0.0);
    assert!(x.iter().all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A short conditional Hat EBM run on MNIST-5k (MLP networks on the padded
/// 32×32 images, 1500 updates, seed 0; about a minute) improves the
/// classifier-feature metrics in the expected direction: the
/// classifier-feature FD of the samples falls and their predicted-class
/// histogram widens (its normalised entropy grows). Direction only, at a
/// fixed seed. Measured with these settings: FD 1516 -> 569 (floor 25),
/// entropy 0.638 -> 0.746 (floor 0.989); after 300 updates the FD had fallen
/// (1217) but the histogram had not yet widened (0.562), so 1500 it is.
#[test]
fn short_mnist_run_improves_classifier_metrics() {
    let dir = scratch("mnist");
    let cfg = config(
        "mnist",
        &dir,
        &[
            (
                "model.energy",
                "{ kind = \"mlp\", dims = [1024, 256, 256, 1] }",
            ),
            (
                "model.generator",
                "{ kind = \"mlp\", dims = [32, 256, 256, 1024] }",
            ),
            ("train.steps", "1500"),
            ("train.bank_size", "512"),
            ("langevin.steps", "10"),
            ("langevin.temperature", "0.01"),
            ("langevin.eps_res", "0.02"),
            ("langevin.clip_res", "0.5"),
            ("ebm_optim.lr", "3e-4"),
            ("gen_optim.lr", "1e-3"),
            ("train.data_epsilon", "0.01"),
            ("train.gen_loss_factor", "100.0"),
            ("eval.num_samples", "300"),
        ],
    );
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    let before = run.evaluate().unwrap();
    run.train(None, &mut Silent).unwrap();
    let after = run.evaluate().unwrap();
    let (b, a) = (before.classifier.unwrap(), after.classifier.unwrap());
    let (fd0, fd1) = (b.fd("samples").unwrap(), a.fd("samples").unwrap());
    let (h0, h1) = (
        b.classes.as_ref().unwrap().entropy,
        a.classes.as_ref().unwrap().entropy,
    );
    eprintln!(
        "MNIST 1500 updates: classifier FD {fd0:.2} -> {fd1:.2} (floor {:.2}), class entropy {h0:.3} -> {h1:.3} (floor {:.3})",
        a.fd("training_data").unwrap(),
        a.floor_classes.as_ref().unwrap().entropy
    );
    assert!(fd1 < fd0, "classifier FD did not fall: {fd0} -> {fd1}");
    assert!(h1 > h0, "class histogram did not widen: {h0} -> {h1}");
    assert!(a.heldout_accuracy.unwrap() > 0.9);
    let _ = std::fs::remove_dir_all(&dir);
}
