#!/usr/bin/env bash
# The experiments of docs/experiments.md: small-scale reproductions of the Hat EBM
# paper's qualitative claims on 2 CPU cores, each one command.
#
#   scripts/experiments.sh appf-digits   # App. F: historical vs current generator updates vs
#                                        #   cooperative learning (MLPs, 8x8 digits, 3 seeds)
#   scripts/experiments.sh appf-mnist    # App. F on MNIST-5k with small SN-GAN nets: also
#                                        #   cooperative learning with / without batch norm
#   scripts/experiments.sh apph          # App. H: joint Hat EBM with residual (refine) vs
#                                        #   the no-residual energy U(z) = H(G(z)) (digits, 3 seeds)
#   scripts/experiments.sh retrofit      # autoencoder on MNIST-5k, then a retrofit run on
#                                        #   its decoder: noise latents decoded vs Hat EBM samples
#   scripts/experiments.sh refine        # refinement of the pretrained digits generator:
#                                        #   its samples before vs after Hat EBM sampling (3 seeds)
#   scripts/experiments.sh bench         # CPU benchmark T1-T4 (scripts/bench.sh) with the load
#   scripts/experiments.sh all           # every experiment above except bench
#   scripts/experiments.sh tables        # only rebuild the tables from finished runs (rerunning an
#                                        #   experiment's command redraws its figures, no retraining)
#
# Environment:
#   EXP_OUT=out/experiments   run folders, tables (<exp>/table.md), curves
#   EXP_SEEDS="0 1 2"         seeds of the multi-seed experiments
#   EXP_FIGURES=docs/figures  where the small figures for docs/experiments.md are copied
#                             ("" = do not copy)
#   EXP_FORCE=1               rerun finished runs (default: a run with eval.json is kept)
#   HATEBM=path               the CLI binary (default: build target/release/hatebm)
#   HATEBM_BENCH_PY=path      bench: a bench/pytorch/bench.py to use when this checkout has none
#   HATEBM_TORCH_VENV=path    bench: the torch venv (scripts/setup-torch.sh)
#
# Every run is `hatebm train --config configs/experiments/<file>.toml --set ...`; the
# configs hold every setting (the script only adds seeds, output folders and pretrained
# weights). Wall times go to $EXP_OUT/<exp>/times.tsv. Tables need python3 (stdlib only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

exp="${1:-}"
case "$exp" in
    appf-digits|appf-mnist|apph|retrofit|refine|bench|all|tables) ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac

OUT="${EXP_OUT:-out/experiments}"
SEEDS="${EXP_SEEDS:-0 1 2}"
FIG="${EXP_FIGURES-docs/figures}"
FORCE="${EXP_FORCE:-0}"
CFG=configs/experiments
if [[ -z "${HATEBM:-}" ]]; then
    cargo build --release -q -p hatebm-cli --bin hatebm
    HATEBM="$root/target/release/hatebm"
fi
mkdir -p "$OUT"
[[ -n "$FIG" ]] && mkdir -p "$FIG"

log() { echo "experiments: $*" >&2; }

# elapsed T0_NS: seconds since T0 (from `date +%s%N`), one decimal.
elapsed() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

# machine NAME: one line describing where and how loaded the machine was.
machine() {
    local cpu
    cpu="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"
    echo "$(nproc) cores ($cpu), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# train EXP NAME CONFIG [--set k=v ...]: one training run into $OUT/EXP/NAME, timed.
train() {
    local e="$1" name="$2" cfg="$3"
    shift 3
    local dir="$OUT/$e/$name"
    if [[ "$FORCE" != 1 && -f "$dir/eval.json" ]]; then
        log "$e/$name: done already (EXP_FORCE=1 reruns)"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    log "$e/$name: $CFG/$cfg.toml $*"
    local t0
    t0=$(date +%s%N)
    "$HATEBM" train --config "$CFG/$cfg.toml" --set "output.dir=\"$dir\"" \
        --set 'output.progress="never"' "$@" >"$dir/train.log" 2>&1 || {
        log "$e/$name failed (see $dir/train.log):"
        tail -5 "$dir/train.log" >&2
        return 1
    }
    printf '%s\t%s\t%s\n' "$name" "$(elapsed "$t0")" "$(machine)" >>"$OUT/$e/times.tsv"
}

# compare EXP OUTFILE FILE KEYS [LOGKEYS] NAME=DIR...: overlaid curves.
compare() {
    local e="$1" out="$2" file="$3" keys="$4" logk="$5"
    shift 5
    local args=()
    for r in "$@"; do args+=("${r%%=*}=$OUT/$e/${r#*=}"); done
    "$HATEBM" compare --out "$OUT/$e/$out" --file "$file" --keys "$keys" \
        ${logk:+--log "$logk"} "${args[@]}" 2>/dev/null
}

# fig SRC DEST: copy a figure into $EXP_FIGURES.
fig() { [[ -n "$FIG" && -f "$1" ]] && cp "$1" "$FIG/$2" || true; }

# table EXP: the metrics table of an experiment (table.md), printed too.
table() {
    python3 - "$OUT/$1" "$1" <<'PY'
import json, math, os, statistics, sys
root, exp = sys.argv[1], sys.argv[2]
times = {}
if os.path.exists(f"{root}/times.tsv"):
    for line in open(f"{root}/times.tsv"):
        p = line.rstrip("\n").split("\t")
        times[p[0]] = float(p[1])
runs = sorted(d for d in os.listdir(root) if os.path.exists(f"{root}/{d}/eval.json"))
def metrics(d):
    rows = [json.loads(l) for l in open(f"{root}/{d}/metrics.jsonl")]
    tail = [r["loss_ebm"] for r in rows[-max(1, len(rows) // 10):]]
    return rows, tail
out = []
hdr = ("| run | iters | FD samples | FD generator (no MCMC) | FD training data (floor) | "
       "FD noise N(0,1) | precision | recall | mean loss_ebm (last 10 %) | max abs loss_ebm | "
       "final loss_gen | wall s |")
out.append(hdr)
out.append("|" + "---|" * (hdr.count("|") - 1))
summary = {}
for d in runs:
    r = json.load(open(f"{root}/{d}/eval.json"))
    fd = dict(r["frechet"])
    rows, tail = metrics(d)
    mx = max(abs(x["loss_ebm"]) for x in rows)
    lg = rows[-1].get("loss_gen")
    f = lambda v: "-" if v is None else (f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}")
    out.append(f"| {d} | {r['iteration']} | {f(fd.get('samples'))} | {f(fd.get('generator_no_mcmc'))} | "
               f"{f(fd.get('training_data'))} | {f(fd.get('noise_standard_normal'))} | "
               f"{f(r.get('precision'))} | {f(r.get('recall'))} | {f(statistics.mean(tail))} | {f(mx)} | "
               f"{f(lg)} | {times.get(d, float('nan')):.0f} |")
    arm = d.rsplit("_s", 1)[0] if "_s" in d and d.rsplit("_s", 1)[1].isdigit() else d
    summary.setdefault(arm, []).append((fd.get("samples"), fd.get("generator_no_mcmc"),
                                        r.get("precision"), r.get("recall"), statistics.mean(tail), mx))
out.append("")
if any(len(v) > 1 for v in summary.values()):
    out.append("Mean ± sd over seeds:")
    out.append("")
    out.append("| arm | seeds | FD samples | FD generator | precision | recall | mean loss_ebm (last 10 %) | max abs loss_ebm |")
    out.append("|---|---|---|---|---|---|---|---|")
    for arm, v in summary.items():
        def ms(i):
            xs = [x[i] for x in v if x[i] is not None]
            if not xs:
                return "-"
            m = statistics.mean(xs)
            s = statistics.stdev(xs) if len(xs) > 1 else 0.0
            g = lambda y: f"{y:.3g}" if abs(y) < 1e4 else f"{y:.2e}"
            return f"{g(m)} ± {g(s)}"
        out.append(f"| {arm} | {len(v)} | {ms(0)} | {ms(1)} | {ms(2)} | {ms(3)} | {ms(4)} | {ms(5)} |")
    out.append("")
r0 = json.load(open(f"{root}/{runs[0]}/eval.json")) if runs else {}
if r0:
    out.append(f"Feature space: {r0.get('feature_space')}; {r0.get('num_samples')} samples per source "
               f"vs {r0.get('num_heldout')} held-out images.")
text = "\n".join(out) + "\n"
open(f"{root}/table.md", "w").write(text)
print(text)
PY
}

# ---------------------------------------------------------------------------

appf_digits() {
    local e=appf-digits
    for s in $SEEDS; do
        for arm in historical current cooperative; do
            train $e "${arm}_s$s" "appf_digits_$arm" --set "seed=$s"
        done
    done
    local s0="${SEEDS%% *}"
    compare $e fd_curves.svg eval.jsonl fd_samples,recall fd_samples \
        historical="historical_s$s0" current="current_s$s0" cooperative="cooperative_s$s0"
    compare $e loss_curves.svg metrics.jsonl loss_ebm,loss_gen "" \
        historical="historical_s$s0" current="current_s$s0" cooperative="cooperative_s$s0"
    for arm in historical current cooperative; do
        fig "$OUT/$e/${arm}_s$s0/samples_000500.png" "appf_digits_${arm}_500.png"
        fig "$OUT/$e/${arm}_s$s0/samples_final.png" "appf_digits_${arm}_final.png"
    done
    fig "$OUT/$e/fd_curves.svg" appf_digits_fd.svg
    fig "$OUT/$e/loss_curves.svg" appf_digits_loss.svg
    table $e
}

appf_mnist() {
    local e=appf-mnist
    for arm in historical current coop_bn coop_nobn; do
        train $e "$arm" "appf_mnist_$arm"
    done
    compare $e fd_curves.svg eval.jsonl fd_samples,recall fd_samples \
        historical=historical current=current coop_bn=coop_bn coop_nobn=coop_nobn
    compare $e loss_curves.svg metrics.jsonl loss_ebm,loss_gen loss_gen \
        historical=historical current=current coop_bn=coop_bn coop_nobn=coop_nobn
    for arm in historical current coop_bn coop_nobn; do
        fig "$OUT/$e/$arm/samples_final.png" "appf_mnist_${arm}_final.png"
    done
    fig "$OUT/$e/fd_curves.svg" appf_mnist_fd.svg
    fig "$OUT/$e/loss_curves.svg" appf_mnist_loss.svg
    table $e
}

# The pretrained digits generator of apph / refine (a Hat EBM synthesis run).
digits_generator() {
    train pretrained digits_generator apph_digits_generator
    echo "$root/$OUT/pretrained/digits_generator/checkpoint.safetensors"
}

apph() {
    local e=apph g
    g="$(digits_generator)"
    for s in $SEEDS; do
        train $e "residual_s$s" apph_digits_residual --set "seed=$s" --set "model.pretrained_generator=\"$g\""
        train $e "no_residual_s$s" apph_digits_no_residual --set "seed=$s" --set "model.pretrained_generator=\"$g\""
    done
    local s0="${SEEDS%% *}"
    # One seed three times as long: does the no-residual model keep drifting?
    for arm in residual no_residual; do
        train $e "${arm}_long_s$s0" "apph_digits_$arm" --set "seed=$s0" --set train.steps=3000 \
            --set eval.every=300 --set "model.pretrained_generator=\"$g\""
    done
    compare $e loss_curves_long.svg metrics.jsonl loss_ebm,latent_norm latent_norm \
        residual="residual_long_s$s0" no_residual="no_residual_long_s$s0"
    compare $e fd_curves_long.svg eval.jsonl fd_samples,recall fd_samples \
        residual="residual_long_s$s0" no_residual="no_residual_long_s$s0"
    fig "$OUT/$e/loss_curves_long.svg" apph_loss_long.svg
    fig "$OUT/$e/fd_curves_long.svg" apph_fd_long.svg
    fig "$OUT/$e/no_residual_long_s$s0/samples_final.png" apph_no_residual_long_final.png
    fig "$OUT/$e/residual_long_s$s0/samples_final.png" apph_residual_long_final.png
    compare $e loss_curves.svg metrics.jsonl loss_ebm,energy_neg "" \
        residual="residual_s$s0" no_residual="no_residual_s$s0"
    compare $e fd_curves.svg eval.jsonl fd_samples,recall "" \
        residual="residual_s$s0" no_residual="no_residual_s$s0"
    fig "$OUT/pretrained/digits_generator/samples_final.png" apph_digits_generator.png
    fig "$OUT/$e/residual_s$s0/samples_final.png" apph_residual_final.png
    fig "$OUT/$e/no_residual_s$s0/samples_final.png" apph_no_residual_final.png
    fig "$OUT/$e/loss_curves.svg" apph_loss.svg
    fig "$OUT/$e/fd_curves.svg" apph_fd.svg
    table $e
}

retrofit() {
    local e=retrofit ae="$OUT/retrofit/autoencoder"
    if [[ "$FORCE" == 1 || ! -f "$ae/ae_decoder.safetensors" ]]; then
        mkdir -p "$ae"
        log "retrofit/autoencoder: pretrain-ae --config $CFG/retrofit_mnist_ae.toml"
        local t0
        t0=$(date +%s%N)
        "$HATEBM" pretrain-ae --config "$CFG/retrofit_mnist_ae.toml" \
            --set "output.dir=\"$ae\"" >"$ae/pretrain.log" 2>&1
        printf 'autoencoder\t%s\t%s\n' "$(elapsed "$t0")" "$(machine)" >>"$OUT/$e/times.tsv"
    fi
    train $e hat_ebm retrofit_mnist --set "model.pretrained_generator=\"$root/$ae/ae_decoder.safetensors\""
    # The same with half the EBM learning rate (is the late degradation a step-size effect?).
    train $e hat_ebm_lr5e-5 retrofit_mnist --set "model.pretrained_generator=\"$root/$ae/ae_decoder.safetensors\"" \
        --set ebm_optim.lr=5e-5
    # The decoder on noise latents (no MCMC) vs Hat EBM samples, same latents.
    "$HATEBM" sample --checkpoint "$OUT/$e/hat_ebm/checkpoint.safetensors" --n 64 --steps 0 \
        --out "$OUT/$e/decoder_noise" 2>/dev/null
    "$HATEBM" sample --checkpoint "$OUT/$e/hat_ebm/checkpoint.safetensors" --n 64 \
        --out "$OUT/$e/hat_ebm_samples" 2>/dev/null
    compare $e loss_curves.svg metrics.jsonl loss_ebm,drift_norm_res "" hat_ebm=hat_ebm "hat_ebm_lr5e-5=hat_ebm_lr5e-5"
    fig "$OUT/$e/loss_curves.svg" retrofit_loss.svg
    compare $e fd_curves.svg eval.jsonl fd_samples,recall "" hat_ebm=hat_ebm "hat_ebm_lr5e-5=hat_ebm_lr5e-5"
    fig "$ae/ae_reconstructions.png" retrofit_ae_reconstructions.png
    fig "$OUT/$e/decoder_noise/samples.png" retrofit_decoder_noise.png
    fig "$OUT/$e/hat_ebm_samples/samples.png" retrofit_hat_ebm.png
    fig "$OUT/$e/hat_ebm_lr5e-5/samples_000200.png" retrofit_hat_ebm_lr5e-5_200.png
    fig "$OUT/$e/fd_curves.svg" retrofit_fd.svg
    table $e
}

refine() {
    local e=refine g
    g="$(digits_generator)"
    for s in $SEEDS; do
        train $e "digits_s$s" refine_digits --set "seed=$s" --set "model.pretrained_generator=\"$g\""
    done
    local s0="${SEEDS%% *}"
    # Before (the generator alone) and after (Hat EBM sampling): same sampling seed.
    "$HATEBM" sample --checkpoint "$OUT/$e/digits_s$s0/checkpoint.safetensors" --n 64 --steps 0 \
        --out "$OUT/$e/before" 2>/dev/null
    "$HATEBM" sample --checkpoint "$OUT/$e/digits_s$s0/checkpoint.safetensors" --n 64 \
        --out "$OUT/$e/after" 2>/dev/null
    compare $e fd_curves.svg eval.jsonl fd_samples,fd_generator_no_mcmc "" \
        $(for s in $SEEDS; do printf 'seed%s=digits_s%s ' "$s" "$s"; done)
    fig "$OUT/$e/before/samples.png" refine_digits_before.png
    fig "$OUT/$e/after/samples.png" refine_digits_after.png
    fig "$OUT/$e/fd_curves.svg" refine_digits_fd.svg
    table $e
}

# The CPU benchmark T1-T4: scripts/bench.sh (CPU backend vs PyTorch eager; no tch
# build) with the machine's load recorded before and after. scripts/bench.sh needs
# bench/pytorch/bench.py; where this checkout lacks it, HATEBM_BENCH_PY may name
# another copy (it is run with the torch venv's python, in place), and the same three
# steps run here.
bench() {
    local e=bench o="$OUT/bench"
    mkdir -p "$o"
    log "bench: $(machine)"
    { echo "before: $(uptime)"; top -bn1 | head -15; } >"$o/load.txt"
    if [[ -f bench/pytorch/bench.py && -z "${HATEBM_BENCH_PY:-}" ]]; then
        scripts/bench.sh --configs T1,T2,T3,T4 --no-tch --out "$o"
    else
        local py="${HATEBM_BENCH_PY:?bench/pytorch/bench.py is missing: set HATEBM_BENCH_PY}"
        eval "$(scripts/setup-torch.sh --print-env)"
        export OMP_WAIT_POLICY=PASSIVE
        cargo build --release -q -p hatebm-benches
        ./target/release/hatebm-bench --backend cpu --configs T1,T2,T3,T4 --repeats 5 \
            --json-out "$o/rust_cpu.jsonl" >/dev/null
        python "$py" --configs T1,T2,T3,T4 --repeats 5 --threads 2 --json-out "$o/pytorch.jsonl" >/dev/null
        python3 - "$o" <<'PY'
import json, os, sys
o = sys.argv[1]
load = lambda n: {r["config"]: r for r in map(json.loads, open(os.path.join(o, n)))}
cpu, pt = load("rust_cpu.jsonl"), load("pytorch.jsonl")
lines = ["medians; ratio = PyTorch time / ours (> 1: we are faster)",
         f"{'cfg':<4}{'PyTorch ms':>12}{'cpu ms':>10}{'cpu GF/s':>10}{'ratio':>8}"]
for c in sorted(set(cpu) | set(pt)):
    p, a = pt.get(c, {}).get("sec_per_step"), cpu.get(c, {}).get("sec_per_step")
    g = cpu.get(c, {}).get("gflops")
    f = lambda v: f"{1e3 * v:.2f}" if v else "-"
    lines.append(f"{c:<4}{f(p):>12}{f(a):>10}{(f'{g:.1f}' if g else '-'):>10}"
                 f"{(f'{p / a:.2f}x' if p and a else '-'):>8}")
text = "\n".join(lines)
print(text)
open(os.path.join(o, "summary.txt"), "w").write(text + "\n")
PY
    fi
    echo "after: $(uptime)" >>"$o/load.txt"
    cat "$o/load.txt" >&2
}

case "$exp" in
    appf-digits) appf_digits ;;
    appf-mnist) appf_mnist ;;
    apph) apph ;;
    retrofit) retrofit ;;
    refine) refine ;;
    bench) bench ;;
    all) appf_digits; appf_mnist; apph; retrofit; refine ;;
    tables)
        for e in appf-digits appf-mnist apph retrofit refine; do
            if [[ -d "$OUT/$e" ]]; then table $e; fi
        done
        ;;
esac
