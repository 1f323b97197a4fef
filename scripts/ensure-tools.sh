#!/usr/bin/env bash
# Installs, idempotently, the tools the C-ABI checks need on a fresh machine:
#   cbindgen (pinned; only for the header drift check / regeneration),
#   cmake, pkg-config, valgrind, make, a C/C++ compiler.
# Safe to run repeatedly: each tool is installed only when missing (or, for
# cbindgen, when the installed version differs from the pin).
#
#   scripts/ensure-tools.sh              # everything
#   scripts/ensure-tools.sh cbindgen     # just cbindgen
#   scripts/ensure-tools.sh c            # just the C toolchain (cmake, pkg-config, valgrind)
#   scripts/ensure-tools.sh mpi          # OpenMPI and libclang (the `mpi` feature)
#
# The cbindgen version is pinned because point releases change the generated
# header byte for byte, which would make the drift check flap.
# 0.29.2: >= 0.28 (needed for edition-2024 `#[unsafe(no_mangle)]`), and measured
# to install from crates.io on these machines in under a minute. Bump it only
# together with a regenerated include/hatebm.h.
set -euo pipefail

CBINDGEN_VERSION="${HATEBM_CBINDGEN_VERSION:-0.29.2}"

log() { printf 'ensure-tools: %s\n' "$*" >&2; }

need_cbindgen() {
    local have
    have="$(cbindgen --version 2>/dev/null | awk '{print $2}' || true)"
    [[ "$have" != "$CBINDGEN_VERSION" ]]
}

ensure_cbindgen() {
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    if need_cbindgen; then
        log "installing cbindgen $CBINDGEN_VERSION (cargo install --locked)"
        cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --force --quiet
    fi
    log "cbindgen $(cbindgen --version | awk '{print $2}')"
}

APT_UPDATED=0
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get not found; please install: $*"
        return 1
    fi
    local sudo=""
    if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
    if [[ $APT_UPDATED == 0 ]]; then
        $sudo apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_c_tools() {
    local missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
    fi
    log "cmake $(cmake --version | head -n1 | awk '{print $3}'), pkg-config $(pkg-config --version), $(valgrind --version)"
}

# OpenMPI (mpirun, libmpi and its headers) and libclang, which the `mpi`
# crate's bindgen needs, for the `mpi` feature and its tests.
ensure_mpi() {
    local missing=()
    command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
    command -v mpicc >/dev/null 2>&1 || missing+=(libopenmpi-dev)
    # libclang.so itself (libclang-cpp, which other packages bring, is not enough).
    if ! compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null && ! compgen -G '/usr/lib/*/libclang.so' >/dev/null; then
        missing+=(libclang-dev)
    fi
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
    fi
    log "$(mpirun --version 2>/dev/null | head -n1)"
}

what="${1:-all}"
case "$what" in
    all) ensure_c_tools; ensure_cbindgen; ensure_mpi ;;
    cbindgen) ensure_cbindgen ;;
    c) ensure_c_tools ;;
    mpi) ensure_mpi ;;
    *) echo "usage: $0 [all|cbindgen|c|mpi]" >&2; exit 2 ;;
esac
