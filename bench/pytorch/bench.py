"""PyTorch reference benchmark, to be read side by side with the Rust benchmark.

Configs (names are part of the contract with the Rust side):

  T1  MLP energy 2-128-128-128-1, batch 1000                      Langevin-equivalent step
  T2  EBMSNGAN32, nch 1, ngf 64, batch 64                           Langevin-equivalent step
  T3  EBMSNGAN32, nch 3, ngf 128, batch 32                          Langevin-equivalent step
  T4  one conditional Hat EBM training iteration (Algorithm 1): K = 20 residual Langevin steps,
      EBM EBMSNGAN32(nch 1, ngf 64), generator GenSNGAN32(nz 64, ngf 64, nch 1, out_factor 2),
      batch 64, bank 1000, CIFAR-10 synthesis preset (eps 5e-4, T 1e-3, clip 2.5, data eps
      1e-3, Keras Adam lr 1e-4 / eps 1e-7 for both nets, generator loss x1000), random data

T1-T3 time one *Langevin-equivalent step*: the energy of the batch and its gradient w.r.t. the
input, ``torch.autograd.grad(U.sum(), x)``, with no parameter requiring grad (as in a sampler).
The update x <- x - s g + eps xi itself is not timed. T4 times a whole training iteration
(noise draws included, data batch drawn beforehand). Each JSON object also records the share
of the CPUs that other processes used during each timed repeat, since the machine is shared;
``--retry-contended N`` redoes contended repeats (see docs/benchmarks-pytorch.md).

FLOPs (T1-T3), counted identically on the Rust side (see flops_per_sample()):
    FLOPs per sample = 2 FLOP/MAC x 2 passes x MACs_fwd
where MACs_fwd counts only the multiply-accumulates of the convolutions and linear layers
(bias adds, activations, pooling, batch norm, reductions are not counted), and the 2 passes
are the forward and the input-gradient backward, whose MACs equal the forward MACs layer by
layer -- including the first layer, whose input gradient *is* the result. Weight gradients
are not computed and not counted.

Output: one JSON object per config on stdout (and in --json-out FILE, JSON lines), a human
table on stderr. Medians over --repeats timed repeats after a warm-up.

    .venv-torch/bin/python bench/pytorch/bench.py [--configs T1,T2,T3,T4] [--repeats 7]
        [--threads 2] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hatebm_ref as ref  # noqa: E402

# --------------------------------------------------------------------------------------------
# FLOP counting (explicit, so that the Rust benchmark can reproduce it line by line)
# --------------------------------------------------------------------------------------------


def mlp_macs_per_sample(dims: Sequence[int]) -> int:
    """Forward MACs of an MLP: sum over layers of d_in * d_out."""
    return sum(dims[i] * dims[i + 1] for i in range(len(dims) - 1))


def ebm_sngan_macs_per_sample(res: int, nch: int, ngf: int) -> int:
    """Forward MACs of EBMSNGAN32/64/128 for one [nch, res, res] sample.

    Per block with input n x n, Cin -> Cout (3x3 convs, padding 1, so n x n outputs):
        conv1     n^2 * Cout * Cin * 9
        conv2     n^2 * Cout * Cout * 9
        shortcut  stem (block1):  (n/2)^2 * Cin * Cout if downsampling (pool *before* the 1x1
                                  conv), else n^2 * Cin * Cout
                  other blocks:   n^2 * Cin * Cout if the block has a 1x1 shortcut (conv
                                  *before* the pool); 0 for an identity shortcut
        then n <- n/2 if the block downsamples
    head: C_last (linear C_last -> 1, after the global average pool).
    """
    macs = 0
    n = res
    for spec in ref.ebm_sngan_specs(res, nch, ngf):
        macs += n * n * spec.cout * spec.cin * 9  # conv1
        macs += n * n * spec.cout * spec.cout * 9  # conv2
        if spec.stem:
            m = n // 2 if spec.downsample else n
            macs += m * m * spec.cin * spec.cout
        elif spec.cin != spec.cout or spec.downsample:
            macs += n * n * spec.cin * spec.cout
        if spec.downsample:
            n //= 2
    macs += ref.ebm_sngan_specs(res, nch, ngf)[-1].cout  # fc, no bias
    return macs


def flops_per_sample(macs_fwd: int) -> int:
    """Langevin-equivalent step: forward + input-gradient backward, 2 FLOP per MAC."""
    return 2 * 2 * macs_fwd


def hook_macs_per_sample(model: nn.Module, x: Tensor) -> int:
    """Independent count with forward hooks on every Conv2d / Linear (used as a self-check of
    the explicit formulas above)."""
    total = 0

    def hook(mod: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += out.numel() * k
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total // x.shape[0]


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


class CpuMonitor:
    """CPU time used by *other* processes while a repeat runs (the machine is shared).

    foreign_share = (system-wide busy CPU time - this process's CPU time) / (wall x ncpu), from
    /proc/stat (Linux; None elsewhere). steal_share is the hypervisor's steal time likewise. A
    foreign share above ~0.05 means the figures are contended: with 2 OpenMP threads on 2
    cores, one busy core can slow a step down by 10-100x (threads wait at barriers).
    """

    def __init__(self) -> None:
        self.ncpu = os.cpu_count() or 1
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start = self._sample()

    @staticmethod
    def _proc_stat() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        steal = fields[7] if len(fields) > 7 else 0
        busy = sum(fields[:8]) - idle - steal  # guest time is already in user
        return busy, steal

    def _sample(self) -> tuple[float, float, tuple[int, int] | None]:
        return time.perf_counter(), time.process_time(), self._proc_stat()

    def shares(self) -> dict[str, float | None]:
        wall1, own1, stat1 = self._sample()
        wall0, own0, stat0 = self.start
        if stat0 is None or stat1 is None or wall1 <= wall0:
            return {"foreign_cpu_share": None, "steal_share": None}
        capacity = (wall1 - wall0) * self.ncpu
        busy = (stat1[0] - stat0[0]) / self.tick
        steal = (stat1[1] - stat0[1]) / self.tick
        foreign = max(0.0, busy - (own1 - own0)) / capacity
        return {"foreign_cpu_share": round(foreign, 4), "steal_share": round(steal / capacity, 4)}


def wait_until_quiet(max_wait_s: float, threshold: float = 0.05, window_s: float = 2.0) -> float:
    """Wait (at most ``max_wait_s``) for a ``window_s`` window in which the CPUs are less than
    ``threshold`` busy. Returns the busy share of the last window (1.0 if unknown)."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        monitor = CpuMonitor()
        time.sleep(window_s)
        share = monitor.shares()["foreign_cpu_share"]
        if share is None:
            return 1.0
        if share < threshold or time.perf_counter() >= deadline:
            return share


@dataclass
class Timing:
    per_unit: list[float]  # seconds per unit (step or iteration) of the kept repeats
    units_per_repeat: int
    foreign: list[float | None]  # foreign CPU share of each kept repeat
    steal: list[float | None]
    extras: list[dict[str, float]]  # per kept repeat, whatever the repeat function returned
    runs: int  # repeats run in all (kept + discarded)

    @property
    def median(self) -> float:
        return statistics.median(self.per_unit)

    def load_fields(self) -> dict[str, object]:
        known = [f for f in self.foreign if f is not None]
        steal = [f for f in self.steal if f is not None]
        return {
            "foreign_cpu_share": max(known) if known else None,
            "foreign_cpu_share_per_repeat": self.foreign,
            "steal_share": max(steal) if steal else None,
            "repeats_run": self.runs,
            "repeats_discarded": self.runs - len(self.per_unit),
        }


def timed_repeats(run_repeat: Callable[[], tuple[float, dict[str, float]]], repeats: int,
                  units_per_repeat: int, max_foreign: float, max_redos: int) -> Timing:
    """Run ``repeats`` timed repeats; ``run_repeat`` returns (seconds per unit, extras).

    Each repeat's foreign CPU share is measured. A contended repeat (share > max_foreign) is
    redone, at most ``max_redos`` times per config in all; then the ``repeats`` least
    contended repeats are kept (all of them when max_redos is 0)."""
    runs: list[tuple[float, dict[str, float], float | None, float | None]] = []
    clean = 0
    while clean < repeats and len(runs) < repeats + max(max_redos, 0):
        if len(runs) >= repeats and max_redos <= 0:
            break
        monitor = CpuMonitor()
        sec, extras = run_repeat()
        shares = monitor.shares()
        share = shares["foreign_cpu_share"]
        runs.append((sec, extras, share, shares["steal_share"]))
        if share is None or share <= max_foreign:
            clean += 1
    order = sorted(range(len(runs)), key=lambda i: (runs[i][2] or 0.0, i))
    kept = sorted(order[:repeats])
    return Timing([runs[i][0] for i in kept], units_per_repeat, [runs[i][2] for i in kept],
                  [runs[i][3] for i in kept], [runs[i][1] for i in kept], len(runs))


def time_steps(fn: Callable[[], object], args: argparse.Namespace) -> Timing:
    """Warm up for at least --warmup-seconds (and 3 calls), estimate the time per call, then
    time --repeats repeats of n calls each, n chosen so that a repeat lasts about
    --repeat-seconds."""
    clock = time.perf_counter
    calls, start = 0, clock()
    while calls < 3 or clock() - start < args.warmup_seconds:
        fn()
        calls += 1
    estimate = (clock() - start) / calls
    n = max(1, round(args.repeat_seconds / estimate))

    def run_repeat() -> tuple[float, dict[str, float]]:
        t0 = clock()
        for _ in range(n):
            fn()
        return (clock() - t0) / n, {}

    return timed_repeats(run_repeat, args.repeats, n, args.max_foreign, args.retry_contended)


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepConfig:
    name: str
    description: str
    batch: int
    make_model: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # per sample
    macs_per_sample: int


STEP_CONFIGS: dict[str, StepConfig] = {
    "T1": StepConfig("T1", "MLP energy 2-128-128-128-1", 1000,
                     lambda: ref.MLPEnergy([2, 128, 128, 128, 1]), (2,),
                     mlp_macs_per_sample([2, 128, 128, 128, 1])),
    "T2": StepConfig("T2", "EBMSNGAN32 nch 1 ngf 64", 64,
                     lambda: ref.EBMSNGAN32(1, 64), (1, 32, 32),
                     ebm_sngan_macs_per_sample(32, 1, 64)),
    "T3": StepConfig("T3", "EBMSNGAN32 nch 3 ngf 128", 32,
                     lambda: ref.EBMSNGAN32(3, 128), (3, 32, 32),
                     ebm_sngan_macs_per_sample(32, 3, 128)),
}

T4_BATCH = 64
T4_BANK = 1000
T4_NZ = 64
T4_CONFIG = ref.TrainConfig(
    mcmc_steps=20, epsilon=5e-4, mcmc_temp=1e-3, clip_langevin_grad_res=True,
    max_langevin_norm_res=2.5, tau_res=0.0, use_noise=True, init_scale_latent=1.0,
    init_scale_res=0.0, data_epsilon=1e-3, ebm_lr=1e-4, gen_lr=1e-4, adam_eps=1e-7,
    clip_ebm_grad=False, gen_loss_factor_coop=1000.0,
)
T4_DESCRIPTION = (f"train iter K {T4_CONFIG.mcmc_steps}, EBMSNGAN32(1,64), "
                  f"GenSNGAN32({T4_NZ},64,1)")
ALL_CONFIGS = ["T1", "T2", "T3", "T4"]


def torch_version() -> str:
    return torch.__version__.split("+")[0]


def common_fields(threads: int) -> dict[str, object]:
    return {
        "torch": torch_version(),
        "threads": threads,
        "torch_build": torch.__version__,
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
    }


def run_step_config(cfg: StepConfig, args: argparse.Namespace, gen: torch.Generator
                    ) -> dict[str, object]:
    model = ref.glorot_init_(cfg.make_model(), gen).eval()
    ref.set_requires_grad(model, False)  # a sampler never needs weight gradients
    x = torch.rand(cfg.batch, *cfg.input_shape, generator=gen) * 2.0 - 1.0

    hook_macs = hook_macs_per_sample(model, x[:1])
    if hook_macs != cfg.macs_per_sample:
        raise AssertionError(f"{cfg.name}: explicit MACs {cfg.macs_per_sample} != "
                             f"hook count {hook_macs}")

    def step() -> Tensor:
        xx = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xx).sum(), xx)
        return g

    timing = time_steps(step, args)
    sec = timing.median
    flops_step = flops_per_sample(cfg.macs_per_sample) * cfg.batch
    return {
        "config": cfg.name,
        "sec_per_step": sec,
        "samples_steps_per_s": cfg.batch / sec,
        "gflops": flops_step / sec / 1e9,
        **common_fields(args.threads),
        "description": cfg.description,
        "unit": "langevin_step",
        "batch": cfg.batch,
        "macs_per_sample": cfg.macs_per_sample,
        "flops_per_step": flops_step,
        "repeats": args.repeats,
        "steps_per_repeat": timing.units_per_repeat,
        "sec_per_step_min": min(timing.per_unit),
        "sec_per_step_max": max(timing.per_unit),
        "sec_per_step_all": timing.per_unit,
        **timing.load_fields(),
    }


def run_train_config(args: argparse.Namespace, gen: torch.Generator) -> dict[str, object]:
    cfg = T4_CONFIG
    ebm = ref.glorot_init_(ref.EBMSNGAN32(1, 64), gen).eval()
    generator = ref.glorot_init_(ref.GenSNGAN32(T4_NZ, 64, 1, 2.0), gen).eval()
    ref.set_requires_grad(ebm, False)
    ref.set_requires_grad(generator, False)
    x_shape = (1, 32, 32)

    # Bank starts as z ~ N(0, I), x = G(z).
    bank_z = torch.randn(T4_BANK, T4_NZ, generator=gen)
    with torch.no_grad():
        bank_x = torch.cat([generator(chunk) for chunk in bank_z.split(250)])
    state = ref.make_train_state(ebm, generator, bank_z, bank_x, cfg, ema_decay=None)

    def iteration() -> tuple[float, dict[str, float]]:
        data = torch.rand(T4_BATCH, *x_shape, generator=gen) * 2.0 - 1.0  # not timed
        phases: dict[str, float] = {}
        t0 = time.perf_counter()
        noise = ref.draw_step_noise(T4_BATCH, T4_NZ, x_shape, cfg.mcmc_steps, T4_BANK, gen)
        ref.train_step(state, data, noise, cfg, phases)
        total = time.perf_counter() - t0
        phases["noise"] = total - sum(phases.values())
        return total, phases

    for _ in range(args.t4_warmup):
        iteration()
    timing = timed_repeats(iteration, args.repeats, 1, args.max_foreign, args.retry_contended)
    totals = timing.per_unit
    sec = timing.median
    phase_medians = {k: statistics.median(p[k] for p in timing.extras)
                     for k in ("noise", "langevin", "ebm_update", "gen_update")}
    langevin_flops = (flops_per_sample(ebm_sngan_macs_per_sample(32, 1, 64)) * T4_BATCH
                      * cfg.mcmc_steps)
    return {
        "config": "T4",
        "sec_per_step": sec,
        "samples_steps_per_s": T4_BATCH * cfg.mcmc_steps / sec,
        "gflops": None,
        **common_fields(args.threads),
        "description": T4_DESCRIPTION,
        "unit": "train_iteration",
        "batch": T4_BATCH,
        "bank": T4_BANK,
        "mcmc_steps": cfg.mcmc_steps,
        "repeats": args.repeats,
        "steps_per_repeat": 1,
        "sec_per_step_min": min(totals),
        "sec_per_step_max": max(totals),
        "sec_per_step_all": totals,
        "phase_sec_median": phase_medians,
        "langevin_gflops": langevin_flops / phase_medians["langevin"] / 1e9,
        **timing.load_fields(),
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def fmt_seconds(s: float, unit: str) -> str:
    return f"{s:7.3f} s{unit}" if s >= 1.0 else f"{s * 1e3:6.2f} ms{unit}"


def print_table(rows: list[dict[str, object]], file=sys.stderr) -> None:
    head = (f"{'cfg':4s} {'description':56s} {'batch':>5s} {'median':>11s} {'min':>11s} "
            f"{'max':>11s} {'spread':>7s} {'samp*steps/s':>13s} {'GFLOP/s':>8s} {'foreign':>7s}")
    print(head, file=file)
    contended = [r["config"] for r in rows if (r.get("foreign_cpu_share") or 0.0) > 0.05]
    print("-" * len(head), file=file)
    for r in rows:
        med, lo, hi = r["sec_per_step"], r["sec_per_step_min"], r["sec_per_step_max"]
        unit = "/it" if r["unit"] == "train_iteration" else "/st"
        gf = f"{r['gflops']:8.1f}" if r["gflops"] is not None else f"{'-':>8s}"
        fs = r.get("foreign_cpu_share")
        fs_txt = f"{fs * 100:6.1f}%" if fs is not None else f"{'?':>7s}"
        times = " ".join(f"{fmt_seconds(t, unit):>11s}" for t in (med, lo, hi))
        print(f"{r['config']:4s} {r['description']:56s} {r['batch']:5d} {times} "
              f"{(hi - lo) / med * 100:6.1f}% {r['samples_steps_per_s']:13.0f} {gf} {fs_txt}",
              file=file)
        if r["config"] == "T4":
            ph = r["phase_sec_median"]
            print(f"     T4 phases (median s): langevin {ph['langevin']:.3f} "
                  f"({r['langevin_gflops']:.1f} GFLOP/s), ebm update {ph['ebm_update']:.3f}, "
                  f"gen update {ph['gen_update']:.3f}, noise draws {ph['noise']:.3f}", file=file)
    print("spread = (max - min) / median over the repeats; foreign = CPU share used by other "
          "processes while timing", file=file)
    if contended:
        print(f"WARNING: other processes used > 5% of the CPUs during {', '.join(contended)}: "
              "those figures are contended; rerun on a quiet machine", file=file)


def run_config(name: str, args: argparse.Namespace) -> dict[str, object]:
    if args.quiet_wait > 0:
        wait_until_quiet(args.quiet_wait, args.max_foreign)
    gen = torch.Generator().manual_seed(args.seed)
    if name == "T4":
        row = run_train_config(args, gen)
    else:
        row = run_step_config(STEP_CONFIGS[name], args, gen)
    if row["repeats_discarded"]:
        print(f"{name}: {row['repeats_discarded']} contended repeat(s) discarded",
              file=sys.stderr)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description="PyTorch reference benchmark (T1-T4).")
    ap.add_argument("--configs", default=",".join(ALL_CONFIGS),
                    help="comma-separated subset of T1,T2,T3,T4 (default: all)")
    ap.add_argument("--repeats", type=int, default=7,
                    help="timed repeats per config; the median is reported (default 7)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--json-out", type=Path, help="also write the JSON lines to this file")
    ap.add_argument("--warmup-seconds", type=float, default=1.0,
                    help="T1-T3 warm-up time (default 1.0)")
    ap.add_argument("--repeat-seconds", type=float, default=1.0,
                    help="T1-T3 target duration of one timed repeat (default 1.0)")
    ap.add_argument("--t4-warmup", type=int, default=1,
                    help="untimed T4 iterations before the timed ones (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-foreign", type=float, default=0.05,
                    help="CPU share of other processes above which a config counts as "
                         "contended (default 0.05)")
    ap.add_argument("--retry-contended", type=int, default=0, metavar="N",
                    help="redo a contended repeat (other processes above --max-foreign), at "
                         "most N redos per config; the --repeats least contended repeats are "
                         "kept (default 0: keep all)")
    ap.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                    help="before each config, wait up to SECONDS for a 2 s window in which "
                         "other processes use < --max-foreign of the CPUs (default 0: off)")
    args = ap.parse_args()

    configs = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in ALL_CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(ALL_CONFIGS)}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.repeats < 5:
        print(f"warning: --repeats {args.repeats} < 5, the median is not robust", file=sys.stderr)

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"mkldnn available {torch.backends.mkldnn.is_available()}, "
          f"repeats {args.repeats}", file=sys.stderr)

    rows = []
    json_file = args.json_out.open("w") if args.json_out else None
    try:
        for name in configs:
            row = run_config(name, args)
            line = json.dumps(row)
            print(line, flush=True)
            if json_file:
                json_file.write(line + "\n")
                json_file.flush()
            rows.append(row)
    finally:
        if json_file:
            json_file.close()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
