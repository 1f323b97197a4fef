//! Weights I/O: a PyTorch `state_dict` saved with `safetensors.torch.save_file`
//! (the golden files' `param.*` tensors, re-saved under plain names) loads
//! as-is; ours saves the same names and shapes; a missing, extra or mis-shaped
//! tensor is an error naming it; NaN is rejected; nothing changes on error.

use std::path::PathBuf;

use hatebm_rs::Backend;
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::nets::BuildNets;
use hatebm_rs::weights::{self, TensorFile};
use hatebm_tests::{Golden, energy_arch, generator_arch};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hatebm-wio-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn state_dicts_load_save_and_fail_clearly() {
    let be = CpuBackend::new();
    let dir = scratch("sd");
    let meta = Default::default();
    for (golden, is_energy) in [
        ("energy_ebm32_nch3", true),
        ("gen_sngan32", false),
        ("energy_mlp_small", true),
    ] {
        let g = Golden::load(golden);
        let state = g.prefixed("param.");
        let path = dir.join(format!("{golden}.safetensors"));
        weights::write(&path, &state, &meta).unwrap();
        let mut params = if is_energy {
            be.build_energy(&energy_arch(&g.config, ""), 0)
                .unwrap()
                .params()
                .clone()
        } else {
            be.build_generator(&generator_arch(&g.config, ""), 0)
                .unwrap()
                .params()
                .clone()
        };
        weights::load_params(&mut params, &be, &path, "").unwrap();
        // Round trip: what we save is the same state dict.
        let out = dir.join(format!("{golden}.out.safetensors"));
        weights::save_params(&params, &be, &out, &meta).unwrap();
        let mut a = TensorFile::read(&path).unwrap().with_prefix("");
        let mut b = TensorFile::read(&out).unwrap().with_prefix("");
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(a, b, "{golden}: saved state dict equals the loaded one");

        let victim = state[state.len() / 2].0.clone();
        let cases: Vec<(&str, Vec<hatebm_rs::params::HostTensor>, String)> = vec![
            (
                "missing",
                state.iter().filter(|t| t.0 != victim).cloned().collect(),
                victim.clone(),
            ),
            (
                "extra",
                state
                    .iter()
                    .cloned()
                    .chain([("bogus.weight".to_string(), vec![1], vec![0.0])])
                    .collect(),
                "bogus.weight".into(),
            ),
            (
                "misshaped",
                state
                    .iter()
                    .map(|t| {
                        if t.0 == victim {
                            (t.0.clone(), vec![t.2.len(), 1], t.2.clone())
                        } else {
                            t.clone()
                        }
                    })
                    .collect(),
                victim.clone(),
            ),
            (
                "nan",
                state
                    .iter()
                    .map(|t| {
                        let mut t = t.clone();
                        if t.0 == victim {
                            t.2[0] = f32::NAN;
                        }
                        t
                    })
                    .collect(),
                victim.clone(),
            ),
        ];
        for (what, tensors, name) in cases {
            let p = dir.join(format!("{golden}.{what}.safetensors"));
            weights::write(&p, &tensors, &meta).unwrap();
            let mut fresh = params.clone();
            for q in fresh.iter_mut() {
                q.value = be
                    .from_host(&vec![0.5; q.value.len()], &q.spec.shape)
                    .unwrap();
            }
            let before = fresh.to_host(&be).unwrap();
            let e = weights::load_params(&mut fresh, &be, &p, "")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&name),
                "{golden} {what}: error does not name `{name}`: {e}"
            );
            assert_eq!(
                fresh.to_host(&be).unwrap(),
                before,
                "{golden} {what}: nothing changes on error"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
