//! Seeded call sequences over the C ABI, with mutated arguments (issue 16):
//! create → configure (keys and values from a dictionary of valid and absurd
//! settings) → step → save → load → sample with mutated parameters → free.
//! Whatever the arguments, no call panics across the ABI (`HATEBM_PANIC`),
//! none aborts the process (the test would die), and every checkpoint a call
//! reports as saved loads again.

use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::null;

use hatebm::config::*;
use hatebm::model::*;
use hatebm::session::*;
use hatebm::status::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KEYS: &[&str] = &[
    "seed",
    "threads",
    "memory_limit_gib",
    "langevin.steps",
    "langevin.temperature",
    "langevin.eps_res",
    "langevin.clip_res",
    "train.batch_size",
    "train.bank_size",
    "train.mode",
    "train.data_epsilon",
    "ebm_optim.lr",
    "ebm_optim.ema_decay",
    "gen_optim.lr",
    "guard.policy",
    "guard.max_energy_diff",
    "model.energy.dims",
    "model.generator.dims",
    "data.n",
    "output.grid_samples",
    "eval.num_samples",
    "sample.steps",
    "backend",
    "nonexistent.key",
];

const VALUES: &[&str] = &[
    "0",
    "1",
    "3",
    "-1",
    "0.5",
    "1e-3",
    "NaN",
    "inf",
    "-inf",
    "1e40",
    "18446744073709551615",
    "9223372036854775807",
    "100000000000",
    "\"short_run\"",
    "\"persistent\"",
    "\"synthesis\"",
    "\"rollback\"",
    "\"cpu\"",
    "\"tch:cuda:7\"",
    "[2, 8, 1]",
    "[2, 8, 2]",
    "[2, 10000000000, 1]",
    "{ kind = \"mlp\", dims = [2, 4, 2] }",
    "true",
    "\"\"",
    "x\n[train]\nsteps = 5",
];

fn base(dir: &std::path::Path) -> String {
    format!(
        "preset = \"toy2d\"\nseed = 3\n[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n\
         [train]\nbatch_size = 16\nbank_size = 32\n[langevin]\nsteps = 3\n\
         [model.energy]\nkind = \"mlp\"\ndims = [2, 16, 1]\n\
         [model.generator]\nkind = \"mlp\"\ndims = [2, 16, 2]\n\
         [output]\ndir = \"{}\"\nprogress = \"never\"\nplot = false\ngrid_samples = 4\n\
         [eval]\nnum_samples = 0\n",
        dir.display()
    )
}

fn c(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap()
}

fn no_panic(st: hatebm_status, call: &str, seq: u64) {
    assert_ne!(
        st,
        hatebm_status::HATEBM_PANIC,
        "sequence {seq}: {call} panicked"
    );
}

/// What the sequences reached (so the test shows it exercised the deep calls).
#[derive(Default, Debug)]
struct Reached {
    sessions: u64,
    saved: u64,
    sampled: u64,
}

fn one_sequence(seq: u64, dir: &std::path::Path, reached: &mut Reached) {
    let mut rng = ChaCha8Rng::seed_from_u64(seq);
    let toml = c(&base(dir));
    let mut cfg = std::ptr::null_mut();
    // SAFETY: valid C string and out pointer.
    let st = unsafe { hatebm_config_from_toml(toml.as_ptr(), &mut cfg) };
    assert_eq!(st, hatebm_status::HATEBM_OK, "the base config parses");
    for _ in 0..rng.random_range(0..4) {
        let k = c(KEYS[rng.random_range(0..KEYS.len())]);
        let v = c(VALUES[rng.random_range(0..VALUES.len())]);
        // SAFETY: live config, valid C strings.
        let st = unsafe { hatebm_config_set(cfg, k.as_ptr(), v.as_ptr()) };
        no_panic(st, "hatebm_config_set", seq);
    }
    let mut s = std::ptr::null_mut();
    // SAFETY: live config, valid out pointer.
    let st = unsafe { hatebm_session_new(cfg, &mut s) };
    no_panic(st, "hatebm_session_new", seq);
    // SAFETY: freed once.
    unsafe { hatebm_config_free(cfg) };
    if st != hatebm_status::HATEBM_OK {
        assert!(s.is_null(), "a failed constructor leaves *out NULL");
        return;
    }
    reached.sessions += 1;
    for _ in 0..rng.random_range(1..3) {
        // SAFETY: live session; NULL stats is allowed.
        let st = unsafe { hatebm_session_step(s, std::ptr::null_mut()) };
        no_panic(st, "hatebm_session_step", seq);
    }
    let ck = dir.join(format!("ck-{seq}.safetensors"));
    let path = c(&ck.display().to_string());
    // SAFETY: live session, valid path.
    let st = unsafe { hatebm_session_save_checkpoint(s, path.as_ptr()) };
    no_panic(st, "hatebm_session_save_checkpoint", seq);
    if st == hatebm_status::HATEBM_OK {
        reached.saved += 1;
        let mut r = std::ptr::null_mut();
        // SAFETY: valid path; NULL config = the stored one.
        let st2 = unsafe { hatebm_session_resume(path.as_ptr(), null(), &mut r) };
        assert_eq!(
            st2,
            hatebm_status::HATEBM_OK,
            "sequence {seq}: a checkpoint reported as saved does not load"
        );
        // SAFETY: freed once.
        unsafe { hatebm_session_free(r) };
        // The model-only load of the same file, sampled with mutated parameters.
        let mut m = std::ptr::null_mut();
        // SAFETY: valid path; NULL backend = the stored one.
        let st3 = unsafe { hatebm_trained_model_load(path.as_ptr(), null(), &mut m) };
        assert_eq!(st3, hatebm_status::HATEBM_OK, "sequence {seq}: model load");
        let mut p = hatebm_sample_default_params();
        p.n = [1usize, 2, 1 << 40][rng.random_range(0..3)];
        p.steps = [-1i64, 0, 2, 100_000_000_000][rng.random_range(0..4)];
        let mut sl = 0usize;
        // SAFETY: live model; NULL iteration allowed.
        let st4 = unsafe { hatebm_trained_model_info(m, &mut sl, std::ptr::null_mut()) };
        no_panic(st4, "hatebm_trained_model_info", seq);
        let len = p.n.saturating_mul(sl).min(4096);
        let mut out = vec![0f32; len.max(1)];
        // SAFETY: live model; `out` has `len` writable floats.
        let st5 = unsafe { hatebm_trained_model_sample(m, &p, out.as_mut_ptr(), len) };
        no_panic(st5, "hatebm_trained_model_sample", seq);
        // SAFETY: freed once.
        unsafe { hatebm_trained_model_free(m) };
    } else {
        assert!(!ck.exists(), "sequence {seq}: a failed save wrote a file");
    }
    // Sampling with mutated parameters.
    let mut dims = [0usize; 4];
    let mut nd = 0usize;
    // SAFETY: live session, 4 writable dims.
    let st = unsafe { hatebm_session_sample_shape(s, dims.as_mut_ptr(), 4, &mut nd) };
    no_panic(st, "hatebm_session_sample_shape", seq);
    let sample_len: usize = dims[..nd.min(4)].iter().product::<usize>().max(1);
    for _ in 0..3 {
        let mut p = hatebm_sample_default_params();
        p.n = [0usize, 1, 3, 1 << 40, usize::MAX][rng.random_range(0..5)];
        p.steps = [-1i64, 0, 2, 100_000_000_000, i64::MIN][rng.random_range(0..5)];
        p.batch_size = [0usize, 1, 2, 1 << 40][rng.random_range(0..4)];
        let want = p.n.saturating_mul(sample_len);
        let len = if want <= 4096 && rng.random_bool(0.7) {
            want
        } else {
            rng.random_range(0..64)
        };
        let mut out = vec![0f32; len.max(1)];
        // SAFETY: live session; `out` has `len` writable floats.
        let st = unsafe { hatebm_session_sample(s, &p, out.as_mut_ptr(), len) };
        no_panic(st, "hatebm_session_sample", seq);
        reached.sampled += u64::from(st == hatebm_status::HATEBM_OK);
    }
    // SAFETY: freed once.
    unsafe { hatebm_session_free(s) };
}

#[test]
fn mutated_call_sequences_never_panic_abort_or_save_unloadable_checkpoints() {
    let dir: PathBuf = std::env::temp_dir().join(format!("hatebm-abi-seq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n: u64 = std::env::var("HATEBM_ABI_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut reached = Reached::default();
    for seq in 0..n {
        one_sequence(seq, &dir, &mut reached);
    }
    eprintln!("{n} sequences reached: {reached:?}");
    assert!(
        reached.saved * 4 >= n && reached.sampled > 0,
        "too few sequences get deep: {reached:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
