#!/usr/bin/env bash
# The libhatebm tch/CUDA check for a GPU machine: smoke binary, the tch unit, golden and
# cross-backend tests on cuda:0, and the GPU Langevin benchmark (ours vs PyTorch eager).
# One script, one total timeout; every stage logs to OUT_DIR and a summary is printed last.
#
# Usage:
#   scripts/gpu-check.sh [OUT_DIR]            run (default OUT_DIR: $OUT, else ./gpu-check-out)
#   scripts/gpu-check.sh --prepare DIR        build here (features tch,cuda) and copy the
#                                             binaries into DIR, for a machine without cargo
#
# Binaries: from $HATEBM_GPU_CHECK_PREBUILT (a DIR made by --prepare) if set, else built on the
# spot with cargo (`--features tch,cuda`). libtorch: $LIBTORCH, else the torch package of
# $PYTHON / python3 (LIBTORCH_USE_PYTORCH=1). tch 0.26 expects libtorch 2.13; another version
# is tried with LIBTORCH_BYPASS_VERSION_CHECK=1 and flagged in the summary. Prebuilt binaries
# run against the machine's libtorch through LD_LIBRARY_PATH (must be the version they were
# built against).
#
# Environment: HATEBM_GPU_CHECK_TIMEOUT total seconds (default 540), HATEBM_GPU_BENCH_ARGS
# (default "--nch 3 --ngf 128 --batch 128 --steps 50 --repeat 5"), PYTHON.
# Exit status: 0 if every stage passed, 1 otherwise.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
total=${HATEBM_GPU_CHECK_TIMEOUT:-540}
bench_args=${HATEBM_GPU_BENCH_ARGS:-"--nch 3 --ngf 128 --batch 128 --steps 50 --repeat 5"}
py=${PYTHON:-python3}
t_start=$SECONDS

# ---- libtorch environment -------------------------------------------------------------------
torch_env() {
    if [[ -n "${LIBTORCH:-}" ]]; then
        torch_lib="$LIBTORCH/lib"
        torch_ver="$(cat "$LIBTORCH/build-version" 2>/dev/null || echo unknown)"
        return
    fi
    if [[ -n "${HATEBM_TORCH_VENV:-}" ]] && scripts/setup-torch.sh --check 2>/dev/null; then
        eval "$(scripts/setup-torch.sh --print-env 2>/dev/null)"
        py=python
    fi
    torch_lib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)"
    torch_ver="$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
    export LIBTORCH_USE_PYTORCH=1
    # torch-sys runs `python3` (or `python` in a virtualenv): put ours first. A wrapper, not a
    # symlink: a venv's python finds its pyvenv.cfg through the path it is invoked by.
    local shim exe; shim="$(mktemp -d)"; exe="$(command -v "$py")"
    if [[ -n "$exe" ]]; then
        printf '#!/bin/sh\nexec %q "$@"\n' "$exe" >"$shim/python3"
        cp "$shim/python3" "$shim/python"; chmod +x "$shim/python3" "$shim/python"
        export PATH="$shim:$PATH"
    fi
    if [[ -z "$torch_lib" ]]; then
        version_note="no torch found for $py (set PYTHON or LIBTORCH)"
    fi
    if [[ -n "$torch_ver" && "${torch_ver%%+*}" != "2.13.0" ]]; then
        export LIBTORCH_BYPASS_VERSION_CHECK=1
        version_note="libtorch $torch_ver is not the 2.13.0 tch 0.26 expects (version check bypassed)"
    fi
}

# ---- --prepare: build here, copy the binaries ---------------------------------------------
if [[ "${1:-}" == "--prepare" ]]; then
    dest="${2:?--prepare needs a directory}"
    torch_env
    mkdir -p "$dest"
    set -e
    cargo build -p hatebm-tch --features tch,cuda --bins
    list="$(mktemp)"
    for spec in "-p hatebm-tch --features tch,cuda" "-p hatebm-tests --features cuda"; do
        # shellcheck disable=SC2086
        cargo test $spec --no-run --message-format=json 2>/dev/null \
            | "$py" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' >>"$list"
    done
    cp target/debug/hatebm-tch-smoke "$dest/"
    while read -r exe; do cp "$exe" "$dest/"; done <"$list"
    # Debug info makes each binary ~70 MB; stripped they are ~2-7 MB (the carry limit is 64 MiB).
    command -v strip >/dev/null && strip "$dest"/*
    echo "built against libtorch ${torch_ver:-?} ($torch_lib)" >"$dest/BUILT_WITH"
    du -sh "$dest"
    exit 0
fi

out="${1:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
failed=0
version_note=""
torch_env

left() { echo $((total - (SECONDS - t_start))); }
# stage NAME CAP_SECONDS CMD...: runs CMD with min(CAP, time left), logs to $out/NAME.log.
stage() {
    local name=$1 cap=$2; shift 2
    local t; t=$(left); ((t > cap)) && t=$cap
    if ((t < 15)); then
        echo "SKIP  $name (out of time)" | tee -a "$summary"; failed=1; return 1
    fi
    local t0=$SECONDS rc
    timeout --kill-after=10 "$t" "$@" >"$out/$name.log" 2>&1
    rc=$?
    if ((rc == 0)); then
        echo "PASS  $name ($((SECONDS - t0)) s)" | tee -a "$summary"
    else
        [[ $rc == 124 || $rc == 137 ]] && rc="$rc, timed out after $t s"
        echo "FAIL  $name (exit $rc, $((SECONDS - t0)) s; see $name.log)" | tee -a "$summary"
        failed=1
    fi
    return 0
}

{
    echo "date:      $(date -u +%FT%TZ)"
    echo "host:      $(uname -srm), $(nproc) CPUs"
    echo "gpu:       $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
    echo "torch:     ${torch_ver:-none} (${torch_lib:-no lib dir})"
    echo "cargo:     $(cargo --version 2>/dev/null || echo none)"
    echo "prebuilt:  ${HATEBM_GPU_CHECK_PREBUILT:-no}"
    [[ -n "$version_note" ]] && echo "NOTE:      $version_note"
} | tee "$out/env.txt"

# ---- binaries --------------------------------------------------------------------------------
if [[ -n "${HATEBM_GPU_CHECK_PREBUILT:-}" ]]; then
    bin="$HATEBM_GPU_CHECK_PREBUILT"
    export LD_LIBRARY_PATH="${torch_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export HATEBM_GOLDEN_DIR="$repo/tests/golden"
    # shellcheck disable=SC2317  # invoked through `bash -c` (export -f)
    run_tests() { # every prebuilt test binary whose name starts with one of "$@"
        local rc=0 f p
        for p in "$@"; do for f in "$bin/$p"-*; do
            [[ -x "$f" ]] || continue
            echo "== $f"; "$f" --test-threads 4 || rc=1
        done; done
        return "$rc"
    }
else
    if ! command -v cargo >/dev/null; then
        echo "FAIL  build (no cargo on this machine: run scripts/gpu-check.sh --prepare DIR elsewhere, carry DIR and set HATEBM_GPU_CHECK_PREBUILT)" | tee -a "$summary"
        cat "$summary"; exit 1
    fi
    export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-$(nproc)}
    stage build 330 bash -c 'cargo build -p hatebm-tch --features tch,cuda --bins &&
        cargo test -p hatebm-tch --features tch,cuda --no-run &&
        cargo test -p hatebm-tests --features cuda --no-run' || true
    bin="target/debug"
    # shellcheck disable=SC2317  # invoked through `bash -c` (export -f)
    run_tests() { # the same suites through cargo (already built)
        local rc=0 p
        for p in "$@"; do case $p in
            hatebm_tch) cargo test -p hatebm-tch --features tch,cuda --lib -- --test-threads 4 || rc=1 ;;
            *) cargo test -p hatebm-tests --features cuda --test "$p" -- --test-threads 4 || rc=1 ;;
        esac; done
        return "$rc"
    }
fi
export bin
export -f run_tests

# ---- smoke: versions, CUDA visibility, Langevin on every device --------------------------------
stage smoke 90 "$bin/hatebm-tch-smoke" --backends tch:cpu,tch:cuda:0 --json "$out/smoke.json"
grep -q "CUDA available   : true" "$out/smoke.log" 2>/dev/null ||
    { echo "FAIL  cuda-visible (the binary sees no CUDA; see smoke.log)" | tee -a "$summary"; failed=1; }

# ---- tests on cuda:0 ---------------------------------------------------------------------------
export HATEBM_TEST_TCH_DEVICE=cuda:0
stage tests-unit 60 bash -c 'run_tests hatebm_tch' || true
stage tests-golden 150 bash -c 'run_tests golden_networks golden_algorithms' || true
stage tests-cross 120 bash -c 'run_tests cross_backend' || true
grep -h "^test .*FAILED\|panicked" "$out"/tests-*.log 2>/dev/null | head -20 >>"$summary"

# ---- benchmark: ours (portable / device noise, exact fp32 and TF32) vs PyTorch eager ----------
# shellcheck disable=SC2086
{
    stage bench-ours 100 "$bin/hatebm-tch-smoke" --backends tch:cuda:0 $bench_args --json "$out/bench-ours.json"
    stage bench-ours-devnoise 100 "$bin/hatebm-tch-smoke" --backends tch:cuda:0 $bench_args --noise device --json "$out/bench-ours-devnoise.json"
    stage bench-ours-tf32 100 "$bin/hatebm-tch-smoke" --backends tch:cuda:0 $bench_args --noise device --tf32 --cudnn-benchmark --json "$out/bench-ours-tf32.json"
    stage bench-pytorch 100 "$py" gpu/bench/langevin_pytorch.py $bench_args --json "$out/bench-pytorch.json"
    stage bench-pytorch-tf32 100 "$py" gpu/bench/langevin_pytorch.py $bench_args --tf32 --json "$out/bench-pytorch-tf32.json"
} || true
{
    echo "--- GPU Langevin benchmark (ms/step, median; $bench_args)"
    for f in bench-ours bench-ours-devnoise bench-ours-tf32 bench-pytorch bench-pytorch-tf32; do
        [[ -f "$out/$f.json" ]] || continue
        "$py" - "$out/$f.json" "$f" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
rows = d["results"] if "results" in d else [d]
print(f"{sys.argv[2]:<22}", f"{rows[0]['ms_per_step_median']:9.3f}" if rows else "   failed")
EOF
    done
} | tee -a "$summary"

echo "--- total $((SECONDS - t_start)) s; results in $out" | tee -a "$summary"
[[ -n "$version_note" ]] && echo "NOTE: $version_note" | tee -a "$summary"
exit $failed
