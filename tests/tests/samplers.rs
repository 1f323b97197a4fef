//! Properties of the MH and kinetic samplers (`core/src/sampler/mh.rs`) on
//! Gaussian targets whose answers are known in closed form.
//!
//! Monte Carlo bounds: a variance estimated from `n` independent N(0, σ²)
//! draws has standard error `σ²·√(2/n)`; the tests allow 5 standard errors
//! (a false failure once in ~1.7 million runs per check), and choose ε so that
//! the unadjusted chain's bias is many times that bound.

mod common;

use common::{cases, key};
use hatebm_rs::backend::Backend;
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::noise::{NoiseKey, NoiseSource, ReplayNoise, SeededNoise, Stream};
use hatebm_rs::sampler::{ChainKey, Chains, LangevinConfig, LangevinSampler, Method};
use hatebm_tests::energies::DiagQuadratic;
use proptest::prelude::*;

const D: usize = 4;

/// A residual-only sampler at T = 1 with no clipping.
fn sampler(method: Method, steps: usize, eps: f32) -> LangevinConfig {
    LangevinConfig {
        steps,
        temperature: 1.0,
        eps_res: eps,
        clip_res: None,
        method,
        ..LangevinConfig::default()
    }
}

/// `b` chains of `N(0, σ²)` in `D` dims (the exact stationary law).
fn exact_start(be: &CpuBackend, b: usize, sigma: f32, seed: u64) -> Chains<CpuBackend> {
    let mut y = be.zeros(&[b, D]).unwrap();
    be.fill_normal(&mut y, NoiseKey::new(seed, Stream::User, [7, 7]))
        .unwrap();
    be.scale(&mut y, sigma).unwrap();
    Chains { z: None, y }
}

fn run(
    cfg: LangevinConfig,
    energy: &DiagQuadratic<CpuBackend>,
    chains: &mut Chains<CpuBackend>,
    noise: &mut dyn NoiseSource<CpuBackend>,
    seed: u64,
) -> hatebm_rs::sampler::LangevinStats {
    let be = CpuBackend::new();
    LangevinSampler::new(cfg)
        .unwrap()
        .run(&be, energy, None, chains, noise, key(seed), None)
        .unwrap()
}

fn variance(be: &CpuBackend, t: &<CpuBackend as Backend>::Tensor) -> f64 {
    let v = be.to_host(t).unwrap();
    v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / v.len() as f64
}

proptest! {
    #![proptest_config(cases(6))]

    /// With ε large enough that ULA's stationary variance σ²/(1 − ε²/(4σ²))
    /// is biased by ≥ 15 %, MALA and HMC started at the exact law keep the
    /// exact variance within 5 standard errors; ULA leaves it by more.
    #[test]
    fn mala_and_hmc_are_exact_where_ula_is_biased(seed in 0u64..1000, eps in 0.75f32..1.2) {
        let be = CpuBackend::new();
        let sigma = 1.0f32;
        let energy = DiagQuadratic::gaussian(&be, &[D], sigma);
        let (b, steps) = (3000, 60);
        let n = (b * D) as f64;
        let bound = 5.0 * (2.0 / n).sqrt();
        let ula_var = 1.0 / (1.0 - f64::from(eps * eps) / 4.0);
        prop_assert!(ula_var - 1.0 > 2.0 * bound, "test design: bias must dominate");
        for (method, name) in [(Method::Mala, "mala"), (Method::Hmc, "hmc"), (Method::Ula, "ula")] {
            let mut cfg = sampler(method, steps, eps);
            cfg.leapfrog_steps = 3;
            let mut chains = exact_start(&be, b, sigma, seed);
            run(cfg, &energy, &mut chains, &mut SeededNoise, seed);
            let v = variance(&be, &chains.y);
            if method == Method::Ula {
                // ULA at its own stationary variance (it relaxes in a few steps).
                prop_assert!((v - ula_var).abs() < bound * ula_var, "ula var {v} vs {ula_var}");
                prop_assert!(v - 1.0 > bound, "ula var {v} should be biased");
            } else {
                prop_assert!((v - 1.0).abs() < bound, "{name} var {v}, bound {bound}");
            }
        }
    }

    /// Acceptance tends to 1 as ε → 0 (MALA's rejection rate is O(ε³) here).
    #[test]
    fn acceptance_tends_to_one(seed in 0u64..1000) {
        let be = CpuBackend::new();
        let energy = DiagQuadratic::gaussian(&be, &[D], 1.0);
        let mut last = 0.0;
        for eps in [0.8f32, 0.2, 0.05, 0.01] {
            let mut chains = exact_start(&be, 500, 1.0, seed);
            let st = run(sampler(Method::Mala, 5, eps), &energy, &mut chains, &mut SeededNoise, seed);
            let a = st.mh.unwrap().alpha_res.unwrap();
            prop_assert!(a >= last - 1e-3, "acceptance {a} at ε = {eps} below {last}");
            last = a;
        }
        prop_assert!(last > 0.9995, "acceptance at ε = 0.01: {last}");
    }

    /// Leapfrog's energy error is O(ε²): over a fixed trajectory time (L·ε = 1),
    /// halving ε divides the mean |ΔH| by ≈ 4.
    #[test]
    fn hmc_energy_error_is_second_order(seed in 0u64..1000) {
        let be = CpuBackend::new();
        let energy = DiagQuadratic::gaussian(&be, &[D], 1.0);
        let mean_abs_de = |eps: f32, l: usize| {
            let mut cfg = sampler(Method::Hmc, 1, eps);
            cfg.leapfrog_steps = l;
            let mut chains = exact_start(&be, 4000, 1.0, seed);
            let st = run(cfg, &energy, &mut chains, &mut SeededNoise, seed);
            let de = st.mh.unwrap().energy_error;
            de.iter().map(|d| d.abs()).sum::<f64>() / de.len() as f64
        };
        let r = mean_abs_de(0.2, 5) / mean_abs_de(0.1, 10);
        prop_assert!((3.3..4.7).contains(&r), "|ΔH|(0.2)/|ΔH|(0.1) = {r}, expected ≈ 4");
    }
}

/// The stationary covariance of a linear map `s ← A s + w`, `w ~ N(0, Q)`
/// (2×2), by iterating `Σ ← AΣAᵀ + Q` to convergence.
fn lyapunov(a: [[f64; 2]; 2], q: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let mut s = [[0.0; 2]; 2];
    for _ in 0..100_000 {
        let mut n = q;
        for i in 0..2 {
            for j in 0..2 {
                for k in 0..2 {
                    for l in 0..2 {
                        n[i][j] += a[i][k] * s[k][l] * a[j][l];
                    }
                }
            }
        }
        s = n;
    }
    s
}

/// BAOAB on `U = x²/(2σ²)` (unit mass) is the linear map composed of its five
/// substeps; its stationary position variance (from the Lyapunov equation)
/// matches the empirical one within 5 standard errors.
#[test]
fn baoab_stationary_variance_matches_its_formula() {
    let be = CpuBackend::new();
    let (sigma, eps, gamma) = (1.0f64, 1.2f64, 0.7f64);
    // Substeps as 2×2 maps on (x, p): kick p ← p − (h/2)x/σ², drift x ← x + (h/2)p.
    let kick = [[1.0, 0.0], [-eps / 2.0 / (sigma * sigma), 1.0]];
    let drift = [[1.0, eps / 2.0], [0.0, 1.0]];
    let c1 = (-gamma * eps).exp();
    let ou = [[1.0, 0.0], [0.0, c1]];
    let mul = |a: [[f64; 2]; 2], b: [[f64; 2]; 2]| {
        let mut m = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                m[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
            }
        }
        m
    };
    // s' = K·D·(O s + w)·… : noise enters at O, then passes through D and K.
    let after_o = mul(kick, drift); // the map applied after the OU step
    let before_o = mul(drift, kick);
    let a = mul(after_o, mul(ou, before_o));
    let w = 1.0 - c1 * c1; // variance of the OU noise on p
    let m = after_o;
    let q = [
        [m[0][1] * m[0][1] * w, m[0][1] * m[1][1] * w],
        [m[1][1] * m[0][1] * w, m[1][1] * m[1][1] * w],
    ];
    let var_x = lyapunov(a, q)[0][0];
    let energy = DiagQuadratic::gaussian(&be, &[D], sigma as f32);
    let mut cfg = sampler(Method::Baoab, 80, eps as f32);
    cfg.friction = gamma as f32;
    let b = 3000;
    let mut chains = exact_start(&be, b, sigma as f32, 3);
    run(cfg, &energy, &mut chains, &mut SeededNoise, 3);
    let v = variance(&be, &chains.y);
    let bound = 5.0 * var_x * (2.0 / (b * D) as f64).sqrt();
    assert!(
        (v - var_x).abs() < bound,
        "BAOAB var {v} vs Lyapunov {var_x} (bound {bound})"
    );
}

/// Host-side MALA log-acceptance of the move `x → x'` on `U = Σ a x²/2`, T = 1,
/// no clipping, step ε (f64 throughout).
fn mala_log_alpha(a: &[f32], x: &[f32], xp: &[f32], eps: f64) -> f64 {
    let s = eps * eps / 2.0;
    let (mut u, mut up, mut fwd, mut rev) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..x.len() {
        let (ai, xi, xpi) = (f64::from(a[i]), f64::from(x[i]), f64::from(xp[i]));
        u += 0.5 * ai * xi * xi;
        up += 0.5 * ai * xpi * xpi;
        let f = xpi - xi + s * ai * xi;
        let r = xi - xpi + s * ai * xpi;
        fwd += f * f;
        rev += r * r;
    }
    u - up + (fwd - rev) / (2.0 * eps * eps)
}

/// The shadow monitor leaves the ULA chain unchanged to the bit and reports,
/// per chain, the MALA acceptance computed independently on the host.
#[test]
fn shadow_acceptance_equals_mala_acceptance() {
    let be = CpuBackend::new();
    let curv: Vec<f32> = (0..D).map(|i| 0.5 + i as f32 * 0.4).collect();
    let energy = DiagQuadratic::new(&be, &[D], curv.clone());
    let eps = 0.9f32;
    let start = exact_start(&be, 64, 1.0, 11);
    let x0 = be.to_host(&start.y).unwrap();
    let mut plain = start.clone();
    let st_plain = run(
        sampler(Method::Ula, 1, eps),
        &energy,
        &mut plain,
        &mut SeededNoise,
        5,
    );
    let mut shadow = start.clone();
    let mut cfg = sampler(Method::Ula, 1, eps);
    cfg.shadow_mh = true;
    let st = run(cfg, &energy, &mut shadow, &mut SeededNoise, 5);
    let x1 = be.to_host(&shadow.y).unwrap();
    assert_eq!(
        x1,
        be.to_host(&plain.y).unwrap(),
        "shadow changed the chain"
    );
    assert_eq!(st.energy_per_step, st_plain.energy_per_step);
    assert_eq!(st.drift_norm_res, st_plain.drift_norm_res);
    let mh = st.mh.unwrap();
    assert!(mh.accept_res.is_none(), "the shadow monitor never rejects");
    for (b, got) in mh.chain_alpha.iter().enumerate() {
        let r = b * D..(b + 1) * D;
        let want = mala_log_alpha(&curv, &x0[r.clone()], &x1[r], f64::from(eps))
            .min(0.0)
            .exp();
        assert!((got - want).abs() < 1e-4, "chain {b}: {got} vs {want}");
    }
    assert!(mh.suggested_eps_res.is_some());
}

/// Detailed balance of the MALA kernel, with clipping active (a non-linear
/// force): for pairs `(x, x')` on a 1-D grid, the proposal noise is chosen so
/// that the proposal lands on `x'`, and
/// `π(x)·q(x'|x)·α(x→x') = π(x')·q(x|x')·α(x'→x)`
/// with the library's α and a host-side q and π.
#[test]
fn mala_satisfies_detailed_balance_on_a_grid() {
    let be = CpuBackend::new();
    let a = 2.0f32;
    let energy = DiagQuadratic::isotropic(&be, &[1], a);
    let (eps, clip) = (0.8f32, 0.5f32);
    let s = f64::from(eps * eps / 2.0);
    let grid: Vec<f32> = (-6..=6).map(|i| i as f32 * 0.35).collect();
    // The force, clipped as the sampler does: (ε²/2)|F| ≤ clip.
    let force = |x: f64| {
        let g = f64::from(a) * x;
        let c = f64::from(clip) / s;
        if g.abs() > c { c * g.signum() } else { g }
    };
    let alpha_of = |x: f32, xp: f32| {
        let xi = (f64::from(xp) - f64::from(x) + s * force(f64::from(x))) / f64::from(eps);
        let mut noise = ReplayNoise::new();
        noise.insert(Stream::ChainNoiseRes, [0, 0], vec![1, 1], vec![xi as f32]);
        // The decision does not matter: α is reported either way.
        noise.insert(Stream::ChainAcceptRes, [0, 0], vec![1], vec![0.5]);
        let mut chains = Chains {
            z: None,
            y: be.from_host(&[x], &[1, 1]).unwrap(),
        };
        let mut cfg = sampler(Method::Mala, 1, eps);
        cfg.clip_res = Some(clip);
        let st = run(cfg, &energy, &mut chains, &mut noise, 0);
        st.mh.unwrap().chain_alpha[0]
    };
    let log_pi = |x: f64| -0.5 * f64::from(a) * x * x;
    let log_q = |to: f64, from: f64| {
        let d = to - from + s * force(from);
        -d * d / (2.0 * f64::from(eps * eps))
    };
    for &x in &grid {
        for &xp in &grid {
            if x == xp {
                continue;
            }
            let (xf, xpf) = (f64::from(x), f64::from(xp));
            let fwd = log_pi(xf) + log_q(xpf, xf) + alpha_of(x, xp).ln();
            let rev = log_pi(xpf) + log_q(xf, xpf) + alpha_of(xp, x).ln();
            assert!(
                (fwd - rev).abs() < 2e-3 * (1.0 + fwd.abs()),
                "x = {x}, x' = {xp}: {fwd} vs {rev}"
            );
        }
    }
}

/// Step-size adaptation reaches the target acceptance and then freezes ε.
#[test]
fn adaptation_reaches_the_target() {
    let be = CpuBackend::new();
    let energy = DiagQuadratic::gaussian(&be, &[D], 1.0);
    let mut cfg = sampler(Method::Mala, 300, 0.05);
    cfg.adapt_steps = 200;
    cfg.target_accept = 0.6;
    let mut chains = exact_start(&be, 400, 1.0, 9);
    let st = run(cfg.clone(), &energy, &mut chains, &mut SeededNoise, 9);
    let eps = st.mh.unwrap().eps_res as f32;
    assert!(eps > 0.3, "adapted ε = {eps} did not grow from 0.05");
    // A fresh run at the frozen ε accepts about the target.
    let mut fixed = sampler(Method::Mala, 50, eps);
    fixed.target_accept = 0.6;
    let mut chains = exact_start(&be, 400, 1.0, 10);
    let a = run(fixed, &energy, &mut chains, &mut SeededNoise, 10)
        .mh
        .unwrap()
        .alpha_res
        .unwrap();
    assert!((a - 0.6).abs() < 0.06, "acceptance at adapted ε: {a}");
}

/// The joint law of one coordinate pair `(z, y)` of the Hat EBM
/// `U = ½a(cz + y)² + ½z² + τy²` (T = 1): its precision matrix.
fn hat_precision(a: f64, c: f64, tau: f64) -> [[f64; 2]; 2] {
    [[a * c * c + 1.0, a * c], [a * c, a + 2.0 * tau]]
}

fn inv2(p: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let det = p[0][0] * p[1][1] - p[0][1] * p[1][0];
    [
        [p[1][1] / det, -p[0][1] / det],
        [-p[1][0] / det, p[0][0] / det],
    ]
}

/// Chains at the exact joint law `N(0, Σ)` of `(z, y)` (per coordinate).
fn exact_joint_start(
    be: &CpuBackend,
    b: usize,
    cov: [[f64; 2]; 2],
    seed: u64,
) -> Chains<CpuBackend> {
    let (l00, l10) = (cov[0][0].sqrt(), cov[1][0] / cov[0][0].sqrt());
    let l11 = (cov[1][1] - l10 * l10).sqrt();
    let mut n1 = be.zeros(&[b, D]).unwrap();
    be.fill_normal(&mut n1, NoiseKey::new(seed, Stream::User, [8, 1]))
        .unwrap();
    let mut n2 = be.zeros(&[b, D]).unwrap();
    be.fill_normal(&mut n2, NoiseKey::new(seed, Stream::User, [8, 2]))
        .unwrap();
    let (n1, n2) = (be.to_host(&n1).unwrap(), be.to_host(&n2).unwrap());
    let z: Vec<f32> = n1.iter().map(|&a| (l00 * f64::from(a)) as f32).collect();
    let y: Vec<f32> = n1
        .iter()
        .zip(&n2)
        .map(|(&a, &c)| (l10 * f64::from(a) + l11 * f64::from(c)) as f32)
        .collect();
    Chains {
        z: Some(be.from_host(&z, &[b, D]).unwrap()),
        y: be.from_host(&y, &[b, D]).unwrap(),
    }
}

/// Sample second moments `(E z², E y², E zy)` over chains and coordinates.
fn joint_moments(be: &CpuBackend, c: &Chains<CpuBackend>) -> [f64; 3] {
    let z = be.to_host(c.z.as_ref().unwrap()).unwrap();
    let y = be.to_host(&c.y).unwrap();
    let n = z.len() as f64;
    let m = |f: &dyn Fn(f64, f64) -> f64| {
        z.iter()
            .zip(&y)
            .map(|(&a, &b)| f(f64::from(a), f64::from(b)))
            .sum::<f64>()
            / n
    };
    [m(&|a, _| a * a), m(&|_, b| b * b), m(&|a, b| a * b)]
}

/// Both blocks of a Hat EBM with a linear generator, whose joint law is a
/// known Gaussian: MALA with block (Gibbs) proposals, MALA with the joint
/// proposal, and HMC keep the exact variances and covariance within 5
/// standard errors, where the unadjusted chain's stationary law (its linear
/// map's Lyapunov solution) is biased beyond that bound.
#[test]
fn joint_and_block_mala_are_exact_on_both_blocks() {
    use hatebm_tests::algo::GainGenerator;
    let be = CpuBackend::new();
    let (a, c, sigma) = (1.0f64, 1.0f64, 1.0f64);
    let tau = 1.0 / (2.0 * sigma * sigma);
    let p = hat_precision(a, c, tau);
    let cov = inv2(p);
    let energy = DiagQuadratic::isotropic(&be, &[D], a as f32);
    let generator = GainGenerator::new(&be, &[D], c as f32);
    let (eps_z, eps_y) = (0.9f64, 0.8f64);
    // The unadjusted sweep (z then y) as a linear map s' = M s + w.
    let (hz, hy) = (eps_z * eps_z / 2.0, eps_y * eps_y / 2.0);
    let m = [
        [1.0 - hz * p[0][0], -hz * p[0][1]],
        [
            -hy * p[1][0] * (1.0 - hz * p[0][0]),
            1.0 - hy * p[1][1] + hy * hz * p[1][0] * p[0][1],
        ],
    ];
    let q = [
        [eps_z * eps_z, -hy * p[1][0] * eps_z * eps_z],
        [
            -hy * p[1][0] * eps_z * eps_z,
            hy * hy * p[1][0] * p[1][0] * eps_z * eps_z + eps_y * eps_y,
        ],
    ];
    let ula = lyapunov(m, q);
    let (b, steps) = (3000, 40);
    let n = (b * D) as f64;
    // Standard errors of E z², E y² (v·√(2/n)) and of E zy (√((v_z v_y + c²)/n)).
    let se = [
        cov[0][0] * (2.0 / n).sqrt(),
        cov[1][1] * (2.0 / n).sqrt(),
        ((cov[0][0] * cov[1][1] + cov[0][1] * cov[0][1]) / n).sqrt(),
    ];
    let want = [cov[0][0], cov[1][1], cov[0][1]];
    let ula_want = [ula[0][0], ula[1][1], ula[0][1]];
    assert!(
        (0..3).any(|i| (ula_want[i] - want[i]).abs() > 10.0 * se[i]),
        "test design: ULA's bias must dominate ({ula_want:?} vs {want:?})"
    );
    let cfg = |method: Method, joint: bool| LangevinConfig {
        steps,
        temperature: 1.0,
        eps_res: eps_y as f32,
        eps_latent: eps_z as f32,
        update_latents: true,
        clip_res: None,
        prior_sigma_res: Some(sigma as f32),
        latent_prior: true,
        method,
        joint_proposal: joint,
        leapfrog_steps: 3,
        ..LangevinConfig::default()
    };
    for (method, joint, name) in [
        (Method::Mala, false, "block MALA"),
        (Method::Mala, true, "joint MALA"),
        (Method::Hmc, false, "HMC"),
        (Method::Ula, false, "ULA"),
    ] {
        let mut chains = exact_joint_start(&be, b, cov, 21);
        let st = LangevinSampler::new(cfg(method, joint))
            .unwrap()
            .run(
                &be,
                &energy,
                Some(&generator),
                &mut chains,
                &mut SeededNoise,
                key(21),
                None,
            )
            .unwrap();
        let got = joint_moments(&be, &chains);
        let target = if method == Method::Ula {
            ula_want
        } else {
            want
        };
        for i in 0..3 {
            // ULA relaxes to its own law within the 40 steps (its map's
            // spectral radius is < 0.6), so the same bound applies.
            assert!(
                (got[i] - target[i]).abs() < 5.0 * se[i],
                "{name}: moment {i} = {} vs {} (5 se = {})",
                got[i],
                target[i],
                5.0 * se[i]
            );
        }
        if joint {
            let mh = st.mh.unwrap();
            assert!(mh.alpha_latent.is_none(), "a joint move is one decision");
            let acc = mh.accept_res.unwrap();
            assert!((0.05..0.999).contains(&acc), "joint acceptance {acc}");
        }
    }
}

/// The joint proposal's acceptance is the host-computed MH ratio of the
/// two-block Gaussian move (one decision from both blocks' proposal terms).
#[test]
fn joint_proposal_acceptance_matches_the_host_formula() {
    use hatebm_tests::algo::GainGenerator;
    let be = CpuBackend::new();
    let (a, c, sigma) = (1.5f64, 0.7f64, 0.8f64);
    let tau = 1.0 / (2.0 * sigma * sigma);
    let p = hat_precision(a, c, tau);
    let energy = DiagQuadratic::isotropic(&be, &[D], a as f32);
    let generator = GainGenerator::new(&be, &[D], c as f32);
    let (eps_z, eps_y) = (0.7f64, 0.6f64);
    let b = 32;
    let start = exact_joint_start(&be, b, inv2(p), 5);
    let mut chains = start.clone();
    let st = LangevinSampler::new(LangevinConfig {
        steps: 1,
        temperature: 1.0,
        eps_res: eps_y as f32,
        eps_latent: eps_z as f32,
        update_latents: true,
        clip_res: None,
        prior_sigma_res: Some(sigma as f32),
        latent_prior: true,
        method: Method::Mala,
        joint_proposal: true,
        ..LangevinConfig::default()
    })
    .unwrap()
    .run(
        &be,
        &energy,
        Some(&generator),
        &mut chains,
        &mut SeededNoise,
        key(5),
        None,
    )
    .unwrap();
    // The proposals, from the same noise the sampler drew.
    let noise = |stream| {
        let mut t = be.zeros(&[b, D]).unwrap();
        SeededNoise
            .normal(&be, key(5).key(stream, 0), &mut t)
            .unwrap();
        be.to_host(&t).unwrap()
    };
    let (xz, xy) = (
        noise(Stream::ChainNoiseLatent),
        noise(Stream::ChainNoiseRes),
    );
    let (z0, y0) = (
        be.to_host(start.z.as_ref().unwrap()).unwrap(),
        be.to_host(&start.y).unwrap(),
    );
    let u = |z: f64, y: f64| 0.5 * (p[0][0] * z * z + 2.0 * p[0][1] * z * y + p[1][1] * y * y);
    let g = |z: f64, y: f64| (p[0][0] * z + p[0][1] * y, p[1][0] * z + p[1][1] * y);
    let (hz, hy) = (eps_z * eps_z / 2.0, eps_y * eps_y / 2.0);
    let mh = st.mh.unwrap();
    for chain in 0..b {
        let mut la = 0.0;
        for i in chain * D..(chain + 1) * D {
            let (z, y) = (f64::from(z0[i]), f64::from(y0[i]));
            let (gz, gy) = g(z, y);
            let zp = z - hz * gz + eps_z * f64::from(xz[i]);
            let yp = y - hy * gy + eps_y * f64::from(xy[i]);
            let (gzp, gyp) = g(zp, yp);
            let rz = z - zp + hz * gzp;
            let ry = y - yp + hy * gyp;
            let fz = zp - z + hz * gz;
            let fy = yp - y + hy * gy;
            la += u(z, y) - u(zp, yp)
                + (fz * fz - rz * rz) / (2.0 * eps_z * eps_z)
                + (fy * fy - ry * ry) / (2.0 * eps_y * eps_y);
        }
        let want = la.min(0.0).exp();
        let got = mh.chain_alpha[chain];
        assert!((got - want).abs() < 1e-4, "chain {chain}: {got} vs {want}");
    }
}

/// HMC's diagonal mass warm-up on an anisotropic Gaussian (standard
/// deviations 0.1 … 2): the adapted inverse masses are proportional to the
/// coordinates' variances (within 15 %: the estimate pools ≥ 2000 chains,
/// a relative standard error of about 3 %), the adapted step grows by more
/// than 3× over the scalar mass's (whitening removes the stiff direction's
/// limit; the analysis predicts ≈ 10×), and the chains keep the exact
/// variances within 5 standard errors.
#[test]
fn hmc_diagonal_mass_adapts_to_the_scales() {
    let be = CpuBackend::new();
    let sd = [0.1f64, 0.2, 1.0, 2.0];
    let curv: Vec<f32> = sd.iter().map(|s| (1.0 / (s * s)) as f32).collect();
    let energy = DiagQuadratic::new(&be, &[D], curv);
    let b = 2000;
    let start = || {
        let mut y = be.zeros(&[b, D]).unwrap();
        be.fill_normal(&mut y, NoiseKey::new(2, Stream::User, [3, 3]))
            .unwrap();
        let v: Vec<f32> = be
            .to_host(&y)
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, &x)| (f64::from(x) * sd[i % D]) as f32)
            .collect();
        Chains {
            z: None,
            y: be.from_host(&v, &[b, D]).unwrap(),
        }
    };
    let cfg = |adapt_mass: bool| {
        let mut c = sampler(Method::Hmc, 80, 0.05);
        c.leapfrog_steps = 4;
        c.adapt_steps = 60;
        c.target_accept = 0.8;
        c.adapt_mass = adapt_mass;
        c
    };
    let mut plain = start();
    let sp = run(cfg(false), &energy, &mut plain, &mut SeededNoise, 2)
        .mh
        .unwrap();
    let mut diag = start();
    let sd_run = run(cfg(true), &energy, &mut diag, &mut SeededNoise, 2)
        .mh
        .unwrap();
    assert!(sp.inv_mass_res.is_empty());
    let inv = &sd_run.inv_mass_res;
    assert_eq!(inv.len(), D);
    let var_mean = sd.iter().map(|s| s * s).sum::<f64>() / D as f64;
    let inv_mean = inv.iter().map(|&v| f64::from(v)).sum::<f64>() / D as f64;
    assert!(
        (inv_mean - 1.0).abs() < 1e-4,
        "mean inverse mass {inv_mean} (mass_res = 1)"
    );
    for i in 0..D {
        let want = sd[i] * sd[i] / var_mean;
        let got = f64::from(inv[i]);
        assert!(
            (got / want - 1.0).abs() < 0.15,
            "coordinate {i}: M⁻¹ {got} vs {want}"
        );
    }
    let ratio = sd_run.eps_res / sp.eps_res;
    assert!(
        ratio > 3.0,
        "adapted ε {} vs {} with the scalar mass",
        sd_run.eps_res,
        sp.eps_res
    );
    let y = be.to_host(&diag.y).unwrap();
    for i in 0..D {
        let v = (0..b).map(|r| f64::from(y[r * D + i]).powi(2)).sum::<f64>() / b as f64;
        let want = sd[i] * sd[i];
        let bound = 5.0 * want * (2.0 / b as f64).sqrt();
        assert!(
            (v - want).abs() < bound,
            "coordinate {i}: var {v} vs {want} (bound {bound})"
        );
    }
}

/// HMC with one leapfrog step and unit mass is MALA with the same noise: the
/// same chains and the same acceptance (to rounding).
#[test]
fn hmc_with_one_leapfrog_step_is_mala() {
    let be = CpuBackend::new();
    let energy = DiagQuadratic::new(&be, &[D], vec![0.7, 1.0, 1.6, 2.2]);
    let start = exact_start(&be, 200, 1.0, 4);
    let mut m = start.clone();
    let sm = run(
        sampler(Method::Mala, 10, 0.9),
        &energy,
        &mut m,
        &mut SeededNoise,
        4,
    );
    let mut h = start.clone();
    let mut cfg = sampler(Method::Hmc, 10, 0.9);
    cfg.leapfrog_steps = 1;
    let sh = run(cfg, &energy, &mut h, &mut SeededNoise, 4);
    // Same uniforms? MALA's residual moves and HMC both use ChainAcceptRes.
    let (ym, yh) = (be.to_host(&m.y).unwrap(), be.to_host(&h.y).unwrap());
    let max_diff = ym
        .iter()
        .zip(&yh)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "chains differ by {max_diff}");
    let (am, ah) = (
        sm.mh.unwrap().alpha_res.unwrap(),
        sh.mh.unwrap().alpha_res.unwrap(),
    );
    assert!((am - ah).abs() < 1e-4, "acceptance {am} vs {ah}");
}

/// Config checks: MH methods need noise; shadow only on ULA; adaptation only
/// for MALA/HMC; the joint proposal only for MALA; the mass warm-up only for
/// HMC with at least 8 warm-up steps; unknown method names are refused.
#[test]
fn sampler_config_is_checked() {
    let bad = [
        LangevinConfig {
            method: Method::Mala,
            noise: false,
            ..LangevinConfig::default()
        },
        LangevinConfig {
            method: Method::Hmc,
            shadow_mh: true,
            ..LangevinConfig::default()
        },
        LangevinConfig {
            adapt_steps: 5,
            ..LangevinConfig::default()
        },
        LangevinConfig {
            method: Method::Hmc,
            leapfrog_steps: 0,
            ..LangevinConfig::default()
        },
        LangevinConfig {
            method: Method::Baoab,
            friction: -1.0,
            ..LangevinConfig::default()
        },
        LangevinConfig {
            method: Method::Hmc,
            joint_proposal: true,
            ..LangevinConfig::default()
        },
        LangevinConfig {
            method: Method::Mala,
            adapt_steps: 20,
            adapt_mass: true,
            ..LangevinConfig::default()
        },
        LangevinConfig {
            method: Method::Hmc,
            adapt_steps: 4,
            adapt_mass: true,
            ..LangevinConfig::default()
        },
    ];
    for c in bad {
        assert!(LangevinSampler::new(c.clone()).is_err(), "accepted {c:?}");
    }
    assert!(Method::parse("hmcc").is_err());
    assert_eq!(Method::parse("mala").unwrap(), Method::Mala);
}

/// Joint chains (latent then residual) through an MLP Hat EBM: the shadow
/// monitor leaves the ULA chain bit-identical; MALA, HMC and BAOAB run on both
/// blocks, report probabilities in [0, 1] and keep finite states; MALA's
/// chains do not depend on the batch split (no adaptation).
#[test]
fn joint_blocks_through_a_generator() {
    use hatebm_rs::nets::{BuildNets, EnergyArch, GeneratorArch};
    let be = CpuBackend::new();
    let energy = be
        .build_energy(
            &EnergyArch::Mlp {
                dims: vec![2, 16, 1],
            },
            1,
        )
        .unwrap();
    let generator = be
        .build_generator(
            &GeneratorArch::Mlp {
                dims: vec![3, 16, 2],
            },
            2,
        )
        .unwrap();
    let b = 12;
    let start = || {
        let mut z = be.zeros(&[b, 3]).unwrap();
        be.fill_normal(&mut z, NoiseKey::new(1, Stream::User, [1, 0]))
            .unwrap();
        let mut y = be.zeros(&[b, 2]).unwrap();
        be.fill_normal(&mut y, NoiseKey::new(1, Stream::User, [2, 0]))
            .unwrap();
        be.scale(&mut y, 0.1).unwrap();
        Chains { z: Some(z), y }
    };
    let joint = |method: Method, shadow: bool| LangevinConfig {
        steps: 6,
        temperature: 0.5,
        eps_res: 0.05,
        eps_latent: 0.1,
        update_latents: true,
        clip_res: Some(0.01),
        latent_prior: true,
        method,
        shadow_mh: shadow,
        leapfrog_steps: 3,
        ..LangevinConfig::default()
    };
    let go = |cfg: LangevinConfig, chains: &mut Chains<CpuBackend>, row_offset: u64| {
        LangevinSampler::new(cfg)
            .unwrap()
            .run(
                &be,
                energy.as_ref(),
                Some(generator.as_ref()),
                chains,
                &mut SeededNoise,
                ChainKey {
                    seed: 3,
                    iteration: 1,
                    row_offset,
                },
                None,
            )
            .unwrap()
    };
    let (mut plain, mut shadow) = (start(), start());
    let sp = go(joint(Method::Ula, false), &mut plain, 0);
    let ss = go(joint(Method::Ula, true), &mut shadow, 0);
    assert_eq!(
        be.to_host(&plain.y).unwrap(),
        be.to_host(&shadow.y).unwrap()
    );
    assert_eq!(
        be.to_host(plain.z.as_ref().unwrap()).unwrap(),
        be.to_host(shadow.z.as_ref().unwrap()).unwrap()
    );
    assert_eq!(sp.energy_per_step, ss.energy_per_step);
    assert_eq!(
        (sp.drift_norm_latent, sp.clip_frac_res),
        (ss.drift_norm_latent, ss.clip_frac_res)
    );
    let mh = ss.mh.unwrap();
    assert!(mh.alpha_latent.is_some() && mh.alpha_res.is_some());
    for method in [Method::Mala, Method::Hmc, Method::Baoab] {
        let mut c = start();
        let st = go(joint(method, false), &mut c, 0);
        let y = be.to_host(&c.y).unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{method:?}");
        if let Some(mh) = st.mh {
            assert!(mh.chain_alpha.iter().all(|a| (0.0..=1.0).contains(a)));
        }
        if method == Method::Mala {
            // The same chains as two halves with their global row offsets.
            let full = start();
            let mut lo = Chains {
                z: Some(be.slice_rows(full.z.as_ref().unwrap(), 0, 5).unwrap()),
                y: be.slice_rows(&full.y, 0, 5).unwrap(),
            };
            let mut hi = Chains {
                z: Some(be.slice_rows(full.z.as_ref().unwrap(), 5, b - 5).unwrap()),
                y: be.slice_rows(&full.y, 5, b - 5).unwrap(),
            };
            go(joint(method, false), &mut lo, 0);
            go(joint(method, false), &mut hi, 5);
            let mut halves = be.to_host(&lo.y).unwrap();
            halves.extend(be.to_host(&hi.y).unwrap());
            assert_eq!(halves, y, "MALA depends on the batch split");
        }
    }
}

/// The sampler keys are config keys: they survive a TOML round trip, and a
/// misspelled method or key is refused.
#[test]
fn sampler_keys_round_trip_through_toml() {
    use hatebm_rs::config::Config;
    let mut cfg = Config::default();
    cfg.langevin.method = Method::Hmc;
    cfg.langevin.leapfrog_steps = 7;
    cfg.langevin.adapt_steps = 5;
    cfg.langevin.mass_res = 2.0;
    let text = cfg.to_toml_string().unwrap();
    assert!(text.contains("method = \"hmc\""), "{text}");
    let back = Config::from_toml_str(&text).unwrap();
    assert_eq!(back.langevin, cfg.langevin);
    let bad = text.replace("method = \"hmc\"", "method = \"hcm\"");
    assert!(Config::from_toml_str(&bad).is_err());
    let bad = text.replace("leapfrog_steps", "leapfrog_step");
    assert!(Config::from_toml_str(&bad).is_err());
}

/// A 2-D Gaussian mixture energy `H(x) = −log Σ_k w_k exp(−‖x − μ_k‖²/(2s²))`
/// (host arithmetic in f64), whose `Z = ∫e^{−H} = Σ_k w_k·2πs²` is known.
struct Mixture {
    be: CpuBackend,
    mu: Vec<[f64; 2]>,
    w: Vec<f64>,
    s: f64,
    none: hatebm_rs::params::ParamSet<CpuBackend>,
}

impl Mixture {
    fn eval(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (mut e, mut g) = (Vec::new(), Vec::new());
        for p in x.chunks(2) {
            let (px, py) = (f64::from(p[0]), f64::from(p[1]));
            let terms: Vec<f64> = self
                .mu
                .iter()
                .zip(&self.w)
                .map(|(m, w)| {
                    let d2 = (px - m[0]).powi(2) + (py - m[1]).powi(2);
                    w.ln() - d2 / (2.0 * self.s * self.s)
                })
                .collect();
            let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
            e.push(-(max + sum.ln()) as f32);
            let (mut gx, mut gy) = (0.0, 0.0);
            for (t, m) in terms.iter().zip(&self.mu) {
                let r = (t - max).exp() / sum;
                gx += r * (px - m[0]) / (self.s * self.s);
                gy += r * (py - m[1]) / (self.s * self.s);
            }
            g.push(gx as f32);
            g.push(gy as f32);
        }
        (e, g)
    }
}

impl hatebm_rs::model::Energy<CpuBackend> for Mixture {
    fn describe(&self) -> String {
        "Mixture".into()
    }
    fn sample_shape(&self) -> &[usize] {
        &[2]
    }
    fn energy(
        &self,
        x: &<CpuBackend as Backend>::Tensor,
    ) -> hatebm_rs::Result<<CpuBackend as Backend>::Tensor> {
        let (e, _) = self.eval(&self.be.to_host(x)?);
        self.be.from_host(&e, &[e.len()])
    }
    fn energy_grad_x(
        &self,
        x: &<CpuBackend as Backend>::Tensor,
    ) -> hatebm_rs::Result<(
        <CpuBackend as Backend>::Tensor,
        <CpuBackend as Backend>::Tensor,
    )> {
        let (e, g) = self.eval(&self.be.to_host(x)?);
        Ok((
            self.be.from_host(&e, &[e.len()])?,
            self.be.from_host(&g, &self.be.shape(x))?,
        ))
    }
    fn energy_grad_params(
        &self,
        _: &<CpuBackend as Backend>::Tensor,
        _: &[f32],
        _: &mut hatebm_rs::params::Grads<CpuBackend>,
    ) -> hatebm_rs::Result<<CpuBackend as Backend>::Tensor> {
        Err(hatebm_rs::Error::InvalidArgument("no parameters".into()))
    }
    fn params(&self) -> &hatebm_rs::params::ParamSet<CpuBackend> {
        &self.none
    }
    fn params_mut(&mut self) -> &mut hatebm_rs::params::ParamSet<CpuBackend> {
        &mut self.none
    }
}

/// AIS's log Z of a two-mode Gaussian mixture lies within 2 of its own
/// reported standard errors of the exact value in at least 90 % of 40 seeds
/// (measured: 38 of 40; the errors' spread, 0.031, matches the mean reported
/// se, 0.031)
/// (for an unbiased normal estimate, 95 %; AIS's log estimate is biased low
/// by about se²/2, small here).
#[test]
fn ais_log_z_is_within_its_reported_error() {
    use hatebm_rs::sampler::{AisConfig, ais};
    let be = CpuBackend::new();
    let m = Mixture {
        be,
        mu: vec![[-1.5, 0.0], [1.5, 0.5]],
        w: vec![0.3, 0.7],
        s: 0.6,
        none: hatebm_rs::params::ParamSet::init(&be, &[], 0).unwrap(),
    };
    let exact = (m.w.iter().sum::<f64>() * 2.0 * std::f64::consts::PI * m.s * m.s).ln();
    let seeds = 40;
    let mut inside = 0;
    for seed in 0..seeds {
        let r = ais(
            &be,
            &m,
            1.0,
            &AisConfig {
                temperatures: 100,
                chains: 200,
                base_sigma: 3.0,
                transitions: 3,
                eps: 0.6,
                leapfrog_steps: 5,
                seed,
                ..AisConfig::default()
            },
            &mut SeededNoise,
        )
        .unwrap();
        assert!(r.ess > 1.0 && r.ess <= 200.0 + 1e-9 && r.log_z_se > 0.0);
        assert!(r.mean_accept > 0.5, "acceptance {}", r.mean_accept);
        if (r.log_z - exact).abs() <= 2.0 * r.log_z_se {
            inside += 1;
        }
    }
    assert!(
        inside * 10 >= seeds * 9,
        "{inside} of {seeds} estimates within 2 se of log Z = {exact}"
    );
}
