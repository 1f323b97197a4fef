use super::*;
use crate::nets::{EnergyArch, GeneratorArch};
use crate::train::{GenUpdate, Mode};

#[test]
fn every_preset_parses_and_validates() {
    for name in presets::names() {
        let cfg = Config::from_toml_str(&format!("preset = \"{name}\""))
            .unwrap_or_else(|e| panic!("preset {name}: {e}"));
        assert_eq!(cfg.preset.as_deref(), Some(name));
        // Round trip through the canonical TOML (what checkpoints store).
        let again = Config::from_toml_str(&cfg.to_toml_string().unwrap()).unwrap();
        assert_eq!(again, cfg, "preset {name} survives save/load");
    }
}

/// One row of the paper's Appendix J table (DESIGN.md).
struct Row {
    preset: &'static str,
    steps: u64,
    batch: usize,
    data_eps: f32,
    ebm_lr: f32,
    ebm_clip: Option<f32>,
    eps_res: f32,
    eps_latent: Option<f32>,
    k: usize,
    temp: f32,
    bank: Option<usize>,
    gen_lr: Option<f32>,
    prior: Option<f32>,
}

#[test]
fn paper_presets_match_appendix_j() {
    let rows = [
        Row {
            preset: "celeba64_synth",
            steps: 50000,
            batch: 128,
            data_eps: 1e-3,
            ebm_lr: 1e-4,
            ebm_clip: None,
            eps_res: 5e-4,
            eps_latent: None,
            k: 50,
            temp: 1e-8,
            bank: Some(10000),
            gen_lr: Some(1e-4),
            prior: None,
        },
        Row {
            preset: "cifar10_synth",
            steps: 75000,
            batch: 128,
            data_eps: 1e-3,
            ebm_lr: 1e-4,
            ebm_clip: None,
            eps_res: 5e-4,
            eps_latent: None,
            k: 50,
            temp: 1e-3,
            bank: Some(10000),
            gen_lr: Some(1e-4),
            prior: None,
        },
        Row {
            preset: "imagenet128_synth",
            steps: 300000,
            batch: 128,
            data_eps: 1e-3,
            ebm_lr: 1e-4,
            ebm_clip: Some(50.0),
            eps_res: 5e-4,
            eps_latent: None,
            k: 50,
            temp: 1e-8,
            bank: Some(10000),
            gen_lr: Some(5e-5),
            prior: None,
        },
        Row {
            preset: "cifar10_retrofit",
            steps: 30000,
            batch: 128,
            data_eps: 1e-3,
            ebm_lr: 1e-4,
            ebm_clip: None,
            eps_res: 5e-4,
            eps_latent: Some(1e-3),
            k: 100,
            temp: 1e-3,
            bank: None,
            gen_lr: None,
            prior: Some(0.1),
        },
        Row {
            preset: "celeba64_refine",
            steps: 20000,
            batch: 128,
            data_eps: 1e-3,
            ebm_lr: 1e-5,
            ebm_clip: None,
            eps_res: 1e-4,
            eps_latent: Some(5e-3),
            k: 100,
            temp: 1e-6,
            bank: None,
            gen_lr: None,
            prior: None,
        },
        Row {
            preset: "cifar10_refine",
            steps: 20000,
            batch: 128,
            data_eps: 1e-3,
            ebm_lr: 1e-5,
            ebm_clip: None,
            eps_res: 1e-4,
            eps_latent: Some(5e-3),
            k: 250,
            temp: 1e-3,
            bank: None,
            gen_lr: None,
            prior: Some(0.25),
        },
    ];
    for r in rows {
        let c = Config::from_toml_str(&format!("preset = \"{}\"", r.preset)).unwrap();
        let p = r.preset;
        assert_eq!(c.train.steps, r.steps, "{p} steps");
        assert_eq!(c.train.batch_size, r.batch, "{p} batch");
        assert_eq!(c.train.data_epsilon, r.data_eps, "{p} data eps");
        assert_eq!(c.ebm_optim.lr, r.ebm_lr, "{p} ebm lr");
        assert_eq!(c.ebm_optim.clip_grad_norm, r.ebm_clip, "{p} ebm clip");
        assert_eq!(c.langevin.eps_res, r.eps_res, "{p} eps");
        assert_eq!(c.langevin.steps, r.k, "{p} K");
        assert_eq!(c.langevin.temperature, r.temp, "{p} T");
        assert_eq!(c.langevin.prior_sigma_res, r.prior, "{p} prior");
        assert_eq!(
            c.langevin.clip_res,
            Some(2.5),
            "{p}: the code's drift clip 2.5"
        );
        match r.eps_latent {
            Some(e) => {
                assert_eq!(c.langevin.eps_latent, e, "{p} latent eps");
                assert!(
                    matches!(c.train.mode, Mode::Retrofit | Mode::Refine),
                    "{p} is a joint mode"
                );
            }
            None => assert_eq!(c.train.mode, Mode::Synthesis, "{p} is synthesis"),
        }
        match (r.bank, r.gen_lr) {
            (Some(b), Some(g)) => {
                assert_eq!(c.train.bank_size, b, "{p} bank");
                assert_eq!(c.gen_optim.lr, g, "{p} gen lr");
                assert_eq!(c.train.gen_update, GenUpdate::Historical);
                assert_eq!(
                    c.train.gen_loss_factor, 1000.0,
                    "{p}: the code's generator loss factor"
                );
            }
            _ => assert!(
                c.model.pretrained_generator.is_some(),
                "{p} loads a pretrained generator"
            ),
        }
    }
    // ImageNet's step schedule.
    let c = Config::from_toml_str("preset = \"imagenet128_synth\"").unwrap();
    assert_eq!(c.ebm_optim.lr_at(0), 1e-4);
    assert_eq!(c.ebm_optim.lr_at(230_000), 1e-5);
    assert_eq!(c.gen_optim.lr_at(270_000), 1e-6);
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    let e = Config::from_toml_str("[langevin]\nstpes = 10\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stpes") && e.contains("did you mean `steps`"),
        "{e}"
    );
    let e = Config::from_toml_str("[langevin]\nmax_langevin_norm_res = 2.5\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("langevin.clip_res"), "{e}");
    let e = Config::from_toml_str("bakend = \"cpu\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `backend`"), "{e}");
    let e = Config::from_toml_str("[train]\nmode = \"synthesys\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `synthesis`"), "{e}");
    let e = Config::from_toml_str("preset = \"digit\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `digits`"), "{e}");
}

#[test]
fn out_of_range_values_state_the_range() {
    for (doc, needle) in [
        (
            "[langevin]\ntemperature = 0.0\n",
            "langevin.temperature must be finite and > 0",
        ),
        ("[langevin]\neps_res = -1.0\n", "langevin.eps_res"),
        ("[train]\nbatch_size = 0\n", "train.batch_size must be >= 1"),
        ("[train]\nrejuvenation = 1.5\n", "in [0, 1]"),
        (
            "[ebm_optim]\nbeta2 = 1.0\n",
            "ebm_optim.beta2 must be in [0, 1)",
        ),
        ("[eval]\nholdout_fraction = 1.0\n", "eval.holdout_fraction"),
        (
            "[model.energy]\nkind = \"sngan\"\nres = 48\nnch = 1\nngf = 8\n",
            "32, 64 or 128",
        ),
        ("backend = \"gpu\"\n", "accepted: cpu, tch:cpu"),
    ] {
        let e = Config::from_toml_str(doc).unwrap_err().to_string();
        assert!(e.contains(needle), "{doc:?}: {e}");
    }
}

#[test]
fn keys_set_one_by_one() {
    let mut b = ConfigBuilder::new();
    b.set("preset", "digits").unwrap();
    b.set("backend", "tch:cuda:0").unwrap();
    b.set("langevin.steps", "7").unwrap();
    b.set("train.gen_update", "current").unwrap();
    b.set("output.dir", "/tmp/x").unwrap();
    let c = b.build().unwrap();
    assert_eq!(c.backend, BackendSpec::TchCuda(0));
    assert_eq!(c.langevin.steps, 7);
    assert_eq!(c.train.gen_update, GenUpdate::Current);
    assert_eq!(c.output.dir, PathBuf::from("/tmp/x"));
    assert_eq!(
        c.model.energy,
        EnergyArch::Mlp {
            dims: vec![64, 256, 256, 1]
        },
        "preset values kept"
    );
    // Errors leave the builder unchanged.
    let before = b.document();
    let e = b.set("langevin.stepz", "3").unwrap_err().to_string();
    assert!(e.contains("did you mean `steps`"), "{e}");
    assert!(b.set("langevin.steps", "-3").is_err());
    assert!(b.set("langevin.temperature", "0").is_err());
    assert!(b.set("", "1").is_err());
    assert!(b.set("backend.x", "1").is_err());
    assert_eq!(b.document(), before);
    // Switching an architecture's kind replaces its keys.
    b.set("model.generator.kind", "sngan").unwrap_err();
    b.set(
        "model.generator",
        "{ kind = \"sngan\", res = 32, nz = 8, ngf = 8, nch = 1, out_factor = 2.0 }",
    )
    .unwrap();
    assert!(
        b.build().is_err(),
        "generator output [1,32,32] does not fit the MLP energy"
    );
    b.set(
        "model.energy",
        "{ kind = \"sngan\", res = 32, nch = 1, ngf = 8 }",
    )
    .unwrap();
    let c = b.build().unwrap();
    assert!(matches!(
        c.model.generator,
        Some(GeneratorArch::Sngan { nz: 8, .. })
    ));
}

#[test]
fn generator_less_modes_drop_the_default_generator() {
    let c = Config::from_toml_str("[train]\nmode = \"short_run\"\n").unwrap();
    assert!(c.model.generator.is_none());
    let e = Config::from_toml_str(
        "[train]\nmode = \"short_run\"\n[model.energy]\nkind = \"mlp\"\ndims = [2, 8, 1]\n[model.generator]\nkind = \"mlp\"\ndims = [2, 8, 2]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("has no generator"), "{e}");
    let e = Config::from_toml_str("[train]\nmode = \"refine\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pretrained_generator"), "{e}");
}

/// Issue 17, item 8: an error message is one line with one category prefix.
#[test]
fn config_errors_are_one_line_with_one_prefix() {
    for (k, v) in [
        ("backend", "cuda"),
        ("langevin.stpes", "3"),
        ("langevin.steps", "abc"),
        ("mcmc_temp", "3"),
        ("model.energy", "{ kind = \"mlp\", dims = \"x\" }"),
    ] {
        let mut b = ConfigBuilder::new();
        let e = b.set(k, v).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{k} = {v}: {e:?}");
        assert_eq!(e.matches("config error").count(), 1, "{k} = {v}: {e}");
    }
}

/// The mode decides which sampler blocks move (issue 10 item 3): the built
/// configuration holds the mode's values, a written value that agrees is
/// accepted, one that disagrees is an error naming the key and the mode —
/// never silently overwritten.
#[test]
fn sampler_blocks_follow_the_mode_and_conflicts_are_errors() {
    let build =
        |extra: &str| Config::from_toml_str(&format!("preset = \"cifar10_retrofit\"\n{extra}"));
    let c = build("").unwrap();
    assert_eq!(c.train.mode, Mode::Retrofit);
    assert!(c.langevin.update_latents && c.langevin.update_res);
    let c = build("[langevin]\nupdate_latents = true").unwrap();
    assert!(c.langevin.update_latents);
    let e = build("[langevin]\nupdate_latents = false")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("langevin.update_latents") && e.contains("retrofit"),
        "{e}"
    );
    let e = Config::from_toml_str("preset = \"digits\"\n[langevin]\nupdate_res = false")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("langevin.update_res") && e.contains("synthesis"),
        "{e}"
    );
    // The same rule through `--set` / `hatebm_config_set`, and through a
    // configuration built in Rust.
    let mut b = ConfigBuilder::new();
    b.set("preset", "\"digits\"").unwrap();
    b.set("langevin.update_latents", "true").unwrap_err();
    let mut c = Config::from_toml_str("preset = \"digits\"").unwrap();
    c.langevin.update_latents = true;
    assert!(c.validate().is_err());
}

/// A bad config file's error names the file as context and stays a config
/// error (its root), so its C status is `HATEBM_CONFIG` as before.
#[test]
fn a_config_file_error_names_the_file_and_keeps_its_kind() {
    let dir = std::env::temp_dir().join(format!("hatebm-cfgctx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.toml");
    std::fs::write(&path, "preset = \"toy2d\"\n[train]\nstepz = 5\n").unwrap();
    let e = Config::from_file(&path).unwrap_err();
    assert!(
        matches!(e.root(), Error::Config(m) if m.contains("stepz")),
        "{e:?}"
    );
    assert_eq!(e.contexts(), [format!("reading config {}", path.display())]);
    assert!(e.to_string().starts_with("reading config "), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
