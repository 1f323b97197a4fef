//! Every network golden (`energy_*`, `gen_*`): outputs, input gradients, every
//! parameter gradient and the generator VJPs, at the golden README tolerances,
//! on every compiled-in backend.

use hatebm_rs::nets::BuildNets;
use hatebm_rs::params::Grads;
use hatebm_tests::{Golden, assert_close, backend_tests, energy_arch, generator_arch, tol};

fn check_energy<B: BuildNets>(be: &B, name: &str) {
    let g = Golden::load(name);
    let arch = energy_arch(&g.config, "");
    let mut net = be.build_energy(&arch, 0).unwrap();
    net.params_mut()
        .load_host(be, &g.prefixed("param."))
        .unwrap();
    let (xs, xd) = g.t("input.x");
    let x = be.from_host(&xd, &xs).unwrap();
    let batch = xs[0];

    let e = be.to_host(&net.energy(&x).unwrap()).unwrap();
    assert_close(
        &format!("{name} energy"),
        &e,
        &g.t("output.energy").1,
        tol::VALUE,
        0.0,
    );

    let (e2, gx) = net.energy_grad_x(&x).unwrap();
    assert_close(
        &format!("{name} energy (grad pass)"),
        &be.to_host(&e2).unwrap(),
        &g.t("output.energy").1,
        tol::VALUE,
        0.0,
    );
    assert_close(
        &format!("{name} grad_x"),
        &be.to_host(&gx).unwrap(),
        &g.t("output.grad_x").1,
        tol::GRAD,
        0.0,
    );

    let mut grads = Grads::zeros_like(be, net.params()).unwrap();
    net.energy_grad_params(&x, &vec![1.0; batch], &mut grads)
        .unwrap();
    let mut checked = 0;
    for (i, p) in net.params().iter().enumerate() {
        let Some(gt) = grads.get(i) else { continue };
        let exp = g.t(&format!("grad.{}", p.spec.name)).1;
        assert_close(
            &format!("{name} grad.{}", p.spec.name),
            &be.to_host(gt).unwrap(),
            &exp,
            tol::GRAD,
            0.0,
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        g.prefixed("grad.").len(),
        "{name}: every golden parameter gradient is checked"
    );
}

fn check_generator<B: BuildNets>(be: &B, name: &str) {
    let g = Golden::load(name);
    let arch = generator_arch(&g.config, "");
    let mut net = be.build_generator(&arch, 0).unwrap();
    net.params_mut()
        .load_host(be, &g.prefixed("param."))
        .unwrap();
    let (zs, zd) = g.t("input.z");
    let z = be.from_host(&zd, &zs).unwrap();
    let (cs, cd) = g.t("input.cotangent");
    let cot = be.from_host(&cd, &cs).unwrap();

    let out = be.to_host(&net.forward(&z).unwrap()).unwrap();
    assert_close(
        &format!("{name} G(z)"),
        &out,
        &g.t("output.g").1,
        tol::VALUE,
        0.0,
    );

    let dz = be.to_host(&net.vjp_latent(&z, &cot).unwrap()).unwrap();
    assert_close(
        &format!("{name} vjp.z"),
        &dz,
        &g.t("vjp.z").1,
        tol::GRAD,
        0.0,
    );

    let mut grads = Grads::zeros_like(be, net.params()).unwrap();
    net.vjp_params(&z, &cot, &mut grads).unwrap();
    let mut checked = 0;
    for (i, p) in net.params().iter().enumerate() {
        let Some(gt) = grads.get(i) else { continue };
        let exp = g.t(&format!("vjp.{}", p.spec.name)).1;
        assert_close(
            &format!("{name} vjp.{}", p.spec.name),
            &be.to_host(gt).unwrap(),
            &exp,
            tol::GRAD,
            0.0,
        );
        checked += 1;
    }
    // vjp.z is stored under the same prefix.
    assert_eq!(
        checked + 1,
        g.prefixed("vjp.").len(),
        "{name}: every golden parameter VJP is checked"
    );
}

fn energy_mlp_small<B: BuildNets>(be: &B) {
    check_energy(be, "energy_mlp_small");
}
fn energy_mlp_wide<B: BuildNets>(be: &B) {
    check_energy(be, "energy_mlp_wide");
}
fn energy_ebm32_nch1<B: BuildNets>(be: &B) {
    check_energy(be, "energy_ebm32_nch1");
}
fn energy_ebm32_nch3<B: BuildNets>(be: &B) {
    check_energy(be, "energy_ebm32_nch3");
}
fn energy_ebm64<B: BuildNets>(be: &B) {
    check_energy(be, "energy_ebm64");
}
fn energy_ebm128<B: BuildNets>(be: &B) {
    check_energy(be, "energy_ebm128");
}
fn gen_mlp<B: BuildNets>(be: &B) {
    check_generator(be, "gen_mlp");
}
fn gen_sngan32<B: BuildNets>(be: &B) {
    check_generator(be, "gen_sngan32");
}
fn gen_sngan64<B: BuildNets>(be: &B) {
    check_generator(be, "gen_sngan64");
}
fn gen_sngan128<B: BuildNets>(be: &B) {
    check_generator(be, "gen_sngan128");
}
fn gen_decoder32<B: BuildNets>(be: &B) {
    check_generator(be, "gen_decoder32");
}

backend_tests!(
    energy_mlp_small,
    energy_mlp_wide,
    energy_ebm32_nch1,
    energy_ebm32_nch3,
    energy_ebm64,
    energy_ebm128,
    gen_mlp,
    gen_sngan32,
    gen_sngan64,
    gen_sngan128,
    gen_decoder32,
);
