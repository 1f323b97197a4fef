//! One config line swaps the backend, through the C ABI: the same short
//! training run with `backend = "cpu"` and `backend = "tch:cpu"` (when the tch
//! backend is compiled in) gives the same losses and samples within the
//! cross-backend tolerances of `docs/tch-backend.md`; without the feature,
//! `tch:cpu` is `HATEBM_BACKEND_UNAVAILABLE` with a message saying how to get it.

use std::ffi::{CStr, CString};
use std::ptr::null_mut;

use hatebm::config::*;
use hatebm::error::hatebm_last_error_message;
use hatebm::session::*;
use hatebm::status::*;

fn session(backend: &str, dir: &std::path::Path) -> (hatebm_status, *mut hatebm_session) {
    let settings = [
        ("preset", "digits".to_string()),
        ("backend", backend.to_string()),
        ("seed", "3".into()),
        ("train.batch_size", "16".into()),
        ("train.bank_size", "64".into()),
        ("langevin.steps", "5".into()),
        ("output.dir", format!("\"{}\"", dir.display())),
        ("output.progress", "never".into()),
    ];
    let mut cfg = null_mut();
    // SAFETY: valid out-pointers and NUL-terminated strings throughout.
    unsafe {
        assert_eq!(hatebm_config_new(&mut cfg), HATEBM_OK);
        for (k, v) in settings {
            let (k, v) = (CString::new(k).unwrap(), CString::new(v).unwrap());
            assert_eq!(hatebm_config_set(cfg, k.as_ptr(), v.as_ptr()), HATEBM_OK);
        }
        let mut s = null_mut();
        let st = hatebm_session_new(cfg, &mut s);
        hatebm_config_free(cfg);
        (st, s)
    }
}

fn train(s: *mut hatebm_session, steps: usize) -> Vec<f64> {
    let mut losses = Vec::new();
    for _ in 0..steps {
        // SAFETY: `s` is a live session; `stats` is a valid out-pointer.
        let mut stats: hatebm_step_stats = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { hatebm_session_step(s, &mut stats) }, HATEBM_OK);
        losses.push(stats.loss_ebm);
        losses.push(stats.loss_gen);
    }
    losses
}

fn samples(s: *mut hatebm_session) -> Vec<f32> {
    let mut p = hatebm_sample_default_params();
    p.n = 8;
    let mut out = vec![0.0f32; 8 * 64];
    // SAFETY: `out` has `out.len()` floats; `p` is a valid params struct.
    let st = unsafe { hatebm_session_sample(s, &p, out.as_mut_ptr(), out.len()) };
    assert_eq!(st, HATEBM_OK);
    out
}

#[test]
fn swapping_the_backend_line() {
    let dir = std::env::temp_dir().join(format!("hatebm-swap-{}", std::process::id()));
    let (st, cpu) = session("cpu", &dir.join("cpu"));
    assert_eq!(st, HATEBM_OK);
    let l_cpu = train(cpu, 5);
    let x_cpu = samples(cpu);
    let (st, tch) = session("tch:cpu", &dir.join("tch"));
    if cfg!(feature = "tch") {
        assert_eq!(st, HATEBM_OK);
        let l_tch = train(tch, 5);
        let x_tch = samples(tch);
        // Same initial weights and (portable) noise; only summation order differs.
        for (a, b) in l_cpu.iter().zip(&l_tch) {
            assert!(
                (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                "loss cpu {a} vs tch {b}"
            );
        }
        let scale = x_cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = x_cpu
            .iter()
            .zip(&x_tch)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-3 * scale,
            "samples differ by {err} (scale {scale})"
        );
        // SAFETY: live session, freed once.
        unsafe { hatebm_session_free(tch) };
    } else {
        assert_eq!(st, HATEBM_BACKEND_UNAVAILABLE);
        assert!(tch.is_null());
        // SAFETY: the message is a valid C string until the next call on this thread.
        let msg = unsafe { CStr::from_ptr(hatebm_last_error_message()) }
            .to_string_lossy()
            .into_owned();
        assert!(
            msg.contains("tch:cpu") && msg.contains("--features tch"),
            "{msg}"
        );
    }
    // SAFETY: live session, freed once.
    unsafe { hatebm_session_free(cpu) };
    let _ = std::fs::remove_dir_all(&dir);
}
