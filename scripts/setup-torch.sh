#!/usr/bin/env bash
# Create (or reuse) the project-local PyTorch environment `.venv-torch/`.
#
# The venv serves two purposes:
#   * the PyTorch reference scripts in bench/pytorch/ (golden check, benchmark);
#   * building the optional `tch` backend (gpu/, crate hatebm-tch): tch 0.26 builds against
#     PyPI's torch==2.13.0 when LIBTORCH_USE_PYTORCH=1 and this venv's python is first on PATH.
#
# Usage:
#   scripts/setup-torch.sh               install if needed, then print a summary (stderr)
#                                        and the export lines (stdout)
#   scripts/setup-torch.sh --print-env   same, but print only the export lines:
#                                            eval "$(scripts/setup-torch.sh --print-env)"
#   scripts/setup-torch.sh --check       exit 0 if the venv is complete, 1 otherwise; installs nothing
#   scripts/setup-torch.sh --force       delete and recreate the venv
#   scripts/setup-torch.sh --help
#
# Environment:
#   PYTHON                 interpreter used to create the venv (default: python3); CPython >= 3.11
#                          (numpy 2.4 requires Python >= 3.11)
#   HATEBM_TORCH_VENV      venv location (default: <repo>/.venv-torch)
#
# PyPI's torch wheel is a CUDA build: it pulls the nvidia-*/triton wheels (~5 GB in all) and
# `import torch` fails without them, so there is no CPU-only install from PyPI alone (the CPU-only
# wheels live on PyTorch's own package index). The same venv serves CPU and GPU machines.
#
# The venv is considered complete when its stamp file (.hatebm-torch-stamp) records exactly the
# versions below; the stamp is written last, so an interrupted install is redone.
set -euo pipefail

readonly TORCH_VERSION="2.13.0"      # the libtorch version tch 0.26 expects
readonly NUMPY_VERSION="2.4.6"
readonly SAFETENSORS_VERSION="0.8.0"
readonly STAMP_NAME=".hatebm-torch-stamp"

die() {
    printf 'setup-torch.sh: error: %s\n' "$*" >&2
    exit 1
}
log() {
    printf 'setup-torch.sh: %s\n' "$*" >&2
}
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}

mode="install"
force=0
for arg in "$@"; do
    case "$arg" in
        --print-env) mode="print-env" ;;
        --check) mode="check" ;;
        --force) force=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage; die "unknown argument '$arg'" ;;
    esac
done

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
venv="${HATEBM_TORCH_VENV:-$repo_root/.venv-torch}"
python_bin="${PYTHON:-python3}"

venv_python="$venv/bin/python"
stamp="$venv/$STAMP_NAME"

# The stamp must hold exactly these lines, plus one torch_lib=<path> line.
expected_stamp_head() {
    printf 'hatebm-torch-stamp 1\ntorch=%s\nnumpy=%s\nsafetensors=%s\n' \
        "$TORCH_VERSION" "$NUMPY_VERSION" "$SAFETENSORS_VERSION"
}

# Prints the recorded torch/lib path if the venv is complete, fails otherwise.
complete_torch_lib() {
    [[ -f "$stamp" && -x "$venv_python" ]] || return 1
    local recorded
    recorded="$(grep -v '^torch_lib=' "$stamp")" || return 1
    [[ "$recorded" == "$(expected_stamp_head)" ]] || return 1
    local lib
    lib="$(sed -n 's/^torch_lib=//p' "$stamp")"
    [[ -n "$lib" && -f "$lib/libtorch_cpu.so" ]] || return 1
    # The interpreter must still run (a venv breaks when its base python is removed or upgraded).
    "$venv_python" -c 'import sys' >/dev/null 2>&1 || return 1
    printf '%s\n' "$lib"
}

check_base_python() {
    command -v "$python_bin" >/dev/null 2>&1 \
        || die "'$python_bin' not found; install CPython >= 3.11 (Debian: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3"
    "$python_bin" -c 'import sys; sys.exit(0 if sys.implementation.name == "cpython" and sys.version_info >= (3, 11) else 1)' \
        || die "'$python_bin' is $("$python_bin" -V 2>&1); numpy $NUMPY_VERSION and torch $TORCH_VERSION need CPython >= 3.11 (set PYTHON=...)"
    "$python_bin" -c 'import venv, ensurepip' >/dev/null 2>&1 \
        || die "'$python_bin' cannot create virtual environments (no venv/ensurepip module); on Debian: apt-get install python3-venv (or python3.X-venv for your version)"
}

install_venv() {
    check_base_python
    if [[ -e "$venv" ]]; then
        if [[ $force -eq 1 ]] || ! "$venv_python" -c 'import sys' >/dev/null 2>&1; then
            [[ -f "$venv/pyvenv.cfg" ]] \
                || die "$venv exists but is not a virtual environment (no pyvenv.cfg); remove it or set HATEBM_TORCH_VENV"
            log "removing $venv"
            rm -rf -- "$venv"
        fi
    fi
    if [[ ! -e "$venv" ]]; then
        log "creating venv $venv with $("$python_bin" -V 2>&1)"
        "$python_bin" -m venv "$venv" >&2 || die "python -m venv failed (Debian: apt-get install python3-venv)"
    fi
    rm -f -- "$stamp"

    # All pip output goes to stderr: stdout carries only the export lines.
    local pip=("$venv_python" -m pip --disable-pip-version-check)
    local start=$SECONDS
    log "installing torch==$TORCH_VERSION (with its CUDA wheels, ~5 GB), numpy==$NUMPY_VERSION, safetensors==$SAFETENSORS_VERSION"
    "${pip[@]}" install "torch==$TORCH_VERSION" "numpy==$NUMPY_VERSION" "safetensors==$SAFETENSORS_VERSION" >&2 \
        || die "pip install failed (network? disk space? no wheel for $("$venv_python" -V 2>&1)? see the pip output above)"

    local lib
    lib="$("$venv_python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" \
        || die "the installed torch does not import; see the traceback above"
    local got
    got="$("$venv_python" -c 'import torch; print(torch.__version__.split("+")[0])')"
    [[ "$got" == "$TORCH_VERSION" ]] || die "installed torch is $got, expected $TORCH_VERSION"
    [[ -f "$lib/libtorch_cpu.so" ]] || die "no libtorch_cpu.so in $lib"

    { expected_stamp_head; printf 'torch_lib=%s\n' "$lib"; } >"$stamp.tmp"
    mv -f -- "$stamp.tmp" "$stamp"
    log "installed in $((SECONDS - start)) s; venv size $(du -sh "$venv" | cut -f1)"
}

print_exports() {
    local lib=$1
    printf 'export LIBTORCH_USE_PYTORCH=1\n'
    printf 'export HATEBM_TORCH_VENV=%q\n' "$venv"
    printf 'export HATEBM_TORCH_LIB=%q\n' "$lib"
    # shellcheck disable=SC2016  # $PATH is meant to expand where the line is eval'd
    printf 'export PATH=%q:"$PATH"\n' "$venv/bin"
}

case "$mode" in
    check)
        if lib="$(complete_torch_lib)"; then
            log "complete: $venv (torch $TORCH_VERSION, torch/lib $lib)"
            exit 0
        fi
        log "not complete: $venv (run scripts/setup-torch.sh)"
        exit 1
        ;;
esac

if [[ $force -eq 1 ]] || ! lib="$(complete_torch_lib)"; then
    install_venv
    lib="$(complete_torch_lib)" || die "venv still incomplete after the install (see above)"
else
    log "reusing $venv (torch $TORCH_VERSION)"
fi

if [[ "$mode" == "install" ]]; then
    log "python:    $venv_python"
    log "torch/lib: $lib   (link with -Wl,-rpath,$lib)"
    log "for a build:  eval \"\$(scripts/setup-torch.sh --print-env)\""
fi
print_exports "$lib"
