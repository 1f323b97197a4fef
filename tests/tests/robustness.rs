//! Issue 16: nothing a user loads or runs can poison a checkpoint. Every
//! tensor and metadata value of a checkpoint is checked on load, every update
//! is checked before it is kept, a checkpoint reported as saved loads again,
//! and the guard names the file that really holds the last good state.

use std::path::{Path, PathBuf};

use hatebm_rs::config::{Config, ConfigBuilder, GuardPolicy};
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::data::Dataset;
use hatebm_rs::run::{Run, Silent};
use hatebm_rs::weights::{TensorData, TensorFile};
use hatebm_rs::{Backend, Error};
use proptest::prelude::*;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hatebm-robust-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The digits MLP run, small: batch 8, bank 32, K = 3, EMA on both networks.
fn builder(dir: &Path) -> ConfigBuilder {
    let mut b = ConfigBuilder::new();
    for (k, v) in [
        ("preset", "\"digits\"".to_string()),
        ("train.batch_size", "8".into()),
        ("train.bank_size", "32".into()),
        ("langevin.steps", "3".into()),
        ("train.steps", "1000".into()),
        ("ebm_optim.ema_decay", "0.99".into()),
        ("gen_optim.ema_decay", "0.99".into()),
        ("output.dir", format!("\"{}\"", dir.display())),
        ("output.plot", "false".into()),
        ("output.grid_samples", "4".into()),
        ("eval.num_samples", "0".into()),
    ] {
        b.set(k, &v).unwrap();
    }
    b
}

fn config(dir: &Path) -> Config {
    builder(dir).build().unwrap()
}

/// Rewrites a checkpoint with one metadata value replaced.
fn with_meta(src: &Path, dst: &Path, key: &str, value: &str) {
    let f = TensorFile::read(src).unwrap();
    let mut meta = f.metadata.clone();
    meta.insert(key.into(), value.into());
    let mut t = f.with_prefix("");
    t.sort_by(|a, b| a.0.cmp(&b.0));
    hatebm_rs::weights::write(dst, &t, &meta).unwrap();
}

/// Rewrites a checkpoint with element `at` (mod its length) of tensor `name` set to `value`.
fn with_tensor_value(src: &Path, dst: &Path, name: &str, at: usize, value: f32) {
    let f = TensorFile::read(src).unwrap();
    let mut t = f.with_prefix("");
    for (n, _, d) in &mut t {
        if n == name {
            let i = at % d.len();
            d[i] = value;
        }
    }
    t.sort_by(|a, b| a.0.cmp(&b.0));
    hatebm_rs::weights::write(dst, &t, &f.metadata).unwrap();
}

fn good_checkpoint(dir: &Path) -> PathBuf {
    let mut run = Run::new(CpuBackend::new(), config(dir)).unwrap();
    run.train(Some(2), &mut Silent).unwrap();
    dir.join("checkpoint.safetensors")
}

fn format_error_naming(e: &Error, what: &str) -> bool {
    matches!(e, Error::Format { .. }) && e.to_string().contains(what)
}

#[test]
fn metadata_out_of_range_is_refused_on_load() {
    let dir = scratch("meta");
    let ck = good_checkpoint(&dir);
    let bad = dir.join("bad.safetensors");
    for key in ["ebm_lr_scale", "gen_lr_scale"] {
        for v in ["NaN", "inf", "-inf", "-1", "0", "1e40", "1.5"] {
            with_meta(&ck, &bad, key, v);
            let e = Run::resume(CpuBackend::new(), &bad, None).unwrap_err();
            assert!(format_error_naming(&e, key), "{key} = {v}: {e}");
        }
    }
    for key in ["ebm_adam_step", "gen_adam_step"] {
        for v in ["18446744073709551615", "9007199254740993", "-1", "1e3"] {
            with_meta(&ck, &bad, key, v);
            let e = Run::resume(CpuBackend::new(), &bad, None).unwrap_err();
            assert!(format_error_naming(&e, key), "{key} = {v}: {e}");
        }
    }
    with_meta(&ck, &bad, "iteration", "18446744073709551615");
    let e = Run::resume(CpuBackend::new(), &bad, None).unwrap_err();
    assert!(format_error_naming(&e, "iteration"), "{e}");
    // The largest counter loads, but the step past it is refused and never
    // saved (found by the property test below: it saved i64::MAX + 1, which the
    // loader refuses).
    with_meta(&ck, &bad, "iteration", "9223372036854775807");
    let mut run = Run::resume(CpuBackend::new(), &bad, None).unwrap();
    let e = run.step().unwrap_err();
    assert!(e.to_string().contains("iteration counter"), "{e}");
    let before = std::fs::read(&bad).unwrap();
    assert!(run.save_checkpoint(&bad).is_err());
    assert_eq!(std::fs::read(&bad).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn non_finite_tensors_are_refused_on_load() {
    let dir = scratch("tensors");
    let ck = good_checkpoint(&dir);
    let bad = dir.join("bad.safetensors");
    let names: Vec<String> = TensorFile::read(&ck)
        .unwrap()
        .tensors
        .keys()
        .cloned()
        .collect();
    // Every kind of state: weights, both moments, EMA, the bank.
    for prefix in [
        "ebm.",
        "ebm_adam_m.",
        "ebm_adam_v.",
        "ebm_ema.",
        "gen.",
        "gen_adam_m.",
        "gen_adam_v.",
        "gen_ema.",
        "bank.x",
        "bank.z",
    ] {
        let name = names
            .iter()
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no tensor {prefix}* in {names:?}"));
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            with_tensor_value(&ck, &bad, name, 3, v);
            let e = Run::resume(CpuBackend::new(), &bad, None).unwrap_err();
            assert!(
                e.to_string().contains(name.as_str()),
                "{name} = {v}: accepted or unnamed: {e}"
            );
        }
    }
    // A second moment is an average of squares: negative only in a corrupt file.
    let v = names.iter().find(|n| n.starts_with("ebm_adam_v.")).unwrap();
    with_tensor_value(&ck, &bad, v, 0, -1.0);
    let e = Run::resume(CpuBackend::new(), &bad, None).unwrap_err();
    assert!(format_error_naming(&e, v), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Puts a NaN into the energy optimiser's first moment, so that the next
/// update writes NaN weights (as a numerical blow-up inside Adam would).
/// Through a restored state: `Trainer::restore` checks layouts, not values.
fn poison_adam<B: hatebm_rs::nets::BuildNets>(run: &mut Run<B>) {
    let be = run.trainer.be().clone();
    let mut s = run.trainer.state();
    let m = s.ebm_opt.m.iter_mut().flatten().next().unwrap();
    let mut h = be.to_host(m).unwrap();
    h[0] = f32::NAN;
    *m = be.from_host(&h, &be.shape(m)).unwrap();
    run.trainer.restore(s).unwrap();
}

/// The state an update leaves is checked: a NaN learning-rate scale (as a
/// corrupt file or a caller could set) makes NaN weights with finite
/// statistics; that is a divergence, never saved, and the message names the
/// file that holds the last good state.
#[test]
fn a_poisoning_update_stops_names_the_good_file_and_is_never_saved() {
    let dir = scratch("stop");
    let mut run = Run::new(CpuBackend::new(), config(&dir)).unwrap();
    run.train(Some(2), &mut Silent).unwrap();
    let ck = dir.join("checkpoint.safetensors");
    let before = std::fs::read(&ck).unwrap();
    poison_adam(&mut run);
    let e = run.train(Some(3), &mut Silent).unwrap_err();
    assert!(matches!(e, Error::Diverged(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("after the update"), "{msg}");
    assert!(
        msg.contains(&ck.display().to_string()) && msg.contains("iteration 2"),
        "the message names the good file and its iteration: {msg}"
    );
    // Saving the poisoned state is refused and leaves the file as it was.
    let e = run.save_checkpoint(&ck).unwrap_err();
    assert!(
        e.to_string().contains("refusing to write checkpoint"),
        "{e}"
    );
    assert_eq!(std::fs::read(&ck).unwrap(), before);
    Run::resume(CpuBackend::new(), &ck, None).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_poisoning_update_rolls_back_to_a_checked_state() {
    let dir = scratch("rollback");
    let mut cfg = config(&dir);
    cfg.guard.policy = GuardPolicy::Rollback;
    cfg.guard.snapshot_every = 1;
    let mut run = Run::new(CpuBackend::new(), cfg).unwrap();
    run.train(Some(2), &mut Silent).unwrap();
    poison_adam(&mut run);
    run.step().unwrap();
    assert_eq!(run.rollbacks(), 1, "the poisoned update was rolled back");
    assert_eq!(run.trainer.check_state().unwrap(), None);
    assert_eq!(run.trainer.ebm_optimiser().lr_scale(), 0.5);
    // Training goes on from the restored state, and what it saves loads.
    run.train(Some(2), &mut Silent).unwrap();
    Run::resume(CpuBackend::new(), &dir.join("checkpoint.safetensors"), None).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A digits copy as a float npy file, with `value` at flat index `at`.
fn write_data(path: &Path, at: usize, value: f32) {
    let d = Dataset::digits().unwrap();
    let mut x = d.data().to_vec();
    let i = at % x.len();
    x[i] = value;
    let mut shape = vec![d.len()];
    shape.extend_from_slice(d.sample_shape());
    hatebm_rs::data::npy::write_npy_f32(path, &shape, &x).unwrap();
}

fn npy_config(dir: &Path, data: &Path) -> Config {
    let mut b = builder(dir);
    b.set(
        "data",
        &format!("{{ kind = \"npy\", path = \"{}\" }}", data.display()),
    )
    .unwrap();
    b.build().unwrap()
}

/// One huge data value: whatever the run does, every checkpoint it reports
/// as saved loads again.
#[test]
fn huge_data_values_never_produce_an_unloadable_checkpoint() {
    let dir = scratch("huge-data");
    let data = dir.join("x.npy");
    for v in [1e25f32, -1e30, 3e38] {
        // One value per sample, so that every batch holds it.
        let d = Dataset::digits().unwrap();
        let mut x = d.data().to_vec();
        for s in x.chunks_mut(d.sample_len()) {
            s[5] = v;
        }
        let mut shape = vec![d.len()];
        shape.extend_from_slice(d.sample_shape());
        hatebm_rs::data::npy::write_npy_f32(&data, &shape, &x).unwrap();
        let _ = std::fs::remove_file(dir.join("checkpoint.safetensors"));
        let mut run = Run::new(CpuBackend::new(), npy_config(&dir, &data)).unwrap();
        let r = run.train(Some(20), &mut Silent);
        let ck = dir.join("checkpoint.safetensors");
        match r {
            Ok(()) => {
                Run::resume(CpuBackend::new(), &ck, None)
                    .unwrap_or_else(|e| panic!("{v}: saved but does not load: {e}"));
            }
            Err(e) => {
                assert!(matches!(e, Error::Diverged(_)), "{v}: {e}");
                if ck.exists() {
                    Run::resume(CpuBackend::new(), &ck, None).unwrap();
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const META_KEYS: &[&str] = &[
    "ebm_lr_scale",
    "gen_lr_scale",
    "ebm_adam_step",
    "gen_adam_step",
    "iteration",
    "chain_seed",
    "guard_rollbacks",
    "data_order",
    "eval_fd_generator_at_start",
    "format_version",
    "config",
];

const META_VALUES: &[&str] = &[
    "NaN",
    "inf",
    "-inf",
    "-1",
    "0",
    "1",
    "0.5",
    "1e-40",
    "1e40",
    "18446744073709551615",
    "9223372036854775807",
    "9007199254740992",
    "",
    "garbage",
    "{}",
    "{\"epoch\": 1e300}",
];

const TENSOR_VALUES: &[f32] = &[f32::NAN, f32::INFINITY, -1.0, 1e30, -3e38, 0.0];

#[derive(Clone, Debug)]
enum Mutation {
    Meta(usize, usize),
    Tensor(usize, usize, usize),
    Data(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..META_KEYS.len(), 0..META_VALUES.len()).prop_map(|(k, v)| Mutation::Meta(k, v)),
        (0..64usize, 0..10_000usize, 0..TENSOR_VALUES.len())
            .prop_map(|(t, i, v)| Mutation::Tensor(t, i, v)),
        (0..100_000usize, 0..TENSOR_VALUES.len()).prop_map(|(i, v)| Mutation::Data(i, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/robustness.txt"),
        ))),
        ..ProptestConfig::default()
    })]

    /// Resume → step → save with a mutated checkpoint or data file: every
    /// checkpoint a call reports as saved loads again, and a failed save
    /// leaves the previous file untouched.
    #[test]
    fn every_saved_checkpoint_loads_again(muts in proptest::collection::vec(mutation(), 1..3)) {
        let dir = scratch("prop");
        let data = dir.join("x.npy");
        write_data(&data, 0, -1.0);
        let mut run = Run::new(CpuBackend::new(), npy_config(&dir, &data)).unwrap();
        run.train(Some(2), &mut Silent).unwrap();
        let ck = dir.join("checkpoint.safetensors");
        let names: Vec<String> = TensorFile::read(&ck).unwrap().tensors.keys().cloned().collect();
        for m in &muts {
            match *m {
                Mutation::Meta(k, v) => with_meta(&ck, &ck, META_KEYS[k], META_VALUES[v]),
                Mutation::Tensor(t, i, v) => {
                    with_tensor_value(&ck, &ck, &names[t % names.len()], i, TENSOR_VALUES[v]);
                }
                Mutation::Data(i, v) => write_data(&data, i, TENSOR_VALUES[v]),
            }
        }
        if let Ok(mut run) = Run::resume(CpuBackend::new(), &ck, None) {
            let _ = run.step();
            let before = std::fs::read(&ck).unwrap();
            match run.save_checkpoint(&ck) {
                Ok(()) => {
                    let again = Run::resume(CpuBackend::new(), &ck, None);
                    prop_assert!(again.is_ok(), "{muts:?}: saved but not loadable: {:?}", again.err());
                }
                Err(_) => prop_assert_eq!(std::fs::read(&ck).unwrap(), before),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn tensor_files_hold_only_what_the_loader_accepts() {
    // The mutation helpers above really change the file (so the tests that
    // use them test something).
    let dir = scratch("helpers");
    let ck = good_checkpoint(&dir);
    let bad = dir.join("bad.safetensors");
    with_tensor_value(&ck, &bad, "bank.x", 1, 7.0);
    let f = TensorFile::read(&bad).unwrap();
    match &f.tensors["bank.x"].data {
        TensorData::F32(d) => assert_eq!(d[1], 7.0),
        TensorData::I64(_) => panic!("bank.x is f32"),
    }
    with_meta(&ck, &bad, "ebm_lr_scale", "0.25");
    let r = Run::resume(CpuBackend::new(), &bad, None).unwrap();
    assert_eq!(r.trainer.ebm_optimiser().lr_scale(), 0.25);
    let be = CpuBackend::new();
    assert!(be.name().starts_with("cpu"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Long chains record their diagnostics a block of
/// [`hatebm_rs::sampler::HISTORY_ROWS`] steps at a time (memory O(256·B), not
/// O(K·B)); the statistics are the same sums in the same order as before: the
/// first 256 per-step energies of a 600-step chain equal those of a 256-step
/// chain bit for bit, and the drift statistics equal a recomputation from the
/// recorder's clipped gradients.
#[test]
fn long_chain_diagnostics_are_blockwise_and_exact() {
    use hatebm_rs::nets::{BuildNets, EnergyArch};
    use hatebm_rs::noise::SeededNoise;
    use hatebm_rs::sampler::{ChainKey, Chains, HISTORY_ROWS, LangevinConfig, LangevinSampler};
    let be = CpuBackend::new();
    let energy = be
        .build_energy(
            &EnergyArch::Mlp {
                dims: vec![4, 16, 1],
            },
            3,
        )
        .unwrap();
    let run = |k: usize| {
        let cfg = LangevinConfig {
            steps: k,
            temperature: 1.0,
            eps_res: 0.1,
            clip_res: Some(1e-4),
            ..LangevinConfig::default()
        };
        let mut chains = Chains {
            z: None,
            y: be.from_host(&[0.1; 5 * 4], &[5, 4]).unwrap(),
        };
        let mut drift = Vec::new();
        let mut record =
            |_k: usize, g: Option<&hatebm_rs::cpu::CpuTensor>, _c: &Chains<CpuBackend>| {
                let g = be.to_host(g.unwrap()).unwrap();
                drift.extend(
                    g.chunks(4)
                        .map(|r| r.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt()),
                );
            };
        let stats = LangevinSampler::new(cfg)
            .unwrap()
            .run(
                &be,
                energy.as_ref(),
                None,
                &mut chains,
                &mut SeededNoise,
                ChainKey {
                    seed: 5,
                    iteration: 0,
                    row_offset: 0,
                },
                Some(&mut record),
            )
            .unwrap();
        (stats, drift)
    };
    assert_eq!(HISTORY_ROWS, 256);
    let (short, _) = run(256);
    let (long, clipped_norms) = run(600);
    assert_eq!(long.energy_per_step.len(), 600);
    assert_eq!(
        long.energy_per_step[..256]
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        short
            .energy_per_step
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    );
    // The recorder sees the clipped gradient (norm ≤ clip / s); the drift
    // statistic is s · mean(min(‖g‖, c/s)) over all 600·5 (step, chain) pairs.
    let s = 0.1f64 * 0.1 / 2.0;
    let mean_clipped = clipped_norms.iter().sum::<f64>() / clipped_norms.len() as f64;
    assert_eq!(clipped_norms.len(), 600 * 5);
    let rel = (long.drift_norm_res - s * mean_clipped).abs() / (s * mean_clipped);
    // f32 gradients and norms: agreement to f32 rounding (~1e-6 relative).
    assert!(
        rel < 1e-5,
        "drift {} vs {} (rel {rel:e})",
        long.drift_norm_res,
        s * mean_clipped
    );
    assert!(long.clip_frac_res > 0.0 && long.clip_frac_res <= 1.0);
}

/// Issue 16, items 2 and 4: every size a user controls is bounded, and a run
/// that does not fit the memory budget is refused before anything is
/// allocated, naming the key.
#[test]
fn huge_sizes_are_typed_errors_naming_the_key() {
    let dir = scratch("sizes");
    for (key, value, named) in [
        ("model.energy.dims", "[64, 10000000000, 1]", "largest width"),
        ("train.bank_size", "100000000000", "train.bank_size"),
        ("train.batch_size", "100000000000", "train.batch_size"),
        ("langevin.steps", "1000000000", "langevin.steps"),
        ("threads", "1000000", "threads"),
        ("output.grid_samples", "1000000000", "output.grid_samples"),
        ("eval.num_samples", "1000000000", "eval.num_samples"),
        ("sample.steps", "1000000000000", "sample.steps"),
        (
            "data",
            "{ kind = \"toy\", name = \"ring8\", n = 1000000000000 }",
            "data.n",
        ),
        ("memory_limit_gib", "-1", "memory_limit_gib"),
    ] {
        let mut b = builder(&dir);
        let e = b.set(key, value).unwrap_err();
        assert!(
            matches!(e.root(), Error::Config(_)) && e.to_string().contains(named),
            "{key} = {value}: {e}"
        );
    }
    // Within the absolute bounds but beyond the budget: refused by the run.
    let mut b = builder(&dir);
    b.set("memory_limit_gib", "0.01").unwrap();
    b.set("model.energy.dims", "[64, 200000, 1]").unwrap();
    let e = Run::new(CpuBackend::new(), b.build().unwrap()).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("model.energy") && m.contains("memory budget"),
        "{m}"
    );
    let mut b = builder(&dir);
    b.set("memory_limit_gib", "0.01").unwrap();
    b.set("train.bank_size", "10000000").unwrap();
    let e = Run::new(CpuBackend::new(), b.build().unwrap()).unwrap_err();
    assert!(e.to_string().contains("train.bank_size"), "{e}");
    // Sampling: a huge n or step count is refused before any work.
    let mut run = Run::new(CpuBackend::new(), config(&dir)).unwrap();
    let opts = hatebm_rs::train::SampleOptions {
        n: 1_000_000_000_000,
        ..Default::default()
    };
    let e = run.sample(&opts).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("n = 1000000000000"),
        "{e}"
    );
    let opts = hatebm_rs::train::SampleOptions {
        n: 1,
        steps: Some(100_000_000_000),
        ..Default::default()
    };
    let e = run.sample(&opts).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    // The default budget is this machine's memory, and the default runs fit it.
    let cfg = config(&dir);
    let est = cfg.memory_estimate().unwrap();
    assert!(est.total() > 0.0);
    if let Some(budget) = cfg.memory_budget_bytes() {
        assert!(est.total() < budget);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Long sampling runs report progress after every batch and can be cancelled.
#[test]
fn sampling_reports_progress_and_cancels() {
    let dir = scratch("sample-progress");
    let mut run = Run::new(CpuBackend::new(), config(&dir)).unwrap();
    let opts = hatebm_rs::train::SampleOptions {
        n: 10,
        batch_size: 4,
        steps: Some(2),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let (a, _) = run
        .sample_with_progress(&opts, &mut |done, n| {
            seen.push((done, n));
            true
        })
        .unwrap();
    assert_eq!(seen, vec![(4, 10), (8, 10), (10, 10)]);
    let (b, _) = run.sample(&opts).unwrap();
    assert_eq!(a, b, "the callback does not change the samples");
    let e = run
        .sample_with_progress(&opts, &mut |done, _| done < 8)
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17, item 1 (Rust side): a checkpoint samples and scores with its
/// networks alone after the training data is deleted, bit for bit as the
/// resumed run does.
#[test]
fn a_checkpoint_samples_without_its_training_data() {
    use hatebm_rs::run::TrainedModel;
    let dir = scratch("model-only");
    let data = dir.join("x.npy");
    write_data(&data, 0, -1.0);
    let mut run = Run::new(CpuBackend::new(), npy_config(&dir, &data)).unwrap();
    run.train(Some(3), &mut Silent).unwrap();
    let ck = dir.join("checkpoint.safetensors");
    let opts = hatebm_rs::train::SampleOptions {
        n: 6,
        batch_size: 4,
        steps: Some(3),
        ..Default::default()
    };
    let mut resumed = Run::resume(CpuBackend::new(), &ck, None).unwrap();
    let (want, shape) = resumed.sample(&opts).unwrap();
    std::fs::remove_file(&data).unwrap();
    assert!(matches!(
        Run::resume(CpuBackend::new(), &ck, None).unwrap_err(),
        Error::Io { .. }
    ));
    let mut m = TrainedModel::load(CpuBackend::new(), &ck).unwrap();
    let (got, got_shape) = m.sample(&opts, &mut |_, _| true).unwrap();
    assert_eq!(got_shape, shape);
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "the model samples as the run does"
    );
    assert_eq!(
        m.image_dims(),
        None,
        "an npy data set has no known image shape"
    );
    // Energies: with and without the EMA weights, as the run's networks give them.
    let x = &want[..2 * 64];
    let e_raw = m.energy(x, 2, false).unwrap();
    let e_ema = m.energy(x, 2, true).unwrap();
    assert_eq!(e_raw.len(), 2);
    assert_ne!(e_raw, e_ema, "the EMA weights differ from the raw ones");
    let be = CpuBackend::new();
    let xt = be.from_host(x, &[2, 64]).unwrap();
    let e_run = be
        .to_host(&resumed.trainer.energy().energy(&xt).unwrap())
        .unwrap();
    assert_eq!(e_raw, e_run);
    assert!(
        m.energy(&x[..10], 2, false).is_err(),
        "wrong length is an error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checkpoints of earlier builds stored `langevin.update_res` /
/// `update_latents` as the defaults whatever the mode (the trainer overrode
/// them); now a value that disagrees with the mode is a config error, so the
/// loader drops the two stored keys: such a checkpoint still resumes, with
/// the mode's blocks.
#[test]
fn stored_sampler_blocks_that_disagree_with_the_mode_still_load() {
    let dir = scratch("blocks");
    let mut run = Run::new(CpuBackend::new(), config(&dir)).unwrap();
    run.train(Some(1), &mut Silent).unwrap();
    let ck = dir.join("checkpoint.safetensors");
    let text = TensorFile::read(&ck).unwrap().metadata["config"].clone();
    assert!(text.contains("update_res = true"), "{text}");
    let old = dir.join("old.safetensors");
    with_meta(
        &ck,
        &old,
        "config",
        &text.replace("update_res = true", "update_res = false"),
    );
    let mut r = Run::resume(CpuBackend::new(), &old, None).unwrap();
    assert!(r.trainer.sampler().config.update_res);
    r.train(Some(2), &mut Silent).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
