#!/usr/bin/env bash
# Side-by-side benchmark: libhatebm (CPU backend, and the tch backend on libtorch CPU unless
# --no-tch) against PyTorch eager (bench/pytorch/bench.py) on the same configurations T1-T4,
# with the ratios. Sets up the project-local torch venv if needed (scripts/setup-torch.sh).
#
#   scripts/bench.sh [--configs T1,T2,T3,T4] [--repeats 5] [--no-tch] [--out DIR]
#
# Results: DIR/{rust_cpu,rust_tch,pytorch}.jsonl and DIR/summary.txt (default DIR: out/bench).
# The machines are shared and noisy: run on an otherwise idle machine and quote medians.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

configs="T1,T2,T3,T4"
repeats=5
tch=1
out="out/bench"
while (($#)); do
    case "$1" in
        --configs) configs="$2"; shift 2 ;;
        --repeats) repeats="$2"; shift 2 ;;
        --no-tch) tch=0; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"

eval "$(scripts/setup-torch.sh --print-env)"
export OMP_WAIT_POLICY=PASSIVE

echo "bench.sh: building (release)" >&2
cargo build --release -q -p hatebm-benches
./target/release/hatebm-bench --backend cpu --configs "$configs" --repeats "$repeats" --json-out "$out/rust_cpu.jsonl" >/dev/null
if [[ $tch == 1 ]]; then
    cargo build --release -q -p hatebm-benches --features tch
    ./target/release/hatebm-bench --backend tch:cpu --configs "$configs" --repeats "$repeats" --json-out "$out/rust_tch.jsonl" >/dev/null
    # The default-feature binary is rebuilt so later runs do not need libtorch.
    cargo build --release -q -p hatebm-benches
fi
python bench/pytorch/bench.py --configs "$configs" --repeats "$repeats" --threads 2 --json-out "$out/pytorch.jsonl" >/dev/null

python - "$out" <<'PY'
import json, sys, os, platform
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name)
    return {r["config"]: r for r in map(json.loads, open(p))} if os.path.exists(p) else {}
cpu, tch, pt = load("rust_cpu.jsonl"), load("rust_tch.jsonl"), load("pytorch.jsonl")
lines = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; medians; "
         "ratio = PyTorch time / ours (> 1: we are faster)",
         f"{'cfg':<4}{'PyTorch ms':>12}{'cpu ms':>10}{'cpu GF/s':>10}{'cpu ratio':>11}{'tch ms':>10}{'tch ratio':>11}"]
for c in sorted(set(cpu) | set(pt) | set(tch)):
    p = pt.get(c, {}).get("sec_per_step")
    a = cpu.get(c, {}).get("sec_per_step")
    t = tch.get(c, {}).get("sec_per_step")
    f = lambda v: f"{1e3 * v:.3f}" if v else "-"
    r = lambda v: f"{p / v:.2f}x" if (p and v) else "-"
    g = cpu.get(c, {}).get("gflops")
    lines.append(f"{c:<4}{f(p):>12}{f(a):>10}{(f'{g:.1f}' if g else '-'):>10}{r(a):>11}{f(t):>10}{r(t):>11}")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "summary.txt"), "w").write(text + "\n")
PY
