//! Property tests (proptest) of the Langevin sampler, the fused update, the
//! bank and the backend string, with analytic energies whose behaviour is known
//! in closed form.
//!
//! Statistical properties use fixed 5σ bounds derived from the exact sampling
//! distribution of the estimator (stated at each test): a correct
//! implementation fails one case with probability < 1e-6, while the
//! alternatives each test guards against (a missing discretisation term, a
//! temperature-scaled prior, non-uniform slots) are many σ away.
//!
//! Case counts: proptest's default (256) is overridden per test with small
//! counts that keep this file to a few seconds; set `PROPTEST_CASES` to run more
//! (it applies to every property here).

mod common;

use common::strategies::{
    BankCase, ClipCase, GaussianCase, IdentityCase, QuadraticCase, SamplerClipCase, backend_spec,
    backend_string, bank_case, clip_case, energy_and_prior_case, expected_spec,
    gaussian_energy_case, identity_case, prior_only_case, quadratic_case, run_config,
    sampler_clip_case,
};
use common::{bit_identical, cases, host, key, mean, mean_square, row_norms, with_threads};
use hatebm_rs::BackendSpec;
use hatebm_rs::backend::{Backend, LangevinUpdate};
use hatebm_rs::bank::Bank;
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::model::{Energy, Generator};
use hatebm_rs::nets::{BuildNets, EnergyArch, GeneratorArch};
use hatebm_rs::noise::{NoiseKey, SeededNoise, Stream};
use hatebm_rs::sampler::{ChainKey, Chains, LangevinConfig, LangevinSampler};
use hatebm_tests::energies::DiagQuadratic;
use proptest::prelude::*;

/// A sampler on the residual block only (no generator), all knobs explicit.
fn residual_sampler(
    steps: usize,
    temperature: f32,
    eps: f32,
    noise: bool,
    clip: Option<f32>,
    prior: Option<f32>,
) -> LangevinSampler {
    LangevinSampler::new(LangevinConfig {
        steps,
        temperature,
        eps_res: eps,
        update_res: true,
        update_latents: false,
        noise,
        clip_res: clip,
        prior_sigma_res: prior,
        ..LangevinConfig::default()
    })
    .expect("valid sampler config")
}

// ---------------------------------------------------------------------------
// 1. Noiseless Langevin on a convex quadratic.
//
// With noise off and no clipping the update is `x ← x − s·∇U/T = (I − hA)x`,
// h = s/T, so each coordinate is multiplied by `r_i = 1 − h·a_i` and its
// energy by `r_i²`. The energy is non-increasing for every start iff
// `|1 − h·a_i| ≤ 1` for all i, i.e. the exact stability bound is
// `s·λ_max/T ≤ 2` (strictly decreasing below it; `s·λ_max/T < 1` is the
// stricter no-overshoot condition, where coordinates also keep their sign).
// The cases cover `s·λ_max/T ∈ [0.05, 1.95]`, both sides of 1.
//
// Float argument for an exact (tolerance-free) monotonicity check: the computed
// drift `d = fl(s·fl(fl(a·x)/T))` is within a few ulps of `h·a·x`, so for
// `h·a ≤ 1.95` we have `0 ≤ d/x < 2`, hence `|x − d| ≤ |x|` exactly, and
// round-to-nearest is monotone, so `|fl(x − d)| ≤ |x|`: every |x_i| and thus
// the f64 energy is non-increasing with no tolerance at all.
// ---------------------------------------------------------------------------

/// Runs the noiseless sampler and returns the per-step host states (x_0 .. x_K).
fn noiseless_trajectory<B: Backend>(
    be: &B,
    energy: &DiagQuadratic<B>,
    x0: &[f32],
    batch: usize,
    steps: usize,
    temperature: f32,
    eps: f32,
) -> Vec<Vec<f32>> {
    let dim = energy.curvatures().len();
    let sampler = residual_sampler(steps, temperature, eps, false, None, None);
    let mut chains = Chains {
        z: None,
        y: be.from_host(x0, &[batch, dim]).unwrap(),
    };
    let mut states = vec![x0.to_vec()];
    let mut record = |_k: usize, _g: Option<&B::Tensor>, ch: &Chains<B>| {
        states.push(be.to_host(&ch.y).unwrap());
    };
    sampler
        .run(
            be,
            energy,
            None,
            &mut chains,
            &mut SeededNoise,
            key(0),
            Some(&mut record),
        )
        .unwrap();
    states
}

fn total_energy<B: Backend>(energy: &DiagQuadratic<B>, x: &[f32]) -> f64 {
    energy.energies_host(x).iter().sum()
}

fn check_quadratic_descent<B: Backend>(
    backend: &B,
    c: &QuadraticCase,
) -> Result<(), TestCaseError> {
    let be = backend.clone();
    let dim = c.curv.len();
    let energy = DiagQuadratic::new(&be, &[dim], c.curv.clone());
    let eps = c.eps();
    let states = noiseless_trajectory(&be, &energy, &c.x0, c.batch, c.steps, c.temperature, eps);
    prop_assert_eq!(states.len(), c.steps + 1);
    // The effective h·a_i as the sampler computes it (f32 step, 1/T, a).
    let s = f64::from(eps * eps / 2.0);
    let inv_t = f64::from(1.0 / c.temperature);
    let h_lmax = s * inv_t * f64::from(c.lambda_max());
    prop_assert!(h_lmax < 2.0, "case outside the stable range: {h_lmax}");
    for (k, w) in states.windows(2).enumerate() {
        // Per sample and per coordinate, exactly (see the float argument above).
        for (i, (&a, &b)) in w[0].iter().zip(&w[1]).enumerate() {
            prop_assert!(
                b.abs() <= a.abs(),
                "step {k} coord {i}: |x| grew {a} -> {b} (s·λmax/T = {h_lmax})"
            );
        }
        let (e0, e1) = (energy.energies_host(&w[0]), energy.energies_host(&w[1]));
        for (b, (u0, u1)) in e0.iter().zip(&e1).enumerate() {
            prop_assert!(u1 <= u0, "step {k} sample {b}: energy {u0} -> {u1}");
        }
    }
    // And the trajectory is the exact linear recursion x_K = (1 − h·a)^K x_0.
    let last = states.last().unwrap();
    let exact: Vec<f64> =
        c.x0.iter()
            .enumerate()
            .map(|(j, &x)| {
                let r = 1.0 - s * inv_t * f64::from(c.curv[j % dim]);
                f64::from(x) * r.powi(c.steps as i32)
            })
            .collect();
    let e_exact: f64 = exact
        .iter()
        .enumerate()
        .map(|(j, &x)| 0.5 * f64::from(c.curv[j % dim]) * x * x)
        .sum();
    let (e0, ek) = (total_energy(&energy, &c.x0), total_energy(&energy, last));
    prop_assert!(
        (ek - e_exact).abs() <= 1e-4 * e_exact + 1e-6 * e0,
        "E_K = {ek}, exact {e_exact}, E_0 = {e0}"
    );
    Ok(())
}

/// Counter-check: above the bound (`s·λ_max/T = 2.5`, i.e. `r = −1.5`) the
/// same update increases the energy by `r² = 2.25` per step.
fn noiseless_langevin_above_the_stability_bound_increases_the_energy<B: Backend>(backend: &B) {
    let be = backend.clone();
    let (a, temperature) = (4.0f32, 0.5f32);
    let energy = DiagQuadratic::new(&be, &[2], vec![a, 0.1 * a]);
    // s·a/T = 2.5  →  s = 2.5·T/a.
    let eps = (2.0 * 2.5 * temperature / a).sqrt();
    let states = noiseless_trajectory(&be, &energy, &[1.0, 1.0], 1, 6, temperature, eps);
    let e: Vec<f64> = states.iter().map(|x| total_energy(&energy, x)).collect();
    for w in e.windows(2) {
        assert!(w[1] > w[0], "energy did not increase: {e:?}");
    }
    // The λ_max coordinate alone grows as 1.5^k.
    let x_last = f64::from(states.last().unwrap()[0]);
    assert!((x_last.abs() - 1.5f64.powi(6)).abs() < 1e-3, "{x_last}");
    // At exactly ratio 1.99 (just below 2) it still decreases.
    let eps = (2.0 * 1.99 * temperature / a).sqrt();
    let states = noiseless_trajectory(&be, &energy, &[1.0, 1.0], 1, 6, temperature, eps);
    let e: Vec<f64> = states.iter().map(|x| total_energy(&energy, x)).collect();
    assert!(e.windows(2).all(|w| w[1] <= w[0]), "{e:?}");
}

// ---------------------------------------------------------------------------
// 2./3. Stationary variance with noise.
//
// For `x ← (1 − a)x + εξ` from x_0 = 0, every coordinate of every chain is an
// independent N(0, v_n) with `v_n = ε²(1 − (1 − a)^{2n}) / (a(2 − a))`, and
// `v_∞ = ε²/(a(2 − a)) = P⁻¹/(1 − a/2)` where `a = (ε²/2)·P` and P is the
// precision of the target (`1/(Tσ²)` for the Gaussian energy, `1/σ_p²` for the
// residual prior — *not* divided by T — and their sum for both).
// The continuous-time answer P⁻¹ (= Tσ²) is off by the factor 1/(1 − a/2):
// +5.3 % at a = 0.1, +33 % at a = 0.5, +100 % at a = 1.
//
// Estimator: v̂ = (1/N) Σ x² over the N = chains·dim final values (mean known
// to be 0), whose sampling sd is exactly v·sqrt(2/N). With N = 65 536 (8192
// chains × 8; the tch instantiation uses 1024 chains, N = 8192, sd 1.6 %) that
// is 0.55 %; we assert |v̂ − v_n| ≤ 5·v_n·sqrt(2/N) (2.8 %), and |mean| ≤
// 5·sqrt(v_n/N). Burn-in n is chosen so that (1 − a)^{2n} < 1e-6 (and n ≥ 20);
// the exact v_n is used anyway.
// ---------------------------------------------------------------------------

const VAR_DIM: usize = 8;

fn burn_in(a: f64) -> usize {
    // (1 − a)^{2n} ≤ 1e-6.
    ((1e-6f64).ln() / (2.0 * (1.0 - a).abs().ln()))
        .ceil()
        .max(20.0) as usize
}

/// Runs the case and returns `(v̂, exact v_n, mean, n)`.
fn stationary_variance<B: Backend>(
    backend: &B,
    c: &GaussianCase,
    chains: usize,
) -> (f64, f64, f64, usize) {
    let be = backend.clone();
    let energy = match c.sigma_energy {
        Some(s) => DiagQuadratic::gaussian(&be, &[VAR_DIM], s),
        None => DiagQuadratic::zero(&be, &[VAR_DIM]),
    };
    let eps = c.eps();
    let sampler = residual_sampler(0, c.temperature, eps, true, None, c.sigma_prior);
    // The contraction as the sampler computes it in f32.
    let s = f64::from(eps * eps / 2.0);
    let g_coef = f64::from(energy.curvatures()[0]) * f64::from(1.0 / c.temperature)
        + 2.0 * f64::from(sampler.config.tau_res());
    let a = s * g_coef;
    let n = burn_in(a);
    let mut sampler = sampler;
    sampler.config.steps = n;
    let mut chains = Chains {
        z: None,
        y: be.zeros(&[chains, VAR_DIM]).unwrap(),
    };
    sampler
        .run(
            &be,
            &energy,
            None,
            &mut chains,
            &mut SeededNoise,
            key(c.seed),
            None,
        )
        .unwrap();
    let y = host(&be, &chains.y);
    let eps2 = f64::from(eps) * f64::from(eps);
    let v_n = eps2 * (1.0 - (1.0 - a).powi(2 * n as i32)) / (a * (2.0 - a));
    (mean_square(&y), v_n, mean(&y), n)
}

fn check_stationary_variance<B: Backend>(
    backend: &B,
    c: &GaussianCase,
    chains: usize,
) -> Result<(), TestCaseError> {
    let (v_hat, v_n, m, n) = stationary_variance(backend, c, chains);
    let big_n = (chains * VAR_DIM) as f64;
    let sd = v_n * (2.0 / big_n).sqrt();
    prop_assert!(
        (v_hat - v_n).abs() <= 5.0 * sd,
        "variance {v_hat:e} vs exact {v_n:e} (5σ = {:e}, n = {n}, continuous {:e})",
        5.0 * sd,
        1.0 / c.precision()
    );
    prop_assert!(
        m.abs() <= 5.0 * (v_n / big_n).sqrt(),
        "mean {m:e} (variance {v_n:e})"
    );
    Ok(())
}

/// The discretisation term matters and the test can see it: at a = 1 the
/// stationary variance is 2·Tσ², which the estimator separates from the
/// continuous-time Tσ² by 0.5/sqrt(2/N) sds (≈ 90σ with N = 65 536, 32σ with
/// 8192; we require 20); and a temperature-scaled prior (variance
/// T·σ_p²/(1 − a/2)) is rejected too.
fn stationary_variance_test_rejects_the_wrong_formulas<B: Backend>(be: &B, chains: usize) {
    let big_n = (chains * VAR_DIM) as f64;
    let c = GaussianCase {
        sigma_energy: Some(0.3),
        sigma_prior: None,
        temperature: 0.01,
        a: 1.0,
        seed: 7,
    };
    let (v_hat, v_n, _, _) = stationary_variance(be, &c, chains);
    let continuous = 1.0 / c.precision();
    let sd = v_n * (2.0 / big_n).sqrt();
    assert!((v_hat - v_n).abs() <= 5.0 * sd, "{v_hat} vs {v_n}");
    assert!(
        (v_n / continuous - 2.0).abs() < 1e-5,
        "{v_n} vs {continuous}"
    );
    assert!(
        (v_hat - continuous).abs() > 20.0 * sd,
        "could not tell {v_hat} from the continuous {continuous}"
    );
    let p = GaussianCase {
        sigma_energy: None,
        sigma_prior: Some(0.5),
        temperature: 4.0,
        a: 0.5,
        seed: 8,
    };
    let (v_hat, v_n, _, _) = stationary_variance(be, &p, chains);
    let tempered = f64::from(p.temperature) * v_n;
    assert!((v_hat - v_n).abs() <= 5.0 * v_n * (2.0 / big_n).sqrt());
    assert!((v_hat - tempered).abs() > 0.5 * tempered);
}

// ---------------------------------------------------------------------------
// 4. Clipping.
// ---------------------------------------------------------------------------

/// Relative float slack for norms recomputed on the host (f32 sums of ≤ 32
/// squares, a scale and a division: a few ulps).
const NORM_RTOL: f64 = 1e-5;

fn check_fused_clip<B: Backend>(backend: &B, c: &ClipCase) -> Result<(), TestCaseError> {
    let be = backend.clone();
    let shape = [c.batch, c.dim];
    let mut s = be.from_host(&c.state, &shape).unwrap();
    let mut g = be.from_host(&c.g, &shape).unwrap();
    let mut norms = be.zeros(&[c.batch]).unwrap();
    let clip = c.max_drift / c.step;
    be.langevin_update(
        &mut s,
        &mut g,
        None,
        LangevinUpdate {
            step: c.step,
            noise_scale: 0.0,
            clip: Some(clip),
        },
        &mut norms,
    )
    .unwrap();
    let pre = row_norms(&c.g, c.dim);
    let post_g = host(&be, &g);
    let post = row_norms(&post_g, c.dim);
    let reported = host(&be, &norms);
    let s_new = host(&be, &s);
    for b in 0..c.batch {
        // The reported norm is the norm before clipping.
        prop_assert!(
            (f64::from(reported[b]) - pre[b]).abs() <= NORM_RTOL * pre[b],
            "row {b}: reported {} vs {}",
            reported[b],
            pre[b]
        );
        // Clipping never increases a norm, and the drift respects its maximum.
        prop_assert!(
            post[b] <= pre[b] * (1.0 + NORM_RTOL),
            "row {b}: {} > {}",
            post[b],
            pre[b]
        );
        let drift = f64::from(c.step) * post[b];
        prop_assert!(
            drift <= f64::from(c.max_drift) * (1.0 + NORM_RTOL),
            "row {b}: drift {drift} > max {}",
            c.max_drift
        );
        // The clipped gradient is the original scaled by min(1, c/‖g‖).
        let k = (f64::from(clip) / pre[b]).min(1.0);
        for j in 0..c.dim {
            let i = b * c.dim + j;
            let want = f64::from(c.g[i]) * k;
            prop_assert!(
                (f64::from(post_g[i]) - want).abs() <= NORM_RTOL * pre[b] * k + 1e-30,
                "row {b} elem {j}: {} vs {want}",
                post_g[i]
            );
            // And the state moved by exactly −s·clip(g) (one fused rounding).
            let moved = f64::from(c.state[i]) - f64::from(c.step) * f64::from(post_g[i]);
            prop_assert!(
                (f64::from(s_new[i]) - moved).abs()
                    <= 1e-6 * (moved.abs() + f64::from(c.state[i]).abs()) + 1e-12,
                "state {i}: {} vs {moved}",
                s_new[i]
            );
        }
        // Rows that needed no clipping (with margin for rounding) keep their norm.
        if pre[b] < f64::from(clip) * (1.0 - NORM_RTOL) {
            prop_assert!((post[b] - pre[b]).abs() <= NORM_RTOL * pre[b]);
        }
    }
    Ok(())
}

fn check_sampler_clip<B: Backend>(backend: &B, c: &SamplerClipCase) -> Result<(), TestCaseError> {
    let be = backend.clone();
    let energy = DiagQuadratic::isotropic(&be, &[c.dim], c.a);
    let sampler = residual_sampler(
        c.steps,
        c.temperature,
        c.eps,
        true,
        Some(c.max_drift),
        c.prior,
    );
    let s = f64::from(c.eps * c.eps / 2.0);
    let inv_t = 1.0 / c.temperature;
    let two_tau = 2.0 * sampler.config.tau_res();
    let mut chains = Chains {
        z: None,
        y: be.from_host(&c.y0, &[c.batch, c.dim]).unwrap(),
    };
    let mut prev = c.y0.clone();
    let mut failures = Vec::new();
    let mut record = |k: usize, g: Option<&B::Tensor>, ch: &Chains<B>| {
        let clipped = be.to_host(g.expect("residual moves")).unwrap();
        // The unclipped gradient at the previous state, as the sampler forms it.
        let raw: Vec<f32> = prev
            .iter()
            .map(|&y| c.a * y * inv_t + two_tau * y)
            .collect();
        let (pre, post) = (row_norms(&raw, c.dim), row_norms(&clipped, c.dim));
        for b in 0..c.batch {
            let drift = s * post[b];
            if drift > f64::from(c.max_drift) * (1.0 + NORM_RTOL) {
                failures.push(format!("step {k} row {b}: drift {drift} > {}", c.max_drift));
            }
            if post[b] > pre[b] * (1.0 + NORM_RTOL) {
                failures.push(format!(
                    "step {k} row {b}: norm grew {} -> {}",
                    pre[b], post[b]
                ));
            }
        }
        prev = be.to_host(&ch.y).unwrap();
    };
    let stats = sampler
        .run(
            &be,
            &energy,
            None,
            &mut chains,
            &mut SeededNoise,
            key(c.seed),
            Some(&mut record),
        )
        .unwrap();
    prop_assert!(failures.is_empty(), "{failures:?}");
    prop_assert!(stats.drift_norm_res <= f64::from(c.max_drift) * (1.0 + NORM_RTOL));
    prop_assert!(be.all_finite(&chains.y).unwrap());
    Ok(())
}

fn check_identity<B: Backend>(backend: &B, c: &IdentityCase) -> Result<(), TestCaseError> {
    let be = backend.clone();
    let dim = c.state.len() / c.batch;
    let shape = [c.batch, dim];
    let mut s = be.from_host(&c.state, &shape).unwrap();
    let mut g = be.from_host(&c.g, &shape).unwrap();
    let noise = c.noise.as_ref().map(|n| be.from_host(n, &shape).unwrap());
    let mut norms = be.zeros(&[c.batch]).unwrap();
    be.langevin_update(
        &mut s,
        &mut g,
        noise.as_ref(),
        LangevinUpdate {
            step: 0.0,
            noise_scale: 0.0,
            clip: c.clip,
        },
        &mut norms,
    )
    .unwrap();
    // Value equality (−0 and +0 may swap; nothing else may change).
    prop_assert_eq!(host(&be, &s), c.state.clone());
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Determinism across rayon thread counts and batch splits, with real
//    networks and a generator (joint latent + residual chains, noise, clipping).
// ---------------------------------------------------------------------------

struct Nets<B: BuildNets> {
    energy: Box<dyn Energy<B>>,
    generator: Box<dyn Generator<B>>,
}

fn joint_sampler(steps: usize) -> LangevinSampler {
    LangevinSampler::new(LangevinConfig {
        steps,
        temperature: 0.05,
        eps_res: 0.05,
        eps_latent: 0.1,
        update_res: true,
        update_latents: true,
        noise: true,
        clip_res: Some(0.02),
        clip_latent: Some(0.5),
        prior_sigma_res: Some(0.5),
        latent_prior: true,
        ..LangevinConfig::default()
    })
    .unwrap()
}

/// Fresh chains for global rows `offset .. offset + n` (addressed noise), then
/// K joint steps; returns the host `(z, y)`.
fn run_joint<B: BuildNets>(
    be: &B,
    nets: &Nets<B>,
    sampler: &LangevinSampler,
    seed: u64,
    offset: usize,
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut z = be
        .zeros(&hatebm_rs::backend::shape::batched(
            n,
            nets.generator.latent_shape(),
        ))
        .unwrap();
    be.fill_normal(
        &mut z,
        NoiseKey::new(seed, Stream::ChainInitLatent, [0, 0]).with_row_offset(offset as u64),
    )
    .unwrap();
    let mut y = be
        .zeros(&hatebm_rs::backend::shape::batched(
            n,
            nets.energy.sample_shape(),
        ))
        .unwrap();
    be.fill_normal(
        &mut y,
        NoiseKey::new(seed, Stream::ChainInitRes, [0, 0]).with_row_offset(offset as u64),
    )
    .unwrap();
    be.scale(&mut y, 0.1).unwrap();
    let mut chains = Chains { z: Some(z), y };
    sampler
        .run(
            be,
            nets.energy.as_ref(),
            Some(nets.generator.as_ref()),
            &mut chains,
            &mut SeededNoise,
            ChainKey {
                seed,
                iteration: 3,
                row_offset: offset as u64,
            },
            None,
        )
        .unwrap();
    (host(be, chains.z.as_ref().unwrap()), host(be, &chains.y))
}

fn check_determinism<B: BuildNets>(
    be: &B,
    nets: &Nets<B>,
    steps: usize,
    seed: u64,
    batch: usize,
    split: usize,
) -> Result<(), TestCaseError> {
    let sampler = joint_sampler(steps);
    let reference = with_threads(1, || run_joint(be, nets, &sampler, seed, 0, batch));
    prop_assert!(reference.1.iter().all(|v| v.is_finite()));
    for threads in [2, 3] {
        let again = with_threads(threads, || run_joint(be, nets, &sampler, seed, 0, batch));
        prop_assert!(
            bit_identical(&again.0, &reference.0) && bit_identical(&again.1, &reference.1),
            "{threads} threads differ from 1 thread"
        );
    }
    // Two batches [0, split) and [split, batch) with their row offsets.
    let (za, ya) = with_threads(2, || run_joint(be, nets, &sampler, seed, 0, split));
    let (zb, yb) = with_threads(2, || {
        run_joint(be, nets, &sampler, seed, split, batch - split)
    });
    let z: Vec<f32> = za.into_iter().chain(zb).collect();
    let y: Vec<f32> = ya.into_iter().chain(yb).collect();
    prop_assert!(
        bit_identical(&z, &reference.0) && bit_identical(&y, &reference.1),
        "split at {split} of {batch} differs from one batch"
    );
    // And a different seed gives different chains (the test can fail).
    let other = with_threads(1, || run_joint(be, nets, &sampler, seed ^ 1, 0, batch));
    prop_assert!(!bit_identical(&other.1, &reference.1));
    Ok(())
}

fn mlp_nets<B: BuildNets>(be: &B, seed: u64) -> Nets<B> {
    Nets {
        energy: be
            .build_energy(
                &EnergyArch::Mlp {
                    dims: vec![2, 32, 32, 1],
                },
                seed,
            )
            .unwrap(),
        generator: be
            .build_generator(
                &GeneratorArch::Mlp {
                    dims: vec![4, 32, 32, 2],
                },
                seed + 1,
            )
            .unwrap(),
    }
}

proptest! {
    #![proptest_config(cases(16))]

    #[test]
    fn mlp_chains_are_bit_identical_across_threads_and_batch_splits(
        (batch, split) in (2usize..40).prop_flat_map(|b| (Just(b), 1..b)),
        seed in any::<u64>(),
        steps in 1usize..6,
    ) {
        let be = CpuBackend::new();
        let nets = mlp_nets(&be, seed % 1000);
        check_determinism(&be, &nets, steps, seed, batch, split)?;
    }
}

/// The same with conv nets: an SN-GAN-32 energy (ngf 8) and an SN-GAN-32
/// generator (ngf 8, inference-mode batch norm).
#[test]
fn sngan_chains_are_bit_identical_across_threads_and_batch_splits() {
    let be = CpuBackend::new();
    let nets = Nets {
        energy: be
            .build_energy(
                &EnergyArch::Sngan {
                    res: 32,
                    nch: 3,
                    ngf: 8,
                },
                11,
            )
            .unwrap(),
        generator: be
            .build_generator(
                &GeneratorArch::Sngan {
                    res: 32,
                    nz: 16,
                    ngf: 8,
                    nch: 3,
                    out_factor: 2.0,
                },
                12,
            )
            .unwrap(),
    };
    check_determinism(&be, &nets, 2, 5, 6, 3).unwrap();
    check_determinism(&be, &nets, 1, 6, 5, 1).unwrap();
}

/// `energy` and `energy_grad_x` return bit-identical energies (the C ABI
/// documents it): the MLP (batches across its 128-row blocks) and an SN-GAN-32
/// energy on the CPU backend.
#[test]
fn energy_and_energy_grad_x_return_the_same_energies() {
    let be = CpuBackend::new();
    let nets: Vec<(Box<dyn Energy<CpuBackend>>, Vec<usize>)> = vec![
        (
            be.build_energy(
                &EnergyArch::Mlp {
                    dims: vec![2, 32, 32, 1],
                },
                3,
            )
            .unwrap(),
            vec![1, 4, 127, 300],
        ),
        (
            be.build_energy(
                &EnergyArch::Sngan {
                    res: 32,
                    nch: 1,
                    ngf: 8,
                },
                4,
            )
            .unwrap(),
            vec![1, 5],
        ),
    ];
    for (energy, batches) in &nets {
        let d: usize = energy.sample_shape().iter().product();
        for &b in batches {
            let x: Vec<f32> = (0..b * d)
                .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
                .collect();
            let mut shape = vec![b];
            shape.extend_from_slice(energy.sample_shape());
            let xt = be.from_host(&x, &shape).unwrap();
            let e = host(&be, &energy.energy(&xt).unwrap());
            let (e2, _) = energy.energy_grad_x(&xt).unwrap();
            assert!(
                bit_identical(&e, &host(&be, &e2)),
                "{}: batch {b}: energy and energy_grad_x differ",
                energy.describe()
            );
        }
    }
}

/// Whole training iterations are bit-identical across thread counts too: the
/// parameter gradients are reductions over the batch, and the CPU backend
/// fixes their order. Three synthesis iterations (MLP nets, bank, EMA) and
/// two cooperative iterations with SN-GAN-32 nets in batch-norm training mode,
/// on 1 and 3 threads: every weight, optimiser moment and bank row is equal.
#[test]
fn training_is_bit_identical_across_thread_counts() {
    use hatebm_rs::optim::AdamConfig;
    use hatebm_rs::train::{Mode, TrainConfig, Trainer, TrainerSettings};

    fn state(t: &Trainer<CpuBackend>) -> Vec<f32> {
        let be = t.be();
        let mut v: Vec<f32> = Vec::new();
        let mut put = |x: &<CpuBackend as Backend>::Tensor| v.extend(host(be, x));
        for p in t.energy().params().iter() {
            put(&p.value);
        }
        if let Some(g) = &t.generator() {
            for p in g.params().iter() {
                put(&p.value);
            }
        }
        let (ms, vs) = t.ebm_optimiser().moments();
        for m in ms.iter().chain(vs).flatten() {
            put(m);
        }
        for e in t.ebm_optimiser().ema().into_iter().flatten().flatten() {
            put(e);
        }
        if let Some(b) = &t.bank() {
            put(&b.x);
            if let Some(z) = &b.z {
                put(z);
            }
        }
        v
    }
    let run = |threads: usize, mode: Mode, conv: bool| {
        with_threads(threads, || {
            let be = CpuBackend::new();
            let (energy, generator, data) = if conv {
                let e = be
                    .build_energy(
                        &EnergyArch::Sngan {
                            res: 32,
                            nch: 3,
                            ngf: 8,
                        },
                        1,
                    )
                    .unwrap();
                let g = be
                    .build_generator(
                        &GeneratorArch::Sngan {
                            res: 32,
                            nz: 16,
                            ngf: 8,
                            nch: 3,
                            out_factor: 2.0,
                        },
                        2,
                    )
                    .unwrap();
                let mut d = be.zeros(&[6, 3, 32, 32]).unwrap();
                be.fill_normal(&mut d, NoiseKey::new(3, Stream::User, [0, 0]))
                    .unwrap();
                (e, g, d)
            } else {
                let nets = mlp_nets(&be, 1);
                let (pts, _) = hatebm_rs::data::ToyDistribution::ring8()
                    .sample_seeded(6, 3)
                    .unwrap();
                (
                    nets.energy,
                    nets.generator,
                    be.from_host(&pts, &[6, 2]).unwrap(),
                )
            };
            let settings = TrainerSettings::new(
                TrainConfig {
                    mode,
                    batch_size: 6,
                    bank_size: 12,
                    coop_latent_steps: 2,
                    coop_bn_training: conv,
                    ..TrainConfig::default()
                },
                LangevinConfig {
                    steps: 3,
                    temperature: 0.1,
                    eps_res: 0.05,
                    clip_res: Some(0.1),
                    ..LangevinConfig::default()
                },
                AdamConfig {
                    lr: 1e-3,
                    ema_decay: Some(0.9),
                    ..AdamConfig::default()
                },
                AdamConfig {
                    lr: 1e-3,
                    ..AdamConfig::default()
                },
                9,
            );
            let mut t =
                Trainer::new(be, settings, energy, Some(generator), &mut SeededNoise).unwrap();
            let iters = if conv { 2 } else { 3 };
            for _ in 0..iters {
                t.step(&data, &mut SeededNoise).unwrap();
            }
            state(&t)
        })
    };
    for (mode, conv) in [(Mode::Synthesis, false), (Mode::Cooperative, true)] {
        let one = run(1, mode, conv);
        assert!(one.iter().all(|v| v.is_finite()));
        let three = run(3, mode, conv);
        assert!(
            bit_identical(&one, &three),
            "{mode:?}: 1 vs 3 threads differ"
        );
    }
}

// ---------------------------------------------------------------------------
// 6. The bank.
// ---------------------------------------------------------------------------

fn check_bank<B: Backend>(backend: &B, c: &BankCase) -> Result<(), TestCaseError> {
    let be = backend.clone();
    let (n, b) = (c.capacity, c.batch);
    let fill = |stream_row: u64, rows: usize, dim: usize| -> Vec<f32> {
        let mut t = be.zeros(&[rows, dim]).unwrap();
        be.fill_normal(
            &mut t,
            NoiseKey::new(c.seed, Stream::User, [stream_row, dim as u64]),
        )
        .unwrap();
        host(&be, &t)
    };
    let (mut mz, mut mx) = (fill(0, n, c.zdim), fill(1, n, c.xdim));
    let mut bank = Bank::from_tensors(
        &be,
        Some(be.from_host(&mz, &[n, c.zdim]).unwrap()),
        be.from_host(&mx, &[n, c.xdim]).unwrap(),
        c.shard,
    )
    .unwrap();
    let mut noise = SeededNoise;
    for it in 0..c.iterations {
        let slots = bank.draw_slots(&mut noise, c.seed, it, b).unwrap();
        prop_assert_eq!(slots.len(), b);
        let mut sorted = slots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), b, "repeated slots {:?}", slots);
        prop_assert!(slots.iter().all(|&s| s < n));
        // Drawing again for the same iteration gives the same slots.
        prop_assert_eq!(&bank.draw_slots(&mut noise, c.seed, it, b).unwrap(), &slots);
        // Gather returns the mirror's rows.
        let (gz, gx) = bank.gather(&be, &slots).unwrap();
        let (gz, gx) = (host(&be, &gz.unwrap()), host(&be, &gx));
        for (i, &s) in slots.iter().enumerate() {
            prop_assert!(bit_identical(
                &gz[i * c.zdim..(i + 1) * c.zdim],
                &mz[s * c.zdim..(s + 1) * c.zdim]
            ));
            prop_assert!(bit_identical(
                &gx[i * c.xdim..(i + 1) * c.xdim],
                &mx[s * c.xdim..(s + 1) * c.xdim]
            ));
        }
        // Overwrite with new rows; mirror it.
        let (nz, nx) = (fill(2 + 2 * it, b, c.zdim), fill(3 + 2 * it, b, c.xdim));
        bank.overwrite(
            &be,
            &slots,
            Some(&be.from_host(&nz, &[b, c.zdim]).unwrap()),
            &be.from_host(&nx, &[b, c.xdim]).unwrap(),
        )
        .unwrap();
        for (i, &s) in slots.iter().enumerate() {
            mz[s * c.zdim..(s + 1) * c.zdim].copy_from_slice(&nz[i * c.zdim..(i + 1) * c.zdim]);
            mx[s * c.xdim..(s + 1) * c.xdim].copy_from_slice(&nx[i * c.xdim..(i + 1) * c.xdim]);
        }
        // Gather after overwrite returns exactly what was written ...
        let (gz, gx) = bank.gather(&be, &slots).unwrap();
        prop_assert!(bit_identical(&host(&be, &gz.unwrap()), &nz));
        prop_assert!(bit_identical(&host(&be, &gx), &nx));
        // ... and every other slot is untouched (the whole bank equals the mirror).
        prop_assert!(bit_identical(&host(&be, bank.z.as_ref().unwrap()), &mz));
        prop_assert!(bit_identical(&host(&be, &bank.x), &mx));
        prop_assert_eq!(bank.capacity(), n);
        prop_assert_eq!(be.shape(&bank.x), vec![n, c.xdim]);
        prop_assert_eq!(be.shape(bank.z.as_ref().unwrap()), vec![n, c.zdim]);
    }
    // Misuse is rejected and leaves the bank intact.
    prop_assert!(bank.draw_slots(&mut noise, c.seed, 0, n + 1).is_err());
    if b >= 2 {
        let dup: Vec<usize> = vec![0; b];
        let r = bank.overwrite(
            &be,
            &dup,
            Some(&be.zeros(&[b, c.zdim]).unwrap()),
            &be.zeros(&[b, c.xdim]).unwrap(),
        );
        prop_assert!(r.is_err());
    }
    let r = bank.overwrite(
        &be,
        &[0],
        Some(&be.zeros(&[1, c.zdim + 1]).unwrap()),
        &be.zeros(&[1, c.xdim]).unwrap(),
    );
    prop_assert!(r.is_err());
    prop_assert!(
        bank.overwrite(&be, &[0], None, &be.zeros(&[1, c.xdim]).unwrap())
            .is_err()
    );
    prop_assert!(bit_identical(&host(&be, bank.z.as_ref().unwrap()), &mz));
    prop_assert!(bit_identical(&host(&be, &bank.x), &mx));
    Ok(())
}

/// Slot draws are uniform: over I iterations of B draws from N slots each
/// slot's count is Binomial(I, B/N) (mean m, sd σ = sqrt(I·p(1 − p))). Every
/// count must be within 5σ of m, and the Pearson statistic
/// X = Σ (c_i − m)²/σ² — whose mean is N − 1 for draws without replacement
/// (the counts sum to I·B exactly) and whose sd is ≈ sqrt(2(N − 1)) — must be
/// within 5 sds of N − 1. The first-drawn slot (the order matters: the
/// generator update pairs bank rows with nothing else, but a biased order would
/// show a biased shuffle) must be uniform too.
#[test]
fn bank_slot_draws_are_uniform() {
    let be = CpuBackend::new();
    let (n, b, iters) = (40usize, 7usize, 4000u64);
    let bank = Bank::<CpuBackend>::from_tensors(&be, None, be.zeros(&[n, 1]).unwrap(), 2).unwrap();
    let mut counts = vec![0f64; n];
    let mut first = vec![0f64; n];
    for it in 0..iters {
        let slots = bank.draw_slots(&mut SeededNoise, 99, it, b).unwrap();
        for &s in &slots {
            counts[s] += 1.0;
        }
        first[slots[0]] += 1.0;
    }
    let p = b as f64 / n as f64;
    let (m, sd) = (iters as f64 * p, (iters as f64 * p * (1.0 - p)).sqrt());
    for (i, &c) in counts.iter().enumerate() {
        assert!((c - m).abs() <= 5.0 * sd, "slot {i}: {c} vs {m} ± {sd}");
    }
    let x: f64 = counts.iter().map(|c| (c - m).powi(2) / (sd * sd)).sum();
    let df = (n - 1) as f64;
    assert!(
        (x - df).abs() <= 5.0 * (2.0 * df).sqrt(),
        "X = {x}, df {df}"
    );
    // First position: Binomial(I, 1/N).
    let (m1, sd1) = (
        iters as f64 / n as f64,
        (iters as f64 / n as f64 * (1.0 - 1.0 / n as f64)).sqrt(),
    );
    for (i, &c) in first.iter().enumerate() {
        assert!((c - m1).abs() <= 5.0 * sd1, "first slot {i}: {c} vs {m1}");
    }
    // Different shards draw different slots for the same iteration.
    let other = Bank::<CpuBackend>::from_tensors(&be, None, be.zeros(&[n, 1]).unwrap(), 3).unwrap();
    let differ = (0..20u64)
        .filter(|&it| {
            bank.draw_slots(&mut SeededNoise, 99, it, b).unwrap()
                != other.draw_slots(&mut SeededNoise, 99, it, b).unwrap()
        })
        .count();
    assert!(differ >= 18, "shards share slot draws ({differ}/20 differ)");
}

/// A bank initialised from a generator holds `x = G(z)` row for row, with
/// `z ~ N(0, I)` drawn from the `BankInit` stream (checked statistically: mean
/// within 5·sqrt(1/N), variance within 5·sqrt(2/N) of 1).
fn bank_init_from_generator_holds_g_of_z<B: BuildNets>(backend: &B) {
    let be = backend.clone();
    let g = be
        .build_generator(
            &GeneratorArch::Mlp {
                dims: vec![3, 16, 2],
            },
            4,
        )
        .unwrap();
    let (cap, batch) = (1000usize, 64usize);
    let bank =
        Bank::init_from_generator(&be, g.as_ref(), cap, batch, 17, 0, &mut SeededNoise).unwrap();
    assert_eq!(bank.capacity(), cap);
    let z = bank.z.as_ref().unwrap();
    let gz = host(&be, &g.forward(z).unwrap());
    // Computed in batches of 64 but equal to one big forward pass: bit for bit
    // on the CPU backend (row results do not depend on the batch), within
    // float32 rounding on libtorch (whose kernels may).
    let bx = host(&be, &bank.x);
    if be.name() == "cpu" {
        assert!(bit_identical(&gz, &bx));
    } else {
        let scale = gz.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            gz.iter()
                .zip(&bx)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * scale)
        );
    }
    let zh = host(&be, z);
    let nn = zh.len() as f64;
    assert!(mean(&zh).abs() <= 5.0 / nn.sqrt(), "{}", mean(&zh));
    assert!((mean_square(&zh) - 1.0).abs() <= 5.0 * (2.0 / nn).sqrt());
}

// ---------------------------------------------------------------------------
// 8. The backend string.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn backend_spec_survives_display_and_parse(spec in backend_spec()) {
        let s = spec.to_string();
        let parsed: BackendSpec = s.parse().unwrap();
        prop_assert_eq!(parsed, spec);
        // Display is canonical: printing the parsed value gives the same string.
        prop_assert_eq!(parsed.to_string(), s);
    }

    #[test]
    fn backend_strings_parse_iff_they_follow_the_grammar(s in backend_string()) {
        match (s.parse::<BackendSpec>(), expected_spec(&s)) {
            (Ok(got), Some(want)) => {
                prop_assert_eq!(got, want);
                // FromStr → Display → FromStr.
                let again: BackendSpec = got.to_string().parse().unwrap();
                prop_assert_eq!(again, got);
            }
            (Err(e), None) => {
                let msg = e.to_string();
                prop_assert!(
                    matches!(e, hatebm_rs::Error::Config(_)) && msg.contains("accepted"),
                    "{msg}"
                );
            }
            (got, want) => prop_assert!(false, "{s:?}: parsed {got:?}, grammar says {want:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 9. A run configuration survives TOML save and load (what checkpoints store),
//    or is rejected by validation when TOML cannot hold one of its integers.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn config_survives_toml_save_and_load(cfg in run_config()) {
        let too_big = [cfg.seed, cfg.train.steps, cfg.sample.seed]
            .iter()
            .any(|&v| v > i64::MAX as u64);
        match cfg.validate() {
            Err(e) => prop_assert!(too_big, "a valid configuration was rejected: {e}"),
            Ok(()) => {
                prop_assert!(!too_big, "validation accepts a u64 beyond i64::MAX");
                let text = cfg.to_toml_string().unwrap();
                let back = hatebm_rs::config::Config::from_toml_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                prop_assert_eq!(back, cfg);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The backend-generic properties, instantiated per backend: `cpu::*` always,
// `tch::*` (libtorch on the CPU: an eighth of the cases and 1024 instead of
// 8192 chains in the variance tests — libtorch's per-op overhead on small
// tensors makes them ~100× slower) with the `tch` feature.
// The CPU-only ones above are contracts of the CPU backend (rayon thread
// counts) or backend-independent (host-side slot draws, the backend string).
// ---------------------------------------------------------------------------

macro_rules! backend_properties {
    ($module:ident, $backend:expr, $divisor:expr, $chains:expr) => {
        mod $module {
            use super::*;

            fn be() -> impl BuildNets {
                $backend
            }

            proptest! {
                #![proptest_config(cases(64 / $divisor))]

                #[test]
                fn noiseless_langevin_descends_a_convex_quadratic_below_the_stability_bound(
                    c in quadratic_case()
                ) {
                    check_quadratic_descent(&be(), &c)?;
                }

                #[test]
                fn bank_keeps_capacity_draws_unique_slots_and_returns_what_was_written(
                    c in bank_case()
                ) {
                    check_bank(&be(), &c)?;
                }
            }

            proptest! {
                #![proptest_config(cases(24 / $divisor))]

                /// Gaussian energy ‖x‖²/(2σ²) at temperature T: variance
                /// Tσ²/(1 − a/2), a = ε²/(2Tσ²).
                #[test]
                fn noisy_langevin_on_a_gaussian_has_the_discretised_stationary_variance(
                    c in gaussian_energy_case()
                ) {
                    check_stationary_variance(&be(), &c, $chains)?;
                }

                /// Zero energy, residual prior σ_p, any T: variance σ_p²/(1 − a/2)
                /// with a = ε²/(2σ_p²) — the prior term is not divided by T.
                #[test]
                fn residual_prior_alone_has_the_untempered_stationary_variance(
                    c in prior_only_case()
                ) {
                    check_stationary_variance(&be(), &c, $chains)?;
                }

                /// Both: the precisions 1/(Tσ_e²) and 1/σ_p² add.
                #[test]
                fn gaussian_energy_and_prior_precisions_add(c in energy_and_prior_case()) {
                    check_stationary_variance(&be(), &c, $chains)?;
                }
            }

            proptest! {
                #![proptest_config(cases(128 / $divisor))]

                #[test]
                fn fused_update_clips_every_drift_to_its_maximum_and_never_grows_a_norm(
                    c in clip_case()
                ) {
                    check_fused_clip(&be(), &c)?;
                }

                #[test]
                fn sampler_clips_huge_gradients(c in sampler_clip_case()) {
                    check_sampler_clip(&be(), &c)?;
                }

                /// Step 0 and noise 0 is the identity (the config rejects ε = 0,
                /// so this is a property of the fused update itself).
                #[test]
                fn zero_step_and_zero_noise_leave_the_chains_unchanged(c in identity_case()) {
                    check_identity(&be(), &c)?;
                }
            }

            #[test]
            fn noiseless_langevin_above_the_stability_bound_increases_the_energy() {
                super::noiseless_langevin_above_the_stability_bound_increases_the_energy(&be());
            }

            #[test]
            fn stationary_variance_test_rejects_the_wrong_formulas() {
                super::stationary_variance_test_rejects_the_wrong_formulas(&be(), $chains);
            }

            #[test]
            fn bank_init_from_generator_holds_g_of_z() {
                super::bank_init_from_generator_holds_g_of_z(&be());
            }
        }
    };
}

backend_properties!(cpu, hatebm_rs::cpu::CpuBackend::new(), 1, 8192);
#[cfg(feature = "tch")]
backend_properties!(tch, hatebm_tch::TchBackend::cpu(), 8, 1024);
