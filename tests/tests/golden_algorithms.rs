//! Algorithm goldens: `langevin_res`, `langevin_res_clipped`, `langevin_joint`,
//! `adam`, `train_step`, `train_step_mlp` — at the golden README tolerances, on
//! every compiled-in backend, with the stored noise replayed.

use hatebm_rs::backend::Backend;
use hatebm_rs::nets::BuildNets;
use hatebm_rs::noise::{ReplayNoise, SeededNoise, Stream};
use hatebm_rs::optim::{Adam, AdamConfig};
use hatebm_rs::params::{Grads, Init, ParamSet, ParamSpec};
use hatebm_rs::sampler::{ChainKey, Chains, LangevinSampler};
use hatebm_rs::train::Trainer;
use hatebm_tests::algo::{ConstGenerator, add_steps, langevin_config, trainer_settings};
use hatebm_tests::{Golden, assert_close, backend_tests, energy_arch, generator_arch, tol};

fn host<B: Backend>(be: &B, t: &B::Tensor) -> Vec<f32> {
    be.to_host(t).unwrap()
}

fn upload<B: Backend>(be: &B, g: &Golden, name: &str) -> B::Tensor {
    let (s, d) = g.t(name);
    be.from_host(&d, &s).unwrap()
}

/// Per-step checks of a Langevin golden: residuals, clipped gradients and
/// (joint) latents after every step, final images and the drift diagnostics.
fn check_langevin<B: BuildNets>(be: &B, name: &str) {
    let g = Golden::load(name);
    let joint = name == "langevin_joint";
    let (ebm_prefix, arch_prefix) = if joint {
        ("ebm.", "ebm_")
    } else {
        ("param.", "")
    };
    let arch = if joint {
        energy_arch(&g.config, "ebm_")
    } else {
        energy_arch(&g.config, arch_prefix)
    };
    let mut energy = be.build_energy(&arch, 0).unwrap();
    energy
        .params_mut()
        .load_host(be, &g.prefixed(ebm_prefix))
        .unwrap();
    let cfg = langevin_config(&g);
    let k_steps = cfg.steps;
    let sampler = LangevinSampler::new(cfg).unwrap();

    let mut noise = ReplayNoise::new();
    add_steps(&mut noise, &g, "input.noise_res", Stream::ChainNoiseRes);
    let generator: Box<dyn hatebm_rs::Generator<B>>;
    let mut chains;
    if joint {
        add_steps(
            &mut noise,
            &g,
            "input.noise_latent",
            Stream::ChainNoiseLatent,
        );
        let mut gen_net = be
            .build_generator(&generator_arch(&g.config, "gen_"), 0)
            .unwrap();
        gen_net
            .params_mut()
            .load_host(be, &g.prefixed("gen."))
            .unwrap();
        generator = gen_net;
        chains = Chains {
            z: Some(upload(be, &g, "input.z0")),
            y: upload(be, &g, "input.res0"),
        };
    } else {
        let base = upload(be, &g, "input.base");
        let batch = be.shape(&base)[0];
        generator = Box::new(ConstGenerator::new(be, base));
        chains = Chains {
            z: Some(be.zeros(&[batch, 1]).unwrap()),
            y: upload(be, &g, "input.res0"),
        };
    }

    let (res_exp, grad_exp) = (g.t("output.res").1, g.t("output.grad_res").1);
    let per = res_exp.len() / k_steps;
    let z_exp = if joint { Some(g.t("output.z").1) } else { None };
    let mut seen = 0;
    let mut record = |k: usize, grad: Option<&B::Tensor>, ch: &Chains<B>| {
        let sl = k * per..(k + 1) * per;
        assert_close(
            &format!("{name} res[{k}]"),
            &host(be, &ch.y),
            &res_exp[sl.clone()],
            tol::VALUE,
            0.0,
        );
        assert_close(
            &format!("{name} grad_res[{k}]"),
            &host(be, grad.unwrap()),
            &grad_exp[sl],
            tol::GRAD,
            0.0,
        );
        if let Some(ze) = &z_exp {
            let zp = ze.len() / k_steps;
            assert_close(
                &format!("{name} z[{k}]"),
                &host(be, ch.z.as_ref().unwrap()),
                &ze[k * zp..(k + 1) * zp],
                tol::VALUE,
                0.0,
            );
        }
        seen += 1;
    };
    let key = ChainKey {
        seed: 0,
        iteration: 0,
        row_offset: 0,
    };
    let stats = sampler
        .run(
            be,
            energy.as_ref(),
            Some(generator.as_ref()),
            &mut chains,
            &mut noise,
            key,
            Some(&mut record),
        )
        .unwrap();
    assert_eq!(seen, k_steps);
    let images = LangevinSampler::images(be, Some(generator.as_ref()), &chains).unwrap();
    assert_close(
        &format!("{name} images"),
        &host(be, &images),
        &g.t("output.images").1,
        tol::VALUE,
        0.0,
    );
    let dn = [stats.drift_norm_res as f32];
    assert_close(
        &format!("{name} grad_norm_res"),
        &dn,
        &g.t("output.grad_norm_res").1,
        tol::VALUE,
        0.0,
    );
    if joint {
        let dl = [stats.drift_norm_latent as f32];
        assert_close(
            &format!("{name} grad_norm_latent"),
            &dl,
            &g.t("output.grad_norm_latent").1,
            tol::VALUE,
            0.0,
        );
    }
    if name == "langevin_res_clipped" {
        assert!(
            stats.clip_frac_res > 0.0 && stats.clip_frac_res < 1.0,
            "some but not all samples clipped: {}",
            stats.clip_frac_res
        );
    } else if !joint {
        assert_eq!(
            stats.clip_frac_res, 0.0,
            "clipping is inactive at this max norm"
        );
    }
}

fn langevin_res<B: BuildNets>(be: &B) {
    check_langevin(be, "langevin_res");
}
fn langevin_res_clipped<B: BuildNets>(be: &B) {
    check_langevin(be, "langevin_res_clipped");
}
fn langevin_joint<B: BuildNets>(be: &B) {
    check_langevin(be, "langevin_joint");
}

/// Two Keras Adam steps with a MovingAverage on four tensors.
fn adam<B: BuildNets>(be: &B) {
    let g = Golden::load("adam");
    let names = ["a", "b", "c", "d"];
    let specs: Vec<ParamSpec> = names
        .iter()
        .map(|n| ParamSpec::trainable(*n, g.t(&format!("input.param.{n}")).0, Init::Zeros))
        .collect();
    let mut params = ParamSet::init(be, &specs, 0).unwrap();
    params.load_host(be, &g.prefixed("input.param.")).unwrap();
    let cfg = AdamConfig {
        lr: g.cf("lr") as f32,
        beta1: g.cf("beta1") as f32,
        beta2: g.cf("beta2") as f32,
        eps: g.cf("eps") as f32,
        clip_grad_norm: None,
        ema_decay: Some(g.cf("ema_decay") as f32),
        ema_warmup: false,
        lr_schedule: Vec::new(),
    };
    let mut opt = Adam::new(be, cfg, &params).unwrap();
    for step in 1..=2 {
        let mut grads = Grads::zeros_like(be, &params).unwrap();
        for (i, n) in names.iter().enumerate() {
            grads.tensors[i] = Some(upload(be, &g, &format!("input.grad{step}.{n}")));
        }
        opt.step(be, &mut params, &mut grads).unwrap();
        for (i, n) in names.iter().enumerate() {
            let pre = format!("output.step{step}");
            assert_close(
                &format!("adam {pre}.param.{n}"),
                &host(be, params.value(i)),
                &g.t(&format!("{pre}.param.{n}")).1,
                tol::VALUE,
                0.0,
            );
            assert_close(
                &format!("adam {pre}.m.{n}"),
                &host(be, opt.moments().0[i].as_ref().unwrap()),
                &g.t(&format!("{pre}.m.{n}")).1,
                tol::VALUE,
                0.0,
            );
            assert_close(
                &format!("adam {pre}.v.{n}"),
                &host(be, opt.moments().1[i].as_ref().unwrap()),
                &g.t(&format!("{pre}.v.{n}")).1,
                tol::VALUE,
                0.0,
            );
            let ema = opt.ema().unwrap()[i].as_ref().unwrap();
            assert_close(
                &format!("adam {pre}.ema.{n}"),
                &host(be, ema),
                &g.t(&format!("{pre}.ema.{n}")).1,
                tol::VALUE,
                0.0,
            );
        }
    }
}

/// One full conditional Hat EBM iteration (Algorithm 1) against the golden.
fn check_train_step<B: BuildNets>(be: &B, name: &str) {
    let g = Golden::load(name);
    let settings = trainer_settings(&g);
    let (ebm_lr, gen_lr) = (settings.ebm_optim.lr as f64, settings.gen_optim.lr as f64);
    let mut energy = be.build_energy(&energy_arch(&g.config, "ebm_"), 0).unwrap();
    energy
        .params_mut()
        .load_host(be, &g.prefixed("ebm."))
        .unwrap();
    let mut generator = be
        .build_generator(&generator_arch(&g.config, "gen_"), 0)
        .unwrap();
    generator
        .params_mut()
        .load_host(be, &g.prefixed("gen."))
        .unwrap();
    let mut trainer = Trainer::new(
        be.clone(),
        settings,
        energy,
        Some(generator),
        &mut SeededNoise,
    )
    .unwrap();
    // The golden's bank replaces the seeded one.
    let mut state = trainer.state();
    let bank = state.bank.as_mut().unwrap();
    bank.z = Some(upload(be, &g, "input.bank_z"));
    bank.x = upload(be, &g, "input.bank_x");
    trainer.restore(state).unwrap();
    trainer.set_keep_tensors(true);

    let mut noise = ReplayNoise::new();
    let put = |noise: &mut ReplayNoise, stream, name: &str| {
        let (s, d) = g.t(name);
        noise.insert(stream, [0, 0], s, d);
    };
    put(
        &mut noise,
        Stream::ChainInitLatent,
        "input.noise_init_latent",
    );
    put(&mut noise, Stream::ChainInitRes, "input.noise_init_res");
    put(&mut noise, Stream::DataJitter, "input.noise_data");
    add_steps(&mut noise, &g, "input.noise_res", Stream::ChainNoiseRes);
    noise.insert_indices(
        Stream::BankSlots,
        [0, 0],
        g.i64("input.indices").iter().map(|&i| i as usize).collect(),
    );

    let stats = trainer
        .step(&upload(be, &g, "input.data"), &mut noise)
        .unwrap();
    let last = trainer.last_tensors().unwrap();
    let v = tol::VALUE;
    assert_close(
        &format!("{name} z"),
        &host(be, last.z.as_ref().unwrap()),
        &g.t("output.z").1,
        v,
        0.0,
    );
    assert_close(
        &format!("{name} res"),
        &host(be, &last.y),
        &g.t("output.res").1,
        v,
        0.0,
    );
    assert_close(
        &format!("{name} x_pos"),
        &host(be, &last.x_pos),
        &g.t("output.x_pos").1,
        v,
        0.0,
    );
    assert_close(
        &format!("{name} x_neg"),
        &host(be, &last.x_neg),
        &g.t("output.x_neg").1,
        v,
        0.0,
    );
    assert_close(
        &format!("{name} loss_ebm"),
        &[stats.loss_ebm as f32],
        &g.t("output.loss_ebm").1,
        v,
        0.0,
    );
    assert_close(
        &format!("{name} loss_gen"),
        &[stats.loss_gen.unwrap() as f32],
        &g.t("output.loss_gen").1,
        v,
        0.0,
    );
    assert_close(
        &format!("{name} grad_norm_res"),
        &[stats.langevin.drift_norm_res as f32],
        &g.t("output.grad_norm_res").1,
        v,
        0.0,
    );
    let bank = trainer.bank().unwrap();
    assert_close(
        &format!("{name} bank_x"),
        &host(be, &bank.x),
        &g.t("output.bank_x").1,
        v,
        0.0,
    );
    assert_close(
        &format!("{name} bank_z"),
        &host(be, bank.z.as_ref().unwrap()),
        &g.t("output.bank_z").1,
        v,
        0.0,
    );

    // EBM and generator: gradients, weights, Adam moments and EMA after the step.
    let check_model =
        |what: &str, params: &ParamSet<B>, opt: &Adam<B>, grads: &Grads<B>, lr: f64| {
            let mut n = 0;
            for (i, p) in params.iter().enumerate() {
                let pn = &p.spec.name;
                let w_atol = 0.05 * lr;
                let exp_w = g.t(&format!("output.{what}.{pn}")).1;
                let wt = tol::WEIGHTS_AFTER_STEP;
                assert_close(
                    &format!("{name} {what}.{pn}"),
                    &host(be, &p.value),
                    &exp_w,
                    wt,
                    w_atol,
                );
                if !p.spec.trainable {
                    continue;
                }
                let gr = grads.get(i).unwrap();
                assert_close(
                    &format!("{name} {what}_grad.{pn}"),
                    &host(be, gr),
                    &g.t(&format!("output.{what}_grad.{pn}")).1,
                    tol::GRAD,
                    0.0,
                );
                let m = opt.moments().0[i].as_ref().unwrap();
                assert_close(
                    &format!("{name} {what}_adam_m.{pn}"),
                    &host(be, m),
                    &g.t(&format!("output.{what}_adam_m.{pn}")).1,
                    tol::GRAD,
                    0.0,
                );
                let vv = opt.moments().1[i].as_ref().unwrap();
                assert_close(
                    &format!("{name} {what}_adam_v.{pn}"),
                    &host(be, vv),
                    &g.t(&format!("output.{what}_adam_v.{pn}")).1,
                    tol::GRAD,
                    0.0,
                );
                let ema = opt.ema().unwrap()[i].as_ref().unwrap();
                assert_close(
                    &format!("{name} {what}_ema.{pn}"),
                    &host(be, ema),
                    &g.t(&format!("output.{what}_ema.{pn}")).1,
                    wt,
                    w_atol,
                );
                n += 1;
            }
            assert_eq!(
                n,
                g.prefixed(&format!("output.{what}_grad.")).len(),
                "{name}: every {what} gradient checked"
            );
        };
    check_model(
        "ebm",
        trainer.energy().params(),
        trainer.ebm_optimiser(),
        trainer.ebm_grads(),
        ebm_lr,
    );
    check_model(
        "gen",
        trainer.generator().unwrap().params(),
        trainer.gen_optimiser().unwrap(),
        trainer.gen_grads().unwrap(),
        gen_lr,
    );
}

fn train_step<B: BuildNets>(be: &B) {
    check_train_step(be, "train_step");
}
fn train_step_mlp<B: BuildNets>(be: &B) {
    check_train_step(be, "train_step_mlp");
}

backend_tests!(
    langevin_res,
    langevin_res_clipped,
    langevin_joint,
    adam,
    train_step,
    train_step_mlp
);
