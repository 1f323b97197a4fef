//! C ABI call sequences with mutated arguments (issue 16), through the fuzz
//! target `hatebm::fuzz::abi_sequence`: every file of the committed corpus
//! `tests/fuzz/corpus/abi_sequence/` (inputs the coverage-guided fuzzer kept,
//! `scripts/fuzz.sh`), then seeded random byte strings. Whatever the bytes,
//! no call panics across the ABI (`HATEBM_PANIC`), none aborts the process
//! (the test would die), and every checkpoint a call reports as saved
//! resumes and loads again; the target panics if one of these fails.
//! `HATEBM_ABI_SEQUENCES=N` sets the number of seeded sequences (200).

use std::path::Path;

use hatebm::fuzz::{Reached, abi_sequence};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn committed_corpus_replays_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/corpus/abi_sequence");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    let mut reached = Reached::default();
    for f in &files {
        reached += abi_sequence(&std::fs::read(f).unwrap());
    }
    eprintln!("{} corpus files reached: {reached:?}", files.len());
    assert!(reached.saved > 0 && reached.sampled > 0, "{reached:?}");
}

#[test]
fn mutated_call_sequences_never_panic_abort_or_save_unloadable_checkpoints() {
    let n: u64 = std::env::var("HATEBM_ABI_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut reached = Reached::default();
    for seq in 0..n {
        let mut rng = ChaCha8Rng::seed_from_u64(seq);
        let bytes: Vec<u8> = (0..rng.random_range(0..48)).map(|_| rng.random()).collect();
        reached += abi_sequence(&bytes);
    }
    eprintln!("{n} sequences reached: {reached:?}");
    assert!(
        reached.saved * 4 >= n && reached.sampled > 0,
        "too few sequences get deep: {reached:?}"
    );
}
