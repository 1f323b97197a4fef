//! MALA and HMC goldens (`tests/golden/{mala,hmc}.safetensors`, made by
//! `bench/pytorch/make_sampler_goldens.py`: an independent float64 PyTorch
//! implementation of the equations in docs/samplers.md) on every compiled-in
//! backend, with the stored proposal noise and accept uniforms replayed.
//!
//! Tolerances: trajectories at the golden README's trajectory tolerance
//! (`tol::VALUE`, normwise 1e-5; measured on cpu: at most 1.6e-7). Every accept decision is
//! compared exactly: the generator repeated each draw until no `ln u` lies
//! within 0.05 of its `ln α` (recorded as `_min_decision_margin`), far above
//! float32's error in `ln α` here (the largest difference measured below is
//! printed by the test). Per-chain mean acceptances agree to 1e-3 (measured
//! on cpu: 3.3e-5 MALA, 4.8e-5 HMC).

use hatebm_rs::nets::BuildNets;
use hatebm_rs::noise::{ReplayNoise, Stream};
use hatebm_rs::sampler::{ChainKey, Chains, LangevinConfig, LangevinSampler, Method};
use hatebm_tests::algo::add_steps;
use hatebm_tests::{Golden, assert_close, backend_tests, energy_arch, tol};

fn check<B: BuildNets>(be: &B, name: &str) {
    let g = Golden::load(name);
    let mut energy = be.build_energy(&energy_arch(&g.config, ""), 0).unwrap();
    energy
        .params_mut()
        .load_host(be, &g.prefixed("param."))
        .unwrap();
    let tau = g.cf("tau_res");
    let cfg = LangevinConfig {
        steps: g.cu("steps"),
        temperature: g.cf("mcmc_temp") as f32,
        eps_res: g.cf("epsilon") as f32,
        clip_res: None,
        prior_sigma_res: Some((1.0 / (2.0 * tau)).sqrt() as f32),
        method: Method::parse(g.config["method"].as_str().unwrap()).unwrap(),
        leapfrog_steps: g.cu("leapfrog_steps"),
        mass_res: g.cf("mass") as f32,
        ..LangevinConfig::default()
    };
    assert!(g.cf("_min_decision_margin") > 0.05);
    let mut noise = ReplayNoise::new();
    add_steps(&mut noise, &g, "input.noise_res", Stream::ChainNoiseRes);
    add_steps(&mut noise, &g, "input.uniform_res", Stream::ChainAcceptRes);
    let (s0, y0) = g.t("input.y0");
    let mut chains = Chains {
        z: None,
        y: be.from_host(&y0, &s0).unwrap(),
    };
    let mut traj: Vec<Vec<f32>> = Vec::new();
    let mut rec = |_k: usize, _g: Option<&B::Tensor>, c: &Chains<B>| {
        traj.push(be.to_host(&c.y).unwrap());
    };
    let st = LangevinSampler::new(cfg.clone())
        .unwrap()
        .run(
            be,
            energy.as_ref(),
            None,
            &mut chains,
            &mut noise,
            ChainKey {
                seed: 0,
                iteration: 0,
                row_offset: 0,
            },
            Some(&mut rec),
        )
        .unwrap();
    let (_, exp_y) = g.t("output.y");
    let (_, accept) = g.t("output.accept");
    let (_, log_alpha) = g.t("output.log_alpha");
    let (k_steps, b) = (cfg.steps, s0[0]);
    let per = y0.len() / b;
    for k in 0..k_steps {
        let exp = &exp_y[k * y0.len()..(k + 1) * y0.len()];
        assert_close(
            &format!("{name} y after step {k}"),
            &traj[k],
            exp,
            tol::VALUE,
            0.0,
        );
        // Decisions: a rejected chain is left unchanged to the bit.
        let prev = if k == 0 { &y0 } else { &traj[k - 1] };
        for c in 0..b {
            let r = c * per..(c + 1) * per;
            let moved = traj[k][r.clone()] != prev[r];
            assert_eq!(
                moved,
                accept[k * b + c] == 1.0,
                "{name}: step {k} chain {c}: accept decision differs"
            );
        }
    }
    // Per-chain mean min(1, α) against the reference's ln α.
    let mh = st.mh.unwrap();
    let mut worst = 0.0f64;
    for c in 0..b {
        let want = (0..k_steps)
            .map(|k| f64::from(log_alpha[k * b + c]).min(0.0).exp())
            .sum::<f64>()
            / k_steps as f64;
        worst = worst.max((mh.chain_alpha[c] - want).abs());
    }
    eprintln!("{name}: worst per-chain acceptance error {worst:e}");
    assert!(worst < 1e-3, "{name}: acceptance error {worst}");
}

fn mala<B: BuildNets>(be: &B) {
    check(be, "mala");
}

fn hmc<B: BuildNets>(be: &B) {
    check(be, "hmc");
}

backend_tests!(mala, hmc);
