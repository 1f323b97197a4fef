//! Fuzz target over C ABI call sequences (issue 16), driven by any byte
//! string: create → configure (keys and values from a dictionary of valid and
//! absurd settings, or raw bytes of the input) → step → save → resume → load
//! → sample with mutated `n`, `steps`, `batch_size` and buffer lengths →
//! free. Whatever the bytes, no call may return `HATEBM_PANIC`, none may
//! abort the process, and every checkpoint a call reports as saved must
//! resume as a session and load as a trained model; [`abi_sequence`] panics
//! (a fuzzer's crash) only when one of these fails.
//!
//! The bytes are read as a stream of choices ([`Choices`]), so one function
//! serves the coverage-guided fuzzer (`fuzz/`, libFuzzer on the stable
//! toolchain: `scripts/fuzz.sh run abi_sequence`), which learns which bytes
//! reach new code, and the seeded test `ffi/tests/abi_sequences.rs` (random
//! byte strings from a fixed seed plus the committed corpus
//! `tests/fuzz/corpus/abi_sequence/`), which CI runs.
//!
//! Not a stable API: the sequence follows the ABI.

use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::*;
use crate::model::*;
use crate::session::*;
use crate::status::hatebm_status;

/// Keys a sequence may set (one past the end: raw bytes of the input).
pub const KEYS: &[&str] = &[
    "seed",
    "threads",
    "memory_limit_gib",
    "langevin.steps",
    "langevin.temperature",
    "langevin.eps_res",
    "langevin.clip_res",
    "langevin.method",
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

/// Values a sequence may give (one past the end: raw bytes of the input).
pub const VALUES: &[&str] = &[
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
    "\"mala\"",
    "\"hmc\"",
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

/// A byte string read as a stream of choices (the first entry of every list
/// is the ordinary value, so the empty input is the plain happy path). Each [`pick`](Self::pick)
/// takes one byte (two for ranges over 256), reduced modulo the range; an
/// exhausted input picks 0, so every byte string — the empty one included —
/// is a complete sequence, and a longer string only refines it.
#[derive(Debug)]
pub struct Choices<'a> {
    bytes: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices read from `bytes`, front to back.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((b, rest)) => {
                self.bytes = rest;
                *b
            }
            None => 0,
        }
    }

    /// A choice in `0..n` (`n` ≥ 1).
    pub fn pick(&mut self, n: usize) -> usize {
        debug_assert!(n >= 1);
        let v = if n > 256 {
            usize::from(self.byte()) << 8 | usize::from(self.byte())
        } else {
            usize::from(self.byte())
        };
        v % n
    }

    /// One of `items`.
    pub fn one_of<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.pick(items.len())]
    }

    /// An entry of `dict`, or (one choice past its end) up to 24 raw bytes of
    /// the input as text: the length first, then the bytes.
    fn word(&mut self, dict: &[&str]) -> String {
        let i = self.pick(dict.len() + 1);
        if i < dict.len() {
            return dict[i].to_owned();
        }
        let len = self.pick(25).min(self.bytes.len());
        let (raw, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8_lossy(raw).into_owned()
    }
}

/// What one sequence reached, so that a run shows it exercised the deep
/// calls (not only refused configurations).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// Sessions created.
    pub sessions: u64,
    /// Checkpoints saved (each then resumed and loaded as a model).
    pub saved: u64,
    /// Successful sample calls.
    pub sampled: u64,
}

impl std::ops::AddAssign for Reached {
    fn add_assign(&mut self, o: Self) {
        self.sessions += o.sessions;
        self.saved += o.saved;
        self.sampled += o.sampled;
    }
}

/// The base configuration every sequence starts from: the toy ring with
/// tiny MLPs, so that a step takes well under a millisecond.
fn base_toml(dir: &std::path::Path) -> String {
    format!(
        "preset = \"toy2d\"\nseed = 3\n[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n\
         [train]\nbatch_size = 16\nbank_size = 32\n[langevin]\nsteps = 3\n\
         [model.energy]\nkind = \"mlp\"\ndims = [2, 16, 1]\n\
         [model.generator]\nkind = \"mlp\"\ndims = [2, 16, 2]\n\
         [output]\ndir = {:?}\nprogress = \"never\"\nplot = false\ngrid_samples = 4\n\
         [eval]\nnum_samples = 0\n",
        dir.display().to_string()
    )
}

/// This process's scratch folder (under the temporary directory).
fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("hatebm-abi-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the fuzz scratch folder");
        d
    })
}

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NUL bytes removed")
}

fn no_panic(st: hatebm_status, call: &str) {
    assert_ne!(
        st,
        hatebm_status::HATEBM_PANIC,
        "{call} panicked across the ABI"
    );
}

/// One call sequence chosen by `data` (see the module docs). Returns what it
/// reached; panics only on a broken ABI promise. The checkpoint it saves is
/// removed before it returns, so long runs do not fill the disk.
pub fn abi_sequence(data: &[u8]) -> Reached {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let id = CALLS.fetch_add(1, Ordering::Relaxed);
    let dir = scratch_dir();
    let ck = dir.join(format!("ck-{id}.safetensors"));
    let reached = sequence(&mut Choices::new(data), dir, &ck);
    let _ = std::fs::remove_file(&ck);
    reached
}

fn sequence(ch: &mut Choices<'_>, dir: &std::path::Path, ck: &std::path::Path) -> Reached {
    let mut reached = Reached::default();
    let toml = cstr(&base_toml(dir));
    let mut cfg = null_mut();
    // SAFETY: valid C string and out pointer.
    let st = unsafe { hatebm_config_from_toml(toml.as_ptr(), &mut cfg) };
    assert_eq!(st, hatebm_status::HATEBM_OK, "the base config parses");
    for _ in 0..ch.pick(5) {
        let k = cstr(&ch.word(KEYS));
        let v = cstr(&ch.word(VALUES));
        // SAFETY: live config, valid C strings.
        let st = unsafe { hatebm_config_set(cfg, k.as_ptr(), v.as_ptr()) };
        no_panic(st, "hatebm_config_set");
    }
    let mut s = null_mut();
    // SAFETY: live config, valid out pointer.
    let st = unsafe { hatebm_session_new(cfg, &mut s) };
    no_panic(st, "hatebm_session_new");
    // SAFETY: freed once.
    unsafe { hatebm_config_free(cfg) };
    if st != hatebm_status::HATEBM_OK {
        assert!(s.is_null(), "a failed constructor leaves *out NULL");
        return reached;
    }
    reached.sessions += 1;
    for _ in 0..1 + ch.pick(2) {
        // SAFETY: live session; NULL stats is allowed.
        let st = unsafe { hatebm_session_step(s, null_mut()) };
        no_panic(st, "hatebm_session_step");
    }
    let path = cstr(&ck.display().to_string());
    // SAFETY: live session, valid path.
    let st = unsafe { hatebm_session_save_checkpoint(s, path.as_ptr()) };
    no_panic(st, "hatebm_session_save_checkpoint");
    if st == hatebm_status::HATEBM_OK {
        reached.saved += 1;
        let mut r = null_mut();
        // SAFETY: valid path; NULL config = the stored one.
        let st2 = unsafe { hatebm_session_resume(path.as_ptr(), null(), &mut r) };
        assert_eq!(
            st2,
            hatebm_status::HATEBM_OK,
            "a checkpoint reported as saved does not resume"
        );
        // SAFETY: freed once.
        unsafe { hatebm_session_free(r) };
        // The model-only load of the same file, sampled with mutated parameters.
        let mut m = null_mut();
        // SAFETY: valid path; NULL backend = the stored one.
        let st3 = unsafe { hatebm_trained_model_load(path.as_ptr(), null(), &mut m) };
        assert_eq!(
            st3,
            hatebm_status::HATEBM_OK,
            "a checkpoint reported as saved does not load as a model"
        );
        let mut p = hatebm_sample_default_params();
        p.n = ch.one_of(&[1usize, 2, 1 << 40]);
        p.steps = ch.one_of(&[2i64, -1, 0, 100_000_000_000]);
        let mut sl = 0usize;
        // SAFETY: live model; NULL iteration allowed.
        let st4 = unsafe { hatebm_trained_model_info(m, &mut sl, null_mut()) };
        no_panic(st4, "hatebm_trained_model_info");
        let len = p.n.saturating_mul(sl).min(4096);
        let mut out = vec![0f32; len.max(1)];
        // SAFETY: live model; `out` has `len` writable floats.
        let st5 = unsafe { hatebm_trained_model_sample(m, &p, out.as_mut_ptr(), len) };
        no_panic(st5, "hatebm_trained_model_sample");
        // SAFETY: freed once.
        unsafe { hatebm_trained_model_free(m) };
    } else {
        assert!(!ck.exists(), "a failed save wrote a file");
    }
    // Sampling with mutated parameters.
    let mut dims = [0usize; 4];
    let mut nd = 0usize;
    // SAFETY: live session, 4 writable dims.
    let st = unsafe { hatebm_session_sample_shape(s, dims.as_mut_ptr(), 4, &mut nd) };
    no_panic(st, "hatebm_session_sample_shape");
    let sample_len: usize = dims[..nd.min(4)].iter().product::<usize>().max(1);
    for _ in 0..3 {
        let mut p = hatebm_sample_default_params();
        p.n = ch.one_of(&[1usize, 0, 3, 1 << 40, usize::MAX]);
        p.steps = ch.one_of(&[2i64, -1, 0, 100_000_000_000, i64::MIN]);
        p.batch_size = ch.one_of(&[0usize, 1, 2, 1 << 40]);
        let want = p.n.saturating_mul(sample_len);
        // 7 in 10: the exact length when it is small; else a random short one.
        let len = if want <= 4096 && ch.pick(10) < 7 {
            want
        } else {
            ch.pick(64)
        };
        let mut out = vec![0f32; len.max(1)];
        // SAFETY: live session; `out` has `len` writable floats.
        let st = unsafe { hatebm_session_sample(s, &p, out.as_mut_ptr(), len) };
        no_panic(st, "hatebm_session_sample");
        reached.sampled += u64::from(st == hatebm_status::HATEBM_OK);
    }
    // SAFETY: freed once.
    unsafe { hatebm_session_free(s) };
    reached
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_bytes_then_zeros() {
        let mut c = Choices::new(&[7, 1, 2]);
        assert_eq!(c.pick(5), 2);
        assert_eq!(c.pick(300), (1 << 8 | 2));
        assert_eq!(c.pick(9), 0, "exhausted input picks 0");
        let bytes = [KEYS.len() as u8, 3, b'a', b'b', b'c', b'd'];
        let mut c = Choices::new(&bytes);
        assert_eq!(c.word(KEYS), "abc", "one past the dictionary: raw bytes");
        assert_eq!(c.word(KEYS), KEYS[usize::from(b'd') % (KEYS.len() + 1)]);
        assert_eq!(c.word(KEYS), KEYS[0], "exhausted: the first entry");
    }
}
