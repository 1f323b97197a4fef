#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (pinned
# cbindgen, cmake/pkg-config/valgrind, the project-local torch venv for the tch
# backend), then runs, in order:
#   1. static checks   cargo fmt --check, clippy -D warnings, rustdoc -D warnings
#   2. Rust tests      every crate, CPU backend (goldens, properties, modes, config, ...)
#   3. MPI             OpenMPI from Debian; `hatebm train` under mpirun at 1, 2, 4 processes
#   4. C ABI           header drift check; C/C++ programs plain, ASan+UBSan, Valgrind, packaging,
#                      then a coverage-guided libFuzzer smoke run of every fuzz target (stable)
#   5. tch backend     builds against PyPI's torch 2.13.0 and runs the same suite on tch:cpu
#                      (GPU-only tests skip themselves without CUDA)
#
#   scripts/test.sh              everything
#   scripts/test.sh --no-tch     skip stage 5 (no 5 GB torch download)
#   scripts/test.sh --quick      Rust tests only
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tch=1
quick=0
for a in "$@"; do
    case "$a" in
        --no-tch) tch=0 ;;
        --quick) quick=1 ;;
        *) echo "test.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

step() { printf '\n==== %s ====\n' "$*"; }
t_start=$(date +%s)

if [[ $quick == 0 ]]; then
    step "static checks"
    cargo fmt --all -- --check
    cargo fmt --manifest-path fuzz/Cargo.toml -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
    # Crate boundaries (docs/architecture.md): the core parses no file formats.
    if cargo tree -p hatebm-core -e normal --prefix none | grep -E '^(png|toml|safetensors|serde_json|npyz|ndarray-npy) '; then
        echo "test.sh: hatebm-core must not depend on the crates above" >&2
        exit 1
    fi
fi

step "Rust tests (CPU backend)"
cargo test --workspace

# The CPU backend picks its kernels by instruction set (core/src/cpu/isa.rs).
# On a CPU with AVX-512 the default run above uses the AVX-512 kernels, so the
# kernel, golden, property and mode tests run again on the generic path
# (the one AVX2-only CPUs use today), whatever machine CI lands on.
lower_isas=()
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    lower_isas=(generic)
fi
for isa in "${lower_isas[@]}"; do
    step "Rust tests (CPU backend, HATEBM_CPU_ISA=$isa)"
    HATEBM_CPU_ISA=$isa cargo test -p hatebm-core -p hatebm-tests
done

if [[ $quick == 1 ]]; then
    exit 0
fi

step "MPI: data-parallel training under mpirun (bitwise equal at 1, 2, 4 processes)"
scripts/ensure-tools.sh mpi
# CI runs as root; OpenMPI refuses that unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cargo clippy -p hatebm-rs -p hatebm-cli --features mpi --all-targets -- -D warnings
cargo test -p hatebm-cli --features mpi --test mpi
scripts/mpi-c-test.sh

step "C ABI: header drift, C/C++ programs (plain, ASan+UBSan, Valgrind), packaging"
scripts/regen-header.sh --check
scripts/c-tests.sh

step "fuzzing: libFuzzer build (stable, coverage-instrumented) and 5 s per target"
scripts/fuzz.sh smoke 5

if [[ $tch == 1 ]]; then
    step "tch backend (libtorch CPU)"
    eval "$(scripts/setup-torch.sh --print-env)"
    # libtorch's OpenMP threads spin-wait by default, which starves a shared 2-core machine.
    export OMP_WAIT_POLICY=PASSIVE
    cargo test -p hatebm-tch --features tch
    cargo test -p hatebm-tests --features tch
    for isa in "${lower_isas[@]}"; do
        HATEBM_CPU_ISA=$isa cargo test -p hatebm-tests --features tch --test cross_backend
    done
    cargo test -p hatebm-ffi --features tch --test backend_swap --test parity
    cargo test -p hatebm-cli --features tch
fi

step "all tests passed in $(( $(date +%s) - t_start )) s"
