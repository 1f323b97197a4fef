//! `hatebm ood`: a tiny trained run scores its held-out digits against the
//! OOD sets and writes `ood.json`.

mod common;

use common::{bin, run_ok, scratch, tiny_digits_run};

#[test]
fn ood_writes_aurocs_for_every_set() {
    let d = scratch("ood");
    let run = d.join("run");
    let ck = tiny_digits_run(&run, 3, 4);
    let out = d.join("ood");
    let res = bin()
        .args(["ood", "--n", "40", "--seed", "3", "--checkpoint"])
        .arg(&ck)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    let table = String::from_utf8_lossy(&res.stdout);
    assert!(table.contains("AUROC energy"), "{table}");
    let text = std::fs::read_to_string(out.join("ood.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["num_samples"], 40);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["use_ema"], true);
    assert_eq!(v["iteration"], 3);
    assert_eq!(v["data"], "digits/heldout");
    assert!(v["mean_energy_in"].as_f64().unwrap().is_finite());
    let sets = v["sets"].as_array().unwrap();
    let names: Vec<&str> = sets.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["uniform", "gaussian", "hflip", "invert", "upscale"]);
    for s in sets {
        for k in ["auroc_energy", "auroc_grad_norm"] {
            let a = s[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{k} = {a} in {s}");
        }
        for k in ["mean_energy", "mean_grad_norm"] {
            assert!(s[k].as_f64().unwrap().is_finite(), "{k} in {s}");
        }
    }
    // The same seed gives the same numbers; the raw weights other ones.
    let again = bin()
        .args(["ood", "--n", "40", "--seed", "3", "--checkpoint"])
        .arg(&ck)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(out.join("ood.json")).unwrap(), text);
    run_ok(
        bin()
            .args(["ood", "--n", "40", "--no-ema", "--checkpoint"])
            .arg(&ck),
    );
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("ood.json")).unwrap()).unwrap();
    assert_eq!(raw["use_ema"], false, "default folder: the checkpoint's");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ood_help_and_errors() {
    let out = bin().args(["ood", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--checkpoint") && text.contains("--no-ema"),
        "{text}"
    );
    let out = bin()
        .args(["ood", "--checkpoint", "/nonexistent/ck.safetensors"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ck.safetensors"), "{err}");
}
