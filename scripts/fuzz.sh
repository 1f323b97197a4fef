#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain (issue 16;
# docs/reliability.md). The fuzz crate (fuzz/) is built with the
# sanitizer-coverage passes cargo-fuzz uses (8-bit counters, PC table,
# comparison tracing) -- stable rustc flags; only the address sanitizer needs
# nightly, and it is not used -- for the host target, so build scripts and
# proc-macros stay uninstrumented.
#
#   scripts/fuzz.sh build                     build target/fuzz/.../hatebm-fuzz
#   scripts/fuzz.sh run TARGET [ARGS...]      fuzz TARGET; ARGS go to libFuzzer
#                                             (e.g. -runs=1000000, -max_total_time=60)
#   scripts/fuzz.sh merge TARGET [MAX_LEN]    add the inputs of the work corpus that
#                                             reach new coverage (each <= MAX_LEN bytes,
#                                             default 4096) to the committed corpus
#   scripts/fuzz.sh smoke [SECONDS]           build, then every target for SECONDS (5)
#                                             from the committed corpus (CI)
#
# Work corpora (everything libFuzzer keeps) live in target/fuzz/corpus/TARGET;
# the committed corpora in tests/fuzz/corpus/TARGET are replayed by the stable
# tests (tests/tests/fuzz_replay.rs, ffi/tests/abi_sequences.rs). Crashes are
# written to target/fuzz/artifacts/TARGET/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

targets=(config_toml config_set checkpoint npy idx cifar png abi_sequence)
host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$root/target/fuzz"
bin="$CARGO_TARGET_DIR/$host/release/hatebm-fuzz"

build() {
    RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        -Cdebug-assertions -Coverflow-checks" \
        cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$host"
}

known() {
    local t
    for t in "${targets[@]}"; do [[ $t == "$1" ]] && return 0; done
    echo "fuzz.sh: unknown target '$1' (one of: ${targets[*]})" >&2
    exit 2
}

run() {
    local t="$1"; shift
    known "$t"
    [[ -x $bin ]] || build
    mkdir -p "target/fuzz/corpus/$t" "target/fuzz/artifacts/$t"
    # The first folder receives new inputs; the committed corpus is read only.
    # One input may run at most 60 s (a hang is a finding); memory is capped at
    # 2 GiB (an allocation past it is a finding too).
    HATEBM_FUZZ_TARGET="$t" "$bin" -timeout=60 -rss_limit_mb=2048 \
        -artifact_prefix="target/fuzz/artifacts/$t/" -print_final_stats=1 "$@" \
        "target/fuzz/corpus/$t" "tests/fuzz/corpus/$t"
}

case "${1:-}" in
    build) build ;;
    run) shift; [[ $# -ge 1 ]] || { echo "usage: fuzz.sh run TARGET [ARGS...]" >&2; exit 2; }; run "$@" ;;
    merge)
        t="${2:?usage: fuzz.sh merge TARGET [MAX_LEN]}"; known "$t"
        [[ -x $bin ]] || build
        HATEBM_FUZZ_TARGET="$t" "$bin" -merge=1 -max_len="${3:-4096}" -timeout=60 \
            "tests/fuzz/corpus/$t" "target/fuzz/corpus/$t"
        ;;
    smoke)
        secs="${2:-5}"
        build
        for t in "${targets[@]}"; do
            # A fresh, empty work folder: the run starts from the committed corpus only.
            rm -rf "target/fuzz/corpus/$t"
            run "$t" -max_total_time="$secs" 2>&1 | tail -n 12
        done
        ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
