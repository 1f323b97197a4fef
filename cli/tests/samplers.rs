//! `hatebm sample --sampler` and `hatebm ais` on a tiny trained run.

mod common;

use common::{bin, run_ok, scratch, tiny_digits_run};

#[test]
fn sample_with_mh_samplers_and_ais() {
    let d = scratch("samplers");
    let run = d.join("run");
    let ck = tiny_digits_run(&run, 2, 3);
    for method in ["mala", "hmc", "baoab", "ula"] {
        let res = bin()
            .args(["sample", "--n", "8", "--steps", "3", "--sampler", method])
            .arg("--checkpoint")
            .arg(&ck)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{method}: {stderr}");
        let reports = stderr.contains("acceptance");
        assert_eq!(
            reports,
            matches!(method, "mala" | "hmc"),
            "{method}: {stderr}"
        );
    }
    // Sampler settings on top of --sampler, checked by the config schema.
    let res = bin()
        .args(["sample", "--n", "8", "--steps", "12", "--sampler", "hmc"])
        .args([
            "--set",
            "langevin.adapt_steps=8",
            "--set",
            "langevin.adapt_mass=true",
        ])
        .arg("--checkpoint")
        .arg(&ck)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    for (set, want) in [
        ("langevin.adapt_mass=true", "adapt_mass"),
        ("langevin.leapfrog_step=3", "leapfrog_steps"),
        ("train.steps=3", "sampler settings only"),
        ("langevin.adapt_steps", "langevin.KEY=VALUE"),
    ] {
        let res = bin()
            .args([
                "sample",
                "--n",
                "8",
                "--sampler",
                "hmc",
                "--set",
                set,
                "--checkpoint",
            ])
            .arg(&ck)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "{set} was accepted");
        assert!(stderr.contains(want), "{set}: {stderr}");
    }
    let res = bin()
        .args(["sample", "--n", "8", "--sampler", "hcm", "--checkpoint"])
        .arg(&ck)
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("ula, mala, hmc, baoab"));
    let out = d.join("ais");
    run_ok(
        bin()
            .args([
                "ais",
                "--chains",
                "16",
                "--temperatures",
                "10",
                "--checkpoint",
            ])
            .arg(&ck)
            .arg("--out")
            .arg(&out),
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ais.json")).unwrap()).unwrap();
    assert!(v["log_z"].as_f64().unwrap().is_finite());
    let ess = v["ess"].as_f64().unwrap();
    assert!((1.0..=16.0 + 1e-9).contains(&ess), "ess {ess}");
    let res = bin()
        .args(["ais", "--method", "baoab", "--checkpoint"])
        .arg(&ck)
        .output()
        .unwrap();
    assert!(!res.status.success(), "baoab is not an MH transition");
    let _ = std::fs::remove_dir_all(&d);
}
