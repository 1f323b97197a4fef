//! Fuzz targets: the functions that parse what a user hands the library —
//! configuration text and `key = value` settings, checkpoints, and the data
//! readers (npy, IDX, CIFAR-10, PNG) — each wrapped so that any byte string
//! is a valid input. A target returns normally for every input, accepted or
//! refused with an [`Error`](crate::Error); it panics only on a bug: a panic
//! inside the library, or a broken invariant (a configuration that builds
//! but does not survive its own TOML, a checkpoint that saves but does not
//! load again, an npy array that does not survive its own encoding).
//!
//! [`mutate`] is a seeded, dictionary-aided byte mutator and [`run`] drives a
//! target over a corpus and its mutations. The same targets serve a
//! coverage-guided fuzzer (`cargo fuzz` / libFuzzer with a nightly toolchain:
//! one `fuzz_target!(|d: &[u8]| hatebm_rs::fuzz::config_toml(d))` each), the
//! stable-toolchain replay test in `tests/tests/fuzz_replay.rs` (committed
//! corpora plus a fixed number of seeded mutations, in CI), and the local
//! runner `examples/fuzz.rs` (millions of executions; figures in
//! `docs/reliability.md`).
//!
//! Not a stable API: the targets follow the library's parsers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{Config, ConfigBuilder};
use crate::cpu::CpuBackend;
use crate::run::{Checkpoint, Run};

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// The targets by name, for runners.
pub const TARGETS: &[(&str, Target)] = &[
    ("config_toml", config_toml),
    ("config_set", config_set),
    ("checkpoint", checkpoint),
    ("npy", npy),
    ("idx", idx),
    ("cifar", cifar),
    ("png", png),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// TOML configuration text: parse, and if it builds, its canonical TOML (what
/// a checkpoint stores) must build to the same configuration.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::from_toml_str(text) {
        let again = cfg.to_toml_string().and_then(|t| Config::from_toml_str(&t));
        match again {
            Ok(c) => assert!(
                c == cfg,
                "a configuration does not survive its own TOML:\n{cfg:?}\nvs\n{c:?}"
            ),
            Err(e) => panic!("a configuration that builds does not reload: {e}\n{cfg:?}"),
        }
    }
}

/// One `key = value` setting (`key`, a NUL byte, `value`) on the digits
/// preset, as `hatebm_config_set` and `--set` apply it; if the result builds,
/// it must survive its TOML as in [`config_toml`].
pub fn config_set(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (key, value) = text.split_once('\0').unwrap_or((text, ""));
    let mut b = ConfigBuilder::new();
    b.set("preset", "\"digits\"").expect("the digits preset");
    if b.set(key, value).is_ok()
        && let Ok(cfg) = b.build()
    {
        let t = cfg.to_toml_string().expect("serialise");
        let c = Config::from_toml_str(&t)
            .unwrap_or_else(|e| panic!("`{key}` = `{value}` builds but does not reload: {e}"));
        assert!(c == cfg, "`{key}` = `{value}` does not survive its TOML");
    }
}

/// The work one checkpoint execution may take: larger stored runs are
/// skipped (refused inputs, not bugs), so that a mutated `langevin.steps =
/// 9999999` does not stall the fuzzer.
fn cheap_enough(cfg: &Config) -> bool {
    use crate::data::DataSpec;
    matches!(
        &cfg.data,
        DataSpec::Digits {} | DataSpec::Toy { n: ..=20_000, .. }
    ) && cfg.langevin.steps <= 64
        && cfg.train.batch_size <= 64
        && cfg.train.bank_size <= 4096
        && cfg.train.persistent_bank_size <= 4096
        && cfg.train.coop_latent_steps <= 64
        && cfg.memory_estimate().is_ok_and(|e| e.total() < 64e6)
}

fn scratch_checkpoint() -> PathBuf {
    std::env::temp_dir().join(format!(
        "hatebm-fuzz-{}-{:?}.safetensors",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// A checkpoint file: read it; if it resumes (on the CPU backend), take one
/// step and save it; a checkpoint that saves must load again.
pub fn checkpoint(data: &[u8]) {
    let Ok(ck) = Checkpoint::from_bytes(data, "fuzz input") else {
        return;
    };
    let Ok(stored) = ck.config() else {
        return;
    };
    if !cheap_enough(&stored) {
        return;
    }
    let mut stored = stored;
    stored.output.dir = std::env::temp_dir().join("hatebm-fuzz-out");
    stored.eval.num_samples = 0;
    let Ok(mut run) = Run::resume_checkpoint(CpuBackend::new(), &ck, Some(stored)) else {
        return;
    };
    let _ = run.step();
    let path = scratch_checkpoint();
    if run.save_checkpoint(&path).is_ok() {
        let again = Run::resume(CpuBackend::new(), &path, None);
        let _ = std::fs::remove_file(&path);
        if let Err(e) = again {
            panic!("a checkpoint reported as saved does not load: {e}");
        }
    }
}

/// An `.npy` array: parse; an array that parses must survive its own encoding.
pub fn npy(data: &[u8]) {
    use crate::data::npy::{encode_npy, read_npy_bytes};
    if let Ok(a) = read_npy_bytes(data, "fuzz input") {
        let bytes = encode_npy(&a).expect("an array that parsed encodes");
        let b = read_npy_bytes(&bytes, "re-encoded").expect("re-encoded array parses");
        let bits = |x: &crate::data::NpyArray| -> Vec<u32> {
            x.data.to_f32().iter().map(|v| v.to_bits()).collect()
        };
        assert!(
            a.shape == b.shape && bits(&a) == bits(&b),
            "npy round trip changed the array"
        );
    }
}

/// MNIST-style IDX image and label files.
pub fn idx(data: &[u8]) {
    let _ = crate::data::idx::read_idx_images_bytes(data, "fuzz input");
    let _ = crate::data::idx::read_idx_labels_bytes(data, "fuzz input");
}

/// A CIFAR-10 binary batch.
pub fn cifar(data: &[u8]) {
    let _ = crate::data::cifar::read_cifar10_bytes(data, "fuzz input");
}

/// A PNG image.
pub fn png(data: &[u8]) {
    if let Ok((w, h, c, s)) = crate::data::png_folder::decode_png(data, "fuzz input") {
        assert_eq!(
            s.len(),
            w as usize * h as usize * c,
            "decoded size matches the header"
        );
        assert!(
            s.iter().all(|v| (0.0..=1.0).contains(v)),
            "samples in [0, 1]"
        );
    }
}

/// Tokens the mutator splices in: the values and syntax that broke parsers
/// before (non-finite and huge numbers, integer limits, TOML structure).
pub const DICTIONARY: &[&[u8]] = &[
    b"NaN",
    b"nan",
    b"inf",
    b"-inf",
    b"1e40",
    b"-1",
    b"0",
    b"1e-45",
    b"18446744073709551615",
    b"9223372036854775808",
    b"4294967296",
    b"[[",
    b"]]",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b"\"",
    b"'''",
    b"\n",
    b"\0",
    b".",
    b"kind",
    b"preset",
    b"steps",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x7f\xff\xff\xff",
];

/// One seeded mutation of `data`: 1–4 of bit flips, byte overwrites with
/// boundary values, dictionary splices, deletions, duplications and
/// truncation.
pub fn mutate(data: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = d.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                d[i] = [0u8, 1, 0x7f, 0x80, 0xff, b'9', b'-'][rng.random_range(0..7)];
            }
            2 => {
                let tok = DICTIONARY[rng.random_range(0..DICTIONARY.len())];
                let i = rng.random_range(0..=len);
                d.splice(i..i, tok.iter().copied());
            }
            3 if len > 1 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(16));
                d.drain(i..i + n);
            }
            4 if len > 1 && len < 1 << 22 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                let chunk: Vec<u8> = d[i..i + n].to_vec();
                let j = rng.random_range(0..=len);
                d.splice(j..j, chunk);
            }
            5 if len > 0 => d.truncate(rng.random_range(0..len)),
            _ if len > 0 => {
                // A random 4-byte little-endian value (sizes, counts, offsets).
                let i = rng.random_range(0..len);
                let v: u32 = rng.random();
                for (k, b) in v.to_le_bytes().iter().enumerate() {
                    if i + k < len {
                        d[i + k] = *b;
                    }
                }
            }
            _ => d.push(rng.random()),
        }
    }
    d
}

/// What [`run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Executions (corpus entries plus mutations).
    pub execs: u64,
    /// The first input that made the target panic, with its message.
    pub crash: Option<(Vec<u8>, String)>,
}

/// Runs `target` on every corpus entry, then on `mutations` seeded mutations
/// of randomly chosen entries (seed `seed`), stopping at the first panic.
pub fn run(target: Target, corpus: &[Vec<u8>], mutations: u64, seed: u64) -> RunStats {
    let mut stats = RunStats::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let exec = |input: Vec<u8>, stats: &mut RunStats| {
        stats.execs += 1;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "panic".into());
            stats.crash = Some((input, msg));
            false
        } else {
            true
        }
    };
    for c in corpus {
        if !exec(c.clone(), &mut stats) {
            return stats;
        }
    }
    if corpus.is_empty() {
        return stats;
    }
    for _ in 0..mutations {
        let base = &corpus[rng.random_range(0..corpus.len())];
        let input = mutate(base, &mut rng);
        if !exec(input, &mut stats) {
            return stats;
        }
    }
    stats
}

/// Reads every file of `dir` (sorted by name) as a corpus.
///
/// # Errors
/// [`crate::Error::Io`].
pub fn read_corpus(dir: &std::path::Path) -> crate::Result<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| crate::Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| crate::Error::io(p, e)))
        .collect()
}
