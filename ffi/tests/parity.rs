//! Results through the C ABI are identical, bit for bit, to the Rust API's for
//! the same configuration and seed: training steps, sampling, the session's
//! Langevin sampler, checkpoint/resume, and the sampler on callback models
//! (a C-style callback energy vs the same energy written in Rust).

use std::ffi::{CString, c_int, c_void};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

use hatebm::config::*;
use hatebm::custom::*;
use hatebm::langevin::*;
use hatebm::session::*;
use hatebm::status::*;
use hatebm_rs::config::{Config, ConfigBuilder};
use hatebm_rs::cpu::{CpuBackend, CpuTensor};
use hatebm_rs::noise::SeededNoise;
use hatebm_rs::params::{Grads, ParamSet};
use hatebm_rs::runtime::AnyRun;
use hatebm_rs::sampler::{ChainKey, Chains, LangevinConfig, LangevinSampler};
use hatebm_rs::train::{SampleOptions, StepStats};
use hatebm_rs::{Backend, Energy};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hatebm-parity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small toy2d run (MLPs, 2-D points) that trains in milliseconds.
fn settings(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("preset", "toy2d".into()),
        ("seed", "11".into()),
        ("data.n", "512".into()),
        ("train.batch_size", "32".into()),
        ("train.bank_size", "128".into()),
        ("model.energy.dims", "[2, 32, 32, 1]".into()),
        ("model.generator.dims", "[2, 32, 32, 2]".into()),
        ("langevin.steps", "4".into()),
        ("ebm_optim.ema_decay", "0.9".into()),
        ("output.dir", format!("\"{}\"", dir.display())),
        ("output.progress", "never".into()),
    ]
}

fn rust_config(dir: &std::path::Path) -> Config {
    let mut b = ConfigBuilder::new();
    for (k, v) in settings(dir) {
        b.set(k, &v).unwrap();
    }
    b.build().unwrap()
}

struct CSession(*mut hatebm_session);

impl Drop for CSession {
    fn drop(&mut self) {
        // SAFETY: the handle came from hatebm_session_new/resume and is freed once.
        unsafe { hatebm_session_free(self.0) }
    }
}

fn c_session(dir: &std::path::Path) -> CSession {
    let mut cfg = null_mut();
    // SAFETY: valid out-pointers and NUL-terminated strings throughout.
    unsafe {
        assert_eq!(hatebm_config_new(&mut cfg), HATEBM_OK);
        for (k, v) in settings(dir) {
            let (k, v) = (CString::new(k).unwrap(), CString::new(v).unwrap());
            assert_eq!(hatebm_config_set(cfg, k.as_ptr(), v.as_ptr()), HATEBM_OK);
        }
        let mut s = null_mut();
        assert_eq!(hatebm_session_new(cfg, &mut s), HATEBM_OK);
        hatebm_config_free(cfg);
        CSession(s)
    }
}

fn same_stats(c: &hatebm_step_stats, r: &StepStats) {
    assert_eq!(c.iterations_done, r.iteration);
    assert_eq!(c.loss_ebm.to_bits(), r.loss_ebm.to_bits());
    assert_eq!(c.energy_pos.to_bits(), r.energy_pos.to_bits());
    assert_eq!(c.energy_neg.to_bits(), r.energy_neg.to_bits());
    assert_eq!(
        c.loss_gen.to_bits(),
        r.loss_gen.unwrap_or(f64::NAN).to_bits()
    );
    let l = hatebm_langevin_stats::from(&r.langevin);
    assert_eq!(c.langevin, l);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
#[allow(irrefutable_let_patterns)] // refutable with the tch feature
fn training_sampling_and_resume_match_the_rust_api() {
    let (dc, dr) = (temp_dir("c"), temp_dir("r"));
    let c = c_session(&dc);
    let mut r = AnyRun::new(rust_config(&dr)).unwrap();

    for _ in 0..3 {
        let mut cs = std::mem::MaybeUninit::<hatebm_step_stats>::zeroed();
        // SAFETY: live session; writable stats.
        let st = unsafe { hatebm_session_step(c.0, cs.as_mut_ptr()) };
        assert_eq!(st, HATEBM_OK);
        // SAFETY: written on HATEBM_OK.
        let cs = unsafe { cs.assume_init() };
        let rs = r.step().unwrap();
        same_stats(&cs, &rs);
    }

    // Sampling: 10 samples, EMA weights, 6 steps, batches of 4 (C) vs 10 (Rust).
    let mut p = hatebm_sample_default_params();
    p.n = 10;
    p.batch_size = 4;
    p.steps = 6;
    p.seed = 5;
    let mut out = vec![0f32; 20];
    // SAFETY: live session, valid params, 20 writable floats.
    let st = unsafe { hatebm_session_sample(c.0, &p, out.as_mut_ptr(), out.len()) };
    assert_eq!(st, HATEBM_OK);
    let (data, shape) = r
        .sample(&SampleOptions {
            n: 10,
            batch_size: 10,
            steps: Some(6),
            use_ema: true,
            seed: 5,
            clamp: true,
        })
        .unwrap();
    assert_eq!(shape, vec![10, 2]);
    assert_eq!(bits(&out), bits(&data));

    // The session's Langevin sampler vs the core sampler on the run's networks.
    let mut lp = std::mem::MaybeUninit::<hatebm_langevin_params>::zeroed();
    // SAFETY: live session; writable params.
    let st = unsafe { hatebm_session_langevin_params(c.0, lp.as_mut_ptr()) };
    assert_eq!(st, HATEBM_OK);
    // SAFETY: written on HATEBM_OK.
    let mut lp = unsafe { lp.assume_init() };
    lp.steps = 5;
    lp.row_offset = 3;
    let z0: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    let y0: Vec<f32> = (0..12).map(|i| (i as f32 * 0.11).cos() * 0.1).collect();
    let (mut zc, mut yc) = (z0.clone(), y0.clone());
    let mut ls = std::mem::MaybeUninit::<hatebm_langevin_stats>::zeroed();
    // SAFETY: buffers of the stated lengths; writable stats.
    let st = unsafe {
        hatebm_session_langevin(
            c.0,
            &lp,
            zc.as_mut_ptr(),
            12,
            yc.as_mut_ptr(),
            12,
            6,
            ls.as_mut_ptr(),
        )
    };
    assert_eq!(st, HATEBM_OK);
    let (cfg, key) = lp.to_core().unwrap();
    let (zr, yr, sr) = r
        .langevin(cfg.clone(), key, Some(&z0), &y0, 6, false)
        .unwrap();
    assert_eq!(bits(&zc), bits(&zr.unwrap()));
    assert_eq!(bits(&yc), bits(&yr));
    // SAFETY: written on HATEBM_OK.
    assert_eq!(unsafe { ls.assume_init() }, (&sr).into());
    // ... and vs the core sampler called directly.
    if let AnyRun::Cpu(run) = &r {
        let be = CpuBackend::new();
        let t = &run.trainer;
        let mut chains = Chains {
            z: Some(be.from_host(&z0, &[6, 2]).unwrap()),
            y: be.from_host(&y0, &[6, 2]).unwrap(),
        };
        LangevinSampler::new(cfg)
            .unwrap()
            .run(
                &be,
                t.energy(),
                t.generator(),
                &mut chains,
                &mut SeededNoise,
                key,
                None,
            )
            .unwrap();
        assert_eq!(bits(chains.y.as_slice()), bits(&yc));
    } else {
        panic!("expected the CPU backend");
    }

    // Checkpoint through C, resume through Rust (and C): the next step agrees.
    let ck = dc.join("ck.safetensors");
    let ckc = CString::new(ck.to_str().unwrap()).unwrap();
    // SAFETY: live session, NUL-terminated path.
    let st = unsafe { hatebm_session_save_checkpoint(c.0, ckc.as_ptr()) };
    assert_eq!(st, HATEBM_OK);
    let mut resumed = AnyRun::resume(&ck, None).unwrap();
    let mut rc = null_mut();
    // SAFETY: NUL-terminated path, NULL config, writable out.
    let st = unsafe { hatebm_session_resume(ckc.as_ptr(), null(), &mut rc) };
    assert_eq!(st, HATEBM_OK);
    let rc = CSession(rc);
    let a = resumed.step().unwrap();
    let b = r.step().unwrap();
    let mut cs = std::mem::MaybeUninit::<hatebm_step_stats>::zeroed();
    // SAFETY: live session; writable stats.
    let st = unsafe { hatebm_session_step(rc.0, cs.as_mut_ptr()) };
    assert_eq!(st, HATEBM_OK);
    // SAFETY: written on HATEBM_OK.
    let cs = unsafe { cs.assume_init() };
    same_stats(&cs, &a);
    same_stats(&cs, &b);

    let _ = std::fs::remove_dir_all(&dc);
    let _ = std::fs::remove_dir_all(&dr);
}

// ---------------------------------------------------------------------------
// Callback models: U(x) = 0.5 * sum_j a_j (x_j - m_j)^2, in C style and in Rust.
// ---------------------------------------------------------------------------

const A: [f32; 3] = [1.0, 2.0, 0.5];
const M: [f32; 3] = [0.5, -1.0, 2.0];

fn quad(x: &[f32], e: &mut [f32], g: Option<&mut [f32]>) {
    let mut g = g;
    for (b, row) in x.chunks(3).enumerate() {
        let mut s = 0.0f32;
        for j in 0..3 {
            let d = row[j] - M[j];
            s += 0.5 * A[j] * d * d;
            if let Some(g) = g.as_deref_mut() {
                g[b * 3 + j] = A[j] * d;
            }
        }
        e[b] = s;
    }
}

unsafe extern "C" fn c_energy(
    x: *const f32,
    n: usize,
    len: usize,
    out: *mut f32,
    _ud: *mut c_void,
) -> c_int {
    // SAFETY: the library passes n * len readable and n writable floats.
    let (x, e) = unsafe {
        (
            std::slice::from_raw_parts(x, n * len),
            std::slice::from_raw_parts_mut(out, n),
        )
    };
    quad(x, e, None);
    0
}

unsafe extern "C" fn c_grad(
    x: *const f32,
    n: usize,
    len: usize,
    out_e: *mut f32,
    out_g: *mut f32,
    ud: *mut c_void,
) -> c_int {
    // SAFETY: user_data is the call counter of this test.
    let calls = unsafe { &mut *ud.cast::<u32>() };
    *calls += 1;
    // SAFETY: the library passes buffers of the documented lengths.
    let (x, e, g) = unsafe {
        (
            std::slice::from_raw_parts(x, n * len),
            std::slice::from_raw_parts_mut(out_e, n),
            std::slice::from_raw_parts_mut(out_g, n * len),
        )
    };
    quad(x, e, Some(g));
    0
}

struct RustQuad {
    params: ParamSet<CpuBackend>,
}

impl Energy<CpuBackend> for RustQuad {
    fn describe(&self) -> String {
        "quad".into()
    }
    fn sample_shape(&self) -> &[usize] {
        &[3]
    }
    fn energy(&self, x: &CpuTensor) -> hatebm_rs::Result<CpuTensor> {
        let n = x.shape()[0];
        let mut e = vec![0.0; n];
        quad(x.as_slice(), &mut e, None);
        CpuTensor::from_vec(e, &[n])
    }
    fn energy_grad_x(&self, x: &CpuTensor) -> hatebm_rs::Result<(CpuTensor, CpuTensor)> {
        let n = x.shape()[0];
        let (mut e, mut g) = (vec![0.0; n], vec![0.0; x.len()]);
        quad(x.as_slice(), &mut e, Some(&mut g));
        Ok((
            CpuTensor::from_vec(e, &[n])?,
            CpuTensor::from_vec(g, x.shape())?,
        ))
    }
    fn energy_grad_params(
        &self,
        _: &CpuTensor,
        _: &[f32],
        _: &mut Grads<CpuBackend>,
    ) -> hatebm_rs::Result<CpuTensor> {
        unimplemented!()
    }
    fn params(&self) -> &ParamSet<CpuBackend> {
        &self.params
    }
    fn params_mut(&mut self) -> &mut ParamSet<CpuBackend> {
        &mut self.params
    }
}

#[test]
fn callback_sampler_matches_the_rust_sampler() {
    let mut calls = 0u32;
    let mut vt = hatebm_energy_default_vtable();
    vt.energy = Some(c_energy);
    vt.grad_x = Some(c_grad);
    let shape = [3usize];
    let mut e = null_mut();
    // SAFETY: valid vtable, user_data outlives the energy, writable out.
    let st = unsafe { hatebm_energy_new(&vt, (&raw mut calls).cast(), shape.as_ptr(), 1, &mut e) };
    assert_eq!(st, HATEBM_OK);

    let mut p = hatebm_langevin_default_params();
    p.steps = 30;
    p.temperature = 1.0;
    p.eps_res = 0.1;
    p.clip_res = 0.05;
    p.prior_sigma_res = 3.0;
    p.seed = 9;
    p.iteration = 4;
    let n = 17;
    let y0: Vec<f32> = (0..n * 3).map(|i| (i as f32 * 0.7).sin() * 2.0).collect();
    let mut y = y0.clone();
    let mut stats = std::mem::MaybeUninit::<hatebm_langevin_stats>::zeroed();
    // SAFETY: live energy, valid params, y has n * 3 floats.
    let st = unsafe {
        hatebm_langevin_run_custom(
            e,
            null(),
            &p,
            null_mut(),
            0,
            y.as_mut_ptr(),
            y.len(),
            n,
            stats.as_mut_ptr(),
        )
    };
    assert_eq!(st, HATEBM_OK, "{}", hatebm::error::last_error_string());
    assert_eq!(calls, 30);

    let be = CpuBackend::new();
    let rq = RustQuad {
        params: ParamSet::init(&be, &[], 0).unwrap(),
    };
    let (cfg, key): (LangevinConfig, ChainKey) = p.to_core().unwrap();
    let mut chains = Chains {
        z: None,
        y: be.from_host(&y0, &[n, 3]).unwrap(),
    };
    let sr = LangevinSampler::new(cfg)
        .unwrap()
        .run(&be, &rq, None, &mut chains, &mut SeededNoise, key, None)
        .unwrap();
    assert_eq!(bits(&y), bits(chains.y.as_slice()));
    // SAFETY: written on HATEBM_OK.
    assert_eq!(unsafe { stats.assume_init() }, (&sr).into());
    // SAFETY: live handle, freed once.
    unsafe { hatebm_energy_free(e) };
}
