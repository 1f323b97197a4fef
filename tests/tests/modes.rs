//! Every training mode, end to end for a few iterations, on small networks:
//! each test checks that the mode changes what it should and nothing else —
//! which weights move, which chain blocks move, what the bank holds, which
//! pairs the generator is fitted to — plus sampling, configuration errors and
//! non-finite inputs.
//!
//! Written generically (`fn name<B: BuildNets>(be: &B)`) and instantiated for
//! every compiled-in backend by `backend_tests!`.

mod common;

use std::collections::HashMap;

use hatebm_rs::backend::{Backend, shape};
use hatebm_rs::nets::{BuildNets, EnergyArch, GeneratorArch};
use hatebm_rs::noise::{NoiseKey, SeededNoise, Stream};
use hatebm_rs::optim::AdamConfig;
use hatebm_rs::params::ParamSet;
use hatebm_rs::sampler::LangevinConfig;
use hatebm_rs::train::modes::fill_noise_init;
use hatebm_rs::train::{
    GenUpdate, Mode, NoiseInit, SampleOptions, StepStats, TrainConfig, Trainer, TrainerSettings,
};
use hatebm_rs::{Energy, Error, Generator};
use hatebm_tests::backend_tests;

use common::{bit_identical, host, mean};

backend_tests!(
    synthesis_historical_fits_the_generator_to_bank_pairs_then_overwrites_them,
    synthesis_current_ablation_fits_this_iterations_samples,
    retrofit_moves_latents_and_residuals_and_never_the_generator,
    refine_loads_a_saved_generator_and_keeps_it_frozen,
    no_residual_moves_only_latents,
    short_run_starts_from_noise_and_trains_only_the_ebm,
    persistent_overwrites_exactly_the_drawn_slots,
    persistent_rejuvenation_resets_the_configured_fraction,
    cooperative_mlp_trains_both_networks,
    cooperative_sngan_with_and_without_bn_training_mode,
    sample_has_the_right_shape_and_does_not_depend_on_batch_size,
    bad_configurations_are_config_errors,
    non_finite_data_is_rejected_and_nothing_changes,
    non_finite_bank_pairs_leave_the_generator_untouched,
);

// ---------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------

const SEED: u64 = 3;
const BATCH: usize = 8;

type HostParams = Vec<(String, Vec<usize>, Vec<f32>)>;

fn params_host<B: Backend>(be: &B, p: &ParamSet<B>) -> HostParams {
    p.to_host(be).unwrap()
}

/// Names of the tensors whose values differ (bitwise) between two snapshots.
fn changed(a: &HostParams, b: &HostParams) -> Vec<String> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| !bit_identical(&x.2, &y.2))
        .map(|(x, _)| x.0.clone())
        .collect()
}

fn all_equal(a: &HostParams, b: &HostParams) -> bool {
    changed(a, b).is_empty()
}

fn mlp_energy<B: BuildNets>(be: &B) -> Box<dyn Energy<B>> {
    be.build_energy(
        &EnergyArch::Mlp {
            dims: vec![2, 16, 16, 1],
        },
        SEED,
    )
    .unwrap()
}

fn mlp_generator<B: BuildNets>(be: &B, seed: u64) -> Box<dyn Generator<B>> {
    be.build_generator(
        &GeneratorArch::Mlp {
            dims: vec![2, 16, 16, 2],
        },
        seed,
    )
    .unwrap()
}

fn sngan_energy<B: BuildNets>(be: &B) -> Box<dyn Energy<B>> {
    be.build_energy(
        &EnergyArch::Sngan {
            res: 32,
            nch: 3,
            ngf: 8,
        },
        SEED,
    )
    .unwrap()
}

fn sngan_generator<B: BuildNets>(be: &B) -> Box<dyn Generator<B>> {
    be.build_generator(
        &GeneratorArch::Sngan {
            res: 32,
            nz: 16,
            ngf: 8,
            nch: 3,
            out_factor: 2.0,
        },
        SEED + 1,
    )
    .unwrap()
}

/// Settings for small, fast runs: `K = 3`, T = 0.1, clipped residual drift;
/// the sampler moves the blocks `mode` moves.
fn settings(mode: Mode) -> TrainerSettings {
    let (update_latents, update_res) = hatebm_rs::train::mode_blocks(mode);
    TrainerSettings {
        train: TrainConfig {
            mode,
            steps: 10,
            batch_size: BATCH,
            data_epsilon: 1e-2,
            bank_size: 32,
            persistent_bank_size: 32,
            coop_latent_steps: 3,
            ..TrainConfig::default()
        },
        langevin: LangevinConfig {
            steps: 3,
            temperature: 0.1,
            eps_res: 0.05,
            eps_latent: 0.1,
            clip_res: Some(0.1),
            prior_sigma_res: Some(0.5),
            update_latents,
            update_res,
            ..LangevinConfig::default()
        },
        ebm_optim: AdamConfig {
            lr: 1e-3,
            ..AdamConfig::default()
        },
        gen_optim: AdamConfig {
            lr: 1e-3,
            ..AdamConfig::default()
        },
        seed: SEED,
        init_bank: true,
        dist: Default::default(),
    }
}

fn trainer<B: BuildNets>(
    be: &B,
    s: TrainerSettings,
    energy: Box<dyn Energy<B>>,
    generator: Option<Box<dyn Generator<B>>>,
) -> Trainer<B> {
    let mut t = Trainer::new(be.clone(), s, energy, generator, &mut SeededNoise).unwrap();
    t.set_keep_tensors(true);
    t
}

/// A ring8 batch for iteration `it` (2-D data).
fn toy_batch<B: Backend>(be: &B, it: u64, n: usize) -> B::Tensor {
    let (pts, _) = hatebm_rs::data::ToyDistribution::ring8()
        .sample_seeded(n, 1000 + it)
        .unwrap();
    be.from_host(&pts, &[n, 2]).unwrap()
}

/// A batch of `[n, 3, 32, 32]` images in [−1, 1] (smooth random patterns).
fn image_batch<B: Backend>(be: &B, it: u64, n: usize) -> B::Tensor {
    let mut t = be.zeros(&[n, 3, 32, 32]).unwrap();
    be.fill_normal(&mut t, NoiseKey::new(SEED, Stream::User, [it, 0]))
        .unwrap();
    let h: Vec<f32> = host(be, &t).iter().map(|v| (0.5 * v).tanh()).collect();
    be.from_host(&h, &[n, 3, 32, 32]).unwrap()
}

/// The fresh latents a generator mode starts iteration `it` from.
fn fresh_latents<B: Backend>(be: &B, t: &Trainer<B>, it: u64, n: usize) -> Vec<f32> {
    let g = t.generator().unwrap();
    let mut z = be.zeros(&shape::batched(n, g.latent_shape())).unwrap();
    be.fill_normal(
        &mut z,
        NoiseKey::new(t.seed(), Stream::ChainInitLatent, [it, 0]),
    )
    .unwrap();
    be.scale(&mut z, t.config().init_scale_latent).unwrap();
    host(be, &z)
}

fn check_losses(st: &StepStats, trains_generator: bool) {
    assert!(st.loss_ebm.is_finite(), "{st:?}");
    assert!(st.energy_pos.is_finite() && st.energy_neg.is_finite());
    // The reported loss is (mean U(x⁺) − mean U(x⁻))/T (T = 0.1 here).
    assert!(
        (st.loss_ebm - (st.energy_pos - st.energy_neg) / 0.1).abs()
            <= 1e-4 * (1.0 + st.loss_ebm.abs()),
        "{st:?}"
    );
    assert_eq!(st.loss_gen.is_some(), trains_generator, "{st:?}");
    if let Some(l) = st.loss_gen {
        assert!(l.is_finite() && l >= 0.0);
    }
}

/// Whether `be` is the CPU reference backend, whose contracts are bitwise
/// (row results independent of the batch, fixed reduction orders).
fn is_cpu<B: Backend>(be: &B) -> bool {
    be.name() == "cpu"
}

/// Bit-identical on the CPU backend; within float32 rounding (1e-5 normwise)
/// on backends whose kernels may depend on the batch size (libtorch).
fn same_rows<B: Backend>(be: &B, a: &[f32], b: &[f32]) -> bool {
    if is_cpu(be) {
        return bit_identical(a, b);
    }
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-5 * scale.max(1.0))
}

/// The EBM moved: most tensors change. For an MLP on the CPU backend the
/// output bias cannot: the contrastive loss's gradient w.r.t. it is
/// `Σ_b w_b = (1/T)(1 − 1)`, which the CPU's fixed-order reduction of the
/// ±1/(BT) weights makes exactly 0, and Keras Adam does not move a parameter
/// whose gradient is exactly 0.
fn check_ebm_moved<B: Backend>(be: &B, before: &HostParams, after: &HostParams) {
    let ch = changed(before, after);
    assert!(
        2 * ch.len() >= before.len(),
        "only {ch:?} of {} EBM tensors moved",
        before.len()
    );
    if !is_cpu(be) {
        return;
    }
    if let Some((name, _, _)) = before.iter().find(|(n, _, _)| n == "fc3.bias") {
        assert!(!ch.contains(name), "the output bias moved: {ch:?}");
    }
}

/// `factor · mean((G(z) − x)²)` in f64 on the host.
fn mse_loss<B: Backend>(
    be: &B,
    g: &dyn Generator<B>,
    z: &B::Tensor,
    x: &[f32],
    factor: f32,
) -> f64 {
    let gz = host(be, &g.forward(z).unwrap());
    let s: f64 = gz
        .iter()
        .zip(x)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    f64::from(factor) * s / gz.len() as f64
}

fn rows(v: &[f32], idx: &[usize], row: usize) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| v[i * row..(i + 1) * row].iter().copied())
        .collect()
}

// ---------------------------------------------------------------------------
// Synthesis (Algorithm 1) and its `current` ablation.
// ---------------------------------------------------------------------------

fn synthesis_historical_fits_the_generator_to_bank_pairs_then_overwrites_them<B: BuildNets>(
    be: &B,
) {
    let mut s = settings(Mode::Synthesis);
    s.train.bank_size = 2 * BATCH; // slots are redrawn soon
    let mut t = trainer(be, s, mlp_energy(be), Some(mlp_generator(be, SEED + 1)));
    let cap = t.bank().unwrap().capacity();
    let mut moved_gen = 0;
    for it in 0..6u64 {
        let ebm0 = params_host(be, t.energy().params());
        let gen0 = params_host(be, t.generator().unwrap().params());
        let bank = t.bank().unwrap();
        let (bz0, bx0) = (host(be, bank.z.as_ref().unwrap()), host(be, &bank.x));
        // The loss the generator update must report: its pre-update weights on
        // the bank pairs *before* this iteration's overwrite.
        let gen_before_loss = |slots: &[usize]| {
            let z = be
                .from_host(&rows(&bz0, slots, 2), &[slots.len(), 2])
                .unwrap();
            mse_loss(
                be,
                t.generator().unwrap(),
                &z,
                &rows(&bx0, slots, 2),
                t.config().gen_loss_factor,
            )
        };
        let slots_expected = bank
            .draw_slots(&mut SeededNoise, t.seed(), it, BATCH)
            .unwrap();
        let want_loss = gen_before_loss(&slots_expected);
        let z_init = fresh_latents(be, &t, it, BATCH);

        let st = t.step(&toy_batch(be, it, BATCH), &mut SeededNoise).unwrap();
        check_losses(&st, true);
        assert_eq!((st.iteration, t.iteration()), (it + 1, it + 1));
        let last = t.last_tensors().unwrap();
        // Latents are not moved; the residual is.
        assert!(bit_identical(&host(be, last.z.as_ref().unwrap()), &z_init));
        assert!(host(be, &last.y).iter().any(|&v| v != 0.0));
        // x⁻ = G_before(z) + y.
        let gz: Vec<f32> = {
            let g = be.build_generator(
                &GeneratorArch::Mlp {
                    dims: vec![2, 16, 16, 2],
                },
                0,
            );
            let mut g = g.unwrap();
            g.params_mut().load_host(be, &gen0).unwrap();
            host(be, &g.forward(last.z.as_ref().unwrap()).unwrap())
        };
        let y = host(be, &last.y);
        let x_neg = host(be, &last.x_neg);
        for i in 0..x_neg.len() {
            assert!((x_neg[i] - (gz[i] + y[i])).abs() <= 1e-6 * (1.0 + x_neg[i].abs()));
        }
        // Generator fitted to the historical pairs of the drawn slots.
        assert_eq!(last.slots, slots_expected);
        let got = st.loss_gen.unwrap();
        assert!(
            (got - want_loss).abs() <= 1e-4 * want_loss.max(1e-3),
            "generator loss {got} vs {want_loss} on the bank pairs"
        );
        // Both networks moved — the generator iff its loss was not zero: the
        // bank starts as (z, G(z)), so the first update (and any update that
        // draws only never-overwritten slots) has an exactly zero gradient.
        check_ebm_moved(be, &ebm0, &params_host(be, t.energy().params()));
        let gen1 = params_host(be, t.generator().unwrap().params());
        if it == 0 {
            assert_eq!(want_loss, 0.0);
        }
        if want_loss > 0.0 {
            moved_gen += 1;
            assert_eq!(
                changed(&gen0, &gen1).len(),
                gen0.len(),
                "every generator tensor moves"
            );
        } else {
            assert!(all_equal(&gen0, &gen1), "zero loss but the generator moved");
        }
        // The drawn slots now hold this iteration's (z, x⁻); the others are untouched.
        let bank = t.bank().unwrap();
        assert_eq!(bank.capacity(), cap);
        let (bz1, bx1) = (host(be, bank.z.as_ref().unwrap()), host(be, &bank.x));
        assert!(bit_identical(&rows(&bz1, &last.slots, 2), &z_init));
        assert!(bit_identical(&rows(&bx1, &last.slots, 2), &x_neg));
        let others: Vec<usize> = (0..cap).filter(|i| !last.slots.contains(i)).collect();
        assert!(bit_identical(
            &rows(&bz1, &others, 2),
            &rows(&bz0, &others, 2)
        ));
        assert!(bit_identical(
            &rows(&bx1, &others, 2),
            &rows(&bx0, &others, 2)
        ));
    }
    assert!(
        moved_gen >= 3,
        "the generator moved in only {moved_gen} of 5 iterations"
    );
}

fn synthesis_current_ablation_fits_this_iterations_samples<B: BuildNets>(be: &B) {
    let mut s = settings(Mode::Synthesis);
    s.train.gen_update = GenUpdate::Current;
    s.train.bank_size = 1; // no bank is needed (and none is built)
    let mut t = trainer(be, s, mlp_energy(be), Some(mlp_generator(be, SEED + 1)));
    assert!(t.bank().is_none());
    for it in 0..3u64 {
        let ebm0 = params_host(be, t.energy().params());
        let gen0 = params_host(be, t.generator().unwrap().params());
        let mut g_before = mlp_generator(be, 0);
        g_before.params_mut().load_host(be, &gen0).unwrap();
        let st = t.step(&toy_batch(be, it, BATCH), &mut SeededNoise).unwrap();
        check_losses(&st, true);
        let last = t.last_tensors().unwrap();
        assert!(last.slots.is_empty());
        // The generator is fitted to (z, x⁻) of this very iteration.
        let want = mse_loss(
            be,
            g_before.as_ref(),
            last.z.as_ref().unwrap(),
            &host(be, &last.x_neg),
            t.config().gen_loss_factor,
        );
        let got = st.loss_gen.unwrap();
        assert!(
            (got - want).abs() <= 1e-4 * want.max(1e-3),
            "{got} vs {want}"
        );
        check_ebm_moved(be, &ebm0, &params_host(be, t.energy().params()));
        assert!(!all_equal(
            &gen0,
            &params_host(be, t.generator().unwrap().params())
        ));
    }
}

// ---------------------------------------------------------------------------
// Frozen-generator modes: retrofit, refine, no-residual.
// ---------------------------------------------------------------------------

/// Runs `iters` steps of a frozen-generator mode and checks the common facts:
/// EBM moves, generator bit-identical (weights and buffers), no generator
/// optimiser, latents moved away from their fresh values, x⁻ = G(z) + y.
fn check_frozen_generator<B: BuildNets>(
    be: &B,
    t: &mut Trainer<B>,
    iters: u64,
    data: impl Fn(u64) -> B::Tensor,
) {
    assert!(t.gen_optimiser().is_none() && t.bank().is_none());
    let gen0 = params_host(be, t.generator().unwrap().params());
    let zdim = shape::numel(t.generator().unwrap().latent_shape());
    for it in 0..iters {
        let ebm0 = params_host(be, t.energy().params());
        let z_init = fresh_latents(be, t, t.iteration(), BATCH);
        let st = t.step(&data(it), &mut SeededNoise).unwrap();
        check_losses(&st, false);
        assert!(st.langevin.drift_norm_latent > 0.0);
        check_ebm_moved(be, &ebm0, &params_host(be, t.energy().params()));
        let last = t.last_tensors().unwrap();
        let z = host(be, last.z.as_ref().unwrap());
        for b in 0..BATCH {
            assert!(
                !bit_identical(
                    &z[b * zdim..(b + 1) * zdim],
                    &z_init[b * zdim..(b + 1) * zdim]
                ),
                "latent of chain {b} did not move"
            );
        }
        let g = t.generator().unwrap();
        let gz = host(be, &g.forward(last.z.as_ref().unwrap()).unwrap());
        let (y, x_neg) = (host(be, &last.y), host(be, &last.x_neg));
        for i in 0..x_neg.len() {
            assert!((x_neg[i] - (gz[i] + y[i])).abs() <= 1e-5 * (1.0 + x_neg[i].abs()));
        }
    }
    let gen1 = params_host(be, t.generator().unwrap().params());
    assert!(all_equal(&gen0, &gen1), "the frozen generator changed");
}

fn retrofit_moves_latents_and_residuals_and_never_the_generator<B: BuildNets>(be: &B) {
    // The paper's retrofit generator: the GenDecoder32 (latent [1, 16, 16]).
    let decoder = be
        .build_generator(
            &GeneratorArch::Decoder32 {
                ngf: 8,
                nch: 3,
                out_factor: 2.0,
            },
            SEED + 2,
        )
        .unwrap();
    let mut s = settings(Mode::Retrofit);
    s.train.batch_size = BATCH;
    s.langevin.temperature = 0.1;
    let mut t = trainer(be, s, sngan_energy(be), Some(decoder));
    assert!(t.sampler().config.update_latents && t.sampler().config.update_res);
    check_frozen_generator(be, &mut t, 2, |it| image_batch(be, it, BATCH));
    assert!(
        host(be, &t.last_tensors().unwrap().y)
            .iter()
            .any(|&v| v != 0.0)
    );
}

fn refine_loads_a_saved_generator_and_keeps_it_frozen<B: BuildNets>(be: &B) {
    // A generator trained briefly by synthesis ...
    let mut pre = trainer(
        be,
        settings(Mode::Synthesis),
        mlp_energy(be),
        Some(mlp_generator(be, SEED + 1)),
    );
    for it in 0..3 {
        pre.step(&toy_batch(be, it, BATCH), &mut SeededNoise)
            .unwrap();
    }
    let trained = params_host(be, pre.generator().unwrap().params());
    assert!(!all_equal(
        &trained,
        &params_host(be, mlp_generator(be, SEED + 1).params())
    ));
    // ... saved as safetensors ...
    let path = std::env::temp_dir().join(format!(
        "hatebm-modes-refine-{}-{}.safetensors",
        std::process::id(),
        be.name().replace(':', "_")
    ));
    let mut meta = HashMap::new();
    meta.insert("origin".to_string(), "synthesis, 3 iterations".to_string());
    hatebm_rs::weights::save_params(pre.generator().unwrap().params(), be, &path, &meta).unwrap();
    // ... and loaded into a fresh network for refinement.
    let mut g = mlp_generator(be, 999);
    hatebm_rs::weights::load_params(g.params_mut(), be, &path, "").unwrap();
    std::fs::remove_file(&path).ok();
    assert!(all_equal(&params_host(be, g.params()), &trained));
    let mut t = trainer(be, settings(Mode::Refine), mlp_energy(be), Some(g));
    check_frozen_generator(be, &mut t, 3, |it| toy_batch(be, it, BATCH));
    assert!(all_equal(
        &params_host(be, t.generator().unwrap().params()),
        &trained
    ));
}

fn no_residual_moves_only_latents<B: BuildNets>(be: &B) {
    let mut s = settings(Mode::NoResidual);
    s.train.init_scale_res = 0.5; // ignored: the residual block does not exist
    let mut t = trainer(be, s, mlp_energy(be), Some(mlp_generator(be, SEED + 1)));
    assert!(t.sampler().config.update_latents && !t.sampler().config.update_res);
    check_frozen_generator(be, &mut t, 3, |it| toy_batch(be, it, BATCH));
    let last = t.last_tensors().unwrap();
    assert!(host(be, &last.y).iter().all(|&v| v == 0.0), "y moved");
    assert_eq!(t.last_tensors().unwrap().slots.len(), 0);
}

// ---------------------------------------------------------------------------
// Generator-free baselines: short-run and persistent.
// ---------------------------------------------------------------------------

fn short_run_starts_from_noise_and_trains_only_the_ebm<B: BuildNets>(be: &B) {
    let mut t = trainer(be, settings(Mode::ShortRun), mlp_energy(be), None);
    assert!(t.generator().is_none() && t.gen_optimiser().is_none() && t.bank().is_none());
    for it in 0..3u64 {
        let ebm0 = params_host(be, t.energy().params());
        let mut y0 = be.zeros(&[BATCH, 2]).unwrap();
        fill_noise_init(
            be,
            &mut y0,
            NoiseInit::Uniform,
            NoiseKey::new(SEED, Stream::ChainInitRes, [it, 0]),
        )
        .unwrap();
        let y0 = host(be, &y0);
        assert!(y0.iter().all(|v| (-1.0..1.0).contains(v)));
        let st = t.step(&toy_batch(be, it, BATCH), &mut SeededNoise).unwrap();
        check_losses(&st, false);
        check_ebm_moved(be, &ebm0, &params_host(be, t.energy().params()));
        let last = t.last_tensors().unwrap();
        assert!(last.z.is_none());
        let y = host(be, &last.y);
        assert!(bit_identical(&y, &host(be, &last.x_neg)));
        // Every chain moved from its noise start, by at most K·(clip + ε·|ξ|).
        for b in 0..BATCH {
            let d =
                ((y[2 * b] - y0[2 * b]).powi(2) + (y[2 * b + 1] - y0[2 * b + 1]).powi(2)).sqrt();
            assert!(
                d > 0.0 && d < 3.0 * (0.1 + 0.05 * 6.0),
                "chain {b} moved {d}"
            );
        }
    }
}

fn persistent_overwrites_exactly_the_drawn_slots<B: BuildNets>(be: &B) {
    let mut t = trainer(be, settings(Mode::Persistent), mlp_energy(be), None);
    let cap = t.bank().unwrap().capacity();
    assert_eq!(cap, 32);
    assert!(t.bank().unwrap().z.is_none());
    // The bank starts as U(−1, 1) noise.
    assert!(
        host(be, &t.bank().unwrap().x)
            .iter()
            .all(|v| (-1.0..1.0).contains(v))
    );
    let mut ever = vec![false; cap];
    for it in 0..6u64 {
        let ebm0 = params_host(be, t.energy().params());
        let x0 = host(be, &t.bank().unwrap().x);
        let st = t.step(&toy_batch(be, it, BATCH), &mut SeededNoise).unwrap();
        check_losses(&st, false);
        check_ebm_moved(be, &ebm0, &params_host(be, t.energy().params()));
        let last = t.last_tensors().unwrap();
        let slots = last.slots.clone();
        assert_eq!(slots.len(), BATCH);
        let mut u = slots.clone();
        u.sort_unstable();
        u.dedup();
        assert_eq!(u.len(), BATCH);
        let x1 = host(be, &t.bank().unwrap().x);
        assert_eq!(be.shape(&t.bank().unwrap().x), vec![cap, 2]);
        assert!(bit_identical(&rows(&x1, &slots, 2), &host(be, &last.x_neg)));
        // The drawn slots changed (the chains moved), the others did not.
        for s in 0..cap {
            let same = bit_identical(&x1[2 * s..2 * s + 2], &x0[2 * s..2 * s + 2]);
            assert_eq!(same, !slots.contains(&s), "slot {s}");
            ever[s] |= slots.contains(&s);
        }
    }
    assert!(
        ever.iter().filter(|&&e| e).count() > BATCH,
        "slots are redrawn"
    );
}

/// With K = 0 the negative samples are the chains' starting points, so a
/// rejuvenated chain shows as an x⁻ row that differs from the bank row it was
/// drawn from. Over I iterations of B chains the number of resets is
/// Binomial(I·B, p); we require it within 5σ of I·B·p (and exactly 0 / all for
/// p = 0 / 1).
fn persistent_rejuvenation_resets_the_configured_fraction<B: BuildNets>(be: &B) {
    for (p, iters) in [(0.2f32, 120u64), (0.0, 10), (1.0, 10)] {
        let mut s = settings(Mode::Persistent);
        s.langevin.steps = 0;
        s.train.rejuvenation = p;
        s.train.batch_size = 32;
        s.train.persistent_bank_size = 64;
        let mut t = trainer(be, s, mlp_energy(be), None);
        let mut resets = 0usize;
        for it in 0..iters {
            let x0 = host(be, &t.bank().unwrap().x);
            t.step(&toy_batch(be, it, 32), &mut SeededNoise).unwrap();
            let last = t.last_tensors().unwrap();
            let started = rows(&x0, &last.slots, 2);
            let x_neg = host(be, &last.x_neg);
            for b in 0..32 {
                if !bit_identical(&x_neg[2 * b..2 * b + 2], &started[2 * b..2 * b + 2]) {
                    resets += 1;
                    assert!(
                        x_neg[2 * b..2 * b + 2]
                            .iter()
                            .all(|v| (-1.0..1.0).contains(v))
                    );
                }
            }
        }
        let n = (iters * 32) as f64;
        let (m, sd) = (
            n * f64::from(p),
            (n * f64::from(p) * f64::from(1.0 - p)).sqrt(),
        );
        eprintln!("rejuvenation p = {p}: {resets} of {n} chains reset (expected {m:.1} ± {sd:.1})");
        assert!(
            (resets as f64 - m).abs() <= 5.0 * sd,
            "p = {p}: {resets} resets, expected {m} ± 5·{sd}"
        );
    }
}

// ---------------------------------------------------------------------------
// Cooperative learning.
// ---------------------------------------------------------------------------

fn run_cooperative<B: BuildNets>(
    be: &B,
    t: &mut Trainer<B>,
    iters: u64,
    data: impl Fn(u64) -> B::Tensor,
) {
    let gen_first = params_host(be, t.generator().unwrap().params());
    for it in 0..iters {
        let ebm0 = params_host(be, t.energy().params());
        let gen0 = params_host(be, t.generator().unwrap().params());
        let z_init = fresh_latents(be, t, t.iteration(), BATCH);
        let st = t.step(&data(it), &mut SeededNoise).unwrap();
        check_losses(&st, true);
        check_ebm_moved(be, &ebm0, &params_host(be, t.energy().params()));
        let gen1 = params_host(be, t.generator().unwrap().params());
        let ch = changed(&gen0, &gen1);
        // Every trainable generator tensor moves; buffers (BN running
        // statistics) never do, in either BN mode.
        for p in t.generator().unwrap().params().iter() {
            assert_eq!(
                ch.contains(&p.spec.name),
                p.spec.trainable,
                "{} (trainable {})",
                p.spec.name,
                p.spec.trainable
            );
        }
        // The chains start at G(z) with fresh latents that the EBM chain does not move.
        let last = t.last_tensors().unwrap();
        assert!(bit_identical(&host(be, last.z.as_ref().unwrap()), &z_init));
    }
    let gen_last = params_host(be, t.generator().unwrap().params());
    for (a, b) in gen_first.iter().zip(&gen_last) {
        if a.0.contains("running_") {
            assert!(bit_identical(&a.2, &b.2), "{} changed", a.0);
        }
    }
}

fn cooperative_mlp_trains_both_networks<B: BuildNets>(be: &B) {
    // With latent inference (3 steps) and without (the generator is then
    // fitted to the chains' own latents: its loss is computable in advance).
    for latent_steps in [3usize, 0] {
        let mut s = settings(Mode::Cooperative);
        s.train.coop_latent_steps = latent_steps;
        let mut t = trainer(be, s, mlp_energy(be), Some(mlp_generator(be, SEED + 1)));
        assert!(!t.generator().unwrap().bn_training());
        run_cooperative(be, &mut t, 3, |it| toy_batch(be, it, BATCH));
        // One more step, checking which latents the generator was fitted to.
        let gen0 = params_host(be, t.generator().unwrap().params());
        let mut g_before = mlp_generator(be, 0);
        g_before.params_mut().load_host(be, &gen0).unwrap();
        let st = t.step(&toy_batch(be, 9, BATCH), &mut SeededNoise).unwrap();
        let last = t.last_tensors().unwrap();
        let at_chain_latents = mse_loss(
            be,
            g_before.as_ref(),
            last.z.as_ref().unwrap(),
            &host(be, &last.x_neg),
            t.config().gen_loss_factor,
        );
        let got = st.loss_gen.unwrap();
        let same = (got - at_chain_latents).abs() <= 1e-4 * at_chain_latents.max(1e-3);
        assert_eq!(
            same,
            latent_steps == 0,
            "latent steps {latent_steps}: loss {got} vs {at_chain_latents} at the chain latents"
        );
    }
}

fn cooperative_sngan_with_and_without_bn_training_mode<B: BuildNets>(be: &B) {
    let mut outputs = Vec::new();
    for bn in [false, true] {
        let mut s = settings(Mode::Cooperative);
        s.train.coop_bn_training = bn;
        s.train.coop_latent_steps = 2;
        let mut t = trainer(be, s, sngan_energy(be), Some(sngan_generator(be)));
        assert_eq!(t.generator().unwrap().bn_training(), bn);
        run_cooperative(be, &mut t, 2, |it| image_batch(be, it, BATCH));
        outputs.push(host(be, &t.last_tensors().unwrap().x_neg));
    }
    // Batch statistics vs running statistics give different samples.
    assert!(!bit_identical(&outputs[0], &outputs[1]));
}

// ---------------------------------------------------------------------------
// Sampling.
// ---------------------------------------------------------------------------

fn sample_has_the_right_shape_and_does_not_depend_on_batch_size<B: BuildNets>(be: &B) {
    let cases: Vec<(Mode, bool)> = vec![
        (Mode::Synthesis, true),
        (Mode::Refine, true),
        (Mode::NoResidual, true),
        (Mode::ShortRun, false),
        (Mode::Persistent, false),
    ];
    for (mode, with_gen) in cases {
        let mut s = settings(mode);
        s.ebm_optim.ema_decay = Some(0.5);
        let g = with_gen.then(|| mlp_generator(be, SEED + 1));
        let mut t = trainer(be, s, mlp_energy(be), g);
        for it in 0..2 {
            t.step(&toy_batch(be, it, BATCH), &mut SeededNoise).unwrap();
        }
        let weights = params_host(be, t.energy().params());
        let opts = |batch_size: usize, use_ema: bool| SampleOptions {
            n: 11,
            batch_size,
            steps: Some(4),
            use_ema,
            seed: 21,
            clamp: false,
        };
        let (x, stats) = t.sample(&opts(11, true), &mut SeededNoise).unwrap();
        assert_eq!(be.shape(&x), vec![11, 2], "{mode:?}");
        assert_eq!(stats.steps, 4);
        let x = host(be, &x);
        assert!(x.iter().all(|v| v.is_finite()));
        for bs in [1, 3, 4, 64] {
            let (y, _) = t.sample(&opts(bs, true), &mut SeededNoise).unwrap();
            assert!(
                same_rows(be, &host(be, &y), &x),
                "{mode:?}: batch size {bs} changes the samples"
            );
        }
        // The EMA weights are used (and swapped back afterwards).
        let (raw, _) = t.sample(&opts(11, false), &mut SeededNoise).unwrap();
        assert!(
            !bit_identical(&host(be, &raw), &x),
            "{mode:?}: EMA not used"
        );
        assert!(all_equal(&weights, &params_host(be, t.energy().params())));
        // Another seed gives other samples.
        let mut o = opts(11, true);
        o.seed = 22;
        assert!(!bit_identical(
            &host(be, &t.sample(&o, &mut SeededNoise).unwrap().0),
            &x
        ));
        // K = 0 with a generator: G(z) for z ~ N(0, I) from the seed (exactly,
        // on the CPU backend, although sampled in batches of 2).
        if with_gen {
            let mut o = opts(2, true);
            o.n = 5;
            o.steps = Some(0);
            let (g0, _) = t.sample(&o, &mut SeededNoise).unwrap();
            let mut z = be.zeros(&[5, 2]).unwrap();
            be.fill_normal(&mut z, NoiseKey::new(21, Stream::ChainInitLatent, [0, 0]))
                .unwrap();
            let gz = t.generator().unwrap().forward(&z).unwrap();
            let (a, b) = (host(be, &g0), host(be, &gz));
            assert!(same_rows(be, &a, &b), "{mode:?}: {a:?} vs {b:?}");
        }
        let mut bad = opts(11, true);
        bad.n = 0;
        assert!(matches!(
            t.sample(&bad, &mut SeededNoise),
            Err(Error::InvalidArgument(_))
        ));
    }
}

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

fn config_error<B: BuildNets>(
    be: &B,
    s: TrainerSettings,
    energy: Box<dyn Energy<B>>,
    generator: Option<Box<dyn Generator<B>>>,
    knob: &str,
) {
    match Trainer::new(be.clone(), s, energy, generator, &mut SeededNoise) {
        Err(Error::Config(m)) => assert!(m.contains(knob), "`{m}` does not name `{knob}`"),
        Err(e) => panic!("expected a config error naming `{knob}`, got {e}"),
        Ok(_) => panic!("expected a config error naming `{knob}`, got a trainer"),
    }
}

fn bad_configurations_are_config_errors<B: BuildNets>(be: &B) {
    for mode in Mode::ALL {
        if mode.has_generator() {
            config_error(
                be,
                settings(mode),
                mlp_energy(be),
                None,
                "needs a generator",
            );
        } else {
            config_error(
                be,
                settings(mode),
                mlp_energy(be),
                Some(mlp_generator(be, 1)),
                "takes no generator",
            );
        }
    }
    let mut s = settings(Mode::Synthesis);
    s.train.bank_size = BATCH - 1;
    config_error(
        be,
        s,
        mlp_energy(be),
        Some(mlp_generator(be, 1)),
        "bank_size",
    );
    let mut s = settings(Mode::Persistent);
    s.train.persistent_bank_size = BATCH - 1;
    config_error(be, s, mlp_energy(be), None, "persistent_bank_size");
    // A generator whose output does not fit the energy.
    let g3 = be
        .build_generator(
            &GeneratorArch::Mlp {
                dims: vec![2, 8, 3],
            },
            1,
        )
        .unwrap();
    config_error(
        be,
        settings(Mode::Synthesis),
        mlp_energy(be),
        Some(g3),
        "does not match",
    );
    let mut s = settings(Mode::ShortRun);
    s.langevin.temperature = 0.0;
    config_error(be, s, mlp_energy(be), None, "temperature");
    let mut s = settings(Mode::ShortRun);
    s.langevin.eps_res = 0.0;
    config_error(be, s, mlp_energy(be), None, "eps_res");
    let mut s = settings(Mode::Retrofit);
    s.langevin.eps_latent = f32::NAN;
    config_error(
        be,
        s,
        mlp_energy(be),
        Some(mlp_generator(be, 1)),
        "eps_latent",
    );
    let mut s = settings(Mode::ShortRun);
    s.ebm_optim.beta1 = 1.0;
    config_error(be, s, mlp_energy(be), None, "beta1");
    let mut s = settings(Mode::Synthesis);
    s.gen_optim.lr = -1.0;
    config_error(
        be,
        s,
        mlp_energy(be),
        Some(mlp_generator(be, 1)),
        "gen_optim.lr",
    );
    let mut s = settings(Mode::ShortRun);
    s.train.batch_size = 0;
    config_error(be, s, mlp_energy(be), None, "batch_size");
    let mut s = settings(Mode::Persistent);
    s.train.rejuvenation = 1.5;
    config_error(be, s, mlp_energy(be), None, "rejuvenation");
    let mut s = settings(Mode::Cooperative);
    s.train.coop_sigma = 0.0;
    config_error(
        be,
        s,
        mlp_energy(be),
        Some(mlp_generator(be, 1)),
        "coop_sigma",
    );
    let mut s = settings(Mode::ShortRun);
    s.langevin.prior_sigma_res = Some(-1.0);
    config_error(be, s, mlp_energy(be), None, "prior_sigma_res");
    // Batch-norm training mode needs a generator with batch norm.
    let mut s = settings(Mode::Cooperative);
    s.train.coop_bn_training = true;
    config_error(
        be,
        s,
        mlp_energy(be),
        Some(mlp_generator(be, 1)),
        "coop_bn_training",
    );
}

/// Everything a failed step must leave alone.
fn snapshot<B: Backend>(be: &B, t: &Trainer<B>) -> Vec<HostParams> {
    let mut v = vec![params_host(be, t.energy().params())];
    if let Some(g) = &t.generator() {
        v.push(params_host(be, g.params()));
    }
    let opt = |m: &[Option<B::Tensor>]| -> HostParams {
        m.iter()
            .flatten()
            .map(|x| (String::new(), be.shape(x), host(be, x)))
            .collect()
    };
    v.push(opt(t.ebm_optimiser().moments().0));
    v.push(opt(t.ebm_optimiser().moments().1));
    if let Some(o) = t.gen_optimiser() {
        v.push(opt(o.moments().0));
        v.push(opt(o.moments().1));
    }
    if let Some(b) = &t.bank() {
        let mut h = vec![(String::new(), be.shape(&b.x), host(be, &b.x))];
        if let Some(z) = &b.z {
            h.push((String::new(), be.shape(z), host(be, z)));
        }
        v.push(h);
    }
    v
}

fn non_finite_data_is_rejected_and_nothing_changes<B: BuildNets>(be: &B) {
    for mode in [Mode::Synthesis, Mode::ShortRun, Mode::Persistent] {
        let g = mode.has_generator().then(|| mlp_generator(be, SEED + 1));
        let mut t = trainer(be, settings(mode), mlp_energy(be), g);
        t.step(&toy_batch(be, 0, BATCH), &mut SeededNoise).unwrap();
        let before = snapshot(be, &t);
        let (it, adam_step) = (t.iteration(), t.ebm_optimiser().steps_taken());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut d = host(be, &toy_batch(be, 1, BATCH));
            d[5] = bad;
            let data = be.from_host(&d, &[BATCH, 2]).unwrap();
            match t.step(&data, &mut SeededNoise) {
                Err(Error::NonFinite(m)) => assert!(m.contains("data"), "{m}"),
                other => panic!("{mode:?}: expected NonFinite, got {other:?}"),
            }
        }
        // A wrongly shaped batch is a shape error.
        let wrong = be.zeros(&[BATCH, 3]).unwrap();
        assert!(matches!(
            t.step(&wrong, &mut SeededNoise),
            Err(Error::ShapeMismatch { .. })
        ));
        let after = snapshot(be, &t);
        assert_eq!(before.len(), after.len());
        for (a, b) in before.iter().zip(&after) {
            assert!(
                all_equal(a, b),
                "{mode:?}: state changed by a rejected batch"
            );
        }
        assert_eq!(
            (t.iteration(), t.ebm_optimiser().steps_taken()),
            (it, adam_step)
        );
        // And the trainer still works afterwards.
        t.step(&toy_batch(be, 2, BATCH), &mut SeededNoise).unwrap();
    }
}

/// A NaN pair in the bank makes the generator update non-finite: the step
/// fails with `NonFinite`, and the generator's weights and Adam state are
/// untouched (the EBM update before it has already happened, as in Algorithm 1).
fn non_finite_bank_pairs_leave_the_generator_untouched<B: BuildNets>(be: &B) {
    let mut s = settings(Mode::Synthesis);
    s.train.bank_size = BATCH; // every slot is drawn every iteration
    let mut t = trainer(be, s, mlp_energy(be), Some(mlp_generator(be, SEED + 1)));
    t.step(&toy_batch(be, 0, BATCH), &mut SeededNoise).unwrap();
    let mut state = t.state();
    let bank = state.bank.as_mut().unwrap();
    let mut x = host(be, &bank.x);
    x[3] = f32::NAN;
    bank.x = be.from_host(&x, &[BATCH, 2]).unwrap();
    t.restore(state).unwrap();
    let gen0 = params_host(be, t.generator().unwrap().params());
    let gen_step = t.gen_optimiser().unwrap().steps_taken();
    let m0: Vec<f32> = t
        .gen_optimiser()
        .unwrap()
        .moments()
        .0
        .iter()
        .flatten()
        .flat_map(|m| host(be, m))
        .collect();
    match t.step(&toy_batch(be, 1, BATCH), &mut SeededNoise) {
        Err(Error::NonFinite(m)) => assert!(m.contains("generator"), "{m}"),
        other => panic!("expected NonFinite from the generator update, got {other:?}"),
    }
    assert!(all_equal(
        &gen0,
        &params_host(be, t.generator().unwrap().params())
    ));
    let o = t.gen_optimiser().unwrap();
    assert_eq!(o.steps_taken(), gen_step);
    let m1: Vec<f32> = o
        .moments()
        .0
        .iter()
        .flatten()
        .flat_map(|m| host(be, m))
        .collect();
    assert!(bit_identical(&m0, &m1));
    assert!(mean(&host(be, &t.bank().unwrap().x)).is_nan());
}
