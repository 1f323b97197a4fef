//! The fuzz targets of `hatebm_rs::fuzz` on the stable toolchain: every file
//! of the committed corpora (`tests/fuzz/corpus/<target>/`, seeds and any
//! input a fuzzer found), then a fixed number of seeded mutations of them.
//! A target panics only on a bug (a panic inside the library or a broken
//! round-trip invariant), so this test fails on any regression a fuzzer
//! would catch again, without nightly or a fuzzing engine. Longer runs:
//! `cargo run --release -p hatebm-rs --example fuzz -- run TARGET 1000000`.

use std::path::Path;

use hatebm_rs::fuzz;

fn replay(name: &str, mutations: u64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let corpus = fuzz::read_corpus(&dir).unwrap();
    assert!(!corpus.is_empty(), "no corpus in {}", dir.display());
    let target = fuzz::target(name).unwrap();
    let stats = fuzz::run(target, &corpus, mutations, 0x5eed);
    if let Some((input, msg)) = &stats.crash {
        panic!(
            "{name}: panic after {} executions: {msg}\ninput ({} bytes): {:?}",
            stats.execs,
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(2000)])
        );
    }
    assert_eq!(stats.execs, corpus.len() as u64 + mutations);
}

#[test]
fn config_toml() {
    replay("config_toml", 5_000);
}

#[test]
fn config_set() {
    replay("config_set", 5_000);
}

#[test]
fn checkpoint() {
    replay("checkpoint", 1_000);
}

#[test]
fn npy() {
    replay("npy", 20_000);
}

#[test]
fn idx() {
    replay("idx", 20_000);
}

#[test]
fn cifar() {
    replay("cifar", 20_000);
}

#[test]
fn png() {
    replay("png", 20_000);
}

/// The mutator is deterministic for a seed (so a CI failure reproduces) and
/// really changes its input.
#[test]
fn mutations_are_seeded_and_change_the_input() {
    use rand::SeedableRng;
    let base = b"preset = \"digits\"\n".to_vec();
    let run = |seed| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..50)
            .map(|_| fuzz::mutate(&base, &mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
    assert!(run(1).iter().filter(|m| **m != base).count() >= 45);
}
